"""What assets and projects share: metadata records, external ids, trash, and lookup by id."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, ClassVar, Generic, TypeVar

from airflow_provider_mediapocket.sandbox.state.base import JSON, ApiError, Clock, Kind, Target
from airflow_provider_mediapocket.sandbox.state.history import History
from airflow_provider_mediapocket.sandbox.state.users import Users


@dataclass
class Shown:
    """A record whose public form is ``FIELDS`` in the API's order, then any fields it does not model
    (kept as given, e.g. ``status`` sent to a project, as the stored JSON object used to keep them)."""

    FIELDS: ClassVar[tuple[str, ...]]
    _public: ClassVar[Callable[[Any], JSON]]
    extra: JSON = field(default_factory=dict, kw_only=True)

    def __init_subclass__(cls, **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        if "FIELDS" in cls.__dict__:
            # Answers render records, a project listing hundreds of them: one dict display compiled per
            # class from FIELDS (as dataclasses compiles __init__) is 2-3 times faster than a getattr per
            # field, which made listings slower than the stored dicts they replace.
            items = ", ".join(f"{name!r}: record.{name}" for name in cls.FIELDS)
            namespace: dict[str, Any] = {}
            exec(f"def public(record):\n    return {{{items}}}", namespace)
            cls._public = namespace["public"]

    def to_json(self) -> JSON:
        """Public form."""
        out = self._public()
        if self.extra:
            out.update(self.extra)
        return out

    def put(self, name: str, value: Any) -> None:
        """Set one field, modelled or not."""
        if name in self.FIELDS:
            setattr(self, name, value)
        else:
            self.extra[name] = value


@dataclass
class Listed(Shown):
    """Fields assets, projects and collections share."""

    id: str
    owner: str
    title: str
    created_date: str
    modification_date: str
    media_type: str
    description: str | None = field(default=None, kw_only=True)
    category: str | None = field(default=None, kw_only=True)
    tags: list[Any] = field(default_factory=list, kw_only=True)


@dataclass
class Entry(Listed):
    """Fields common to assets and projects."""

    pk: int  #: the numeric id history events show next to the ``elasticsearch_id``
    external_id: str | None = None
    project_id: str | None = None
    deleted: str | None = None

    def set(self, fields: JSON) -> None:
        """Set fields (category and tags lower-cased, as the API stores them)."""
        for name, value in fields.items():
            if name == "category" and isinstance(value, str):
                value = value.lower()
            elif name == "tags" and isinstance(value, list):
                value = [t.lower() if isinstance(t, str) else t for t in value]
            self.put(name, value)


E = TypeVar("E", bound=Entry)


class ExternalIds:
    """External ids, unique across assets and projects."""

    def __init__(self) -> None:
        self._owners: dict[Any, str] = {}

    def check(self, external_id: Any, own_id: str | None = None) -> None:
        """400 when ``external_id`` is already used by another asset/project."""
        if external_id is not None and self._owners.get(external_id, own_id) != own_id:
            raise ApiError(400, "External id has already been taken")

    def assign(self, entry: Entry, external_id: Any) -> None:
        """Give ``entry`` this external id (None: release its own)."""
        if entry.external_id is not None:
            self._owners.pop(entry.external_id, None)
        if external_id is not None:
            self._owners[external_id] = entry.id
        entry.external_id = external_id


class Catalog(Generic[E]):
    """The assets or the projects: lookup, metadata updates, trash, delete, history targets."""

    KIND: ClassVar[Kind]

    def __init__(
        self, clock: Clock, history: History, external_ids: ExternalIds, users: Users, new_id: Callable[[], str]
    ) -> None:
        self.kind = self.KIND
        self.clock = clock
        self.history = history
        self.external_ids = external_ids
        self.users = users
        self.new_id = new_id
        self.items: dict[str, E] = {}
        #: called with the id of a deleted entry (the store wires what goes with it)
        self.on_delete: list[Callable[[str], object]] = []

    def get(self, oid: str) -> E:
        """The entry ``oid`` (404)."""
        found = self.items.get(oid)
        if found is None:
            raise ApiError(404, self.kind.not_found)
        return found

    def target(self, oid: str) -> Target:
        """A history target for the entry ``oid``."""
        entry = self.items[oid]
        return Target(self.kind.name, oid, {"id": entry.pk, "elasticsearch_id": oid, "title": entry.title})

    def record(self, suffix: str, user_id: int, oid: str, *more: Target, at: float | None = None) -> None:
        """Record ``<KIND>_<suffix>`` on the entry ``oid`` (and on ``more`` targets)."""
        self.history.record(f"{self.kind.event}_{suffix}", user_id, (self.target(oid), *more), at=at)

    def add(self, user_id: int, id: str | None, fields: JSON) -> E:
        """Create an entry owned by ``user_id`` (``<KIND>_ADDED``); ``fields`` override the defaults."""
        now = self.clock.stamp()
        entry = self.new(id or self.new_id(), self.clock.next("pk"), self.users.by_id[user_id].email, now, fields)
        return self.store(entry, fields, user_id)

    def new(self, oid: str, pk: int, owner: str, now: str, fields: JSON) -> E:
        """A new entry with the kind's defaults (before ``fields`` are set)."""
        raise NotImplementedError

    def store(self, entry: E, fields: JSON, user_id: int) -> E:
        """Keep a new entry with ``fields`` set and record ``<KIND>_ADDED``."""
        external_id = fields.pop("external_id", None)
        entry.set(fields)
        self.items[entry.id] = entry
        self.external_ids.assign(entry, external_id)
        self.record("ADDED", user_id, entry.id)
        return entry

    def update(self, entry: E, user_id: int, fields: JSON) -> E:
        """Update metadata (``<KIND>_EDITED_METADATA``)."""
        if "external_id" in fields:
            self.external_ids.check(fields["external_id"], entry.id)
            self.external_ids.assign(entry, fields.pop("external_id"))
        entry.set(fields)
        entry.modification_date = self.clock.stamp()
        self.record("EDITED_METADATA", user_id, entry.id)
        return entry

    def set_trashed(self, entry: E, trashed: bool, user_id: int) -> None:
        """Move to (or out of) the trash bin; 400 when restoring one that is not trashed."""
        if not trashed and entry.deleted is None:
            raise ApiError(400, f"Can not restore {self.kind.plural} that is not in trash bin")
        entry.deleted = self.clock.stamp() if trashed else None
        self.record("REMOVED" if trashed else "RESTORED", user_id, entry.id)

    def delete(self, entry: E) -> None:
        """Delete permanently, with what goes with it."""
        self.external_ids.assign(entry, None)
        del self.items[entry.id]
        for drop in self.on_delete:
            drop(entry.id)

    def live(self, parent_field: str, parent_id: str | None) -> list[E]:
        """Non-trashed entries whose ``parent_field`` is ``parent_id``."""
        return [e for e in self.items.values() if getattr(e, parent_field) == parent_id and e.deleted is None]
