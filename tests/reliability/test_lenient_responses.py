"""Issue 7 item 19 (a, b): ``media_type`` is compared case-insensitively, like run statuses; a response
with ``tags: null`` or a numeric id is read (and normalised) instead of failing the whole call."""

from __future__ import annotations

import json
import time
import types
import typing
from typing import Annotated, Any

import pytest

from airflow_provider_mediapocket import models
from airflow_provider_mediapocket.hooks.mediapocket import MediaPocketHook
from airflow_provider_mediapocket.sandbox import MediaPocketSandbox, RawReply
from airflow_provider_mediapocket.sandbox.pytest_plugin import mediapocket_sandbox_fixture
from airflow_provider_mediapocket.sensors.mediapocket import MediaPocketAssetSensor
from airflow_provider_mediapocket.triggers.mediapocket import MediaPocketAssetTrigger
from airflow_provider_mediapocket.waiting import asset_state
from tests.triggers._support import first_event, make_context

sandbox = mediapocket_sandbox_fixture(media_processing_seconds=600, dag_action_run_seconds=600)


def reply_once(sandbox: MediaPocketSandbox, method: str, path: str, body: Any, times: int = 1) -> None:
    """The next ``times`` matching requests get ``body`` (JSON, HTTP 200) as the server's answer."""
    raw = RawReply(200, json.dumps(body).encode())
    sandbox.inject(*["raw"] * times, method=method, path_prefix=path, reply=raw)


def api_asset(**fields: Any) -> dict[str, Any]:
    asset = {
        "id": "a1", "external_id": None, "parent_id": None, "project_id": None, "owner": "o@example.com",
        "title": "T", "description": None, "category": None, "tags": [], "ai_tags": [], "status": "open",
        "media_type": "placeholder", "original_filename": None, "drop_folder_id": None, "md5_sum": None,
        "created_date": "2026-01-01T00:00:00.000Z", "modification_date": "2026-01-01T00:00:00.000Z",
        "deleted": None,
    }
    asset.update(fields)
    return asset


# ----------------------------------------------------------------------------- (b) null lists, numeric ids
def test_asset_with_null_tags_and_numeric_ids_is_read(sandbox: MediaPocketSandbox) -> None:
    body = {"asset": api_asset(id=12, project_id=7, tags=None, ai_tags=None)}
    reply_once(sandbox, "GET", "/api/v2/assets/12", body)
    asset = MediaPocketHook().get_asset("12")
    assert (asset.id, asset.project_id, asset.tags, asset.ai_tags) == ("12", "7", [], [])
    assert asset.to_xcom()["tags"] == [] and asset.to_xcom()["id"] == "12"


def test_run_list_with_null_messages_is_read(sandbox: MediaPocketSandbox) -> None:
    asset = MediaPocketHook().create_asset("runs")
    runs = [
        {"id": 7, "status": "running", "created_at": "2026-01-01T00:00:00.000Z",
         "dag_action": {"id": 1, "name": "Transcode"}, "dag_action_run_messages": None},
        {"id": "8", "status": "queued", "created_at": None, "dag_action": None,
         "dag_action_run_messages": [{"id": 3, "message": "Set in queue..."}]},
    ]
    reply_once(sandbox, "GET", f"/api/v2/assets/{asset.id}/dag_action_runs", {"dag_action_runs": runs})
    run = MediaPocketHook().get_dag_action_run(asset.id, 7)
    assert (run.id, run.dag_action_run_messages, run.dag_action and run.dag_action.id) == ("7", [], "1")


def test_project_contents_with_null_lists_and_counts_are_read(sandbox: MediaPocketSandbox) -> None:
    project = MediaPocketHook().create_project("nulls")
    body = {"assets": None, "subprojects": None, "stats": {"assets": None, "media_types": None}}
    reply_once(sandbox, "GET", f"/api/v2/projects/{project.id}/assets", body)
    contents = MediaPocketHook().list_project_assets(project.id)
    assert contents.assets == [] and contents.subprojects == []
    assert contents.stats is not None and (contents.stats.assets, contents.stats.media_types) == (0, {})


def _admits_none(annotation: Any) -> bool:
    if annotation is Any or annotation is type(None):
        return True
    if typing.get_origin(annotation) is Annotated:
        return _admits_none(typing.get_args(annotation)[0])
    if typing.get_origin(annotation) in (typing.Union, types.UnionType):
        return any(_admits_none(arg) for arg in typing.get_args(annotation))
    return False


def _response_models() -> list[type[models.MediaPocketModel]]:
    found: list[type[models.MediaPocketModel]] = []
    pending = [models.MediaPocketModel]
    while pending:
        for sub in pending.pop().__subclasses__():
            if sub.__module__ == models.__name__:
                found.append(sub)
                pending.append(sub)
    return found


@pytest.mark.parametrize("model", _response_models(), ids=lambda m: m.__name__)
def test_every_response_model_reads_nulls_and_numeric_ids(model: type[models.MediaPocketModel]) -> None:
    """Consistent for every model: a null where a default exists reads as that default, and every id
    (``id``, ``*_id``) sent as a number reads as its string."""
    base = {"id": 5} if "id" in model.model_fields else {}
    for name, field in model.model_fields.items():
        key = field.alias or name
        if not field.is_required() and not _admits_none(field.annotation):
            obj = model.model_validate({**base, key: None})
            assert getattr(obj, name) == field.get_default(call_default_factory=True), (model, name)
        if name == "id" or name.endswith("_id"):
            obj = model.model_validate({**base, key: 42})
            assert getattr(obj, name) == "42", (model, name)
    if base:
        assert model.model_validate(base).to_xcom()["id"] == "5"


# ----------------------------------------------------------------------------- (a) media_type in any case
def test_media_type_is_compared_case_insensitively() -> None:
    processing = models.Asset.model_validate(api_asset(media_type="Processing", original_filename="a.mp4"))
    assert processing.is_processing
    assert asset_state(processing, wait_for_media=True, target_statuses=None)[0] == "waiting"
    assert models.Asset.model_validate(api_asset(media_type="PLACEHOLDER")).is_placeholder
    assert not models.Asset.model_validate(api_asset(media_type="Video", original_filename="a.mp4")).is_placeholder


def test_asset_sensor_and_trigger_wait_while_media_type_is_processing_in_capitals(sandbox: MediaPocketSandbox) -> None:
    asset = MediaPocketHook().create_asset("caps")
    body = {"asset": api_asset(id=asset.id, media_type="PROCESSING", original_filename="a.mp4")}
    reply_once(sandbox, "GET", f"/api/v2/assets/{asset.id}", body)
    sensor = MediaPocketAssetSensor(task_id="wait", asset_id=asset.id, deferrable=False, poke_interval=0.05)
    assert sensor.poke(make_context()) is False
    reply_once(sandbox, "GET", f"/api/v2/assets/{asset.id}", body, times=50)
    trigger = MediaPocketAssetTrigger(asset_id=asset.id, end_time=time.time() + 0.3, poll_interval=0.05)
    assert first_event(trigger)["status"] == "timeout"  # never "ready" while the server says processing


def test_media_type_article_in_any_case_is_sent_as_article(sandbox: MediaPocketSandbox) -> None:
    asset = MediaPocketHook().create_asset("article", media_type="Article")
    assert asset.media_type == "article"
    assert [r.body.get("media_type") for r in sandbox.requests if r.method == "POST"] == ["article"]
