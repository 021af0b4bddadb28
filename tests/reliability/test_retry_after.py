"""Issue 7 item 12: a malformed ``Retry-After`` neither crashes nor hangs, and no wait outlasts its bound.

``Retry-After`` is taken only when it is a finite non-negative number of seconds or an HTTP date;
anything else (``soon``, ``nan``, ``inf``, ``-5``) falls back to the normal backoff. Every wait is
capped at the policy's cap and at the time left before the caller's deadline.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Iterator
from datetime import datetime, timedelta, timezone
from email.utils import format_datetime

import httpx
import pytest

from airflow_provider_mediapocket._transport import RetryPolicy, retry_after_seconds
from airflow_provider_mediapocket.exceptions import MediaPocketRateLimitError
from airflow_provider_mediapocket.hooks.mediapocket import MediaPocketHook, request_deadline
from airflow_provider_mediapocket.sandbox import MediaPocketSandbox
from airflow_provider_mediapocket.triggers.mediapocket import MediaPocketAssetTrigger, MediaPocketDagActionRunTrigger
from tests.reliability._helpers_faults import running_sandbox
from tests.triggers._support import first_event

HOOK = {"retry_backoff": 0.01, "retry_limit": 2}
PAST = "Wed, 21 Oct 2015 07:28:00 GMT"
FAR_FUTURE = format_datetime(datetime.now(timezone.utc) + timedelta(days=3), usegmt=True)
MALFORMED = ["soon", "nan", "inf", "-5", "1e3", "", "   ", "Thu, 99 Foo 2015 99:99:99 GMT"]
# Each of these must lead to a quick retry: the fallback backoff (0.01 s here) or 0 for a past date.
QUICK_RETRY = ["soon", "nan", "inf", "-5", "NaN", "Infinity", PAST]
FAST = 5.0


@pytest.fixture
def sandbox(monkeypatch: pytest.MonkeyPatch) -> Iterator[MediaPocketSandbox]:
    with running_sandbox(monkeypatch) as sb:
        yield sb


def header(value: str) -> httpx.Response:
    return httpx.Response(429, headers={"Retry-After": value})


@pytest.mark.parametrize("value", MALFORMED)
def test_malformed_values_are_ignored(value: str) -> None:
    assert retry_after_seconds(header(value)) is None


def test_well_formed_values() -> None:
    assert retry_after_seconds(header("7")) == 7.0
    assert retry_after_seconds(header("0")) == 0.0
    assert retry_after_seconds(header("2.5")) == 2.5
    assert retry_after_seconds(header(PAST)) == 0.0
    future = retry_after_seconds(header(FAR_FUTURE))
    assert future is not None and future > 86400


def test_policy_caps_every_wait_and_never_returns_a_non_finite_one() -> None:
    policy = RetryPolicy(retry_limit=5, backoff=1.0, max_backoff=4.0, max_retry_after=10.0)
    assert policy.delay(0, 3 * 86400.0) == 10.0
    for bad in (float("nan"), float("inf"), float("-inf")):
        assert 0.5 <= policy.delay(0, bad) <= 1.0  # the backoff, not the bad value
    assert policy.delay(500) <= 4.0  # a huge attempt number neither overflows nor exceeds the cap


@pytest.mark.parametrize("value", QUICK_RETRY)
def test_sync_429_with_odd_retry_after_is_retried_quickly(sandbox: MediaPocketSandbox, value: str) -> None:
    asset_id = str(sandbox.state.add_asset(title="limited")["id"])
    sandbox.inject("429", retry_after=value)
    began = time.monotonic()
    with MediaPocketHook(**HOOK) as hook:
        assert hook.get_asset(asset_id).id == asset_id
    assert time.monotonic() - began < FAST
    assert [r.status for r in sandbox.requests] == [429, 200]


@pytest.mark.parametrize("value", QUICK_RETRY)
def test_async_429_with_odd_retry_after_is_retried_quickly(sandbox: MediaPocketSandbox, value: str) -> None:
    asset_id = str(sandbox.state.add_asset(title="limited")["id"])
    sandbox.inject("429", retry_after=value)

    async def main() -> str:
        hook = MediaPocketHook(**HOOK)
        try:
            return (await hook.aget_asset(asset_id)).id
        finally:
            await hook.aclose()

    began = time.monotonic()
    assert asyncio.run(asyncio.wait_for(main(), FAST)) == asset_id
    assert time.monotonic() - began < FAST


@pytest.mark.parametrize("value", ["soon", "nan", "inf"])
def test_triggers_survive_malformed_retry_after(sandbox: MediaPocketSandbox, value: str) -> None:
    asset_id = str(sandbox.state.add_asset(title="limited")["id"])
    run = sandbox.state.start_run(asset_id, 1)
    sandbox.inject("429", retry_after=value)
    asset_event = first_event(MediaPocketAssetTrigger(
        asset_id=asset_id, end_time=time.time() + 60, poll_interval=0.05, hook_params=HOOK,
    ), timeout=FAST)
    assert asset_event["status"] == "success", asset_event
    sandbox.inject("429", retry_after=value)
    run_event = first_event(MediaPocketDagActionRunTrigger(
        asset_id=asset_id, dag_action_run_id=str(run["id"]), end_time=time.time() + 60, poll_interval=0.05,
        hook_params=HOOK,
    ), timeout=FAST + 5)
    assert run_event["status"] in ("success", "failed"), run_event


def test_far_future_retry_after_does_not_outlast_the_deadline(sandbox: MediaPocketSandbox) -> None:
    asset_id = str(sandbox.state.add_asset(title="limited")["id"])
    sandbox.inject("429", retry_after=FAR_FUTURE)
    began = time.monotonic()
    with MediaPocketHook(**HOOK) as hook, request_deadline(time.time() + 2), pytest.raises(
        MediaPocketRateLimitError
    ):
        hook.get_asset(asset_id)
    assert time.monotonic() - began < 2  # gave up at once: the wait would have ended past the deadline


def test_trigger_with_far_future_retry_after_times_out_at_its_deadline(monkeypatch: pytest.MonkeyPatch) -> None:
    with running_sandbox(monkeypatch, media_processing_seconds=60.0) as sandbox:
        asset_id = str(sandbox.state.add_asset(title="limited")["id"])
        sandbox.state.add_media(asset_id, "clip.mp4", file_url="https://media.example.com/clip.mp4")  # processing
        sandbox.inject("429", "429", "429", "429", retry_after=FAR_FUTURE)
        began = time.monotonic()
        event = first_event(MediaPocketAssetTrigger(
            asset_id=asset_id, end_time=time.time() + 1.5, poll_interval=0.2, hook_params=HOOK,
        ), timeout=30)
        took = time.monotonic() - began
    assert event["status"] == "timeout", event
    assert took < 1.5 + 3, f"the wait ended {took:.1f}s after it began (deadline 1.5 s)"
