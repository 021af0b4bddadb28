"""MediaPocketHook against the sandbox over loopback: retries, lost answers, timeouts, paging, async, secrets."""

from __future__ import annotations

import asyncio
import json
import logging
from typing import Any

import pytest

from airflow_provider_mediapocket.exceptions import (
    MediaPocketError,
    MediaPocketNotFoundError,
    MediaPocketOperationError,
    MediaPocketTransportError,
    MediaPocketValidationError,
)
from airflow_provider_mediapocket.hooks.mediapocket import MediaPocketHook
from airflow_provider_mediapocket.sandbox import MediaPocketSandbox
from airflow_provider_mediapocket.sandbox.pytest_plugin import sandbox_as_connection


def calls(sandbox: MediaPocketSandbox, method: str, prefix: str) -> list[Any]:
    return [r for r in sandbox.requests if r.method == method and r.path.startswith(prefix)]


@pytest.fixture
def hook(mediapocket_sandbox: MediaPocketSandbox) -> MediaPocketHook:
    return MediaPocketHook(retry_backoff=0.01)


def test_get_survives_503_then_429_then_succeeds(mediapocket_sandbox: MediaPocketSandbox, hook: MediaPocketHook) -> None:
    asset = hook.create_asset("Retry me")
    mediapocket_sandbox.clear_requests()
    mediapocket_sandbox.inject("503", "429", method="GET", path_prefix="/api/v2/assets/", retry_after=0)
    assert hook.get_asset(asset.id).title == "Retry me"
    seen = calls(mediapocket_sandbox, "GET", f"/api/v2/assets/{asset.id}")
    assert [(r.status, r.fault) for r in seen] == [(503, "503"), (429, "429"), (200, None)]


@pytest.mark.parametrize(("action", "status"), [("missing", 404), ("invalid_cursor", 422)])
def test_404_and_422_are_not_retried(
    mediapocket_sandbox: MediaPocketSandbox, hook: MediaPocketHook, action: str, status: int
) -> None:
    asset = hook.create_asset("x")
    mediapocket_sandbox.clear_requests()
    with pytest.raises(MediaPocketError) as info:
        if action == "missing":
            hook.get_asset("no-such-asset")
        else:
            hook.get_asset_history(asset.id, "not-a-cursor")
    assert info.value.status == status
    assert len(mediapocket_sandbox.requests) == 1


def test_create_is_not_repeated_when_the_answer_is_lost(
    mediapocket_sandbox: MediaPocketSandbox, hook: MediaPocketHook
) -> None:
    before = set(mediapocket_sandbox.state.assets)
    mediapocket_sandbox.inject("lost", method="POST", path_prefix="/api/v2/assets")
    with pytest.raises(MediaPocketTransportError) as info:
        hook.create_asset("Only once", external_id="ext-once")
    assert info.value.request_sent is True
    assert len(calls(mediapocket_sandbox, "POST", "/api/v2/assets")) == 1
    created = set(mediapocket_sandbox.state.assets) - before
    assert len(created) == 1  # applied once by the server, never twice


def test_create_is_retried_after_429(mediapocket_sandbox: MediaPocketSandbox, hook: MediaPocketHook) -> None:
    before = set(mediapocket_sandbox.state.assets)
    mediapocket_sandbox.inject("429", method="POST", path_prefix="/api/v2/assets", retry_after=0)
    hook.create_asset("After a 429")
    assert len(calls(mediapocket_sandbox, "POST", "/api/v2/assets")) == 2
    assert len(set(mediapocket_sandbox.state.assets) - before) == 1


def test_start_dag_action_recovers_a_lost_answer(mediapocket_sandbox: MediaPocketSandbox, hook: MediaPocketHook) -> None:
    asset = hook.create_asset("Action target")
    mediapocket_sandbox.inject("lost", method="POST", path_prefix=f"/api/v2/assets/{asset.id}/dag_actions")
    run = hook.start_dag_action(asset.id, 1)
    runs = hook.list_dag_action_runs(asset.id)
    assert [str(r.id) for r in runs] == [str(run.id)]
    assert len(calls(mediapocket_sandbox, "POST", f"/api/v2/assets/{asset.id}/dag_actions")) == 1


def test_start_dag_action_resends_after_a_5xx_that_started_nothing(
    mediapocket_sandbox: MediaPocketSandbox, hook: MediaPocketHook
) -> None:
    asset = hook.create_asset("Action target")
    mediapocket_sandbox.inject("500", method="POST", path_prefix=f"/api/v2/assets/{asset.id}/dag_actions")
    run = hook.start_dag_action(asset.id, 2)
    assert run.status == "running"
    assert len(hook.list_dag_action_runs(asset.id)) == 1
    assert len(calls(mediapocket_sandbox, "POST", f"/api/v2/assets/{asset.id}/dag_actions")) == 2


def test_timeout_then_retry(mediapocket_sandbox: MediaPocketSandbox) -> None:
    hook = MediaPocketHook(timeout=0.3, retry_limit=0)
    asset = hook.create_asset("slow")
    mediapocket_sandbox.inject("delay", method="GET", path_prefix="/api/v2/assets/", delay=1.5)
    with pytest.raises(MediaPocketTransportError, match="ReadTimeout"):
        hook.get_asset(asset.id)
    retrying = MediaPocketHook(timeout=0.3, retry_limit=1, retry_backoff=0.01)
    mediapocket_sandbox.inject("delay", method="GET", path_prefix="/api/v2/assets/", delay=1.5)
    assert retrying.get_asset(asset.id).id == asset.id


def test_history_cursor_is_followed_to_the_end(monkeypatch: pytest.MonkeyPatch) -> None:
    with sandbox_as_connection(monkeypatch, history_page_size=2) as sandbox:
        hook = MediaPocketHook()
        asset = hook.create_asset("History")
        for n in range(4):
            hook.update_asset(asset.id, description=f"edit {n}")
        hook.create_asset_comment(asset.id, "a comment")
        sandbox.clear_requests()
        events = list(hook.iter_asset_history(asset.id))
        types = [e.event_type for e in events]
        assert types.count("ASSET_EDITED_METADATA") == 4
        assert "ASSET_ADDED" in types and "ASSET_ADDED_COMMENT" in types
        assert len(sandbox.requests) == 3  # 6 events, 2 a page
        assert len({e.id for e in events}) == len(events)

        async def collect() -> list[Any]:
            async_hook = MediaPocketHook()
            try:
                return [e.id async for e in async_hook.aiter_asset_history(asset.id)]
            finally:
                await async_hook.aclose()

        assert asyncio.run(collect()) == [e.id for e in events]


def test_async_twins_against_the_sandbox(mediapocket_sandbox: MediaPocketSandbox) -> None:
    async def main() -> tuple[Any, ...]:
        hook = MediaPocketHook()
        try:
            project = await hook.acreate_project("Async project")
            asset = await hook.acreate_project_asset(
                project.id, "Async asset", file_url="https://cdn.example.com/a/clip.mov"
            )
            run = await hook.astart_dag_action(asset.id, 1)
            fetched = await hook.aget_dag_action_run(asset.id, str(run.id))
            runs = await hook.alist_dag_action_runs(asset.id)
            again = await hook.aget_asset(asset.id)
            found = await hook.afind_project_asset(project.id, external_id="nope")
            return asset, fetched, runs, again, found
        finally:
            await hook.aclose()

    asset, fetched, runs, again, found = asyncio.run(main())
    assert asset.media_type == "processing" and asset.original_filename == "clip.mov"
    assert fetched.status == "running" and [r.id for r in runs] == [fetched.id]
    assert again.id == asset.id and found is None


def test_media_lifecycle_and_quirks(mediapocket_sandbox: MediaPocketSandbox, hook: MediaPocketHook) -> None:
    asset = hook.create_asset("Lifecycle")
    with pytest.raises(MediaPocketOperationError, match="No media found on this asset."):
        hook.remove_media(asset.id)
    assert hook.add_media(asset.id, "https://cdn.example.com/photos/sunset%20big.JPG") == "ok"
    processing = hook.get_asset(asset.id)
    assert (processing.media_type, processing.original_filename) == ("processing", "sunset big.JPG")
    mediapocket_sandbox.state.advance(5)
    assert hook.get_asset(asset.id).media_type == "image"
    with pytest.raises(MediaPocketOperationError, match="Project not found."):
        hook.assign_asset(asset.id, "no-such-project")
    project = hook.create_project("Home")
    assert hook.assign_asset(asset.id, project.id) == "ok"
    assert hook.find_project_asset(project.id, external_id="none") is None
    hook.update_asset(asset.id, external_id="ext-42")
    found = hook.find_project_asset(project.id, external_id="ext-42")
    assert found is not None and found.id == asset.id
    assert hook.trash_asset(asset.id) == "ok"
    assert hook.get_asset(asset.id).is_trashed
    with pytest.raises(MediaPocketNotFoundError):
        hook.get_dag_action_run(asset.id, 999)


BAD_CALLS: list[tuple[str, Any]] = [
    ("title", lambda h: h.create_asset("x" * 256)),
    ("title", lambda h: h.create_asset("   ")),
    ("tags", lambda h: h.create_asset("ok", tags="not-a-list")),
    ("tags.0", lambda h: h.create_asset("ok", tags=[1])),
    ("media_type", lambda h: h.create_asset("ok", media_type="image")),
    ("external_id", lambda h: h.create_asset("ok", external_id="")),
    ("file_url", lambda h: h.add_media("a1", "ftp://x/y.jpg")),
    ("file_url", lambda h: h.add_media("a1", "/local/file.jpg")),
    ("filename", lambda h: h.add_media("a1", "https://cdn.example.com/")),
    ("asset_id", lambda h: h.get_asset("")),
    ("asset_id", lambda h: h.get_asset(None)),
    ("dag_action_id", lambda h: h.start_dag_action("a1", " ")),
    ("comment", lambda h: h.create_asset_comment("a1", "")),
    ("email", lambda h: h.add_project_guest("p1", "not-an-email")),
    ("file_url' and 's3_key", lambda h: h.create_project_asset("p1", "t", file_url="https://x/y.jpg", s3_key="k")),
]


@pytest.mark.parametrize(("parameter", "bad_call"), BAD_CALLS, ids=[f"{i}-{p}" for i, (p, _) in enumerate(BAD_CALLS)])
def test_bad_input_is_refused_before_sending(
    mediapocket_sandbox: MediaPocketSandbox, hook: MediaPocketHook, parameter: str, bad_call: Any
) -> None:
    mediapocket_sandbox.clear_requests()
    with pytest.raises(MediaPocketValidationError) as info:
        bad_call(hook)
    assert f"Invalid parameter{'s' if ' and ' in parameter else ''} '{parameter}'" in str(info.value)
    assert info.value.status is None
    assert mediapocket_sandbox.requests == []


def test_test_connection(mediapocket_sandbox: MediaPocketSandbox, monkeypatch: pytest.MonkeyPatch) -> None:
    assert MediaPocketHook().test_connection() == (True, f"Connected to Media Pocket at {mediapocket_sandbox.base_url}")
    monkeypatch.setenv("AIRFLOW_CONN_WRONG", mediapocket_sandbox.connection(api_key="wrong-key-9d8e"))
    ok, message = MediaPocketHook("wrong").test_connection()
    assert not ok and "HTTP 401: Unauthorized" in message and "wrong-key-9d8e" not in message
    assert "API key was rejected" in message and "API Key field" in message


def test_the_api_key_never_leaks(
    mediapocket_sandbox: MediaPocketSandbox, caplog: pytest.LogCaptureFixture, monkeypatch: pytest.MonkeyPatch
) -> None:
    key = mediapocket_sandbox.api_key
    caplog.set_level(logging.DEBUG)
    texts: list[str] = []
    hook = MediaPocketHook(retry_backoff=0.01)
    asset = hook.create_asset("secret hygiene")
    mediapocket_sandbox.inject("503", "drop", method="GET", path_prefix="/api/v2/assets/")
    hook.get_asset(asset.id)
    for bad in (lambda: hook.get_asset("missing"), lambda: hook.assign_asset(asset.id, "nope"),
                lambda: hook.create_asset("x" * 300)):
        with pytest.raises(MediaPocketError) as info:
            bad()
        texts += [str(info.value), repr(info.value), repr(vars(info.value))]
    monkeypatch.setenv("AIRFLOW_CONN_NOKEY", json.dumps({"conn_type": "mediapocket", "host": "http://127.0.0.1:9"}))
    with pytest.raises(MediaPocketError) as no_key:
        MediaPocketHook("nokey").get_settings()
    texts += [str(no_key.value), repr(hook), repr(hook.get_settings()), repr(hook.get_client()), json.dumps(hook.hook_kwargs())]
    texts += [record.getMessage() for record in caplog.records]
    texts += [repr(r) for r in mediapocket_sandbox.requests]
    assert any("retry" in t for t in texts)  # the retries were logged, so the logs were really captured
    assert all(key not in text for text in texts)
