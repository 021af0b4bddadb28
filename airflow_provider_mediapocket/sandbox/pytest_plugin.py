"""Pytest plugin: the ``mediapocket_sandbox`` fixture (a fresh sandbox per test)."""

from __future__ import annotations

from collections.abc import Iterator
from typing import TYPE_CHECKING

import pytest

if TYPE_CHECKING:
    from airflow_provider_mediapocket.sandbox.server import MediaPocketSandbox


@pytest.fixture
def mediapocket_sandbox(monkeypatch: pytest.MonkeyPatch) -> Iterator[MediaPocketSandbox]:
    """A running sandbox (fast lifecycles) with ``AIRFLOW_CONN_MEDIAPOCKET_DEFAULT`` pointing at it."""
    from airflow_provider_mediapocket.sandbox.server import MediaPocketSandbox

    sandbox = MediaPocketSandbox(media_processing_seconds=0.2, dag_action_run_seconds=1.0)
    with sandbox:
        for name, value in sandbox.airflow_connection_env().items():
            monkeypatch.setenv(name, value)
        yield sandbox
