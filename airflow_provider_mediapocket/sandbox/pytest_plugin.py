"""Pytest plugin: sandboxes as the ``mediapocket_default`` connection, one factory for every timing.

* ``mediapocket_sandbox`` -- a fresh sandbox per test with fast lifecycles;
* ``mediapocket_sandbox_factory`` -- ``make(**options)`` starts one with other options (timings,
  ``history_page_size``, ...) for the current test, stopped at its end;
* :func:`mediapocket_sandbox_fixture` -- declares a module's own fixture with other options in one line::

      sandbox = mediapocket_sandbox_fixture(media_processing_seconds=60, dag_action_run_seconds=60)

* :func:`sandbox_as_connection` -- the context manager all of them use, for other lifecycles.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import ExitStack, contextmanager
from typing import TYPE_CHECKING, Any

import pytest

if TYPE_CHECKING:
    from airflow_provider_mediapocket.sandbox.server import MediaPocketSandbox

#: The ``mediapocket_sandbox`` fixture's lifecycles: media processed in 0.2 s, DAG action runs done in 1 s.
FAST = {"media_processing_seconds": 0.2, "dag_action_run_seconds": 1.0}


@contextmanager
def sandbox_as_connection(monkeypatch: pytest.MonkeyPatch, **options: Any) -> Iterator[MediaPocketSandbox]:
    """Start a sandbox with ``options`` (timings, ``history_page_size``, ...) and point
    ``AIRFLOW_CONN_MEDIAPOCKET_DEFAULT`` at it for as long as ``monkeypatch`` lasts.

    :param monkeypatch: sets the connection's environment variable.
    :param options: ``MediaPocketSandbox`` arguments.
    """
    from airflow_provider_mediapocket.sandbox.server import MediaPocketSandbox

    with MediaPocketSandbox(**options) as sandbox:
        monkeypatch.setenv(*next(iter(sandbox.airflow_connection_env().items())))
        yield sandbox


@pytest.fixture
def mediapocket_sandbox_factory(monkeypatch: pytest.MonkeyPatch) -> Iterator[Callable[..., MediaPocketSandbox]]:
    """``make(**options)``: a running sandbox with ``options`` as ``mediapocket_default`` (the latest made
    wins); every one made is stopped when the test ends."""
    with ExitStack() as stack:

        def make(**options: Any) -> MediaPocketSandbox:
            return stack.enter_context(sandbox_as_connection(monkeypatch, **options))

        yield make


def mediapocket_sandbox_fixture(**options: Any) -> Any:
    """A fixture giving each test a running sandbox with ``options`` as ``mediapocket_default``; assign it
    to the fixture's name in a test module or conftest.

    :param options: ``MediaPocketSandbox`` arguments (timings above all).
    """


    def sandbox(mediapocket_sandbox_factory: Callable[..., MediaPocketSandbox]) -> MediaPocketSandbox:
        return mediapocket_sandbox_factory(**options)

    sandbox.__doc__ = f"A running sandbox ({options}) as ``mediapocket_default``."
    return pytest.fixture(sandbox)


mediapocket_sandbox = mediapocket_sandbox_fixture(**FAST)
