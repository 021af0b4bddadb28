"""The sensors against the sandbox over loopback: poke mode, poke-mode execute, and deferral + completion.

``context`` is a minimal dict (a fake ``ti`` recording XCom pushes and a dict-backed ``task_state_store``),
enough for what the sensors use; the real Airflow path (task runner, triggerer) is covered by tests/e2e.
"""

from __future__ import annotations

import time
from typing import Any

import pytest
from airflow.providers.common.compat.sdk import AirflowSensorTimeout, PokeReturnValue, TaskDeferred

from airflow_provider_mediapocket.exceptions import (
    MediaPocketError,
    MediaPocketNotFoundError,
    MediaPocketRunFailedError,
    MediaPocketTimeoutError,
    MediaPocketValidationError,
)
from airflow_provider_mediapocket.hooks.mediapocket import MediaPocketHook
from airflow_provider_mediapocket.sandbox import MediaPocketSandbox
from airflow_provider_mediapocket.sandbox.pytest_plugin import mediapocket_sandbox_fixture
from airflow_provider_mediapocket.sensors.mediapocket import MediaPocketAssetSensor, MediaPocketDagActionRunSensor
from airflow_provider_mediapocket.triggers.mediapocket import MediaPocketAssetTrigger, MediaPocketDagActionRunTrigger
from tests._compat import capture_logs
from tests.triggers._support import first_event, logged_run_messages, make_context

SLOW = 60.0  # lifecycles of the "clock" sandbox: nothing happens unless the test moves the clock


# Runs and media take 60 s: the tests move the sandbox's clock with ``state.advance``.
clock_sandbox = mediapocket_sandbox_fixture(media_processing_seconds=SLOW, dag_action_run_seconds=SLOW)


def start(action: int = 1) -> tuple[str, str]:
    hook = MediaPocketHook()
    asset = hook.create_asset("sensor target")
    return asset.id, str(hook.start_dag_action(asset.id, action).id)


def run_sensor(asset_id: str, run_id: Any, **kwargs: Any) -> MediaPocketDagActionRunSensor:
    kwargs.setdefault("poke_interval", 0.05)
    kwargs.setdefault("timeout", 5)
    return MediaPocketDagActionRunSensor(task_id="wait_run", asset_id=asset_id, dag_action_run_id=run_id, **kwargs)


def logged_messages(logs: list[dict[str, Any]], run_id: str) -> list[str]:
    """Messages logged by the sensor and its trigger (each line ends with the message's time, dropped here)."""
    return logged_run_messages(logs, run_id)


def expected_messages(asset_id: str, last: str = "Finished successfully") -> list[str]:
    return ["Set in queue...", "Started processing", f"Processing asset {asset_id}", last]


# ------------------------------------------------------------------------------ run sensor, poke mode


def test_an_unknown_status_means_running_and_is_logged_once(clock_sandbox: MediaPocketSandbox) -> None:
    asset_id, run_id = start(5)  # "Never ending": nothing changes it but this test
    clock_sandbox.state.set_run_status(int(run_id), "Transcoding")
    sensor = run_sensor(asset_id, run_id, deferrable=False)
    with capture_logs() as logs:
        assert sensor.poke(make_context()) is False
        assert sensor.poke(make_context()) is False
        clock_sandbox.state.set_run_status(int(run_id), "COMPLETED")
        done = sensor.poke(make_context())
    assert isinstance(done, PokeReturnValue) and done.is_done
    notes = [e["event"] for e in logs if "neither a success nor a failure status" in str(e["event"])]
    assert notes == ["Status 'Transcoding' is neither a success nor a failure status: treating it as still running"]
    changes = [e["event"] for e in logs if str(e["event"]).endswith(("has status 'Transcoding'",
                                                                      "has status 'COMPLETED'"))]
    assert len(changes) == 2



def test_reschedule_mode_logs_each_message_once_across_sensor_instances(clock_sandbox: MediaPocketSandbox) -> None:
    """In reschedule mode every poke runs in a new process (a new sensor object); the count of logged
    messages travels in task_state_store, so no message is logged twice."""
    asset_id, run_id = start()
    context = make_context()  # one task_state_store for the whole try, as Airflow keeps it
    with capture_logs() as logs:
        for step in (0.0, 0.2, 0.0, 0.3, 0.5):
            clock_sandbox.state.advance(step * SLOW)
            result = run_sensor(asset_id, run_id, deferrable=False, mode="reschedule").poke(context)
    assert isinstance(result, PokeReturnValue) and result.is_done
    assert logged_messages(logs, run_id) == expected_messages(asset_id)



def test_run_sensor_pokes_as_the_clock_moves(clock_sandbox: MediaPocketSandbox) -> None:
    asset_id, run_id = start()
    sensor = run_sensor(asset_id, run_id, deferrable=False)
    context = make_context()
    with capture_logs() as logs:
        assert sensor.poke(context) is False
        clock_sandbox.state.advance(0.2 * SLOW)
        assert sensor.poke(context) is False
        assert sensor.poke(context) is False  # nothing new: nothing logged again
        clock_sandbox.state.advance(0.3 * SLOW)
        assert sensor.poke(context) is False
        clock_sandbox.state.advance(0.5 * SLOW)
        done = sensor.poke(context)
    assert isinstance(done, PokeReturnValue) and done.is_done
    assert done.xcom_value["status"] == "completed"
    assert str(done.xcom_value["id"]) == run_id
    assert logged_messages(logs, run_id) == expected_messages(asset_id)


def test_run_sensor_poke_raises_on_a_failed_run(clock_sandbox: MediaPocketSandbox) -> None:
    asset_id, run_id = start(action=4)
    sensor = run_sensor(asset_id, run_id, deferrable=False)
    assert sensor.poke(make_context()) is False
    clock_sandbox.state.advance(SLOW)
    with pytest.raises(MediaPocketRunFailedError) as info:
        sensor.poke(make_context())
    text = str(info.value)
    assert "Error: pipeline step failed" in text
    assert "Set in queue..." in text and f"Processing asset {asset_id}" in text
    assert "failed with status 'failed'" in text


def test_run_sensor_templated_run_id_as_string(clock_sandbox: MediaPocketSandbox) -> None:
    hook = MediaPocketHook()
    asset = hook.create_asset("two runs")
    first = hook.start_dag_action(asset.id, 5)
    second = hook.start_dag_action(asset.id, 1)
    assert (first.id, second.id) == ("1", "2")  # ids are strings, also when the API sends numbers
    clock_sandbox.state.advance(SLOW)
    sensor = run_sensor(asset.id, "2", deferrable=False)  # a rendered template is a string
    done = sensor.poke(make_context())
    assert isinstance(done, PokeReturnValue) and done.is_done
    assert done.xcom_value["id"] == "2"
    assert done.xcom_value["dag_action"]["name"] == "Transcode"
    assert run_sensor(asset.id, " 1 ", deferrable=False).poke(make_context()) is False  # run 1 never ends


def test_run_sensor_execute_in_poke_mode(sandbox: MediaPocketSandbox) -> None:
    asset_id, run_id = start()
    sensor = run_sensor(asset_id, run_id, deferrable=False)
    with capture_logs() as logs:
        result = sensor.execute(make_context())
    assert result["status"] == "completed"
    assert str(result["id"]) == run_id
    assert logged_messages(logs, run_id) == expected_messages(asset_id)


def test_run_sensor_execute_in_poke_mode_times_out(sandbox: MediaPocketSandbox) -> None:
    asset_id, run_id = start(action=5)
    sensor = run_sensor(asset_id, run_id, deferrable=False, timeout=0.3)
    began = time.monotonic()
    with pytest.raises(AirflowSensorTimeout):
        sensor.execute(make_context())
    assert time.monotonic() - began < 3


def test_run_sensor_missing_asset_fails(sandbox: MediaPocketSandbox) -> None:
    with pytest.raises(MediaPocketNotFoundError):
        run_sensor("no-such-asset", 1, deferrable=False).poke(make_context())


# ------------------------------------------------------------------------------ run sensor, deferrable


def test_task_deferred_import_path() -> None:
    """The TaskDeferred the tests catch is the one a real operator's ``defer`` raises, on every version."""
    from airflow.providers.common.compat.sdk import BaseOperator

    from airflow_provider_mediapocket.triggers.mediapocket import MediaPocketAssetTrigger

    with pytest.raises(TaskDeferred):
        BaseOperator(task_id="t").defer(trigger=MediaPocketAssetTrigger(asset_id="1", end_time=0.0), method_name="done")


def test_run_sensor_defers_then_completes(clock_sandbox: MediaPocketSandbox) -> None:
    asset_id, run_id = start()
    sensor = run_sensor(asset_id, run_id, deferrable=True, poke_interval=0.05, timeout=30)
    context = make_context()
    with capture_logs() as logs:
        before = time.time()
        with pytest.raises(TaskDeferred) as deferred:
            sensor.execute(context)
        trigger = deferred.value.trigger
        assert isinstance(trigger, MediaPocketDagActionRunTrigger)
        assert deferred.value.method_name == "execute_complete"
        _, kwargs = trigger.serialize()
        assert kwargs["poll_interval"] == 0.05
        assert before + 30 <= kwargs["end_time"] <= time.time() + 30
        assert kwargs["asset_id"] == asset_id and kwargs["dag_action_run_id"] == run_id
        assert kwargs["watch"]["messages_seen"] == 1  # "Set in queue..." was logged by the first poke
        assert deferred.value.timeout is not None and deferred.value.timeout.total_seconds() == 30
        clock_sandbox.state.advance(SLOW)
        event = first_event(trigger)
        result = sensor.execute_complete(context, event)
    assert result["status"] == "completed" and str(result["id"]) == run_id
    assert logged_messages(logs, run_id) == expected_messages(asset_id)  # each exactly once, in order


def test_run_sensor_deferrable_returns_at_once_when_already_done(clock_sandbox: MediaPocketSandbox) -> None:
    asset_id, run_id = start()
    clock_sandbox.state.advance(SLOW)
    result = run_sensor(asset_id, run_id, deferrable=True).execute(make_context())
    assert result["status"] == "completed"


def test_run_sensor_deferred_failure_raises_with_the_messages(clock_sandbox: MediaPocketSandbox) -> None:
    asset_id, run_id = start(action=4)
    sensor = run_sensor(asset_id, run_id, deferrable=True)
    context = make_context()
    with capture_logs() as logs:
        with pytest.raises(TaskDeferred) as deferred:
            sensor.execute(context)
        clock_sandbox.state.advance(SLOW)
        event = first_event(deferred.value.trigger)
        assert event["status"] == "failed"
        with pytest.raises(MediaPocketRunFailedError) as info:
            sensor.execute_complete(context, event)
    assert "Error: pipeline step failed" in str(info.value)
    assert "Started processing" in str(info.value)
    assert logged_messages(logs, run_id) == expected_messages(asset_id, "Error: pipeline step failed")


def test_run_sensor_deferred_timeout(clock_sandbox: MediaPocketSandbox) -> None:
    asset_id, run_id = start(action=5)
    sensor = run_sensor(asset_id, run_id, deferrable=True, timeout=0.2)
    with pytest.raises(TaskDeferred) as deferred:
        sensor.execute(make_context())
    event = first_event(deferred.value.trigger)
    assert event["status"] == "timeout"
    with pytest.raises(MediaPocketTimeoutError, match="did not finish before its deadline"):
        sensor.execute_complete(make_context(), event)


def test_run_sensor_error_event_fails_the_task(sandbox: MediaPocketSandbox) -> None:
    sensor = run_sensor("a", 1, deferrable=True)
    with pytest.raises(MediaPocketError, match="boom"):
        sensor.execute_complete(make_context(), {"status": "error", "message": "boom"})
    with pytest.raises(MediaPocketError, match="Unexpected event"):
        sensor.execute_complete(make_context(), {"no": "status"})  # type: ignore[arg-type]


def test_run_sensor_templated_string_ids_reach_the_trigger(clock_sandbox: MediaPocketSandbox) -> None:
    asset_id, run_id = start()
    with pytest.raises(TaskDeferred) as deferred:
        run_sensor(f" {asset_id} ", f"{run_id}", deferrable=True).execute(make_context())
    _, kwargs = deferred.value.trigger.serialize()
    assert kwargs["asset_id"] == asset_id and kwargs["dag_action_run_id"] == run_id


# ------------------------------------------------------------------------------ parameter validation


def test_empty_asset_id_is_rejected_before_any_request(sandbox: MediaPocketSandbox) -> None:
    for sensor in (run_sensor("", 1, deferrable=False), MediaPocketAssetSensor(task_id="a", asset_id="  ")):
        with pytest.raises(MediaPocketValidationError, match="'asset_id'"):
            sensor.poke(make_context())
    with pytest.raises(MediaPocketValidationError, match="'dag_action_run_id'"):
        run_sensor("abc", None, deferrable=False).poke(make_context())
    assert sandbox.requests == []


def test_overlapping_statuses_are_rejected() -> None:
    with pytest.raises(MediaPocketValidationError) as info:
        run_sensor("a", 1, success_statuses=["Done", "completed"], failure_statuses=["done"])
    assert "'success_statuses'" in str(info.value) and "'failure_statuses'" in str(info.value)
    assert "done" in str(info.value)


@pytest.mark.parametrize(("name", "value"), [
    ("success_statuses", ["completed", 3]),
    ("failure_statuses", [None]),
    ("success_statuses", ["  "]),
    ("success_statuses", []),
])
def test_bad_status_values_name_the_parameter(name: str, value: Any) -> None:
    with pytest.raises(MediaPocketValidationError, match=f"'{name}'"):
        run_sensor("a", 1, **{name: value})


def test_bad_target_statuses_name_the_parameter() -> None:
    with pytest.raises(MediaPocketValidationError, match="'target_statuses'"):
        MediaPocketAssetSensor(task_id="a", asset_id="x", target_statuses=[1])  # type: ignore[list-item]


def test_statuses_are_compared_case_insensitively(clock_sandbox: MediaPocketSandbox) -> None:
    asset_id, run_id = start()
    clock_sandbox.state.advance(SLOW)
    sensor = run_sensor(asset_id, run_id, success_statuses=["COMPLETED"], deferrable=False)
    assert sensor.success_statuses == ["completed"]
    assert sensor.poke(make_context())


# ------------------------------------------------------------------------------ asset sensor


def asset_sensor(asset_id: str, **kwargs: Any) -> MediaPocketAssetSensor:
    kwargs.setdefault("poke_interval", 0.05)
    kwargs.setdefault("timeout", 5)
    return MediaPocketAssetSensor(task_id="wait_asset", asset_id=asset_id, **kwargs)


def test_asset_sensor_pokes_until_media_is_processed(clock_sandbox: MediaPocketSandbox) -> None:
    hook = MediaPocketHook()
    asset = hook.create_asset("media")
    hook.add_media(asset.id, "https://media.example.com/photos/cat.jpg")
    sensor = asset_sensor(asset.id, deferrable=False)
    assert sensor.poke(make_context()) is False
    clock_sandbox.state.advance(SLOW)
    done = sensor.poke(make_context())
    assert isinstance(done, PokeReturnValue) and done.is_done
    assert done.xcom_value["media_type"] == "image"
    assert done.xcom_value["original_filename"] == "cat.jpg"


def test_asset_sensor_target_statuses(clock_sandbox: MediaPocketSandbox) -> None:
    hook = MediaPocketHook()
    asset = hook.create_asset("status")
    assert asset_sensor(asset.id, target_statuses=["rejected"], deferrable=False).poke(make_context()) is False
    done = asset_sensor(asset.id, target_statuses=["OPEN"], deferrable=False).poke(make_context())
    assert isinstance(done, PokeReturnValue) and done.xcom_value["status"] == "open"


def test_asset_sensor_trashed_asset_fails(clock_sandbox: MediaPocketSandbox) -> None:
    hook = MediaPocketHook()
    asset = hook.create_asset("trash")
    hook.trash_asset(asset.id)
    with pytest.raises(MediaPocketError, match="trash bin"):
        asset_sensor(asset.id, deferrable=False).poke(make_context())


def test_asset_sensor_execute_in_poke_mode(sandbox: MediaPocketSandbox) -> None:
    hook = MediaPocketHook()
    asset = hook.create_asset("media")
    hook.add_media(asset.id, "https://media.example.com/a/song.mp3")
    result = asset_sensor(asset.id, deferrable=False).execute(make_context())
    assert result["media_type"] == "audio" and result["id"] == asset.id


def test_asset_sensor_defers_then_completes(clock_sandbox: MediaPocketSandbox) -> None:
    hook = MediaPocketHook()
    asset = hook.create_asset("media")
    hook.add_media(asset.id, "https://media.example.com/v/film.mov")
    sensor = asset_sensor(asset.id, deferrable=True, poke_interval=0.05, timeout=20)
    before = time.time()
    with pytest.raises(TaskDeferred) as deferred:
        sensor.execute(make_context())
    trigger = deferred.value.trigger
    assert isinstance(trigger, MediaPocketAssetTrigger)
    _, kwargs = trigger.serialize()
    assert kwargs["poll_interval"] == 0.05
    assert before + 20 <= kwargs["end_time"] <= time.time() + 20
    clock_sandbox.state.advance(SLOW)
    result = sensor.execute_complete(make_context(), first_event(trigger))
    assert result["media_type"] == "video" and result["id"] == asset.id


def test_asset_sensor_deferred_timeout_and_failure(clock_sandbox: MediaPocketSandbox) -> None:
    hook = MediaPocketHook()
    asset = hook.create_asset("waits")
    sensor = asset_sensor(asset.id, deferrable=True, target_statuses=["rejected"], timeout=0.2)
    with pytest.raises(TaskDeferred) as deferred:
        sensor.execute(make_context())
    event = first_event(deferred.value.trigger)
    with pytest.raises(MediaPocketTimeoutError, match="not ready before the deadline"):
        sensor.execute_complete(make_context(), event)
    hook.trash_asset(asset.id)
    failed = first_event(MediaPocketAssetTrigger(asset_id=asset.id, end_time=time.time() + 2, poll_interval=0.05))
    assert failed["status"] == "failed"
    with pytest.raises(MediaPocketError, match="trash bin"):
        sensor.execute_complete(make_context(), failed)
