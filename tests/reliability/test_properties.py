"""Property-based tests of the request models: what validates, what is refused, and how it is reported.

Valid input always validates and ``to_body()`` sends exactly the given fields (None means "not given");
invalid input is always a MediaPocketValidationError (never a raw pydantic error) naming the parameter.
"""

from __future__ import annotations

import re
import string
from typing import Any
from urllib.parse import urlsplit

import pytest
from hypothesis import assume, given, settings
from hypothesis import strategies as st
from pydantic import ValidationError

from airflow_provider_mediapocket.exceptions import MediaPocketValidationError
from airflow_provider_mediapocket.hooks import _api
from airflow_provider_mediapocket.models import (
    TITLE_MAX_LENGTH,
    AssetCreate,
    AssetUpdate,
    AssignBody,
    CommentBody,
    GuestBody,
    MediaFromS3,
    MediaFromUrl,
    ProjectAssetCreate,
    ProjectCreate,
    ThumbnailBody,
    check_id,
    validate_request,
)

PROPERTY = settings(max_examples=200, deadline=None)

# ------------------------------------------------------------------------------------------------ strategies

blank = st.text(alphabet=" \t\n\r\x0b\x0c\u00a0\u2003\u3000", max_size=5)
non_blank = st.text(min_size=1, max_size=40).filter(lambda s: s.strip() != "")
title = st.text(min_size=1, max_size=TITLE_MAX_LENGTH).filter(lambda s: s.strip() != "")
long_title = st.text(min_size=TITLE_MAX_LENGTH + 1, max_size=TITLE_MAX_LENGTH + 300)
tags = st.lists(st.text(max_size=20), max_size=8)
json_scalar = st.one_of(st.none(), st.booleans(), st.integers(), st.floats(allow_nan=False), st.text(max_size=10))
json_value = st.recursive(
    json_scalar, lambda inner: st.one_of(st.lists(inner, max_size=3), st.dictionaries(st.text(max_size=5), inner,
                                                                                       max_size=3)),
    max_leaves=6,
)
not_a_list = st.one_of(
    st.text(max_size=20), st.integers(), st.floats(allow_nan=False), st.booleans(),
    st.dictionaries(st.text(max_size=5), st.text(max_size=5), max_size=3),
    st.tuples(st.text(max_size=5)), st.frozensets(st.text(max_size=5), max_size=3),
)
not_a_string = st.one_of(
    st.integers(), st.floats(allow_nan=False), st.booleans(), st.none(), st.binary(max_size=5),
    st.lists(st.text(max_size=3), max_size=2), st.dictionaries(st.text(max_size=3), st.integers(), max_size=2),
)
metadata = st.fixed_dictionaries({}, optional={
    "description": st.one_of(st.none(), st.text(max_size=60)),
    "category": st.one_of(st.none(), st.text(max_size=30)),
    "tags": st.one_of(st.none(), tags),
    "external_id": st.one_of(st.none(), non_blank),
})

label = st.from_regex(r"[a-z0-9]([a-z0-9-]{0,12}[a-z0-9])?", fullmatch=True)
hostname = st.builds(lambda parts, tld: ".".join([*parts, tld]), st.lists(label, min_size=1, max_size=3),
                     st.sampled_from(["com", "fi", "example", "io"]))
port = st.one_of(st.just(""), st.integers(1, 65535).map(lambda p: f":{p}"))
segment = st.text(alphabet=string.ascii_letters + string.digits + "-_.~%", min_size=1, max_size=12)
file_name = st.builds(lambda stem, ext: f"{stem}.{ext}", st.text(alphabet=string.ascii_letters + string.digits,
                                                                 min_size=1, max_size=10),
                      st.sampled_from(["jpg", "mp4", "pdf", "mp3", "bin"]))
http_url = st.builds(
    lambda scheme, host, p, path, name: f"{scheme}://{host}{p}/{'/'.join([*path, name])}",
    st.sampled_from(["http", "https", "HTTP", "Https"]), hostname, port, st.lists(segment, max_size=3), file_name,
)
other_scheme = st.from_regex(r"[a-z][a-z0-9+.-]{0,8}", fullmatch=True).filter(lambda s: s not in ("http", "https"))


def refused(model: Any, data: dict[str, Any]) -> str:
    """Validate ``data`` expecting a refusal; the message (and never a raw pydantic error)."""
    try:
        validate_request(model, data)
    except MediaPocketValidationError as exc:
        assert not isinstance(exc, ValidationError)
        assert exc.status is None  # refused by the provider, nothing was sent
        assert str(exc).startswith("Invalid parameter")
        return str(exc)
    raise AssertionError(f"{model.__name__} accepted {data!r}")


def given_fields(data: dict[str, Any]) -> dict[str, Any]:
    return {key: value for key, value in data.items() if value is not None}


# -------------------------------------------------------------------------------------------- valid input


@PROPERTY
@given(title=title, fields=metadata, media_type=st.sampled_from([None, "article"]))
def test_asset_create_valid_round_trips(title: str, fields: dict[str, Any], media_type: str | None) -> None:
    data = {"title": title, "media_type": media_type, **fields}
    body = validate_request(AssetCreate, data).to_body()
    assert body == given_fields(data)
    # the request builder sends the same body (None values are "not given")
    assert _api.create_asset(**data).json == body
    assert validate_request(ProjectCreate, {k: v for k, v in data.items() if k != "media_type"}).to_body() == {
        k: v for k, v in body.items() if k != "media_type"
    }


@PROPERTY
@given(title=st.one_of(st.none(), title), fields=metadata)
def test_asset_update_valid_round_trips_and_empty_is_refused(title: str | None, fields: dict[str, Any]) -> None:
    data = {"title": title, **fields}
    if not given_fields(data):
        message = refused(AssetUpdate, data)
        assert "give at least one of" in message
        return
    assert validate_request(AssetUpdate, data).to_body() == given_fields(data)
    assert _api.update_asset("A1", **data).json == given_fields(data)


@PROPERTY
@given(url=http_url, filename=st.one_of(st.none(), non_blank))
def test_media_from_url_valid_round_trips(url: str, filename: str | None) -> None:
    media = validate_request(MediaFromUrl, {"file_url": url, "filename": filename or "f.bin"})
    assert media.to_body() == {"file_url": url, "filename": filename or "f.bin"}
    call = _api.add_media("A1", url, filename)
    assert call.json == {"file_url": url, "filename": filename if filename is not None else url.rsplit("/", 1)[1]}


@PROPERTY
@given(title=title, fields=metadata, source=st.sampled_from(["url", "s3", None]), url=http_url, key=non_blank,
       name=st.one_of(st.none(), non_blank))
def test_project_asset_create_valid_round_trips(
    title: str, fields: dict[str, Any], source: str | None, url: str, key: str, name: str | None
) -> None:
    data: dict[str, Any] = {"title": title, **fields}
    if source == "url":
        data["url"] = {"file_url": url, "filename": name or "x.jpg"}
    elif source == "s3":
        data["s3"] = {"s3_key": key, "filename": name or "x.jpg"}
    assert validate_request(ProjectAssetCreate, data).to_body() == given_fields(data)


@PROPERTY
@given(comment=non_blank, email=st.builds(lambda local, host: f"{local}@{host}", non_blank.filter(
    lambda s: s.strip(" @") != ""), hostname))
def test_comment_and_guest_valid_round_trip(comment: str, email: str) -> None:
    assert validate_request(CommentBody, {"comment": comment}).to_body() == {"comment": comment}
    assert validate_request(GuestBody, {"email": email}).to_body() == {"email": email}
    assert _api.add_project_guest("P1", email).json == {"email": email}


# ------------------------------------------------------------------------------------------ invalid input


@PROPERTY
@given(title=long_title, model=st.sampled_from([AssetCreate, AssetUpdate, ProjectCreate, ProjectAssetCreate]))
def test_titles_longer_than_255_always_fail_naming_title(title: str, model: Any) -> None:
    message = refused(model, {"title": title})
    assert "'title'" in message
    assert str(TITLE_MAX_LENGTH) in message or "must not be empty" in message


@PROPERTY
@given(value=blank, model=st.sampled_from([AssetCreate, AssetUpdate, ProjectCreate]))
def test_blank_titles_always_fail_naming_title(value: str, model: Any) -> None:
    assert "Invalid parameter 'title': must not be empty" in refused(model, {"title": value})


@PROPERTY
@given(value=not_a_list, model=st.sampled_from([AssetCreate, AssetUpdate, ProjectCreate]))
def test_tags_that_are_not_a_list_always_fail_naming_tags(value: Any, model: Any) -> None:
    assert "Invalid parameter 'tags'" in refused(model, {"title": "t", "tags": value})


@PROPERTY
@given(strings=st.lists(st.text(max_size=8), max_size=5), bad=not_a_string, where=st.integers(0, 5))
def test_tags_with_a_non_string_always_fail_naming_the_tag(strings: list[str], bad: Any, where: int) -> None:
    index = min(where, len(strings))
    values = [*strings[:index], bad, *strings[index:]]
    message = refused(AssetCreate, {"title": "t", "tags": values})
    assert f"Invalid parameter 'tags.{index}'" in message


@PROPERTY
@given(scheme=other_scheme, host=hostname, name=file_name)
def test_file_url_with_another_scheme_always_fails_naming_file_url(scheme: str, host: str, name: str) -> None:
    url = f"{scheme}://{host}/{name}"
    assert "Invalid parameter 'file_url'" in refused(MediaFromUrl, {"file_url": url, "filename": "f"})
    with pytest.raises(MediaPocketValidationError, match="'file_url'"):
        _api.add_media("A1", url)


@PROPERTY
@given(
    url=st.one_of(
        st.builds(lambda s, path: f"{s}:///{path}", st.sampled_from(["http", "https"]), segment),  # empty authority
        st.builds(lambda s, path: f"{s}:{path}", st.sampled_from(["http", "https"]), segment),  # no //
        st.builds(lambda path: f"/local/{path}", segment),  # a local path
        segment,  # a bare name
        st.builds(lambda s, p, path: f"{s}://{p}/{path}", st.sampled_from(["http", "https"]),
                  st.sampled_from([":80", "user@", "user:pw@", ":", "@:8080"]), segment),  # authority, no host
    )
)
def test_file_url_without_a_host_always_fails_naming_file_url(url: str) -> None:
    assert urlsplit(url).hostname is None
    assert "Invalid parameter 'file_url'" in refused(MediaFromUrl, {"file_url": url, "filename": "f"})


@PROPERTY
@given(text=st.text(max_size=40))
def test_any_file_url_text_is_accepted_only_as_an_http_url_with_a_host(text: str) -> None:
    try:
        validate_request(MediaFromUrl, {"file_url": text, "filename": "f"})
    except MediaPocketValidationError as exc:
        assert "Invalid parameter 'file_url'" in str(exc)
        return
    parts = urlsplit(text)
    assert parts.scheme.lower() in ("http", "https") and parts.hostname


@PROPERTY
@given(value=blank)
def test_blank_comment_thumbnail_assign_and_s3_key_fail_naming_them(value: str) -> None:
    assert "'comment'" in refused(CommentBody, {"comment": value})
    assert "'thumbnail_asset_id'" in refused(ThumbnailBody, {"thumbnail_asset_id": value})
    assert "'to_project_id'" in refused(AssignBody, {"to_project_id": value})
    assert "'s3_key'" in refused(MediaFromS3, {"s3_key": value, "filename": "f"})


@PROPERTY
@given(value=st.text(max_size=30).filter(lambda s: "@" not in s.strip(" @")))
def test_guest_email_without_an_at_sign_fails_naming_email(value: str) -> None:
    assert "Invalid parameter 'email'" in refused(GuestBody, {"email": value})


@PROPERTY
@given(url=http_url, key=non_blank)
def test_url_and_s3_together_are_refused(url: str, key: str) -> None:
    message = refused(ProjectAssetCreate, {"title": "t", "url": {"file_url": url, "filename": "a"},
                                           "s3": {"s3_key": key, "filename": "a"}})
    assert "not both" in message
    with pytest.raises(MediaPocketValidationError, match="'file_url' and 's3_key'"):
        _api.create_project_asset("P1", title="t", file_url=url, s3_key=key)


@PROPERTY
@given(
    model=st.sampled_from([AssetCreate, AssetUpdate, MediaFromUrl, MediaFromS3, ProjectAssetCreate, ProjectCreate,
                           CommentBody, GuestBody, AssignBody, ThumbnailBody]),
    data=st.dictionaries(
        st.one_of(st.sampled_from(["title", "description", "category", "tags", "external_id", "media_type",
                                   "file_url", "filename", "s3_key", "url", "s3", "comment", "email",
                                   "to_project_id", "thumbnail_asset_id"]),
                  # any other name, but not one with a quote in it (it could not be quoted unambiguously)
                  st.text(alphabet=st.characters(blacklist_characters="'"), max_size=8)),
        json_value, max_size=6,
    ),
)
def test_validation_errors_are_always_mediapocket_errors_naming_a_parameter(model: Any, data: dict[str, Any]) -> None:
    try:
        result = validate_request(model, data)
    except MediaPocketValidationError as exc:
        message = str(exc)
        assert message.startswith("Invalid parameter"), message
        assert not re.search(r"parameters? ''", message), f"an empty parameter name: {message}"
        assert re.search(r"'[^']+'", message), f"no parameter named: {message}"
        assert exc.status is None and not isinstance(exc, ValidationError)
        return
    except ValidationError as exc:  # pragma: no cover - the failure this test looks for
        raise AssertionError(f"a raw pydantic error escaped: {exc}") from exc
    assert isinstance(result, model)
    assert set(result.to_body()) <= set(data)


@PROPERTY
@given(model=st.sampled_from([AssetCreate, ProjectCreate, CommentBody, GuestBody]),
       name=st.text(alphabet=string.ascii_lowercase + "_", min_size=1, max_size=12))
def test_unknown_parameters_are_refused_by_name(model: Any, name: str) -> None:
    assume(name not in model.model_fields)
    base = {"title": "t"} if "title" in model.model_fields else {}
    message = refused(model, {**base, name: "x"})
    assert f"Invalid parameter '{name}': is not a parameter of this call" in message


# --------------------------------------------------------------------------------------------------- check_id


@PROPERTY
@given(value=non_blank)
def test_check_id_accepts_non_empty_strings(value: str) -> None:
    result = check_id("asset_id", value)
    assert isinstance(result, str) and result == value.strip() and result


@PROPERTY
@given(value=st.integers(min_value=0, max_value=2**63))
def test_check_id_accepts_non_negative_ints_as_strings(value: int) -> None:
    assert check_id("dag_action_run_id", value) == str(value)


@PROPERTY
@given(value=st.one_of(
    blank.map(lambda s: ("blank", s)),
    st.booleans().map(lambda b: ("type", b)),
    st.floats().map(lambda f: ("type", f)),
    st.integers(max_value=-1).map(lambda i: ("negative", i)),
    st.one_of(st.none(), st.binary(max_size=4), st.lists(st.integers(), max_size=2)).map(lambda v: ("type", v)),
))
def test_check_id_rejects_blank_bool_float_negative_and_other_types(value: tuple[str, Any]) -> None:
    kind, bad = value
    with pytest.raises(MediaPocketValidationError) as info:
        check_id("project_id", bad)
    message = str(info.value)
    assert message.startswith("Invalid parameter 'project_id': ")
    expected = {"blank": "must not be empty", "type": "must be a non-empty string or an integer",
                "negative": "must not be negative"}[kind]
    assert expected in message
