"""Issue 10, items 2, 7 and 8: what the example DAGs show in the UI (params schema, mapped task names, docs)
and the manifest check that fails a malformed item at once."""

from __future__ import annotations

import importlib.util
import re
import sys
from pathlib import Path
from types import ModuleType
from typing import Any

import jsonschema
import pytest
from airflow.sdk.exceptions import AirflowFailException

EXAMPLES = Path(__file__).resolve().parents[2] / "example_dags"


def _load(name: str) -> ModuleType:
    spec = importlib.util.spec_from_file_location(f"_example_{name}", EXAMPLES / f"{name}.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module
    spec.loader.exec_module(module)
    return module


@pytest.fixture(scope="module")
def ingest() -> ModuleType:
    return _load("mediapocket_ingest")


@pytest.fixture(scope="module")
def dag_action() -> ModuleType:
    return _load("mediapocket_dag_action")


def _dag(module: ModuleType, dag_id: str) -> Any:
    from airflow.sdk import DAG

    found = [value for value in vars(module).values() if isinstance(value, DAG)]
    if found:
        return found[0]
    return getattr(module, dag_id)()


# ------------------------------------------------------------------------------------- item 2
def test_manifest_param_has_a_full_json_schema(ingest: ModuleType) -> None:
    """Items are typed objects, so the trigger form offers a JSON editor instead of ``[object Object]``."""
    dag = ingest.mediapocket_ingest()
    schema = dag.params.get_param("manifest").schema
    assert schema["type"] == "array"
    items = schema["items"]
    assert items["type"] == "object"
    assert set(items["required"]) == {"title", "file_url", "external_id"}
    assert items["properties"]["tags"] == {"type": "array", "items": {"type": "string"}}
    jsonschema.validate(ingest.DEFAULT_MANIFEST, schema)
    with pytest.raises(jsonschema.ValidationError):
        jsonschema.validate(["harbour.jpg"], schema)  # what the old form turned every item into


@pytest.mark.parametrize(
    ("manifest", "where"),
    [
        (["[object Object]"], "'manifest[0]'"),
        ([{"title": "ok", "file_url": "https://x/a.jpg", "external_id": "a"}, {"title": "no url",
                                                                                "external_id": "b"}],
         "'manifest[1].file_url'"),
        ([{"title": "t", "file_url": "https://x/a.jpg", "external_id": "a", "tags": "one,two"}],
         "'manifest[0].tags'"),
        ([{"title": "t", "file_url": "https://x/a.jpg", "external_id": "a", "colour": "red"}], "'manifest[0]'"),
        ("not a list", "'manifest'"),
    ],
)
def test_malformed_manifest_item_fails_at_once_naming_it(ingest: ModuleType, manifest: Any, where: str) -> None:
    """AirflowFailException: the task is not retried (the old code raised AttributeError three tries later)."""
    with pytest.raises(AirflowFailException, match=re.escape(f"Invalid parameter {where}")):
        ingest.checked_manifest(manifest, "project-1")


def test_good_manifest_becomes_create_asset_arguments(ingest: ModuleType) -> None:
    items = ingest.checked_manifest(ingest.DEFAULT_MANIFEST, "project-1")
    assert [item["external_id"] for item in items] == ["ingest-0001", "ingest-0002", "ingest-0003"]
    assert all(item["project_id"] == "project-1" and item["tags"] for item in items)


# ------------------------------------------------------------------------------------- item 7
def test_mapped_tasks_are_named_after_the_item(ingest: ModuleType) -> None:
    dag = ingest.mediapocket_ingest()
    templates = {task_id: dag.get_task(task_id).map_index_template
                 for task_id in ("create_asset", "wait_for_media", "run_dag_action")}
    assert templates["create_asset"] == "{{ task.title }}"
    assert "create_asset" in templates["wait_for_media"] and "title" in templates["wait_for_media"]
    assert templates["run_dag_action"] == templates["wait_for_media"]


# ------------------------------------------------------------------------------------- item 8
@pytest.mark.parametrize("name", ["mediapocket_ingest", "mediapocket_dag_action"])
def test_example_dags_have_doc_md(name: str) -> None:
    dag = getattr(_load(name), name)()
    assert dag.doc_md and "mediapocket_default" in dag.doc_md and "**Params" in dag.doc_md
    for param in dag.params:
        assert f"`{param}`" in dag.doc_md, param
