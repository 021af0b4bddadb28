"""Runs after each ingest into a Media Pocket project: a DAG scheduled on `mediapocket://<host>/projects/<id>`.

The Media Pocket operators emit Airflow asset events for what they create (see `mediapocket_ingest`: its
`create_asset` task has the asset alias `mediapocket_ingest` in its outlets). This DAG is scheduled on the
project's asset, so the scheduler starts it once events arrive; each event's `extra` names one Media Pocket
asset: `id`, `external_id`, `media_type`, `checksum`, `project_id`, `title` (where known).

**Configure.** The project's URI is built from the Media Pocket host (that of the connection's Base URL) and
the project's id: set `MEDIAPOCKET_HOST` and `MEDIAPOCKET_INGEST_PROJECT_ID` in the environment of the
scheduler and the DAG processor, or write them below.
"""

from __future__ import annotations

import os
from datetime import datetime
from typing import Any

from airflow.sdk import dag, task

from airflow_provider_mediapocket.assets import create_asset

MEDIAPOCKET_HOST = os.environ.get("MEDIAPOCKET_HOST", "tryme.mediapocket.fi")
INGEST_PROJECT_ID = os.environ.get("MEDIAPOCKET_INGEST_PROJECT_ID", "your-project-id")

#: mediapocket://<host>/projects/<id>: the Airflow asset of the ingest project.
INGEST_PROJECT = create_asset(host=MEDIAPOCKET_HOST, project_id=INGEST_PROJECT_ID)


@dag(
    dag_id="mediapocket_project_downstream",
    schedule=[INGEST_PROJECT],
    start_date=datetime(2026, 1, 1),
    catchup=False,
    tags=["mediapocket", "example"],
    doc_md=__doc__,
)
def mediapocket_project_downstream() -> None:
    @task
    def new_assets(triggering_asset_events: Any = None) -> list[dict[str, Any]]:
        """The Media Pocket assets the events that started this run name (one event per asset)."""
        events = (triggering_asset_events or {}).get(INGEST_PROJECT, [])
        assets = [dict(event.extra) for event in events]
        for asset in assets:
            print(f"New in project {INGEST_PROJECT_ID}: asset {asset.get('id')} ({asset.get('title')})")
        return assets

    new_assets()


mediapocket_project_downstream()
