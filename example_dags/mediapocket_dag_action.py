"""Start one Media Pocket DAG action on one asset and wait for its run (triggered manually with conf).

Trigger with ``{"asset_id": "<asset id>", "dag_action_name": "Transcode"}``. The run's messages
appear in the task log; a failed run fails the task with them. Deferrable when
``[operators] default_deferrable`` is true.
"""

from __future__ import annotations

from datetime import datetime, timedelta

from airflow.sdk import Param, dag

from airflow_provider_mediapocket.operators.mediapocket import MediaPocketStartDagActionOperator


@dag(
    dag_id="mediapocket_dag_action",
    schedule=None,
    start_date=datetime(2026, 1, 1),
    catchup=False,
    tags=["mediapocket", "example"],
    params={
        "asset_id": Param("", type="string", description="The asset to run the action on"),
        "dag_action_name": Param("Transcode", type="string"),
    },
)
def mediapocket_dag_action() -> None:
    MediaPocketStartDagActionOperator(
        task_id="run_dag_action",
        asset_id="{{ params.asset_id }}",
        dag_action_name="{{ params.dag_action_name }}",
        poll_interval=3,
        timeout=timedelta(hours=1),
    )


mediapocket_dag_action()
