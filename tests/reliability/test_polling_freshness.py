"""Coalesced polling on the triggerer: every answer fresh, no whole run list validated, nothing hoarded.

The triggers of one triggerer share one request per asset and tick (see ``triggers/_shared.py``).
Sharing must never hand a trigger an answer older than its own question: a trigger that starts
mid-tick, after the run or media it waits for was made, must not be given the list another trigger
fetched earlier in that tick (in flight or done). A listing of thousands of runs must not be validated
whole on the event loop to pick one run. And the registry of shared fetches must forget a fetch once
its tick has passed, not keep every asset's last answer until the connection's last trigger ends.
"""

from __future__ import annotations

import asyncio
import math
import time
from collections.abc import Callable, Iterator
from typing import Any

import pytest

from airflow_provider_mediapocket.hooks.mediapocket import MediaPocketHook
from airflow_provider_mediapocket.models import DagActionRun
from airflow_provider_mediapocket.sandbox import MediaPocketSandbox
from airflow_provider_mediapocket.triggers import _shared
from airflow_provider_mediapocket.triggers.mediapocket import MediaPocketAssetTrigger, MediaPocketDagActionRunTrigger
from tests.reliability._helpers_faults import HOOK_PARAMS, calls, running_sandbox
from tests.triggers._support import first_payload

NEVER_ENDING = 5  # the sandbox's DAG action whose runs never finish


@pytest.fixture
def sandbox(monkeypatch: pytest.MonkeyPatch) -> Iterator[MediaPocketSandbox]:
    # Media takes a minute: new media stays "processing" for the whole test.
    with running_sandbox(monkeypatch, media_processing_seconds=60.0, dag_action_run_seconds=60.0) as sb:
        yield sb


def mid_tick_interval(asset_id: str) -> float:
    """A poll interval of 10 minutes or more whose current tick (of ``asset_id``) has most of its length
    still ahead.

    Ticks are wall-clock aligned and shifted by the asset's phase (``floor((time - phase) / interval)``);
    the tests below need both triggers in one tick, as in the reported bug, and must not depend on
    where in the hour they run.
    """
    now = time.time()
    return float(next(i for i in range(600, 700) if (now - _shared.poll_phase(asset_id, i)) % i < i / 2))


async def until(condition: Callable[[], Any], timeout: float = 10.0) -> None:
    """Wait (yielding to the loop) until ``condition()`` holds; fail after ``timeout`` seconds."""
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, "condition not reached"
        await asyncio.sleep(0.005)


async def stop(task: asyncio.Task[Any]) -> None:
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task


@pytest.mark.parametrize("older_fetch", ["in-flight", "completed"])
def test_a_trigger_started_after_the_run_finds_it_although_a_fetch_of_its_tick_predates_the_run(
    sandbox: MediaPocketSandbox, older_fetch: str
) -> None:
    asset_id = sandbox.state.add_asset(title="shared runs")["id"]
    interval = mid_tick_interval(asset_id)
    earlier = sandbox.state.start_run(asset_id, NEVER_ENDING)
    listing = f"/api/v2/assets/{asset_id}/dag_action_runs"
    if older_fetch == "in-flight":
        # The first trigger's listing is taken (applied) at once but answered only a second later.
        sandbox.inject("slow", method="GET", path_prefix=listing, delay=1.0)

    async def scenario() -> dict[str, Any]:
        first = MediaPocketDagActionRunTrigger(
            asset_id=asset_id, dag_action_run_id=earlier["id"], end_time=time.time() + 60, poll_interval=interval,
            hook_params=HOOK_PARAMS,
        )
        first_task = asyncio.ensure_future(first_payload(first))
        if older_fetch == "in-flight":
            await until(lambda: calls(sandbox, "GET", listing))  # the server has taken its snapshot
        else:
            await until(lambda: first._watch.last_status is not None)  # the first poll is done
        # Now the operator starts a run and defers: its trigger starts in the same tick.
        new_run = sandbox.state.start_run(asset_id, 1)
        sandbox.state.set_run_status(new_run["id"], "completed")
        second = MediaPocketDagActionRunTrigger(
            asset_id=asset_id, dag_action_run_id=new_run["id"], end_time=time.time() + 60, poll_interval=interval,
            hook_params=HOOK_PARAMS,
        )
        try:
            return await asyncio.wait_for(first_payload(second), 10)
        finally:
            await stop(first_task)

    payload = asyncio.run(scenario())

    assert payload["status"] == "success", payload
    assert "'completed'" in payload["message"], payload
    # The second trigger asked its own question: a second listing, sent after it started.
    assert len(calls(sandbox, "GET", listing)) == 2


@pytest.mark.parametrize("older_fetch", ["in-flight", "completed"])
def test_an_asset_trigger_never_reports_ready_from_a_snapshot_taken_before_it_started(
    sandbox: MediaPocketSandbox, older_fetch: str
) -> None:
    asset_id = sandbox.state.add_asset(title="replaced media")["id"]
    interval = mid_tick_interval(asset_id)
    sandbox.state.add_media(asset_id, "old.jpg", processed=True)
    target = f"/api/v2/assets/{asset_id}"
    if older_fetch == "in-flight":
        sandbox.inject("slow", method="GET", path_prefix=target, delay=1.0)

    async def scenario() -> dict[str, Any]:
        # Someone else waits on the same asset for a status it never gets: it polls every tick.
        watcher = MediaPocketAssetTrigger(
            asset_id=asset_id, end_time=time.time() + 60, poll_interval=interval, target_statuses=["approved"],
            hook_params=HOOK_PARAMS,
        )
        watcher_task = asyncio.ensure_future(first_payload(watcher))
        if older_fetch == "in-flight":
            await until(lambda: calls(sandbox, "GET", target))
        else:
            await until(lambda: watcher._last_message is not None)
        # New media is uploaded, then a task waits for it to be processed, in the same tick.
        sandbox.state.add_media(asset_id, "new.mp4")
        waiter = MediaPocketAssetTrigger(
            asset_id=asset_id, end_time=time.time() + 0.5, poll_interval=interval, wait_for_media=True,
            hook_params=HOOK_PARAMS,
        )
        try:
            return await asyncio.wait_for(first_payload(waiter), 10)
        finally:
            await stop(watcher_task)

    payload = asyncio.run(scenario())

    # The truth: the media was still processing when the waiter asked, and until its deadline.
    assert payload["status"] == "timeout", payload
    assert "still processing" in payload["message"]


def test_a_run_list_is_not_validated_whole_to_find_one_run(
    sandbox: MediaPocketSandbox, monkeypatch: pytest.MonkeyPatch
) -> None:
    asset_id = sandbox.state.add_asset(title="many runs")["id"]
    runs = [sandbox.state.start_run(asset_id, 1) for _ in range(300)]
    wanted = runs[150]
    sandbox.state.set_run_status(wanted["id"], "completed")
    validated: list[Any] = []
    original = DagActionRun.model_validate.__func__  # type: ignore[attr-defined]

    def counting(cls: type[DagActionRun], obj: Any, *args: Any, **kwargs: Any) -> DagActionRun:
        validated.append(obj.get("id") if isinstance(obj, dict) else obj)
        return original(cls, obj, *args, **kwargs)  # type: ignore[no-any-return]

    monkeypatch.setattr(DagActionRun, "model_validate", classmethod(counting))
    trigger = MediaPocketDagActionRunTrigger(
        asset_id=asset_id, dag_action_run_id=wanted["id"], end_time=time.time() + 30, poll_interval=0.05,
        hook_params=HOOK_PARAMS,
    )

    payload = asyncio.run(asyncio.wait_for(first_payload(trigger), 10))

    assert payload["status"] == "success", payload
    assert payload["dag_action_run_id"] == str(wanted["id"])
    assert validated == [wanted["id"]]  # one run validated, not the 300 of the listing


def test_the_fetch_registry_forgets_fetches_whose_tick_has_passed(sandbox: MediaPocketSandbox) -> None:
    poll = 0.05
    keeper_asset = sandbox.state.add_asset(title="keeps the connection's client alive")["id"]
    keeper_run = sandbox.state.start_run(keeper_asset, NEVER_ENDING)
    done_runs = []
    for n in range(12):
        asset_id = sandbox.state.add_asset(title=f"finished {n}")["id"]
        for _ in range(50):  # a sizeable listing per asset, as in a real deployment
            sandbox.state.start_run(asset_id, 1)
        run = sandbox.state.start_run(asset_id, 1)
        sandbox.state.set_run_status(run["id"], "completed")
        done_runs.append((asset_id, run["id"]))
    keeper_listing = f"/api/v2/assets/{keeper_asset}/dag_action_runs"
    held: list[int] = []

    async def scenario() -> list[dict[str, Any]]:
        keeper = MediaPocketDagActionRunTrigger(
            asset_id=keeper_asset, dag_action_run_id=keeper_run["id"], end_time=time.time() + 60,
            poll_interval=poll, hook_params=HOOK_PARAMS,
        )
        keeper_task = asyncio.ensure_future(first_payload(keeper))
        finished = await asyncio.gather(*(
            first_payload(MediaPocketDagActionRunTrigger(
                asset_id=asset_id, dag_action_run_id=run_id, end_time=time.time() + 60, poll_interval=poll,
                hook_params=HOOK_PARAMS,
            ))
            for asset_id, run_id in done_runs
        ))
        # Every finished trigger is gone; the keeper polls on. Let three more of its ticks pass.
        polled = len(calls(sandbox, "GET", keeper_listing))
        await until(lambda: len(calls(sandbox, "GET", keeper_listing)) >= polled + 3)
        held.append(len(_shared._state().fetches))
        await stop(keeper_task)
        return finished

    finished = asyncio.run(scenario())

    assert {p["status"] for p in finished} == {"success"}
    # Only the keeper's current fetch may be held, not the twelve finished assets' last listings.
    assert held[0] <= 1, held


def test_triggers_that_start_together_still_share_their_first_poll(sandbox: MediaPocketSandbox) -> None:
    # Freshness must not cost the sharing: triggers that ask before the fetch is sent all join it.
    asset_id = sandbox.state.add_asset(title="ten waits")["id"]
    interval = mid_tick_interval(asset_id)
    runs = [sandbox.state.start_run(asset_id, 1) for _ in range(10)]
    for run in runs:
        sandbox.state.set_run_status(run["id"], "completed")
    triggers = [
        MediaPocketDagActionRunTrigger(
            asset_id=asset_id, dag_action_run_id=run["id"], end_time=time.time() + 30, poll_interval=interval,
            hook_params=HOOK_PARAMS,
        )
        for run in runs
    ]

    async def scenario() -> list[dict[str, Any]]:
        return list(await asyncio.gather(*(first_payload(t) for t in triggers)))

    payloads = asyncio.run(asyncio.wait_for(scenario(), 10))

    assert [(p["status"], p["dag_action_run_id"]) for p in payloads] == [("success", str(run["id"])) for run in runs]
    assert len(calls(sandbox, "GET", f"/api/v2/assets/{asset_id}/dag_action_runs")) == 1


def test_each_asset_polls_at_its_own_stable_phase_of_the_tick(
    sandbox: MediaPocketSandbox, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Thousands of waits aligned to one wall-clock instant poll in one burst every tick (and stall the
    # loop); each asset's polls must fall at its own offset in the tick, the same for all its waits.
    poll = 0.4
    assets = [sandbox.state.add_asset(title=f"phase {n}")["id"] for n in range(8)]
    waits = [(a, sandbox.state.start_run(a, NEVER_ENDING)["id"]) for a in assets for _ in range(2)]
    polled: dict[str, list[float]] = {a: [] for a in assets}
    original = MediaPocketHook.aget_dag_action_run_listing

    async def recording(self: MediaPocketHook, asset_id: str) -> Any:
        polled[asset_id].append(time.time())
        return await original(self, asset_id)

    monkeypatch.setattr(MediaPocketHook, "aget_dag_action_run_listing", recording)

    async def scenario() -> None:
        tasks = [
            asyncio.ensure_future(first_payload(MediaPocketDagActionRunTrigger(
                asset_id=a, dag_action_run_id=r, end_time=time.time() + 60, poll_interval=poll,
                hook_params=HOOK_PARAMS,
            )))
            for a, r in waits
        ]
        await until(lambda: all(len(times) >= 4 for times in polled.values()))
        for task in tasks:
            await stop(task)

    asyncio.run(scenario())

    offsets = {}
    for asset_id, times in polled.items():
        phase = _shared.poll_phase(asset_id, poll)
        assert phase == _shared.poll_phase(asset_id, poll) and 0 <= phase < poll
        # After the first poll (at once), every poll is at the asset's phase, and one per tick for both waits.
        late = [((t - phase) % poll) for t in times[1:]]
        assert all(lag < 0.15 for lag in late), (asset_id, phase, late)
        assert len(times) <= 1 + math.ceil((times[-1] - times[0]) / poll) + 1, times
        offsets[asset_id] = times[-1] % poll
    # Spread over the tick, not one instant (8 assets: the phases span well over a third of it).
    assert max(offsets.values()) - min(offsets.values()) > poll / 3, offsets


def test_a_finished_fetch_is_forgotten_soon_after_its_answer_even_in_a_long_tick(sandbox: MediaPocketSandbox) -> None:
    # Held for its whole tick (minutes here), every asset's last listing would stay alive at once.
    asset_id = sandbox.state.add_asset(title="long tick")["id"]
    run = sandbox.state.start_run(asset_id, NEVER_ENDING)
    interval = mid_tick_interval(asset_id)
    held: list[int] = []

    async def scenario() -> None:
        trigger = MediaPocketDagActionRunTrigger(
            asset_id=asset_id, dag_action_run_id=run["id"], end_time=time.time() + 60, poll_interval=interval,
            hook_params=HOOK_PARAMS,
        )
        task = asyncio.ensure_future(first_payload(trigger))
        await until(lambda: trigger._watch.last_status is not None)  # its first poll is answered
        held.append(_shared.fetch_count())
        await until(lambda: _shared.fetch_count() == 0, timeout=5)
        held.append(_shared.fetch_count())
        await stop(task)

    asyncio.run(scenario())

    assert held == [1, 0], held
