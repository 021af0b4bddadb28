"""Issue 7 item 3: a DELETE repeated after a lost answer reports success for the work the lost attempt did.

The sandbox's "lost" fault applies the request and closes the connection without an answer; the hook
repeats the DELETE and the repeat finds nothing left to delete. What the repeat says depends on the
endpoint (as on the real API): 404 for a deleted asset, project or comment; HTTP 200 with an error
body for unassign and for removing media; 400 for a project member. After a lost answer each of
these means "already done" and is a success; on a first attempt each is still an error.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any

import pytest

from airflow_provider_mediapocket.exceptions import (
    MediaPocketError,
    MediaPocketNotFoundError,
    MediaPocketOperationError,
    MediaPocketValidationError,
)
from airflow_provider_mediapocket.hooks.mediapocket import MediaPocketHook
from airflow_provider_mediapocket.sandbox import MediaPocketSandbox
from tests.reliability._helpers_faults import running_sandbox

HOOK = {"retry_backoff": 0.01, "retry_limit": 2}


@pytest.fixture
def sandbox(monkeypatch: pytest.MonkeyPatch) -> Iterator[MediaPocketSandbox]:
    with running_sandbox(monkeypatch, media_processing_seconds=0.01) as sb:
        yield sb


@dataclass
class Case:
    """One DELETE: how to set up its target, call it, check the end state, and what a repeat answers."""

    name: str
    setup: Callable[[MediaPocketSandbox], dict[str, Any]]
    call: Callable[[MediaPocketHook, dict[str, Any]], Any]
    acall: Callable[[MediaPocketHook, dict[str, Any]], Any]
    path: Callable[[dict[str, Any]], str]
    done: Callable[[MediaPocketSandbox, dict[str, Any]], bool]
    repeat_status: int
    first_error: type[MediaPocketError]


def _asset(sb: MediaPocketSandbox) -> dict[str, Any]:
    return {"asset": sb.state.add_asset(title="delete me")["id"]}


def _assigned_asset(sb: MediaPocketSandbox) -> dict[str, Any]:
    project = sb.state.add_project(title="parent")["id"]
    asset = sb.state.add_asset(title="child")["id"]
    sb.state.assign("Asset", asset, project, sb.state.default_user_id)
    return {"asset": asset, "project": project}


def _assigned_project(sb: MediaPocketSandbox) -> dict[str, Any]:
    parent = sb.state.add_project(title="parent")["id"]
    child = sb.state.add_project(title="child")["id"]
    sb.state.assign("Project", child, parent, sb.state.default_user_id)
    return {"project": child}


def _asset_with_media(sb: MediaPocketSandbox) -> dict[str, Any]:
    asset = sb.state.add_asset(title="with media")["id"]
    sb.state.add_media(asset, "clip.mp4", processed=True, file_url="https://media.example.com/clip.mp4")
    return {"asset": asset}


def _asset_comment(sb: MediaPocketSandbox) -> dict[str, Any]:
    asset = sb.state.add_asset(title="commented")["id"]
    return {"asset": asset, "comment": sb.state.add_comment("Asset", asset, "to delete")["id"]}


def _project_comment(sb: MediaPocketSandbox) -> dict[str, Any]:
    project = sb.state.add_project(title="commented")["id"]
    return {"project": project, "comment": sb.state.add_comment("Project", project, "to delete")["id"]}


def _project(sb: MediaPocketSandbox) -> dict[str, Any]:
    return {"project": sb.state.add_project(title="delete me")["id"]}


def _project_member(sb: MediaPocketSandbox) -> dict[str, Any]:
    project = sb.state.add_project(title="team")["id"]
    user = sb.state.add_user(email="member@example.com")
    sb.state.add_project_user(project, user)
    return {"project": project, "user": user}


def _gone(get: Callable[[MediaPocketSandbox, dict[str, Any]], Any]) -> Callable[[MediaPocketSandbox, dict[str, Any]], bool]:
    def check(sb: MediaPocketSandbox, ids: dict[str, Any]) -> bool:
        try:
            get(sb, ids)
        except Exception:  # the sandbox state raises its ApiError(404)
            return True
        return False

    return check


def _asset_gone(sb: MediaPocketSandbox, ids: dict[str, Any]) -> Any:
    return sb.state.asset(ids["asset"])


CASES = [
    Case(
        "delete asset", _asset,
        lambda h, ids: h.delete_asset(ids["asset"]),
        lambda h, ids: h.adelete_asset(ids["asset"]),
        lambda ids: f"/api/v2/assets/{ids['asset']}",
        _gone(_asset_gone), 404, MediaPocketNotFoundError,
    ),
    Case(
        "unassign asset", _assigned_asset,
        lambda h, ids: h.unassign_asset(ids["asset"]),
        lambda h, ids: h.aunassign_asset(ids["asset"]),
        lambda ids: f"/api/v2/assets/{ids['asset']}/unassign",
        lambda sb, ids: sb.state.asset(ids["asset"])["project_id"] is None, 200, MediaPocketOperationError,
    ),
    Case(
        "unassign project", _assigned_project,
        lambda h, ids: h.unassign_project(ids["project"]),
        lambda h, ids: h.aunassign_project(ids["project"]),
        lambda ids: f"/api/v2/projects/{ids['project']}/unassign",
        lambda sb, ids: sb.state.project(ids["project"])["project_id"] is None, 200, MediaPocketOperationError,
    ),
    Case(
        "remove media", _asset_with_media,
        lambda h, ids: h.remove_media(ids["asset"]),
        lambda h, ids: h.aremove_media(ids["asset"]),
        lambda ids: f"/api/v2/assets/{ids['asset']}/media",
        lambda sb, ids: sb.state.asset(ids["asset"])["media_type"] == "placeholder", 200, MediaPocketOperationError,
    ),
    Case(
        "delete asset comment", _asset_comment,
        lambda h, ids: h.delete_asset_comment(ids["asset"], ids["comment"]),
        lambda h, ids: h.adelete_asset_comment(ids["asset"], ids["comment"]),
        lambda ids: f"/api/v2/assets/{ids['asset']}/comments/{ids['comment']}",
        lambda sb, ids: not any(c["id"] == ids["comment"] for c in sb.state.comments_of("Asset", ids["asset"])),
        404, MediaPocketNotFoundError,
    ),
    Case(
        "delete project comment", _project_comment,
        lambda h, ids: h.delete_project_comment(ids["project"], ids["comment"]),
        lambda h, ids: h.adelete_project_comment(ids["project"], ids["comment"]),
        lambda ids: f"/api/v2/projects/{ids['project']}/comments/{ids['comment']}",
        lambda sb, ids: not any(c["id"] == ids["comment"] for c in sb.state.comments_of("Project", ids["project"])),
        404, MediaPocketNotFoundError,
    ),
    Case(
        "delete project", _project,
        lambda h, ids: h.delete_project(ids["project"]),
        lambda h, ids: h.adelete_project(ids["project"]),
        lambda ids: f"/api/v2/projects/{ids['project']}",
        _gone(lambda sb, ids: sb.state.project(ids["project"])), 404, MediaPocketNotFoundError,
    ),
    Case(
        "remove project user", _project_member,
        lambda h, ids: h.remove_project_user(ids["project"], ids["user"]),
        lambda h, ids: h.aremove_project_user(ids["project"], ids["user"]),
        lambda ids: f"/api/v2/projects/{ids['project']}/users/{ids['user']}",
        lambda sb, ids: all(u["id"] != ids["user"] for u in sb.state.project_users(ids["project"])),
        400, MediaPocketValidationError,
    ),
]


def _deletes(sb: MediaPocketSandbox, path: str) -> list[Any]:
    return [r for r in sb.requests if r.method == "DELETE" and r.path == path]


@pytest.mark.parametrize("case", CASES, ids=[c.name for c in CASES])
def test_delete_after_lost_answer_is_a_success(sandbox: MediaPocketSandbox, case: Case) -> None:
    ids = case.setup(sandbox)
    sandbox.inject("lost", method="DELETE", path_prefix=case.path(ids))
    with MediaPocketHook(**HOOK) as hook:
        case.call(hook, ids)  # must not raise: the lost attempt did the work
    assert case.done(sandbox, ids)
    sent = _deletes(sandbox, case.path(ids))
    assert [r.fault for r in sent] == ["lost", None]
    assert sent[1].status == case.repeat_status  # what the sandbox (like the API) answers a repeat


@pytest.mark.parametrize("case", CASES, ids=[c.name for c in CASES])
def test_async_delete_after_lost_answer_is_a_success(sandbox: MediaPocketSandbox, case: Case) -> None:
    ids = case.setup(sandbox)
    sandbox.inject("lost", method="DELETE", path_prefix=case.path(ids))

    async def main() -> None:
        hook = MediaPocketHook(**HOOK)
        try:
            await case.acall(hook, ids)
        finally:
            await hook.aclose()

    asyncio.run(main())
    assert case.done(sandbox, ids)
    assert [r.fault for r in _deletes(sandbox, case.path(ids))] == ["lost", None]


@pytest.mark.parametrize("case", CASES, ids=[c.name for c in CASES])
def test_first_attempt_finding_nothing_is_still_an_error(sandbox: MediaPocketSandbox, case: Case) -> None:
    ids = case.setup(sandbox)
    with MediaPocketHook(**HOOK) as hook:
        case.call(hook, ids)
        sandbox.clear_requests()
        with pytest.raises(case.first_error):
            case.call(hook, ids)
    assert len(_deletes(sandbox, case.path(ids))) == 1


def test_delete_after_a_refused_attempt_finding_nothing_is_an_error(sandbox: MediaPocketSandbox) -> None:
    # 429 means the server refused the request: it did not do the work, so a 404 after it is the truth.
    ids = _asset(sandbox)
    with MediaPocketHook(**HOOK) as hook:
        hook.delete_asset(ids["asset"])
        sandbox.inject("429", method="DELETE", retry_after=0)
        with pytest.raises(MediaPocketNotFoundError, match="asset not found"):
            hook.delete_asset(ids["asset"])


def test_comment_404_for_a_missing_asset_is_not_taken_for_done(sandbox: MediaPocketSandbox) -> None:
    # After a lost answer only "Couldn't find Comment" means the comment is gone; "asset not found"
    # says the caller named the wrong asset, which no earlier attempt can have caused.
    sandbox.inject("lost", method="DELETE")
    with MediaPocketHook(**HOOK) as hook, pytest.raises(MediaPocketNotFoundError, match="asset not found"):
        hook.delete_asset_comment("no-such-asset", 1)
