"""The sandbox state takes its one lock at the boundary: once per request, once per façade call."""

from __future__ import annotations

import threading
from types import TracebackType

import httpx
import pytest

from airflow_provider_mediapocket.sandbox import MediaPocketSandbox


class CountingLock:
    """A re-entrant lock that counts how often it is entered."""

    def __init__(self) -> None:
        self._lock = threading.RLock()
        self.entered = 0

    def __enter__(self) -> CountingLock:
        self._lock.acquire()
        self.entered += 1
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self._lock.release()


@pytest.fixture
def lock(mediapocket_sandbox: MediaPocketSandbox) -> CountingLock:
    counting = CountingLock()
    mediapocket_sandbox.state.lock = counting  # type: ignore[assignment]
    return counting


@pytest.mark.parametrize(
    ("method", "path", "body"),
    [
        # creates an asset, attaches media (an ingest event), answers with the stored asset
        ("POST", "/api/v2/projects/{project}/assets",
         {"title": "t", "url": {"file_url": "https://x.test/a.png", "filename": "a.png"}}),
        ("GET", "/api/v2/projects/{project}/assets", None),  # children, stats and media sizes
        ("POST", "/api/v2/projects/{project}/guests", {"email": "guest@example.com"}),  # user, member, event
        ("GET", "/api/v2/assets/{asset}/dag_action_runs", None),
    ],
)  # fmt: skip
def test_a_request_takes_the_lock_once_for_the_key_and_once_for_the_handler(
    mediapocket_sandbox: MediaPocketSandbox,
    client: httpx.Client,
    lock: CountingLock,
    method: str,
    path: str,
    body: dict[str, object] | None,
) -> None:
    state = mediapocket_sandbox.state
    asset = state.add_asset(title="a", project_id=state.seed_project_id)["id"]
    state.start_run(asset, 1)
    lock.entered = 0
    response = client.request(method, path.format(project=state.seed_project_id, asset=asset), json=body)
    assert response.status_code == 200, response.text
    assert lock.entered == 2


def test_a_facade_call_takes_the_lock_once(mediapocket_sandbox: MediaPocketSandbox, lock: CountingLock) -> None:
    state = mediapocket_sandbox.state
    project = state.add_project(title="p")["id"]  # records PROJECT_ADDED, links the owner (USER_LINKED)
    assert lock.entered == 1
    state.add_media(state.add_asset(title="a", project_id=project)["id"], "a.png", processed=True)
    assert lock.entered == 3
