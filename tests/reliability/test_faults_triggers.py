"""Many deferred waits in one triggerer event loop while the sandbox misbehaves.

20% of the requests get a 500, 502, 503, 429 (Retry-After 0), a dropped connection or a slow answer.
Every wait must still report its true outcome (never "error" or "timeout"), and the triggers watching
the same asset must share their polls (one request per asset per tick, not one per trigger).
"""

from __future__ import annotations

import json
import math
import time
from collections import Counter, defaultdict
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import pytest

from airflow_provider_mediapocket.sandbox import MediaPocketSandbox
from airflow_provider_mediapocket.sensors.mediapocket import MediaPocketAssetSensor, MediaPocketDagActionRunSensor
from airflow_provider_mediapocket.triggers.mediapocket import MediaPocketAssetTrigger, MediaPocketDagActionRunTrigger
from tests._compat import capture_logs
from tests.reliability._helpers_faults import (
    HOOK_PARAMS,
    calls,
    fault_counts,
    faults,
    run_together,
    running_sandbox,
)
from tests.triggers._support import logged_run_messages, make_context

POLL = 0.1
ASSETS = 40
RUNS_PER_ASSET = 5
ACTIONS = (1, 3, 4)  # Transcode and Publish complete, "Broken pipeline" fails
LAST_MESSAGE = {1: "Finished successfully", 3: "Finished successfully", 4: "Error: pipeline step failed"}
MEDIA = {"jpg": "image", "mp4": "video", "mp3": "audio", "pdf": "document", "bin": "other"}


@pytest.fixture
def sandbox(monkeypatch: pytest.MonkeyPatch) -> Iterator[MediaPocketSandbox]:
    # Runs take 1-2 s (seeded spread) and media 1 s, so the waits really wait across many ticks.
    with running_sandbox(
        monkeypatch, media_processing_seconds=1.0, dag_action_run_seconds=(1.0, 2.0), seed=11
    ) as sb:
        yield sb


def start_runs(sandbox: MediaPocketSandbox) -> dict[tuple[str, str], int]:
    """40 assets x 5 runs of actions 1/3/4, made in the sandbox's state (setup, not under test).

    Returns (asset id, run id) -> action.
    """
    started: dict[tuple[str, str], int] = {}
    for n in range(ASSETS):
        asset_id = sandbox.state.add_asset(title=f"fault target {n}")["id"]
        for k in range(RUNS_PER_ASSET):
            action = ACTIONS[(n + k) % len(ACTIONS)]
            run = sandbox.state.start_run(asset_id, action)
            started[(asset_id, str(run["id"]))] = action
    return started


def with_media(sandbox: MediaPocketSandbox, title: str, filename: str) -> str:
    """A new asset whose media is processing (sandbox state: setup, not under test)."""
    asset_id = str(sandbox.state.add_asset(title=title)["id"])
    sandbox.state.add_media(asset_id, filename, file_url=f"https://media.example.com/in/{filename}")
    return asset_id


def test_200_run_waits_in_one_loop_survive_faults_and_share_polls(sandbox: MediaPocketSandbox) -> None:
    started = start_runs(sandbox)
    assert len(started) == ASSETS * RUNS_PER_ASSET
    sandbox.clear_requests()
    sandbox.set_faults(faults(seed=20260101))
    end_time = time.time() + 30
    triggers = [
        MediaPocketDagActionRunTrigger(
            asset_id=asset_id, dag_action_run_id=run_id, end_time=end_time, poll_interval=POLL,
            hook_params=HOOK_PARAMS,
        )
        for asset_id, run_id in started
    ]
    with capture_logs() as logs:
        finished, hooks_seen = run_together(triggers, timeout=40)
    sandbox.set_faults(None)

    # The faults really happened, of every kind.
    seen_faults = fault_counts(sandbox)
    assert all(seen_faults[kind] >= 3 for kind in ("500", "502", "503", "429", "drop", "delay")), seen_faults

    # Every trigger reports its own run's true outcome.
    outcomes = Counter(f.payload["status"] for f in finished)
    assert outcomes == {"success": sum(a != 4 for a in started.values()), "failed": sum(a == 4 for a in started.values())}
    for (asset_id, run_id), action, done in zip(started, started.values(), finished, strict=True):
        event = done.payload
        assert event["asset_id"] == asset_id and event["dag_action_run_id"] == run_id
        assert event["status"] == ("failed" if action == 4 else "success"), event
        status = "failed" if action == 4 else "completed"
        assert f"run {run_id} on asset {asset_id} " in event["message"] and f"status '{status}'" in event["message"]
        # Each trigger logged its own run's messages, each once, first to last, despite the faults.
        messages = logged_run_messages(logs, run_id)
        assert messages[0] == "Set in queue..." and messages[-1] == LAST_MESSAGE[action]
        assert len(messages) == len(set(messages)) == 4, messages
        assert json.loads(json.dumps(event)) == event
        assert sandbox.api_key not in json.dumps(event)

    # One shared hook (one client) for all 200 triggers, released when the last one ends.
    assert max(hooks_seen) == 1 and hooks_seen[-1] == 0, hooks_seen

    # Coalescing: per asset, at most one successful listing per tick while any of its triggers waited.
    gets = calls(sandbox, "GET", "/api/v2/assets/", "/dag_action_runs")
    answered = Counter(r.path for r in gets if r.status == 200)
    last_done: dict[str, float] = defaultdict(float)
    for (asset_id, _), done in zip(started, finished, strict=True):
        last_done[asset_id] = max(last_done[asset_id], done.after)
    for asset_id, window in last_done.items():
        ticks = math.ceil(window / POLL) + 2
        assert answered[f"/api/v2/assets/{asset_id}/dag_action_runs"] <= ticks, (asset_id, window)
    # Without sharing, each trigger would poll once per tick until its own run ended.
    polls_unshared = sum(math.floor(done.after / POLL) + 1 for done in finished)
    assert len(gets) * 3 < polls_unshared, (len(gets), polls_unshared)
    assert len(gets) <= ASSETS * (math.ceil(max(last_done.values()) / POLL) + 2) * 1.6
    # The triggers only ever read.
    assert {r.method for r in sandbox.requests} == {"GET"}


def test_50_asset_waits_under_faults_report_the_processed_media_type(sandbox: MediaPocketSandbox) -> None:
    expected: dict[str, tuple[str, str]] = {}
    for n in range(50):
        ext = list(MEDIA)[n % len(MEDIA)]
        expected[with_media(sandbox, f"media {n}", f"{n}.{ext}")] = (MEDIA[ext], f"{n}.{ext}")
    assert {sandbox.state.assets[a]["media_type"] for a in expected} == {"processing"}  # they must wait
    sandbox.clear_requests()
    sandbox.set_faults(faults(seed=424242))
    end_time = time.time() + 30
    triggers = [
        MediaPocketAssetTrigger(asset_id=a, end_time=end_time, poll_interval=POLL, hook_params=HOOK_PARAMS)
        for a in expected
    ]
    finished, hooks_seen = run_together(triggers, timeout=40)
    sandbox.set_faults(None)

    assert sum(fault_counts(sandbox).values()) >= 20, fault_counts(sandbox)
    assert Counter(f.payload["status"] for f in finished) == {"success": 50}, [
        f.payload for f in finished if f.payload["status"] != "success"
    ][:3]
    for (asset_id, (media_type, filename)), done in zip(expected.items(), finished, strict=True):
        event = done.payload
        assert event["asset_id"] == asset_id and event["asset"]["id"] == asset_id
        assert event["asset"]["media_type"] == media_type
        assert event["asset"]["original_filename"] == filename
        assert f"media_type={media_type}" in event["message"]
    assert max(hooks_seen) == 1 and hooks_seen[-1] == 0
    assert {r.method for r in sandbox.requests} == {"GET"}


def test_mixed_run_and_asset_waits_on_the_same_assets_share_one_client(sandbox: MediaPocketSandbox) -> None:
    """Run waits and asset waits on the same 10 assets, in one loop, under faults: all right, one client."""
    runs: dict[tuple[str, str], int] = {}
    for n in range(10):
        asset_id = with_media(sandbox, f"mixed {n}", f"mixed-{n}.mp4")
        action = ACTIONS[n % len(ACTIONS)]
        runs[(asset_id, str(sandbox.state.start_run(asset_id, action)["id"]))] = action
    sandbox.clear_requests()
    sandbox.set_faults(faults(seed=7))
    end_time = time.time() + 30
    triggers: list[Any] = []
    for asset_id, run_id in runs:
        for _ in range(3):
            triggers.append(MediaPocketDagActionRunTrigger(
                asset_id=asset_id, dag_action_run_id=run_id, end_time=end_time, poll_interval=POLL,
                hook_params=HOOK_PARAMS,
            ))
            triggers.append(MediaPocketAssetTrigger(
                asset_id=asset_id, end_time=end_time, poll_interval=POLL, hook_params=HOOK_PARAMS,
            ))
    finished, hooks_seen = run_together(triggers, timeout=40)
    sandbox.set_faults(None)
    actions = [action for action in runs.values() for _ in range(3)]
    run_events = [f.payload for f in finished[0::2]]
    asset_events = [f.payload for f in finished[1::2]]
    assert [e["status"] for e in run_events] == ["failed" if a == 4 else "success" for a in actions]
    assert {e["status"] for e in asset_events} == {"success"}
    assert {e["asset"]["media_type"] for e in asset_events} == {"video"}
    assert max(hooks_seen) == 1 and hooks_seen[-1] == 0


def test_poke_mode_sensors_under_faults(sandbox: MediaPocketSandbox) -> None:
    """Sensors poking on workers (threads here) under the same faults, with enough hook retries."""
    runs: list[tuple[str, str, int]] = []
    assets: list[str] = []
    for n in range(6):
        asset_id = with_media(sandbox, f"poke {n}", f"poke-{n}.jpg")
        action = ACTIONS[n % 2]  # 1 or 3: both complete
        runs.append((asset_id, str(sandbox.state.start_run(asset_id, action)["id"]), action))
        assets.append(asset_id)
    sandbox.clear_requests()
    sandbox.set_faults(faults(seed=99))
    params = {"retry_backoff": 0.01, "retry_limit": 8}  # a poke (unlike a trigger poll) fails on a lasting fault

    def wait_run(item: tuple[str, str, int]) -> Any:
        return MediaPocketDagActionRunSensor(
            task_id=f"run_{item[1]}", asset_id=item[0], dag_action_run_id=item[1], deferrable=False,
            mode="poke", poke_interval=POLL, timeout=20, hook_params=params,
        ).execute(make_context())

    def wait_asset(asset_id: str) -> Any:
        return MediaPocketAssetSensor(
            task_id=f"asset_{asset_id}", asset_id=asset_id, deferrable=False, mode="poke", poke_interval=POLL,
            timeout=20, hook_params=params,
        ).execute(make_context())

    with ThreadPoolExecutor(max_workers=12) as pool:
        run_results = list(pool.map(wait_run, runs))
        asset_results = list(pool.map(wait_asset, assets))
    sandbox.set_faults(None)
    assert sum(fault_counts(sandbox).values()) >= 5
    assert [str(r["id"]) for r in run_results] == [run_id for _, run_id, _ in runs]
    assert {r["status"] for r in run_results} == {"completed"}
    assert [a["id"] for a in asset_results] == assets
    assert {a["media_type"] for a in asset_results} == {"image"}
