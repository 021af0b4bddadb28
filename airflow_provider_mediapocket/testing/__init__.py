"""Test and run tooling: ``dag.test()`` runs in throwaway homes, and real deployments on loopback.

Airflow reads ``AIRFLOW_HOME`` and every ``AIRFLOW__...`` setting when it is first imported, so every
Airflow process here is a child with its own environment. Where each part lives:

* :mod:`.airflow_home` -- the environment of a throwaway ``AIRFLOW_HOME`` (:func:`airflow_env`), the
  ``airflow`` command (:func:`airflow_command`) and ``airflow db migrate`` once per home and Airflow version
  (:func:`migrate`); :func:`prepare_airflow_home` is both;
* :mod:`.process` -- the child-process runner (:func:`run_child`: own process group, bounded, never left
  running) and the ``/proc`` helpers that find whole process trees;
* :mod:`.dag_test` -- :func:`run_dag_test` runs one DAG with ``dag.test()`` in a subprocess and gives a
  :class:`DagTestResult` (run state, task states, ``return_value`` XComs, the log);
* :mod:`.deployment` -- :class:`Deployment` starts Airflow components (and the sandbox) as process groups
  marked in their environment, stops them all and says whether any is left; :func:`deployment_env`
  takes overrides for another executor or database (its docstring lists the extension points);
* :mod:`.api` -- :class:`Api`, the REST client: log in, wait for readiness, trigger and wait for a run,
  task instances, XComs, jobs;
* :mod:`.logs` -- task and trigger log files, a secret that must appear nowhere, messages exactly once;
* :mod:`.report` and :mod:`.common` -- the scripts' JSON report and printer, bounded waits, failures,
  free ports, interrupts.

Example (pytest)::

    from airflow_provider_mediapocket.testing import prepare_airflow_home, run_dag_test

    env = prepare_airflow_home(tmp_path / "home", Path("example_dags"))
    result = run_dag_test("my_dag", env, conf={"x": 1})
    assert result.state == "success", result.output_tail()
    assert result.xcoms["my_task"] == {"n": 1}

Command line::

    python -m airflow_provider_mediapocket.testing test DAG_ID --dags-folder example_dags [--conf JSON]
    python -m airflow_provider_mediapocket.testing run DAG_ID [--conf JSON]   # env already prepared

Nothing here imports Airflow at import time (only the subprocesses do); stdlib only.
"""

from __future__ import annotations

from airflow_provider_mediapocket.testing.airflow_home import (
    MigrationError,
    airflow_command,
    airflow_env,
    migrate,
    prepare_airflow_home,
)
from airflow_provider_mediapocket.testing.dag_test import RESULT_MARKER, DagTestResult, run_dag_test
from airflow_provider_mediapocket.testing.process import ChildResult, run_child

__all__ = [
    "RESULT_MARKER",
    "ChildResult",
    "DagTestResult",
    "MigrationError",
    "airflow_command",
    "airflow_env",
    "migrate",
    "prepare_airflow_home",
    "run_child",
    "run_dag_test",
]
