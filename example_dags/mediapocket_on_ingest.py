"""Event-driven: start a Media Pocket DAG action on every asset whose ingest finished in the ingest project.

**What it does.** The DAG is scheduled on the Airflow asset `mediapocket_ingest_finished`, whose watcher
(`MediaPocketHistoryEventTrigger`, on the triggerer) follows the history feed of the ingest project and
fires once per new `ASSET_FINISHED_INGEST` event. Each run:

1. `ingested_assets`: reads the triggering events (`triggering_asset_events`; their payload names the
   history event and the asset) and lists their assets, skipping a history event an earlier run handled
   (the watcher delivers at least once: see below);
2. `run_dag_action`: starts the DAG action `dag_action_name` on each of them and waits for its run
   (one mapped task instance per asset).

Events that arrive while the scheduler is busy may be delivered together in one run. The watcher keeps
its place in the feed in Airflow's asset state store, so a restarted triggerer resumes where it stopped;
events stored in the last second or so before a triggerer crash may be delivered again, and this DAG
skips them by history event id (kept in the same asset's state store), so that each ingest-finished
event starts the DAG action once. `max_active_runs=1` keeps the runs in event order.

**Setup.** Set the environment variable `MEDIAPOCKET_INGEST_PROJECT_ID` (of the scheduler, DAG processor
and triggerer) to the id of the ingest project (the one `mediapocket_ingest` fills). Without it the
asset has no watcher and the DAG runs only when triggered by hand. Connection: `mediapocket_default`.

**Triggered by hand** (conf `{"asset_ids": ["..."]}`): starts the DAG action on the assets listed.
"""

from __future__ import annotations

import os
from datetime import datetime, timedelta
from typing import Any

from airflow.sdk import Asset, AssetWatcher, Param, dag, task

from airflow_provider_mediapocket.operators.mediapocket import MediaPocketStartDagActionOperator
from airflow_provider_mediapocket.triggers.history import MediaPocketHistoryEventTrigger

INGEST_PROJECT_ID = os.environ.get("MEDIAPOCKET_INGEST_PROJECT_ID", "").strip()
#: How often the watcher reads the project's history (seconds); the deployment test sets it lower.
POLL_SECONDS = float(os.environ.get("MEDIAPOCKET_ON_INGEST_POLL_SECONDS", "30"))

ingest_finished = Asset(
    name="mediapocket_ingest_finished",
    watchers=[
        AssetWatcher(
            name="mediapocket_ingest_project_history",
            trigger=MediaPocketHistoryEventTrigger(
                project_id=INGEST_PROJECT_ID, event_types=["ASSET_FINISHED_INGEST"], poll_interval=POLL_SECONDS,
            ),
        )
    ] if INGEST_PROJECT_ID else [],
)


#: Where the DAG keeps the newest history event it has handled (in the watched asset's state store).
HANDLED_KEY = "mediapocket_on_ingest_handled"


def assets_of(
    events: Any, asset_ids: list[str], handled: dict[str, Any] | None = None, run_id: str = "",
) -> tuple[list[str], dict[str, Any] | None]:
    """The assets to process and the new ``handled`` mark.

    The assets are those of the triggering ``ASSET_FINISHED_INGEST`` events (each once, in event order)
    newer than the last event an earlier run handled; without triggering events, ``asset_ids`` (a run by
    hand, which leaves the mark alone). The watcher delivers each history event at least once: after a
    triggerer crash the events stored in the last second or so before it are delivered again, with ids at
    or below the mark, and are skipped here. ``handled`` is ``{"event_id", "run_id", "previous"}``: a
    re-run of the run that set it compares with ``previous`` instead, so that it redoes its own events.
    """
    mark = handled or {}
    bound = int(mark.get("previous", 0) if mark.get("run_id") == run_id else mark.get("event_id", 0))
    found: list[str] = []
    newest = bound
    seen_events = False
    for asset_events in (events or {}).values():
        for event in asset_events:
            payload = (event.extra or {}).get("payload") or {}
            if payload.get("event_type") != "ASSET_FINISHED_INGEST":
                continue
            seen_events = True
            event_id = int(payload["event_id"])
            if event_id <= bound:
                print(f"History event {event_id} was handled by an earlier run: skipped")
                continue
            newest = max(newest, event_id)
            found.extend(asset_id for asset_id in payload.get("asset_ids", []) if asset_id not in found)
    if not seen_events:
        return [str(asset_id) for asset_id in asset_ids], None
    return found, {"event_id": newest, "run_id": run_id, "previous": bound}


@dag(
    dag_id="mediapocket_on_ingest",
    schedule=[ingest_finished],
    max_active_runs=1,
    start_date=datetime(2026, 1, 1),
    catchup=False,
    tags=["mediapocket", "example"],
    doc_md=__doc__,
    # A retry of run_dag_action re-attaches to the run it started (no second run). Retries also absorb
    # Airflow 3.3.2 failing a task that resumed from deferral on a stale executor event (apache/airflow#72716).
    default_args={"retries": 2, "retry_delay": timedelta(seconds=10)},
    params={
        "asset_ids": Param([], type="array", items={"type": "string"}, title="Asset ids",
                           description="For a run by hand: the assets to start the DAG action on"),
        "dag_action_name": Param("Transcode", type="string", minLength=1, title="DAG action name",
                                 description="The Media Pocket DAG action started on each asset"),
    },
)
def mediapocket_on_ingest() -> None:
    @task(inlets=[ingest_finished])
    def ingested_assets(
        params: dict[str, Any], run_id: str, triggering_asset_events: Any = None, asset_state_store: Any = None,
    ) -> list[str]:
        """The assets whose ingest finished (from the triggering events, each history event once), or
        ``asset_ids`` for a run by hand."""
        state = asset_state_store[ingest_finished] if asset_state_store is not None else None
        handled = state.get(HANDLED_KEY) if state is not None else None
        assets, mark = assets_of(triggering_asset_events, params["asset_ids"], handled, run_id)
        if mark is not None and state is not None:
            state.set(HANDLED_KEY, mark)
        print(f"Assets to process: {assets}")
        return assets

    MediaPocketStartDagActionOperator.partial(
        task_id="run_dag_action",
        dag_action_name="{{ params.dag_action_name }}",
        poll_interval=3,
        timeout=timedelta(hours=1),
    ).expand(asset_id=ingested_assets())


mediapocket_on_ingest()
