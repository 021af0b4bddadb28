"""Start one Media Pocket DAG action on one asset and wait for its run (triggered manually).

**What it does.** One task, `run_dag_action`: starts the DAG action `dag_action_name` on the asset
`asset_id` and waits for the run to finish (polling every 3 s, at most an hour). The run's messages appear
in the task log as they come; a failed run fails the task with them. The task's "Media Pocket asset" and
"DAG action run" buttons link to the asset and the run. The wait is deferrable (runs on the triggerer)
when `[operators] default_deferrable` is true.

**Connection.** `mediapocket_default` (type *Media Pocket*): Base URL, API Key, and on Airflow 3.3.2 the
Port too (for the Test button).

**Params** (the trigger form, or conf `{"asset_id": "...", "dag_action_name": "Transcode"}`):

- `asset_id`: the asset to run the action on (required);
- `dag_action_name`: the DAG action's name as Media Pocket lists it for the asset (default "Transcode";
  an unknown name fails the task listing the valid ones).
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
    doc_md=__doc__,
    params={
        "asset_id": Param("", type="string", description="The asset to run the action on"),
        "dag_action_name": Param("Transcode", type="string", minLength=1,
                                 description="The DAG action's name, e.g. Transcode"),
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
