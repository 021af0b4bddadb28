"""Issue 7 item 18: no HTTP client outlives its use.

Operators never closed their sync client and had no ``on_kill``; a hook used from a second event loop
replaced the first loop's client without closing it (its sockets stayed open for the process's life).
"""

from __future__ import annotations

import asyncio
import os
from collections.abc import Iterator
from typing import Any

import httpx
import pytest

from airflow_provider_mediapocket.exceptions import MediaPocketNotFoundError
from airflow_provider_mediapocket.hooks.mediapocket import MediaPocketHook
from airflow_provider_mediapocket.operators.mediapocket import (
    MediaPocketAddMediaOperator,
    MediaPocketStartDagActionOperator,
    MediaPocketUpdateAssetOperator,
)
from airflow_provider_mediapocket.sandbox import MediaPocketSandbox
from airflow_provider_mediapocket.sensors.mediapocket import MediaPocketAssetSensor
from tests.triggers._support import make_context


@pytest.fixture
def clients(monkeypatch: pytest.MonkeyPatch) -> Iterator[list[httpx.Client | httpx.AsyncClient]]:
    """Every httpx client (sync and async) created during the test."""
    created: list[httpx.Client | httpx.AsyncClient] = []

    class Client(httpx.Client):
        def __init__(self, *args: Any, **kwargs: Any) -> None:
            super().__init__(*args, **kwargs)
            created.append(self)

    class AsyncClient(httpx.AsyncClient):
        def __init__(self, *args: Any, **kwargs: Any) -> None:
            super().__init__(*args, **kwargs)
            created.append(self)

    monkeypatch.setattr(httpx, "Client", Client)
    monkeypatch.setattr(httpx, "AsyncClient", AsyncClient)
    yield created


def open_clients(created: list[httpx.Client | httpx.AsyncClient]) -> list[httpx.Client | httpx.AsyncClient]:
    return [client for client in created if not client.is_closed]


def sockets_to(port: int) -> int:
    """Open TCP connections of this process to ``port`` on 127.0.0.1 (from /proc)."""
    inodes = set()
    for fd in os.listdir("/proc/self/fd"):
        try:
            target = os.readlink(f"/proc/self/fd/{fd}")
        except OSError:
            continue
        if target.startswith("socket:["):
            inodes.add(target[8:-1])
    count = 0
    with open("/proc/self/net/tcp") as table:
        for line in list(table)[1:]:
            fields = line.split()
            remote_port = int(fields[2].split(":")[1], 16)
            if remote_port == port and fields[9] in inodes and fields[3] == "01":  # ESTABLISHED
                count += 1
    return count


def test_operators_close_their_client_when_execute_ends(
    mediapocket_sandbox: MediaPocketSandbox, clients: list[httpx.Client | httpx.AsyncClient]
) -> None:
    asset_id = str(mediapocket_sandbox.state.add_asset(title="closing")["id"])
    MediaPocketAddMediaOperator(task_id="m", asset_id=asset_id, file_url="https://x.example.com/a.mp4").execute(
        make_context()
    )
    with pytest.raises(MediaPocketNotFoundError):  # and when it raises
        MediaPocketUpdateAssetOperator(task_id="u", asset_id="missing-asset", title="t").execute(make_context())
    MediaPocketStartDagActionOperator(
        task_id="s", asset_id=asset_id, dag_action_id=1, poll_interval=0.05, timeout=20, deferrable=False,
    ).execute(make_context())
    MediaPocketAssetSensor(
        task_id="w", asset_id=asset_id, poke_interval=0.05, timeout=20, mode="poke", deferrable=False,
    ).execute(make_context())
    assert len(clients) >= 4
    assert open_clients(clients) == []
    assert sockets_to(mediapocket_sandbox.port) == 0


def test_on_kill_closes_the_client(
    mediapocket_sandbox: MediaPocketSandbox, clients: list[httpx.Client | httpx.AsyncClient]
) -> None:
    op = MediaPocketUpdateAssetOperator(task_id="u", asset_id="a", title="t")
    op.hook.list_api_keys()  # what execute was doing when the kill came
    assert len(open_clients(clients)) == 1
    op.on_kill()
    assert open_clients(clients) == []
    assert sockets_to(mediapocket_sandbox.port) == 0


def test_a_hook_used_in_two_event_loops_leaves_no_client_open(
    mediapocket_sandbox: MediaPocketSandbox, clients: list[httpx.Client | httpx.AsyncClient]
) -> None:
    hook = MediaPocketHook()
    asyncio.run(hook.alist_api_keys())
    asyncio.run(hook.alist_api_keys())
    assert len(clients) == 2
    assert open_clients(clients) == []
    assert sockets_to(mediapocket_sandbox.port) == 0


def test_the_client_of_a_loop_closed_without_shutdown_is_closed_by_the_next_loop(
    mediapocket_sandbox: MediaPocketSandbox, clients: list[httpx.Client | httpx.AsyncClient]
) -> None:
    hook = MediaPocketHook()
    loop = asyncio.new_event_loop()
    try:
        loop.run_until_complete(hook.alist_api_keys())
    finally:
        loop.close()  # no task cancellation: nothing could close the client on its own loop
    assert sockets_to(mediapocket_sandbox.port) == 1

    async def second() -> None:
        await hook.alist_api_keys()
        await hook.aclose()

    asyncio.run(second())
    assert sockets_to(mediapocket_sandbox.port) == 0


def test_a_client_of_a_loop_still_open_is_closed_on_that_loop(
    mediapocket_sandbox: MediaPocketSandbox, clients: list[httpx.Client | httpx.AsyncClient]
) -> None:
    hook = MediaPocketHook()
    first_loop = asyncio.new_event_loop()
    try:
        first_loop.run_until_complete(hook.alist_api_keys())
        asyncio.run(hook.alist_api_keys())  # another loop takes the hook over
        first_loop.run_until_complete(asyncio.sleep(0.01))  # the first loop runs again: its close is done
        assert clients[0].is_closed
    finally:
        first_loop.close()
    assert open_clients(clients) == []
