"""Triggerer restarts and task retries around a deferred wait: nothing lost, nothing started twice.

A deferred task's trigger is cancelled mid-wait (the triggerer dies), then rebuilt from what Airflow
stored (classpath + kwargs through ``airflow.sdk.serde`` and JSON) in a new event loop (a new
triggerer). It must report what an uninterrupted trigger reports, and the DAG action must have been
started exactly once. A task retry after the deferral re-attaches to the stored run.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import time
from collections.abc import Iterator
from typing import Any

import pytest
from airflow.providers.common.compat.sdk import TaskDeferred

from airflow_provider_mediapocket.exceptions import MediaPocketRunFailedError
from airflow_provider_mediapocket.operators.mediapocket import (
    MediaPocketCreateAssetOperator,
    MediaPocketStartDagActionOperator,
)
from airflow_provider_mediapocket.sandbox import MediaPocketSandbox
from airflow_provider_mediapocket.sensors.mediapocket import MediaPocketAssetSensor
from airflow_provider_mediapocket.triggers import _shared
from airflow_provider_mediapocket.triggers.mediapocket import MediaPocketAssetTrigger, MediaPocketDagActionRunTrigger
from tests._compat import capture_logs
from tests.reliability._helpers_faults import HOOK_PARAMS, calls, faults, first_payload, rebuild, running_sandbox
from tests.triggers._support import FakeStateStore, FakeTI, logged_run_messages, make_context

POLL = 0.05
RUN_KEY = "mediapocket_dag_action_run_id"
RUN_MESSAGES = ["Set in queue...", "Started processing", "Processing asset {asset}"]


@pytest.fixture
def sandbox(monkeypatch: pytest.MonkeyPatch) -> Iterator[MediaPocketSandbox]:
    # Runs and media take 1.5 s: long enough that a cancel after 0.3 s is surely mid-wait.
    with running_sandbox(monkeypatch, media_processing_seconds=1.5, dag_action_run_seconds=1.5) as sb:
        yield sb


def start_operator(asset_id: str, action: int = 1) -> MediaPocketStartDagActionOperator:
    return MediaPocketStartDagActionOperator(
        task_id="start", asset_id=asset_id, dag_action_id=action, deferrable=True, poll_interval=POLL, timeout=30,
        hook_params=HOOK_PARAMS,
    )


def defer(operator: Any, context: dict[str, Any]) -> TaskDeferred:
    with pytest.raises(TaskDeferred) as info:
        operator.execute(context)
    assert info.value.method_name == "execute_complete"
    return info.value


def interrupt(trigger: Any, after: float = 0.3) -> None:
    """Run ``trigger`` in its own event loop for ``after`` seconds, then cancel it (the triggerer dies)."""

    async def main() -> None:
        task = asyncio.ensure_future(first_payload(trigger))
        done, _ = await asyncio.wait({task}, timeout=after)
        assert not done, f"the trigger finished before the interruption: {task.result()}"
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task
        assert task.cancelled()
        assert _shared.shared_count() == 0  # the cancelled trigger released its client

    asyncio.run(main())


def run_to_end(trigger: Any, timeout: float = 15.0) -> dict[str, Any]:
    """Run ``trigger`` in a new event loop (a restarted triggerer) until its first event."""
    return asyncio.run(asyncio.wait_for(first_payload(trigger), timeout))


def start_posts(sandbox: MediaPocketSandbox, asset_id: str) -> list[Any]:
    return calls(sandbox, "POST", f"/api/v2/assets/{asset_id}/dag_actions/")


def test_run_wait_survives_a_triggerer_restart_and_the_action_starts_once(sandbox: MediaPocketSandbox) -> None:
    asset_id = sandbox.state.add_asset(title="restart me")["id"]
    store, ti = FakeStateStore(), FakeTI()
    with capture_logs() as task_logs:
        deferred = defer(start_operator(asset_id), make_context(store, ti))
    trigger = deferred.trigger
    assert isinstance(trigger, MediaPocketDagActionRunTrigger)
    run_id = str(store.data[RUN_KEY])
    assert trigger.dag_action_run_id == run_id and trigger.asset_id == asset_id
    assert trigger.watch["messages_seen"] == 1  # "Set in queue..." went to the task log before deferring
    serialized = trigger.serialize()
    assert sandbox.api_key not in json.dumps(serialized)

    polls_before = len(calls(sandbox, "GET", f"/api/v2/assets/{asset_id}/dag_action_runs"))
    interrupt(trigger)
    polls_interrupted = len(calls(sandbox, "GET", f"/api/v2/assets/{asset_id}/dag_action_runs")) - polls_before
    assert polls_interrupted >= 2  # it really was waiting, and polling, when it died
    assert sandbox.state.runs[int(run_id)]["status"] == "running"

    with capture_logs() as trigger_logs:
        event = run_to_end(rebuild(serialized))
    assert event["status"] == "success", event
    assert event["dag_action_run_id"] == run_id and set(event) == {"status", "message", "asset_id",
                                                                  "dag_action_run_id"}
    # Nothing lost: the task logged the first message before deferring, the restarted trigger every later one
    # (a message the dead triggerer had logged already is logged again: its progress is not stored anywhere).
    assert logged_run_messages(task_logs, run_id) == ["Set in queue..."]
    all_messages = [m.format(asset=asset_id) for m in RUN_MESSAGES] + ["Finished successfully"]
    assert logged_run_messages(trigger_logs, run_id) == all_messages[1:]
    # An uninterrupted trigger (same stored kwargs) reports the same.
    assert run_to_end(rebuild(serialized)) == event

    # Exactly one start was sent and exactly one run exists.
    assert len(start_posts(sandbox, asset_id)) == 1
    assert [str(r["id"]) for r in sandbox.state.runs.values() if r["asset_id"] == asset_id] == [run_id]

    # The task resumes on a fresh operator instance (as Airflow does), logs no message again, and returns the
    # completed run (read once: the event carries no run object).
    with capture_logs() as resume_logs:
        result = start_operator(asset_id).execute_complete(make_context(store), event)
    assert logged_run_messages(resume_logs, run_id) == []
    assert len(result["dag_action_run_messages"]) == len(all_messages)
    assert str(result["id"]) == run_id and result["status"] == "completed"
    assert json.loads(json.dumps(result)) == result
    assert ti.xcoms["mediapocket_dag_action_run_url"].endswith(f"/assets/{asset_id}/dag_action_runs/{run_id}")


def test_failed_run_after_a_restart_fails_the_task_with_its_messages(sandbox: MediaPocketSandbox) -> None:
    asset_id = sandbox.state.add_asset(title="broken")["id"]
    store = FakeStateStore()
    deferred = defer(start_operator(asset_id, action=4), make_context(store))
    serialized = deferred.trigger.serialize()
    interrupt(deferred.trigger)
    event = run_to_end(rebuild(serialized))
    assert event["status"] == "failed" and "failed with status 'failed'" in event["message"]
    assert run_to_end(rebuild(serialized)) == event
    with pytest.raises(MediaPocketRunFailedError, match="Error: pipeline step failed"):
        start_operator(asset_id, action=4).execute_complete(make_context(store), event)
    assert len(start_posts(sandbox, asset_id)) == 1


def test_restart_under_faults_still_starts_one_run(sandbox: MediaPocketSandbox) -> None:
    """Same as above while 20% of requests fail: the start may be re-sent only if it never arrived."""
    asset_id = sandbox.state.add_asset(title="restart under faults")["id"]
    store = FakeStateStore()
    sandbox.set_faults(faults(seed=31337, rate=0.2))
    deferred = defer(start_operator(asset_id), make_context(store))
    serialized = deferred.trigger.serialize()
    interrupt(deferred.trigger)
    event = run_to_end(rebuild(serialized))
    sandbox.set_faults(None)
    assert event["status"] == "success", event
    runs = [r for r in sandbox.state.runs.values() if r["asset_id"] == asset_id]
    assert len(runs) == 1 and str(runs[0]["id"]) == str(store.data[RUN_KEY]) == event["dag_action_run_id"]
    assert len([r for r in start_posts(sandbox, asset_id) if r.status == 200]) == 1


def test_task_retry_after_the_deferral_reattaches_without_starting_again(sandbox: MediaPocketSandbox) -> None:
    asset_id = sandbox.state.add_asset(title="retried")["id"]
    store = FakeStateStore()
    first = defer(start_operator(asset_id), make_context(store))
    run_id = str(store.data[RUN_KEY])
    interrupt(first.trigger)  # the try dies while deferred (e.g. the triggerer and the task are lost)

    # The retry (a new operator instance, same task_state_store) re-attaches to the stored run and defers.
    ti = FakeTI()
    second = defer(start_operator(asset_id), make_context(store, ti))
    assert isinstance(second.trigger, MediaPocketDagActionRunTrigger)
    assert second.trigger.dag_action_run_id == run_id
    assert len(start_posts(sandbox, asset_id)) == 1
    assert ti.xcoms["mediapocket_dag_action_run_url"].endswith(f"/dag_action_runs/{run_id}")

    event = run_to_end(rebuild(second.trigger.serialize()))
    assert event["status"] == "success" and event["dag_action_run_id"] == run_id
    assert start_operator(asset_id).execute_complete(make_context(store), event)["status"] == "completed"

    # Another retry once the run is complete: returns it at once, no start, no deferral.
    sandbox.clear_requests()
    again = start_operator(asset_id).execute(make_context(store))
    assert str(again["id"]) == run_id and again["status"] == "completed"
    assert start_posts(sandbox, asset_id) == []
    assert {r.method for r in sandbox.requests} == {"GET"}
    assert len([r for r in sandbox.state.runs.values() if r["asset_id"] == asset_id]) == 1


def test_task_retry_after_a_failed_run_starts_exactly_one_new_run(sandbox: MediaPocketSandbox) -> None:
    asset_id = sandbox.state.add_asset(title="failed then retried")["id"]
    store = FakeStateStore()
    first = defer(start_operator(asset_id, action=4), make_context(store))
    failed_id = str(store.data[RUN_KEY])
    assert run_to_end(rebuild(first.trigger.serialize()))["status"] == "failed"
    second = defer(start_operator(asset_id, action=4), make_context(store))
    assert second.trigger.dag_action_run_id != failed_id
    assert str(store.data[RUN_KEY]) == second.trigger.dag_action_run_id
    assert len(start_posts(sandbox, asset_id)) == 2


def test_asset_wait_survives_a_triggerer_restart(sandbox: MediaPocketSandbox) -> None:
    store = FakeStateStore()
    asset = MediaPocketCreateAssetOperator(
        task_id="create", title="clip", file_url="https://media.example.com/clips/launch.mp4",
        hook_params=HOOK_PARAMS,
    ).execute(make_context(store))
    assert asset["media_type"] == "processing"
    sensor = MediaPocketAssetSensor(
        task_id="wait", asset_id=asset["id"], deferrable=True, poke_interval=POLL, timeout=30,
        hook_params=HOOK_PARAMS,
    )
    deferred = defer(sensor, make_context(store))
    trigger = deferred.trigger
    assert isinstance(trigger, MediaPocketAssetTrigger) and trigger.asset_id == asset["id"]
    assert trigger.end_time > time.time() + 20  # a wall-clock deadline, carried over the restart
    serialized = trigger.serialize()
    assert sandbox.api_key not in json.dumps(serialized)
    interrupt(trigger)
    assert sandbox.state.assets[asset["id"]]["media_type"] == "processing"

    restarted = rebuild(serialized)
    assert restarted.end_time == trigger.end_time
    event = run_to_end(restarted)
    assert event["status"] == "success" and event["asset"]["media_type"] == "video"
    assert event["asset"]["original_filename"] == "launch.mp4"
    uninterrupted = run_to_end(rebuild(serialized))
    assert {k: v for k, v in uninterrupted.items() if k != "asset"} == {k: v for k, v in event.items() if k != "asset"}
    result = MediaPocketAssetSensor(task_id="wait", asset_id=asset["id"]).execute_complete(make_context(store), event)
    assert result["id"] == asset["id"] and result["media_type"] == "video"
    # One asset, its media added once.
    assert len(calls(sandbox, "POST", "/api/v2/assets", "/assets")) == 1
    assert len(calls(sandbox, "POST", f"/api/v2/assets/{asset['id']}/media")) == 1
    assert [a for a in sandbox.state.assets.values() if a["title"] == "clip"] == [sandbox.state.assets[asset["id"]]]
