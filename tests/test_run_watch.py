"""RunWatch: one wait for one DAG action run, as the operator's worker loop, the sensor and the trigger use it.

Pure: runs are built from JSON, nothing is sent. The end-to-end guarantees (each message in the task log
once, across deferral, reschedule and a triggerer restart) are checked in tests/operators, tests/sensors,
tests/triggers, tests/reliability and tests/e2e.
"""

from __future__ import annotations

import json
from typing import Any

import pytest

from airflow_provider_mediapocket.exceptions import MediaPocketValidationError
from airflow_provider_mediapocket.models import DagActionRun
from airflow_provider_mediapocket.waiting import (
    DEFAULT_FAILURE_STATUSES,
    DEFAULT_SUCCESS_STATUSES,
    RunWatch,
)

MESSAGES = [
    ("Set in queue...", "2026-01-01T10:00:00.000Z"),
    ("Started processing", "2026-01-01T10:00:01.000Z"),
    ("Error: pipeline step failed", "2026-01-01T10:00:02.000Z"),
]


def run(status: str | None, messages: int = 0) -> DagActionRun:
    return DagActionRun.model_validate({
        "id": 4, "status": status, "dag_action": {"id": 1, "name": "Transcode"},
        "dag_action_run_messages": [
            {"id": i, "message": text, "created_at": at} for i, (text, at) in enumerate(MESSAGES[:messages], 1)
        ],
    })


def line(index: int) -> str:
    text, at = MESSAGES[index]
    return f"DAG action run 4: {text} (at {at})"


STATUS_RUNNING = "Transcode run 4 on asset A1 has status 'running'"


def test_observe_running_done_failed_with_their_summaries() -> None:
    watch = RunWatch("A1")
    running = watch.observe(run("running"))
    assert (running.outcome, running.summary) == ("running", STATUS_RUNNING)
    done = RunWatch("A1").observe(run("Completed"))  # compared case-insensitively
    assert (done.outcome, done.summary) == ("success", "Transcode run 4 on asset A1 finished with status 'Completed'")
    failed = RunWatch("A1").observe(run("failed", messages=3))
    assert failed.outcome == "failed"
    assert failed.summary == (
        "Transcode run 4 on asset A1 failed with status 'failed'. Run messages: "
        "Set in queue...; Started processing; Error: pipeline step failed"
    )


def test_the_watch_s_own_statuses_decide() -> None:
    watch = RunWatch("A1", success_statuses=["approved"], failure_statuses=["rejected"])
    assert watch.observe(run("completed")).outcome == "running"  # a default success status, not this watch's
    assert watch.observe(run("approved")).outcome == "success"
    assert watch.observe(run("rejected")).outcome == "failed"
    assert watch.classify("REJECTED") == "failed" and watch.classify(None) == "running"


def test_each_message_is_logged_once_in_order_then_the_status_when_it_changes() -> None:
    watch = RunWatch("A1")
    assert watch.observe(run("running", messages=1)).lines == [line(0), STATUS_RUNNING]
    assert watch.observe(run("running", messages=1)).lines == []  # nothing new: nothing to log
    assert watch.observe(run("running", messages=3)).lines == [line(1), line(2)]
    assert watch.messages_seen == 3
    # A stale read with fewer messages neither logs again later nor moves the count back.
    assert watch.observe(run("running", messages=2)).lines == []
    assert watch.observe(run("running", messages=3)).lines == []
    assert watch.observe(run("failed", messages=3)).lines == ["Transcode run 4 on asset A1 has status 'failed'"]


def test_a_status_is_noted_once_per_change() -> None:
    watch = RunWatch("A1")
    statuses = ["running", "running", "queued", "queued", "running"]
    noted = [watch.observe(run(status)).lines for status in statuses]
    assert noted == [
        [STATUS_RUNNING], [], ["Transcode run 4 on asset A1 has status 'queued'"], [], [STATUS_RUNNING],
    ]
    assert watch.last_status == "running"


def test_an_unknown_status_is_said_to_be_treated_as_running_once() -> None:
    watch = RunWatch("A1")
    first = watch.observe(run("warming_up"))
    assert first.outcome == "running"
    assert first.lines == [
        "Status 'warming_up' is neither a success nor a failure status: treating it as still running",
        "Transcode run 4 on asset A1 has status 'warming_up'",
    ]
    assert watch.observe(run("warming_up")).lines == []


def test_a_started_run_s_status_is_said_once() -> None:
    watch = RunWatch("A1")
    assert watch.started(run("running")) == "Started Transcode run 4 on asset A1 (status 'running')"
    assert watch.observe(run("running", messages=1)).lines == [line(0)]  # the status was in the start line
    assert watch.observe(run("completed", messages=1)).lines == [
        "Transcode run 4 on asset A1 has status 'completed'"
    ]


def test_to_dict_is_plain_json_and_from_dict_gives_the_same_watch() -> None:
    watch = RunWatch("A1", success_statuses=["approved", "done"], failure_statuses=["rejected"])
    watch.observe(run("running", messages=2))
    data = watch.to_dict()
    assert data == {
        "success_statuses": ["approved", "done"], "failure_statuses": ["rejected"],
        "messages_seen": 2, "last_status": "running",
    }
    assert "A1" not in json.dumps(data)  # the holder keeps the asset id beside it
    again = RunWatch.from_dict("A1", json.loads(json.dumps(data)))
    assert again == watch
    # The restored watch goes on where the first stopped: nothing logged twice, the status not repeated.
    assert again.observe(run("running", messages=3)).lines == [line(2)]


@pytest.mark.parametrize("data", [None, {}])
def test_from_dict_without_data_is_a_fresh_watch_with_the_default_statuses(data: dict[str, Any] | None) -> None:
    watch = RunWatch.from_dict("A1", data)
    assert watch == RunWatch("A1")
    assert watch.success_statuses == sorted(DEFAULT_SUCCESS_STATUSES)
    assert watch.failure_statuses == sorted(DEFAULT_FAILURE_STATUSES)
    assert (watch.messages_seen, watch.last_status) == (0, None)


def test_from_dict_normalises_statuses_and_names_a_bad_one() -> None:
    watch = RunWatch.from_dict("A1", {"success_statuses": [" Completed "]})
    assert watch.success_statuses == ["completed"]
    with pytest.raises(MediaPocketValidationError, match="'failure_statuses'"):
        RunWatch.from_dict("A1", {"failure_statuses": [""]})


def test_catch_up_takes_over_an_earlier_holder_s_progress_but_not_its_statuses() -> None:
    earlier = RunWatch("A1")
    earlier.observe(run("queued", messages=2))
    later = RunWatch("A1", success_statuses=["approved"], failure_statuses=["rejected"])
    later.catch_up(earlier.to_dict())
    assert (later.messages_seen, later.last_status) == (2, "queued")
    assert later.success_statuses == ["approved"]
    assert later.observe(run("queued", messages=3)).lines == [line(2)]
    # What this holder logged stays logged: an older progress does not move it back.
    later.catch_up({"messages_seen": 1, "last_status": "running"})
    assert (later.messages_seen, later.last_status) == (3, "queued")
    later.catch_up(None)
    assert later.messages_seen == 3
