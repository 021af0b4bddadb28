"""The event-driven example DAG ``mediapocket_on_ingest``: its watcher, its reading of the triggering
events, and a run by hand in real ``dag.test()`` (the run from real events is in the deployment test)."""

from __future__ import annotations

import importlib.util
from collections.abc import Iterator
from pathlib import Path
from types import ModuleType, SimpleNamespace

import pytest

from airflow_provider_mediapocket.hooks.mediapocket import MediaPocketHook
from airflow_provider_mediapocket.sandbox import MediaPocketSandbox
from airflow_provider_mediapocket.sandbox.pytest_plugin import sandbox_as_connection
from airflow_provider_mediapocket.triggers.history import MediaPocketHistoryEventTrigger
from tests.e2e.conftest import DagRunner

EXAMPLE = Path(__file__).resolve().parents[2] / "example_dags" / "mediapocket_on_ingest.py"


def load(monkeypatch: pytest.MonkeyPatch, project_id: str | None) -> ModuleType:
    if project_id is None:
        monkeypatch.delenv("MEDIAPOCKET_INGEST_PROJECT_ID", raising=False)
    else:
        monkeypatch.setenv("MEDIAPOCKET_INGEST_PROJECT_ID", project_id)
    spec = importlib.util.spec_from_file_location("_example_on_ingest", EXAMPLE)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_the_asset_is_watched_in_the_ingest_project(monkeypatch: pytest.MonkeyPatch) -> None:
    module = load(monkeypatch, "ingest-project")
    (watcher,) = module.ingest_finished.watchers
    trigger = watcher.trigger
    assert isinstance(trigger, MediaPocketHistoryEventTrigger)
    assert (trigger.project_id, trigger.event_types) == ("ingest-project", ["ASSET_FINISHED_INGEST"])
    # Without the project id there is nothing to watch: no watcher (and no error at parse time).
    assert load(monkeypatch, None).ingest_finished.watchers == []


def test_assets_are_read_from_the_triggering_events_each_history_event_once(monkeypatch: pytest.MonkeyPatch) -> None:
    module = load(monkeypatch, None)

    def event(event_id: int, event_type: str, *assets: str) -> SimpleNamespace:
        payload = {"event_id": str(event_id), "event_type": event_type, "asset_ids": list(assets)}
        return SimpleNamespace(extra={"from_trigger": True, "payload": payload})

    first = {"mediapocket_ingest_finished": [
        event(5, "ASSET_FINISHED_INGEST", "a1"), event(6, "ASSET_ADDED", "zz"), event(8, "ASSET_FINISHED_INGEST", "a2"),
    ]}
    assets, mark = module.assets_of(first, ["manual"], None, "run-1")
    assert (assets, mark) == (["a1", "a2"], {"event_id": 8, "run_id": "run-1", "previous": 0})
    # A triggerer crash delivers event 8 again, with a new one: only the new one is processed.
    again = {"mediapocket_ingest_finished": [event(8, "ASSET_FINISHED_INGEST", "a2"),
                                              event(9, "ASSET_FINISHED_INGEST", "a3")]}
    assets, mark2 = module.assets_of(again, ["manual"], mark, "run-2")
    assert (assets, mark2) == (["a3"], {"event_id": 9, "run_id": "run-2", "previous": 8})
    # Re-running run-2 (cleared by hand) redoes its own events; a run by hand uses its asset ids.
    assert module.assets_of(again, [], mark2, "run-2") == (["a3"], {"event_id": 9, "run_id": "run-2", "previous": 8})
    assert module.assets_of({}, ["manual"], mark2, "run-3") == (["manual"], None)


@pytest.fixture
def sandbox(monkeypatch: pytest.MonkeyPatch) -> Iterator[MediaPocketSandbox]:
    with sandbox_as_connection(monkeypatch, media_processing_seconds=0.5, dag_action_run_seconds=2.0) as running:
        yield running


def test_run_by_hand_starts_the_action_on_each_asset(dag_runner: DagRunner, sandbox: MediaPocketSandbox) -> None:
    hook = MediaPocketHook()
    assets = [hook.create_asset(f"by hand {i}").id for i in range(2)]
    result = dag_runner(
        "mediapocket_on_ingest", conf={"asset_ids": assets, "dag_action_name": "Publish"},
        extra_env={**sandbox.airflow_connection_env(), "AIRFLOW__OPERATORS__DEFAULT_DEFERRABLE": "True"},
    )
    assert result.state == "success", result.output_tail(150)
    assert result.xcoms["ingested_assets"] == assets
    runs = result.xcoms["run_dag_action"]
    assert [run["status"] for run in runs] == ["completed", "completed"]
    assert sorted(run["asset_id"] for run in sandbox.state.runs.values()) == sorted(assets)  # one run each
    assert sandbox.api_key not in result.output
