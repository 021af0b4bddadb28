"""Issue 9 section 4: ``MediaPocketNotifier`` comments on an asset or a project, through every door Airflow
3.3 has for a notifier: a task/DAG callback (``notifier(context)``, also how HITL steps call their
notifiers), a deadline alert's ``AsyncCallback`` (Airflow's ``CallbackTrigger``, as on the triggerer) and
its ``SyncCallback`` (the executor's ``execute_callback``). The ingest DAG's use is tested in tests/e2e."""

from __future__ import annotations

import asyncio
import re
from typing import Any

import pytest
import structlog
from packaging.version import Version

from airflow_provider_mediapocket import get_provider_info
from airflow_provider_mediapocket.exceptions import MediaPocketValidationError
from airflow_provider_mediapocket.hooks.mediapocket import MediaPocketHook
from airflow_provider_mediapocket.notifications.mediapocket import MediaPocketNotifier
from airflow_provider_mediapocket.sandbox import MediaPocketSandbox
from tests._compat import AIRFLOW_VERSION, capture_logs, requires_airflow

PATH = "airflow_provider_mediapocket.notifications.mediapocket.MediaPocketNotifier"


def comments(sandbox: MediaPocketSandbox, kind: str, target: str) -> list[str]:
    return [c["message"] for c in sandbox.state.comments_of(kind, target)]


def callback_context(**values: Any) -> dict[str, Any]:
    """A task callback's context: Airflow's always holds the DAG (3.0's notifier reads it to render)."""
    from airflow.sdk import DAG

    return {"dag": DAG(dag_id="notifier_test", schedule=None), **values}


def test_registered_under_notifications() -> None:
    assert get_provider_info()["notifications"] == [PATH]


def test_as_a_task_callback_renders_the_message_and_comments_on_the_asset(sandbox: MediaPocketSandbox) -> None:
    asset = MediaPocketHook().create_asset("Target")
    notifier = MediaPocketNotifier(asset_id="{{ params.asset }}", message="{{ task_id }} failed: {{ exception }}")
    notifier(callback_context(params={"asset": asset.id}, task_id="transcode", exception=RuntimeError("boom")))
    assert comments(sandbox, "Asset", asset.id) == ["transcode failed: boom"]


def test_on_a_project(sandbox: MediaPocketSandbox) -> None:
    project_id = sandbox.state.seed_project_id
    MediaPocketNotifier(project_id=project_id, message="Ingest of {{ ds }} done")(callback_context(ds="2026-01-02"))
    assert comments(sandbox, "Project", project_id) == ["Ingest of 2026-01-02 done"]


@pytest.mark.parametrize(
    ("kwargs", "problem"),
    [
        ({"message": "m"}, "give exactly one"),
        ({"message": "m", "asset_id": "1", "project_id": "2"}, "give exactly one"),
        pytest.param({"message": "{{ params.note }}", "asset_id": "1"}, "'message': must be a non-empty string",
                     marks=requires_airflow("3.3", "before 3.3 Airflow keeps a field's template text when it renders "
                                                   "empty, so the notifier cannot see that it did")),
    ],
)
def test_bad_parameters_fail_before_any_request(
    sandbox: MediaPocketSandbox, kwargs: dict[str, Any], problem: str
) -> None:
    before = len(sandbox.requests)
    raised = None
    with capture_logs() as logs:
        try:
            MediaPocketNotifier(**kwargs)(callback_context(params={"note": ""}))
        except MediaPocketValidationError as exc:
            raised = str(exc)
    if Version("3.2") <= AIRFLOW_VERSION:
        assert raised is not None, "the callback's error must reach Airflow"
    # Airflow 3.0's BaseNotifier logs what notify() raised instead of raising it.
    errors = [raised] if raised else [e["event"] for e in logs if e["log_level"] == "error"]
    assert any(re.search(problem, error) for error in errors), errors
    assert len(sandbox.requests) == before


@requires_airflow("3.2", "deadline AsyncCallbacks (airflow.sdk.definitions.callback, CallbackTrigger)")
def test_as_a_deadline_async_callback_on_the_triggerer(sandbox: MediaPocketSandbox) -> None:
    from airflow.sdk.definitions.callback import AsyncCallback
    from airflow.triggers.callback import CallbackTrigger

    asset = MediaPocketHook().create_asset("Late")
    callback = AsyncCallback(MediaPocketNotifier, kwargs={"asset_id": asset.id, "message": "Deadline missed"})
    trigger = CallbackTrigger(callback_path=callback.path, callback_kwargs={**callback.kwargs, "context": {}})

    async def states() -> list[str]:
        return [str(event.payload["state"]) async for event in trigger.run()]

    assert asyncio.run(states())[-1].endswith("success")
    assert comments(sandbox, "Asset", asset.id) == ["Deadline missed"]


@requires_airflow("3.3", "deadline SyncCallbacks run by the executor (callback_supervisor)")
def test_as_a_deadline_sync_callback_on_an_executor(sandbox: MediaPocketSandbox) -> None:
    from airflow.sdk.definitions.callback import SyncCallback
    from airflow.sdk.execution_time.callback_supervisor import execute_callback

    asset = MediaPocketHook().create_asset("Late too")
    callback = SyncCallback(MediaPocketNotifier, kwargs={"asset_id": asset.id, "message": "Run {{ dag_run }} late"})
    ok, error = execute_callback(callback.path, {**callback.kwargs, "context": {"dag_run": "r1"}}, "x.py", None,
                                 structlog.get_logger())
    assert (ok, error) == (True, None)
    assert comments(sandbox, "Asset", asset.id) == ["Run r1 late"]
