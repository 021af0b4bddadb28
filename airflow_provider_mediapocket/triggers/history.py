"""Media Pocket history as an event source for Airflow's event-driven scheduling (``AssetWatcher``).

:class:`MediaPocketHistoryEventTrigger` follows the history feed of a project or of an asset
(``GET /projects/:id/history/:cursor``, newest first, ``next_cursor`` paging back in time) and fires one
:class:`TriggerEvent` per new history event whose ``event_type`` it listens for.

How "each new event once" is kept (Airflow 3.3):

- The cursor is the id of the last history event this trigger has dealt with. It lives in the watched
  asset's ``asset_state_store`` (key :meth:`MediaPocketHistoryEventTrigger.cursor_key`), so a restarted
  triggerer resumes after it. On first start the cursor is the newest event of the feed
  (``start_from="now"``, saved at once) or nothing (``"beginning"``).
- On the triggerer the watchers of one feed (same connection, feed, poll interval) share one poll
  through Airflow 3.3's shared streams in *ack mode*: the poll (:class:`_HistoryProducer`) broadcasts each
  history event to every watcher, each watcher turns it into its own trigger event or skips it, and the
  cursors are written only from :meth:`_HistoryProducer.advance`, which Airflow calls once every watcher
  has moved past the event **and the trigger events derived from it are stored in the metadata
  database**. A triggerer killed at any point therefore resumes at or before the first event whose
  asset event was not stored: nothing is lost; an event stored just before the kill, whose cursor write
  did not happen yet, is fired again after the restart (at-least-once, duplicates only around a crash).
- Each history event carries the id of the event before it in the feed (``after``), so a watcher that
  joins a running poll later than its cursor (a restart where watchers come back one by one, or
  ``start_from="beginning"`` beside a running watcher) sees the gap and asks the poll to read the feed
  again from its cursor; events it has already dealt with are skipped by id.

Without shared streams (Airflow before 3.3, or :meth:`run` called directly) the trigger polls alone
and writes the cursor right after each event is yielded; before 3.3 there is no ``asset_state_store``
and the cursor lives in memory only: a triggerer restart starts again from ``start_from``, so events
during the restart are missed (``"now"``) or the whole feed fires again (``"beginning"``); the trigger
logs a warning saying so when it starts.

Failures never end the trigger (an event trigger that dies stops its DAG from being scheduled):
transient ones (429, 5xx, timeouts, resets) are logged and polled again on the next tick; permanent ones
(401/403/404, refused, DNS, TLS, a body that is not the API's, an unexpected error) are logged as errors
naming the cause and retried every ``error_retry_interval`` seconds.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import math
import time
import weakref
from collections.abc import AsyncIterator, Hashable, Iterable, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Literal

from airflow.triggers.base import BaseEventTrigger, TriggerEvent  # type: ignore[attr-defined,unused-ignore]

from airflow_provider_mediapocket import DEFAULT_CONN_ID
from airflow_provider_mediapocket._lazy import lazy_module
from airflow_provider_mediapocket._validation import check_id
from airflow_provider_mediapocket.exceptions import TRANSIENT_ERRORS, MediaPocketValidationError
from airflow_provider_mediapocket.waiting import normalise_statuses

if TYPE_CHECKING:
    from airflow_provider_mediapocket.hooks import _api
    from airflow_provider_mediapocket.hooks._api import Kind
    from airflow_provider_mediapocket.hooks.mediapocket import MediaPocketHook
    from airflow_provider_mediapocket.models import HistoryEvent
    from airflow_provider_mediapocket.triggers import _shared
else:
    # A DAG file builds this trigger at every parse (in its AssetWatcher): the hook, its HTTP client and
    # the models are imported only when the trigger runs.
    _shared = lazy_module("airflow_provider_mediapocket.triggers._shared")
    _api = lazy_module("airflow_provider_mediapocket.hooks._api")

try:  # Airflow 3.3+: shared streams with persistence-gated advances
    from airflow.triggers.shared_stream import (  # type: ignore[import-not-found,unused-ignore]
        AdvanceItem,
        SharedStreamProducer,
    )

    HAS_SHARED_STREAMS = True
except ImportError:  # pragma: no cover - exercised on Airflow < 3.3 only
    HAS_SHARED_STREAMS = False

StartFrom = Literal["now", "beginning"]
START_FROM_CHOICES = ("now", "beginning")
MIN_INTERVAL = 0.01
#: How often a permanent failure (bad key, feed not found, ...) is retried by default.
DEFAULT_ERROR_RETRY_INTERVAL = 300.0
#: What a cursor kept in memory costs when the trigger starts again from ``start_from``.
IN_MEMORY_RESTART_COST: dict[str, str] = {
    "now": "history events of the feed from while it was not running are never fired",
    "beginning": "every wanted history event of the feed fires again",
}


def _event(payload: dict[str, Any]) -> TriggerEvent:
    return TriggerEvent(payload)  # type: ignore[no-untyped-call,unused-ignore]


def _event_id(event: HistoryEvent) -> int:
    try:
        return int(event.id)
    except ValueError:
        raise MediaPocketValidationError(
            f"history event id {event.id!r} is not a number: the feed cannot be followed by id"
        ) from None


def _normalise_event_types(event_types: Iterable[str] | str) -> list[str]:
    """Upper-cased, sorted event types; the checks (non-empty strings, at least one) are the status lists'."""
    return sorted({value.upper() for value in normalise_statuses("event_types", event_types, frozenset())})


def _positive(name: str, value: Any) -> float:
    try:
        number = float(value)
    except (TypeError, ValueError):
        raise MediaPocketValidationError(f"Invalid parameter '{name}': must be a number (got {value!r})") from None
    if not number > 0 or math.isinf(number):
        raise MediaPocketValidationError(f"Invalid parameter '{name}': must be over 0 seconds (got {value!r})")
    return number


def _page_reader(hook: MediaPocketHook, kind: Kind[Any]) -> Any:
    """The hook method that reads one page of a project's or an asset's history feed."""
    return hook.aget_project_history if kind is _api.PROJECTS else hook.aget_asset_history


async def fetch_after(hook: MediaPocketHook, kind: Kind[Any], item_id: str, after: int | None) -> list[HistoryEvent]:
    """The feed's events newer than event id ``after`` (all of them for ``None``), oldest first.

    The feed is newest first and pages back in time, so this reads from the newest page down to the
    first event at or below ``after``.
    """
    get_page = _page_reader(hook, kind)
    newer: list[HistoryEvent] = []
    cursor: str | int | None = "0"
    while cursor is not None:
        page = await get_page(item_id, cursor)
        for event in page.results:
            if after is not None and _event_id(event) <= after:
                cursor = None  # older pages hold only older events
                break
            newer.append(event)
        else:
            cursor = page.next_cursor
    newer.reverse()
    return newer


async def newest_id(hook: MediaPocketHook, kind: Kind[Any], item_id: str) -> int:
    """The id of the feed's newest event (0 for an empty feed): where ``start_from="now"`` begins."""
    get_page = _page_reader(hook, kind)
    page = await get_page(item_id)
    return max((_event_id(event) for event in page.results), default=0)


def failure_delay(log: Any, exc: Exception, what: str, interval: float, error_interval: float) -> float:
    """Log a failed poll by its kind and return how long to wait before the next one."""
    if isinstance(exc, TRANSIENT_ERRORS):
        log.warning("Transient Media Pocket error reading %s, polling again: %s", what, exc)
        return interval
    log.error(
        "Media Pocket error reading %s (%s: %s); it will not clear by itself: fix the connection, key or "
        "feed. Retrying every %.0f s.", what, type(exc).__name__, exc, error_interval,
    )
    return error_interval


def next_tick(interval: float) -> float:
    """The next wall-clock multiple of ``interval``: pollers of one pace read together."""
    return (math.floor(time.time() / interval) + 1) * interval


def _store_targets(store: Any) -> list[Any]:
    """The accessors of every asset the trigger feeds (one trigger can back several identical watchers).

    ``AssetStateStoreAccessors`` reads and writes directly only when it holds exactly one asset and
    exposes no list of its assets; its per-asset maps are read here so that every asset keeps the cursor.
    """
    accessors = [*getattr(store, "_by_name", {}).values(), *getattr(store, "_by_uri", {}).values()]
    return accessors if len(accessors) > 1 else [store]


def _parse_cursor(value: Any) -> int | None:
    try:
        return None if value is None else int(value)
    except (TypeError, ValueError):
        return None


@dataclass(eq=False)
class FeedEvent:
    """One history event as the shared poll broadcasts it (the same object reaches every watcher).

    ``after`` is the id of the event before it in the feed as this read saw it (or where the read
    started): a watcher whose cursor is below ``after`` has missed events. ``owed`` collects the cursor
    writes of the watchers that dealt with it; the poll makes them once Airflow has stored the trigger
    events derived from it.
    """

    event: HistoryEvent
    id: int
    after: int | None
    owed: list[MediaPocketHistoryEventTrigger] = field(default_factory=list)


@dataclass
class _Feed:
    """What the watchers of one shared poll ask of it: to read the feed again from a cursor."""

    rewinds: list[int | None] = field(default_factory=list)
    wake: asyncio.Event = field(default_factory=asyncio.Event)

    def rewind(self, cursor: int | None) -> None:
        self.rewinds.append(cursor)
        self.wake.set()


_FEEDS: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, dict[Hashable, _Feed]] = weakref.WeakKeyDictionary()


def _feed(key: Hashable) -> _Feed:
    feeds = _FEEDS.setdefault(asyncio.get_running_loop(), {})
    if key not in feeds:
        feeds[key] = _Feed()
    return feeds[key]


class MediaPocketHistoryEventTrigger(BaseEventTrigger):
    """Fire one event per new Media Pocket history event of a project or an asset, for an ``AssetWatcher``.

    Give exactly one of ``project_id`` (the project's history: what happens to it and to the assets in it)
    and ``asset_id`` (one asset's history). Each event's payload is plain JSON::

        {"event_id": "42", "event_type": "ASSET_FINISHED_INGEST", "created_at": "2026-...Z",
         "user_id": "0", "feed": "projects/<id>", "project_id": "<id>" | None,
         "asset_ids": ["<id>", ...], "asset_titles": ["...", ...]}

    In a DAG scheduled on the watched asset it arrives as
    ``triggering_asset_events[asset][i].extra["payload"]``. See the module docstring for the delivery
    guarantees (each new event at least once; exactly once unless the triggerer dies between storing an
    event and saving the cursor).

    :param event_types: the history event types to fire on, e.g. ``["ASSET_FINISHED_INGEST"]``
        (case-insensitive; a comma-separated string works too).
    :param project_id: the project whose history to follow.
    :param asset_id: the asset whose history to follow.
    :param start_from: where a watcher with no saved cursor begins: ``"now"`` (only events after its first
        start) or ``"beginning"`` (every event of the feed).
    :param poll_interval: seconds between reads of the feed.
    :param error_retry_interval: seconds between retries after a permanent failure (bad key, feed not
        found, ...); transient failures are retried at ``poll_interval``.
    :param mediapocket_conn_id: the Media Pocket connection.
    :param hook_params: hook settings (``timeout``, ``retry_limit``, ``retry_backoff``, ``verify_ssl``);
        never the key.
    """

    def __init__(
        self,
        *,
        event_types: list[str] | str,
        project_id: str | None = None,
        asset_id: str | None = None,
        start_from: StartFrom = "now",
        poll_interval: float = 30.0,
        error_retry_interval: float = DEFAULT_ERROR_RETRY_INTERVAL,
        mediapocket_conn_id: str = DEFAULT_CONN_ID,
        hook_params: dict[str, Any] | None = None,
    ) -> None:
        super().__init__()  # type: ignore[no-untyped-call,unused-ignore]
        if (project_id is None) == (asset_id is None):
            raise MediaPocketValidationError(
                "Invalid parameters 'project_id' and 'asset_id': give exactly one of them (the feed to follow)"
            )
        self.project_id = None if project_id is None else check_id("project_id", project_id)
        self.asset_id = None if asset_id is None else check_id("asset_id", asset_id)
        self.event_types = _normalise_event_types(event_types)
        if start_from not in START_FROM_CHOICES:
            raise MediaPocketValidationError(
                f"Invalid parameter 'start_from': must be one of {list(START_FROM_CHOICES)} (got {start_from!r})"
            )
        self.start_from: StartFrom = start_from
        self.poll_interval = _positive("poll_interval", poll_interval)
        self.error_retry_interval = _positive("error_retry_interval", error_retry_interval)
        self.mediapocket_conn_id = mediapocket_conn_id
        self.hook_params = dict(hook_params or {})
        self._cursor: int | None = None
        self._saved: int | None = None
        self._asked: int | Literal["never"] | None = "never"

    @property
    def kind(self) -> Kind[Any]:
        """What the followed feed belongs to: ``PROJECTS`` or ``ASSETS``."""
        return _api.PROJECTS if self.project_id is not None else _api.ASSETS

    @property
    def item_id(self) -> str:
        return self.project_id if self.project_id is not None else str(self.asset_id)

    @property
    def feed(self) -> str:
        """``projects/<id>`` or ``assets/<id>``: the feed this trigger follows."""
        return f"{self.kind.segment}/{self.item_id}"

    def serialize(self) -> tuple[str, dict[str, Any]]:
        return f"{type(self).__module__}.{type(self).__qualname__}", {
            "event_types": self.event_types,
            "project_id": self.project_id,
            "asset_id": self.asset_id,
            "start_from": self.start_from,
            "poll_interval": self.poll_interval,
            "error_retry_interval": self.error_retry_interval,
            "mediapocket_conn_id": self.mediapocket_conn_id,
            "hook_params": self.hook_params,
        }

    def cursor_key(self) -> str:
        """The ``asset_state_store`` key of this trigger's cursor: one per connection, feed and event types,
        so that two watchers of one asset (different feeds or types) keep separate cursors."""
        return f"mediapocket_history_cursor:{self.mediapocket_conn_id}:{self.feed}:{','.join(self.event_types)}"

    # ------------------------------------------------------------------ cursor

    def _store(self) -> Any:
        return getattr(self, "asset_state_store", None)

    async def _load_cursor(self) -> int | None:
        store = self._store()
        if store is None:
            return self._cursor
        values = [_parse_cursor(await target.aget(self.cursor_key())) for target in _store_targets(store)]
        # Every asset of this trigger got every event it fired: the furthest cursor is the true one (an
        # asset added to the watcher later has none yet).
        known = [value for value in values if value is not None]
        return max(known) if known else None

    async def save_cursor(self, cursor: int) -> None:
        """Save ``cursor`` in the asset state store (when there is one); a failed write is logged, not raised.

        The trigger's own position (``_cursor``) is not touched: under a shared poll it is already past
        the events whose cursor Airflow lets us save now.
        """
        store = self._store()
        if store is None or (self._saved is not None and cursor <= self._saved):
            return  # a cursor never moves back (a group stopping late may still report older events)
        self._saved = cursor
        try:
            for target in _store_targets(store):
                await target.aset(self.cursor_key(), str(cursor))
        except Exception as exc:  # the poll must go on; the cost is a repeat after a restart
            self.log.warning(
                "Could not save the history cursor %s of %s (events after the saved one may fire again "
                "after a triggerer restart): %s", cursor, self.feed, exc,
            )

    async def _start_cursor(self, hook: MediaPocketHook) -> int | None:
        """The saved cursor, else where ``start_from`` says (``"now"`` is saved at once, so that a
        restart before the first event does not move "now" forward past events)."""
        saved = await self._load_cursor()
        if saved is not None:
            self.log.info("Following %s after history event %s (saved cursor)", self.feed, saved)
            return saved
        if self.start_from == "beginning":
            self.log.info("Following %s from its first history event", self.feed)
            return None
        newest = await newest_id(hook, self.kind, self.item_id)
        self._cursor = newest
        await self.save_cursor(newest)
        self.log.info("Following %s from now: events after history event %s", self.feed, newest)
        return newest

    async def _first_cursor(self) -> int | None:
        """:meth:`_start_cursor`, retried until it succeeds (a failure must not end the trigger)."""
        if self._store() is None:
            # Said once per start, not per poll: the user must know that a restart repeats or loses events.
            self.log.warning(
                "The history cursor of %s is kept in memory only: this Airflow gives the trigger no "
                "asset_state_store (Airflow 3.3 does). Whenever the trigger starts again (a triggerer restart, "
                "or another triggerer taking it over) it begins again from start_from=%r: %s.",
                self.feed, self.start_from, IN_MEMORY_RESTART_COST[self.start_from],
            )
        key, hook = _shared.acquire(self.mediapocket_conn_id, self.hook_params, refresh_every=self.poll_interval)
        try:
            while True:
                try:
                    return await self._start_cursor(hook)
                except Exception as exc:
                    delay = failure_delay(self.log, exc, self.feed, self.poll_interval, self.error_retry_interval)
                await asyncio.sleep(delay)
        finally:
            await _shared.release(key)

    # ------------------------------------------------------------------ events

    def payload(self, event: HistoryEvent) -> dict[str, Any]:
        """The trigger event's JSON payload for one history event."""
        assets = [t.target for t in event.event_targets if t.target_type == "Asset"]
        projects = [t.target for t in event.event_targets if t.target_type == "Project"]

        def ref(target: dict[str, Any]) -> str:
            return str(target.get("elasticsearch_id") or target.get("id"))

        project_id = self.project_id if self.project_id is not None else (ref(projects[0]) if projects else None)
        return {
            "event_id": event.id,
            "event_type": event.event_type,
            "created_at": event.created_at,
            "user_id": event.user_id,
            "feed": self.feed,
            "project_id": project_id,
            "asset_ids": [ref(target) for target in assets],
            "asset_titles": [target.get("title") for target in assets],
        }

    def wanted(self, event: HistoryEvent) -> bool:
        return (event.event_type or "").upper() in self.event_types

    # ------------------------------------------------------------------ standalone poll

    async def run(self) -> AsyncIterator[TriggerEvent]:
        """Poll the feed alone (Airflow before 3.3, or called directly): yield each wanted new event, then
        save the cursor past it. Never returns."""
        cursor = await self._first_cursor()
        interval = max(self.poll_interval, MIN_INTERVAL)
        key, hook = _shared.acquire(self.mediapocket_conn_id, self.hook_params, refresh_every=interval)
        try:
            while True:
                wake_at = next_tick(interval)
                try:
                    events = await fetch_after(hook, self.kind, self.item_id, cursor)
                except Exception as exc:
                    wake_at = time.time() + failure_delay(self.log, exc, self.feed, interval, self.error_retry_interval)
                    events = []
                self.log.debug("Read %s: %d new history events after %s", self.feed, len(events), cursor)
                for event in events:
                    if self.wanted(event):
                        yield _event(self.payload(event))
                    cursor = self._cursor = _event_id(event)
                    await self.save_cursor(cursor)
                await asyncio.sleep(max(wake_at - time.time(), 0.0))
        finally:
            await _shared.release(key)

    # ------------------------------------------------------------------ shared poll (Airflow 3.3)

    def shared_stream_key(self) -> Hashable | None:
        """Watchers of the same feed, connection and poll pace share one poll (None before Airflow 3.3)."""
        if not HAS_SHARED_STREAMS:
            return None
        return (
            "mediapocket-history", self.mediapocket_conn_id, json.dumps(self.hook_params, sort_keys=True, default=str),
            self.kind.segment, self.item_id, self.poll_interval, self.error_retry_interval,
        )

    @classmethod
    def create_shared_stream_producer(cls, kwargs: dict[str, Any]) -> Any:
        """The shared poll of one feed (ack mode: cursors advance only after Airflow stored the events)."""
        return _HistoryProducer(cls(**kwargs))

    async def filter_shared_stream(self, shared_stream: AsyncIterator[Any]) -> AsyncIterator[TriggerEvent]:
        """This watcher's events from the shared poll: the wanted ones after its own cursor, in feed order."""
        key = self.shared_stream_key()
        self._cursor = await self._first_cursor()
        self._ask(key)
        async for raw in shared_stream:
            item: FeedEvent = raw
            if self._cursor is not None and item.id <= self._cursor:
                continue  # dealt with already (a read again for another watcher)
            if item.after is not None and (self._cursor is None or item.after > self._cursor):
                # Events between our cursor and this one were broadcast before we joined: read again.
                self._ask(key)
                continue
            # No await from here to the yield: a cancellation cannot land between taking the event
            # and handing it over, so a cursor write is owed only for events really handed over.
            self._cursor = item.id
            item.owed.append(self)
            if self.wanted(item.event):
                yield _event(self.payload(item.event))

    def _ask(self, key: Hashable) -> None:
        if self._asked != self._cursor:
            self._asked = self._cursor
            _feed(key).rewind(self._cursor)


if HAS_SHARED_STREAMS:

    class _HistoryProducer(SharedStreamProducer):  # type: ignore[misc,unused-ignore]
        """The one poll of a feed shared by its watchers; writes their cursors when Airflow says so."""

        def __init__(self, trigger: MediaPocketHistoryEventTrigger) -> None:
            self.trigger = trigger
            self.log = trigger.log

        async def open_stream(self) -> AsyncIterator[tuple[Any, Any]]:
            trigger = self.trigger
            feed = _feed(trigger.shared_stream_key())
            interval = max(trigger.poll_interval, MIN_INTERVAL)
            key, hook = _shared.acquire(trigger.mediapocket_conn_id, trigger.hook_params, refresh_every=interval)
            position: int | None = None
            started = False
            try:
                while True:
                    if not started and not feed.rewinds:
                        # No watcher has told us its cursor yet: nothing to read from.
                        feed.wake.clear()
                        await feed.wake.wait()
                        continue
                    asked = list(feed.rewinds)
                    feed.rewinds.clear()
                    feed.wake.clear()
                    starts = [*asked, position] if started else asked
                    start = None if None in starts else min(s for s in starts if s is not None)
                    wake_at = next_tick(interval)
                    try:
                        events = await fetch_after(hook, trigger.kind, trigger.item_id, start)
                    except Exception as exc:
                        feed.rewinds.extend(asked)  # still owed to those watchers
                        wake_at = time.time() + failure_delay(
                            self.log, exc, trigger.feed, interval, trigger.error_retry_interval
                        )
                        events = []
                    else:
                        started = True
                        self.log.debug("Read %s: %d history events after %s", trigger.feed, len(events), start)
                        after = start
                        for event in events:
                            item = FeedEvent(event, _event_id(event), after)
                            after = item.id
                            yield item, item
                        if after is not None:
                            position = after if position is None else max(position, after)
                    with contextlib.suppress(asyncio.TimeoutError):
                        await asyncio.wait_for(feed.wake.wait(), max(wake_at - time.time(), 0.0))
            finally:
                await _shared.release(key)

        async def advance(self, batch: Sequence[AdvanceItem]) -> None:
            """Save each watcher's cursor past the events Airflow has stored (clean events only: one a
            watcher failed on, or nobody consumed, is left to be read again)."""
            cursors: dict[int, tuple[MediaPocketHistoryEventTrigger, int]] = {}
            for entry in batch:
                item: FeedEvent = entry.broker_payload
                if not entry.outcome.is_clean:
                    continue
                for watcher in item.owed:
                    cursors[id(watcher)] = (watcher, item.id)
            for watcher, cursor in cursors.values():
                await watcher.save_cursor(cursor)

else:  # pragma: no cover - Airflow < 3.3

    _HistoryProducer = None  # type: ignore[assignment,misc,unused-ignore]
