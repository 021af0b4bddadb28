"""Tests of the e2e harness itself (``airflow_provider_mediapocket.testing``), on provider-free DAGs."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from airflow_provider_mediapocket.testing import DagTestResult, prepare_airflow_home, run_dag_test

HARNESS_DAGS = Path(__file__).resolve().parent / "harness_dags"


@pytest.fixture(scope="module")
def harness_env(tmp_path_factory: pytest.TempPathFactory) -> dict[str, str]:
    return prepare_airflow_home(tmp_path_factory.mktemp("harness_home"), HARNESS_DAGS)


@pytest.fixture(scope="module")
def check_result(harness_env: dict[str, str]) -> DagTestResult:
    return run_dag_test("harness_check", harness_env, conf={"who": "harness"}, timeout=300)


@pytest.fixture(scope="module")
def fail_result(harness_env: dict[str, str]) -> DagTestResult:
    return run_dag_test("harness_fail", harness_env, logical_date="2024-01-02T03:04:05Z", timeout=300)


def test_successful_run_state_and_tasks(check_result: DagTestResult) -> None:
    assert check_result.state == "success", check_result.output_tail()
    assert check_result.returncode == 0
    assert check_result.error is None
    assert check_result.task_states() == {
        "done": "success",
        "double": "success",
        "echo_conf": "success",
        "first": "success",
        "wait_deferred": "success",
    }
    doubles = check_result.task_instances("double")
    assert [t["map_index"] for t in doubles] == [0, 1, 2]
    assert all(t["state"] == "success" and t["try_number"] == 1 for t in check_result.tasks)
    assert check_result.task_state("double", map_index=1) == "success"
    assert check_result.task_state("no_such_task") is None


def test_xcoms_are_read_map_index_aware(check_result: DagTestResult) -> None:
    assert check_result.xcoms["first"] == {"n": 1}
    assert check_result.xcoms["double"] == [2, 4, 6]
    assert check_result.xcoms["done"] == "ok"
    assert check_result.xcoms["echo_conf"] == "harness"  # conf reached dag_run.conf
    assert check_result.xcoms["wait_deferred"] == "resumed-after-trigger"
    keys = {(e["task_id"], e["map_index"], e["key"]) for e in check_result.xcom_entries}
    assert ("double", 2, "return_value") in keys


def test_task_logs_are_in_output(check_result: DagTestResult) -> None:
    assert "HARNESS OK first={'n': 1} doubled=[2, 4, 6]" in check_result.output
    assert "@@DAG_TEST_RESULT@@" not in check_result.output


def test_deferrable_task_really_deferred_and_trigger_ran_inline(check_result: DagTestResult) -> None:
    out = check_result.output
    # The task went DEFERRED, dag.test() ran the trigger in-process, then the task resumed.
    assert re.search(r"new_state=deferred .*|Pausing task as DEFERRED", out), check_result.output_tail()
    assert "[DAG TEST] running trigger in line" in out
    assert "DateTimeTrigger" in out  # the trigger's own log lines go to the same output
    assert "[DAG TEST] Trigger completed" in out
    assert out.index("HARNESS deferring until") < out.index("[DAG TEST] running trigger in line")
    assert out.index("[DAG TEST] Trigger completed") < out.index("HARNESS resumed after the trigger fired")


def test_failing_run(fail_result: DagTestResult) -> None:
    assert fail_result.state == "failed", fail_result.output_tail()
    assert fail_result.returncode == 1
    assert fail_result.logical_date is not None and fail_result.logical_date.startswith("2024-01-02T03:04:05")
    assert fail_result.task_state("explode") == "failed"
    assert fail_result.task_state("never_runs") == "upstream_failed"
    assert "boom-123" in fail_result.output
    assert "ValueError" in fail_result.output
    assert not fail_result.succeeded
    with pytest.raises(AssertionError, match="boom-123"):
        fail_result.assert_success()


def test_unknown_dag_reports_an_error(harness_env: dict[str, str]) -> None:
    result = run_dag_test("no_such_dag", harness_env, timeout=120)
    assert result.state is None
    assert result.returncode == 2
    assert result.error is not None and "no_such_dag" in result.error
    assert "harness_check" in result.error  # lists the DAGs it did find


def test_prepare_is_idempotent_and_isolated(harness_env: dict[str, str]) -> None:
    home = Path(harness_env["AIRFLOW_HOME"])
    assert (home / "airflow.db").exists()
    assert harness_env["AIRFLOW__CORE__DAGS_FOLDER"] == str(HARNESS_DAGS)
    assert harness_env["AIRFLOW__CORE__LOAD_EXAMPLES"] == "False"
    # A second call reuses the migrated home (no new migrate: the marker short-circuits it).
    again = prepare_airflow_home(home, HARNESS_DAGS, extra_env={"AIRFLOW_CONN_X": "{}"})
    assert again["AIRFLOW_HOME"] == str(home)
    assert again["AIRFLOW_CONN_X"] == "{}"
