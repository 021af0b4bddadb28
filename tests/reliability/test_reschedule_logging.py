"""Issue 7 item 19 (c): in reschedule mode every poke is a new sensor object (a new process); the
sensors log a run's status or an asset's state when it changes, not at every poke.

Status lines are told apart from run messages by their prefix, not by their wording (which may change).
"""

from __future__ import annotations

import json
from typing import Any

from airflow_provider_mediapocket.hooks.mediapocket import MediaPocketHook
from airflow_provider_mediapocket.sandbox import MediaPocketSandbox, RawReply
from airflow_provider_mediapocket.sandbox.pytest_plugin import mediapocket_sandbox_fixture
from airflow_provider_mediapocket.sensors.mediapocket import MediaPocketAssetSensor, MediaPocketDagActionRunSensor
from tests._compat import capture_logs
from tests.triggers._support import make_context

SLOW = 60.0  # nothing moves unless the test moves the sandbox's clock


sandbox = mediapocket_sandbox_fixture(media_processing_seconds=SLOW, dag_action_run_seconds=SLOW)


def info_lines(logs: list[dict[str, Any]], exclude_prefix: str) -> list[str]:
    return [
        str(e["event"]) for e in logs
        if e.get("log_level") == "info" and not str(e["event"]).startswith(exclude_prefix)
    ]


def test_run_sensor_in_reschedule_mode_logs_a_status_once_per_change(sandbox: MediaPocketSandbox) -> None:
    hook = MediaPocketHook()
    asset = hook.create_asset("reschedule")
    run_id = str(hook.start_dag_action(asset.id, 1).id)
    context = make_context()  # one task_state_store for the whole try, as Airflow keeps it
    runs_path = f"/api/v2/assets/{asset.id}/dag_action_runs"
    with capture_logs() as logs:
        for poke in range(6):
            if poke == 3:  # one poke sees the run "queued" again: a change, then another back to "running"
                runs = [run.to_xcom() for run in hook.list_dag_action_runs(asset.id)]
                queued = [{**run, "status": "queued"} for run in runs]
                raw = RawReply(200, json.dumps({"dag_action_runs": queued}).encode())
                sandbox.inject("raw", method="GET", path_prefix=runs_path, reply=raw)
            sensor = MediaPocketDagActionRunSensor(
                task_id="wait", asset_id=asset.id, dag_action_run_id=run_id, mode="reschedule", deferrable=False,
            )
            assert sensor.poke(context) is False
    lines = info_lines(logs, f"DAG action run {run_id}: ")
    # running (poke 0), queued (poke 3), running (poke 4): one line per change, not one per poke (6).
    assert len(lines) == 3, lines
    assert "queued" in lines[1] and "running" in lines[2]


def test_asset_sensor_in_reschedule_mode_logs_its_state_once_per_change(sandbox: MediaPocketSandbox) -> None:
    hook = MediaPocketHook()
    asset = hook.create_asset("reschedule", tags=["x"])
    hook.add_media(asset.id, "https://files.example.com/a.mp4", "a.mp4")
    context = make_context()
    with capture_logs() as logs:
        for _ in range(4):
            sensor = MediaPocketAssetSensor(task_id="wait", asset_id=asset.id, mode="reschedule", deferrable=False)
            assert sensor.poke(context) is False
        sandbox.state.advance(SLOW)
        done = MediaPocketAssetSensor(task_id="wait", asset_id=asset.id, mode="reschedule", deferrable=False)
        assert done.poke(context)
    assert len(info_lines(logs, "\0")) == 2, logs  # "still processing" once, then "ready"
