"""The deferrable triggers against the sandbox over loopback: outcomes, deadlines, errors, serialization."""

from __future__ import annotations

import asyncio
import importlib
import json
import logging
import time
from typing import Any

import pytest

from airflow_provider_mediapocket.hooks.mediapocket import MediaPocketHook
from airflow_provider_mediapocket.sandbox import MediaPocketSandbox
from airflow_provider_mediapocket.sandbox.pytest_plugin import sandbox_as_connection
from airflow_provider_mediapocket.triggers.mediapocket import MediaPocketAssetTrigger, MediaPocketDagActionRunTrigger
from tests._compat import capture_logs
from tests.triggers._support import (
    MEDIA_SECONDS,
    RUN_SECONDS,
    add_connection,
    calls,
    first_event,
    first_payload,
    logged_run_messages,
)

ALL_MESSAGES = ["Set in queue...", "Started processing", "Processing asset {asset}", "Finished successfully"]


@pytest.fixture
def hook(sandbox: MediaPocketSandbox) -> MediaPocketHook:
    return MediaPocketHook(retry_backoff=0.01)


def run_trigger(asset_id: str, run_id: Any, *, end_in: float = 5.0, **kwargs: Any) -> MediaPocketDagActionRunTrigger:
    return MediaPocketDagActionRunTrigger(
        asset_id=asset_id, dag_action_run_id=run_id, end_time=time.time() + end_in, poll_interval=0.05, **kwargs
    )


def started(hook: MediaPocketHook, action: int = 1) -> tuple[str, str]:
    asset = hook.create_asset(f"trigger target {action}")
    run = hook.start_dag_action(asset.id, action)
    assert run.status == "running"
    return asset.id, str(run.id)


# ------------------------------------------------------------------------------------ DAG action runs


def test_run_success_logs_every_message_as_seen_and_sends_a_small_event(monkeypatch: pytest.MonkeyPatch) -> None:
    # A run of 2 s, so that the first poll sees it running on every Airflow version (3.0's trigger takes
    # longer than this module's 0.3 s runs to reach its first poll).
    with sandbox_as_connection(monkeypatch, media_processing_seconds=MEDIA_SECONDS, dag_action_run_seconds=2.0):
        hook = MediaPocketHook(retry_backoff=0.01)
        asset_id, run_id = started(hook)
        with capture_logs() as logs:
            event = first_event(run_trigger(asset_id, run_id))
        assert event == {
            "status": "success", "asset_id": asset_id, "dag_action_run_id": run_id,
            "message": f"Transcode run {run_id} on asset {asset_id} finished with status 'completed'",
        }  # no run object, no messages: the "Trigger fired event" line prints the event whole
        # Each message logged once, in order, as the polls saw it, with the message's own time.
        assert logged_run_messages(logs, run_id) == [m.format(asset=asset_id) for m in ALL_MESSAGES]
        run = hook.get_dag_action_run(asset_id, run_id)
        lines = [e["event"] for e in logs if str(e["event"]).startswith(f"DAG action run {run_id}: ")]
        assert lines == [f"DAG action run {run_id}: {m.message} (at {m.created_at})" for m in run.dag_action_run_messages]
        # ... and before the run ended, not in one batch at the end (the first poll saw it running).
        first_message = next(i for i, e in enumerate(logs) if str(e["event"]).startswith(f"DAG action run {run_id}"))
        running = next(i for i, e in enumerate(logs) if "has status 'running'" in str(e["event"]))
        assert first_message < running
        json.dumps(event)  # plain JSON


def test_run_trigger_logs_only_messages_the_task_has_not_logged(hook: MediaPocketHook) -> None:
    asset_id, run_id = started(hook)
    with capture_logs() as logs:
        event = first_event(run_trigger(asset_id, run_id, watch={"messages_seen": 2}))
    assert event["status"] == "success"
    assert logged_run_messages(logs, run_id) == [f"Processing asset {asset_id}", "Finished successfully"]


def test_run_failed(hook: MediaPocketHook) -> None:
    asset_id, run_id = started(hook, action=4)
    with capture_logs() as logs:
        event = first_event(run_trigger(asset_id, run_id))
    assert event["status"] == "failed"
    assert "run" not in event and "new_messages" not in event
    assert f"run {run_id} on asset {asset_id} failed with status 'failed'" in event["message"]
    assert "Error: pipeline step failed" in event["message"]
    assert "Set in queue..." in event["message"]  # the failure text carries every run message
    assert logged_run_messages(logs, run_id)[-1] == "Error: pipeline step failed"


def test_never_ending_run_times_out(hook: MediaPocketHook) -> None:
    asset_id, run_id = started(hook, action=5)
    began = time.monotonic()
    with capture_logs() as logs:
        event = first_event(run_trigger(asset_id, run_id, end_in=0.3))
    elapsed = time.monotonic() - began
    assert event["status"] == "timeout"
    assert "did not finish before its deadline" in event["message"]
    assert "last status: running" in event["message"]
    assert set(event) == {"status", "message", "asset_id", "dag_action_run_id"}
    assert logged_run_messages(logs, run_id)[:1] == ["Set in queue..."]
    assert 0.25 <= elapsed < 3.0


def test_status_is_checked_before_the_deadline(sandbox: MediaPocketSandbox, hook: MediaPocketHook) -> None:
    asset_id, run_id = started(hook)
    sandbox.state.advance(RUN_SECONDS * 2)  # the run is complete now
    event = first_event(run_trigger(asset_id, run_id, end_in=-60))
    assert event["status"] == "success"
    assert "finished with status 'completed'" in event["message"]


def test_deadline_in_the_past_on_a_running_run_is_a_timeout_after_one_poll(
    sandbox: MediaPocketSandbox, hook: MediaPocketHook
) -> None:
    asset_id, run_id = started(hook, action=5)
    sandbox.clear_requests()
    event = first_event(run_trigger(asset_id, run_id, end_in=-60))
    assert event["status"] == "timeout"
    assert len(calls(sandbox, "GET", f"/api/v2/assets/{asset_id}/dag_action_runs")) == 1


def test_transient_errors_are_logged_and_polled_again(sandbox: MediaPocketSandbox, hook: MediaPocketHook) -> None:
    asset_id, run_id = started(hook)
    prefix = f"/api/v2/assets/{asset_id}/dag_action_runs"
    sandbox.clear_requests()
    sandbox.inject("503", "503", "503", method="GET", path_prefix=prefix)
    with capture_logs() as logs:
        event = first_event(run_trigger(asset_id, run_id, hook_params={"retry_limit": 0}))
    assert event["status"] == "success"
    warnings = [e["event"] for e in logs if e["log_level"] == "warning" and "Transient" in e["event"]]
    assert len(warnings) == 3, logs
    assert [r.status for r in calls(sandbox, "GET", prefix)][:3] == [503, 503, 503]


def test_missing_asset_is_an_error_event(hook: MediaPocketHook) -> None:
    event = first_event(run_trigger("no-such-asset", 1))
    assert event["status"] == "error"
    assert event["error_type"] == "MediaPocketNotFoundError"
    assert "404" in event["message"] or "not found" in event["message"]
    assert event["asset_id"] == "no-such-asset"


def test_missing_run_is_an_error_event(hook: MediaPocketHook) -> None:
    asset_id, _ = started(hook)
    event = first_event(run_trigger(asset_id, 999))
    assert event["status"] == "error"
    assert "DAG action run 999 not found" in event["message"]


def test_key_without_actions_view_is_an_error_event(
    sandbox: MediaPocketSandbox, hook: MediaPocketHook, monkeypatch: pytest.MonkeyPatch
) -> None:
    asset_id, run_id = started(hook)
    sandbox.state.add_api_key("restricted-key-7a1b", permissions=set())
    add_connection(monkeypatch, sandbox, "mp_restricted", "restricted-key-7a1b")
    event = first_event(run_trigger(asset_id, run_id, mediapocket_conn_id="mp_restricted"))
    assert event["status"] == "error"
    assert event["error_type"] == "MediaPocketPermissionError"
    assert "Must have ACTIONS_VIEW permissions" in event["message"]
    assert "restricted-key-7a1b" not in json.dumps(event)


def test_missing_connection_is_an_error_event(hook: MediaPocketHook) -> None:
    event = first_event(run_trigger("a", 1, mediapocket_conn_id="mp_does_not_exist"))
    assert event["status"] == "error"
    assert event["error_type"] == "MediaPocketConfigError"
    assert "mp_does_not_exist" in event["message"]


def test_mixed_case_statuses_given_to_the_trigger_still_match(sandbox: MediaPocketSandbox, hook: MediaPocketHook) -> None:
    """The docstring says statuses are compared lower-cased; a trigger built directly with "Completed" works."""
    asset_id, run_id = started(hook)
    sandbox.state.advance(RUN_SECONDS * 2)  # complete
    event = first_event(run_trigger(asset_id, run_id, end_in=0.3, watch={"success_statuses": ["Completed"]}))
    assert event["status"] == "success"


# ------------------------------------------------------------------------------------ serialization


def rebuild(classpath: str, kwargs: dict[str, Any]) -> Any:
    module, _, name = classpath.rpartition(".")
    return getattr(importlib.import_module(module), name)(**kwargs)


def test_run_trigger_serializes_to_plain_json_without_the_key(sandbox: MediaPocketSandbox) -> None:
    from tests._compat import deserialize, serialize

    trigger = run_trigger("asset-1", 7, watch={"messages_seen": 3}, hook_params={"retry_limit": 0, "timeout": 5.0})
    classpath, kwargs = trigger.serialize()
    assert classpath == "airflow_provider_mediapocket.triggers.mediapocket.MediaPocketDagActionRunTrigger"
    assert kwargs["poll_interval"] == 0.05
    assert kwargs["watch"]["messages_seen"] == 3
    assert kwargs["dag_action_run_id"] == "7"
    assert kwargs["hook_params"] == {"retry_limit": 0, "timeout": 5.0}
    assert deserialize(serialize(kwargs)) == kwargs
    assert json.loads(json.dumps(kwargs)) == kwargs
    assert sandbox.api_key not in json.dumps(kwargs)
    again = rebuild(classpath, kwargs)
    assert type(again) is MediaPocketDagActionRunTrigger
    assert again.serialize() == (classpath, kwargs)


def test_asset_trigger_serializes_round_trip(sandbox: MediaPocketSandbox) -> None:
    from tests._compat import deserialize, serialize

    trigger = MediaPocketAssetTrigger(asset_id="a1", end_time=time.time() + 5, poll_interval=0.05,
                                      target_statuses=["open"], wait_for_media=False)
    classpath, kwargs = trigger.serialize()
    assert deserialize(serialize(kwargs)) == kwargs
    assert sandbox.api_key not in json.dumps(kwargs)
    assert rebuild(classpath, kwargs).serialize() == (classpath, kwargs)


def test_triggerer_restart_mid_wait_gives_the_same_result(sandbox: MediaPocketSandbox, hook: MediaPocketHook) -> None:
    asset_id, run_id = started(hook)
    trigger = run_trigger(asset_id, run_id, watch={"messages_seen": 1})
    classpath, kwargs = trigger.serialize()

    async def interrupted() -> None:
        with pytest.raises(asyncio.TimeoutError):
            await asyncio.wait_for(first_payload(trigger), 0.1)  # the triggerer dies mid-wait

    asyncio.run(interrupted())
    assert calls(sandbox, "GET", f"/api/v2/assets/{asset_id}/dag_action_runs")  # it really was polling
    restarted = rebuild(json.loads(json.dumps(classpath)), json.loads(json.dumps(kwargs)))
    with capture_logs() as logs:
        event = first_event(restarted)
    assert event["status"] == "success"
    # The restarted trigger starts from the kwargs' watch: what the task logged before deferring.
    assert logged_run_messages(logs, run_id)[-1] == "Finished successfully"
    assert logged_run_messages(logs, run_id) == [m.format(asset=asset_id) for m in ALL_MESSAGES[1:]]
    # an uninterrupted trigger would have reported the same
    assert first_event(run_trigger(asset_id, run_id, watch={"messages_seen": 1})) == event
    assert sandbox.api_key not in json.dumps(event)


def test_the_api_key_is_in_no_event(sandbox: MediaPocketSandbox, hook: MediaPocketHook) -> None:
    key = sandbox.api_key
    texts = []
    for action in (1, 4):
        asset_id, run_id = started(hook, action)
        sandbox.state.advance(RUN_SECONDS * 2)
        texts.append(json.dumps(first_event(run_trigger(asset_id, run_id))))
    asset_id, run_id = started(hook, 5)
    texts.append(json.dumps(first_event(run_trigger(asset_id, run_id, end_in=0.1))))
    texts.append(json.dumps(first_event(run_trigger("missing", 1))))
    texts.append(json.dumps(first_event(MediaPocketAssetTrigger(asset_id=asset_id, end_time=time.time() + 2))))
    assert all(key not in text for text in texts)
    assert len(texts) == 5


# ------------------------------------------------------------------------------------ assets


def asset_trigger(asset_id: str, *, end_in: float = 5.0, **kwargs: Any) -> MediaPocketAssetTrigger:
    return MediaPocketAssetTrigger(asset_id=asset_id, end_time=time.time() + end_in, poll_interval=0.05, **kwargs)


def test_asset_trigger_waits_for_media_processing(monkeypatch: pytest.MonkeyPatch) -> None:
    # media takes 0.5 s here, so the trigger's first poll sees it still processing
    with sandbox_as_connection(monkeypatch, media_processing_seconds=0.5, dag_action_run_seconds=RUN_SECONDS) as sandbox:
        hook = MediaPocketHook()
        asset = hook.create_asset("with media")
        hook.add_media(asset.id, "https://media.example.com/clips/intro.mp4")
        assert hook.get_asset(asset.id).media_type == "processing"
        sandbox.clear_requests()
        with capture_logs() as logs:
            event = first_event(asset_trigger(asset.id))
    assert event["status"] == "success"
    assert event["asset_id"] == asset.id
    assert event["asset"]["id"] == asset.id
    assert event["asset"]["media_type"] == "video"
    assert event["asset"]["original_filename"] == "intro.mp4"
    assert "ready" in event["message"]
    assert len(calls(sandbox, "GET", f"/api/v2/assets/{asset.id}")) >= 2  # it did wait
    infos = [e["event"] for e in logs if e["log_level"] == "info"]
    assert infos[0] == f"asset {asset.id}: its media is still processing"
    assert infos.count(infos[0]) == 1  # a message is logged once, not at every poll


def test_asset_trigger_target_status_met(hook: MediaPocketHook) -> None:
    asset = hook.create_asset("plain")
    event = first_event(asset_trigger(asset.id, target_statuses=["open"]))
    assert event["status"] == "success"
    assert event["asset"]["status"] == "open"


def test_asset_trigger_trashed_asset_fails(hook: MediaPocketHook) -> None:
    asset = hook.create_asset("to the bin")
    hook.trash_asset(asset.id)
    event = first_event(asset_trigger(asset.id))
    assert event["status"] == "failed"
    assert "trash bin" in event["message"]
    assert event["asset"]["deleted"] is not None


def test_asset_trigger_missing_asset_is_an_error(hook: MediaPocketHook) -> None:
    event = first_event(asset_trigger("no-such-asset"))
    assert event["status"] == "error"
    assert event["error_type"] == "MediaPocketNotFoundError"


def test_asset_trigger_status_never_met_times_out(hook: MediaPocketHook) -> None:
    asset = hook.create_asset("stays open")
    event = first_event(asset_trigger(asset.id, end_in=0.3, target_statuses=["rejected"]))
    assert event["status"] == "timeout"
    assert event["asset"] is None
    assert "rejected" in event["message"]


def test_asset_trigger_mixed_case_target_status(hook: MediaPocketHook) -> None:
    """A trigger built directly with ``target_statuses=["Open"]`` matches status "open"."""
    asset = hook.create_asset("case")
    event = first_event(asset_trigger(asset.id, end_in=0.3, target_statuses=["Open"]))
    assert event["status"] == "success"


# ------------------------------------------------------------------------------------ event loop


def test_trigger_never_blocks_the_event_loop(
    sandbox: MediaPocketSandbox, hook: MediaPocketHook, caplog: pytest.LogCaptureFixture
) -> None:
    asset_id, run_id = started(hook)
    media_asset = hook.create_asset("media")
    hook.add_media(media_asset.id, "https://media.example.com/a.png")

    async def main() -> list[dict[str, Any]]:
        loop = asyncio.get_running_loop()
        loop.set_debug(True)
        loop.slow_callback_duration = 0.1
        run_task = asyncio.create_task(first_payload(run_trigger(asset_id, run_id)), name="mediapocket-run-trigger")
        asset_task = asyncio.create_task(first_payload(asset_trigger(media_asset.id)), name="mediapocket-asset-trigger")
        return list(await asyncio.gather(run_task, asset_task))

    # The first trigger in a process imports httpx's async stack (~60 ms, once per process): warm it up
    # so the check below measures what every trigger does, not a one-off import.
    first_event(asset_trigger(media_asset.id, end_in=0.0, wait_for_media=False))
    caplog.set_level(logging.WARNING, logger="asyncio")
    run_event, asset_event = asyncio.run(main())
    assert run_event["status"] == "success" and asset_event["status"] == "success"
    slow = [r.getMessage() for r in caplog.records if r.name == "asyncio" and "took" in r.getMessage()]
    assert not [m for m in slow if "mediapocket" in m], slow


# ------------------------------------------------------------------------------------ shared polling


def test_triggers_on_one_asset_share_requests_but_report_their_own_run(
    sandbox: MediaPocketSandbox, hook: MediaPocketHook
) -> None:
    asset = hook.create_asset("two runs")
    first = hook.start_dag_action(asset.id, 1)
    second = hook.start_dag_action(asset.id, 4)
    sandbox.clear_requests()

    async def main() -> list[dict[str, Any]]:
        triggers = [run_trigger(asset.id, first.id), run_trigger(asset.id, second.id, watch={"messages_seen": 1})]
        return list(await asyncio.gather(*(first_payload(t) for t in triggers)))

    began = time.monotonic()
    with capture_logs() as logs:
        ok, failed = asyncio.run(main())
    elapsed = time.monotonic() - began
    assert ok["status"] == "success" and ok["dag_action_run_id"] == str(first.id)
    assert failed["status"] == "failed" and failed["dag_action_run_id"] == str(second.id)
    assert logged_run_messages(logs, first.id)[0] == "Set in queue..."
    assert logged_run_messages(logs, second.id)[0] == "Started processing"
    polls = len(calls(sandbox, "GET", f"/api/v2/assets/{asset.id}/dag_action_runs"))
    assert polls <= elapsed / 0.05 + 2  # one request per tick for both triggers, not one each


def test_triggers_with_different_keys_never_share(
    sandbox: MediaPocketSandbox, hook: MediaPocketHook, monkeypatch: pytest.MonkeyPatch
) -> None:
    asset_id, run_id = started(hook)
    sandbox.state.add_api_key("no-view-key-31c4", permissions=set())
    add_connection(monkeypatch, sandbox, "mp_no_view", "no-view-key-31c4")

    async def main() -> list[dict[str, Any]]:
        allowed = run_trigger(asset_id, run_id)
        denied = run_trigger(asset_id, run_id, mediapocket_conn_id="mp_no_view")
        return list(await asyncio.gather(first_payload(allowed), first_payload(denied)))

    allowed_event, denied_event = asyncio.run(main())
    assert allowed_event["status"] == "success"
    assert denied_event["status"] == "error" and "ACTIONS_VIEW" in denied_event["message"]
