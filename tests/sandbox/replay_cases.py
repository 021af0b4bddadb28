"""Replay the documented Media Pocket examples against the sandbox (shared test helper).

``load_examples()`` reads ``examples.jsonl``; ``prepare()`` sets up each example's preconditions in a
sandbox using the example's own ids; ``assert_matches()`` compares a response with the example.
"""

from __future__ import annotations

import json
import os
import re
from collections.abc import Callable
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any
from urllib.parse import parse_qsl, urlsplit

from airflow_provider_mediapocket.sandbox import MediaPocketSandbox

RESTRICTED_KEY = "restricted-sandbox-key"
MISSING_IDS = frozenset({"not-found-id", "not_found_id", "-1", ":asset_id", ":project_id"})
# Values the real API generates: compared by JSON type only (null must stay null).
GENERATED_KEYS = frozenset(
    {
        "id",
        "parent_id",
        "project_id",
        "owner",
        "email",
        "created_date",
        "modification_date",
        "created_at",
        "updated_at",
        "deleted",
        "md5_sum",
        "elasticsearch_id",
        "user_id",
        "thumbnail_asset_id",
    }
)
# Objects whose texts are sandbox-specific (the seeded DAG actions): shape only.
SHAPE_ONLY_UNDER = frozenset({"dag_action", "dag_actions"})
CREATED_WITH_MEDIA_ERROR = re.compile(
    r"Asset [A-Za-z0-9_-]{20} created, adding media to asset failed: not a valid HTTP URL"
)
COPIED_FIELDS = (
    "title",
    "description",
    "category",
    "tags",
    "ai_tags",
    "media_type",
    "original_filename",
    "md5_sum",
)


def seeds_dir() -> Path:
    """The folder holding the API documents (``MEDIAPOCKET_SEEDS_DIR`` overrides)."""
    override = os.environ.get("MEDIAPOCKET_SEEDS_DIR")
    return Path(override) if override else Path(__file__).resolve().parents[3] / "shared" / "seeds"


def load_examples() -> list[dict[str, Any]]:
    """The documented examples, in file order."""
    with (seeds_dir() / "examples.jsonl").open(encoding="utf-8") as handle:
        return [json.loads(line) for line in handle if line.strip()]


def example_id(index: int, example: dict[str, Any]) -> str:
    """A readable pytest id for an example."""
    return f"{index:03d}-{example['method']}-{example['title']}".replace(" ", "_")


@dataclass(frozen=True)
class Prepared:
    """The request to send for an example."""

    api_key: str
    method: str
    path: str
    query: dict[str, str]
    body: Any


def _fields(response: Any, key: str, default_title: str) -> dict[str, Any]:
    obj = response.get(key) if isinstance(response, dict) else None
    if not isinstance(obj, dict):
        return {"title": default_title}
    return {k: obj[k] for k in COPIED_FIELDS if k in obj}


def prepare(sandbox: MediaPocketSandbox, example: dict[str, Any]) -> Prepared:
    """Create the example's preconditions in ``sandbox`` (same ids) and return the request."""
    state = sandbox.state
    split = urlsplit(example["path"])
    method, status, response, body = (
        example["method"],
        example["status"],
        example["response"],
        example["request"],
    )
    prepared = Prepared(sandbox.api_key, method, split.path, dict(parse_qsl(split.query)), body)
    match = re.fullmatch(r"/api/v2/(assets|projects)(?:/([^/]+))?(?:/(.*))?", split.path)
    if match is None:
        return prepared
    kind, oid, rest = match.group(1), match.group(2), match.group(3) or ""
    sub, _, arg = rest.partition("/")
    if oid is None:
        if kind == "assets" and status == 400 and isinstance(body, dict) and body.get("external_id"):
            state.add_asset(title="Existing", external_id=body["external_id"])
        if kind == "projects" and method == "GET" and response == {"projects": []}:
            for project_id in state.top_level_projects():
                state.trash_project(project_id["id"])
        return prepared
    if oid in MISSING_IDS:
        return prepared
    target = "Asset" if kind == "assets" else "Project"
    if target == "Asset":
        state.add_asset(id=oid, **_fields(response, "asset", "Sample Asset"))
    else:
        state.add_project(id=oid, **_fields(response, "project", "Sample Project"))
    setup = _SETUP.get((target, sub)) or _SETUP.get(("*", sub))
    restricted = setup(sandbox, target, oid, arg, example) if setup else None
    if restricted is not None:
        state.add_api_key(RESTRICTED_KEY, permissions=restricted)
        return replace(prepared, api_key=RESTRICTED_KEY)
    return prepared


# ---------------------------------------------------------------------- per-endpoint setups
Setup = Callable[[MediaPocketSandbox, str, str, str, dict[str, Any]], "set[str] | None"]


def _comments(sb: MediaPocketSandbox, target: str, oid: str, arg: str, ex: dict[str, Any]) -> set[str] | None:
    response = ex["response"]
    if not arg:
        for comment in response.get("comments", []):
            sb.state.add_comment(target, oid, comment["message"], id=comment["id"])
    elif arg.isdigit() and ex["status"] != 404:
        owner = sb.state.add_user() if ex["status"] == 403 else None
        message = response.get("comment", {}).get("message", "Sample comment for tests")
        if ex["method"] == "POST":
            message = "Sample comment for tests"
        sb.state.add_comment(target, oid, message, user_id=owner, id=int(arg))
    return None


def _dag_actions(
    sb: MediaPocketSandbox, target: str, oid: str, arg: str, ex: dict[str, Any]
) -> set[str] | None:
    if ex["status"] != 403:
        return None
    return {"ACTIONS_VIEW"} if arg else {"ACTIONS_START"}


def _runs(sb: MediaPocketSandbox, target: str, oid: str, arg: str, ex: dict[str, Any]) -> set[str] | None:
    if ex["status"] == 403:
        return {"ACTIONS_START"}
    for run in reversed(ex["response"].get("dag_action_runs", [])):
        sb.state.start_run(oid, run["dag_action"]["id"])
    return None


def _media(sb: MediaPocketSandbox, target: str, oid: str, arg: str, ex: dict[str, Any]) -> set[str] | None:
    media_id = arg.partition("/")[0]
    if media_id.isdigit():
        sb.state.add_media(oid, ex["path"].rpartition("filename=")[2] or "file.png", id=int(media_id))
    return None


def _collections(
    sb: MediaPocketSandbox, target: str, oid: str, arg: str, ex: dict[str, Any]
) -> set[str] | None:
    for collection in ex["response"].get("collections", []):
        fields = {k: collection[k] for k in ("title", "description", "category", "tags")}
        sb.state.add_collection(id=collection["id"], asset_ids=[oid], **fields)
    return None


def _assign(sb: MediaPocketSandbox, target: str, oid: str, arg: str, ex: dict[str, Any]) -> set[str] | None:
    to_project = (ex["request"] or {}).get("to_project_id")
    if ex["response"] == {"ok": "ok"} and to_project:
        sb.state.add_project(id=to_project, title="Target Project")
    return None


def _unassign(sb: MediaPocketSandbox, target: str, oid: str, arg: str, ex: dict[str, Any]) -> set[str] | None:
    if ex["response"] == {"ok": "ok"}:
        parent = sb.state.add_project(title="Parent Project")["id"]
        sb.state.assign(target, oid, parent, sb.state.default_user_id)
    return None


def _restore(sb: MediaPocketSandbox, target: str, oid: str, arg: str, ex: dict[str, Any]) -> set[str] | None:
    if ex["status"] == 200:
        sb.state.set_trashed(target, oid, True)
    return None


def _visibility(
    sb: MediaPocketSandbox, target: str, oid: str, arg: str, ex: dict[str, Any]
) -> set[str] | None:
    wants_public = ex["path"].endswith("/public")
    if (ex["status"] == 400) == wants_public:
        sb.state.set_project_public(oid, True)
    return None


def _users(sb: MediaPocketSandbox, target: str, oid: str, arg: str, ex: dict[str, Any]) -> set[str] | None:
    if arg.isdigit():
        uid = sb.state.add_user(id=int(arg))
        is_member = (ex["method"] == "POST") == (ex["status"] == 400)
        if is_member:
            sb.state.add_project_user(oid, uid)
    return None


def _guests(sb: MediaPocketSandbox, target: str, oid: str, arg: str, ex: dict[str, Any]) -> set[str] | None:
    if ex["status"] == 400:
        sb.state.add_user(email=ex["request"]["email"])
    return None


def _groups(sb: MediaPocketSandbox, target: str, oid: str, arg: str, ex: dict[str, Any]) -> set[str] | None:
    for group in ex["response"].get("user_groups", []):
        sb.state.add_user_group(id=group["id"], name=group["name"], description=group["description"])
        sb.state.add_project_user_group(oid, group["id"])
    if arg.isdigit():
        gid = sb.state.add_user_group(id=int(arg))
        if (ex["method"] == "POST") == (ex["status"] == 400):
            sb.state.add_project_user_group(oid, gid)
    return None


def _thumbnail(
    sb: MediaPocketSandbox, target: str, oid: str, arg: str, ex: dict[str, Any]
) -> set[str] | None:
    asset_id = (ex["request"] or {}).get("thumbnail_asset_id")
    error = ex["response"].get("error", "")
    if ex["method"] == "PUT" and asset_id and "Could not find" not in error:
        in_project = oid if "belong" not in error else None
        sb.state.add_asset(id=asset_id, title="Thumbnail", project_id=in_project)
        if "must be an image" not in error:
            sb.state.add_media(asset_id, "thumbnail.jpg", processed=True)
    if ex["method"] == "DELETE" and ex["status"] == 200:
        thumb = sb.state.add_asset(title="Thumbnail", project_id=oid)["id"]
        sb.state.add_media(thumb, "thumbnail.jpg", processed=True)
        sb.state.set_thumbnail(oid, thumb)
    return None


def _attachments(
    sb: MediaPocketSandbox, target: str, oid: str, arg: str, ex: dict[str, Any]
) -> set[str] | None:
    for attachment in ex["response"].get("attachments", []):
        fields = {k: attachment[k] for k in COPIED_FIELDS if k in attachment}
        sb.state.add_asset(id=attachment["id"], parent_id=oid, **fields)
    return None


_SETUP: dict[tuple[str, str], Setup] = {
    ("*", "comments"): _comments,
    ("Asset", "dag_actions"): _dag_actions,
    ("Asset", "dag_action_runs"): _runs,
    ("Asset", "media"): _media,
    ("Asset", "collections"): _collections,
    ("*", "assign"): _assign,
    ("*", "unassign"): _unassign,
    ("*", "restore"): _restore,
    ("Project", "public"): _visibility,
    ("Project", "private"): _visibility,
    ("Project", "users"): _users,
    ("Project", "guests"): _guests,
    ("Project", "user_groups"): _groups,
    ("Project", "thumbnail"): _thumbnail,
    ("*", "attachments"): _attachments,
}


# ---------------------------------------------------------------------- comparison
def _json_type(value: Any) -> str:
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "bool"
    if isinstance(value, (int, float)):
        return "number"
    return type(value).__name__


def _compare(expected: Any, actual: Any, where: str, exact: bool) -> None:
    if isinstance(expected, dict):
        assert isinstance(actual, dict), f"{where}: expected an object, got {actual!r}"
        assert set(actual) == set(expected), f"{where}: keys {sorted(actual)} != {sorted(expected)}"
        for key, value in expected.items():
            key_exact = exact and key not in GENERATED_KEYS and key not in SHAPE_ONLY_UNDER
            if key in GENERATED_KEYS and not isinstance(value, (dict, list)):
                assert _json_type(actual[key]) == _json_type(value), (
                    f"{where}.{key}: {actual[key]!r} is not like {value!r}"
                )
                continue
            _compare(value, actual[key], f"{where}.{key}", key_exact)
    elif isinstance(expected, list):
        assert isinstance(actual, list), f"{where}: expected a list, got {actual!r}"
        if not expected or not isinstance(expected[0], (dict, list)):
            if exact:
                assert actual == expected, f"{where}: {actual!r} != {expected!r}"
            else:
                assert bool(actual) == bool(expected), f"{where}: {actual!r} vs {expected!r}"
            return
        assert actual, f"{where}: expected a non-empty list"
        _compare(expected[0], actual[0], f"{where}[0]", exact)
    elif exact:
        assert actual == expected, f"{where}: {actual!r} != {expected!r}"
    else:
        assert _json_type(actual) == _json_type(expected), f"{where}: {actual!r} is not like {expected!r}"


def assert_matches(example: dict[str, Any], status: int, body: Any) -> None:
    """Assert that (``status``, ``body``) reproduces the documented example."""
    expected = example["response"]
    assert status == example["status"], f"status {status} != {example['status']}: {body!r}"
    if isinstance(expected, dict) and ("error" in expected or "errors" in expected):
        error = expected.get("error")
        if isinstance(error, str) and CREATED_WITH_MEDIA_ERROR.fullmatch(error):
            assert isinstance(body, dict) and set(body) == {"error"}, body
            assert CREATED_WITH_MEDIA_ERROR.fullmatch(body["error"]), body
            return
        assert isinstance(body, dict), body
        for key in ("error", "errors"):
            if key in expected:
                assert body.get(key) == expected[key], f"{key}: {body.get(key)!r} != {expected[key]!r}"
        rest = {k: v for k, v in expected.items() if k not in ("error", "errors")}
        _compare(rest, {k: v for k, v in body.items() if k not in ("error", "errors")}, "body", True)
        return
    _compare(expected, body, "body", True)
