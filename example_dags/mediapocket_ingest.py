"""Scheduled Media Pocket ingest: a manifest of media becomes processed, transcoded assets in a project.

For each manifest item (dynamic task mapping): create the asset in the project with its media, wait
until Media Pocket has processed the media, start a DAG action by name and wait for its run. A final
task summarises what happened. Re-running is safe: every item carries an ``external_id``, so an asset
that already exists in the project is picked up instead of created again, and task retries re-attach
to what the failed try created.

Waits are deferrable when ``[operators] default_deferrable`` is true (they then run on the
triggerer and free the worker slot). Set the ``mediapocket_default`` connection first.
"""

from __future__ import annotations

from collections import Counter
from datetime import datetime, timedelta
from typing import Any

from airflow.sdk import Param, dag, task

from airflow_provider_mediapocket.hooks.mediapocket import MediaPocketHook
from airflow_provider_mediapocket.operators.mediapocket import (
    MediaPocketCreateAssetOperator,
    MediaPocketStartDagActionOperator,
)
from airflow_provider_mediapocket.sensors.mediapocket import MediaPocketAssetSensor

DEFAULT_MANIFEST = [
    {"title": "Harbour at dawn", "file_url": "https://media.example.com/ingest/harbour-dawn.jpg",
     "tags": ["harbour", "photo"], "external_id": "ingest-0001"},
    {"title": "Product launch keynote", "file_url": "https://media.example.com/ingest/launch-keynote.mp4",
     "tags": ["launch", "video"], "external_id": "ingest-0002"},
    {"title": "Podcast episode 12", "file_url": "https://media.example.com/ingest/podcast-e12.mp3",
     "tags": ["podcast", "audio"], "external_id": "ingest-0003"},
]


@dag(
    dag_id="mediapocket_ingest",
    schedule="@daily",
    start_date=datetime(2026, 1, 1),
    catchup=False,
    max_active_runs=1,
    tags=["mediapocket", "example"],
    default_args={"retries": 2, "retry_delay": timedelta(seconds=10)},
    params={
        "manifest": Param(DEFAULT_MANIFEST, type="array", description="Items: title, file_url, tags, external_id"),
        "project_title": Param("Daily ingest", type="string"),
        "dag_action_name": Param("Transcode", type="string"),
    },
)
def mediapocket_ingest() -> None:
    @task
    def ensure_project(params: dict[str, Any]) -> str:
        """The project named ``project_title``, created on first use (idempotent)."""
        hook = MediaPocketHook()
        for project in hook.list_projects():
            if project.title == params["project_title"]:
                return project.id
        return hook.create_project(params["project_title"], tags=["ingest"]).id

    @task
    def manifest_items(params: dict[str, Any], project_id: str) -> list[dict[str, Any]]:
        """One set of CreateAsset arguments per manifest item."""
        items = []
        for number, item in enumerate(params["manifest"]):
            missing = [key for key in ("title", "file_url", "external_id") if not item.get(key)]
            if missing:
                raise ValueError(f"manifest item {number} lacks {', '.join(missing)}: {item!r}")
            items.append({
                "title": item["title"], "file_url": item["file_url"], "tags": item.get("tags") or [],
                "external_id": item["external_id"], "project_id": project_id,
            })
        return items

    @task
    def asset_ids(assets: list[dict[str, Any]]) -> list[str]:
        return [asset["id"] for asset in assets]

    @task
    def summary(assets: list[dict[str, Any]], runs: list[dict[str, Any]]) -> dict[str, Any]:
        """A readable report of the run; returns the counts."""
        lines = ["Media Pocket ingest summary", f"{'asset':22} {'title':26} {'media':10} {'run':>5} status"]
        for asset, run in zip(assets, runs, strict=True):
            lines.append(
                f"{asset['id']:22} {asset['title'][:26]:26} {asset['media_type']:10} {run['id']!s:>5} {run['status']}"
            )
        counts = {
            "assets": len(assets),
            "media_types": dict(Counter(asset["media_type"] for asset in assets)),
            "runs": dict(Counter(run["status"] for run in runs)),
        }
        lines.append(f"{counts['assets']} assets {counts['media_types']}; runs {counts['runs']}")
        print("\n".join(lines))
        return counts

    project = ensure_project()
    created = MediaPocketCreateAssetOperator.partial(task_id="create_asset").expand_kwargs(
        manifest_items(project_id=project)
    )
    ids = asset_ids(created.output)
    processed = MediaPocketAssetSensor.partial(
        task_id="wait_for_media", poke_interval=5, timeout=3600
    ).expand(asset_id=ids)
    runs = MediaPocketStartDagActionOperator.partial(
        task_id="run_dag_action", dag_action_name="{{ params.dag_action_name }}", poll_interval=5,
        timeout=timedelta(hours=6),
    ).expand(asset_id=ids)
    processed >> runs
    summary(processed.output, runs.output)


mediapocket_ingest()
