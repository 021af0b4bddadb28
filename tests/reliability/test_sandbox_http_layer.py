"""Issue 7 item 20: the sandbox's HTTP layer under bad input, stalled and idle connections, and stop().

Raw sockets, so that the bytes on the wire are exactly the bad ones. Every case must end in a JSON
error answer or a clean close within the sandbox's ``connection_timeout``, never a silent drop or a
thread held forever, and the sandbox must go on serving. Waits are socket timeouts (a ``recv`` that
returns ``b""``), never sleeps.
"""

from __future__ import annotations

import json
import socket
import time
from collections.abc import Iterator
from typing import Any

import pytest

from airflow_provider_mediapocket.sandbox import MediaPocketSandbox

CONNECTION_TIMEOUT = 0.5
MAX_BODY = 64 * 1024
# How long the test waits for an answer or a close before calling it a hang: far above the sandbox's
# connection timeout, so a pass is never a race.
CLIENT_WAIT = 10.0


@pytest.fixture
def sandbox() -> Iterator[MediaPocketSandbox]:
    with MediaPocketSandbox(connection_timeout=CONNECTION_TIMEOUT, max_body_bytes=MAX_BODY) as running:
        yield running


def connect(sandbox: MediaPocketSandbox) -> socket.socket:
    sock = socket.create_connection((sandbox.host, sandbox.port), timeout=CLIENT_WAIT)
    return sock


def request_head(sandbox: MediaPocketSandbox, method: str, path: str, *headers: str) -> bytes:
    lines = [f"{method} {path} HTTP/1.1", f"Host: {sandbox.host}", f"X-API-KEY: {sandbox.api_key}", *headers]
    return ("\r\n".join(lines) + "\r\n\r\n").encode()


def read_answer(sock: socket.socket) -> tuple[int, dict[str, str], Any] | None:
    """One HTTP answer (status, headers, JSON body), or None when the connection closed before one."""
    data = b""
    while b"\r\n\r\n" not in data:
        chunk = sock.recv(65536)
        if not chunk:
            assert data == b"", f"connection closed inside an answer's head: {data[:200]!r}"
            return None
        data += chunk
    head, _, rest = data.partition(b"\r\n\r\n")
    status_line, *header_lines = head.decode("latin-1").split("\r\n")
    headers = {}
    for line in header_lines:
        name, _, value = line.partition(":")
        headers[name.strip().lower()] = value.strip()
    length = int(headers.get("content-length", "0"))
    while len(rest) < length:
        chunk = sock.recv(65536)
        assert chunk, "connection closed inside an answer's body"
        rest += chunk
    return int(status_line.split()[1]), headers, json.loads(rest[:length]) if length else None


def assert_closed(sock: socket.socket) -> None:
    """The server closed the connection (EOF or reset), with no further answer."""
    try:
        data = sock.recv(65536)
    except ConnectionResetError:
        return
    assert data == b"", f"expected the connection to be closed, got {data[:200]!r}"


def assert_still_serves(sandbox: MediaPocketSandbox) -> None:
    with connect(sandbox) as sock:
        sock.sendall(request_head(sandbox, "GET", "/api/v2/projects"))
        answer = read_answer(sock)
    assert answer is not None and answer[0] == 200 and "projects" in answer[2]


def assert_json_error(answer: tuple[int, dict[str, str], Any] | None, status: int, words: str) -> None:
    assert answer is not None, f"no answer (connection dropped), expected {status}"
    got_status, headers, body = answer
    assert got_status == status, body
    assert headers["content-type"].startswith("application/json")
    assert words in body["error"], body


@pytest.mark.parametrize(
    ("header", "status", "words"),
    [
        ("Content-Length: abc", 400, "Invalid Content-Length header"),
        ("Content-Length: -5", 400, "Invalid Content-Length header"),
        (f"Content-Length: {10**12}", 413, "too large"),
        (f"Content-Length: {10**9}", 413, "too large"),
        ("Transfer-Encoding: chunked", 411, "Content-Length"),
    ],
)
def test_unusable_content_length_gets_a_json_error_and_a_close(
    sandbox: MediaPocketSandbox, header: str, status: int, words: str
) -> None:
    with connect(sandbox) as sock:
        # A 2-byte body under a huge Content-Length used to pin the handler thread waiting for the rest.
        sock.sendall(request_head(sandbox, "POST", "/api/v2/assets", "Content-Type: application/json", header) + b"{}")
        assert_json_error(read_answer(sock), status, words)
        assert_closed(sock)
    assert sandbox.requests[-1].status == status
    assert_still_serves(sandbox)


def test_expect_100_continue_with_a_too_large_body_is_refused_before_the_body(sandbox: MediaPocketSandbox) -> None:
    with connect(sandbox) as sock:
        sock.sendall(request_head(sandbox, "POST", "/api/v2/assets", "Expect: 100-continue", f"Content-Length: {10**12}"))
        answer = read_answer(sock)  # the 413 itself, no "100 Continue" first
        assert_json_error(answer, 413, "too large")
        assert_closed(sock)
    assert_still_serves(sandbox)


@pytest.mark.parametrize(
    ("raw", "status"),
    [
        (b"GARBAGE\r\n\r\n", 400),
        (b"GET /api/v2/projects HTTP/9.9\r\n\r\n", 505),
        (b"GET /" + b"x" * 70_000 + b" HTTP/1.1\r\n\r\n", 414),
        (b"GET /api/v2/projects HTTP/1.1\r\nX-Long: " + b"x" * 70_000 + b"\r\n\r\n", 431),
        (b"GET /api/v2/projects HTTP/1.1\r\n" + b"X-Many: 1\r\n" * 200 + b"\r\n", 431),
        (b"BREW /api/v2/projects HTTP/1.1\r\n\r\n", 501),
    ],
    ids=["request line", "version", "long target", "long header", "many headers", "unknown method"],
)
def test_malformed_requests_get_a_json_error(sandbox: MediaPocketSandbox, raw: bytes, status: int) -> None:
    with connect(sandbox) as sock:
        sock.sendall(raw)
        answer = read_answer(sock)
        assert answer is not None and answer[0] == status
        assert answer[1]["content-type"].startswith("application/json") and answer[2]["error"]
        assert_closed(sock)
    assert_still_serves(sandbox)


def test_deeply_nested_body_gets_400_and_the_connection_goes_on(sandbox: MediaPocketSandbox) -> None:
    body = b"[" * 200_000 + b"]" * 200_000
    assert len(body) <= MAX_BODY * 8  # the cap below is raised for this case only
    sandbox.max_body_bytes = len(body)
    with connect(sandbox) as sock:
        head = request_head(sandbox, "POST", "/api/v2/assets", "Content-Type: application/json",
                            f"Content-Length: {len(body)}")
        sock.sendall(head + body)
        assert_json_error(read_answer(sock), 400, "Invalid JSON body")
        # A well-framed bad body does not spoil the connection: the next request on it is answered.
        sock.sendall(request_head(sandbox, "GET", "/api/v2/projects"))
        answer = read_answer(sock)
        assert answer is not None and answer[0] == 200
    assert_still_serves(sandbox)


def test_a_body_that_stops_half_way_gets_408_within_the_timeout(sandbox: MediaPocketSandbox) -> None:
    with connect(sandbox) as sock:
        sent = time.monotonic()
        sock.sendall(request_head(sandbox, "POST", "/api/v2/assets", "Content-Length: 100") + b"{}")
        assert_json_error(read_answer(sock), 408, "not received within")
        assert_closed(sock)
        assert time.monotonic() - sent < CONNECTION_TIMEOUT + 3.0
    assert_still_serves(sandbox)


def test_a_body_dripped_byte_by_byte_cannot_outlast_the_timeout(sandbox: MediaPocketSandbox) -> None:
    """Each byte arrives well within the socket timeout; the body as a whole does not."""
    sandbox.connection_timeout = 1.0
    with connect(sandbox) as sock:
        sent = time.monotonic()
        sock.sendall(request_head(sandbox, "POST", "/api/v2/assets", "Content-Length: 1000"))
        sock.settimeout(0.2)  # the drip's pace: a byte every 0.2 s at most
        answer = None
        for _ in range(1000):
            sock.sendall(b" ")
            try:
                answer = read_answer(sock)
            except TimeoutError:
                continue
            break
        assert_json_error(answer, 408, "not received within")
        assert time.monotonic() - sent < 1.0 + 3.0


def test_an_idle_connection_is_closed_after_the_timeout(sandbox: MediaPocketSandbox) -> None:
    with connect(sandbox) as sock:
        opened = time.monotonic()
        assert_closed(sock)  # never sent a byte
        assert time.monotonic() - opened < CONNECTION_TIMEOUT + 3.0
    with connect(sandbox) as sock:
        sock.sendall(request_head(sandbox, "GET", "/api/v2/projects"))
        answer = read_answer(sock)
        assert answer is not None and answer[0] == 200
        assert_closed(sock)  # kept alive, then idle
    assert_still_serves(sandbox)


def test_stop_closes_kept_alive_connections() -> None:
    sandbox = MediaPocketSandbox(connection_timeout=CLIENT_WAIT * 3).start()
    try:
        sock = connect(sandbox)
        sock.sendall(request_head(sandbox, "GET", "/api/v2/projects"))
        answer = read_answer(sock)
        assert answer is not None and answer[0] == 200 and answer[1].get("connection") != "close"
    finally:
        sandbox.stop()
    with sock:
        try:
            sock.sendall(request_head(sandbox, "GET", "/api/v2/projects"))
        except (BrokenPipeError, ConnectionResetError):
            return
        assert_closed(sock)


def test_settings_are_checked() -> None:
    with pytest.raises(ValueError, match="connection_timeout"):
        MediaPocketSandbox(connection_timeout=float("nan"))
    with pytest.raises(ValueError, match="max_body_bytes"):
        MediaPocketSandbox(max_body_bytes=-1)
