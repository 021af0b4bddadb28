"""All the resources of the sandbox over one clock, and what spans several of them.

Unlocked: the caller holds :attr:`SandboxState.lock` (the HTTP dispatcher around a whole request).
"""

from __future__ import annotations

import itertools
from typing import Any

from airflow_provider_mediapocket.sandbox.state.assets import MEDIA_TYPES, Assets, Collections, MediaFiles
from airflow_provider_mediapocket.sandbox.state.base import JSON, ApiError, Clock, kind_named
from airflow_provider_mediapocket.sandbox.state.catalog import Catalog, Entry, ExternalIds
from airflow_provider_mediapocket.sandbox.state.comments import Comments
from airflow_provider_mediapocket.sandbox.state.history import History
from airflow_provider_mediapocket.sandbox.state.projects import Project, Projects
from airflow_provider_mediapocket.sandbox.state.runs import Runs
from airflow_provider_mediapocket.sandbox.state.users import Users


class Store:
    """Users and keys, history, assets with media and collections, projects with members, comments and
    DAG action runs, wired so that deleting an asset/project takes along what belongs to it."""

    def __init__(
        self,
        media_processing_seconds: float,
        dag_action_run_seconds: float | tuple[float, float],
        history_page_size: int,
        seed: int | None,
    ) -> None:
        self.clock = Clock(seed)
        self.history = History(self.clock, history_page_size)
        self.users = Users(self.clock)
        self.external_ids = ExternalIds()
        self.assets = Assets(self.clock, self.history, self.external_ids, self.users, self.new_id)
        self.history.project_of = self._project_of
        self.projects = Projects(self.clock, self.history, self.external_ids, self.users, self.new_id)
        self.media = MediaFiles(self.clock, self.assets, media_processing_seconds)
        self.collections = Collections(self.clock, self.assets)
        self.runs = Runs(self.clock, self.assets, dag_action_run_seconds)
        self.comments = Comments(self.clock, self.users, self.assets, self.projects)
        self.projects.on_delete.append(self._orphan)
        #: the assets and the projects by path segment ("assets", "projects")
        self.catalogs: dict[str, Catalog[Any]] = {c.kind.segment: c for c in (self.assets, self.projects)}

    def _project_of(self, asset_id: str) -> str | None:
        asset = self.assets.items.get(asset_id)
        return asset.project_id if asset is not None else None

    def new_id(self) -> str:
        """A fresh random id, unused by any asset, project or collection."""
        return self.clock.random_id(
            lambda v: v in self.assets.items or v in self.projects.items or v in self.collections.by_id
        )

    def catalog(self, kind_name: str) -> Catalog[Any]:
        """The assets or the projects, by kind name ("Asset"/"asset", "Project"/"project")."""
        return self.catalogs[kind_named(kind_name).segment]

    def _orphan(self, project_id: str) -> None:
        """The assets and sub-projects of a deleted project become top-level."""
        for entry in itertools.chain(self.assets.items.values(), self.projects.items.values()):
            if entry.project_id == project_id:
                entry.project_id = None

    # ------------------------------------------------------------------ linking (assign/unassign)
    def assign(self, catalog: Catalog[Any], entry: Entry, to_project_id: str, user_id: int) -> str | None:
        """Link an asset/project under ``to_project_id``; returns an error text or None."""
        nests = catalog.kind.nests
        if nests and to_project_id == entry.id:
            raise ApiError(400, "A project cannot be its own parent project.")
        parent = self.projects.items.get(to_project_id)
        if parent is None or parent.deleted is not None:
            return "Project not found."
        if nests and entry.id in self.projects.ancestors(to_project_id):
            raise ApiError(400, "A project cannot be its own parent project.")
        entry.project_id = to_project_id
        entry.modification_date = self.clock.stamp()
        catalog.record("LINKED", user_id, entry.id, self.projects.target(to_project_id))
        return None

    def unassign(self, catalog: Catalog[Any], entry: Entry, user_id: int) -> str | None:
        """Unlink an asset/project from its parent project; returns an error text or None."""
        parent = entry.project_id
        if parent is None:
            return f"{entry.id} does not have a parent project"
        entry.project_id = None
        entry.modification_date = self.clock.stamp()
        more = [self.projects.target(parent)] if parent in self.projects.items else []
        catalog.record("UNLINKED", user_id, entry.id, *more)
        return None

    # ------------------------------------------------------------------ project content
    def children(self, project_id: str) -> tuple[list[JSON], list[JSON]]:
        """Non-trashed assets and sub-projects directly inside a project, public form."""
        assets = [a.to_json() for a in self.assets.live("project_id", project_id)]
        return assets, [p.to_json() for p in self.projects.live("project_id", project_id)]

    def stats(self, project_id: str) -> JSON:
        """Counts of a project's direct content by media type, and total media size."""
        assets = self.assets.live("project_id", project_id)
        subs = self.projects.live("project_id", project_id)
        counts = dict.fromkeys((*MEDIA_TYPES, "project"), 0)
        total = 0
        for asset in assets:
            counts[asset.media_type] = counts.get(asset.media_type, 0) + 1
            total += sum(m.size for m in self.media.of(asset.id))
        counts["project"] = len(subs)
        return {"assets": len(assets), "projects": len(subs), "total_size": total, "media_types": counts}

    def set_thumbnail(self, project: Project, asset_id: str | None) -> None:
        """Set (or with None, remove) a project's thumbnail asset, validated like the API."""
        if asset_id is None:
            if project.thumbnail_asset_id is None:
                raise ApiError(400, "Project has no thumbnail asset")
        else:
            asset = self.assets.items.get(asset_id)
            if asset is None:
                raise ApiError(404, f"Could not find asset with id {asset_id}")
            if asset.project_id != project.id:
                raise ApiError(400, "Thumbnail asset must belong to the given project")
            if asset.media_type != "image":
                raise ApiError(400, "Thumbnail asset must be an image")
        project.thumbnail_asset_id = asset_id
