"""The example DAGs end to end: real Airflow ``dag.test()`` against the sandbox, deferrable and not.

Each run is a subprocess with a throwaway AIRFLOW_HOME (see conftest.py); the sandbox runs in this
process on 127.0.0.1 and the run reaches it through ``AIRFLOW_CONN_MEDIAPOCKET_DEFAULT``.
"""

from __future__ import annotations

import re

import pytest

from airflow_provider_mediapocket.hooks.mediapocket import MediaPocketHook
from airflow_provider_mediapocket.sandbox import MediaPocketSandbox
from airflow_provider_mediapocket.sandbox.pytest_plugin import mediapocket_sandbox_fixture
from tests._compat import lines_with_secret, logged_lines, requires_airflow, times_logged
from tests.e2e.conftest import DagRunner

# Slow enough that the first check before deferring finds the work unfinished, so triggers really run.
MEDIA_SECONDS = 3.0
RUN_SECONDS = 4.0


sandbox = mediapocket_sandbox_fixture(media_processing_seconds=MEDIA_SECONDS, dag_action_run_seconds=RUN_SECONDS)


def env_for(sandbox: MediaPocketSandbox, deferrable: bool) -> dict[str, str]:
    return {**sandbox.airflow_connection_env(), "AIRFLOW__OPERATORS__DEFAULT_DEFERRABLE": str(deferrable)}


def posts(sandbox: MediaPocketSandbox, pattern: str) -> list[str]:
    return [r.path for r in sandbox.requests if r.method == "POST" and re.fullmatch(pattern, r.path)]


@pytest.mark.parametrize("deferrable", [True, False], ids=["deferrable", "on-worker"])
def test_ingest_dag(dag_runner: DagRunner, sandbox: MediaPocketSandbox, deferrable: bool) -> None:
    result = dag_runner("mediapocket_ingest", extra_env=env_for(sandbox, deferrable))
    assert result.state == "success", result.output_tail(150)
    assert result.xcoms["summary"] == {
        "assets": 3, "media_types": {"image": 1, "video": 1, "audio": 1}, "runs": {"completed": 3},
    }
    assets = {a["external_id"]: a for a in sandbox.state.assets.values() if a.get("external_id")}
    assert sorted(assets) == ["ingest-0001", "ingest-0002", "ingest-0003"]
    assert "Media Pocket ingest summary" in result.output
    deferred = result.output.count("[DAG TEST] running trigger in line")
    if deferrable:
        assert deferred >= 3  # at least the three DAG action runs waited on the triggerer
    else:
        assert deferred == 0
    for run in result.xcoms["run_dag_action"]:
        for message in ("Set in queue...", "Started processing", "Finished successfully"):
            assert times_logged(result.output, f"DAG action run {run['id']}: {message}") == 1, (run["id"], message)
        # The start line says the status ("Started ... (status 'running')"); each change is said once after it.
        said = re.findall(rf"run {run['id']} on asset \S+ has status '(\w+)'", "\n".join(logged_lines(result.output)))
        assert said == ["completed"], (run["id"], said)
    assert lines_with_secret(result.output, sandbox.api_key) == []
    if deferrable:
        return
    # A second run of the same manifest re-uses the assets (external_id), it does not duplicate them.
    again = dag_runner("mediapocket_ingest", extra_env=env_for(sandbox, deferrable))
    assert again.state == "success", again.output_tail(150)
    assert len([a for a in sandbox.state.assets.values() if a.get("external_id")]) == 3
    assert len(sandbox.state.projects) == 2  # the seeded one and "Daily ingest", created once
    assert "already exists in project" in again.output


def test_dag_action_dag_success(dag_runner: DagRunner, sandbox: MediaPocketSandbox) -> None:
    asset = MediaPocketHook().create_asset("Single action")
    result = dag_runner(
        "mediapocket_dag_action", conf={"asset_id": asset.id, "dag_action_name": "Publish"},
        extra_env=env_for(sandbox, True),
    )
    assert result.state == "success", result.output_tail(150)
    run = result.xcoms["run_dag_action"]
    assert run["status"] == "completed" and run["dag_action"]["name"] == "Publish"
    assert "Pausing task as DEFERRED" in result.output
    links = {e["key"]: e["value"] for e in result.xcom_entries if e["task_id"] == "run_dag_action"}
    assert links["mediapocket_dag_action_run_url"] == f"{sandbox.base_url}/assets/{asset.id}/dag_action_runs/{run['id']}"
    assert links["mediapocket_asset_url"] == f"{sandbox.base_url}/assets/{asset.id}"


@pytest.mark.parametrize("deferrable", [True, False], ids=["deferrable", "on-worker"])
def test_failing_action_fails_the_task_with_its_messages(
    dag_runner: DagRunner, sandbox: MediaPocketSandbox, deferrable: bool
) -> None:
    asset = MediaPocketHook().create_asset("Doomed")
    result = dag_runner(
        "mediapocket_dag_action", conf={"asset_id": asset.id, "dag_action_name": "Broken pipeline"},
        extra_env=env_for(sandbox, deferrable),
    )
    assert result.state == "failed"
    assert result.task_state("run_dag_action") == "failed"
    assert "MediaPocketRunFailedError" in result.output
    assert "Error: pipeline step failed" in result.output
    assert times_logged(result.output, "DAG action run 1: Error: pipeline step failed") == 1
    assert lines_with_secret(result.output, sandbox.api_key) == []


def test_unknown_action_name_lists_the_valid_ones(dag_runner: DagRunner, sandbox: MediaPocketSandbox) -> None:
    asset = MediaPocketHook().create_asset("Typo")
    result = dag_runner(
        "mediapocket_dag_action", conf={"asset_id": asset.id, "dag_action_name": "Transcod"},
        extra_env=env_for(sandbox, True),
    )
    assert result.state == "failed"
    assert "no DAG action named 'Transcod'" in result.output and "'Transcode'" in result.output
    assert posts(sandbox, r"/api/v2/assets/.+/dag_actions/.+") == []


@requires_airflow("3.3", "the created asset's intent and the run id survive the failed try only in task_state_store")
def test_retries_reattach_instead_of_duplicating(dag_runner: DagRunner, sandbox: MediaPocketSandbox) -> None:
    result = dag_runner("mediapocket_retry_check", extra_env=env_for(sandbox, False))
    assert result.state == "success", result.output_tail(150)
    tries = {t["task_id"]: t["try_number"] for t in result.tasks}
    assert tries == {"create_asset": 2, "run_dag_action": 2}
    assert "simulated worker crash after creating asset" in result.output
    assert "simulated worker crash after starting run" in result.output
    assert len(posts(sandbox, r"/api/v2/assets")) == 1
    assert len(posts(sandbox, r"/api/v2/assets/.+/media")) == 1
    assert len(posts(sandbox, r"/api/v2/assets/.+/dag_actions/.+")) == 1
    assert len(sandbox.state.runs) == 1
    assert result.xcoms["run_dag_action"]["status"] == "completed"
