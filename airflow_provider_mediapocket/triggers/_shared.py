"""Sharing between the triggers of one triggerer process: one client per connection, one poll per asset.

A triggerer runs thousands of triggers in one event loop. Opening a client per poll (what many
providers do) costs a TCP and TLS handshake per request; polling each run separately costs one
request per run per interval although the API lists all runs of an asset in one call. Here:

- :func:`acquire` hands every trigger of the same connection settings, in the same event loop, the
  same :class:`MediaPocketHook` (so the same ``httpx.AsyncClient`` and keep-alive pool), counted by
  reference and closed when the last trigger releases it;
- :func:`coalesced` makes the triggers that poll the same thing in the same interval share one
  request: polls are aligned to wall-clock ticks of ``poll_interval``, shifted by a stable phase per
  asset (:func:`poll_phase`), so the triggers polling an asset ask together and await one fetch while
  the polls of different assets spread over the interval instead of all landing at the same instant.
  A caller only ever gets an answer the server gave after the caller asked (``not_before``): it joins
  a fetch not yet sent, or one sent at or after ``not_before``; never one sent earlier, even in the
  same tick (a trigger that starts mid-tick, after the run it waits for was started, must not be
  handed a list taken before that run existed). A failure reaches every waiter, each handling it as
  it would its own. What each trigger reports is what it would see polling alone; only duplicate
  requests are gone.

The registry keeps only the newest fetch of each slot, and only until the tick it was sent in has
passed, or :data:`HOLD_ANSWER` seconds after its answer came if that is sooner: a finished fetch is
forgotten once no poll can still join it, so a large answer (an asset's whole run list) is not kept
alive by the triggers of other assets. (The triggers of an asset poll at the same instant and join
within milliseconds; held for a whole interval, the answers of 500 assets polled every 5 s -- a
tick's worth of run listings -- would all be alive at once.)

Everything runs in the event loop's thread: no locks, no blocking calls.
"""

from __future__ import annotations

import asyncio
import json
import math
import time
import weakref
import zlib
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any, TypeVar, cast

from airflow_provider_mediapocket.hooks.mediapocket import KEEPALIVE_CONNECTIONS, MediaPocketHook

T = TypeVar("T")
HookKey = str


#: Shared fetches of one hook in flight at once; the others wait their turn here. As many as the
#: client keeps connections alive: every fetch reuses an open connection instead of opening (and then
#: closing) one of its own, and httpx's pool never holds a queue (its bookkeeping walks every queued
#: request for every connection event: thousands of first polls queued there stall the loop).
FETCH_CONCURRENCY = KEEPALIVE_CONNECTIONS


@dataclass
class _Entry:
    hook: MediaPocketHook
    users: int = 0
    sending: asyncio.Semaphore = field(default_factory=lambda: asyncio.Semaphore(FETCH_CONCURRENCY))


Slot = tuple[HookKey, str, float]


@dataclass
class _Fetch:
    """One shared request: its future, when it was sent (None: not yet), its task and its drop timer."""

    future: asyncio.Future[Any]
    interval: float
    phase: float
    sent_at: float | None = None
    task: asyncio.Task[None] | None = None  # held here: the loop keeps only weak references to tasks
    drop: asyncio.TimerHandle | None = None

    def serves(self, not_before: float) -> bool:
        # Not yet sent: the answer will come after the caller asked. Sent: only if sent since then.
        return self.sent_at is None or self.sent_at >= not_before

    def forget(self) -> None:
        if self.drop is not None:
            self.drop.cancel()
            self.drop = None


@dataclass
class _LoopState:
    hooks: dict[HookKey, _Entry] = field(default_factory=dict)
    # (hook key, what, interval) -> the newest fetch of that slot (dropped once its tick has passed)
    fetches: dict[Slot, _Fetch] = field(default_factory=dict)


_LOOPS: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, _LoopState] = weakref.WeakKeyDictionary()


def _state() -> _LoopState:
    loop = asyncio.get_running_loop()
    state = _LOOPS.get(loop)
    if state is None:
        state = _LOOPS[loop] = _LoopState()
    return state


def poll_phase(name: str, interval: float) -> float:
    """Where in each tick of ``interval`` seconds the polls of ``name`` (an asset id) fall: a stable
    offset in ``[0, interval)``, the same in every process (CRC-32, not the salted ``hash``).

    Thousands of triggers aligned to the same wall-clock instant would all poll at once: a burst of
    requests every tick, queued in the connection pool, stalling the event loop while the answers are
    handled. Spread by asset, the polls of a tick arrive evenly; triggers of the same asset still share
    one instant, so they still share one request.
    """
    return zlib.crc32(name.encode()) / 2**32 * interval


def hook_key(conn_id: str, hook_params: dict[str, Any]) -> HookKey:
    return json.dumps([conn_id, hook_params], sort_keys=True, default=str)


#: A shared hook re-reads its connection at most this often, however short the poll interval.
MIN_SETTINGS_MAX_AGE = 1.0


def acquire(
    conn_id: str, hook_params: dict[str, Any], *, refresh_every: float | None = None
) -> tuple[HookKey, MediaPocketHook]:
    """The shared hook for these settings in the running loop (call :func:`release` when done).

    ``refresh_every`` (the caller's poll interval) bounds how old the hook's connection settings may
    get: a changed timeout or key is picked up within one poll (a 401 re-reads it at once anyway).
    """
    key = hook_key(conn_id, hook_params)
    state = _state()
    entry = state.hooks.get(key)
    if entry is None:
        entry = state.hooks[key] = _Entry(MediaPocketHook(conn_id, **hook_params))
    if refresh_every is not None:
        current = entry.hook.settings_max_age
        wanted = max(refresh_every, MIN_SETTINGS_MAX_AGE)
        entry.hook.settings_max_age = wanted if current is None else min(current, wanted)
    entry.users += 1
    return key, entry.hook


async def release(key: HookKey) -> None:
    """Drop one user of the shared hook; the last one closes its client and forgets its fetches."""
    state = _state()
    entry = state.hooks.get(key)
    if entry is None:
        return
    entry.users -= 1
    if entry.users > 0:
        return
    del state.hooks[key]
    for slot in [slot for slot in state.fetches if slot[0] == key]:
        state.fetches.pop(slot).forget()
    await entry.hook.aclose()


def shared_count() -> int:
    """How many shared hooks the running loop holds (for tests and benchmarks)."""
    return len(_state().hooks)


def fetch_count() -> int:
    """How many fetches the running loop's registry holds (for tests and benchmarks)."""
    return len(_state().fetches)


async def coalesced(
    key: HookKey, what: str, interval: float, not_before: float, fetch: Callable[[], Awaitable[T]],
    *, phase: float = 0.0,
) -> T:
    """``await fetch()``, shared with the other callers of ``(key, what, interval)`` where that is truthful.

    ``not_before`` (epoch seconds) is when the caller asked: the start of the tick it polls (ticks
    start at ``phase`` seconds past each multiple of ``interval``), or when it started waiting if that
    is later. The caller joins the slot's newest fetch if that was not
    sent yet or was sent at or after ``not_before``; otherwise it starts a new one, which later
    callers join in turn. Every joiner gets the same result (or the same exception).
    """
    state = _state()
    slot = (key, what, interval)
    current = state.fetches.get(slot)
    if current is None or not current.serves(not_before):
        if current is not None:
            current.forget()
        current = _Fetch(asyncio.get_running_loop().create_future(), interval, phase)
        state.fetches[slot] = current
        current.task = asyncio.ensure_future(_send(state, slot, current, fetch, state.hooks[key].sending))
        current.task.add_done_callback(_consume)
    return cast(T, await asyncio.shield(current.future))


async def _send(
    state: _LoopState, slot: Slot, entry: _Fetch, fetch: Callable[[], Awaitable[Any]], sending: asyncio.Semaphore
) -> None:
    try:
        async with sending:
            # From here on the request is (about to be) on its way: later callers may join only if
            # they asked before now.
            entry.sent_at = time.time()
            result = await fetch()
        entry.future.set_result(result)
    except Exception as exc:  # every waiter re-raises it and handles it as it would its own
        entry.future.set_exception(exc)
        entry.future.add_done_callback(_consume)
    finally:
        if not entry.future.done():  # cancelled (the loop is shutting down): nobody may wait forever
            entry.future.cancel()
        _schedule_drop(state, slot, entry)


#: The longest a finished fetch stays joinable after its answer came (within its tick).
HOLD_ANSWER = 1.0


def _schedule_drop(state: _LoopState, slot: Slot, entry: _Fetch) -> None:
    """Forget ``entry`` when the tick it was sent in has passed (at once if it already has), or
    :data:`HOLD_ANSWER` seconds from now if that is sooner."""
    if state.fetches.get(slot) is not entry:
        return
    sent = entry.sent_at if entry.sent_at is not None else time.time()
    tick_end = (math.floor((sent - entry.phase) / entry.interval) + 1) * entry.interval + entry.phase
    loop = asyncio.get_running_loop()
    entry.drop = loop.call_later(min(max(tick_end - time.time(), 0.0), HOLD_ANSWER), _drop, state, slot, entry)


def _drop(state: _LoopState, slot: Slot, entry: _Fetch) -> None:
    entry.drop = None
    if state.fetches.get(slot) is entry:
        del state.fetches[slot]


def _consume(future: asyncio.Future[Any]) -> None:
    # Mark the exception as retrieved: every waiter re-raises it; nobody may be left to do so.
    if not future.cancelled():
        future.exception()
