"""Issue 7 item 4: a rotated API key (and any changed setting) reaches hooks that live on.

The triggerer keeps one hook per connection for as long as any trigger of that connection waits, so
its key was fixed for days. Now a 401 re-reads the connection once: a changed key (or setting)
rebuilds the client and the call is tried once more; an unchanged connection, or a second 401, is an
error that never shows the key. Settings are also re-read when older than ``settings_max_age``.
"""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import Callable, Iterator

import pytest

from airflow_provider_mediapocket.exceptions import MediaPocketAuthError
from airflow_provider_mediapocket.hooks.mediapocket import MediaPocketHook
from airflow_provider_mediapocket.sandbox import MediaPocketSandbox
from airflow_provider_mediapocket.sandbox.pytest_plugin import sandbox_as_connection
from airflow_provider_mediapocket.triggers.mediapocket import MediaPocketDagActionRunTrigger
from tests.conftest import SECRETS
from tests.triggers._support import first_payload

NEW_KEY = "rotated-sandbox-key"
NEVER_ENDING = 5  # the sandbox's DAG action that runs until told otherwise
assert NEW_KEY in SECRETS  # so that any leak of it fails the test that caused it


@pytest.fixture
def sandbox(monkeypatch: pytest.MonkeyPatch) -> Iterator[MediaPocketSandbox]:
    with sandbox_as_connection(monkeypatch) as sb:
        yield sb


def rotate_key(monkeypatch: pytest.MonkeyPatch, sandbox: MediaPocketSandbox, new_key: str = NEW_KEY) -> None:
    """What an operator does: a new key in Media Pocket, the connection updated, the old key revoked."""
    sandbox.state.add_api_key(new_key)
    env = sandbox.airflow_connection_env()
    (name, value), = env.items()
    conn = json.loads(value)
    conn["password"] = new_key
    monkeypatch.setenv(name, json.dumps(conn))
    sandbox.state.revoke_api_key(sandbox.api_key)


def set_extra(monkeypatch: pytest.MonkeyPatch, sandbox: MediaPocketSandbox, **extra: object) -> None:
    (name, value), = sandbox.airflow_connection_env().items()
    conn = json.loads(value)
    conn["extra"] = {**conn["extra"], **extra}
    monkeypatch.setenv(name, json.dumps(conn))


def statuses(sandbox: MediaPocketSandbox) -> list[int | None]:
    return [r.status for r in sandbox.requests]


async def until(condition: Callable[[], bool], timeout: float = 10.0) -> None:
    """Wait (bounded) for ``condition`` to hold, yielding to the loop meanwhile."""
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, "condition not reached in time"
        await asyncio.sleep(0.01)


def test_triggers_sharing_a_hook_finish_after_the_key_is_rotated(
    monkeypatch: pytest.MonkeyPatch, sandbox: MediaPocketSandbox
) -> None:
    asset_id = str(sandbox.state.add_asset(title="rotation")["id"])
    runs = [str(sandbox.state.start_run(asset_id, NEVER_ENDING)["id"]) for _ in range(3)]
    other = str(sandbox.state.add_asset(title="rotation, second asset")["id"])
    runs_other = [str(sandbox.state.start_run(other, NEVER_ENDING)["id"]) for _ in range(2)]

    def trigger(asset: str, run_id: str) -> MediaPocketDagActionRunTrigger:
        return MediaPocketDagActionRunTrigger(
            asset_id=asset, dag_action_run_id=run_id, end_time=time.time() + 30, poll_interval=0.05,
            hook_params={"retry_backoff": 0.01, "retry_limit": 1},
        )

    async def main() -> list[dict[str, object]]:
        waits = [asyncio.create_task(first_payload(trigger(asset_id, run))) for run in runs]
        waits += [asyncio.create_task(first_payload(trigger(other, run))) for run in runs_other]
        # Every trigger has polled with the first key through the shared client.
        await until(lambda: sum(1 for s in statuses(sandbox) if s == 200) >= 4)
        rotate_key(monkeypatch, sandbox)
        await until(lambda: 401 in statuses(sandbox))
        for run in runs + runs_other:
            sandbox.state.set_run_status(int(run), "completed")
        return list(await asyncio.wait_for(asyncio.gather(*waits), 20))

    payloads = asyncio.run(main())
    assert [p["status"] for p in payloads] == ["success"] * 5, payloads
    after_rotation = statuses(sandbox)[statuses(sandbox).index(401):]
    # One 401 per request in flight at the rotation at most; everything after it is accepted.
    assert after_rotation.count(401) <= 2
    assert after_rotation[-1] == 200


def test_sync_hook_retries_once_with_the_rotated_key(
    monkeypatch: pytest.MonkeyPatch, sandbox: MediaPocketSandbox
) -> None:
    hook = MediaPocketHook()
    hook.settings_max_age = None  # only the 401 may make it re-read the connection
    asset_id = str(sandbox.state.add_asset(title="sync rotation")["id"])
    first_client = hook.get_client()
    assert hook.get_asset(asset_id).id == asset_id
    rotate_key(monkeypatch, sandbox)
    assert hook.get_asset(asset_id).id == asset_id
    assert statuses(sandbox) == [200, 401, 200]
    assert first_client.is_closed  # the client with the old key is gone
    assert hook.get_client().headers["X-API-KEY"] == NEW_KEY
    hook.close()


def test_a_second_401_is_raised_without_the_key(monkeypatch: pytest.MonkeyPatch, sandbox: MediaPocketSandbox) -> None:
    hook = MediaPocketHook()
    asset_id = str(sandbox.state.add_asset(title="bad rotation")["id"])
    hook.get_asset(asset_id)
    # The connection changes to a key Media Pocket does not know either.
    rotate_key(monkeypatch, sandbox)
    sandbox.state.revoke_api_key(NEW_KEY)
    with pytest.raises(MediaPocketAuthError) as info:
        hook.get_asset(asset_id)
    assert statuses(sandbox) == [200, 401, 401]
    assert NEW_KEY not in str(info.value) and sandbox.api_key not in str(info.value)
    assert NEW_KEY not in repr(info.value.__dict__)
    hook.close()


def test_a_401_with_an_unchanged_connection_is_not_retried(sandbox: MediaPocketSandbox) -> None:
    hook = MediaPocketHook()
    asset_id = str(sandbox.state.add_asset(title="revoked")["id"])
    hook.get_asset(asset_id)
    sandbox.state.revoke_api_key(sandbox.api_key)
    with pytest.raises(MediaPocketAuthError):
        hook.get_asset(asset_id)
    assert statuses(sandbox) == [200, 401]
    hook.close()


def test_async_hook_picks_up_a_changed_timeout_within_its_max_age(
    monkeypatch: pytest.MonkeyPatch, sandbox: MediaPocketSandbox
) -> None:
    asset_id = str(sandbox.state.add_asset(title="settings")["id"])

    async def main() -> None:
        hook = MediaPocketHook()
        hook.settings_max_age = 0.0  # re-read before every call
        await hook.aget_asset(asset_id)
        first = await hook.aget_client()
        assert first.timeout.read == 30.0
        set_extra(monkeypatch, sandbox, timeout=7)
        await hook.aget_asset(asset_id)
        second = await hook.aget_client()
        assert second is not first and second.timeout.read == 7.0
        assert first.is_closed
        await hook.aclose()

    asyncio.run(main())
    assert statuses(sandbox) == [200, 200]


def test_many_calls_share_one_connection_read_after_a_401(
    monkeypatch: pytest.MonkeyPatch, sandbox: MediaPocketSandbox
) -> None:
    asset_id = str(sandbox.state.add_asset(title="concurrent")["id"])
    reads = 0
    fetch = MediaPocketHook._afetch_connection

    async def counting(self: MediaPocketHook) -> object:
        nonlocal reads
        reads += 1
        return await fetch(self)

    monkeypatch.setattr(MediaPocketHook, "_afetch_connection", counting)

    async def main() -> None:
        hook = MediaPocketHook()
        hook.settings_max_age = None
        await hook.aget_asset(asset_id)
        rotate_key(monkeypatch, sandbox)
        assets = await asyncio.gather(*(hook.aget_asset(asset_id) for _ in range(20)))
        assert {a.id for a in assets} == {asset_id}
        await hook.aclose()

    asyncio.run(main())
    assert reads == 2  # the first read, and one re-read for the 20 calls that got 401


def test_a_waiting_trigger_picks_up_a_changed_timeout_within_a_poll(
    monkeypatch: pytest.MonkeyPatch, sandbox: MediaPocketSandbox
) -> None:
    from airflow_provider_mediapocket.triggers import _shared

    asset_id = str(sandbox.state.add_asset(title="settings in the triggerer")["id"])
    run_id = str(sandbox.state.start_run(asset_id, NEVER_ENDING)["id"])
    trigger = MediaPocketDagActionRunTrigger(
        asset_id=asset_id, dag_action_run_id=run_id, end_time=time.time() + 30, poll_interval=0.05,
    )

    async def main() -> dict[str, object]:
        wait = asyncio.create_task(first_payload(trigger))
        await until(lambda: 200 in statuses(sandbox))
        (entry,) = _shared._state().hooks.values()
        assert (await entry.hook.aget_client()).timeout.read == 30.0
        set_extra(monkeypatch, sandbox, timeout=7)
        # Within one re-read period (1 s here) the shared hook's client carries the new timeout.
        await until(lambda: entry.hook._aclient is not None and entry.hook._aclient.timeout.read == 7.0, timeout=5)
        sandbox.state.set_run_status(int(run_id), "completed")
        return await asyncio.wait_for(wait, 10)

    assert asyncio.run(main())["status"] == "success"
