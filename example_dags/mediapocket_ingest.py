"""Scheduled Media Pocket ingest: a manifest of media becomes processed, transcoded assets in a project.

**What it does.** Daily (or when triggered), for each item of the `manifest` param (dynamic task
mapping, one mapped task instance per item, named after the item's title):

1. `ensure_project`: the project called `project_title`, created on first use;
2. `manifest_items`: checks every item before anything is sent (a malformed item fails the run at once,
   naming `manifest[i]` and the field, without retries);
3. `create_asset`: creates the asset in the project with its media from `file_url`;
4. `wait_for_media`: waits until Media Pocket has processed the media;
5. `run_dag_action`: starts the DAG action `dag_action_name` and waits for its run (the run's messages go to
   the task log; the "Media Pocket asset" and "DAG action run" buttons link to both);
6. `summary`: prints a table of assets and runs and returns the counts.

Re-running is safe: every item carries an `external_id`, so an asset that already exists in the project is
picked up instead of created again, and task retries re-attach to what the failed try created.

**Downstream.** `create_asset` emits an Airflow asset event per asset, on `mediapocket://<host>/assets/<id>`
and on the project's `mediapocket://<host>/projects/<id>` (through the asset alias `mediapocket_ingest`),
so a DAG scheduled on the project runs after each ingest (see `mediapocket_project_downstream`). A project
that `ensure_project` creates gets one event from it first, so that the many `create_asset` tasks never
name a project unknown to Airflow at the same moment (Airflow fails one of them on PostgreSQL then). A DAG
action that fails for good leaves a comment on its asset in Media Pocket (`MediaPocketNotifier`); every
task retries only what can succeed later (`MediaPocketRetryPolicy`: not a 404 or a rejected parameter).

**Connection.** `mediapocket_default` (type *Media Pocket*): Base URL, API Key, and on Airflow 3.3.2 the
Port too (for the Test button). The waits are deferrable when `[operators] default_deferrable` is true:
they then run on the triggerer and free the worker slot.

**Params.**

- `manifest`: a list of items `{"title", "file_url", "external_id", "tags"?, "description"?,
  "category"?, "filename"?}` (edited as JSON in the trigger form);
- `project_title`: the project the assets go to (default "Daily ingest");
- `dag_action_name`: the DAG action to start on every asset (default "Transcode").
"""

from __future__ import annotations

from collections import Counter
from datetime import datetime, timedelta
from typing import Any

from airflow.sdk import AssetAlias, Param, dag, task

from airflow_provider_mediapocket.assets import create_asset as create_airflow_asset
from airflow_provider_mediapocket.assets import host_of
from airflow_provider_mediapocket.bulk import validate_items
from airflow_provider_mediapocket.exceptions import MediaPocketValidationError
from airflow_provider_mediapocket.hooks.mediapocket import MediaPocketHook
from airflow_provider_mediapocket.notifications.mediapocket import MediaPocketNotifier
from airflow_provider_mediapocket.operators.mediapocket import (
    MediaPocketCreateAssetOperator,
    MediaPocketStartDagActionOperator,
)
from airflow_provider_mediapocket.policies.mediapocket import HAS_RETRY_POLICIES, MediaPocketRetryPolicy
from airflow_provider_mediapocket.sensors.mediapocket import MediaPocketAssetSensor

DEFAULT_MANIFEST = [
    {"title": "Harbour at dawn", "file_url": "https://media.example.com/ingest/harbour-dawn.jpg",
     "tags": ["harbour", "photo"], "external_id": "ingest-0001"},
    {"title": "Product launch keynote", "file_url": "https://media.example.com/ingest/launch-keynote.mp4",
     "tags": ["launch", "video"], "external_id": "ingest-0002"},
    {"title": "Podcast episode 12", "file_url": "https://media.example.com/ingest/podcast-e12.mp3",
     "tags": ["podcast", "audio"], "external_id": "ingest-0003"},
]

#: JSON schema of one manifest item: the trigger form edits the manifest as JSON and checks it against this.
MANIFEST_ITEM_SCHEMA: dict[str, Any] = {
    "type": "object",
    "required": ["title", "file_url", "external_id"],
    "additionalProperties": False,
    "properties": {
        "title": {"type": "string", "minLength": 1, "maxLength": 255, "description": "the asset's title"},
        "file_url": {"type": "string", "minLength": 1, "description": "http(s) URL of the media"},
        "external_id": {"type": "string", "minLength": 1,
                        "description": "your id of the item: makes re-runs find the asset instead of duplicating it"},
        "tags": {"type": "array", "items": {"type": "string"}},
        "description": {"type": "string"},
        "category": {"type": "string"},
        "filename": {"type": "string", "description": "default: the last segment of file_url"},
    },
}
#: What the mapped tasks are called in the UI instead of 0, 1, 2: the item's title.
ITEM_TITLE = "{{ task.title }}"
CREATED_TITLE = "{{ (ti.xcom_pull(task_ids='create_asset', map_indexes=ti.map_index) or {}).get('title', '') }}"
#: Where create_asset's asset events go: the alias resolves to each asset's and its project's mediapocket:// URI.
INGEST_EVENTS = AssetAlias("mediapocket_ingest")
#: Comment left on an asset whose DAG action failed for good (after the task's retries).
FAILED_ACTION_COMMENT = (
    "Airflow: DAG action {{ params.dag_action_name }} failed in DAG {{ dag.dag_id }}, run {{ run_id }} "
    "(try {{ ti.try_number }}): {{ exception }}"
)


def checked_manifest(manifest: Any, project_id: str) -> list[dict[str, Any]]:
    """The CreateAsset arguments of every manifest item; a malformed item fails the task at once (no retry,
    nothing sent) with an error naming ``manifest[i]`` and the field."""
    from airflow.providers.common.compat.sdk import AirflowFailException

    try:
        items = validate_items(manifest, project_id, name="manifest")
    except MediaPocketValidationError as exc:
        raise AirflowFailException(str(exc)) from None
    return [{**checked.item, "tags": checked.item.get("tags") or [], "project_id": project_id} for checked in items]


@dag(
    dag_id="mediapocket_ingest",
    schedule="@daily",
    start_date=datetime(2026, 1, 1),
    catchup=False,
    max_active_runs=1,
    tags=["mediapocket", "example"],
    doc_md=__doc__,
    # Retry policies arrived in Airflow 3.3; before that the task's plain retries apply.
    default_args={"retries": 2, "retry_delay": timedelta(seconds=10),
                  **({"retry_policy": MediaPocketRetryPolicy()} if HAS_RETRY_POLICIES else {})},
    params={
        "manifest": Param(
            DEFAULT_MANIFEST, type="array", items=MANIFEST_ITEM_SCHEMA, minItems=1,
            title="Manifest",
            description="The media to ingest, as JSON: a list of objects with title, file_url, external_id "
            "and optional tags, description, category, filename",
        ),
        "project_title": Param("Daily ingest", type="string", minLength=1, title="Project title",
                               description="The project the assets go to; created on first use"),
        "dag_action_name": Param("Transcode", type="string", minLength=1, title="DAG action name",
                                 description="The Media Pocket DAG action started on every asset, e.g. Transcode"),
    },
)
def mediapocket_ingest() -> None:
    @task(outlets=[INGEST_EVENTS])
    def ensure_project(params: dict[str, Any], outlet_events: Any = None) -> str:
        """The project named ``project_title``, created on first use (idempotent); a project it creates gets
        its asset event here, once, before the mapped ``create_asset`` tasks name it."""
        hook = MediaPocketHook()
        for project in hook.list_projects():
            if project.title == params["project_title"]:
                return project.id
        project = hook.create_project(params["project_title"], tags=["ingest"])
        # Airflow (3.0-3.3) adds the asset row of a URI first named through an alias in the success update of the
        # task naming it, with no guard against a second task doing the same at that moment: on PostgreSQL, mapped
        # create_asset tasks naming this new project together failed one of them (UniqueViolation, no retry).
        # Naming it here first leaves them an existing asset.
        host = host_of(hook.get_settings().base_url)
        outlet_events[INGEST_EVENTS].add(
            create_airflow_asset(host=host, project_id=project.id),
            extra={"project_id": project.id, "title": project.title, "status": "created"},
        )
        return project.id

    @task
    def manifest_items(project_id: str, params: dict[str, Any] | None = None) -> list[dict[str, Any]]:
        """One set of CreateAsset arguments per manifest item, every item checked first."""
        # ``params`` comes from the context; Airflow < 3.3 needs context arguments after the others.
        assert params is not None
        return checked_manifest(params["manifest"], project_id)

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
    created = MediaPocketCreateAssetOperator.partial(
        task_id="create_asset", map_index_template=ITEM_TITLE, outlets=[INGEST_EVENTS]
    ).expand_kwargs(
        manifest_items(project_id=project)
    )
    ids = asset_ids(created.output)
    processed = MediaPocketAssetSensor.partial(
        task_id="wait_for_media", poke_interval=5, timeout=3600, map_index_template=CREATED_TITLE
    ).expand(asset_id=ids)
    runs = MediaPocketStartDagActionOperator.partial(
        task_id="run_dag_action", dag_action_name="{{ params.dag_action_name }}", poll_interval=5,
        timeout=timedelta(hours=6), map_index_template=CREATED_TITLE,
        on_failure_callback=MediaPocketNotifier(asset_id="{{ task.asset_id }}", message=FAILED_ACTION_COMMENT),
    ).expand(asset_id=ids)
    processed >> runs
    summary(processed.output, runs.output)


mediapocket_ingest()
