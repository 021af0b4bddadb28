"""Issue 9 section 5: ``MediaPocketRetryPolicy`` decides real retries in ``dag.test()`` (Airflow 3.3)."""

from __future__ import annotations

from typing import Any

from airflow_provider_mediapocket.hooks.mediapocket import MediaPocketHook
from airflow_provider_mediapocket.sandbox import MediaPocketSandbox
from tests.e2e.conftest import DagRunner


def test_in_dag_test_fails_a_404_at_once_and_retries_a_429(
    dag_runner: DagRunner, mediapocket_sandbox: MediaPocketSandbox
) -> None:
    sandbox = mediapocket_sandbox
    asset = MediaPocketHook().create_asset("Policy target")
    sandbox.inject("429", method="POST", path_prefix=f"/api/v2/assets/{asset.id}/comments", retry_after=1)
    result = dag_runner("mediapocket_retry_policy_check", conf={"asset_id": asset.id},
                        extra_env=sandbox.airflow_connection_env())

    tries: dict[str, Any] = {t["task_id"]: (t["state"], t["try_number"]) for t in result.tasks}
    assert tries == {"not_found": ("failed", 1), "rate_limited": ("success", 2)}, result.output_tail(120)
    assert "MediaPocketNotFoundError is permanent, not retrying" in result.output
    assert "MediaPocketRateLimitError is transient, retrying after the server's Retry-After (1s)" in result.output
    assert [c["message"] for c in sandbox.state.comments_of("Asset", asset.id)] == ["posted on the second try"]
