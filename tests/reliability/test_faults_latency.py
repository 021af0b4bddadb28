"""The sandbox answers a loopback request in about a millisecond, not in a delayed ACK's 40 ms.

Regression guard for the fix in 22b9db3 (TCP_NODELAY on the sandbox's responses). The sandbox writes
headers and body in two writes; with Nagle's algorithm on, the body waits for the client's delayed ACK
of the headers (~40 ms on Linux), so every request cost ~45 ms, sync or async: every sandbox-backed
test, ``make demo`` and the example DAG tests ran ~50 times slower, and timing-sensitive waits saw a
much slower "API" than a real one.
"""

from __future__ import annotations

import asyncio
import statistics
import time
from collections.abc import Callable

import pytest

from airflow_provider_mediapocket.hooks.mediapocket import MediaPocketHook
from airflow_provider_mediapocket.sandbox import MediaPocketSandbox
from tests.reliability._helpers_faults import running_sandbox

REQUESTS = 25
MEDIAN_LIMIT = 0.02  # seconds: ~1 ms expected on loopback; 40+ ms means Nagle + delayed ACK


def timed(call: Callable[[], object]) -> float:
    began = time.perf_counter()
    call()
    return time.perf_counter() - began


def test_sync_requests_to_the_sandbox_are_fast(monkeypatch: pytest.MonkeyPatch) -> None:
    sandbox: MediaPocketSandbox
    with running_sandbox(monkeypatch) as sandbox:
        hook = MediaPocketHook()
        asset_id = hook.create_asset("latency").id
        gets = [timed(lambda: hook.get_asset(asset_id)) for _ in range(REQUESTS)]
        posts = [timed(lambda: hook.create_asset_comment(asset_id, "hi")) for _ in range(REQUESTS)]
        hook.close()
        assert len(sandbox.requests) == 2 * REQUESTS + 1
    assert statistics.median(gets) < MEDIAN_LIMIT, f"median GET {statistics.median(gets) * 1000:.1f} ms"
    assert statistics.median(posts) < MEDIAN_LIMIT, f"median POST {statistics.median(posts) * 1000:.1f} ms"


def test_async_requests_to_the_sandbox_are_fast(monkeypatch: pytest.MonkeyPatch) -> None:
    with running_sandbox(monkeypatch) as sandbox:
        asset_id = sandbox.state.add_asset(title="latency")["id"]

        async def main() -> list[float]:
            hook = MediaPocketHook()
            seconds = []
            try:
                for _ in range(REQUESTS):
                    began = time.perf_counter()
                    await hook.aget_asset(asset_id)
                    seconds.append(time.perf_counter() - began)
            finally:
                await hook.aclose()
            return seconds

        gets = asyncio.run(main())
    assert statistics.median(gets) < MEDIAN_LIMIT, f"median async GET {statistics.median(gets) * 1000:.1f} ms"
