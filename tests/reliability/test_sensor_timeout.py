"""Issue 7 item 6: a deferrable sensor's timeout ends the task like poke and reschedule mode do.

The task runner fails an ``AirflowSensorTimeout`` for good (no retry); any other error is retried,
and a retried deferrable sensor used to wait its whole ``timeout`` again. The event goes through
``resume_execution``, the entry point the task runner calls after a deferral.
"""

from __future__ import annotations

from typing import Any

import pytest
from airflow.providers.common.compat.sdk import AirflowSensorTimeout, AirflowSkipException, TaskDeferred

from airflow_provider_mediapocket.exceptions import MediaPocketTimeoutError
from airflow_provider_mediapocket.hooks.mediapocket import MediaPocketHook
from airflow_provider_mediapocket.operators.mediapocket import MediaPocketStartDagActionOperator
from airflow_provider_mediapocket.sandbox import MediaPocketSandbox
from airflow_provider_mediapocket.sandbox.pytest_plugin import mediapocket_sandbox_fixture
from airflow_provider_mediapocket.sensors.mediapocket import MediaPocketAssetSensor, MediaPocketDagActionRunSensor
from tests.triggers._support import first_event, make_context

SLOW = 600.0  # nothing finishes during a test


sandbox = mediapocket_sandbox_fixture(media_processing_seconds=SLOW, dag_action_run_seconds=SLOW)


def timeout_event(sensor: Any) -> dict[str, Any]:
    """Defer the sensor and run its trigger to its (timeout) event."""
    with pytest.raises(TaskDeferred) as deferred:
        sensor.execute(make_context())
    event = first_event(deferred.value.trigger)
    assert event["status"] == "timeout", event
    return event


def run_sensor(**kwargs: Any) -> MediaPocketDagActionRunSensor:
    hook = MediaPocketHook()
    asset = hook.create_asset("sensor timeout")
    run = hook.start_dag_action(asset.id, 1)
    return MediaPocketDagActionRunSensor(
        task_id="wait_run", asset_id=asset.id, dag_action_run_id=run.id, deferrable=True,
        poke_interval=0.05, timeout=0.2, **kwargs,
    )


def asset_sensor(**kwargs: Any) -> MediaPocketAssetSensor:
    asset = MediaPocketHook().create_asset("sensor timeout")
    return MediaPocketAssetSensor(
        task_id="wait_asset", asset_id=asset.id, target_statuses=["approved"], deferrable=True,
        poke_interval=0.05, timeout=0.2, **kwargs,
    )


@pytest.mark.parametrize("make", [run_sensor, asset_sensor], ids=["run_sensor", "asset_sensor"])
def test_deferred_sensor_timeout_is_an_airflow_sensor_timeout(sandbox: MediaPocketSandbox, make: Any) -> None:
    sensor = make()
    event = timeout_event(sensor)
    with pytest.raises(AirflowSensorTimeout, match="deadline") as info:
        sensor.resume_execution("execute_complete", {"event": event}, make_context())
    # Still a Media Pocket timeout for code that catches the provider's own errors.
    assert isinstance(info.value, MediaPocketTimeoutError)


@pytest.mark.parametrize("make", [run_sensor, asset_sensor], ids=["run_sensor", "asset_sensor"])
def test_deferred_sensor_timeout_with_soft_fail_skips(sandbox: MediaPocketSandbox, make: Any) -> None:
    sensor = make(soft_fail=True)
    event = timeout_event(sensor)
    with pytest.raises(AirflowSkipException):
        sensor.resume_execution("execute_complete", {"event": event}, make_context())


def test_start_operator_deferred_wait_timeout_stays_a_retryable_error(sandbox: MediaPocketSandbox) -> None:
    """Not a sensor: its wait's timeout stays a MediaPocketTimeoutError (retried by Airflow as before;
    a retry re-attaches to the stored run rather than starting another)."""
    asset = MediaPocketHook().create_asset("operator timeout")
    operator = MediaPocketStartDagActionOperator(
        task_id="start", asset_id=asset.id, dag_action_id=1, deferrable=True, poll_interval=0.05, timeout=0.2,
    )
    with pytest.raises(TaskDeferred) as deferred:
        operator.execute(make_context())
    event = first_event(deferred.value.trigger)
    assert event["status"] == "timeout"
    with pytest.raises(MediaPocketTimeoutError) as info:
        operator.resume_execution("execute_complete", {"event": event}, make_context())
    assert not isinstance(info.value, AirflowSensorTimeout)
