"""Issue 7 item 5: permanent failures end a wait at once, with an error that names the cause.

Transient means 429, 5xx, timeouts and resets: waits poll again after those. Connection refused, an
unresolvable host, a TLS error and an HTTP 200 whose body is HTML or not of the API's shape are
permanent: the hook gives up after its retry budget and a trigger ends with an ``error`` event naming
the host, the errno or TLS reason, or the body's content type -- not "did not finish before its
deadline (last status: None)" days later.
"""

from __future__ import annotations

import asyncio
import json
import socket
import time
from collections.abc import Callable, Iterator
from typing import Any

import httpx
import pytest

from airflow_provider_mediapocket._transport import describe_transport_error
from airflow_provider_mediapocket.exceptions import (
    TRANSIENT_ERRORS,
    MediaPocketBadResponseError,
    MediaPocketError,
    MediaPocketNetworkError,
    MediaPocketRateLimitError,
    MediaPocketServerUnavailableError,
    MediaPocketTransportError,
)
from airflow_provider_mediapocket.hooks.mediapocket import MediaPocketHook
from airflow_provider_mediapocket.sandbox import MediaPocketSandbox, RawReply
from airflow_provider_mediapocket.triggers.mediapocket import MediaPocketAssetTrigger, MediaPocketDagActionRunTrigger
from tests.reliability._helpers_faults import running_sandbox
from tests.triggers._support import first_event

RETRIES = {"retry_backoff": 0.01, "retry_limit": 2}
# A wait that would last ten minutes: a permanent failure must end it long before.
WAIT = 600.0
QUICK = 15.0


@pytest.fixture
def sandbox(monkeypatch: pytest.MonkeyPatch) -> Iterator[MediaPocketSandbox]:
    with running_sandbox(monkeypatch) as sb:
        yield sb


def dead_port() -> int:
    """A local port nobody listens on (bound, then closed): connecting to it is refused."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def point_connection_at(monkeypatch: pytest.MonkeyPatch, host: str) -> None:
    conn = {"conn_type": "mediapocket", "host": host, "password": "sandbox-api-key", "extra": RETRIES}
    monkeypatch.setenv("AIRFLOW_CONN_MEDIAPOCKET_DEFAULT", json.dumps(conn))


def asset_trigger(asset_id: str = "some-asset") -> MediaPocketAssetTrigger:
    return MediaPocketAssetTrigger(asset_id=asset_id, end_time=time.time() + WAIT, poll_interval=0.05,
                                   hook_params=RETRIES)


def run_trigger(asset_id: str = "some-asset", run_id: str = "1") -> MediaPocketDagActionRunTrigger:
    return MediaPocketDagActionRunTrigger(asset_id=asset_id, dag_action_run_id=run_id, end_time=time.time() + WAIT,
                                          poll_interval=0.05, hook_params=RETRIES)


TRIGGERS: dict[str, Callable[..., Any]] = {"asset": asset_trigger, "run": run_trigger}


def quick_error(trigger: Any) -> dict[str, Any]:
    began = time.monotonic()
    event = first_event(trigger, timeout=QUICK + 5)
    took = time.monotonic() - began
    assert event["status"] == "error", event
    assert took < QUICK, f"the error came after {took:.1f}s"
    return event


# ------------------------------------------------------------------------------------ unreachable hosts


def unreachable(sandbox: MediaPocketSandbox) -> list[tuple[str, str, list[str]]]:
    port = dead_port()
    return [
        ("refused", f"http://127.0.0.1:{port}", [f"127.0.0.1:{port}", "refused", "errno 111 ECONNREFUSED"]),
        ("dns", "http://nonexistent.invalid", ["'nonexistent.invalid' could not be resolved", "DNS errno"]),
        ("tls", f"https://127.0.0.1:{sandbox.port}", [
            f"TLS handshake with 127.0.0.1:{sandbox.port} failed: WRONG_VERSION_NUMBER",
            "is the Base URL's scheme right? the server answered plain HTTP",
        ]),
    ]


@pytest.mark.parametrize("kind", ["refused", "dns", "tls"])
def test_hook_names_the_cause_and_calls_it_permanent(
    sandbox: MediaPocketSandbox, monkeypatch: pytest.MonkeyPatch, kind: str
) -> None:
    _, host, expected = next(row for row in unreachable(sandbox) if row[0] == kind)
    point_connection_at(monkeypatch, host)
    with MediaPocketHook() as hook, pytest.raises(MediaPocketTransportError) as info:
        hook.get_asset("a1")
    error = info.value
    assert not error.transient and not isinstance(error, TRANSIENT_ERRORS)
    assert "after 3 attempt(s)" in str(error)  # the normal retry budget was used
    for text in expected:
        assert text in str(error) and text in error.cause

    async def main() -> MediaPocketError:
        hook = MediaPocketHook()
        try:
            await hook.aget_asset("a1")
        except MediaPocketError as exc:
            return exc
        finally:
            await hook.aclose()
        raise AssertionError("no error")

    async_error = asyncio.run(main())
    assert isinstance(async_error, MediaPocketTransportError) and not async_error.transient
    for text in expected:
        assert text in str(async_error)


@pytest.mark.parametrize("which", TRIGGERS)
@pytest.mark.parametrize("kind", ["refused", "dns", "tls"])
def test_trigger_ends_with_the_cause_not_at_the_deadline(
    sandbox: MediaPocketSandbox, monkeypatch: pytest.MonkeyPatch, kind: str, which: str
) -> None:
    _, host, expected = next(row for row in unreachable(sandbox) if row[0] == kind)
    point_connection_at(monkeypatch, host)
    event = quick_error(TRIGGERS[which]())
    assert event["error_type"] == "MediaPocketTransportError"
    for text in expected:
        assert text in event["message"]


# ---------------------------------------------------------------------------------- bodies not the API's

HTML = RawReply(200, b"<html><body>Please log in to the proxy</body></html>", "text/html; charset=utf-8")
WRONG_SHAPE = RawReply(200, b'{"data": {"items": []}}', "application/json")


def target(sandbox: MediaPocketSandbox, which: str) -> tuple[Any, str]:
    """A trigger of kind ``which`` on a real asset (and run), and the path it polls."""
    asset_id = str(sandbox.state.add_asset(title="proxied")["id"])
    if which == "asset":
        return asset_trigger(asset_id), f"/api/v2/assets/{asset_id}"
    run = sandbox.state.start_run(asset_id, 1)
    return run_trigger(asset_id, str(run["id"])), f"/api/v2/assets/{asset_id}/dag_action_runs"


@pytest.mark.parametrize("which", TRIGGERS)
def test_html_200_ends_the_wait_naming_the_content_type(sandbox: MediaPocketSandbox, which: str) -> None:
    trigger, path = target(sandbox, which)
    sandbox.inject("raw", method="GET", path_prefix=path, reply=HTML)
    event = quick_error(trigger)
    assert event["error_type"] == "MediaPocketBadResponseError"
    assert "not JSON (text/html; charset=utf-8)" in event["message"]
    assert "Please log in to the proxy" in event["message"]


@pytest.mark.parametrize("which", TRIGGERS)
def test_wrong_shape_200_ends_the_wait(sandbox: MediaPocketSandbox, which: str) -> None:
    trigger, path = target(sandbox, which)
    sandbox.inject("raw", method="GET", path_prefix=path, reply=WRONG_SHAPE)
    event = quick_error(trigger)
    assert event["error_type"] == "MediaPocketBadResponseError"
    assert "HTTP 200 (application/json) with a body of an unexpected shape: KeyError" in event["message"]


def test_hook_bad_bodies_are_permanent(sandbox: MediaPocketSandbox) -> None:
    asset_id = str(sandbox.state.add_asset(title="proxied")["id"])
    sandbox.inject("raw", reply=HTML)
    sandbox.inject("raw", reply=WRONG_SHAPE)
    with MediaPocketHook(**RETRIES) as hook:
        for content_type in ("text/html; charset=utf-8", "application/json"):
            with pytest.raises(MediaPocketBadResponseError) as info:
                hook.get_asset(asset_id)
            assert not info.value.transient and info.value.content_type == content_type


# ------------------------------------------------------------------------------- transient stays transient


def test_transient_kinds_are_still_ridden_out(sandbox: MediaPocketSandbox) -> None:
    """5xx, 429, a lost answer and a timeout after the retries are transient; a trigger polls again."""
    asset_id = str(sandbox.state.add_asset(title="busy")["id"])
    with MediaPocketHook(retry_limit=0, retry_backoff=0.01, timeout=0.3) as hook:
        sandbox.inject("503")
        with pytest.raises(MediaPocketServerUnavailableError) as server:
            hook.get_asset(asset_id)
        sandbox.inject("429", retry_after=0)
        with pytest.raises(MediaPocketRateLimitError) as limited:
            hook.get_asset(asset_id)
        sandbox.inject("drop")
        with pytest.raises(MediaPocketNetworkError) as dropped:
            hook.get_asset(asset_id)
        sandbox.inject("slow", delay=2.0)
        with pytest.raises(MediaPocketNetworkError, match="ReadTimeout") as slow:
            hook.get_asset(asset_id)
    for error in (server.value, limited.value, dropped.value, slow.value):
        assert error.transient and isinstance(error, TRANSIENT_ERRORS)

    sandbox.inject("503", "503", "503", "drop", "drop", "drop")  # two polls' worth, each past the retries
    event = first_event(asset_trigger(asset_id), timeout=QUICK)
    assert event["status"] == "success", event


def _chained(error: httpx.TransportError, cause: BaseException) -> httpx.TransportError:
    error.__cause__ = cause
    error.request = httpx.Request("GET", "https://user:pw@api.example.com:8443/api/v2/assets?sig=s3cr3t")
    return error


@pytest.mark.parametrize(("error", "transient", "text"), [
    (httpx.ReadTimeout("timed out"), True, "ReadTimeout: timed out (talking to api.example.com:8443)"),
    (httpx.ConnectTimeout("timed out"), True, "ConnectTimeout"),
    (httpx.RemoteProtocolError("Server disconnected"), True, "reset or closed without an answer"),
    (httpx.ReadError("reset"), True, "reset or closed without an answer"),
    (_chained(httpx.ConnectError("x"), ConnectionResetError(104, "reset")), True, "reset, errno 104 ECONNRESET"),
    (_chained(httpx.ConnectError("x"), ConnectionRefusedError(111, "refused")), False,
     "connection to api.example.com:8443 refused, errno 111 ECONNREFUSED"),
    (_chained(httpx.ConnectError("x"), OSError(113, "No route to host")), False,
     "could not connect to api.example.com:8443: No route to host, errno 113 EHOSTUNREACH"),
    (httpx.UnsupportedProtocol("ftp"), False, "UnsupportedProtocol"),
])
def test_transport_error_classification(error: httpx.TransportError, transient: bool, text: str) -> None:
    try:
        error.request  # noqa: B018 - set by _chained for some rows
    except RuntimeError:
        error.request = httpx.Request("GET", "https://api.example.com:8443/api/v2/assets")
    got_transient, cause = describe_transport_error(error)
    assert (got_transient, text in cause) == (transient, True), cause
    assert "pw" not in cause and "s3cr3t" not in cause
