"""Issue 11 section 4: the connection extra ``max_requests_per_second``, a request budget per process.

The bucket itself is tested with an injected clock (no sleeps): burst, pacing, the deadline bound, a
429's pause, refunds and many threads at once. Against the sandbox: the sync and async clients of
one process share one budget; waiting on it does not block the event loop; a 429 pauses the whole
process for its ``Retry-After``; a storm of 429s is ridden out by tasks and triggers alike.
"""

from __future__ import annotations

import asyncio
import threading
import time
from collections.abc import Iterator
from typing import Any

import httpx
import pytest

from airflow_provider_mediapocket import _ratelimit, get_provider_info
from airflow_provider_mediapocket._ratelimit import NoBudget, TokenBucket
from airflow_provider_mediapocket.exceptions import MediaPocketConfigError
from airflow_provider_mediapocket.hooks.mediapocket import MediaPocketHook, request_deadline
from airflow_provider_mediapocket.sandbox import FaultConfig, MediaPocketSandbox
from airflow_provider_mediapocket.triggers.mediapocket import MediaPocketDagActionRunTrigger
from tests.reliability.test_connection_settings import use_connection
from tests.triggers._support import first_payload


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


# ------------------------------------------------------------------------------------ the bucket


def test_a_quiet_bucket_allows_a_burst_of_one_seconds_worth_then_paces_requests() -> None:
    clock = Clock()
    bucket = TokenBucket(4.0, clock=clock)

    waits = [bucket.reserve() for _ in range(7)]

    assert waits == [0.0, 0.0, 0.0, 0.0, 0.25, 0.5, 0.75]


def test_tokens_come_back_at_the_rate_and_never_beyond_one_seconds_worth() -> None:
    clock = Clock()
    bucket = TokenBucket(2.0, clock=clock)
    assert [bucket.reserve() for _ in range(2)] == [0.0, 0.0]
    clock.now += 0.5  # one token back
    assert bucket.reserve() == 0.0
    assert bucket.reserve() == 0.5
    clock.now += 3600  # a quiet hour saves no more than the burst
    assert [bucket.reserve() for _ in range(3)] == [0.0, 0.0, 0.5]


def test_a_rate_below_one_still_allows_one_request_and_paces_the_next() -> None:
    clock = Clock()
    bucket = TokenBucket(0.5, clock=clock)
    assert [bucket.reserve(), bucket.reserve()] == [0.0, 2.0]


def test_a_wait_longer_than_the_callers_time_left_takes_nothing() -> None:
    clock = Clock()
    bucket = TokenBucket(1.0, clock=clock)
    assert bucket.reserve(within=0.1) == 0.0
    assert bucket.reserve(within=0.5) is None  # would wait 1 s
    assert bucket.reserve(within=1.0) == 1.0  # nothing was taken by the refused one


def test_a_pause_holds_every_token_back_and_saves_none_up() -> None:
    clock = Clock()
    bucket = TokenBucket(10.0, clock=clock)
    bucket.pause(3.0)
    assert bucket.paused_for() == 3.0
    assert bucket.reserve() == pytest.approx(3.1)
    clock.now += 3.0
    assert bucket.paused_for() == 0.0
    # After the pause the requests are paced (after the one queued during it), not let go at once.
    assert bucket.reserve() == pytest.approx(0.2)
    assert bucket.reserve() == pytest.approx(0.3)


def test_a_pause_is_capped_like_the_hooks_own_retry_after_wait() -> None:
    clock = Clock()
    bucket = TokenBucket(1.0, clock=clock)
    bucket.pause(86400)
    assert bucket.paused_for() == _ratelimit.MAX_PAUSE


def test_a_refund_gives_a_token_back() -> None:
    clock = Clock()
    bucket = TokenBucket(1.0, clock=clock)
    assert bucket.reserve() == 0.0
    assert bucket.reserve() == 1.0
    bucket.refund()
    assert bucket.reserve() == 1.0


def test_threads_taking_tokens_at_once_each_get_their_own_place_in_the_queue() -> None:
    clock = Clock()  # frozen: every wait is a place in the queue
    bucket = TokenBucket(10.0, clock=clock)
    waits: list[float] = []
    lock = threading.Lock()
    start = threading.Barrier(8)

    def take() -> None:
        start.wait()
        mine = [bucket.reserve() for _ in range(50)]
        with lock:
            waits.extend(w for w in mine if w is not None)

    threads = [threading.Thread(target=take) for _ in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()

    assert sorted(round(w, 6) for w in waits) == [0.0] * 10 + [round(k / 10, 6) for k in range(1, 391)]


def test_one_bucket_per_connection_and_process_following_the_connections_rate() -> None:
    assert _ratelimit.bucket("budget_a", None) is None
    first = _ratelimit.bucket("budget_a", 5.0)
    assert first is not None
    assert _ratelimit.bucket("budget_a", 5.0) is first
    assert _ratelimit.bucket("budget_b", 5.0) is not first
    assert _ratelimit.bucket("budget_a", 8.0) is first and first.rate == 8.0


# ------------------------------------------------------------------------------- against the sandbox


@pytest.fixture
def sandbox(monkeypatch: pytest.MonkeyPatch) -> Iterator[MediaPocketSandbox]:
    with MediaPocketSandbox(dag_action_run_seconds=1.0) as sb:
        yield sb
    _ratelimit._BUCKETS.clear()  # the next test's sandbox may have another rate


def budget(monkeypatch: pytest.MonkeyPatch, sandbox: MediaPocketSandbox, rate: float, **extra: Any) -> None:
    _ratelimit._BUCKETS.clear()
    use_connection(monkeypatch, sandbox, extra={"max_requests_per_second": rate, "retry_backoff": 0.01, **extra})


@pytest.mark.parametrize("value", [0, -1, "nan", "inf", float("inf"), 10001, "fast", True, [5]])
def test_a_bad_max_requests_per_second_is_rejected_naming_the_extra_before_any_request(
    monkeypatch: pytest.MonkeyPatch, sandbox: MediaPocketSandbox, value: object
) -> None:
    use_connection(monkeypatch, sandbox, extra={"max_requests_per_second": value})
    hook = MediaPocketHook()
    with pytest.raises(MediaPocketConfigError, match="extra 'max_requests_per_second' must be a finite number of "
                       "requests per second greater than 0 and at most 10000"):
        hook.list_api_keys()
    assert sandbox.requests == []
    hook.close()


@pytest.mark.parametrize(("value", "expected"), [(None, None), ("", None), ("2.5", 2.5), (10000, 10000.0), (0.01, 0.01)])
def test_max_requests_per_second_is_off_unless_set(
    monkeypatch: pytest.MonkeyPatch, sandbox: MediaPocketSandbox, value: object, expected: float | None
) -> None:
    use_connection(monkeypatch, sandbox, extra={"max_requests_per_second": value})
    assert MediaPocketHook().get_settings().max_requests_per_second == expected


def test_the_connection_form_offers_max_requests_per_second() -> None:
    field = get_provider_info()["connection-types"][0]["conn-fields"]["max_requests_per_second"]
    assert field["schema"] == {"type": ["number", "null"], "exclusiveMinimum": 0, "maximum": 10000}
    assert "triggerers" in field["description"]


def test_sync_and_async_clients_of_one_process_share_one_budget(
    monkeypatch: pytest.MonkeyPatch, sandbox: MediaPocketSandbox
) -> None:
    asset_id = sandbox.state.add_asset(title="budget")["id"]
    rate = 10.0
    budget(monkeypatch, sandbox, rate)
    sync_hook, async_hook = MediaPocketHook(), MediaPocketHook()
    sync_hook.get_asset(asset_id)  # the connection read (the bucket made) before the clock starts
    run_for = 1.5
    done = {"sync": 0, "async": 0}

    def sync_worker(stop_at: float) -> None:
        while time.monotonic() < stop_at:
            sync_hook.get_asset(asset_id)
            done["sync"] += 1

    async def async_workers(stop_at: float) -> None:
        async def one() -> None:
            while time.monotonic() < stop_at:
                await async_hook.aget_asset(asset_id)
                done["async"] += 1

        await asyncio.gather(*(one() for _ in range(4)))
        await async_hook.aclose()

    began = time.monotonic()
    stop_at = began + run_for
    threads = [threading.Thread(target=sync_worker, args=(stop_at,)) for _ in range(2)]
    for thread in threads:
        thread.start()
    asyncio.run(async_workers(stop_at))
    for thread in threads:
        thread.join()
    elapsed = time.monotonic() - began
    sync_hook.close()

    sent = len(sandbox.requests)
    # At most the burst the bucket held (one second's worth) plus the rate over the time taken.
    assert sent <= rate + rate * elapsed + 1, (sent, elapsed, done)
    assert sent >= rate * run_for * 0.6, (sent, elapsed, done)  # paced, not starved
    assert done["sync"] > 0 and done["async"] > 0, done


def test_waiting_for_the_budget_does_not_block_the_event_loop(
    monkeypatch: pytest.MonkeyPatch, sandbox: MediaPocketSandbox
) -> None:
    asset_id = sandbox.state.add_asset(title="budget")["id"]
    budget(monkeypatch, sandbox, 10.0)
    gaps: list[float] = []

    async def scenario() -> None:
        hook = MediaPocketHook()
        calls = asyncio.gather(*(hook.aget_asset(asset_id) for _ in range(25)))  # ~1.5 s of budget
        while not calls.done():
            before = time.monotonic()
            await asyncio.sleep(0.01)
            gaps.append(time.monotonic() - before)
        await calls
        await hook.aclose()

    asyncio.run(scenario())

    assert len(gaps) > 20
    # A blocking wait would hold the loop for a whole place in the queue (up to 1.5 s).
    assert max(gaps) < 0.5, max(gaps)


def test_a_request_that_cannot_get_budget_before_its_deadline_is_not_sent(
    monkeypatch: pytest.MonkeyPatch, sandbox: MediaPocketSandbox
) -> None:
    asset_id = sandbox.state.add_asset(title="budget")["id"]
    budget(monkeypatch, sandbox, 0.1, retry_limit=0)  # one request, then one every 10 s
    hook = MediaPocketHook()
    hook.get_asset(asset_id)

    began = time.monotonic()
    with request_deadline(time.time() + 0.5), pytest.raises(Exception, match="max_requests_per_second") as info:
        hook.get_asset(asset_id)

    assert time.monotonic() - began < 0.4  # refused at once, not after sleeping
    assert isinstance(info.value.__cause__ or info.value, Exception)
    assert len(sandbox.requests) == 1
    hook.close()


def recording_sends(monkeypatch: pytest.MonkeyPatch) -> list[tuple[float, float, int]]:
    """Every request's (sent, answered, status), sync and async, in monotonic seconds."""
    seen: list[tuple[float, float, int]] = []
    sync_send, async_send = httpx.HTTPTransport.handle_request, httpx.AsyncHTTPTransport.handle_async_request

    def sync(self: httpx.HTTPTransport, request: httpx.Request) -> httpx.Response:
        sent = time.monotonic()
        response = sync_send(self, request)
        seen.append((sent, time.monotonic(), response.status_code))
        return response

    async def async_(self: httpx.AsyncHTTPTransport, request: httpx.Request) -> httpx.Response:
        sent = time.monotonic()
        response = await async_send(self, request)
        seen.append((sent, time.monotonic(), response.status_code))
        return response

    monkeypatch.setattr(httpx.HTTPTransport, "handle_request", sync)
    monkeypatch.setattr(httpx.AsyncHTTPTransport, "handle_async_request", async_)
    return seen


def test_a_429_pauses_every_request_of_the_process_for_its_retry_after(
    monkeypatch: pytest.MonkeyPatch, sandbox: MediaPocketSandbox
) -> None:
    asset_id = sandbox.state.add_asset(title="budget")["id"]
    budget(monkeypatch, sandbox, 4.0)
    MediaPocketHook().get_asset(asset_id)  # settings read; the bucket is spent below
    sandbox.inject("429", retry_after=1)
    seen = recording_sends(monkeypatch)
    results: list[Any] = []

    def sync_caller() -> None:
        results.append(MediaPocketHook().get_asset(asset_id))

    async def async_callers() -> None:
        hook = MediaPocketHook()
        results.extend(await asyncio.gather(*(hook.aget_asset(asset_id) for _ in range(3))))
        await hook.aclose()

    threads = [threading.Thread(target=sync_caller) for _ in range(3)]
    for thread in threads:
        thread.start()
    asyncio.run(async_callers())
    for thread in threads:
        thread.join()

    assert len(results) == 6  # every call succeeded
    assert sorted(s for _, _, s in seen) == [200] * 6 + [429]
    _, answered, _ = next(r for r in seen if r[2] == 429)
    # Nothing left the process between the 429 and the end of its Retry-After.
    assert not [sent for sent, _, _ in seen if answered < sent < answered + 0.95], seen


def test_a_429_storm_is_ridden_out_by_tasks_and_triggers(
    monkeypatch: pytest.MonkeyPatch, sandbox: MediaPocketSandbox
) -> None:
    asset_id = sandbox.state.add_asset(title="storm")["id"]
    run = sandbox.state.start_run(asset_id, 1)  # finishes after 1 s, mid-storm
    budget(monkeypatch, sandbox, 20.0)
    MediaPocketHook().get_asset(asset_id)
    # Every request answers 429 (Retry-After: 1) for 1.5 s: longer than one retry, shorter than three.
    sandbox.set_faults(FaultConfig(rate=1.0, kinds={"429": 1.0}, retry_after=1))
    calm = threading.Timer(1.5, sandbox.set_faults, args=(None,))
    calm.start()
    results: list[Any] = []

    def sync_caller() -> None:
        results.append(MediaPocketHook().get_asset(asset_id).id)

    async def async_side() -> dict[str, Any]:
        hook = MediaPocketHook()
        trigger = MediaPocketDagActionRunTrigger(
            asset_id=asset_id, dag_action_run_id=run["id"], end_time=time.time() + 30, poll_interval=0.2,
            hook_params={"retry_backoff": 0.01},
        )
        payload, *assets = await asyncio.gather(
            asyncio.wait_for(first_payload(trigger), 20), *(hook.aget_asset(asset_id) for _ in range(4))
        )
        results.extend(a.id for a in assets)
        await hook.aclose()
        return dict(payload)

    threads = [threading.Thread(target=sync_caller) for _ in range(4)]
    for thread in threads:
        thread.start()
    payload = asyncio.run(async_side())
    for thread in threads:
        thread.join()
    calm.join()

    assert results == [asset_id] * 8
    assert payload["status"] == "success", payload
    storm = [r for r in sandbox.requests if r.status == 429]
    assert storm, "the storm did not happen"
    # Paused on each 429, the process sent few requests into the storm: about one per Retry-After
    # per caller, not a stream.
    assert len(storm) <= 20, len(storm)


def test_no_budget_is_a_transient_failure_the_hook_reports_by_name() -> None:
    error = _ratelimit._no_budget(TokenBucket(2.0), 0.25)
    assert isinstance(error, NoBudget) and isinstance(error, httpx.PoolTimeout)
    assert "max_requests_per_second = 2" in str(error)
