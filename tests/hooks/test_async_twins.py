"""Every read method and every method an operator calls has an async twin that answers like it."""

from __future__ import annotations

import asyncio
import inspect
from typing import Any

from airflow_provider_mediapocket.hooks.mediapocket import MediaPocketHook
from airflow_provider_mediapocket.sandbox import MediaPocketSandbox

OPERATOR_CALLS = {
    "create_asset", "update_asset", "trash_asset", "restore_asset", "assign_asset", "add_media",
    "create_project", "create_subproject", "create_project_asset", "find_project_asset", "start_dag_action",
    "create_asset_comment", "create_project_comment",
}


def test_every_read_and_operator_call_has_an_async_twin() -> None:
    own = [n for n, v in vars(MediaPocketHook).items() if inspect.isfunction(v) and not n.startswith("_")]
    reads = {n for n in own if n.startswith(("get_", "list_", "iter_", "find_"))} - {"get_settings", "get_client"}
    assert len(reads) >= 25
    for name in sorted(reads | OPERATOR_CALLS):
        twin = getattr(MediaPocketHook, "a" + name, None)
        assert twin is not None, f"no async twin for {name}"
        assert inspect.iscoroutinefunction(twin) or name.startswith("iter_"), name


def dumped(value: Any) -> Any:
    if isinstance(value, list):
        return [dumped(v) for v in value]
    return value.model_dump() if hasattr(value, "model_dump") else value


def test_async_reads_answer_like_the_sync_ones(mediapocket_sandbox: MediaPocketSandbox) -> None:
    hook = MediaPocketHook()
    project = hook.create_project("Twins")
    asset = hook.create_project_asset(project.id, "Twin", file_url="https://media.example.com/t/a.png")
    comment = hook.create_asset_comment(asset.id, "hello")
    hook.create_project_comment(project.id, "project hello")
    hook.create_asset_attachment(asset.id, "att")
    hook.create_project_attachment(project.id, "patt")
    mediapocket_sandbox.state.advance(5)
    calls: list[tuple[str, tuple[Any, ...]]] = [
        ("list_api_keys", ()), ("get_asset", (asset.id,)), ("list_media", (asset.id,)),
        ("get_file_metadata", (asset.id,)), ("list_asset_collections", (asset.id,)),
        ("get_asset_history", (asset.id,)), ("list_asset_comments", (asset.id,)),
        ("get_asset_comment", (asset.id, comment.id)), ("list_asset_attachments", (asset.id,)),
        ("list_dag_actions", (asset.id,)), ("list_dag_action_runs", (asset.id,)), ("list_projects", ()),
        ("get_project", (project.id,)), ("list_subprojects", (project.id,)), ("list_project_assets", (project.id,)),
        ("get_project_stats", (project.id,)), ("list_project_users", (project.id,)),
        ("list_project_user_groups", (project.id,)), ("get_project_history", (project.id,)),
        ("list_project_comments", (project.id,)), ("list_project_attachments", (project.id,)),
    ]
    expected = {name: dumped(getattr(hook, name)(*args)) for name, args in calls}

    async def main() -> dict[str, Any]:
        async_hook = MediaPocketHook()
        try:
            return {name: dumped(await getattr(async_hook, "a" + name)(*args)) for name, args in calls}
        finally:
            await async_hook.aclose()

    assert asyncio.run(main()) == expected
    assert expected["get_asset"]["media_type"] == "image"
