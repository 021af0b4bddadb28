"""Pytest plugin: the ``mediapocket_sandbox`` fixture (a fresh sandbox per test) and ``sandbox_as_connection``."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from typing import TYPE_CHECKING, Any

import pytest

if TYPE_CHECKING:
    from airflow_provider_mediapocket.sandbox.server import MediaPocketSandbox


@contextmanager
def sandbox_as_connection(monkeypatch: pytest.MonkeyPatch, **options: Any) -> Iterator[MediaPocketSandbox]:
    """Start a sandbox with ``options`` (timings, ``history_page_size``, ...) and point
    ``AIRFLOW_CONN_MEDIAPOCKET_DEFAULT`` at it for as long as ``monkeypatch`` lasts.

    For tests that need other lifecycles than the ``mediapocket_sandbox`` fixture's.
    """
    from airflow_provider_mediapocket.sandbox.server import MediaPocketSandbox

    with MediaPocketSandbox(**options) as sandbox:
        for name, value in sandbox.airflow_connection_env().items():
            monkeypatch.setenv(name, value)
        yield sandbox


@pytest.fixture
def mediapocket_sandbox(monkeypatch: pytest.MonkeyPatch) -> Iterator[MediaPocketSandbox]:
    """A running sandbox (fast lifecycles) with ``AIRFLOW_CONN_MEDIAPOCKET_DEFAULT`` pointing at it."""
    with sandbox_as_connection(monkeypatch, media_processing_seconds=0.2, dag_action_run_seconds=1.0) as sandbox:
        yield sandbox
