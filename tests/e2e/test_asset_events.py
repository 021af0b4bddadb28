"""Issue 9, sections 2 and 4 end to end: the ingest DAG in real ``dag.test()`` against the sandbox.

* Its ``create_asset`` task emits, through the ``mediapocket_ingest`` alias, one asset event per created asset
  on ``mediapocket://<host>/assets/<id>`` and one on ``mediapocket://<host>/projects/<id>``, with the asset's
  extra; Airflow queues the downstream example DAG scheduled on that project (its row in
  ``asset_dag_run_queue`` is what the scheduler turns into a run: ``dag.test()`` runs no scheduler).
* A DAG action that fails for good leaves the ``MediaPocketNotifier`` comment on its asset.
"""

from __future__ import annotations

import json
import sqlite3
import subprocess
import sys
from collections.abc import Iterator
from typing import Any

import pytest

from airflow_provider_mediapocket.assets import host_of
from airflow_provider_mediapocket.hooks.mediapocket import MediaPocketHook
from airflow_provider_mediapocket.sandbox import MediaPocketSandbox
from airflow_provider_mediapocket.sandbox.pytest_plugin import sandbox_as_connection
from tests._compat import requires_airflow
from tests.e2e.conftest import DagRunner

ONE_ITEM = [{"title": "Harbour at dawn", "file_url": "https://media.example.com/ingest/harbour-dawn.jpg?sig=s3cr3t",
             "external_id": "ingest-0001", "tags": ["harbour"]}]


@pytest.fixture
def sandbox(monkeypatch: pytest.MonkeyPatch) -> Iterator[MediaPocketSandbox]:
    with sandbox_as_connection(monkeypatch, media_processing_seconds=0.5, dag_action_run_seconds=0.5) as running:
        yield running


def _db(airflow_env: dict[str, str]) -> sqlite3.Connection:
    return sqlite3.connect(airflow_env["AIRFLOW__DATABASE__SQL_ALCHEMY_CONN"].removeprefix("sqlite:///"))


def _events(airflow_env: dict[str, str], run_id: str) -> list[tuple[str, dict[str, Any]]]:
    with _db(airflow_env) as db:
        rows = db.execute(
            "SELECT asset.uri, asset_event.extra FROM asset_event JOIN asset ON asset.id = asset_event.asset_id "
            "WHERE asset_event.source_dag_id = 'mediapocket_ingest' AND asset_event.source_run_id = ? "
            "ORDER BY asset_event.id", (run_id,),
        ).fetchall()
    return [(uri, json.loads(extra) if isinstance(extra, str) else extra) for uri, extra in rows]


def _queued_for(airflow_env: dict[str, str], dag_id: str) -> list[str]:
    with _db(airflow_env) as db:
        rows = db.execute(
            "SELECT asset.uri FROM asset_dag_run_queue JOIN asset ON asset.id = asset_dag_run_queue.asset_id "
            "WHERE asset_dag_run_queue.target_dag_id = ?", (dag_id,),
        ).fetchall()
    return [uri for (uri,) in rows]


def _key(event: tuple[str, dict[str, Any]]) -> str:
    return json.dumps(event, sort_keys=True)


def test_ingest_emits_one_event_per_asset_and_queues_the_project_downstream_dag(
    dag_runner: DagRunner, airflow_env: dict[str, str], sandbox: MediaPocketSandbox
) -> None:
    project = MediaPocketHook().create_project("Daily ingest")  # ensure_project finds it: its id is known
    host = host_of(sandbox.base_url)
    env = {**sandbox.airflow_connection_env(), "MEDIAPOCKET_HOST": host, "MEDIAPOCKET_INGEST_PROJECT_ID": project.id}
    # The downstream DAG must be in the metadata DB with this project's URI as its schedule.
    done = subprocess.run([sys.executable, "-m", "airflow", "dags", "reserialize"], env={**airflow_env, **env},
                          capture_output=True, text=True, timeout=600, check=False)
    assert done.returncode == 0, done.stderr[-3000:]

    result = dag_runner("mediapocket_ingest", conf={"manifest": [
        *ONE_ITEM, {"title": "Keynote", "file_url": "https://media.example.com/ingest/keynote.mp4",
                    "external_id": "ingest-0002"},
    ]}, extra_env=env)

    assert result.state == "success", result.output_tail(150)
    assets = {a["external_id"]: a for a in result.xcoms["create_asset"]}
    events = _events(airflow_env, str(result.run_id))
    project_uri = f"mediapocket://{host}/projects/{project.id}"
    expected = []
    for external_id in ("ingest-0001", "ingest-0002"):
        asset = assets[external_id]
        extra = {"id": asset["id"], "external_id": external_id, "media_type": asset["media_type"],
                 "project_id": project.id, "title": asset["title"]}
        if asset.get("md5_sum"):
            extra["checksum"] = asset["md5_sum"]
        expected += [(f"mediapocket://{host}/assets/{asset['id']}", extra), (project_uri, extra)]
    assert sorted(events, key=_key) == sorted(expected, key=_key)
    assert _queued_for(airflow_env, "mediapocket_project_downstream") == [project_uri]
    assert "s3cr3t" not in json.dumps(events)


def test_a_project_created_by_ensure_project_is_named_once_before_the_mapped_creates(
    dag_runner: DagRunner, airflow_env: dict[str, str], sandbox: MediaPocketSandbox
) -> None:
    # Airflow adds the asset row of a URI first named through an alias without guarding against a concurrent
    # insert: mapped create_asset tasks naming a new project at once failed one task on PostgreSQL (seen in
    # make e2e-distributed). The single ensure_project task must name a project it creates first.
    result = dag_runner("mediapocket_ingest", conf={"manifest": ONE_ITEM, "project_title": "Brand new project"},
                        extra_env=sandbox.airflow_connection_env())

    assert result.state == "success", result.output_tail(150)
    project_id = result.xcoms["ensure_project"]
    project_uri = f"mediapocket://{host_of(sandbox.base_url)}/projects/{project_id}"
    with _db(airflow_env) as db:
        rows = db.execute(
            "SELECT asset_event.source_task_id, asset_event.extra FROM asset_event JOIN asset "
            "ON asset.id = asset_event.asset_id WHERE asset.uri = ? ORDER BY asset_event.id", (project_uri,),
        ).fetchall()
    tasks = [task_id for task_id, _ in rows]
    assert tasks == ["ensure_project", "create_asset"], rows
    first = json.loads(rows[0][1]) if isinstance(rows[0][1], str) else rows[0][1]
    assert first == {"project_id": project_id, "title": "Brand new project", "status": "created"}

    again = dag_runner("mediapocket_ingest", conf={"manifest": ONE_ITEM, "project_title": "Brand new project"},
                       extra_env=sandbox.airflow_connection_env())
    assert again.state == "success", again.output_tail(150)
    assert again.xcoms["ensure_project"] == project_id
    with _db(airflow_env) as db:
        later = db.execute(
            "SELECT asset_event.source_task_id FROM asset_event WHERE asset_event.source_run_id = ? "
            "AND asset_event.source_task_id = 'ensure_project'", (str(again.run_id),),
        ).fetchall()
    assert later == [], "a project found, not created, is no change: no event"


@requires_airflow("3.3", "under dag.test() the task's on_failure_callback left no comment on 3.0.6 and 3.2.2 "
                         "(not investigated further; the notifier itself is tested on every version)")
def test_failed_dag_action_comments_on_its_asset(
    dag_runner: DagRunner, sandbox: MediaPocketSandbox
) -> None:
    result = dag_runner("mediapocket_ingest", conf={"manifest": ONE_ITEM, "dag_action_name": "Broken pipeline"},
                        extra_env=sandbox.airflow_connection_env())

    assert result.state == "failed", result.output_tail(150)
    asset_id = result.xcoms["create_asset"][0]["id"]
    comments = [c["message"] for c in sandbox.state.comments_of("Asset", asset_id)]
    assert len(comments) == 1, comments
    assert comments[0].startswith(
        f"Airflow: DAG action Broken pipeline failed in DAG mediapocket_ingest, run {result.run_id} (try 3): "
    ), comments
    assert "pipeline step failed" in comments[0]
    assert sandbox.api_key not in result.output
