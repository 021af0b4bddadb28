"""Every documented example, sent through MediaPocketHook against the sandbox.

Success examples must come back as the right model with the example's values; failure examples must
raise the right MediaPocketError subclass carrying the documented message word for word.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from typing import Any

import pytest
from pydantic import BaseModel

from airflow_provider_mediapocket.exceptions import (
    MediaPocketError,
    MediaPocketNotFoundError,
    MediaPocketOperationError,
    MediaPocketPermissionError,
    MediaPocketValidationError,
)
from airflow_provider_mediapocket.hooks.mediapocket import MediaPocketHook
from airflow_provider_mediapocket.sandbox import MediaPocketSandbox
from tests.sandbox.replay_cases import example_id, load_examples, prepare

EXAMPLES = load_examples()
ID = r"([^/?]+)"
Call = Callable[[MediaPocketHook, list[str], dict[str, Any], dict[str, str]], Any]


def _b(body: dict[str, Any], *keys: str) -> dict[str, Any]:
    return {key: body[key] for key in keys if key in body}


# (method, path regex under /api/v2, how to call the hook with the path ids, body and query)
ROUTES: list[tuple[str, str, Call]] = [
    ("POST", r"assets", lambda h, i, b, q: h.create_asset(b.pop("title", None), **b)),
    ("GET", rf"assets/{ID}", lambda h, i, b, q: h.get_asset(i[0])),
    ("PUT", rf"assets/{ID}", lambda h, i, b, q: h.update_asset(i[0], **b)),
    ("DELETE", rf"assets/{ID}", lambda h, i, b, q: h.delete_asset(i[0])),
    ("POST", rf"assets/{ID}/trash_bin", lambda h, i, b, q: h.trash_asset(i[0])),
    ("POST", rf"assets/{ID}/restore", lambda h, i, b, q: h.restore_asset(i[0])),
    ("POST", rf"assets/{ID}/assign", lambda h, i, b, q: h.assign_asset(i[0], b.get("to_project_id", "x"))),
    ("DELETE", rf"assets/{ID}/unassign", lambda h, i, b, q: h.unassign_asset(i[0])),
    ("POST", rf"assets/{ID}/media", lambda h, i, b, q: h.add_media(i[0], b["file_url"], b["filename"])),
    ("GET", rf"assets/{ID}/media", lambda h, i, b, q: h.list_media(
        i[0], include_locations=q.get("include_locations") == "true")),
    ("DELETE", rf"assets/{ID}/media", lambda h, i, b, q: h.remove_media(i[0])),
    ("GET", rf"assets/{ID}/media/{ID}/download_url", lambda h, i, b, q: h.get_media_download_url(
        i[0], i[1], q["filename"])),
    ("GET", rf"assets/{ID}/collections", lambda h, i, b, q: h.list_asset_collections(i[0])),
    ("GET", rf"assets/{ID}/history/{ID}", lambda h, i, b, q: h.get_asset_history(i[0], i[1])),
    ("GET", rf"assets/{ID}/comments", lambda h, i, b, q: h.list_asset_comments(i[0])),
    ("POST", rf"assets/{ID}/comments", lambda h, i, b, q: h.create_asset_comment(i[0], b["comment"])),
    ("GET", rf"assets/{ID}/comments/{ID}", lambda h, i, b, q: h.get_asset_comment(i[0], i[1])),
    ("POST", rf"assets/{ID}/comments/{ID}", lambda h, i, b, q: h.update_asset_comment(i[0], i[1], b["comment"])),
    ("DELETE", rf"assets/{ID}/comments/{ID}", lambda h, i, b, q: h.delete_asset_comment(i[0], i[1])),
    ("GET", rf"assets/{ID}/attachments", lambda h, i, b, q: h.list_asset_attachments(i[0])),
    ("POST", rf"assets/{ID}/attachments", lambda h, i, b, q: h.create_asset_attachment(i[0], b.pop("title", None), **b)),
    ("GET", rf"assets/{ID}/dag_actions", lambda h, i, b, q: h.list_dag_actions(i[0])),
    ("POST", rf"assets/{ID}/dag_actions/{ID}", lambda h, i, b, q: h.start_dag_action(i[0], i[1])),
    ("GET", rf"assets/{ID}/dag_action_runs", lambda h, i, b, q: h.list_dag_action_runs(i[0])),
    ("GET", r"projects", lambda h, i, b, q: h.list_projects()),
    ("POST", r"projects", lambda h, i, b, q: h.create_project(b.pop("title", None), **b)),
    ("GET", rf"projects/{ID}", lambda h, i, b, q: h.get_project(i[0])),
    ("PUT", rf"projects/{ID}", lambda h, i, b, q: h.update_project(i[0], **b)),
    ("DELETE", rf"projects/{ID}", lambda h, i, b, q: h.delete_project(i[0])),
    ("POST", rf"projects/{ID}/trash_bin", lambda h, i, b, q: h.trash_project(i[0])),
    ("POST", rf"projects/{ID}/restore", lambda h, i, b, q: h.restore_project(i[0])),
    ("GET", rf"projects/{ID}/projects", lambda h, i, b, q: h.list_subprojects(i[0])),
    ("POST", rf"projects/{ID}/projects", lambda h, i, b, q: h.create_subproject(i[0], b.pop("title", None), **b)),
    ("GET", rf"projects/{ID}/assets", lambda h, i, b, q: h.list_project_assets(i[0])),
    ("POST", rf"projects/{ID}/assets", lambda h, i, b, q: h.create_project_asset(
        i[0], b.get("title"), **_b(b, "description", "category", "tags", "media_type", "external_id"),
        **({"file_url": b["url"]["file_url"], "filename": b["url"]["filename"]} if "url" in b else {}))),
    ("GET", rf"projects/{ID}/stats", lambda h, i, b, q: h.get_project_stats(i[0])),
    ("POST", rf"projects/{ID}/public", lambda h, i, b, q: h.make_project_public(i[0])),
    ("POST", rf"projects/{ID}/private", lambda h, i, b, q: h.make_project_private(i[0])),
    ("GET", rf"projects/{ID}/all_users", lambda h, i, b, q: h.list_project_users(i[0], include_inherited=True)),
    ("GET", rf"projects/{ID}/users", lambda h, i, b, q: h.list_project_users(i[0])),
    ("POST", rf"projects/{ID}/users/{ID}", lambda h, i, b, q: h.add_project_user(i[0], i[1])),
    ("DELETE", rf"projects/{ID}/users/{ID}", lambda h, i, b, q: h.remove_project_user(i[0], i[1])),
    ("POST", rf"projects/{ID}/guests", lambda h, i, b, q: h.add_project_guest(i[0], b.get("email", "x@y.z"))),
    ("GET", rf"projects/{ID}/user_groups", lambda h, i, b, q: h.list_project_user_groups(i[0])),
    ("POST", rf"projects/{ID}/user_groups/{ID}", lambda h, i, b, q: h.add_project_user_group(i[0], i[1])),
    ("DELETE", rf"projects/{ID}/user_groups/{ID}", lambda h, i, b, q: h.remove_project_user_group(i[0], i[1])),
    ("GET", rf"projects/{ID}/history/{ID}", lambda h, i, b, q: h.get_project_history(i[0], i[1])),
    ("POST", rf"projects/{ID}/assign", lambda h, i, b, q: h.assign_project(i[0], b.get("to_project_id", "x"))),
    ("DELETE", rf"projects/{ID}/unassign", lambda h, i, b, q: h.unassign_project(i[0])),
    ("PUT", rf"projects/{ID}/thumbnail", lambda h, i, b, q: h.set_project_thumbnail(i[0], b["thumbnail_asset_id"])),
    ("DELETE", rf"projects/{ID}/thumbnail", lambda h, i, b, q: h.remove_project_thumbnail(i[0])),
    ("GET", rf"projects/{ID}/comments", lambda h, i, b, q: h.list_project_comments(i[0])),
    ("POST", rf"projects/{ID}/comments", lambda h, i, b, q: h.create_project_comment(i[0], b["comment"])),
    ("GET", rf"projects/{ID}/comments/{ID}", lambda h, i, b, q: h.get_project_comment(i[0], i[1])),
    ("POST", rf"projects/{ID}/comments/{ID}", lambda h, i, b, q: h.update_project_comment(i[0], i[1], b["comment"])),
    ("DELETE", rf"projects/{ID}/comments/{ID}", lambda h, i, b, q: h.delete_project_comment(i[0], i[1])),
    ("GET", rf"projects/{ID}/attachments", lambda h, i, b, q: h.list_project_attachments(i[0])),
    ("POST", rf"projects/{ID}/attachments", lambda h, i, b, q: h.create_project_attachment(i[0], b.pop("title", None), **b)),
]

CREATE = re.compile(r"/api/v2/(assets|projects|(assets|projects)/[^/]+/(assets|projects|attachments))")


def refused_before_sending(example: dict[str, Any]) -> str | None:
    """The parameter the provider rejects before sending, for documented requests with bad input."""
    body = example["request"] or {}
    if example["method"] == "POST" and CREATE.fullmatch(example["path"]):
        if "title" not in body or len(body["title"]) > 255:
            return "title"
        if body.get("media_type") not in (None, "article"):
            return "media_type"
    file_url = body.get("file_url") or (body.get("url") or {}).get("file_url")
    if file_url is not None and not file_url.startswith(("http://", "https://")):
        return "file_url"
    if example["method"] == "PUT" and len(body.get("title", "")) > 255:
        return "title"
    return None


def route(method: str, path: str) -> tuple[Call, list[str]]:
    rest = path.split("?")[0].removeprefix("/api/v2/")
    for verb, pattern, call in ROUTES:
        match = re.fullmatch(pattern, rest)
        if verb == method and match:
            return call, list(match.groups())
    raise AssertionError(f"no hook method for {method} {path}")


def test_every_endpoint_template_has_a_hook_method() -> None:
    used = {id(route(example["method"], example["path"])[0]) for example in EXAMPLES}
    assert len(used) == len(ROUTES) == 58  # every route of the table is exercised by an example
    # The seeds count 59 endpoint templates: the 58 paths, with ?include_locations=true as its own.
    templates = {(id(route(e["method"], e["path"])[0]), "?" in e["path"]) for e in EXAMPLES}
    assert len(templates) == 59


def expected_class(example: dict[str, Any]) -> type[MediaPocketError]:
    status = example["status"]
    if status == 200:
        return MediaPocketOperationError
    return {403: MediaPocketPermissionError, 404: MediaPocketNotFoundError}.get(status, MediaPocketValidationError)


def check_value(value: Any, response: dict[str, Any]) -> None:
    """The value the hook returned holds the example's non-generated values."""
    payload = next(iter(response.values())) if len(response) == 1 else response
    if isinstance(value, list):
        assert isinstance(payload, list)
        assert bool(value) == bool(payload)  # the sandbox seeds its own DAG actions, so only emptiness counts
        assert all(isinstance(item, BaseModel) for item in value)
    elif isinstance(value, BaseModel):
        dumped = value.model_dump(mode="json", by_alias=True)
        for key in ("title", "description", "category", "tags", "media_type", "status", "isPublic", "message"):
            if isinstance(payload, dict) and key in payload and key not in ("status",):
                assert dumped[key] == payload[key], key
        if isinstance(payload, dict) and "status" in payload and not isinstance(payload["status"], dict):
            assert dumped["status"] == payload["status"]
    else:  # ok / message texts, is_public, download url
        assert value == payload


@pytest.mark.parametrize("index", range(len(EXAMPLES)), ids=[example_id(i, e) for i, e in enumerate(EXAMPLES)])
def test_example_through_the_hook(
    index: int, mediapocket_sandbox: MediaPocketSandbox, monkeypatch: pytest.MonkeyPatch
) -> None:
    example = EXAMPLES[index]
    prepared = prepare(mediapocket_sandbox, example)
    monkeypatch.setenv("AIRFLOW_CONN_REPLAY", mediapocket_sandbox.connection(api_key=prepared.api_key))
    hook = MediaPocketHook("replay", retry_limit=0)
    call, ids = route(example["method"], example["path"])
    body = prepared.body if isinstance(prepared.body, dict) else {}
    mediapocket_sandbox.clear_requests()
    response = example["response"] if isinstance(example["response"], dict) else {}
    parameter = refused_before_sending(example)
    if parameter is not None:
        with pytest.raises(MediaPocketValidationError) as refused:
            call(hook, ids, body, prepared.query)
        assert refused.value.status is None
        assert f"Invalid parameter '{parameter}" in str(refused.value)
        assert mediapocket_sandbox.requests == []
        return
    if example["status"] != 200 or "error" in response or "errors" in response:
        message = response.get("error") or response["errors"]["error"]
        with pytest.raises(MediaPocketError) as info:
            call(hook, ids, body, prepared.query)
        error = info.value
        assert isinstance(error, expected_class(example)), (type(error), str(error))
        assert (error.status, error.method, error.server_message) == (example["status"], example["method"], message)
        assert message in str(error)
        return
    value = call(hook, ids, body, prepared.query)
    check_value(value, example["response"])
