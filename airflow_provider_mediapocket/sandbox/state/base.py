"""What every resource of the sandbox state shares: errors, time and ids, and the kind record.

Nothing here locks: the one lock is taken at the boundary (the HTTP dispatcher, the UI pages and the
public methods of :class:`~airflow_provider_mediapocket.sandbox.state.SandboxState`).
"""

from __future__ import annotations

import heapq
import itertools
import random
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timezone
from typing import Any, TypeVar

JSON = dict[str, Any]
ID_ALPHABET = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_"


class ApiError(Exception):
    """A failure answered with ``status`` and ``{"error": message}``."""

    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status
        self.message = message


def format_ts(ts: float) -> str:
    """ISO 8601 timestamp with milliseconds and ``Z``, like the API."""
    dt = datetime.fromtimestamp(ts, tz=timezone.utc)
    return f"{dt:%Y-%m-%dT%H:%M:%S}.{dt.microsecond // 1000:03d}Z"


def parse_int(value: Any) -> int | None:
    """``value`` as a non-negative integer id, or None."""
    if isinstance(value, int) and not isinstance(value, bool):
        return value
    if isinstance(value, str) and value.isascii() and value.isdigit():
        return int(value)
    return None


class Clock:
    """Sandbox time (wall clock plus an advanced offset), id counters, the seeded random source and the
    schedule of time-driven lifecycle steps (media ingest, DAG action runs), run lazily when due.

    One random source for everything (ids, media sizes, run durations) keeps a seeded sandbox's sequence.
    """

    def __init__(self, seed: int | None = None) -> None:
        self.rng = random.Random(seed)
        self.offset = 0.0
        self._counters: dict[str, itertools.count[int]] = {}
        self._schedule: list[tuple[float, int, Callable[[float], None]]] = []

    def now(self) -> float:
        """Current sandbox time (epoch seconds)."""
        return time.time() + self.offset

    def stamp(self, at: float | None = None) -> str:
        """``at`` (default: now), formatted like the API."""
        return format_ts(self.now() if at is None else at)

    def advance(self, seconds: float) -> None:
        """Move time forward and run what became due."""
        self.offset += seconds
        self.tick()

    def tick(self) -> None:
        """Run the scheduled steps that are due, in time order."""
        now = self.now()
        while self._schedule and self._schedule[0][0] <= now:
            due, _, step = heapq.heappop(self._schedule)
            step(due)

    def at(self, due: float, step: Callable[[float], None]) -> None:
        """Run ``step(due)`` once the sandbox time reaches ``due``."""
        heapq.heappush(self._schedule, (due, self.next("schedule"), step))

    def next(self, name: str) -> int:
        """The next value of the counter ``name`` (from 1)."""
        return next(self._counters.setdefault(name, itertools.count(1)))

    def int_id(self, name: str, given: int | None) -> int:
        """A new id from the counter ``name``, or ``given`` with the counter moved past it."""
        if given is None:
            return self.next(name)
        nxt = self.next(name)
        self._counters[name] = itertools.count(max(nxt, given + 1))
        return given

    def random_id(self, taken: Callable[[str], bool]) -> str:
        """A fresh random 20-character URL-safe id for which ``taken`` is false."""
        while True:
            value = "".join(self.rng.choice(ID_ALPHABET) for _ in range(20))
            if not taken(value):
                return value


T = TypeVar("T")


def lookup(table: dict[int, T], value: Any, model: str) -> T:
    """``table[value]`` for an integer id given as int or digits (404 ``Couldn't find <model>``)."""
    key = parse_int(value)
    found = None if key is None else table.get(key)
    if found is None:
        raise ApiError(404, f"Couldn't find {model} with 'id'={value}")
    return found


@dataclass(frozen=True)
class Kind:
    """What differs between assets and projects where the API treats them alike."""

    name: str  #: history target type and comment target ("Asset")
    segment: str  #: path segment ("assets")
    key: str  #: key of the object in an answer ("asset")
    event: str  #: history event prefix ("ASSET")
    plural: str  #: as the restore error names them ("Assets")
    not_found: str  #: 404 message
    nests: bool  #: can be linked under an object of its own kind (then not under itself)


ASSET = Kind("Asset", "assets", "asset", "ASSET", "Assets", "asset not found", nests=False)
PROJECT = Kind("Project", "projects", "project", "PROJECT", "projects", "project not found", nests=True)
KINDS: dict[str, Kind] = {kind.name: kind for kind in (ASSET, PROJECT)}


def kind_named(name: str) -> Kind:
    """The kind called ``name`` ("Asset"/"asset", "Project"/"project")."""
    return KINDS[name.capitalize()]


@dataclass(frozen=True)
class Target:
    """One target of a history event, as shown at the time of the event."""

    type: str
    ref: Any
    shown: JSON
    #: whether the event appears in the target's own history (users have none)
    tracked: bool = True
