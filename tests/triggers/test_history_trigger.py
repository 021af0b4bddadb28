"""MediaPocketHistoryEventTrigger against the sandbox over loopback: new events once each, cursors,
start_from, filtering, failures, and the shared poll driven by Airflow 3.3's own SharedStreamManager.

The standalone poll without a cursor store (what Airflow before 3.3 runs) is tested on every version;
the saved cursor (``asset_state_store``) and the shared poll only on 3.3, which has them."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator, Callable
from typing import Any

import pytest
from airflow.triggers.base import TriggerEvent

from airflow_provider_mediapocket.exceptions import MediaPocketValidationError
from airflow_provider_mediapocket.models import HistoryEvent
from airflow_provider_mediapocket.sandbox import MediaPocketSandbox
from airflow_provider_mediapocket.triggers import history
from airflow_provider_mediapocket.triggers.history import MediaPocketHistoryEventTrigger
from tests._compat import capture_logs, requires_airflow

needs_store = requires_airflow("3.3", "asset_state_store (the event trigger's saved cursor)")
needs_shared_streams = requires_airflow("3.3", "shared_stream_key and SharedStreamManager (the shared poll)")

INGEST = "ASSET_FINISHED_INGEST"
TIMEOUT = 10.0


class FakeAssetStore:
    """Stand-in for the triggerer's ``AssetStateStoreAccessors`` of one watched asset (JSON values)."""

    def __init__(self) -> None:
        self.data: dict[str, Any] = {}
        self.writes: list[tuple[str, Any]] = []

    async def aget(self, key: str, default: Any = None) -> Any:
        return self.data.get(key, default)

    async def aset(self, key: str, value: Any) -> None:
        if value is None:
            raise ValueError("Cannot set value as None")
        json.dumps(value)
        self.data[key] = value
        self.writes.append((key, value))


def trigger(store: FakeAssetStore | None = None, **kwargs: Any) -> MediaPocketHistoryEventTrigger:
    options: dict[str, Any] = {"event_types": [INGEST], "poll_interval": 0.05, "error_retry_interval": 0.3,
                               "hook_params": {"retry_backoff": 0.01, "retry_limit": 1}}
    options.update(kwargs)
    made = MediaPocketHistoryEventTrigger(**options)
    made.asset_state_store = store
    return made


def ingest(sb: MediaPocketSandbox, project_id: str | None, title: str) -> str:
    """A new asset (in the project) whose media is processed at once: ADDED, STARTED and FINISHED_INGEST."""
    asset = sb.state.add_asset(title=title, project_id=project_id)
    sb.state.add_media(asset["id"], f"{title}.jpg", processed=True)
    return str(asset["id"])


def cursor_of(made: MediaPocketHistoryEventTrigger, store: FakeAssetStore) -> int | None:
    value = store.data.get(made.cursor_key())
    return None if value is None else int(value)


async def take(events: AsyncIterator[TriggerEvent], count: int) -> list[dict[str, Any]]:
    async def collect() -> list[dict[str, Any]]:
        return [dict((await events.__anext__()).payload) for _ in range(count)]

    return await asyncio.wait_for(collect(), TIMEOUT)


async def until(condition: Callable[[], bool]) -> None:
    async def poll() -> None:
        while not condition():
            await asyncio.sleep(0.01)

    await asyncio.wait_for(poll(), TIMEOUT)


def project(sb: MediaPocketSandbox) -> str:
    return str(sb.state.add_project(title="Ingest")["id"])


# ------------------------------------------------------------------------------------ standalone poll


@needs_store
def test_fires_each_new_wanted_event_once_then_resumes_from_the_saved_cursor(sandbox: MediaPocketSandbox) -> None:
    pid = project(sandbox)
    ingest(sandbox, pid, "before")  # before the first start: "now" leaves it out
    store = FakeAssetStore()

    async def scenario() -> None:
        first = trigger(store, project_id=pid)
        events = first.run()
        start = asyncio.ensure_future(events.__anext__())
        await until(lambda: cursor_of(first, store) is not None)  # "now" is saved before any event
        now = cursor_of(first, store)
        a1, a2 = ingest(sandbox, pid, "one"), ingest(sandbox, pid, "two")
        sandbox.state.add_asset(title="elsewhere")  # not in the project: not in its feed
        got = [dict((await asyncio.wait_for(start, TIMEOUT)).payload)]
        # The cursor passes an event only once it was handed over and the trigger asked for the next.
        assert now is not None and now < (cursor_of(first, store) or 0) < int(got[0]["event_id"])
        got += await take(events, 1)
        assert int(got[0]["event_id"]) <= (cursor_of(first, store) or 0) < int(got[1]["event_id"])
        waiting = asyncio.ensure_future(events.__anext__())  # asks for the next: a2's event is done
        await until(lambda: (cursor_of(first, store) or 0) >= int(got[1]["event_id"]))
        waiting.cancel()
        await asyncio.gather(waiting, return_exceptions=True)
        assert [g["asset_ids"] for g in got] == [[a1], [a2]]
        assert [g["asset_titles"] for g in got] == [["one"], ["two"]]
        assert got[0] == {
            "event_id": got[0]["event_id"], "event_type": INGEST, "created_at": got[0]["created_at"],
            "user_id": "0", "feed": f"projects/{pid}", "project_id": pid, "asset_ids": [a1],
            "asset_titles": ["one"],
        }
        json.dumps(got)

        # A new trigger instance (a restarted triggerer) with the same store resumes after the last one.
        a3 = ingest(sandbox, pid, "three")
        second = trigger(store, project_id=pid)
        events = second.run()
        again = await take(events, 1)
        await events.aclose()
        assert [g["asset_ids"] for g in again] == [[a3]]

    asyncio.run(scenario())


def test_start_from_beginning_and_event_type_filter(sandbox: MediaPocketSandbox) -> None:
    pid = project(sandbox)
    asset = ingest(sandbox, pid, "old")

    async def scenario() -> None:
        made = trigger(project_id=pid, start_from="beginning",
                       event_types="asset_added, ASSET_FINISHED_INGEST")
        events = made.run()
        got = await take(events, 2)
        await events.aclose()
        assert [(g["event_type"], g["asset_ids"]) for g in got] == [("ASSET_ADDED", [asset]), (INGEST, [asset])]

    asyncio.run(scenario())
    started = [e for e in sandbox.state.events("Project", pid) if e["event_type"] == "ASSET_STARTED_INGEST"]
    assert started  # it was in the feed, and was not fired


def test_asset_feed(sandbox: MediaPocketSandbox) -> None:
    asset = sandbox.state.add_asset(title="solo")["id"]

    async def scenario() -> None:
        made = trigger(asset_id=asset, start_from="beginning")
        events = made.run()
        sandbox.state.add_media(asset, "solo.mp4", processed=True)
        got = await take(events, 1)
        await events.aclose()
        assert (got[0]["feed"], got[0]["asset_ids"], got[0]["project_id"]) == (f"assets/{asset}", [asset], None)

    asyncio.run(scenario())


def test_transient_failures_ride_out_and_permanent_ones_are_logged_and_retried_slowly(
    sandbox: MediaPocketSandbox,
) -> None:
    pid = "later-project"  # not there yet: 404, a permanent failure until it is created

    async def scenario() -> list[dict[str, Any]]:
        made = trigger(project_id=pid, start_from="beginning", error_retry_interval=0.4)
        events = made.run()
        pending = asyncio.ensure_future(events.__anext__())
        history = f"/api/v2/projects/{pid}/history"
        await until(lambda: len([r for r in sandbox.requests if r.path.startswith(history)]) >= 2)
        sandbox.state.add_project(id=pid, title="Later")
        sandbox.inject("503", "503", "503", path_prefix=history)  # more than the hook retries (1)
        asset = ingest(sandbox, pid, "after the outage")
        payload = dict((await asyncio.wait_for(pending, TIMEOUT)).payload)
        await events.aclose()
        assert payload["asset_ids"] == [asset]
        return [dict(r.__dict__) for r in sandbox.requests if r.path.startswith(history)]

    with capture_logs() as logs:
        requests = asyncio.run(scenario())
    errors = [e for e in logs if e["log_level"] == "error"]
    assert errors and all("project not found" in str(e["event"]) and "Retrying every" in str(e["event"]) for e in errors)
    assert any(e["log_level"] == "warning" and "Transient" in str(e["event"]) for e in logs)
    assert [r["status"] for r in requests].count(404) >= 2
    assert sandbox.api_key not in json.dumps(logs, default=str)


IN_MEMORY = "kept in memory only"


@pytest.mark.parametrize(("start_from", "cost"), [
    ("now", "history events of the feed from while it was not running are never fired"),
    ("beginning", "every wanted history event of the feed fires again"),
], ids=["now", "beginning"])
def test_without_asset_state_store_it_warns_once_that_the_cursor_is_in_memory_only(
    sandbox: MediaPocketSandbox, start_from: str, cost: str
) -> None:
    """Airflow before 3.3 gives the trigger no ``asset_state_store`` (``None`` here, as a trigger run on
    3.3 without a watched asset): one warning at start, even when the first read fails and is retried."""
    pid = project(sandbox)
    feed = f"/api/v2/projects/{pid}/history"
    sandbox.inject("503", "503", path_prefix=feed)  # the first read fails (the hook retries once)

    async def scenario() -> list[int]:
        made = trigger(project_id=pid, start_from=start_from)
        events = made.run()
        pending = asyncio.ensure_future(events.__anext__())
        await until(lambda: made._cursor is not None or start_from == "beginning")
        asset = ingest(sandbox, pid, "one")
        got = dict((await asyncio.wait_for(pending, TIMEOUT)).payload)
        waiting = asyncio.ensure_future(events.__anext__())  # the polls go on: no warning for them
        polled = len(sandbox.requests)
        await until(lambda: len([r for r in sandbox.requests[polled:] if r.path.startswith(feed)]) >= 2)
        waiting.cancel()
        await asyncio.gather(waiting, return_exceptions=True)
        await events.aclose()
        assert got["asset_ids"] == [asset]
        return [r.status for r in sandbox.requests if r.path.startswith(feed)]

    with capture_logs() as logs:
        statuses = asyncio.run(scenario())
    assert statuses[:2] == [503, 503] and statuses[2:].count(200) >= 3  # a failed start, then reads
    warned = [e for e in logs if IN_MEMORY in str(e["event"])]
    assert [e["log_level"] for e in warned] == ["warning"]
    assert str(warned[0]["event"]) == (
        f"The history cursor of projects/{pid} is {IN_MEMORY}: this Airflow gives the trigger no "
        f"asset_state_store (Airflow 3.3 does). Whenever the trigger starts again (a triggerer restart, or "
        f"another triggerer taking it over) it begins again from start_from={start_from!r}: {cost}."
    )


@needs_store
def test_with_asset_state_store_no_in_memory_warning(sandbox: MediaPocketSandbox) -> None:
    pid = project(sandbox)
    store = FakeAssetStore()

    async def scenario() -> None:
        made = trigger(store, project_id=pid)
        events = made.run()
        pending = asyncio.ensure_future(events.__anext__())
        await until(lambda: made.cursor_key() in store.data)
        ingest(sandbox, pid, "one")
        await asyncio.wait_for(pending, TIMEOUT)
        await events.aclose()

    with capture_logs() as logs:
        asyncio.run(scenario())
    assert any("Following" in str(e["event"]) for e in logs)  # the start was logged, and captured
    assert not [e for e in logs if IN_MEMORY in str(e["event"])]


def test_validation_before_any_request() -> None:
    with pytest.raises(MediaPocketValidationError, match="'project_id' and 'asset_id'"):
        MediaPocketHistoryEventTrigger(event_types=[INGEST])
    with pytest.raises(MediaPocketValidationError, match="'project_id' and 'asset_id'"):
        MediaPocketHistoryEventTrigger(event_types=[INGEST], project_id="p", asset_id="a")
    with pytest.raises(MediaPocketValidationError, match="'event_types'"):
        MediaPocketHistoryEventTrigger(event_types=[], project_id="p")
    with pytest.raises(MediaPocketValidationError, match="'start_from'"):
        MediaPocketHistoryEventTrigger(event_types=[INGEST], project_id="p", start_from="yesterday")  # type: ignore[arg-type]
    with pytest.raises(MediaPocketValidationError, match="'poll_interval'"):
        MediaPocketHistoryEventTrigger(event_types=[INGEST], project_id="p", poll_interval=0)


def test_serialize_round_trip_has_no_key(sandbox: MediaPocketSandbox) -> None:
    made = trigger(project_id="p", event_types=["asset_added"])
    path, kwargs = made.serialize()
    assert path == "airflow_provider_mediapocket.triggers.history.MediaPocketHistoryEventTrigger"
    assert sandbox.api_key not in json.dumps(kwargs)
    assert MediaPocketHistoryEventTrigger(**kwargs).serialize() == (path, kwargs)


# ------------------------------------------------------------------------------------ shared poll (3.3)


class Runner:
    """What the triggerer's run_trigger does for an event trigger with a shared stream key, in ack mode:
    subscribe, filter, bind each event to the raw one, and confirm persistence when told to."""

    def __init__(self) -> None:
        from airflow.triggers.shared_stream import SharedStreamManager  # Airflow 3.3+

        self.manager = SharedStreamManager(ack_timeout=30)
        self.fired: dict[int, list[dict[str, Any]]] = {}
        self.unconfirmed: list[int] = []
        self.tasks: dict[int, asyncio.Task[None]] = {}

    def start(self, trigger_id: int, made: MediaPocketHistoryEventTrigger) -> None:
        key = made.shared_stream_key()
        assert key is not None
        self.fired[trigger_id] = []

        async def consume() -> None:
            try:
                stream = self.manager.subscribe(trigger_id=trigger_id, trigger=made, key=key)
                async for event in made.filter_shared_stream(stream):
                    seq = self.manager.bind_pending_event(trigger_id=trigger_id, key=key)
                    assert seq is not None  # ack mode: the event is bound to its raw event
                    self.fired[trigger_id].append(dict(event.payload))
                    self.unconfirmed.append(seq)
            finally:
                await self.manager.unsubscribe(trigger_id, key)

        self.tasks[trigger_id] = asyncio.ensure_future(consume())

    def persist(self) -> None:
        """The supervisor stored the events so far: confirm them (Airflow then advances the producer)."""
        seqs, self.unconfirmed = self.unconfirmed, []
        self.manager.confirm_persisted(seqs)

    async def stop(self, trigger_id: int) -> None:
        self.tasks[trigger_id].cancel()
        await asyncio.gather(self.tasks[trigger_id], return_exceptions=True)

    def ids(self, trigger_id: int) -> list[list[str]]:
        return [f["asset_ids"] for f in self.fired[trigger_id]]


@needs_shared_streams
def test_shared_poll_one_poll_each_watcher_its_events_cursor_after_persistence(
    sandbox: MediaPocketSandbox, monkeypatch: pytest.MonkeyPatch
) -> None:
    pid = project(sandbox)
    ingest_store, added_store = FakeAssetStore(), FakeAssetStore()

    async def scenario() -> None:
        runner = Runner()
        on_ingest = trigger(ingest_store, project_id=pid)
        on_added = trigger(added_store, project_id=pid, event_types=["ASSET_ADDED"])
        assert on_ingest.shared_stream_key() == on_added.shared_stream_key()
        runner.start(1, on_ingest)
        runner.start(2, on_added)
        await until(lambda: on_ingest.cursor_key() in ingest_store.data and on_added.cursor_key() in added_store.data)
        now = cursor_of(on_ingest, ingest_store)
        a1, a2 = ingest(sandbox, pid, "one"), ingest(sandbox, pid, "two")
        await until(lambda: len(runner.fired[1]) == 2 and len(runner.fired[2]) == 2)
        assert runner.ids(1) == runner.ids(2) == [[a1], [a2]]
        # Not stored yet in the metadata database: no cursor moves.
        assert cursor_of(on_ingest, ingest_store) == now
        runner.persist()
        newest = max(e["id"] for e in sandbox.state.events("Project", pid))
        # The last event (a2's ingest) is resolved once the watchers move on; they wait for the next.
        await until(lambda: cursor_of(on_ingest, ingest_store) is not None
                    and cursor_of(on_ingest, ingest_store) >= newest - 1)
        await runner.stop(1)
        await runner.stop(2)
        assert runner.fired[1][0]["event_type"] == INGEST and runner.fired[2][0]["event_type"] == "ASSET_ADDED"

    polls: list[Any] = []
    real_open = history._HistoryProducer.open_stream

    def counted(self: Any) -> Any:
        polls.append(self)
        return real_open(self)

    monkeypatch.setattr(history._HistoryProducer, "open_stream", counted)
    asyncio.run(scenario())
    assert len(polls) == 1  # one poll fed both watchers


@needs_shared_streams
def test_shared_poll_unpersisted_events_fire_again_after_a_restart_persisted_ones_do_not(
    sandbox: MediaPocketSandbox,
) -> None:
    pid = project(sandbox)
    store = FakeAssetStore()

    async def scenario() -> None:
        runner = Runner()
        made = trigger(store, project_id=pid)
        runner.start(1, made)
        await until(lambda: made.cursor_key() in store.data)
        a1 = ingest(sandbox, pid, "one")
        await until(lambda: len(runner.fired[1]) == 1)
        sandbox.state.add_asset(title="nudge", project_id=pid)  # the watcher moves past a1's event
        await until(lambda: made._cursor is not None and made._cursor > int(runner.fired[1][0]["event_id"]))
        runner.persist()
        await until(lambda: (cursor_of(made, store) or 0) >= int(runner.fired[1][0]["event_id"]))
        a2 = ingest(sandbox, pid, "two")
        await until(lambda: len(runner.fired[1]) == 2)
        await runner.stop(1)  # the triggerer dies before a2's event was stored

        restarted = Runner()
        again = trigger(store, project_id=pid)
        restarted.start(1, again)
        await until(lambda: len(restarted.fired[1]) == 1)
        await restarted.stop(1)
        assert runner.ids(1) == [[a1], [a2]]
        assert restarted.ids(1) == [[a2]]  # a2 again (never stored), a1 not again

    asyncio.run(scenario())


@needs_shared_streams
def test_shared_poll_late_watcher_behind_the_stream_catches_up_without_repeats(sandbox: MediaPocketSandbox) -> None:
    pid = project(sandbox)
    early_store, late_store = FakeAssetStore(), FakeAssetStore()

    async def scenario() -> None:
        runner = Runner()
        early = trigger(early_store, project_id=pid)
        late = trigger(late_store, project_id=pid, start_from="beginning")
        runner.start(1, early)
        await until(lambda: early.cursor_key() in early_store.data)
        a1 = ingest(sandbox, pid, "one")
        await until(lambda: len(runner.fired[1]) == 1)
        runner.start(2, late)  # joins a running poll, behind it: it must still see a1 (and "old" events)
        await until(lambda: len(runner.fired[2]) == 1)
        a2 = ingest(sandbox, pid, "two")
        await until(lambda: len(runner.fired[1]) == 2 and len(runner.fired[2]) == 2)
        await runner.stop(1)
        await runner.stop(2)
        assert runner.ids(1) == [[a1], [a2]]
        assert runner.ids(2) == [[a1], [a2]]

    asyncio.run(scenario())


@needs_shared_streams
def test_shared_filter_skips_a_gap_asks_for_a_reread_and_takes_the_events_in_feed_order() -> None:
    """A watcher whose cursor is behind the first event it is sent (it joined a running poll late) must
    not take that event: it asks the poll to read again from its cursor and takes the events in order."""
    store = FakeAssetStore()
    made = trigger(store, project_id="p")
    store.data[made.cursor_key()] = "5"
    key = made.shared_stream_key()

    def item(event_id: int, after: int | None, event_type: str = INGEST) -> history.FeedEvent:
        event = HistoryEvent.model_validate({"id": event_id, "event_type": event_type, "event_targets": []})
        return history.FeedEvent(event, event_id, after)

    sent = [item(9, 8), item(6, 5), item(8, 6, "ASSET_ADDED"), item(9, 8), item(9, 8)]

    async def stream() -> AsyncIterator[Any]:
        for one in sent:
            yield one

    async def scenario() -> tuple[list[str], list[int | None]]:
        fired = [str(e.payload["event_id"]) async for e in made.filter_shared_stream(stream())]
        return fired, history._feed(key).rewinds

    fired, rewinds = asyncio.run(scenario())
    assert rewinds == [5]  # asked once to read again after 5 (at the start; the gap needs no second ask)
    assert fired == ["6", "9"]  # not 9 first (events 6 and 8 were missed), and 9 once
    assert [w for w in sent if made in w.owed] == [sent[1], sent[2], sent[3]]  # cursor writes owed in order


@needs_store
def test_one_trigger_for_several_watched_assets_keeps_the_cursor_in_each() -> None:
    """Airflow runs one trigger for identical watchers of several assets: every asset keeps the cursor,
    and the furthest one wins (an asset added later has none yet)."""
    first, added_later = FakeAssetStore(), FakeAssetStore()
    accessors = type("Accessors", (), {})()
    accessors._by_name = {"one": first, "two": added_later}  # what AssetStateStoreAccessors holds
    made = trigger(None, project_id="p")
    made.asset_state_store = accessors
    first.data[made.cursor_key()] = "5"

    async def scenario() -> int | None:
        loaded = await made._load_cursor()
        await made.save_cursor(9)
        await made.save_cursor(7)  # never backwards
        return loaded

    assert asyncio.run(scenario()) == 5
    assert first.data[made.cursor_key()] == added_later.data[made.cursor_key()] == "9"
