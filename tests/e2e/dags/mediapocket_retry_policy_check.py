"""Test DAG: MediaPocketRetryPolicy in real ``dag.test()``.

``not_found`` comments on an asset that does not exist (HTTP 404): the policy fails it at its first try
although it has 3 retries. ``rate_limited`` hits one HTTP 429 (the test queues it in the sandbox; the hook
has no retries of its own here): the policy retries it after the server's Retry-After and the second try
succeeds.
"""

from __future__ import annotations

from datetime import datetime, timedelta

from airflow.sdk import Param, dag

from airflow_provider_mediapocket.operators.mediapocket import MediaPocketAddCommentOperator
from airflow_provider_mediapocket.policies.mediapocket import MediaPocketRetryPolicy


@dag(
    dag_id="mediapocket_retry_policy_check",
    schedule=None,
    start_date=datetime(2026, 1, 1),
    catchup=False,
    default_args={"retries": 3, "retry_delay": timedelta(seconds=0), "retry_policy": MediaPocketRetryPolicy()},
    params={"asset_id": Param("", type="string")},
)
def mediapocket_retry_policy_check() -> None:
    MediaPocketAddCommentOperator(task_id="not_found", asset_id="no-such-asset", comment="never posted")
    MediaPocketAddCommentOperator(
        task_id="rate_limited", asset_id="{{ params.asset_id }}", comment="posted on the second try",
        hook_params={"retry_limit": 0},
    )


mediapocket_retry_policy_check()
