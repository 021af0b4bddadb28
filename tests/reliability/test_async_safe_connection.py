"""Issue 7 item 16: the async path never calls ``Connection.extra_dejson`` on the event loop.

In Airflow 3's task SDK ``extra_dejson`` masks the extras through a *blocking* supervisor call
(``mask_secret`` -> ``SUPERVISOR_COMMS.send``); on the triggerer's loop that stalls every trigger,
and inside an async task it can deadlock. The hook parses ``conn.extra`` (the JSON text) itself.
"""

from __future__ import annotations

import asyncio
import json
import threading
from typing import Any

import pytest

from airflow_provider_mediapocket.hooks.mediapocket import MediaPocketHook
from airflow_provider_mediapocket.sandbox import MediaPocketSandbox
from airflow_provider_mediapocket.triggers.mediapocket import MediaPocketAssetTrigger
from tests.triggers._support import first_payload


def _in_running_loop() -> bool:
    try:
        asyncio.get_running_loop()
    except RuntimeError:
        return False
    return True


@pytest.fixture
def extra_dejson_calls(monkeypatch: pytest.MonkeyPatch) -> list[tuple[int, bool]]:
    """Every ``extra_dejson`` read: (thread id, whether that thread was running an event loop)."""
    from airflow.sdk.definitions.connection import Connection

    calls: list[tuple[int, bool]] = []
    original = Connection.extra_dejson

    def recording(self: Any) -> dict[str, Any]:
        calls.append((threading.get_ident(), _in_running_loop()))
        return original.fget(self)  # type: ignore[attr-defined, no-any-return]

    monkeypatch.setattr(Connection, "extra_dejson", property(recording))
    return calls


def test_async_calls_read_the_extras_off_the_loop(
    monkeypatch: pytest.MonkeyPatch, mediapocket_sandbox: MediaPocketSandbox, extra_dejson_calls: list[tuple[int, bool]]
) -> None:
    (name, value), = mediapocket_sandbox.airflow_connection_env().items()
    conn = json.loads(value)
    conn["extra"] = {"timeout": 12, "retry_backoff": 0.01}
    monkeypatch.setenv(name, json.dumps(conn))
    asset_id = str(mediapocket_sandbox.state.add_asset(title="async-safe")["id"])

    async def main() -> float:
        hook = MediaPocketHook()
        hook.settings_max_age = 0.0  # re-read on every call: every read must be loop-safe
        await hook.aget_asset(asset_id)
        await hook.aget_asset(asset_id)
        timeout = (await hook.aget_client()).timeout.read
        await hook.aclose()
        return timeout or 0.0

    assert asyncio.run(main()) == 12.0  # the extras were read ...
    on_the_loop = [call for call in extra_dejson_calls if call[1]]
    assert on_the_loop == []  # ... and never through extra_dejson on the loop thread


def test_a_trigger_reads_its_connection_without_extra_dejson_on_the_loop(
    mediapocket_sandbox: MediaPocketSandbox, extra_dejson_calls: list[tuple[int, bool]]
) -> None:
    asset_id = str(mediapocket_sandbox.state.add_asset(title="ready")["id"])
    trigger = MediaPocketAssetTrigger(asset_id=asset_id, end_time=9e9, poll_interval=0.05, wait_for_media=False)
    payload = asyncio.run(asyncio.wait_for(first_payload(trigger), 10))
    assert payload["asset_id"] == asset_id
    assert [call for call in extra_dejson_calls if call[1]] == []
