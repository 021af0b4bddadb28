"""Test DAG: the first try of each task dies right after its create/start request went out.

Used by tests/e2e/test_example_dags.py to prove a retried task re-attaches to what the first try
created (task_state_store) instead of creating a second asset or starting a second run.
"""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any

from airflow.sdk import Param, dag

from airflow_provider_mediapocket.operators.mediapocket import (
    MediaPocketCreateAssetOperator,
    MediaPocketStartDagActionOperator,
)


class CrashAfterCreate(MediaPocketCreateAssetOperator):
    def _create(self, *args: Any) -> Any:
        asset = super()._create(*args)
        if self._try_number == 1:
            raise RuntimeError(f"simulated worker crash after creating asset {asset.id}")
        return asset

    def execute(self, context: Any) -> Any:
        self._try_number = context["ti"].try_number
        return super().execute(context)


class CrashAfterStart(MediaPocketStartDagActionOperator):
    def poll_until_complete(self, external_id: Any, context: Any) -> Any:
        if context["ti"].try_number == 1:
            raise RuntimeError(f"simulated worker crash after starting run {external_id}")
        return super().poll_until_complete(external_id, context)


@dag(
    dag_id="mediapocket_retry_check",
    schedule=None,
    start_date=datetime(2026, 1, 1),
    catchup=False,
    default_args={"retries": 1, "retry_delay": timedelta(seconds=0)},
    params={"file_url": Param("https://media.example.com/retry/clip.mp4", type="string")},
)
def mediapocket_retry_check() -> None:
    created = CrashAfterCreate(task_id="create_asset", title="Retry check", file_url="{{ params.file_url }}")
    CrashAfterStart(
        task_id="run_dag_action",
        asset_id="{{ ti.xcom_pull(task_ids='create_asset')['id'] }}",
        dag_action_name="Publish",
        poll_interval=1,
        timeout=120,
    ).set_upstream(created)


mediapocket_retry_check()
