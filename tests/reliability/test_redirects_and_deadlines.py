"""Issue 7 item 19 (transport parts): redirects, and waits that overshoot their deadline.

- A 301/308 used to give "unexpected body: TypeError". A GET now follows a redirect within the same
  origin (at most a few times); any other verb, another host, or a loop fails naming the ``Location``.
- A request used to run for its whole timeout even when the wait's deadline was nearer: a trigger
  whose deadline is 1 s away, polling a server that answers after 10 s, reported only after 10 s.
  Every request (and retry wait) is now bounded by the time left before the deadline.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Iterator
from typing import Any

import pytest

from airflow_provider_mediapocket.exceptions import MediaPocketBadResponseError, MediaPocketNetworkError
from airflow_provider_mediapocket.hooks import _api
from airflow_provider_mediapocket.hooks.mediapocket import MediaPocketHook, request_deadline
from airflow_provider_mediapocket.sandbox import MediaPocketSandbox, RawReply
from airflow_provider_mediapocket.triggers.mediapocket import MediaPocketAssetTrigger, MediaPocketDagActionRunTrigger
from tests.reliability._helpers_faults import running_sandbox
from tests.triggers._support import first_event

HOOK = {"retry_backoff": 0.01, "retry_limit": 2}


@pytest.fixture
def sandbox(monkeypatch: pytest.MonkeyPatch) -> Iterator[MediaPocketSandbox]:
    with running_sandbox(monkeypatch, media_processing_seconds=60.0, dag_action_run_seconds=60.0) as sb:
        yield sb


def moved(location: str, status: int = 301) -> RawReply:
    return RawReply(status, b"", None, (("Location", location),))


# -------------------------------------------------------------------------------------------- redirects


@pytest.mark.parametrize("status", [301, 302, 307, 308])
def test_get_follows_a_redirect_within_the_api(sandbox: MediaPocketSandbox, status: int) -> None:
    asset_id = str(sandbox.state.add_asset(title="moved")["id"])
    sandbox.inject("raw", method="GET", path_prefix="/api/v2/assets/old-id", reply=moved(
        f"/api/v2/assets/{asset_id}", status))
    sandbox.inject("raw", method="GET", path_prefix="/api/v2/assets/old-id", reply=moved(
        f"{sandbox.base_url}/api/v2/assets/{asset_id}", status))
    with MediaPocketHook(**HOOK) as hook:
        assert hook.get_asset("old-id").id == asset_id  # relative Location
        assert hook.get_asset("old-id").id == asset_id  # absolute Location, same origin

    async def main() -> str:
        hook = MediaPocketHook(**HOOK)
        try:
            return (await hook.aget_asset("old-id")).id
        finally:
            await hook.aclose()

    sandbox.inject("raw", method="GET", path_prefix="/api/v2/assets/old-id", reply=moved(
        f"/api/v2/assets/{asset_id}", status))
    assert asyncio.run(main()) == asset_id
    gets = [r.path for r in sandbox.requests if r.method == "GET"]
    assert gets == ["/api/v2/assets/old-id", f"/api/v2/assets/{asset_id}"] * 3


def test_redirect_keeps_its_own_query_string(sandbox: MediaPocketSandbox) -> None:
    asset_id = str(sandbox.state.add_asset(title="moved")["id"])
    sandbox.inject("raw", method="GET", reply=moved(f"/api/v2/assets/{asset_id}/media?include_locations=true"))
    with MediaPocketHook(**HOOK) as hook:
        assert hook.list_media(asset_id) == []
    assert sandbox.requests[-1].query == {"include_locations": "true"}


def test_delete_redirect_is_not_followed_and_names_the_location(sandbox: MediaPocketSandbox) -> None:
    asset_id = str(sandbox.state.add_asset(title="kept")["id"])
    sandbox.inject("raw", method="DELETE", reply=moved(f"/v3/assets/{asset_id}?sig=secret-token", 308))
    with MediaPocketHook(**HOOK) as hook, pytest.raises(MediaPocketBadResponseError) as info:
        hook.delete_asset(asset_id)
    message = str(info.value)
    assert f"HTTP 308 redirecting to {sandbox.base_url}/v3/assets/{asset_id}; a DELETE is not re-sent" in message
    assert "secret-token" not in message and not info.value.transient
    assert info.value.location == f"{sandbox.base_url}/v3/assets/{asset_id}"
    assert [r.method for r in sandbox.requests] == ["DELETE"]
    assert sandbox.state.asset(asset_id)["id"] == asset_id  # nothing was deleted


def test_redirect_to_another_host_is_not_followed(sandbox: MediaPocketSandbox) -> None:
    # Following it would send the X-API-KEY header to that host.
    sandbox.inject("raw", method="GET", reply=moved("https://elsewhere.example.com/api/v2/assets/a1?x=1"))
    with MediaPocketHook(**HOOK) as hook, pytest.raises(MediaPocketBadResponseError) as info:
        hook.get_asset("a1")
    assert "redirecting to https://elsewhere.example.com/api/v2/assets/a1, another host" in str(info.value)
    assert len(sandbox.requests) == 1


def test_redirect_loop_ends(sandbox: MediaPocketSandbox) -> None:
    sandbox.inject(*["raw"] * 10, method="GET", reply=moved("/api/v2/assets/a1"))
    with MediaPocketHook(**HOOK) as hook, pytest.raises(MediaPocketBadResponseError, match="after 5 redirects"):
        hook.get_asset("a1")
    assert len(sandbox.requests) == 6


# -------------------------------------------------------------------------------------------- deadlines

SLOW = 10.0  # the server's answer comes this late
DEADLINE = 1.0  # the wait's deadline is this far away
MARGIN = 3.0  # generous: the wait must end near its deadline, long before the slow answer


def test_sync_request_is_bounded_by_the_deadline(sandbox: MediaPocketSandbox) -> None:
    asset_id = str(sandbox.state.add_asset(title="slow")["id"])
    sandbox.inject("slow", method="GET", delay=SLOW)
    began = time.monotonic()
    with (
        MediaPocketHook(timeout=30, **HOOK) as hook,
        request_deadline(time.time() + DEADLINE),
        pytest.raises(MediaPocketNetworkError, match="ReadTimeout"),
    ):
        hook.get_asset(asset_id)
    assert time.monotonic() - began < DEADLINE + MARGIN


def test_async_request_with_explicit_deadline(sandbox: MediaPocketSandbox) -> None:
    asset_id = str(sandbox.state.add_asset(title="slow")["id"])
    sandbox.inject("slow", method="GET", delay=SLOW)

    async def main() -> None:
        hook = MediaPocketHook(timeout=30, **HOOK)
        try:
            await hook.arun(_api.get_asset(asset_id), deadline=time.time() + DEADLINE)
        finally:
            await hook.aclose()

    began = time.monotonic()
    with pytest.raises(MediaPocketNetworkError, match="ReadTimeout"):
        asyncio.run(main())
    assert time.monotonic() - began < DEADLINE + MARGIN


def _trigger(kind: str, sandbox: MediaPocketSandbox) -> Any:
    asset_id = str(sandbox.state.add_asset(title="slow")["id"])
    end_time = time.time() + DEADLINE
    params = {"timeout": 30.0, **HOOK}
    if kind == "asset":
        sandbox.state.add_media(asset_id, "clip.mp4", file_url="https://media.example.com/clip.mp4")  # processing
        return MediaPocketAssetTrigger(asset_id=asset_id, end_time=end_time, poll_interval=0.2, hook_params=params)
    run = sandbox.state.start_run(asset_id, 1)  # runs 60 s
    return MediaPocketDagActionRunTrigger(asset_id=asset_id, dag_action_run_id=str(run["id"]), end_time=end_time,
                                          poll_interval=0.2, hook_params=params)


@pytest.mark.parametrize("kind", ["asset", "run"])
def test_trigger_reports_timeout_near_its_deadline_not_after_a_slow_answer(
    sandbox: MediaPocketSandbox, kind: str
) -> None:
    trigger = _trigger(kind, sandbox)
    sandbox.inject("slow", method="GET", delay=SLOW)
    began = time.monotonic()
    event = first_event(trigger, timeout=SLOW + 5)
    took = time.monotonic() - began
    assert event["status"] == "timeout", event
    assert took < DEADLINE + MARGIN < SLOW, f"the wait ended {took:.1f}s after it began"
