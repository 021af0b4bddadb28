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


# Every API key the suite uses. No test's captured output, log records or failure text may hold one:
# checked after every test, so a leak anywhere in the suite fails the test that caused it.
SECRETS = (FAKE_KEY, "sandbox-api-key", "restricted-sandbox-key", "rotated-sandbox-key")


@pytest.fixture(autouse=True)
def _no_key_in_log_records(caplog: pytest.LogCaptureFixture) -> Iterator[None]:
    yield
    for record in caplog.records:
        text = record.getMessage()
        leaked = [secret for secret in SECRETS if secret in text]
        assert not leaked, f"an API key reached a log record ({record.name}): {text[:200]}"


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item: pytest.Item, call: pytest.CallInfo[None]) -> Iterator[None]:
    outcome = yield
    report = outcome.get_result()
    if report.when != "call" or report.failed:
        return
    captured = "\n".join([report.capstdout, report.capstderr, report.caplog])
    leaked = [secret for secret in SECRETS if secret in captured]
    if leaked:
        report.outcome = "failed"
        report.longrepr = f"an API key appeared in the test's captured output: {leaked}"
