"""Exact error shapes and retry decisions of the transport core, with respx (no server).

The same behaviour is exercised against the sandbox in test_hook_sandbox.py; these pin details that a
real server cannot be made to produce on demand (HTTP-date Retry-After, non-JSON bodies, ...).
"""

from __future__ import annotations

import asyncio
from typing import Any

import httpx
import pytest
import respx

from airflow_provider_mediapocket._transport import RetryPolicy, retry_after_seconds
from airflow_provider_mediapocket.exceptions import (
    MediaPocketAuthError,
    MediaPocketError,
    MediaPocketNotFoundError,
    MediaPocketOperationError,
    MediaPocketPermissionError,
    MediaPocketRateLimitError,
    MediaPocketServerError,
    MediaPocketTransportError,
    MediaPocketValidationError,
)
from airflow_provider_mediapocket.hooks.mediapocket import MediaPocketHook
from tests.conftest import FAKE_KEY

ASSET = {"id": "a1", "title": "T", "media_type": "placeholder", "status": "open", "tags": []}


def json_response(status: int, body: Any, **headers: str) -> httpx.Response:
    return httpx.Response(status, json=body, headers=headers)


@pytest.fixture
def hook(respx_conn: str) -> MediaPocketHook:
    return MediaPocketHook()


@respx.mock
def test_get_retries_503_then_429_then_succeeds(hook: MediaPocketHook) -> None:
    route = respx.get("http://mp.test/api/v2/assets/a1").mock(side_effect=[
        json_response(503, {"error": "Service Unavailable"}),
        json_response(429, {"error": "Too Many Requests"}, **{"Retry-After": "0"}),
        json_response(200, {"asset": ASSET}),
    ])
    asset = hook.get_asset("a1")
    assert asset.id == "a1" and asset.title == "T"
    assert route.call_count == 3
    sent = route.calls[0].request
    assert sent.headers["X-API-KEY"] == FAKE_KEY
    assert sent.headers["Content-Type"] == "application/json"
    assert sent.headers["User-Agent"].startswith("airflow-provider-mediapocket/")


@pytest.mark.parametrize(
    ("status", "body", "cls", "message"),
    [
        (401, {"error": "Unauthorized"}, MediaPocketAuthError, "Unauthorized"),
        (403, {"error": "Permission denied. Must have ACTIONS_VIEW permissions."}, MediaPocketPermissionError,
         "Permission denied. Must have ACTIONS_VIEW permissions."),
        (404, {"error": "asset not found"}, MediaPocketNotFoundError, "asset not found"),
        (422, {"error": "Missing parameter title"}, MediaPocketValidationError, "Missing parameter title"),
        (400, {"error": "not a valid HTTP URL"}, MediaPocketValidationError, "not a valid HTTP URL"),
    ],
)
@respx.mock
def test_client_errors_are_not_retried(
    hook: MediaPocketHook, status: int, body: dict[str, str], cls: type[MediaPocketError], message: str
) -> None:
    route = respx.get("http://mp.test/api/v2/assets/a1").mock(return_value=json_response(status, body))
    with pytest.raises(cls) as info:
        hook.get_asset("a1")
    assert route.call_count == 1
    error = info.value
    assert (error.status, error.method, error.path, error.server_message) == (
        status, "GET", "/api/v2/assets/a1", message
    )
    assert str(error).startswith(f"Media Pocket GET /api/v2/assets/a1 failed with HTTP {status}: {message}")
    assert ("the API key was rejected" in str(error)) == (status == 401)


@respx.mock
def test_rate_limit_exhausted_keeps_retry_after(hook: MediaPocketHook) -> None:
    route = respx.get("http://mp.test/api/v2/assets/a1").mock(
        return_value=json_response(429, {"error": "Too Many Requests"}, **{"Retry-After": "0"})
    )
    with pytest.raises(MediaPocketRateLimitError) as info:
        hook.get_asset("a1")
    assert route.call_count == 4  # first try + retry_limit 3
    assert info.value.retry_after == 0.0


@respx.mock
def test_post_is_not_repeated_after_5xx(hook: MediaPocketHook) -> None:
    route = respx.post("http://mp.test/api/v2/assets").mock(return_value=json_response(500, {"error": "boom"}))
    with pytest.raises(MediaPocketServerError, match="HTTP 500: boom"):
        hook.create_asset("x")
    assert route.call_count == 1


@respx.mock
def test_post_is_repeated_after_429_and_connect_error(hook: MediaPocketHook) -> None:
    route = respx.post("http://mp.test/api/v2/assets").mock(side_effect=[
        json_response(429, {"error": "Too Many Requests"}, **{"Retry-After": "0"}),
        httpx.ConnectError("connection refused"),
        json_response(200, {"asset": ASSET}),
    ])
    assert hook.create_asset("T").id == "a1"
    assert route.call_count == 3


@respx.mock
def test_post_is_not_repeated_when_the_answer_is_lost(hook: MediaPocketHook) -> None:
    route = respx.post("http://mp.test/api/v2/assets").mock(side_effect=httpx.RemoteProtocolError("closed"))
    with pytest.raises(MediaPocketTransportError) as info:
        hook.create_asset("T")
    assert route.call_count == 1
    assert info.value.request_sent is True
    assert "may have been applied" in str(info.value)


@respx.mock
def test_get_network_errors_retried_then_reported(hook: MediaPocketHook) -> None:
    route = respx.get("http://mp.test/api/v2/assets/a1").mock(side_effect=httpx.ReadTimeout("slow"))
    with pytest.raises(MediaPocketTransportError, match=r"after 4 attempt\(s\): ReadTimeout: slow"):
        hook.get_asset("a1")
    assert route.call_count == 4


@respx.mock
def test_http_200_with_error_body_is_a_failure(hook: MediaPocketHook) -> None:
    respx.post("http://mp.test/api/v2/assets/a1/assign").mock(
        return_value=json_response(200, {"error": "Project not found."})
    )
    with pytest.raises(MediaPocketOperationError) as info:
        hook.assign_asset("a1", "p-missing")
    assert info.value.status == 200
    assert info.value.server_message == "Project not found."


@respx.mock
def test_project_asset_with_bad_media_names_the_created_asset(hook: MediaPocketHook) -> None:
    respx.post("http://mp.test/api/v2/projects/p1/assets").mock(return_value=json_response(
        200, {"error": "Asset kX8dWQXv3pCzwCokTgG6 created, adding media to asset failed: not a valid HTTP URL"}
    ))
    with pytest.raises(MediaPocketOperationError) as info:
        hook.create_project_asset("p1", "T", s3_key="bucket/clip.mp4")
    assert info.value.created_asset_id == "kX8dWQXv3pCzwCokTgG6"


@respx.mock
def test_remove_media_errors_object_is_a_failure(hook: MediaPocketHook) -> None:
    respx.delete("http://mp.test/api/v2/assets/a1/media").mock(return_value=json_response(
        200, {"asset": ASSET, "errors": {"error": "No media found on this asset.", "status": 400}}
    ))
    with pytest.raises(MediaPocketOperationError, match="No media found on this asset."):
        hook.remove_media("a1")


@respx.mock
def test_non_json_success_body_is_a_server_error(hook: MediaPocketHook) -> None:
    respx.get("http://mp.test/api/v2/assets/a1").mock(return_value=httpx.Response(200, text="<html>gateway</html>"))
    with pytest.raises(MediaPocketServerError, match="not JSON"):
        hook.get_asset("a1")


@respx.mock
def test_unexpected_shape_is_a_server_error(hook: MediaPocketHook) -> None:
    respx.get("http://mp.test/api/v2/assets/a1").mock(return_value=json_response(200, {"surprise": 1}))
    with pytest.raises(MediaPocketServerError, match=r"\(application/json\) with a body of an unexpected shape: KeyError"):
        hook.get_asset("a1")


@respx.mock
def test_async_twin_uses_the_same_policy(respx_conn: str) -> None:
    route = respx.get("http://mp.test/api/v2/assets/a1").mock(side_effect=[
        json_response(502, {"error": "Bad Gateway"}),
        json_response(200, {"asset": ASSET}),
    ])

    async def main() -> str:
        hook = MediaPocketHook()
        try:
            return (await hook.aget_asset("a1")).id
        finally:
            await hook.aclose()

    assert asyncio.run(main()) == "a1"
    assert route.call_count == 2


def test_retry_after_http_date_and_policy_caps() -> None:
    response = httpx.Response(429, headers={"Retry-After": "Wed, 21 Oct 2015 07:28:00 GMT"})
    assert retry_after_seconds(response) == 0.0  # a date in the past means now
    assert retry_after_seconds(httpx.Response(429, headers={"Retry-After": "7"})) == 7.0
    assert retry_after_seconds(httpx.Response(429)) is None
    policy = RetryPolicy(retry_limit=5, backoff=1.0, max_backoff=4.0, max_retry_after=10.0)
    assert policy.delay(0, retry_after=500.0) == 10.0
    for attempt in range(6):
        delay = policy.delay(attempt)
        ceiling = min(4.0, 2.0**attempt)
        assert ceiling / 2 <= delay <= ceiling
