"""Shared fixtures for the sandbox tests."""

from __future__ import annotations

from collections.abc import Iterator

import httpx
import pytest

from airflow_provider_mediapocket.sandbox import MediaPocketSandbox


@pytest.fixture
def client(mediapocket_sandbox: MediaPocketSandbox) -> Iterator[httpx.Client]:
    """An httpx client authenticated against the per-test sandbox."""
    headers = {"X-API-KEY": mediapocket_sandbox.api_key}
    with httpx.Client(base_url=mediapocket_sandbox.base_url, headers=headers, timeout=10) as http:
        yield http
