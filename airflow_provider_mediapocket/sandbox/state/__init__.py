"""In-memory state of the Media Pocket API v2 sandbox (pure logic, no HTTP).

One module per resource, all over one :class:`~.base.Clock` (time, ids, the seeded random source and the
schedule that materialises media ingest and DAG action runs lazily): ``users`` (users, user groups, API
keys), ``history``, ``assets`` (assets, media, collections), ``projects`` (projects, members, user
groups), ``comments`` and ``runs`` (DAG actions and runs); ``catalog`` holds what assets and projects
share, ``store`` wires the resources together and ``faults`` the random fault settings.

:class:`SandboxState` is the façade tests, scripts and the UI pages use: each public method takes the one
re-entrant :attr:`~SandboxState.lock` and answers in the API's JSON form. The HTTP dispatcher takes the
lock once around a whole request and works on :attr:`SandboxState.store` directly; nothing below the
façade locks.
"""

from __future__ import annotations

import functools
import threading
from collections.abc import Callable, Iterable
from dataclasses import asdict
from typing import Any, Concatenate, ParamSpec, TypeVar

from airflow_provider_mediapocket.sandbox.state.base import JSON, ApiError, format_ts, parse_int
from airflow_provider_mediapocket.sandbox.state.faults import FAULT_ERRORS, FAULT_KINDS, FaultConfig
from airflow_provider_mediapocket.sandbox.state.store import Store
from airflow_provider_mediapocket.sandbox.state.users import ApiKey

P = ParamSpec("P")
R = TypeVar("R")


def _locked(method: Callable[Concatenate[SandboxState, P], R]) -> Callable[Concatenate[SandboxState, P], R]:
    """Run ``method`` holding the state's lock (the boundary: nothing below takes it)."""

    def locked(self: SandboxState, /, *args: P.args, **kwargs: P.kwargs) -> R:
        with self.lock:
            return method(self, *args, **kwargs)

    functools.update_wrapper(locked, method)
    return locked


class SandboxState:
    """The sandbox's data: users and keys, assets, projects, comments, media, runs and history."""

    def __init__(
        self,
        media_processing_seconds: float = 2.0,
        dag_action_run_seconds: float | tuple[float, float] = 5.0,
        history_page_size: int = 50,
        seed: int | None = None,
    ) -> None:
        self.lock = threading.RLock()
        self.store = Store(media_processing_seconds, dag_action_run_seconds, history_page_size, seed)
        self.faults: FaultConfig | None = None
        self.default_user_id = self.store.users.default_id
        self.seed_project_id: str = self.add_project(title="Sandbox Project")["id"]
        self.seed_collection_id: str = self.add_collection(title="Sandbox Collection")["id"]

    # ------------------------------------------------------------------ settings and time
    @property
    def media_processing_seconds(self) -> float:
        """Seconds from adding media to its ingest being finished."""
        return self.store.media.processing_seconds

    @media_processing_seconds.setter
    def media_processing_seconds(self, value: float) -> None:
        self.store.media.processing_seconds = value

    @property
    def dag_action_run_seconds(self) -> float | tuple[float, float]:
        """How long a DAG action run takes (a ``(low, high)`` range: a seeded draw per run)."""
        return self.store.runs.run_seconds

    @dag_action_run_seconds.setter
    def dag_action_run_seconds(self, value: float | tuple[float, float]) -> None:
        self.store.runs.run_seconds = value

    @_locked
    def advance(self, seconds: float) -> None:
        """Move the sandbox clock forward and materialise what became due."""
        self.store.clock.advance(seconds)

    @_locked
    def tick(self) -> None:
        """Run the scheduled lifecycle steps that are due, in time order."""
        self.store.clock.tick()

    # ------------------------------------------------------------------ users and keys
    @_locked
    def add_user(self, id: int | None = None, email: str | None = None) -> int:
        """Create a user and return its id."""
        return self.store.users.add(id, email).id

    @_locked
    def add_api_key(self, key: str, permissions: Iterable[str] | None = None, email: str | None = None) -> int:
        """Register ``key`` for the user with ``email`` (created if needed; default user if None); its user id."""
        return self.store.users.add_key(key, permissions, email).user_id

    @_locked
    def revoke_api_key(self, key: str) -> None:
        """Forget ``key``: requests with it get 401 from now on (a rotated-out key)."""
        self.store.users.keys.pop(key, None)

    @_locked
    def key_info(self, key: str | None) -> ApiKey | None:
        """The registered key ``key`` (None when unknown)."""
        return None if key is None else self.store.users.keys.get(key)

    @_locked
    def add_user_group(
        self,
        id: int | None = None,
        name: str | None = None,
        user_ids: Iterable[int] = (),
        description: str = "Sandbox user group",
    ) -> int:
        """Create a user group and return its id."""
        return self.store.users.add_group(id, name, user_ids, description).id

    # ------------------------------------------------------------------ history
    @_locked
    def events(self, kind: str, obj_id: str) -> list[JSON]:
        """All history events of an asset/project ("Asset"/"Project"), oldest first."""
        self.store.clock.tick()
        return [event.json for event in self.store.history.of(self.store.catalog(kind).kind.name, obj_id)]

    # ------------------------------------------------------------------ assets, media, collections
    @_locked
    def add_asset(self, /, id: str | None = None, user_id: int | None = None, **fields: Any) -> JSON:
        """Create an asset (ASSET_ADDED recorded) and return it; ``fields`` override defaults."""
        return self.store.assets.add(self.store.users.actor(user_id), id, fields).to_json()

    @_locked
    def asset(self, asset_id: str) -> JSON:
        """The asset ``asset_id`` (404 ``asset not found``)."""
        return self.store.assets.get(asset_id).to_json()

    @property
    @_locked
    def assets(self) -> dict[str, JSON]:
        """Snapshot of all assets by id."""
        self.store.clock.tick()
        return {k: v.to_json() for k, v in self.store.assets.items.items()}

    @_locked
    def set_trashed(self, kind: str, obj_id: str, trashed: bool, user_id: int | None = None) -> None:
        """Move an asset/project ("Asset"/"Project") to (or out of) the trash bin."""
        catalog = self.store.catalog(kind)
        catalog.set_trashed(catalog.get(obj_id), trashed, self.store.users.actor(user_id))

    def trash_project(self, project_id: str) -> None:
        """Put a project in the trash bin."""
        self.set_trashed("Project", project_id, True)

    @_locked
    def assign(self, kind: str, obj_id: str, to_project_id: str, user_id: int) -> str | None:
        """Link an asset/project under ``to_project_id``; returns an error text or None."""
        catalog = self.store.catalog(kind)
        return self.store.assign(catalog, catalog.get(obj_id), to_project_id, user_id)

    @_locked
    def add_media(
        self,
        asset_id: str,
        filename: str,
        id: int | None = None,
        processed: bool = False,
        file_url: str | None = None,
        user_id: int | None = None,
    ) -> JSON:
        """Attach media to an asset (replacing any); ingest finishes after ``media_processing_seconds``."""
        asset = self.store.assets.get(asset_id)
        return asdict(self.store.media.add(asset, filename, id, processed, file_url, self.store.users.actor(user_id)))

    @_locked
    def media_of(self, asset_id: str) -> list[JSON]:
        """The media records of an asset."""
        return [asdict(media) for media in self.store.media.of(asset_id)]

    @_locked
    def add_collection(
        self, /, id: str | None = None, asset_ids: Iterable[str] = (), title: str = "Sample Collection", **fields: Any
    ) -> JSON:
        """Create a collection containing ``asset_ids`` and return it."""
        owner = self.store.users.by_id[self.default_user_id].email
        return self.store.collections.add(id or self.store.new_id(), owner, asset_ids, title, fields).to_json()

    @_locked
    def add_to_collection(self, collection_id: str, asset_id: str) -> None:
        """Put an asset into a collection."""
        self.store.collections.by_id[collection_id].asset_ids.append(asset_id)

    # ------------------------------------------------------------------ comments
    @_locked
    def add_comment(
        self, target_type: str, target_id: str, message: str, user_id: int | None = None, id: int | None = None
    ) -> JSON:
        """Add a comment (``target_type`` "Asset" or "Project") and return its public form."""
        comments = self.store.comments
        catalog = self.store.catalog(target_type)
        return comments.to_json(comments.add(catalog, target_id, message, self.store.users.actor(user_id), id))

    @_locked
    def comments_of(self, kind: str, target_id: str) -> list[JSON]:
        """Comments of an asset/project, oldest first, public form."""
        comments = self.store.comments
        return [comments.to_json(c) for c in comments.of(self.store.catalog(kind).kind, target_id)]

    # ------------------------------------------------------------------ dag action runs
    @_locked
    def start_run(self, asset_id: str, dag_action_id: Any, user_id: int | None = None) -> JSON:
        """Start a DAG action run on an asset (404 for an unknown action) and return it."""
        runs = self.store.runs
        return runs.render(runs.start(self.store.assets.get(asset_id).id, dag_action_id))

    @_locked
    def set_run_status(self, run_id: int, status: str) -> None:
        """Force a run's status (tests of statuses the documents do not show, e.g. "Transcoding")."""
        self.store.clock.tick()
        self.store.runs.by_id[run_id].status = status

    @property
    @_locked
    def runs(self) -> dict[int, JSON]:
        """Snapshot of all runs by id (public form plus ``asset_id``)."""
        self.store.clock.tick()
        runs = self.store.runs
        return {rid: {**runs.render(r), "asset_id": r.asset_id} for rid, r in runs.by_id.items()}

    # ------------------------------------------------------------------ projects
    @_locked
    def add_project(self, /, id: str | None = None, user_id: int | None = None, **fields: Any) -> JSON:
        """Create a project (owner linked as admin; PROJECT_ADDED and USER_LINKED recorded)."""
        return self.store.projects.add(self.store.users.actor(user_id), id, fields).to_json()

    @_locked
    def project(self, project_id: str) -> JSON:
        """The project ``project_id`` (404 ``project not found``)."""
        return self.store.projects.get(project_id).to_json()

    @property
    @_locked
    def projects(self) -> dict[str, JSON]:
        """Snapshot of all projects by id."""
        return {k: v.to_json() for k, v in self.store.projects.items.items()}

    @_locked
    def top_level_projects(self) -> list[JSON]:
        """Non-trashed projects without a parent."""
        return [p.to_json() for p in self.store.projects.live("project_id", None)]

    @_locked
    def set_project_public(self, project_id: str, public: bool) -> None:
        """Make a project public/private (400 when it already is)."""
        projects = self.store.projects
        projects.set_public(projects.get(project_id), public)

    @_locked
    def set_thumbnail(self, project_id: str, asset_id: str | None) -> None:
        """Set (or with None, remove) a project's thumbnail asset, validated like the API."""
        self.store.set_thumbnail(self.store.projects.get(project_id), asset_id)

    @_locked
    def add_project_user(
        self, project_id: str, user_id: Any, role: str = "member", actor_id: int | None = None
    ) -> None:
        """Make a user a project member (400 if already; USER_LINKED recorded)."""
        projects = self.store.projects
        projects.add_member(projects.get(project_id), user_id, role, self.store.users.actor(actor_id))

    @_locked
    def project_users(self, project_id: str, include_groups: bool = False) -> list[JSON]:
        """Members of a project (and of its user groups when ``include_groups``), with roles."""
        projects = self.store.projects
        return projects.members_json(projects.get(project_id), include_groups)

    @_locked
    def add_project_user_group(self, project_id: str, group_id: Any) -> None:
        """Link a user group to a project (400 if already linked)."""
        projects = self.store.projects
        projects.add_group(projects.get(project_id), group_id)


__all__ = [
    "FAULT_ERRORS",
    "FAULT_KINDS",
    "JSON",
    "ApiError",
    "FaultConfig",
    "SandboxState",
    "Store",
    "format_ts",
    "parse_int",
]
