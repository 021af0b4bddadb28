"""Nothing lost: re-use by external_id checks the asset it finds, and bulk ingest saves as it goes.

Media Pocket creates an asset in a project even when it rejects the media URL (HTTP 200 with an error
body); the next attempt's "External id has already been taken" must not report that media-less asset as
done. A bulk ingest killed half-way by ``execution_timeout`` must leave its progress in
``task_state_store`` so that the retry finishes the rest exactly once.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterator
from typing import Any

import pytest
from airflow.sdk.exceptions import AirflowTaskTimeout

from airflow_provider_mediapocket.exceptions import MediaPocketOperationError
from airflow_provider_mediapocket.operators.mediapocket import (
    MediaPocketBulkIngestOperator,
    MediaPocketCreateAssetOperator,
)
from airflow_provider_mediapocket.sandbox import MediaPocketSandbox
from airflow_provider_mediapocket.sandbox import server as sandbox_server
from tests.reliability._helpers_kill import die_on_send, execution_timeout, is_request, is_request_to, on_request
from tests.triggers._support import FakeStateStore, make_context

FAST = {"retry_backoff": 0.01}
FLAKY_HOST = "flaky-cdn.example.com"


@pytest.fixture
def refusing(mediapocket_sandbox: MediaPocketSandbox, monkeypatch: pytest.MonkeyPatch) -> Iterator[list[bool]]:
    """While ``refusing[0]`` is true, the sandbox rejects media URLs on FLAKY_HOST (as Media Pocket rejects a
    URL it cannot fetch at the moment): a project asset is then created without its media."""
    original = sandbox_server.is_http_url
    state = [True]
    monkeypatch.setattr(sandbox_server, "is_http_url", lambda url: original(url) and not (
        state[0] and FLAKY_HOST in url))
    yield state


def asset_by_external_id(sandbox: MediaPocketSandbox, external_id: str) -> dict[str, Any]:
    [asset] = [a for a in sandbox.state.assets.values() if a.get("external_id") == external_id]
    return asset


# ------------------------------------------------------------------ item 1: re-use checks what it finds


def test_create_asset_reuse_adds_the_media_an_earlier_attempt_lost(
    mediapocket_sandbox: MediaPocketSandbox, refusing: list[bool]
) -> None:
    project = mediapocket_sandbox.state.seed_project_id
    kwargs: dict[str, Any] = {"task_id": "a", "title": "Flaky", "project_id": project, "external_id": "flaky-1",
                              "file_url": f"https://{FLAKY_HOST}/clips/flaky.mp4", "hook_params": FAST}
    with pytest.raises(MediaPocketOperationError, match="was created in project"):
        MediaPocketCreateAssetOperator(**kwargs).execute(make_context())
    assert asset_by_external_id(mediapocket_sandbox, "flaky-1")["original_filename"] is None
    refusing[0] = False
    # The next attempt (a new DAG run, or a retry without task_state_store) meets the taken external_id.
    result = MediaPocketCreateAssetOperator(**kwargs).execute(make_context())
    stored = asset_by_external_id(mediapocket_sandbox, "flaky-1")
    assert result["id"] == stored["id"]
    assert result["original_filename"] == stored["original_filename"] == "flaky.mp4"
    assert mediapocket_sandbox.state.media_of(stored["id"])


def test_create_asset_reuse_with_another_file_fails_naming_both(mediapocket_sandbox: MediaPocketSandbox) -> None:
    project = mediapocket_sandbox.state.seed_project_id
    common: dict[str, Any] = {"task_id": "a", "title": "Versioned", "project_id": project,
                              "external_id": "versioned-1", "hook_params": FAST}
    MediaPocketCreateAssetOperator(file_url="https://media.example.com/v1/cut.mp4", filename="cut-v1.mp4",
                                   **common).execute(make_context())
    with pytest.raises(MediaPocketOperationError, match="cut-v1.mp4") as caught:
        MediaPocketCreateAssetOperator(file_url="https://media.example.com/v2/cut-v2.mp4", **common).execute(
            make_context()
        )
    asset = asset_by_external_id(mediapocket_sandbox, "versioned-1")
    assert asset["id"] in str(caught.value) and "cut-v2.mp4" in str(caught.value)
    assert asset["original_filename"] == "cut-v1.mp4"


def test_bulk_reuse_adds_lost_media_and_refuses_another_file(
    mediapocket_sandbox: MediaPocketSandbox, refusing: list[bool]
) -> None:
    project = mediapocket_sandbox.state.seed_project_id
    items = [
        {"title": "Lost media", "file_url": f"https://{FLAKY_HOST}/a/lost.jpg", "external_id": "b-lost"},
        {"title": "Fine", "file_url": "https://media.example.com/a/fine.jpg", "external_id": "b-fine"},
    ]
    first = MediaPocketBulkIngestOperator(task_id="b", items=items, project_id=project, hook_params=FAST,
                                          allow_partial_success=True).execute(make_context())
    assert [r["status"] for r in first] == ["failed", "created"]
    refusing[0] = False
    changed = [items[0], {**items[1], "file_url": "https://media.example.com/b/other.jpg"}]
    second = MediaPocketBulkIngestOperator(task_id="b", items=changed, project_id=project, hook_params=FAST,
                                           allow_partial_success=True).execute(make_context())
    assert second[0]["status"] == "existing" and second[0]["error"] is None
    assert asset_by_external_id(mediapocket_sandbox, "b-lost")["original_filename"] == "lost.jpg"
    assert second[1]["status"] == "failed" and "other.jpg" in second[1]["error"]
    assert asset_by_external_id(mediapocket_sandbox, "b-fine")["original_filename"] == "fine.jpg"


# ------------------------------------------------------------------ item 11: bulk progress survives a kill


def manifest(count: int, prefix: str) -> list[dict[str, Any]]:
    return [{"title": f"{prefix} {n}", "file_url": f"https://media.example.com/{prefix}/{n}.jpg",
             "external_id": f"{prefix}-{n:03d}"} for n in range(count)]


def assert_exactly_once(sandbox: MediaPocketSandbox, prefix: str, count: int) -> None:
    made = Counter(a["external_id"] for a in sandbox.state.assets.values()
                   if (a.get("external_id") or "").startswith(prefix))
    assert made == {f"{prefix}-{n:03d}": 1 for n in range(count)}
    assert all(a["original_filename"] for a in sandbox.state.assets.values()
               if (a.get("external_id") or "").startswith(prefix))


def test_bulk_killed_half_way_keeps_its_progress(
    mediapocket_sandbox: MediaPocketSandbox, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Without a project (no lookup by external_id), 16 of 30 items are done when execution_timeout kills
    the try; the retry skips those 16 and creates the other 14: 30 assets, none twice."""
    store = FakeStateStore()
    kwargs: dict[str, Any] = {"task_id": "b", "items": manifest(30, "kill"), "max_concurrency": 1,
                              "hook_params": FAST}
    with monkeypatch.context() as patch:
        die_on_send(patch, is_request("POST", "/api/v2/assets"), nth=17)
        with pytest.raises(AirflowTaskTimeout):
            MediaPocketBulkIngestOperator(**kwargs).execute(make_context(store))
    assert len(store.get("mediapocket_bulk_created")) == 16
    result = MediaPocketBulkIngestOperator(**kwargs).execute(make_context(store))
    assert Counter(r["status"] for r in result) == {"existing": 16, "created": 14}
    assert_exactly_once(mediapocket_sandbox, "kill", 30)


def test_bulk_killed_between_asset_and_media_resumes_the_asset(
    mediapocket_sandbox: MediaPocketSandbox, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Killed after an asset was created but before its media was added: the retry adds the media to that
    asset instead of failing on its taken external_id."""
    store = FakeStateStore()
    kwargs: dict[str, Any] = {"task_id": "b", "items": manifest(5, "half"), "max_concurrency": 1,
                              "hook_params": FAST}
    with monkeypatch.context() as patch:
        die_on_send(patch, is_request_to("POST", r"/api/v2/assets/[^/]+/media"), nth=3)
        with pytest.raises(AirflowTaskTimeout):
            MediaPocketBulkIngestOperator(**kwargs).execute(make_context(store))
    assert list(store.get("mediapocket_bulk_pending")) == ["half-002"]
    MediaPocketBulkIngestOperator(**kwargs).execute(make_context(store))
    assert_exactly_once(mediapocket_sandbox, "half", 5)


def test_bulk_in_project_killed_with_creates_in_flight_finishes_exactly_once(
    mediapocket_sandbox: MediaPocketSandbox, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Killed with 7 more creates in flight (some applied, their answers never read): the retry finds those
    by external_id and creates only what is missing."""
    project = mediapocket_sandbox.state.seed_project_id
    store = FakeStateStore()
    kwargs: dict[str, Any] = {"task_id": "b", "items": manifest(30, "proj"), "project_id": project,
                              "max_concurrency": 8, "hook_params": FAST}
    with monkeypatch.context() as patch:
        die_on_send(patch, is_request_to("POST", r"/api/v2/projects/[^/]+/assets"), nth=16)
        with pytest.raises(AirflowTaskTimeout):
            MediaPocketBulkIngestOperator(**kwargs).execute(make_context(store))
    saved = store.get("mediapocket_bulk_created")
    assert 0 < len(saved) < 30
    result = MediaPocketBulkIngestOperator(**kwargs).execute(make_context(store))
    assert all(r["status"] in ("created", "existing") for r in result)
    assert_exactly_once(mediapocket_sandbox, "proj", 30)


def test_bulk_execution_timeout_signal_ends_the_try_and_keeps_progress(
    mediapocket_sandbox: MediaPocketSandbox, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The real mechanism: Airflow's execution_timeout raises AirflowTaskTimeout from a SIGALRM handler.
    Raised inside asyncio's callbacks it would be swallowed and the ingest would go on; the operator
    routes the signal through its loop, so the try ends with AirflowTaskTimeout and its progress saved."""
    store = FakeStateStore()
    kwargs: dict[str, Any] = {"task_id": "b", "items": manifest(30, "alarm"), "max_concurrency": 1,
                              "hook_params": FAST}
    with execution_timeout() as kill, monkeypatch.context() as patch:
        on_request(mediapocket_sandbox, patch, is_request("POST", "/api/v2/assets"), kill, nth=17,
                   apply=False, hold_until=kill.fired)
        with pytest.raises(AirflowTaskTimeout):
            MediaPocketBulkIngestOperator(**kwargs).execute(make_context(store))
    assert len(store.get("mediapocket_bulk_created")) == 16
    result = MediaPocketBulkIngestOperator(**kwargs).execute(make_context(store))
    assert Counter(r["status"] for r in result) == {"existing": 16, "created": 14}
    assert_exactly_once(mediapocket_sandbox, "alarm", 30)
