"""Issue 9 section 2: the ``mediapocket`` asset URI scheme and the events the operators emit.

The URIs go through Airflow's own Asset class (which calls the handler the provider info registers);
the operators run against the sandbox with Airflow's real ``OutletEventAccessors`` in their context.
"""

from __future__ import annotations

from typing import Any

import pytest
from airflow.sdk import Asset, AssetAlias
from airflow.sdk.execution_time.context import OutletEventAccessors

from airflow_provider_mediapocket import get_provider_info
from airflow_provider_mediapocket.assets import asset_uri, convert_asset_to_openlineage, create_asset, host_of
from airflow_provider_mediapocket.operators.mediapocket import (
    MediaPocketBulkIngestOperator,
    MediaPocketCreateAssetOperator,
    MediaPocketStartDagActionOperator,
)
from airflow_provider_mediapocket.sandbox import MediaPocketSandbox
from tests.triggers._support import make_context


def test_the_scheme_is_registered_with_handler_factory_and_converter() -> None:
    try:  # where the Task SDK reads them (3.2+); before, Airflow's ProvidersManager
        from airflow.sdk.providers_manager_runtime import ProvidersManagerTaskRuntime as Manager
    except ImportError:
        from airflow.providers_manager import ProvidersManager as Manager  # type: ignore[assignment,no-redef]

    (entry,) = get_provider_info()["asset-uris"]
    assert entry["schemes"] == ["mediapocket"]
    manager = Manager()
    assert manager.asset_uri_handlers["mediapocket"].__name__ == "sanitize_uri"
    assert manager.asset_factories["mediapocket"] is create_asset
    assert manager.asset_to_openlineage_converters["mediapocket"] is convert_asset_to_openlineage


@pytest.mark.parametrize(
    ("written", "normalised"),
    [
        ("mediapocket://TryMe.MediaPocket.fi/assets/AbC12/", "mediapocket://tryme.mediapocket.fi/assets/AbC12"),
        ("MEDIAPOCKET://tryme.mediapocket.fi/projects/7?b=2&a=1#x", "mediapocket://tryme.mediapocket.fi/projects/7"),
        ("mediapocket://127.0.0.1:8080/assets/1", "mediapocket://127.0.0.1:8080/assets/1"),
    ],
)
def test_airflow_normalises_mediapocket_uris(written: str, normalised: str) -> None:
    assert Asset(uri=written).uri == normalised


@pytest.mark.parametrize(
    ("uri", "problem"),
    [
        ("mediapocket:///assets/1", "needs the Media Pocket host"),
        ("mediapocket://tryme.mediapocket.fi/collections/1", "must be mediapocket://<host>/assets/<id>"),
        ("mediapocket://tryme.mediapocket.fi/assets", "must be mediapocket://<host>/assets/<id>"),
        ("mediapocket://tryme.mediapocket.fi/assets/1/media", "must be mediapocket://<host>/assets/<id>"),
    ],
)
def test_airflow_refuses_malformed_mediapocket_uris(uri: str, problem: str) -> None:
    with pytest.raises(ValueError, match=problem):
        Asset(uri=uri)


def test_factory_names_the_asset_by_its_uri() -> None:
    asset = create_asset(host="TryMe.mediapocket.fi", project_id=42, extra={"team": "media"})
    assert asset == Asset(uri="mediapocket://tryme.mediapocket.fi/projects/42", extra={"team": "media"})
    assert asset.name == asset.uri
    with pytest.raises(ValueError, match="exactly one of asset_id and project_id"):
        create_asset(host="h", asset_id="1", project_id="2")
    with pytest.raises(ValueError, match="Invalid asset_id"):
        asset_uri("h", asset_id="a/b")


@pytest.mark.parametrize(
    ("base_url", "host"),
    [
        ("https://TryMe.mediapocket.fi", "tryme.mediapocket.fi"),
        ("https://tryme.mediapocket.fi:443/mp", "tryme.mediapocket.fi"),
        ("http://127.0.0.1:8080", "127.0.0.1:8080"),
        ("http://[::1]:80", "[::1]"),
    ],
)
def test_host_of_a_base_url(base_url: str, host: str) -> None:
    assert host_of(base_url) == host


def test_openlineage_converter_names_the_dataset() -> None:
    dataset = convert_asset_to_openlineage(Asset(uri="mediapocket://tryme.mediapocket.fi/assets/X1"), None)
    assert (dataset.namespace, dataset.name) == ("mediapocket://tryme.mediapocket.fi", "assets/X1")


# ------------------------------------------------------------------------------------------ events


def _alias_events(events: OutletEventAccessors, alias: AssetAlias) -> list[tuple[str, dict[str, Any]]]:
    return [(e.dest_asset_key.uri, e.extra) for e in events[alias].asset_alias_events]


def _context() -> dict[str, Any]:
    return {**make_context(), "outlet_events": OutletEventAccessors()}


def test_create_asset_emits_events_for_the_asset_and_its_project(sandbox: MediaPocketSandbox) -> None:
    host = host_of(sandbox.base_url)
    project_id = sandbox.state.seed_project_id
    alias, project = AssetAlias("ingest"), create_asset(host=host, project_id=project_id)
    context = _context()
    op = MediaPocketCreateAssetOperator(
        task_id="create", title="Clip", external_id="clip-1", project_id=project_id,
        file_url="https://media.example.com/clip.mp4", outlets=[alias, project],
    )
    asset = op.execute(context)

    extra = {"id": asset["id"], "external_id": "clip-1", "media_type": asset["media_type"],
             "project_id": project_id, "title": "Clip"}
    assert _alias_events(context["outlet_events"], alias) == [
        (f"mediapocket://{host}/assets/{asset['id']}", extra), (project.uri, extra),
    ]
    assert context["outlet_events"][project].extra == extra  # the declared project outlet's event


def test_without_mediapocket_outlets_nothing_is_recorded(sandbox: MediaPocketSandbox) -> None:
    context = _context()
    MediaPocketCreateAssetOperator(task_id="create", title="Quiet").execute(context)
    assert len(context["outlet_events"]) == 0


def test_bulk_ingest_emits_one_event_per_created_asset(sandbox: MediaPocketSandbox) -> None:
    host = host_of(sandbox.base_url)
    project_id = sandbox.state.seed_project_id
    alias, project = AssetAlias("bulk"), create_asset(host=host, project_id=project_id)
    items = [{"title": f"Item {n}", "file_url": f"https://media.example.com/{n}.jpg", "external_id": f"b-{n}"}
             for n in range(3)]
    context = _context()
    results = MediaPocketBulkIngestOperator(
        task_id="bulk", items=items, project_id=project_id, outlets=[alias, project]
    ).execute(context)

    events = _alias_events(context["outlet_events"], alias)
    assert [uri for uri, _ in events] == [
        uri for r in results for uri in (f"mediapocket://{host}/assets/{r['asset_id']}", project.uri)
    ]
    assert [extra for uri, extra in events if uri == project.uri] == [
        {"id": r["asset_id"], "external_id": r["external_id"], "project_id": project_id, "status": "created"}
        for r in results
    ]
    declared = context["outlet_events"][project].extra
    assert [a["id"] for a in declared["assets"]] == [r["asset_id"] for r in results]


def test_a_finished_dag_action_run_is_an_event_of_its_asset(sandbox: MediaPocketSandbox) -> None:
    from airflow_provider_mediapocket.hooks.mediapocket import MediaPocketHook

    asset = MediaPocketHook().create_asset("Action target")
    alias = AssetAlias("actions")
    context = _context()
    run = MediaPocketStartDagActionOperator(
        task_id="act", asset_id=asset.id, dag_action_name="Publish", deferrable=False, poll_interval=0.1,
        outlets=[alias],
    ).execute(context)

    assert _alias_events(context["outlet_events"], alias) == [(
        f"mediapocket://{host_of(sandbox.base_url)}/assets/{asset.id}",
        {"id": asset.id, "dag_action_name": "Publish", "dag_action_run_id": str(run["id"]),
         "dag_action_status": run["status"]},
    )]


def test_a_subclass_calling_super_execute_records_once(sandbox: MediaPocketSandbox) -> None:
    class Wrapped(MediaPocketCreateAssetOperator):
        def execute(self, context: Any) -> Any:
            return super().execute(context)

    alias = AssetAlias("once")
    context = _context()
    Wrapped(task_id="w", title="Once", outlets=[alias]).execute(context)
    assert len(_alias_events(context["outlet_events"], alias)) == 1
