"""Issue 10, item 6: log and error texts a new user reads first."""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path

import httpx
import pytest

from airflow_provider_mediapocket._transport import ApiCall, parse_body
from airflow_provider_mediapocket.exceptions import MediaPocketAuthError
from airflow_provider_mediapocket.models import DagActionRun
from airflow_provider_mediapocket.waiting import (
    failure_message,
    message_lines,
    run_summary,
    started_line,
    status_news,
    success_message,
)


def _run(status: str) -> DagActionRun:
    return DagActionRun.model_validate({
        "id": 4, "status": status, "dag_action": {"id": 1, "name": "Transcode"},
        "dag_action_run_messages": [
            {"id": 1, "message": "Set in queue...", "created_at": "2026-01-01T10:00:00.000Z"},
            {"id": 2, "message": "Error: pipeline step failed", "created_at": "2026-01-01T10:00:05.000Z"},
        ],
    })


def test_started_line_does_not_say_started_is_running() -> None:
    line = started_line(_run("running"), "A1")
    assert line == "Started Transcode run 4 on asset A1 (status 'running')"
    assert "is running" not in line


def test_status_lines_read_right_for_any_status() -> None:
    assert run_summary(_run("running"), "A1") == "Transcode run 4 on asset A1 has status 'running'"
    assert status_news(None, _run("running"), "running", "A1") == ["Transcode run 4 on asset A1 has status 'running'"]
    assert success_message(_run("completed"), "A1") == "Transcode run 4 on asset A1 finished with status 'completed'"
    failure = failure_message(_run("failed"), "A1")
    assert failure.startswith("Transcode run 4 on asset A1 failed with status 'failed'. Run messages: ")
    assert "is failed" not in failure


def test_message_lines_carry_the_message_time() -> None:
    assert message_lines(_run("failed"), 1) == [
        "DAG action run 4: Error: pipeline step failed (at 2026-01-01T10:00:05.000Z)"
    ]


def test_401_says_the_key_was_rejected_and_where_to_set_it() -> None:
    call: ApiCall[object] = ApiCall("GET", "/api/v2/user/api_keys", parse=lambda body: body)
    response = httpx.Response(401, json={"error": "Unauthorized"}, request=httpx.Request("GET", "http://x/api/v2"))
    with pytest.raises(MediaPocketAuthError) as info:
        parse_body(call, response)
    text = str(info.value)
    assert "API key was rejected" in text and "API Key field" in text and "HTTP 401: Unauthorized" in text
    assert info.value.status == 401 and info.value.server_message == "Unauthorized"


def test_demo_explains_waits_that_never_deferred() -> None:
    path = Path(__file__).resolve().parents[2] / "scripts" / "demo.py"
    spec = importlib.util.spec_from_file_location("_demo_script", path)
    assert spec is not None and spec.loader is not None
    demo = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = demo
    spec.loader.exec_module(demo)
    line = demo.wait_line(6, 4)
    assert line.startswith("waits: 6; 4 deferred to the triggerer, 2 found")
    assert "never deferred" in line
    assert demo.wait_line(6, 6) == "waits: 6; 6 deferred to the triggerer"
