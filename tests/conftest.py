"""Test-wide setup: a throwaway AIRFLOW_HOME before Airflow is imported, and connection helpers."""

from __future__ import annotations

import json
import os
import tempfile
from collections.abc import Iterator

import pytest

# Airflow reads its home at import time; never touch a developer's real ~/airflow.
os.environ.setdefault("AIRFLOW_HOME", tempfile.mkdtemp(prefix="mediapocket-airflow-home-"))
os.environ.setdefault("AIRFLOW__CORE__LOAD_EXAMPLES", "False")

FAKE_KEY = "fake-key-3f1d2c9b"  # used with respx; the sandbox tests use the sandbox's own key


@pytest.fixture
def respx_conn(monkeypatch: pytest.MonkeyPatch) -> Iterator[str]:
    """A `mediapocket_default` connection to http://mp.test (for respx-mocked unit tests)."""
    conn = {
        "conn_type": "mediapocket",
        "host": "http://mp.test",
        "password": FAKE_KEY,
        "extra": {"retry_backoff": 0.001, "retry_limit": 3},
    }
    monkeypatch.setenv("AIRFLOW_CONN_MEDIAPOCKET_DEFAULT", json.dumps(conn))
    yield "http://mp.test"
