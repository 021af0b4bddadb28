"""The run listing: an asset's runs indexed from the JSON text, one run decoded and validated on demand.

It must read exactly what ``json.loads`` reads (or fail where it fails), keep no decoded object per
run, and leave the hook's error handling of the listing endpoint as it was.
"""

from __future__ import annotations

import asyncio
import gc
import json
from collections.abc import Iterator
from typing import Any

import pytest

from airflow_provider_mediapocket.exceptions import (
    MediaPocketNotFoundError,
    MediaPocketOperationError,
    MediaPocketServerError,
)
from airflow_provider_mediapocket.hooks import _api
from airflow_provider_mediapocket.hooks.mediapocket import MediaPocketHook
from airflow_provider_mediapocket.models import DagActionRun
from airflow_provider_mediapocket.sandbox import MediaPocketSandbox, RawReply


def run(run_id: Any, status: str = "completed", messages: int = 4) -> dict[str, Any]:
    return {
        "id": run_id, "status": status, "created_at": "2026-01-01T00:00:00.000Z",
        "dag_action": {"id": 1, "name": "Transcode", "description": "d", "category": "Sandbox"},
        "dag_action_run_messages": [
            {"id": n, "message": f"step {n} \u00e9\u2713", "created_at": "2026-01-01T00:00:01.000Z"}
            for n in range(messages)
        ],
    }


def listing(body: bytes) -> _api.RunListing:
    call = _api.get_dag_action_run_listing("A1")
    assert call.decode is not None
    return call.parse(call.decode(body))


@pytest.mark.parametrize("text", [
    '{"dag_action_runs": []}',
    '{"dag_action_runs":[{"id":1,"status":"running"}]}',
    ' \n{ "total" : 3 , "dag_action_runs" : [ {"id": "7", "status": "failed"} ,\n {"id": 8} ] , "next": [1, {"a": null}] }\n',
    '{"dag_action_runs": [{"id": 1, "status": "first"}, {"id": 1, "status": "second"}]}',
    '{"dag_action_runs": [{"id": 2, "note": "\\u00e9 \\"quoted\\" [not] {a list}"}]}',
])
def test_the_listing_reads_what_json_loads_reads(text: str) -> None:
    expected = json.loads(text)
    runs = listing(text.encode())
    wanted = expected["dag_action_runs"]
    assert len(runs) == len(wanted)
    first_of_each: dict[str, dict[str, Any]] = {}
    for item in wanted:
        first_of_each.setdefault(str(item["id"]), item)  # equal ids: the first, as a scan finds it
    for run_id, item in first_of_each.items():
        found = runs.get(run_id)
        # Ids are normalised to strings by the model, whatever the listing held.
        expected = DagActionRun.model_validate(item).model_dump(mode="json", exclude_unset=True)
        assert found is not None and found.model_dump(mode="json", exclude_unset=True) == expected
    assert runs.get("no-such-run") is None


@pytest.mark.parametrize("text", [
    '{"dag_action_runs": [{"id": 1}',  # cut off
    '{"dag_action_runs": [{"id": 1} {"id": 2}]}',  # no comma
    '{"dag_action_runs": []} trailing',
    '{"dag_action_runs": [], }',
    '{dag_action_runs: []}',
])
def test_a_body_json_loads_rejects_is_rejected(text: str) -> None:
    with pytest.raises(ValueError):
        json.loads(text)
    with pytest.raises(ValueError):
        listing(text.encode())


@pytest.mark.parametrize("text", ['{"dag_action_runs": [1, 2]}', '{"dag_action_runs": "none"}', '{"other": []}',
                                  '[]', 'null', '{}'])
def test_a_body_of_another_shape_is_not_a_listing(text: str) -> None:
    with pytest.raises((KeyError, TypeError)):
        listing(text.encode())


def test_indexing_keeps_no_decoded_object_per_run() -> None:
    # What is decoded must not outlive the scan: thousands of dicts and lists kept per listing are
    # what the collector then traces, in full passes that stall a triggerer's event loop.
    body = json.dumps({"dag_action_runs": [run(n) for n in range(3000)]}).encode()
    gc.collect()
    gc.disable()
    try:
        before = gc.get_count()[0]
        decoded = json.loads(body)
        kept_by_json_loads = gc.get_count()[0] - before
        del decoded
        before = gc.get_count()[0]
        runs = listing(body)
        kept_by_listing = gc.get_count()[0] - before
    finally:
        gc.enable()
    assert len(runs) == 3000 and runs.get("2999") is not None
    assert kept_by_json_loads >= 6000  # a dict and a list per run at least
    assert kept_by_listing < 20


@pytest.fixture
def sandbox(mediapocket_sandbox: MediaPocketSandbox) -> Iterator[MediaPocketSandbox]:
    yield mediapocket_sandbox


def test_the_hook_reads_one_run_of_the_listing(sandbox: MediaPocketSandbox) -> None:
    asset_id = sandbox.state.add_asset(title="runs")["id"]
    started = [sandbox.state.start_run(asset_id, 1) for _ in range(5)]
    hook = MediaPocketHook(retry_backoff=0.01)

    async def fetch() -> _api.RunListing:
        try:
            return await hook.aget_dag_action_run_listing(asset_id)
        finally:
            await hook.aclose()

    runs = asyncio.run(fetch())
    assert len(runs) == 5
    assert all(str(r["id"]) in runs for r in started)
    assert hook.get_dag_action_run(asset_id, started[2]["id"]).id == str(started[2]["id"])
    with pytest.raises(MediaPocketNotFoundError, match="not found among the 5 runs of asset"):
        hook.get_dag_action_run(asset_id, 999999)
    hook.close()


@pytest.mark.parametrize(("body", "error", "match"), [
    (b'{"error": "Asset is locked"}', MediaPocketOperationError, "reported a failure: Asset is locked"),
    (b'{"dag_action_runs": {"id": 1}}', MediaPocketServerError, "unexpected shape"),
    (b'{"dag_action_runs": [{"id": 1, "status": 5, "dag_action_run_messages": "x"}]}', MediaPocketServerError,
     "unexpected shape: .*run 1"),
    (b'<html>sign in</html>', MediaPocketServerError, "not JSON"),
])
def test_a_listing_that_is_not_a_listing_fails_as_before(
    sandbox: MediaPocketSandbox, body: bytes, error: type[Exception], match: str
) -> None:
    asset_id = sandbox.state.add_asset(title="odd answers")["id"]
    sandbox.inject("raw", method="GET", path_prefix=f"/api/v2/assets/{asset_id}/dag_action_runs",
                   reply=RawReply(200, body, "application/json"))
    hook = MediaPocketHook(retry_backoff=0.01, retry_limit=0)
    with pytest.raises(error, match=match):
        hook.get_dag_action_run(asset_id, 1)
    hook.close()
