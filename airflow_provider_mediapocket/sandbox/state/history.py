"""History: the events of each asset and project, newest first in cursor pages."""

from __future__ import annotations

import itertools
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from functools import cached_property

from airflow_provider_mediapocket.sandbox.state.base import JSON, ApiError, Clock, Target, parse_int


@dataclass(frozen=True)
class Event:
    """One history event."""

    id: int
    user_id: int
    event_type: str
    created_at: str
    targets: tuple[Target, ...]

    @cached_property
    def json(self) -> JSON:
        """Public form (an event never changes, so it is built once)."""
        return {
            "id": self.id,
            "user_id": self.user_id,
            "event_type": self.event_type,
            "created_at": self.created_at,
            "updated_at": self.created_at,
            "event_targets": [{"target_type": t.type, "target": t.shown} for t in self.targets],
        }


class History:
    """Events by (target type, id), oldest first."""

    def __init__(self, clock: Clock, page_size: int) -> None:
        self.clock = clock
        self.page_size = page_size
        self._events: dict[tuple[str, str], list[Event]] = {}
        #: the project an asset is in (set by the store): a project's feed also shows its assets' events
        self.project_of: Callable[[str], str | None] = lambda asset_id: None

    def record(self, event_type: str, user_id: int, targets: Iterable[Target], at: float | None = None) -> Event:
        """Append an event to the history of each tracked target."""
        event = Event(self.clock.next("event"), user_id, event_type, self.clock.stamp(at), tuple(targets))
        feeds = [(t.type, t.ref) for t in event.targets if t.tracked]
        for target in event.targets:
            parent = self.project_of(target.ref) if target.type == "Asset" else None
            if parent is not None and ("Project", parent) not in feeds:
                feeds.append(("Project", parent))
        for feed in feeds:
            self._events.setdefault(feed, []).append(event)
        return event

    def page(self, type_name: str, obj_id: str, cursor: str) -> JSON:
        """A page, newest first; ``cursor`` "0" starts, else the last id seen (422 when not a number)."""
        start = parse_int(cursor)
        if start is None:
            raise ApiError(422, f"Invalid parameter 'cursor' value \"{cursor}\": Invalid cursor")
        newest_first: Iterable[Event] = reversed(self._events.get((type_name, obj_id), []))
        if start:
            newest_first = (e for e in newest_first if e.id < start)
        page = list(itertools.islice(newest_first, self.page_size + 1))
        more = len(page) > self.page_size
        page = page[: self.page_size]
        return {"results": [e.json for e in page], "next_cursor": str(page[-1].id) if more else None}

    def of(self, type_name: str, obj_id: str) -> list[Event]:
        """All events of an object, oldest first."""
        return list(self._events.get((type_name, obj_id), []))
