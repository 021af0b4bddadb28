"""What every deployment script shares: its failure type, bounded waits, free ports, progress lines and
turning SIGTERM/SIGINT/SIGHUP into an exception so that ``finally`` blocks stop the processes."""

from __future__ import annotations

import signal
import socket
import time
from collections.abc import Callable
from typing import TypeVar

__all__ = ["DeploymentError", "Interrupted", "free_port", "handle_interrupts", "log", "wait_for"]

T = TypeVar("T")


class DeploymentError(Exception):
    """A check or a wait of a deployment script failed; the message says which."""


class Interrupted(BaseException):
    """SIGTERM/SIGINT/SIGHUP received: unwind through the ``finally`` blocks (see :func:`handle_interrupts`)."""


def handle_interrupts() -> None:
    """From now on SIGTERM, SIGINT and SIGHUP raise :class:`Interrupted` in the main thread, once: a second
    signal must not abort the (bounded) cleanup the first one started."""

    def _interrupt(signum: int, frame: object) -> None:
        for sig in (signal.SIGTERM, signal.SIGINT, signal.SIGHUP):
            signal.signal(sig, signal.SIG_IGN)
        raise Interrupted(f"signal {signum}")

    for sig in (signal.SIGTERM, signal.SIGINT, signal.SIGHUP):
        signal.signal(sig, _interrupt)


def log(message: str, prefix: str = "e2e") -> None:
    """Print one timestamped progress line.

    :param message: the line.
    :param prefix: names the script.
    """
    print(f"[{prefix} {time.strftime('%H:%M:%S')}] {message}", flush=True)


def free_port() -> int:
    """A TCP port on 127.0.0.1 that was free a moment ago (bind to port 0)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def wait_for(
    what: str,
    check: Callable[[], T | None],
    timeout: float,
    interval: float = 1.0,
    alive: Callable[[], None] | None = None,
) -> T:
    """Call ``check`` until it returns something truthy and return that. Bounded.

    :param what: named in the timeout's :class:`DeploymentError`.
    :param check: returns a falsy value to go on waiting; an ``OSError``, ``ValueError`` or
        :class:`DeploymentError` it raises counts as "not yet" (the last one is named on timeout).
    :param timeout: seconds.
    :param interval: seconds between calls.
    :param alive: called before each check; raises when a process the wait depends on died
        (e.g. :meth:`Deployment.check_alive <airflow_provider_mediapocket.testing.deployment.Deployment.check_alive>`).
    """
    deadline = time.monotonic() + timeout
    last_error: BaseException | None = None
    while True:
        if alive is not None:
            alive()
        try:
            result = check()
            if result:
                return result
        except (OSError, ValueError, DeploymentError) as exc:  # URLError is an OSError
            last_error = exc
        if time.monotonic() >= deadline:
            detail = f" (last error: {last_error})" if last_error else ""
            raise DeploymentError(f"timed out after {timeout:.0f}s waiting for {what}{detail}")
        time.sleep(interval)

