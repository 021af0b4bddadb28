"""End-to-end fixtures: run the repo's example DAGs with Airflow's real ``dag.test()``.

Every run is a fresh subprocess (Airflow reads its settings at import time) sharing one throwaway,
migrated-once ``AIRFLOW_HOME`` per pytest session.
"""

from __future__ import annotations

import shutil
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

import pytest

from airflow_provider_mediapocket.testing import DagTestResult, prepare_airflow_home, run_dag_test

EXAMPLE_DAGS = Path(__file__).resolve().parents[2] / "example_dags"
TEST_DAGS = Path(__file__).resolve().parent / "dags"

DagRunner = Callable[..., DagTestResult]


@pytest.fixture(scope="session")
def airflow_env(tmp_path_factory: pytest.TempPathFactory) -> dict[str, str]:
    """A migrated throwaway AIRFLOW_HOME whose dags folder holds ``example_dags/`` and ``tests/e2e/dags/``."""
    home = tmp_path_factory.mktemp("airflow_home")
    dags = home / "dags"
    dags.mkdir()
    for source in [*EXAMPLE_DAGS.glob("*.py"), *TEST_DAGS.glob("*.py")]:
        shutil.copy(source, dags / source.name)
    return prepare_airflow_home(home, dags)


@pytest.fixture
def dag_runner(airflow_env: dict[str, str]) -> DagRunner:
    """``run(dag_id, conf=None, extra_env=None, **kwargs) -> DagTestResult`` (one ``dag.test()`` subprocess).

    ``extra_env`` adds to the session's environment for this run only (e.g. ``AIRFLOW_CONN_<ID>`` JSON);
    other keyword arguments go to :func:`run_dag_test` (``logical_date``, ``timeout``).
    """

    def run(
        dag_id: str,
        conf: Mapping[str, Any] | None = None,
        extra_env: Mapping[str, str] | None = None,
        **kwargs: Any,
    ) -> DagTestResult:
        env = dict(airflow_env)
        if extra_env:
            env.update(extra_env)
        return run_dag_test(dag_id, env, conf=conf, **kwargs)

    return run
