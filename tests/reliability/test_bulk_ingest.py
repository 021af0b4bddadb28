"""MediaPocketBulkIngestOperator against the sandbox: concurrency, retries, re-runs and faults.

Nothing lost, nothing twice: every item ends as exactly one asset with its media, whatever the
sandbox does to the requests (5xx, 429, dropped connections, answers lost after the change).
"""

from __future__ import annotations

import json
from collections import Counter
from typing import Any

import pytest

from airflow_provider_mediapocket.exceptions import MediaPocketError, MediaPocketValidationError
from airflow_provider_mediapocket.hooks import _api
from airflow_provider_mediapocket.operators.mediapocket import MediaPocketBulkIngestOperator
from airflow_provider_mediapocket.sandbox import FaultConfig, MediaPocketSandbox
from tests.triggers._support import FakeStateStore, FakeTI, make_context

FAULTS = {"500": 3, "502": 3, "503": 3, "429": 3, "drop": 3, "lost": 5}  # of 20% faults, 5% "lost"


def items(count: int, prefix: str = "bulk") -> list[dict[str, Any]]:
    kinds = ["jpg", "mp4", "mp3", "pdf"]
    return [
        {"title": f"Item {n}", "file_url": f"https://media.example.com/{prefix}/{n}.{kinds[n % 4]}",
         "external_id": f"{prefix}-{n:04d}", "tags": ["bulk"]}
        for n in range(count)
    ]


def bulk(task_id: str = "bulk", **kwargs: Any) -> MediaPocketBulkIngestOperator:
    return MediaPocketBulkIngestOperator(task_id=task_id, hook_params={"retry_backoff": 0.01}, **kwargs)


def ingested(sandbox: MediaPocketSandbox, prefix: str) -> list[dict[str, Any]]:
    return [a for a in sandbox.state.assets.values() if (a.get("external_id") or "").startswith(prefix)]


def test_project_ingest_is_concurrent_complete_and_ordered(mediapocket_sandbox: MediaPocketSandbox) -> None:
    project = mediapocket_sandbox.state.seed_project_id
    result = bulk(items=items(40), project_id=project, max_concurrency=8).execute(make_context())
    assert [r["external_id"] for r in result] == [f"bulk-{n:04d}" for n in range(40)]
    assert {r["status"] for r in result} == {"created"} and all(r["error"] is None for r in result)
    assets = ingested(mediapocket_sandbox, "bulk-")
    assert len(assets) == 40
    assert all(a["original_filename"] and a["project_id"] == project for a in assets)
    assert json.loads(json.dumps(result)) == result


def test_retry_skips_created_items_and_rerun_reuses_them(mediapocket_sandbox: MediaPocketSandbox) -> None:
    project = mediapocket_sandbox.state.seed_project_id
    store = FakeStateStore()
    bulk(items=items(10), project_id=project).execute(make_context(store))
    mediapocket_sandbox.clear_requests()
    again = bulk(items=items(10), project_id=project).execute(make_context(store))  # a task retry
    assert {r["status"] for r in again} == {"existing"}
    assert mediapocket_sandbox.requests == []
    rerun = bulk(items=items(12), project_id=project).execute(make_context())  # a new DAG run, same manifest
    assert Counter(r["status"] for r in rerun) == {"existing": 10, "created": 2}
    assert len(ingested(mediapocket_sandbox, "bulk-")) == 12


@pytest.mark.parametrize("in_project", [True, False], ids=["project", "standalone"])
def test_each_request_is_built_once_and_the_built_one_is_sent(
    mediapocket_sandbox: MediaPocketSandbox, monkeypatch: pytest.MonkeyPatch, in_project: bool
) -> None:
    """Checking the items builds (validates) their create bodies and media: those are what is sent,
    not built a second time from the item's fields."""
    built: Counter[str] = Counter()

    def counted(name: str, build: Any) -> Any:
        def spy(*args: Any, **kwargs: Any) -> Any:
            built[name] += 1
            return build(*args, **kwargs)
        return spy

    monkeypatch.setattr(_api, "body_of", counted("create body", _api.body_of))
    monkeypatch.setattr(_api, "media_from_url", counted("media", _api.media_from_url))
    project = mediapocket_sandbox.state.seed_project_id if in_project else None
    result = bulk(items=items(5, f"once-{in_project}"), project_id=project).execute(make_context())
    assert {r["status"] for r in result} == {"created"}
    assert len(ingested(mediapocket_sandbox, f"once-{in_project}-")) == 5
    assert built == {"create body": 5, "media": 5}


def test_without_project_each_asset_gets_its_media(mediapocket_sandbox: MediaPocketSandbox) -> None:
    result = bulk(items=items(12, "solo")).execute(make_context())
    assert {r["status"] for r in result} == {"created"}
    assets = ingested(mediapocket_sandbox, "solo-")
    assert len(assets) == 12 and all(a["project_id"] is None and a["original_filename"] for a in assets)


def test_failed_items_are_reported_and_fail_the_task_at_the_end(mediapocket_sandbox: MediaPocketSandbox) -> None:
    # Without a project, a create whose answer is lost cannot be looked up: that item fails, clearly.
    mediapocket_sandbox.inject("lost", method="POST", path_prefix="/api/v2/assets")
    ti = FakeTI()
    with pytest.raises(MediaPocketError, match=r"1 of 6 items failed .*may have been applied"):
        bulk(items=items(6, "part")).execute(make_context(ti=ti))
    results = ti.xcoms["results"]
    assert Counter(r["status"] for r in results) == {"created": 5, "failed": 1}
    mediapocket_sandbox.inject("lost", method="POST", path_prefix="/api/v2/assets")
    partial = bulk(items=items(3, "ok"), allow_partial_success=True).execute(make_context())
    assert Counter(r["status"] for r in partial) == {"created": 2, "failed": 1}


@pytest.mark.parametrize(
    ("bad", "message"),
    [
        ({"items": "nope"}, "Invalid parameter 'items': must be a list of dicts"),
        ({"items": [{"title": "t", "file_url": "https://x/y.jpg"}]}, "Invalid parameter 'items[0].external_id': is required"),
        ({"items": [{"title": "t", "file_url": "ftp://x/y.jpg", "external_id": "e"}]}, "Invalid parameter 'items[0].file_url'"),
        ({"items": [*items(2), {**items(1)[0]}]}, "Invalid parameter 'items[2].external_id': 'bulk-0000' repeats items[0]"),
        ({"items": [{**items(1)[0], "colour": "red"}]}, "Invalid parameter 'items[0]': unknown field(s) ['colour']"),
        ({"items": [{**items(1)[0], "title": "x" * 256}]}, "Invalid parameter 'items[0].title'"),
        ({"items": [{**items(1)[0], "tags": "a,b"}]}, "Invalid parameter 'items[0].tags'"),
    ],
)
def test_bad_items_are_refused_before_sending(
    mediapocket_sandbox: MediaPocketSandbox, bad: dict[str, Any], message: str
) -> None:
    mediapocket_sandbox.clear_requests()
    with pytest.raises(MediaPocketValidationError) as info:
        bulk(project_id=mediapocket_sandbox.state.seed_project_id, **bad).execute(make_context())
    assert message in str(info.value)
    assert mediapocket_sandbox.requests == []


def test_max_concurrency_is_checked_at_construction() -> None:
    with pytest.raises(MediaPocketValidationError, match="'max_concurrency'"):
        bulk(items=[], max_concurrency=0)


def test_nothing_lost_nothing_twice_under_faults(mediapocket_sandbox: MediaPocketSandbox) -> None:
    """500 items while 20% of requests fail (5% applied but their answer lost): exactly 500 assets."""
    project = mediapocket_sandbox.state.seed_project_id
    mediapocket_sandbox.set_faults(FaultConfig(rate=0.2, kinds=FAULTS, seed=20261123, retry_after=0))
    operator = MediaPocketBulkIngestOperator(
        task_id="bulk", items=items(500, "fault"), project_id=project, max_concurrency=16,
        hook_params={"retry_backoff": 0.005, "retry_limit": 5},
    )
    result = operator.execute(make_context())
    mediapocket_sandbox.set_faults(None)
    faults = Counter(r.fault for r in mediapocket_sandbox.requests if r.fault)
    assert faults["lost"] >= 10 and faults["drop"] >= 5 and faults["429"] >= 5  # the faults really happened
    assert {r["status"] for r in result} == {"created"}, [r for r in result if r["status"] != "created"][:3]
    assets = ingested(mediapocket_sandbox, "fault-")
    external_ids = [a["external_id"] for a in assets]
    assert len(assets) == 500 and len(set(external_ids)) == 500
    assert all(a["original_filename"] for a in assets)
    assert {r["asset_id"] for r in result} == {a["id"] for a in assets}
