"""Retries never duplicate: creates without a natural key, DAG action starts, retried start operators.

Each test loses an answer (sandbox fault ``lost``/``delay``) or kills a try mid-request the way
``execution_timeout`` does, retries the way Airflow does (a new operator, the same ``task_state_store``
or none), and counts what exists on the server.
"""

from __future__ import annotations

from typing import Any

import pytest
from airflow.providers.common.compat.sdk import TaskDeferred
from airflow.sdk.exceptions import AirflowTaskTimeout

from airflow_provider_mediapocket.exceptions import MediaPocketError, MediaPocketOperationError
from airflow_provider_mediapocket.hooks.mediapocket import MediaPocketHook
from airflow_provider_mediapocket.operators.mediapocket import (
    MediaPocketAddCommentOperator,
    MediaPocketCreateAssetOperator,
    MediaPocketCreateProjectOperator,
    MediaPocketStartDagActionOperator,
)
from airflow_provider_mediapocket.sandbox import MediaPocketSandbox
from tests.reliability._helpers_kill import execution_timeout, is_request, on_request, wait_until
from tests.triggers._support import FakeStateStore, FakeTI, make_context

FAST = {"retry_backoff": 0.01}
NEVER_ENDING = 5  # the sandbox's DAG action whose runs never finish
RUN_KEY = "mediapocket_dag_action_run_id"


def projects_titled(sandbox: MediaPocketSandbox, title: str) -> list[dict[str, Any]]:
    return [p for p in sandbox.state.projects.values() if p["title"] == title]


def assets_titled(sandbox: MediaPocketSandbox, title: str) -> list[dict[str, Any]]:
    return [a for a in sandbox.state.assets.values() if a["title"] == title]


def run_ids(sandbox: MediaPocketSandbox, asset_id: str) -> list[int]:
    return [rid for rid, run in sandbox.state.runs.items() if run["asset_id"] == asset_id]


class RetryTI(FakeTI):
    """A task instance on a given try (``try_number``), as Airflow passes it."""

    def __init__(self, try_number: int, fail_push: bool = False) -> None:
        super().__init__()
        self.try_number = try_number
        self.fail_push = fail_push

    def xcom_push(self, key: str, value: Any) -> None:
        if self.fail_push:
            raise RuntimeError("XCom backend unavailable")
        super().xcom_push(key, value)


# ------------------------------------------------------------------ item 7: creates without a natural key


def test_project_create_killed_in_flight_is_found_by_the_retry(
    mediapocket_sandbox: MediaPocketSandbox, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The try dies (execution_timeout) after the server applied the create, before the answer: the retry
    finds the project by its exact title created after the recorded send time, and creates no second one."""
    store = FakeStateStore()
    with execution_timeout() as kill:
        on_request(mediapocket_sandbox, monkeypatch, is_request("POST", "/api/v2/projects"), kill,
                   hold_until=kill.fired)
        with pytest.raises(AirflowTaskTimeout):
            MediaPocketCreateProjectOperator(task_id="p", title="Season 9", hook_params=FAST).execute(
                make_context(store)
            )
    assert len(projects_titled(mediapocket_sandbox, "Season 9")) == 1
    assert store.get("mediapocket_project_id_intent")["sent_at"] > 0  # the intent was recorded before sending
    result = MediaPocketCreateProjectOperator(task_id="p", title="Season 9", hook_params=FAST).execute(
        make_context(store)
    )
    made = projects_titled(mediapocket_sandbox, "Season 9")
    assert len(made) == 1 and result["id"] == made[0]["id"] == store.get("mediapocket_project_id")


def test_project_create_lost_answer_is_recovered_in_the_same_try(mediapocket_sandbox: MediaPocketSandbox) -> None:
    mediapocket_sandbox.inject("lost", method="POST", path_prefix="/api/v2/projects")
    store = FakeStateStore()
    result = MediaPocketCreateProjectOperator(task_id="p", title="Lost once", hook_params=FAST).execute(
        make_context(store)
    )
    made = projects_titled(mediapocket_sandbox, "Lost once")
    assert len(made) == 1 and result["id"] == made[0]["id"]


def test_project_recovery_tolerates_clock_skew_and_ignores_older_namesakes(
    mediapocket_sandbox: MediaPocketSandbox, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The server's clock runs 60 s behind the worker's: the project the lost create made is still found;
    a project of the same title made 10 minutes earlier (someone else's) is not taken for it."""
    state = mediapocket_sandbox.state
    state.advance(-600)
    older = state.add_project(title="Namesake")["id"]
    state.advance(540)  # the server is now 60 s behind the worker
    store = FakeStateStore()
    with execution_timeout() as kill:
        on_request(mediapocket_sandbox, monkeypatch, is_request("POST", "/api/v2/projects"), kill,
                   hold_until=kill.fired)
        with pytest.raises(AirflowTaskTimeout):
            MediaPocketCreateProjectOperator(task_id="p", title="Namesake", hook_params=FAST).execute(
                make_context(store)
            )
    result = MediaPocketCreateProjectOperator(task_id="p", title="Namesake", hook_params=FAST).execute(
        make_context(store)
    )
    made = projects_titled(mediapocket_sandbox, "Namesake")
    assert len(made) == 2 and result["id"] != older and result["id"] in {p["id"] for p in made}


def test_two_matching_projects_are_never_guessed_between(
    mediapocket_sandbox: MediaPocketSandbox, monkeypatch: pytest.MonkeyPatch
) -> None:
    store = FakeStateStore()
    with execution_timeout() as kill:
        def someone_else_then_kill() -> None:
            mediapocket_sandbox.state.add_project(title="Twins")
            kill()

        on_request(mediapocket_sandbox, monkeypatch, is_request("POST", "/api/v2/projects"), someone_else_then_kill,
                   hold_until=kill.fired)
        with pytest.raises(AirflowTaskTimeout):
            MediaPocketCreateProjectOperator(task_id="p", title="Twins", hook_params=FAST).execute(
                make_context(store)
            )
    ids = [p["id"] for p in projects_titled(mediapocket_sandbox, "Twins")]
    with pytest.raises(MediaPocketOperationError, match="2 matching objects") as caught:
        MediaPocketCreateProjectOperator(task_id="p", title="Twins", hook_params=FAST).execute(make_context(store))
    assert all(i in str(caught.value) for i in ids)
    assert len(projects_titled(mediapocket_sandbox, "Twins")) == 2  # nothing more was created


def test_asset_in_project_without_external_id_is_found_by_title(
    mediapocket_sandbox: MediaPocketSandbox, monkeypatch: pytest.MonkeyPatch
) -> None:
    project = mediapocket_sandbox.state.seed_project_id
    store = FakeStateStore()
    kwargs: dict[str, Any] = {"task_id": "a", "title": "Clip 7", "project_id": project, "hook_params": FAST,
                              "file_url": "https://media.example.com/clip7.mp4"}
    with execution_timeout() as kill:
        on_request(mediapocket_sandbox, monkeypatch, is_request("POST", f"/api/v2/projects/{project}/assets"), kill,
                   hold_until=kill.fired)
        with pytest.raises(AirflowTaskTimeout):
            MediaPocketCreateAssetOperator(**kwargs).execute(make_context(store))
    result = MediaPocketCreateAssetOperator(**kwargs).execute(make_context(store))
    made = assets_titled(mediapocket_sandbox, "Clip 7")
    assert len(made) == 1 and result["id"] == made[0]["id"] and made[0]["original_filename"] == "clip7.mp4"


def test_asset_without_project_cannot_be_checked_and_is_not_created_twice(
    mediapocket_sandbox: MediaPocketSandbox,
) -> None:
    """No listing can tell whether a standalone asset was created: the retry fails, saying so and how to
    make the create idempotent, instead of creating a second asset."""
    mediapocket_sandbox.inject("lost", method="POST", path_prefix="/api/v2/assets")
    store = FakeStateStore()
    with pytest.raises(MediaPocketError, match="may have been applied"):
        MediaPocketCreateAssetOperator(task_id="a", title="Loose", hook_params=FAST).execute(make_context(store))
    with pytest.raises(MediaPocketOperationError, match="may have been applied") as caught:
        MediaPocketCreateAssetOperator(task_id="a", title="Loose", hook_params=FAST).execute(make_context(store))
    assert "external_id" in str(caught.value) and "project_id" in str(caught.value)
    assert len(assets_titled(mediapocket_sandbox, "Loose")) == 1


def test_comment_lost_answer_is_posted_once(mediapocket_sandbox: MediaPocketSandbox) -> None:
    asset = mediapocket_sandbox.state.add_asset(title="Commented")["id"]
    mediapocket_sandbox.inject("lost", method="POST", path_prefix=f"/api/v2/assets/{asset}/comments")
    store = FakeStateStore()
    op = MediaPocketAddCommentOperator(task_id="c", asset_id=asset, comment="Approved", hook_params=FAST)
    try:
        op.execute(make_context(store))
    except MediaPocketError:  # a try that fails here is retried by Airflow with the same store
        MediaPocketAddCommentOperator(task_id="c", asset_id=asset, comment="Approved", hook_params=FAST).execute(
            make_context(store)
        )
    assert [c["message"] for c in mediapocket_sandbox.state.comments_of("Asset", asset)] == ["Approved"]


def test_a_refused_create_leaves_no_intent_behind(mediapocket_sandbox: MediaPocketSandbox) -> None:
    """A definite refusal (4xx) created nothing: the next try creates without looking or failing."""
    store = FakeStateStore()
    mediapocket_sandbox.inject("429", method="POST", path_prefix="/api/v2/assets")
    op = MediaPocketCreateAssetOperator(task_id="a", title="Refused", hook_params={**FAST, "retry_limit": 0})
    with pytest.raises(MediaPocketError):
        op.execute(make_context(store))
    assert store.get("mediapocket_asset_id_intent") is None
    result = MediaPocketCreateAssetOperator(task_id="a", title="Refused", hook_params=FAST).execute(
        make_context(store)
    )
    assert [a["id"] for a in assets_titled(mediapocket_sandbox, "Refused")] == [result["id"]]


# ------------------------------------------------------------------ item 8: an unclear DAG action start


def test_start_still_being_applied_is_not_sent_again(mediapocket_sandbox: MediaPocketSandbox) -> None:
    """The server applies the start 0.8 s late; the client gives up after 0.3 s. The run list does not
    show the run yet: the hook watches it for the settle window instead of starting a second run."""
    asset = mediapocket_sandbox.state.add_asset(title="Slow start")["id"]
    start_path = f"/api/v2/assets/{asset}/dag_actions/{NEVER_ENDING}"
    mediapocket_sandbox.inject("delay", method="POST", path_prefix=start_path, delay=0.8)
    hook = MediaPocketHook(timeout=0.3, retry_backoff=0.01)
    run = hook.start_dag_action(asset, NEVER_ENDING)
    wait_until(lambda: any(r.fault == "delay" for r in mediapocket_sandbox.requests),
               what="the delayed start to be applied")
    assert run_ids(mediapocket_sandbox, asset) == [int(run.id)]


def test_start_applied_but_answered_late_is_adopted(mediapocket_sandbox: MediaPocketSandbox) -> None:
    """The "slow" fault: the start is applied at once and answered after the client gave up."""
    asset = mediapocket_sandbox.state.add_asset(title="Late answer")["id"]
    start_path = f"/api/v2/assets/{asset}/dag_actions/{NEVER_ENDING}"
    mediapocket_sandbox.inject("slow", method="POST", path_prefix=start_path, delay=1.0)
    run = MediaPocketHook(timeout=0.3, retry_backoff=0.01).start_dag_action(asset, NEVER_ENDING, settle_seconds=1.0)
    assert run_ids(mediapocket_sandbox, asset) == [int(run.id)]
    assert len([r for r in mediapocket_sandbox.requests if r.method == "POST"]) == 1  # never re-sent


def test_start_adopts_nothing_when_someone_else_started_one_too(
    mediapocket_sandbox: MediaPocketSandbox, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Our start is applied but its answer is lost, and someone else starts the same action meanwhile:
    two candidates -> an error naming both, no adoption, no third run."""
    state = mediapocket_sandbox.state
    asset = state.add_asset(title="Contested")["id"]
    start_path = f"/api/v2/assets/{asset}/dag_actions/{NEVER_ENDING}"
    mediapocket_sandbox.inject("lost", method="POST", path_prefix=start_path)
    on_request(mediapocket_sandbox, monkeypatch, is_request("POST", start_path),
               lambda: state.start_run(asset, NEVER_ENDING))
    with pytest.raises(MediaPocketOperationError, match="2 runs of this action") as caught:
        MediaPocketHook(timeout=0.5, retry_backoff=0.01).start_dag_action(asset, NEVER_ENDING)
    runs = run_ids(mediapocket_sandbox, asset)
    assert len(runs) == 2 and all(str(rid) in str(caught.value) for rid in runs)


def test_async_start_watches_the_run_list_too(mediapocket_sandbox: MediaPocketSandbox) -> None:
    import asyncio

    asset = mediapocket_sandbox.state.add_asset(title="Async slow start")["id"]
    start_path = f"/api/v2/assets/{asset}/dag_actions/{NEVER_ENDING}"
    mediapocket_sandbox.inject("delay", method="POST", path_prefix=start_path, delay=0.6)
    hook = MediaPocketHook(timeout=0.3, retry_backoff=0.01)

    async def start() -> Any:
        try:
            return await hook.astart_dag_action(asset, NEVER_ENDING)
        finally:
            await hook.aclose()

    run = asyncio.run(start())
    wait_until(lambda: any(r.fault == "delay" for r in mediapocket_sandbox.requests),
               what="the delayed start to be applied")
    assert run_ids(mediapocket_sandbox, asset) == [int(run.id)]


# ------------------------------------------------------------------ item 9: the run id is stored first


def test_run_id_is_stored_before_the_xcom_pushes(mediapocket_sandbox: MediaPocketSandbox) -> None:
    asset = mediapocket_sandbox.state.add_asset(title="Push fails")["id"]
    store = FakeStateStore()
    ti = RetryTI(try_number=1, fail_push=True)
    kwargs: dict[str, Any] = {"task_id": "s", "asset_id": asset, "dag_action_id": NEVER_ENDING,
                              "hook_params": FAST, "wait_for_completion": False}
    with pytest.raises(RuntimeError, match="XCom backend"):
        MediaPocketStartDagActionOperator(**kwargs).execute(make_context(store, ti))
    assert store.get(RUN_KEY) is not None
    MediaPocketStartDagActionOperator(**kwargs).execute(make_context(store, FakeTI()))
    assert len(run_ids(mediapocket_sandbox, asset)) == 1


# ------------------------------------------------------------------ item 10: no task_state_store


def test_retry_without_state_store_reattaches_to_the_running_run(mediapocket_sandbox: MediaPocketSandbox) -> None:
    asset = mediapocket_sandbox.state.add_asset(title="No store")["id"]
    kwargs: dict[str, Any] = {"task_id": "s", "asset_id": asset, "dag_action_id": NEVER_ENDING,
                              "hook_params": FAST, "deferrable": True, "poll_interval": 0.05}
    with pytest.raises(TaskDeferred):
        MediaPocketStartDagActionOperator(**kwargs).execute({"ti": RetryTI(1)})  # Airflow 3.0-3.2: no store
    first = run_ids(mediapocket_sandbox, asset)
    ti = RetryTI(2)
    with pytest.raises(TaskDeferred) as deferred:
        MediaPocketStartDagActionOperator(**kwargs).execute({"ti": ti})
    assert run_ids(mediapocket_sandbox, asset) == first
    assert deferred.value.trigger.dag_action_run_id == str(first[0])
    assert ti.xcoms["dag_action_run_id"] == str(first[0])


def test_retry_without_state_store_fails_naming_two_running_runs(mediapocket_sandbox: MediaPocketSandbox) -> None:
    state = mediapocket_sandbox.state
    asset = state.add_asset(title="Two running")["id"]
    runs = [state.start_run(asset, NEVER_ENDING)["id"] for _ in range(2)]
    state.start_run(asset, 1)  # another action's run is no candidate
    op = MediaPocketStartDagActionOperator(task_id="s", asset_id=asset, dag_action_id=NEVER_ENDING,
                                           hook_params=FAST, deferrable=True)
    with pytest.raises(MediaPocketOperationError, match="2 runs of DAG action") as caught:
        op.execute({"ti": RetryTI(3)})
    assert all(str(r) in str(caught.value) for r in runs)
    assert len(run_ids(mediapocket_sandbox, asset)) == 3  # nothing started


def test_first_try_never_reattaches(mediapocket_sandbox: MediaPocketSandbox) -> None:
    """Only a retry looks for an earlier try's run: a first try starts its own run next to others."""
    state = mediapocket_sandbox.state
    asset = state.add_asset(title="First try")["id"]
    state.start_run(asset, NEVER_ENDING)
    op = MediaPocketStartDagActionOperator(task_id="s", asset_id=asset, dag_action_id=NEVER_ENDING,
                                           hook_params=FAST, wait_for_completion=False)
    op.execute({"ti": RetryTI(1)})
    assert len(run_ids(mediapocket_sandbox, asset)) == 2
