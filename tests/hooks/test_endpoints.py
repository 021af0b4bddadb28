"""Every endpoint is declared once: its sync and async hook methods share one signature and docstring.

The methods are bound from the request builders of ``hooks/_api.py`` (see ``endpoint``); the
hand-written ones (recovery, look-ups, iterators) must keep their pairs equal by hand, which this checks.
"""

from __future__ import annotations

import asyncio
import inspect
import re
from typing import Any

import pytest

from airflow_provider_mediapocket.hooks import _api
from airflow_provider_mediapocket.hooks.mediapocket import MediaPocketHook
from airflow_provider_mediapocket.sandbox import MediaPocketSandbox

# Public hook methods that are not an API operation, so have no async twin.
WITHOUT_TWIN = {"get_ui_field_behaviour", "hook_kwargs", "close_soon", "test_connection"}


def own_methods() -> dict[str, Any]:
    """The hook's own public methods by name (aliases such as ``file_metadata`` left out)."""
    methods = {}
    for name, value in vars(MediaPocketHook).items():
        function = value.__func__ if isinstance(value, (classmethod, staticmethod)) else value
        if not name.startswith("_") and inspect.isfunction(function) and function.__name__ == name:
            methods[name] = function
    return methods


def pairs() -> list[tuple[str, str]]:
    """(sync name, async name) of every operation: a name is an async twin when ``a`` + another name."""
    methods = own_methods()
    syncs = [name for name in methods if name not in WITHOUT_TWIN and not (name[:1] == "a" and name[1:] in methods)]
    return [(name, "a" + name) for name in sorted(syncs)]


def test_every_operation_has_an_async_twin_with_the_same_signature() -> None:
    methods = own_methods()
    found = pairs()
    assert len(found) >= 65
    for name, twin in found:
        assert twin in methods, f"{name} has no async twin {twin}"
        # The parameters, not the return: get_client answers an httpx.Client, aget_client an AsyncClient.
        sync, asynchronous = inspect.signature(methods[name]), inspect.signature(methods[twin])
        assert asynchronous.parameters == sync.parameters, f"{twin}{asynchronous} differs from {name}{sync}"
        awaited = inspect.iscoroutinefunction(methods[twin]) or name.startswith("iter_")
        assert awaited and not inspect.iscoroutinefunction(methods[name]), name


@pytest.mark.parametrize(("name", "keywords"), [
    ("create_asset", {"description", "category", "tags", "media_type", "external_id"}),
    ("create_project_asset", {"file_url", "filename", "s3_key", "external_id"}),
])
def test_the_two_drifted_async_twins_take_the_typed_keywords(name: str, keywords: set[str]) -> None:
    """``acreate_asset`` took untyped ``**fields``; ``acreate_project_asset`` had lost file_url/s3_key."""
    sync, twin = getattr(MediaPocketHook, name), getattr(MediaPocketHook, "a" + name)
    parameters = inspect.signature(twin).parameters
    assert keywords <= set(parameters)
    assert all(p.kind is not inspect.Parameter.VAR_KEYWORD for p in parameters.values())
    assert inspect.signature(twin) == inspect.signature(sync)


def test_every_public_method_documents_each_parameter() -> None:
    for name, method in own_methods().items():
        doc = inspect.getdoc(method) or ""
        assert doc.strip(), f"{name} has no docstring"
        for parameter in list(inspect.signature(method).parameters)[1:]:
            assert re.search(rf":param {parameter}:", doc), f"{name}: parameter {parameter!r} is not documented"


def test_endpoint_methods_are_bound_from_the_builder_of_their_name() -> None:
    bound = {name: m for name, m in own_methods().items()
             if getattr(getattr(m, "__wrapped__", None), "__module__", None) == _api.__name__}
    assert len(bound) >= 120
    for name, method in bound.items():
        builder = getattr(_api, name[1:] if inspect.iscoroutinefunction(method) else name)
        assert method.__wrapped__ is builder, name
        assert method.__doc__ == builder.__doc__, name


def test_a_bad_parameter_fails_alike_in_both_twins_before_anything_is_sent() -> None:
    hook = MediaPocketHook("no_such_connection")  # nothing is read or sent: building fails first
    with pytest.raises(ValueError, match="Invalid parameter 'colour': is not a parameter of this call"):
        asyncio.run(hook.acreate_asset("t", colour="red"))
    with pytest.raises(ValueError, match="Invalid parameter 'colour': is not a parameter of this call"):
        hook.create_asset("t", colour="red")
    with pytest.raises(ValueError, match="Invalid parameter 'file_url'"):
        hook.create_project_asset("P1", "t", file_url="ftp://x/y.mp4")
    with pytest.raises(ValueError, match="Invalid parameter 'file_url'"):
        asyncio.run(hook.acreate_project_asset("P1", "t", file_url="ftp://x/y.mp4"))


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


def test_async_create_project_asset_takes_its_media(mediapocket_sandbox: MediaPocketSandbox) -> None:
    async def main() -> Any:
        hook = MediaPocketHook()
        try:
            project = await hook.acreate_project("Media")
            return await hook.acreate_project_asset(
                project.id, "Clip", file_url="https://media.example.com/c/clip.mp4", filename="clip.mp4",
                external_id="clip-1", tags=["a"],
            )
        finally:
            await hook.aclose()

    asset = asyncio.run(main())
    assert asset.external_id == "clip-1" and asset.tags == ["a"]
    assert [m["filename"] for m in mediapocket_sandbox.state.media_of(asset.id)] == ["clip.mp4"]
