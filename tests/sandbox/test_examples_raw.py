"""Every documented example, replayed with plain httpx against a fresh sandbox."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import httpx
import pytest

from airflow_provider_mediapocket.sandbox import MediaPocketSandbox
from tests.sandbox.replay_cases import assert_matches, example_id, load_examples, prepare

EXAMPLES = load_examples()


@pytest.fixture
def sandbox() -> Iterator[MediaPocketSandbox]:
    with MediaPocketSandbox() as sb:
        yield sb


def test_all_examples_are_loaded() -> None:
    assert len(EXAMPLES) == 176
    assert len({(e["method"], e["path"]) for e in EXAMPLES}) > 150


@pytest.mark.parametrize("example", EXAMPLES, ids=[example_id(i, e) for i, e in enumerate(EXAMPLES)])
def test_example(sandbox: MediaPocketSandbox, example: dict[str, Any]) -> None:
    req = prepare(sandbox, example)
    kwargs: dict[str, Any] = {"params": req.query, "headers": {"X-API-KEY": req.api_key}}
    if req.body is not None:
        kwargs["json"] = req.body
    with httpx.Client(base_url=sandbox.base_url, timeout=10) as client:
        response = client.request(req.method, req.path, **kwargs)
    assert_matches(example, response.status_code, response.json())
