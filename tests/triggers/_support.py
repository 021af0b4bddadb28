"""Helpers shared by the trigger, sensor and operator tests (not collected by pytest).

The sensor/operator tests call ``execute``/``poke`` with a minimal context: a fake task instance that
records XCom pushes and a dict-backed ``task_state_store``. The real Airflow path (task runner,
supervisor, triggerer) is covered by ``tests/e2e``.
"""

from __future__ import annotations

import asyncio
import json
import re
from typing import Any

import pytest

from airflow_provider_mediapocket.sandbox import MediaPocketSandbox
from airflow_provider_mediapocket.sandbox.pytest_plugin import mediapocket_sandbox_fixture

RUN_SECONDS = 0.3
MEDIA_SECONDS = 0.1


class FakeTI:
    """The bits of a TaskInstance the provider uses: ``xcom_push`` (and ``stats_tags`` for ResumableJobMixin)."""

    def __init__(self) -> None:
        self.xcoms: dict[str, Any] = {}
        self.pushes: list[tuple[str, Any]] = []
        self.stats_tags: dict[str, str] = {}

    def xcom_push(self, key: str, value: Any) -> None:
        self.xcoms[key] = value
        self.pushes.append((key, value))


class FakeStateStore:
    """A dict-backed stand-in for Airflow 3.3's ``task_state_store``."""

    def __init__(self) -> None:
        self.data: dict[str, Any] = {}

    def get(self, key: str, default: Any = None) -> Any:
        return self.data.get(key, default)

    def set(self, key: str, value: Any) -> None:
        if value is None:  # as the real store: "Cannot set value as None"
            raise ValueError("Cannot set value as None")
        json.dumps(value)  # the real store keeps JSON
        self.data[key] = value

    def delete(self, key: str) -> None:
        self.data.pop(key, None)


def make_context(store: FakeStateStore | None = None, ti: FakeTI | None = None) -> dict[str, Any]:
    """A minimal task context: ``ti`` and ``task_state_store`` only (the real one is tested in tests/e2e)."""
    return {"ti": ti or FakeTI(), "task_state_store": store if store is not None else FakeStateStore()}


async def first_payload(trigger: Any) -> dict[str, Any]:
    """The payload of the trigger's first event; the trigger's generator is closed as the triggerer does."""
    events = trigger.run()
    try:
        event = await events.__anext__()
    finally:
        await events.aclose()
    return dict(event.payload)


def first_event(trigger: Any, timeout: float = 10.0) -> dict[str, Any]:
    """Run ``trigger.run()`` in a fresh event loop and return the payload of its first event."""
    return asyncio.run(asyncio.wait_for(first_payload(trigger), timeout))


# Short lifecycles: runs finish in 0.3 s, media in 0.1 s.
sandbox = mediapocket_sandbox_fixture(media_processing_seconds=MEDIA_SECONDS, dag_action_run_seconds=RUN_SECONDS)


def add_connection(monkeypatch: pytest.MonkeyPatch, sb: MediaPocketSandbox, conn_id: str, key: str) -> None:
    """Define connection ``conn_id`` to the sandbox with API key ``key``."""
    monkeypatch.setenv(f"AIRFLOW_CONN_{conn_id.upper()}", sb.connection(api_key=key, retry_backoff=0.01))


_AT = re.compile(r" \(at [^)]*\)$")


def logged_run_messages(logs: list[dict[str, Any]], run_id: Any) -> list[str]:
    """The run messages in captured log entries (``DAG action run <id>: <text> (at <time>)``), time dropped."""
    prefix = f"DAG action run {run_id}: "
    return [_AT.sub("", str(e["event"])[len(prefix):]) for e in logs if str(e["event"]).startswith(prefix)]


def calls(sb: MediaPocketSandbox, method: str, prefix: str) -> list[Any]:
    return [r for r in sb.requests if r.method == method and r.path.startswith(prefix)]
