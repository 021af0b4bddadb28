"""Helpers for the reliability fault tests (not collected by pytest).

A sandbox with chosen lifecycles as ``mediapocket_default``, running many triggers in one event loop
(what a triggerer does), rebuilding a trigger the way the triggerer does after a restart, and reading
the sandbox's request log.
"""

from __future__ import annotations

import asyncio
import importlib
import json
import time
from collections import Counter
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

import pytest

from airflow_provider_mediapocket.sandbox import FaultConfig, MediaPocketSandbox
from airflow_provider_mediapocket.sandbox.pytest_plugin import sandbox_as_connection
from airflow_provider_mediapocket.triggers import _shared
from tests.triggers._support import first_payload

# 20% of requests get a fault: every transient kind the hook and triggers must ride out, plus slow answers.
FAULT_KINDS = {"500": 1.0, "502": 1.0, "503": 1.0, "429": 1.0, "drop": 1.0, "delay": 1.0}
HOOK_PARAMS = {"retry_backoff": 0.01, "retry_limit": 2}


def faults(seed: int, rate: float = 0.2) -> FaultConfig:
    return FaultConfig(rate=rate, kinds=FAULT_KINDS, seed=seed, retry_after=0, delay=0.05)


@contextmanager
def running_sandbox(monkeypatch: pytest.MonkeyPatch, **state_kwargs: Any) -> Iterator[MediaPocketSandbox]:
    """A fresh sandbox with ``state_kwargs`` lifecycles, defined as ``mediapocket_default``."""
    with sandbox_as_connection(monkeypatch, **state_kwargs) as sandbox:
        yield sandbox


def calls(sandbox: MediaPocketSandbox, method: str, prefix: str, suffix: str = "") -> list[Any]:
    return [r for r in sandbox.requests if r.method == method and r.path.startswith(prefix) and r.path.endswith(suffix)]


def fault_counts(sandbox: MediaPocketSandbox) -> Counter[str]:
    return Counter(r.fault for r in sandbox.requests if r.fault)


@dataclass
class Finished:
    """One trigger's first event and when it came (seconds after all the triggers started)."""

    payload: dict[str, Any]
    after: float


async def _timed(trigger: Any, began: float) -> Finished:
    payload = await first_payload(trigger)
    return Finished(payload, time.monotonic() - began)


async def _all(triggers: list[Any], peak_hooks: list[int]) -> list[Finished]:
    began = time.monotonic()
    tasks = [asyncio.ensure_future(_timed(t, began)) for t in triggers]
    done = asyncio.gather(*tasks)
    while not done.done():  # sample how many shared hooks (clients) the triggers hold at once
        peak_hooks.append(_shared.shared_count())
        await asyncio.wait({done}, timeout=0.05)
    results = await done
    peak_hooks.append(_shared.shared_count())  # after the last trigger: everything released
    return list(results)


def run_together(triggers: list[Any], timeout: float) -> tuple[list[Finished], list[int]]:
    """Run every trigger in one new event loop (a triggerer); their events, and shared-hook counts seen."""
    samples: list[int] = []
    results = asyncio.run(asyncio.wait_for(_all(triggers, samples), timeout))
    return results, samples


def rebuild(serialized: tuple[str, dict[str, Any]]) -> Any:
    """Rebuild a trigger as the triggerer does: classpath + kwargs, through Airflow's serde and JSON."""
    from tests._compat import deserialize, serialize

    classpath, kwargs = serialized
    stored = json.loads(json.dumps({"classpath": classpath, "kwargs": serialize(kwargs)}))
    restored = deserialize(stored["kwargs"])
    assert restored == kwargs, (restored, kwargs)
    module, _, name = stored["classpath"].rpartition(".")
    return getattr(importlib.import_module(module), name)(**restored)
