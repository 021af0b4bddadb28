"""Sharing between the triggers of one triggerer process: one client per connection, one poll per asset.

A triggerer runs thousands of triggers in one event loop. Opening a client per poll (what many
providers do) costs a TCP and TLS handshake per request; polling each run separately costs one
request per run per interval although the API lists all runs of an asset in one call. Here:

- :func:`acquire` hands every trigger of the same connection settings, in the same event loop, the
  same :class:`MediaPocketHook` (so the same ``httpx.AsyncClient`` and keep-alive pool), counted by
  reference and closed when the last trigger releases it;
- :func:`coalesced` makes the triggers that poll the same thing in the same interval share one
  request: polls are aligned to wall-clock ticks of ``poll_interval`` and a fetch started for a tick
  is awaited by everyone polling that tick. A failure reaches every waiter, each handling it as it
  would its own. What each trigger reports is unchanged; only duplicate requests are gone.

Everything runs in the event loop's thread: no locks, no blocking calls.
"""

from __future__ import annotations

import asyncio
import json
import weakref
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any, TypeVar

from airflow_provider_mediapocket.hooks.mediapocket import MediaPocketHook

T = TypeVar("T")
HookKey = str


@dataclass
class _Entry:
    hook: MediaPocketHook
    users: int = 0


@dataclass
class _LoopState:
    hooks: dict[HookKey, _Entry] = field(default_factory=dict)
    # (hook key, what, interval) -> (tick, shared future of that tick's fetch)
    fetches: dict[tuple[HookKey, str, float], tuple[int, asyncio.Future[Any]]] = field(default_factory=dict)


_LOOPS: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, _LoopState] = weakref.WeakKeyDictionary()


def _state() -> _LoopState:
    loop = asyncio.get_running_loop()
    state = _LOOPS.get(loop)
    if state is None:
        state = _LOOPS[loop] = _LoopState()
    return state


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
    for fetch_key in [k for k in state.fetches if k[0] == key]:
        del state.fetches[fetch_key]
    await entry.hook.aclose()


def shared_count() -> int:
    """How many shared hooks the running loop holds (for tests and benchmarks)."""
    return len(_state().hooks)


async def coalesced(key: HookKey, what: str, interval: float, tick: int, fetch: Callable[[], Awaitable[T]]) -> T:
    """``await fetch()`` once per ``(key, what, interval, tick)``; concurrent and later callers of the
    same tick get the same result (or the same exception)."""
    state = _state()
    slot = (key, what, interval)
    current = state.fetches.get(slot)
    if current is None or current[0] != tick:
        future: asyncio.Future[Any] = asyncio.ensure_future(fetch())
        future.add_done_callback(_consume)
        state.fetches[slot] = (tick, future)
    else:
        future = current[1]
    return await asyncio.shield(future)


def _consume(future: asyncio.Future[Any]) -> None:
    # Mark the exception as retrieved: every waiter re-raises it; nobody may be left to do so.
    if not future.cancelled():
        future.exception()
