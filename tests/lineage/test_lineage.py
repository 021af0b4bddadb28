"""Issue 9 section 3: the operators' OpenLineage facets, read through the OpenLineage provider's own
DefaultExtractor after the operator ran against the sandbox (the provider is in the ``dev`` extra)."""

from __future__ import annotations

import json
from typing import Any

import attrs
import pytest
from airflow.providers.openlineage.extractors.base import DefaultExtractor

from airflow_provider_mediapocket.assets import host_of
from airflow_provider_mediapocket.hooks.mediapocket import MediaPocketHook
from airflow_provider_mediapocket.operators.mediapocket import (
    MediaPocketBulkIngestOperator,
    MediaPocketCreateAssetOperator,
    MediaPocketStartDagActionOperator,
)
from airflow_provider_mediapocket.sandbox import MediaPocketSandbox
from tests.triggers._support import make_context

SECRET_QUERY = "X-Amz-Signature=s3cr3tsig"


def lineage(operator: Any) -> Any:
    """What the OpenLineage listener gets for the task once it succeeded."""
    return DefaultExtractor(operator).extract_on_complete(task_instance=None)


def names(datasets: list[Any]) -> list[tuple[str, str]]:
    return [(d.namespace, d.name) for d in datasets]


def as_json(result: Any) -> str:
    return json.dumps(attrs.asdict(result, recurse=True), default=str)


def test_create_asset_from_a_presigned_url(sandbox: MediaPocketSandbox) -> None:
    op = MediaPocketCreateAssetOperator(
        task_id="create", title="Clip", project_id=sandbox.state.seed_project_id,
        file_url=f"https://user:pw@Media.Example.com:8443/in/clip.mp4?{SECRET_QUERY}#frag",
    )
    asset = op.execute(make_context())
    result = lineage(op)

    assert names(result.inputs) == [("https://media.example.com:8443", "/in/clip.mp4")]
    assert names(result.outputs) == [(f"mediapocket://{host_of(sandbox.base_url)}", f"assets/{asset['id']}")]
    text = as_json(result)
    for secret in ("s3cr3tsig", "user:pw", "pw@", sandbox.api_key, "frag"):
        assert secret not in text


@pytest.mark.parametrize("bucket", ["media-in", None], ids=["bucket-in-extra", "no-bucket"])
def test_create_asset_from_s3(sandbox: MediaPocketSandbox, monkeypatch: pytest.MonkeyPatch, bucket: Any) -> None:
    conn = json.loads(sandbox.airflow_connection_env()["AIRFLOW_CONN_MEDIAPOCKET_DEFAULT"])
    if bucket:
        conn["extra"] = {**(conn.get("extra") or {}), "s3_bucket": bucket}
    monkeypatch.setenv("AIRFLOW_CONN_MEDIAPOCKET_DEFAULT", json.dumps(conn))
    op = MediaPocketCreateAssetOperator(
        task_id="create", title="From S3", project_id=sandbox.state.seed_project_id, s3_key="uploads/a.mov",
    )
    op.execute(make_context())
    result = lineage(op)

    assert names(result.inputs) == ([("s3://media-in", "uploads/a.mov")] if bucket else [])
    assert len(result.outputs) == 1


def test_bulk_ingest(sandbox: MediaPocketSandbox) -> None:
    items = [{"title": f"Item {n}", "file_url": f"https://cdn.example.com/b/{n}.jpg?{SECRET_QUERY}",
              "external_id": f"lin-{n}"} for n in range(3)]
    op = MediaPocketBulkIngestOperator(task_id="bulk", items=items, project_id=sandbox.state.seed_project_id)
    results = op.execute(make_context())
    result = lineage(op)

    assert names(result.inputs) == [("https://cdn.example.com", f"/b/{n}.jpg") for n in range(3)]
    host = host_of(sandbox.base_url)
    assert names(result.outputs) == [(f"mediapocket://{host}", f"assets/{r['asset_id']}") for r in results]
    assert "s3cr3tsig" not in as_json(result)


def test_start_dag_action_carries_the_action_and_its_run(sandbox: MediaPocketSandbox) -> None:
    asset = MediaPocketHook().create_asset("Action target")
    op = MediaPocketStartDagActionOperator(
        task_id="act", asset_id=asset.id, dag_action_name="Publish", deferrable=False, poll_interval=0.1,
    )
    run = op.execute(make_context())
    result = lineage(op)

    dataset = (f"mediapocket://{host_of(sandbox.base_url)}", f"assets/{asset.id}")
    assert names(result.inputs) == [dataset] and names(result.outputs) == [dataset]
    facet = result.run_facets["mediaPocketDagActionRun"]
    assert (facet.dagActionName, facet.dagActionRunId, facet.status, facet.assetId) == (
        "Publish", str(run["id"]), run["status"], asset.id,
    )
    assert facet.dagActionId == str(run["dag_action"]["id"])
    assert facet._schemaURL.startswith("https://openlineage.io/spec/")
    assert sandbox.api_key not in as_json(result)


def test_a_failed_task_reports_its_inputs_only(sandbox: MediaPocketSandbox) -> None:
    op = MediaPocketCreateAssetOperator(task_id="create", title="x", file_url="https://media.example.com/a.mp4")
    result = DefaultExtractor(op).extract_on_failure(task_instance=None)
    assert names(result.inputs) == [("https://media.example.com", "/a.mp4")] and result.outputs == []


def test_using_the_operators_imports_nothing_of_openlineage() -> None:
    """(Airflow itself imports every provider's ``get_provider_info``; nothing more may be loaded.)"""
    import subprocess
    import sys

    code = (
        "import sys; import airflow_provider_mediapocket.operators.mediapocket, airflow_provider_mediapocket.assets; "
        "print(sorted(m for m in sys.modules if m.startswith(('openlineage', 'airflow.providers.openlineage.ext')) "
        "or m.endswith('._lineage')))"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120, check=True)
    assert done.stdout.strip() == "[]", done.stdout
