"""Sandbox-side scripting for the duplicate/loss tests (not collected by pytest).

``on_request`` runs a side effect inside the sandbox when a chosen request arrives (before or after it
is applied): kill the task the way ``execution_timeout`` does (SIGALRM in the worker's main thread,
raising ``AirflowTaskTimeout``), or let "someone else" act at that very moment.
"""

from __future__ import annotations

import re
import signal
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any

import pytest
from airflow.sdk.exceptions import AirflowTaskTimeout

from airflow_provider_mediapocket._transport import ApiCall
from airflow_provider_mediapocket.hooks.mediapocket import MediaPocketHook
from airflow_provider_mediapocket.sandbox import MediaPocketSandbox

Match = Callable[[str, str], bool]


def is_request(method: str, path: str) -> Match:
    """Matches requests with this method and exactly this path."""
    return lambda m, p: m == method and p.rstrip("/") == path


def is_request_to(method: str, pattern: str) -> Match:
    """Matches requests with this method and a path matching the regex ``pattern`` (ids vary)."""
    return lambda m, p: m == method and re.fullmatch(pattern, p.rstrip("/")) is not None


class Kill:
    """``kill()`` fires SIGALRM at the main thread (from any thread); ``fired`` is set once it was handled."""

    def __init__(self, main: int) -> None:
        self.main = main
        self.fired = threading.Event()

    def __call__(self) -> None:
        signal.pthread_kill(self.main, signal.SIGALRM)


@contextmanager
def execution_timeout() -> Iterator[Kill]:
    """Install Airflow's execution_timeout behaviour (SIGALRM -> AirflowTaskTimeout in the main thread);
    yields a :class:`Kill` to fire it from the sandbox's thread."""
    main = threading.main_thread().ident
    assert main is not None and threading.current_thread() is threading.main_thread()
    kill = Kill(main)

    def handler(signum: int, frame: Any) -> None:
        kill.fired.set()
        raise AirflowTaskTimeout("Timeout, PID: test")

    previous = signal.signal(signal.SIGALRM, handler)
    try:
        yield kill
    finally:
        signal.signal(signal.SIGALRM, previous)


def on_request(
    sandbox: MediaPocketSandbox,
    monkeypatch: pytest.MonkeyPatch,
    match: Match,
    action: Callable[[], None],
    *,
    nth: int = 1,
    apply: bool = True,
    hold_until: threading.Event | None = None,
) -> None:
    """Run ``action`` in the sandbox when the ``nth`` matching request arrives, once.

    ``apply=True``: the request is applied first, then ``action`` runs (before the answer is sent);
    ``apply=False``: ``action`` runs and the request is answered 503 without being applied.
    With ``hold_until`` (e.g. ``kill.fired``), the answer is then held back until it is set: a kill lands
    while the worker waits for the answer, not while it reads one. (asyncio turns an exception raised by
    a signal handler during a socket read into a connection error on that request, so the kill would be
    lost -- as it is in Airflow when execution_timeout strikes at that moment.)
    """
    original = sandbox.dispatch
    seen = [0]

    def dispatch(method: str, path: str, *args: Any) -> tuple[int, bytes]:
        if not match(method, path):
            return original(method, path, *args)
        seen[0] += 1
        if seen[0] != nth:
            return original(method, path, *args)
        if not apply:
            action()
            if hold_until is not None:
                hold_until.wait(10)
            return 503, b'{"error": "Service Unavailable"}'
        reply = original(method, path, *args)
        action()
        if hold_until is not None:
            hold_until.wait(10)
        return reply

    monkeypatch.setattr(sandbox, "dispatch", dispatch)


def wait_until(condition: Callable[[], bool], timeout: float = 10.0, what: str = "condition") -> None:
    """Poll ``condition`` until true (a synchronisation point, never a fixed sleep)."""
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        time.sleep(0.02)


def die_on_send(monkeypatch: pytest.MonkeyPatch, match: Match, nth: int) -> list[int]:
    """Make the hook's ``nth`` send (``MediaPocketHook.arun``) of a request that ``match``es raise
    ``AirflowTaskTimeout`` before sending, as execution_timeout does. (A signal-raised exception is not used
    for async code: asyncio swallows an exception a signal handler raises inside one of its callbacks.)
    Returns the live count of matching sends."""
    original = MediaPocketHook.arun
    calls = [0]

    async def dying(self: MediaPocketHook, call: ApiCall[Any], *args: Any, **kwargs: Any) -> Any:
        if match(call.method, call.path):
            calls[0] += 1
            if calls[0] == nth:
                raise AirflowTaskTimeout("Timeout, PID: test")
        return await original(self, call, *args, **kwargs)

    monkeypatch.setattr(MediaPocketHook, "arun", dying)
    return calls
