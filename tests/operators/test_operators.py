"""Every operator against the sandbox over loopback: results, validation, retries, links, deferral.

``context`` is a minimal dict (a fake ``ti`` recording XCom pushes and a dict-backed ``task_state_store``);
the real Airflow path (task runner, task_state_store, triggerer) is covered by tests/e2e.
"""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from typing import Any

import pytest
from airflow.providers.common.compat.sdk import TaskDeferred

from airflow_provider_mediapocket.exceptions import (
    MediaPocketError,
    MediaPocketOperationError,
    MediaPocketPermissionError,
    MediaPocketRunFailedError,
    MediaPocketTimeoutError,
    MediaPocketValidationError,
)
from airflow_provider_mediapocket.hooks.mediapocket import MediaPocketHook
from airflow_provider_mediapocket.operators.mediapocket import (
    MediaPocketAddCommentOperator,
    MediaPocketAddMediaOperator,
    MediaPocketAssignAssetOperator,
    MediaPocketCreateAssetOperator,
    MediaPocketCreateProjectOperator,
    MediaPocketRestoreAssetOperator,
    MediaPocketStartDagActionOperator,
    MediaPocketTrashAssetOperator,
    MediaPocketUpdateAssetOperator,
)
from airflow_provider_mediapocket.sandbox import MediaPocketSandbox
from airflow_provider_mediapocket.sandbox import server as sandbox_server
from airflow_provider_mediapocket.triggers.mediapocket import MediaPocketDagActionRunTrigger
from tests._compat import capture_logs, requires_airflow
from tests.triggers._support import (
    FakeStateStore,
    FakeTI,
    add_connection,
    calls,
    first_event,
    logged_run_messages,
    make_context,
)

ASSET_URL_KEY = "mediapocket_asset_url"
RUN_URL_KEY = "mediapocket_dag_action_run_url"
UNREACHABLE = "unreachable.example.com"


@pytest.fixture
def hook(sandbox: MediaPocketSandbox) -> MediaPocketHook:
    return MediaPocketHook()


@pytest.fixture
def project_id(sandbox: MediaPocketSandbox) -> str:
    return sandbox.state.seed_project_id


@pytest.fixture
def picky_sandbox(sandbox: MediaPocketSandbox, monkeypatch: pytest.MonkeyPatch) -> Iterator[MediaPocketSandbox]:
    """The sandbox refuses media URLs on host ``unreachable.example.com`` (as Media Pocket refuses a URL it
    cannot download). The provider cannot know that before sending: the URL is a valid http(s) URL."""
    original = sandbox_server.is_http_url
    monkeypatch.setattr(sandbox_server, "is_http_url", lambda url: original(url) and UNREACHABLE not in url)
    yield sandbox


def new_assets(sandbox: MediaPocketSandbox, before: set[str]) -> list[dict[str, Any]]:
    return [a for aid, a in sandbox.state.assets.items() if aid not in before]


# ------------------------------------------------------------------------------ no I/O at construction


def all_operators(conn_id: str) -> list[Any]:
    common = {"mediapocket_conn_id": conn_id}
    return [
        MediaPocketCreateAssetOperator(task_id="c1", title="t", file_url="https://x.example.com/a.mp4", **common),
        MediaPocketAddMediaOperator(task_id="c2", asset_id="a", file_url="https://x.example.com/a.mp4", **common),
        MediaPocketAssignAssetOperator(task_id="c3", asset_id="a", project_id="p", **common),
        MediaPocketUpdateAssetOperator(task_id="c4", asset_id="a", title="t", **common),
        MediaPocketTrashAssetOperator(task_id="c5", asset_id="a", **common),
        MediaPocketRestoreAssetOperator(task_id="c6", asset_id="a", **common),
        MediaPocketCreateProjectOperator(task_id="c7", title="p", **common),
        MediaPocketAddCommentOperator(task_id="c8", asset_id="a", comment="hi", **common),
        MediaPocketStartDagActionOperator(task_id="c9", asset_id="a", dag_action_name="Transcode", deferrable=True,
                                          poll_interval=1, timeout=10, **common),
    ]


def test_constructors_do_no_io() -> None:
    operators = all_operators("mp_conn_that_does_not_exist")
    assert len(operators) == 9
    # the hook is only built on first use, and building it reads nothing either
    assert all(op.hook.mediapocket_conn_id == "mp_conn_that_does_not_exist" for op in operators)


def test_missing_connection_fails_at_execute_with_a_clear_error() -> None:
    op = MediaPocketUpdateAssetOperator(task_id="u", asset_id="a", title="t", mediapocket_conn_id="mp_nope")
    with pytest.raises(MediaPocketError, match="mp_nope"):
        op.execute(make_context())


# ------------------------------------------------------------------------------ create asset


def test_create_asset_plain(sandbox: MediaPocketSandbox) -> None:
    ti = FakeTI()
    op = MediaPocketCreateAssetOperator(task_id="create", title="Plain", description="d", tags=["A", "b"],
                                        category="News", external_id="ext-plain")
    result = op.execute(make_context(ti=ti))
    json.dumps(result)
    stored = sandbox.state.assets[result["id"]]
    assert stored["title"] == "Plain" and stored["external_id"] == "ext-plain"
    assert result["title"] == "Plain" and result["tags"] == ["a", "b"] and result["media_type"] == "placeholder"
    assert ti.xcoms[ASSET_URL_KEY] == f"{sandbox.base_url}/assets/{result['id']}"


def test_create_asset_with_file_url_adds_media_and_derives_the_filename(sandbox: MediaPocketSandbox) -> None:
    op = MediaPocketCreateAssetOperator(task_id="create", title="With media",
                                        file_url="https://cdn.example.com/clips/My%20Clip.mp4?sig=abc")
    result = op.execute(make_context())
    assert result["original_filename"] == "My Clip.mp4"
    assert result["media_type"] in ("processing", "video")
    media_posts = calls(sandbox, "POST", f"/api/v2/assets/{result['id']}/media")
    assert [r.body for r in media_posts] == [
        {"file_url": "https://cdn.example.com/clips/My%20Clip.mp4?sig=abc", "filename": "My Clip.mp4"}
    ]


def test_create_asset_in_project_with_file_url(sandbox: MediaPocketSandbox, project_id: str) -> None:
    op = MediaPocketCreateAssetOperator(task_id="create", title="In project", project_id=project_id,
                                        file_url="https://cdn.example.com/img/photo.png", filename="cover.png")
    result = op.execute(make_context())
    assert result["project_id"] == project_id
    assert result["original_filename"] == "cover.png"
    posts = calls(sandbox, "POST", f"/api/v2/projects/{project_id}/assets")
    assert len(posts) == 1
    assert posts[0].body["url"] == {"file_url": "https://cdn.example.com/img/photo.png", "filename": "cover.png"}
    assert not calls(sandbox, "POST", "/api/v2/assets")  # one call, not create + add media


def test_create_asset_in_project_with_s3_key(sandbox: MediaPocketSandbox, project_id: str) -> None:
    op = MediaPocketCreateAssetOperator(task_id="create", title="From S3", project_id=project_id,
                                        s3_key="ingest/2024/raw/take1.mov")
    result = op.execute(make_context())
    assert result["project_id"] == project_id
    assert result["original_filename"] == "take1.mov"
    media = sandbox.state.media_of(result["id"])
    assert [m["file_url"] for m in media] == ["s3://ingest/2024/raw/take1.mov"]


@pytest.mark.parametrize(("kwargs", "parameter"), [
    ({"project_id": "P", "file_url": "ftp://files.example.com/a.mp4"}, "file_url"),
    ({"project_id": "P", "file_url": "/relative/a.mp4"}, "file_url"),
    ({"file_url": "not a url"}, "file_url"),
    ({"s3_key": "bucket/a.mp4"}, "s3_key"),
    ({"filename": "a.mp4"}, "filename"),
    ({"project_id": "P", "file_url": "https://x.example.com/a.mp4", "s3_key": "k"}, "s3_key"),
    ({"file_url": "https://x.example.com/dir/"}, "filename"),
])
def test_create_asset_bad_media_is_refused_before_sending(
    sandbox: MediaPocketSandbox, kwargs: dict[str, Any], parameter: str
) -> None:
    before = set(sandbox.state.assets)
    op = MediaPocketCreateAssetOperator(task_id="create", title="Never", **kwargs)
    with pytest.raises(MediaPocketValidationError, match=parameter):
        op.execute(make_context())
    assert sandbox.requests == []
    assert set(sandbox.state.assets) == before


def test_create_asset_media_failure_reported_as_http_200(picky_sandbox: MediaPocketSandbox, project_id: str) -> None:
    store = FakeStateStore()
    op = MediaPocketCreateAssetOperator(task_id="create", title="Bad media", project_id=project_id,
                                        file_url=f"https://{UNREACHABLE}/a.mp4")
    with pytest.raises(MediaPocketOperationError) as info:
        op.execute(make_context(store))
    created = store.get("mediapocket_asset_id")
    assert created is not None and created in picky_sandbox.state.assets
    assert f"Asset {created} was created in project {project_id} but its media was not added" in str(info.value)
    assert "not a valid HTTP URL" in str(info.value)


def test_create_asset_retry_after_media_failure_in_project_does_not_succeed_without_media(
    picky_sandbox: MediaPocketSandbox, project_id: str
) -> None:
    """Regression: a retry used to re-attach to the asset created by the failed try without adding its media, so the
    task succeeded with a media-less asset although ``file_url`` was given (outside a project it was added)."""
    store = FakeStateStore()
    url = f"https://{UNREACHABLE}/a.mp4"
    with pytest.raises(MediaPocketOperationError):
        MediaPocketCreateAssetOperator(task_id="c", title="Bad media", project_id=project_id,
                                       file_url=url).execute(make_context(store))
    before = set(picky_sandbox.state.assets)
    try:
        result = MediaPocketCreateAssetOperator(task_id="c", title="Bad media", project_id=project_id,
                                                file_url=url).execute(make_context(store))
    except MediaPocketError:
        result = None  # failing again is fine: the media still cannot be added
    assert set(picky_sandbox.state.assets) == before  # no second asset
    if result is not None:
        assert result["original_filename"] == "a.mp4", "retry succeeded but the asset has no media"


def test_create_asset_retry_adds_missing_media_without_a_second_asset(
    picky_sandbox: MediaPocketSandbox, monkeypatch: pytest.MonkeyPatch
) -> None:
    store = FakeStateStore()
    url = f"https://{UNREACHABLE}/clip.mp4"
    before = set(picky_sandbox.state.assets)
    with pytest.raises(MediaPocketError) as info:
        MediaPocketCreateAssetOperator(task_id="c", title="Media later", file_url=url).execute(make_context(store))
    created = store.get("mediapocket_asset_id")
    assert f"Asset {created} was created but adding its media failed" in str(info.value)
    monkeypatch.setattr(sandbox_server, "is_http_url", lambda u: u.startswith("https://"))  # now reachable
    result = MediaPocketCreateAssetOperator(task_id="c", title="Media later", file_url=url).execute(
        make_context(store))
    assert result["id"] == created
    assert result["original_filename"] == "clip.mp4"
    assert [a["id"] for a in new_assets(picky_sandbox, before)] == [created]


def test_create_asset_retry_does_not_duplicate(sandbox: MediaPocketSandbox) -> None:
    store = FakeStateStore()
    before = set(sandbox.state.assets)
    first = MediaPocketCreateAssetOperator(task_id="c", title="Once", file_url="https://x.example.com/a.jpg")
    result1 = first.execute(make_context(store))
    again = MediaPocketCreateAssetOperator(task_id="c", title="Once", file_url="https://x.example.com/a.jpg")
    ti = FakeTI()
    result2 = again.execute(make_context(store, ti))
    assert result1["id"] == result2["id"]
    assert len(new_assets(sandbox, before)) == 1
    assert len(calls(sandbox, "POST", f"/api/v2/assets/{result1['id']}/media")) == 1
    assert ti.xcoms[ASSET_URL_KEY].endswith(f"/assets/{result1['id']}")


def test_create_asset_rerun_with_same_external_id_in_project_reuses_it(
    sandbox: MediaPocketSandbox, project_id: str
) -> None:
    before = set(sandbox.state.assets)
    kwargs = {"task_id": "c", "title": "Ext", "project_id": project_id, "external_id": "ext-42"}
    result1 = MediaPocketCreateAssetOperator(**kwargs).execute(make_context(FakeStateStore()))
    with capture_logs() as logs:
        result2 = MediaPocketCreateAssetOperator(**kwargs).execute(make_context(FakeStateStore()))
    assert result2["id"] == result1["id"]
    assert result2["external_id"] == "ext-42"
    assert len(new_assets(sandbox, before)) == 1
    assert any("already exists" in e["event"] for e in logs if e["log_level"] == "info")


def test_create_asset_external_id_taken_outside_the_project_still_fails(
    sandbox: MediaPocketSandbox, project_id: str, hook: MediaPocketHook
) -> None:
    hook.create_asset("elsewhere", external_id="ext-elsewhere")
    op = MediaPocketCreateAssetOperator(task_id="c", title="x", project_id=project_id, external_id="ext-elsewhere")
    with pytest.raises(MediaPocketValidationError, match="External id has already been taken"):
        op.execute(make_context())


# ------------------------------------------------------------------------------ media, assign, update


def test_add_media_and_retry_skip(sandbox: MediaPocketSandbox, hook: MediaPocketHook) -> None:
    asset = hook.create_asset("needs media")
    store, ti = FakeStateStore(), FakeTI()
    kwargs = {"task_id": "m", "asset_id": asset.id, "file_url": "https://x.example.com/docs/report.pdf"}
    assert MediaPocketAddMediaOperator(**kwargs).execute(make_context(store, ti)) == asset.id
    assert MediaPocketAddMediaOperator(**kwargs).execute(make_context(store)) == asset.id
    assert len(calls(sandbox, "POST", f"/api/v2/assets/{asset.id}/media")) == 1
    assert hook.get_asset(asset.id).original_filename == "report.pdf"
    assert ti.xcoms[ASSET_URL_KEY] == f"{sandbox.base_url}/assets/{asset.id}"
    # a different file is added even with the same store
    MediaPocketAddMediaOperator(task_id="m", asset_id=asset.id, file_url="https://x.example.com/b.png",
                                filename="other.png").execute(make_context(store))
    assert len(calls(sandbox, "POST", f"/api/v2/assets/{asset.id}/media")) == 2
    assert hook.get_asset(asset.id).original_filename == "other.png"


def test_add_media_bad_url_refused_before_sending(sandbox: MediaPocketSandbox) -> None:
    with pytest.raises(MediaPocketValidationError, match="file_url"):
        MediaPocketAddMediaOperator(task_id="m", asset_id="a", file_url="file:///etc/passwd").execute(make_context())
    assert sandbox.requests == []


def test_assign_asset(sandbox: MediaPocketSandbox, hook: MediaPocketHook, project_id: str) -> None:
    asset = hook.create_asset("to assign")
    ti = FakeTI()
    op = MediaPocketAssignAssetOperator(task_id="a", asset_id=asset.id, project_id=project_id)
    assert op.execute(make_context(ti=ti)) == asset.id
    assert sandbox.state.assets[asset.id]["project_id"] == project_id
    assert ti.xcoms[ASSET_URL_KEY].endswith(f"/assets/{asset.id}")
    assert op.execute(make_context()) == asset.id  # again: harmless


def test_assign_asset_to_missing_project_fails(sandbox: MediaPocketSandbox, hook: MediaPocketHook) -> None:
    asset = hook.create_asset("to assign")
    op = MediaPocketAssignAssetOperator(task_id="a", asset_id=asset.id, project_id="no-such-project")
    with pytest.raises(MediaPocketOperationError, match=r"Project not found\."):
        op.execute(make_context())
    assert sandbox.state.assets[asset.id]["project_id"] is None


def test_update_asset(sandbox: MediaPocketSandbox, hook: MediaPocketHook) -> None:
    asset = hook.create_asset("old title", description="keep me")
    ti = FakeTI()
    result = MediaPocketUpdateAssetOperator(task_id="u", asset_id=asset.id, title="new title", tags=["X"],
                                            external_id="ext-upd").execute(make_context(ti=ti))
    assert result["title"] == "new title" and result["tags"] == ["x"] and result["external_id"] == "ext-upd"
    stored = sandbox.state.assets[asset.id]
    assert stored["title"] == "new title" and stored["description"] == "keep me"
    puts = calls(sandbox, "PUT", f"/api/v2/assets/{asset.id}")
    assert [r.body for r in puts] == [{"title": "new title", "tags": ["X"], "external_id": "ext-upd"}]
    assert ti.xcoms[ASSET_URL_KEY].endswith(f"/assets/{asset.id}")


def test_update_asset_bad_title_refused_before_sending(sandbox: MediaPocketSandbox) -> None:
    with pytest.raises(MediaPocketValidationError, match="title"):
        MediaPocketUpdateAssetOperator(task_id="u", asset_id="a", title="x" * 300).execute(make_context())
    assert sandbox.requests == []


def test_trash_and_restore_are_idempotent(sandbox: MediaPocketSandbox, hook: MediaPocketHook) -> None:
    asset = hook.create_asset("bin")
    trash = MediaPocketTrashAssetOperator(task_id="t", asset_id=asset.id)
    restore = MediaPocketRestoreAssetOperator(task_id="r", asset_id=asset.id)
    assert restore.execute(make_context()) == asset.id  # not trashed: nothing to do, no 400
    assert not calls(sandbox, "POST", f"/api/v2/assets/{asset.id}/restore")
    assert trash.execute(make_context()) == asset.id
    assert trash.execute(make_context()) == asset.id
    assert sandbox.state.assets[asset.id]["deleted"] is not None
    assert len(calls(sandbox, "POST", f"/api/v2/assets/{asset.id}/trash_bin")) == 1
    assert restore.execute(make_context()) == asset.id
    assert restore.execute(make_context()) == asset.id
    assert sandbox.state.assets[asset.id]["deleted"] is None
    assert len(calls(sandbox, "POST", f"/api/v2/assets/{asset.id}/restore")) == 1


# ------------------------------------------------------------------------------ projects, comments


def test_create_project_and_retry_reuse(sandbox: MediaPocketSandbox) -> None:
    store = FakeStateStore()
    before = set(sandbox.state.projects)
    op = MediaPocketCreateProjectOperator(task_id="p", title="Season 1", description="d", external_id="ext-s1")
    first = op.execute(make_context(store))
    second = MediaPocketCreateProjectOperator(task_id="p", title="Season 1", description="d",
                                              external_id="ext-s1").execute(make_context(store))
    assert first["id"] == second["id"] and second["title"] == "Season 1"
    assert set(sandbox.state.projects) - before == {first["id"]}
    json.dumps(second)


def test_create_subproject(sandbox: MediaPocketSandbox, project_id: str) -> None:
    result = MediaPocketCreateProjectOperator(task_id="p", title="Episode 1", parent_project_id=project_id).execute(
        make_context())
    assert sandbox.state.projects[result["id"]]["project_id"] == project_id
    assert len(calls(sandbox, "POST", f"/api/v2/projects/{project_id}/projects")) == 1


def test_add_comment_and_retry_reuse(sandbox: MediaPocketSandbox, hook: MediaPocketHook, project_id: str) -> None:
    asset = hook.create_asset("commented")
    store = FakeStateStore()
    kwargs = {"task_id": "c", "asset_id": asset.id, "comment": "Looks good"}
    first = MediaPocketAddCommentOperator(**kwargs).execute(make_context(store))
    second = MediaPocketAddCommentOperator(**kwargs).execute(make_context(store))
    assert first["id"] == second["id"] and second["message"] == "Looks good"
    assert [c.message for c in hook.list_asset_comments(asset.id)] == ["Looks good"]
    on_project = MediaPocketAddCommentOperator(task_id="c", project_id=project_id, comment="Project note").execute(
        make_context())
    assert [c.id for c in hook.list_project_comments(project_id)] == [on_project["id"]]


@pytest.mark.parametrize("targets", [{}, {"asset_id": "a", "project_id": "p"}])
def test_add_comment_needs_exactly_one_target(sandbox: MediaPocketSandbox, targets: dict[str, str]) -> None:
    with pytest.raises(MediaPocketValidationError, match="'asset_id' and 'project_id'"):
        MediaPocketAddCommentOperator(task_id="c", comment="x", **targets).execute(make_context())
    assert sandbox.requests == []


# ------------------------------------------------------------------------------ DAG actions


def start_op(asset_id: str, **kwargs: Any) -> MediaPocketStartDagActionOperator:
    kwargs.setdefault("poll_interval", 0.05)
    kwargs.setdefault("timeout", 10)
    kwargs.setdefault("deferrable", False)
    return MediaPocketStartDagActionOperator(task_id="start", asset_id=asset_id, **kwargs)


def run_messages(logs: list[dict[str, Any]], run_id: Any) -> list[str]:
    """Messages logged by the task and its trigger (the message's time at the end of each line dropped)."""
    return logged_run_messages(logs, run_id)


def test_start_by_id_waits_for_completion(sandbox: MediaPocketSandbox, hook: MediaPocketHook) -> None:
    asset = hook.create_asset("action")
    ti = FakeTI()
    with capture_logs() as logs:
        result = start_op(asset.id, dag_action_id=2).execute(make_context(ti=ti))
    assert result["status"] == "completed" and result["dag_action"]["name"] == "Auto-tag"
    json.dumps(result)
    assert run_messages(logs, result["id"]) == [
        "Set in queue...", "Started processing", f"Processing asset {asset.id}", "Finished successfully"]
    assert ti.xcoms[RUN_URL_KEY] == f"{sandbox.base_url}/assets/{asset.id}/dag_action_runs/{result['id']}"
    assert ti.xcoms[ASSET_URL_KEY] == f"{sandbox.base_url}/assets/{asset.id}"
    assert len(calls(sandbox, "POST", f"/api/v2/assets/{asset.id}/dag_actions/2")) == 1


def test_start_by_name(sandbox: MediaPocketSandbox, hook: MediaPocketHook) -> None:
    asset = hook.create_asset("action")
    result = start_op(asset.id, dag_action_name=" publish ", wait_for_completion=False).execute(make_context())
    assert result["dag_action"]["id"] == "3"
    assert len(calls(sandbox, "POST", f"/api/v2/assets/{asset.id}/dag_actions/3")) == 1


def test_start_unknown_name_lists_the_valid_names(sandbox: MediaPocketSandbox, hook: MediaPocketHook) -> None:
    asset = hook.create_asset("action")
    with pytest.raises(MediaPocketValidationError) as info:
        start_op(asset.id, dag_action_name="Transmogrify").execute(make_context())
    text = str(info.value)
    assert "'dag_action_name'" in text and "Transmogrify" in text
    for name in ("Transcode", "Auto-tag", "Publish", "Broken pipeline", "Never ending"):
        assert repr(name) in text
    assert not calls(sandbox, "POST", f"/api/v2/assets/{asset.id}/dag_actions")


@pytest.mark.parametrize("ids", [{}, {"dag_action_id": 1, "dag_action_name": "Transcode"},
                                 {"dag_action_id": "", "dag_action_name": None}])
def test_start_needs_exactly_one_of_id_and_name(sandbox: MediaPocketSandbox, ids: dict[str, Any]) -> None:
    with pytest.raises(MediaPocketValidationError) as info:
        start_op("asset-1", **ids).execute(make_context())
    assert "'dag_action_id'" in str(info.value) and "'dag_action_name'" in str(info.value)
    assert sandbox.requests == []


@pytest.mark.parametrize(("kwargs", "parameter"), [
    ({"poll_interval": 0}, "poll_interval"),
    ({"timeout": -1}, "timeout"),
    ({"success_statuses": ["done"], "failure_statuses": ["DONE"]}, "failure_statuses"),
    ({"failure_statuses": [1]}, "failure_statuses"),
])
def test_start_bad_parameters_at_construction(kwargs: dict[str, Any], parameter: str) -> None:
    with pytest.raises(MediaPocketValidationError, match=f"'{parameter}'"):
        start_op("a", dag_action_id=1, **kwargs)


def test_start_without_waiting_returns_the_running_run(sandbox: MediaPocketSandbox, hook: MediaPocketHook) -> None:
    asset = hook.create_asset("action")
    store = FakeStateStore()
    result = start_op(asset.id, dag_action_id=1, wait_for_completion=False).execute(make_context(store))
    assert result["status"] == "running"
    assert store.get("mediapocket_dag_action_run_id") == str(result["id"])


def test_start_deferrable_defers_then_completes(sandbox: MediaPocketSandbox, hook: MediaPocketHook) -> None:
    asset = hook.create_asset("action")
    ti, store = FakeTI(), FakeStateStore()
    op = start_op(asset.id, dag_action_id=1, deferrable=True, poll_interval=0.05, timeout=20)
    with capture_logs() as logs:
        before = time.time()
        with pytest.raises(TaskDeferred) as deferred:
            op.execute(make_context(store, ti))
        trigger = deferred.value.trigger
        assert isinstance(trigger, MediaPocketDagActionRunTrigger)
        assert deferred.value.method_name == "execute_complete"
        _, kwargs = trigger.serialize()
        run_id = store.get("mediapocket_dag_action_run_id")
        assert kwargs["dag_action_run_id"] == run_id and kwargs["poll_interval"] == 0.05
        assert before + 20 <= kwargs["end_time"] <= time.time() + 20
        assert ti.xcoms[RUN_URL_KEY].endswith(f"/dag_action_runs/{run_id}")  # pushed before waiting
        assert (ti.xcoms["asset_id"], ti.xcoms["dag_action_run_id"]) == (asset.id, run_id)
        result = start_op(asset.id, dag_action_id=1, deferrable=True).execute_complete(
            make_context(store), first_event(trigger))
    assert result["status"] == "completed" and str(result["id"]) == run_id
    assert run_messages(logs, run_id) == [
        "Set in queue...", "Started processing", f"Processing asset {asset.id}", "Finished successfully"]
    # "Started ... (status 'running')" said it: neither the task nor its trigger repeats "has status 'running'".
    assert kwargs["watch"]["last_status"] == "running"
    said = [e for e in logs if e["log_level"] != "debug"]
    assert [e["event"] for e in said if "has status 'running'" in str(e["event"])] == []


def test_start_failed_action_raises_with_the_messages(sandbox: MediaPocketSandbox, hook: MediaPocketHook) -> None:
    asset = hook.create_asset("action")
    with pytest.raises(MediaPocketRunFailedError) as info:
        start_op(asset.id, dag_action_name="Broken pipeline").execute(make_context())
    text = str(info.value)
    assert "Error: pipeline step failed" in text and "Set in queue..." in text and "failed with status 'failed'" in text


def test_start_deferred_failure_raises_with_the_messages(sandbox: MediaPocketSandbox, hook: MediaPocketHook) -> None:
    asset = hook.create_asset("action")
    op = start_op(asset.id, dag_action_id=4, deferrable=True)
    with pytest.raises(TaskDeferred) as deferred:
        op.execute(make_context())
    with pytest.raises(MediaPocketRunFailedError, match="Error: pipeline step failed"):
        op.execute_complete(make_context(), first_event(deferred.value.trigger))


def test_start_times_out(sandbox: MediaPocketSandbox, hook: MediaPocketHook) -> None:
    asset = hook.create_asset("action")
    began = time.monotonic()
    with pytest.raises(MediaPocketTimeoutError, match="timeout"):
        start_op(asset.id, dag_action_id=5, timeout=0.5, poll_interval=0.1).execute(make_context())
    assert 0.45 <= time.monotonic() - began < 3


def test_start_without_actions_start_permission(
    sandbox: MediaPocketSandbox, hook: MediaPocketHook, monkeypatch: pytest.MonkeyPatch
) -> None:
    asset = hook.create_asset("action")
    sandbox.state.add_api_key("view-only-key-55aa", permissions={"ACTIONS_VIEW"})
    add_connection(monkeypatch, sandbox, "mp_view_only", "view-only-key-55aa")
    with pytest.raises(MediaPocketPermissionError, match="ACTIONS_START") as info:
        start_op(asset.id, dag_action_id=1, mediapocket_conn_id="mp_view_only").execute(make_context())
    assert "view-only-key-55aa" not in str(info.value)
    assert sandbox.state.runs == {}


class _CrashOnceOperator(MediaPocketStartDagActionOperator):
    """The worker dies while waiting, the first time only (the run was started and its id stored)."""

    crashed = False

    def poll_until_complete(self, external_id: Any, context: Any) -> Any:
        if not type(self).crashed:
            type(self).crashed = True
            raise RuntimeError("worker lost")
        return super().poll_until_complete(external_id, context)


@requires_airflow("3.3", "the run id survives the failed try only in task_state_store")
def test_start_retry_reattaches_to_the_run(sandbox: MediaPocketSandbox, hook: MediaPocketHook) -> None:
    asset = hook.create_asset("action")
    store, ti = FakeStateStore(), FakeTI()
    kwargs = {"task_id": "start", "asset_id": asset.id, "dag_action_id": 1, "poll_interval": 0.05,
              "timeout": 10, "deferrable": False}
    with pytest.raises(RuntimeError, match="worker lost"):
        _CrashOnceOperator(**kwargs).execute(make_context(store, ti))
    run_id = store.get("mediapocket_dag_action_run_id")
    assert run_id is not None
    assert ti.xcoms[RUN_URL_KEY] == f"{sandbox.base_url}/assets/{asset.id}/dag_action_runs/{run_id}"
    result = _CrashOnceOperator(**kwargs).execute(make_context(store))
    assert str(result["id"]) == run_id and result["status"] == "completed"
    assert len(calls(sandbox, "POST", f"/api/v2/assets/{asset.id}/dag_actions/")) == 1
    assert len(sandbox.state.runs) == 1
    # a third try after success returns the same run without starting anything
    again = MediaPocketStartDagActionOperator(**kwargs).execute(make_context(store))
    assert again["id"] == result["id"]
    assert len(calls(sandbox, "POST", f"/api/v2/assets/{asset.id}/dag_actions/")) == 1


def test_start_retry_after_a_failed_run_starts_afresh(sandbox: MediaPocketSandbox, hook: MediaPocketHook) -> None:
    asset = hook.create_asset("action")
    store = FakeStateStore()
    with pytest.raises(MediaPocketRunFailedError):
        start_op(asset.id, dag_action_id=4).execute(make_context(store))
    first = store.get("mediapocket_dag_action_run_id")
    with pytest.raises(MediaPocketRunFailedError):
        start_op(asset.id, dag_action_id=4).execute(make_context(store))
    assert store.get("mediapocket_dag_action_run_id") != first
    assert len(calls(sandbox, "POST", f"/api/v2/assets/{asset.id}/dag_actions/")) == 2


class _FaultsAfterStartOperator(MediaPocketStartDagActionOperator):
    """Queues sandbox faults on the run listing right after the run was started (so they hit the wait)."""

    sandbox: MediaPocketSandbox
    faults: tuple[str, ...] = ()

    def submit_job(self, context: Any) -> str:
        run_id = super().submit_job(context)
        self.sandbox.inject(*self.faults, method="GET", path_prefix=f"/api/v2/assets/{self._asset_id}/dag_action_runs",
                            retry_after=0)
        return run_id


@pytest.mark.parametrize("faults", [("503", "502"), ("429",), ("drop",)])
def test_start_survives_transient_errors_while_waiting(
    sandbox: MediaPocketSandbox, hook: MediaPocketHook, faults: tuple[str, ...]
) -> None:
    """A transient failure (5xx, 429, network) that outlasts the hook's retries is polled again, as the trigger does."""
    asset = hook.create_asset("action")
    op = _FaultsAfterStartOperator(task_id="start", asset_id=asset.id, dag_action_id=1, poll_interval=0.05,
                                   timeout=10, deferrable=False, hook_params={"retry_limit": 0})
    op.sandbox, op.faults = sandbox, faults
    with capture_logs() as logs:
        result = op.execute(make_context())
    assert result["status"] == "completed"
    seen = [r.fault for r in calls(sandbox, "GET", f"/api/v2/assets/{asset.id}/dag_action_runs") if r.fault]
    assert seen == list(faults)
    assert sum("Transient" in str(e["event"]) for e in logs) == len(faults)


# ------------------------------------------------------------------------------ secrets


def test_xcom_outputs_never_contain_the_api_key(sandbox: MediaPocketSandbox, hook: MediaPocketHook,
                                                project_id: str) -> None:
    key = sandbox.api_key
    ti = FakeTI()
    ctx = make_context(ti=ti)
    asset = MediaPocketCreateAssetOperator(task_id="c", title="k", file_url="https://x.example.com/k.mp4").execute(ctx)
    outputs: list[Any] = [asset]
    outputs.append(MediaPocketAddMediaOperator(task_id="m", asset_id=asset["id"],
                                               file_url="https://x.example.com/k2.mp4").execute(ctx))
    outputs.append(MediaPocketAssignAssetOperator(task_id="a", asset_id=asset["id"], project_id=project_id).execute(ctx))
    outputs.append(MediaPocketUpdateAssetOperator(task_id="u", asset_id=asset["id"], title="k2").execute(ctx))
    outputs.append(MediaPocketCreateProjectOperator(task_id="p", title="kp").execute(ctx))
    outputs.append(MediaPocketAddCommentOperator(task_id="co", asset_id=asset["id"], comment="k").execute(ctx))
    outputs.append(start_op(asset["id"], dag_action_id=3).execute(ctx))
    outputs.append(MediaPocketTrashAssetOperator(task_id="t", asset_id=asset["id"]).execute(ctx))
    outputs.append(MediaPocketRestoreAssetOperator(task_id="r", asset_id=asset["id"]).execute(ctx))
    text = json.dumps(outputs) + json.dumps(ti.pushes) + json.dumps(ctx["task_state_store"].data)
    assert len(ti.pushes) == 8  # create, add media, assign, update: asset URL; start: asset id, run id, both URLs
    assert key not in text
