"""Projects, their members and their user groups."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, ClassVar

from airflow_provider_mediapocket.sandbox.state.base import JSON, PROJECT, ApiError
from airflow_provider_mediapocket.sandbox.state.catalog import Catalog, Entry


@dataclass
class Project(Entry):
    """A project; ``members`` maps user ids to roles, ``group_ids`` are linked user groups."""

    FIELDS: ClassVar[tuple[str, ...]] = (
        "id", "external_id", "project_id", "owner", "title", "description", "category", "tags", "media_type",
        "isPublic", "thumbnail_asset_id", "created_date", "modification_date", "deleted", "original_title",
    )  # fmt: skip
    isPublic: bool = False
    thumbnail_asset_id: str | None = None
    original_title: str = ""
    members: dict[int, str] = field(default_factory=dict)
    group_ids: list[int] = field(default_factory=list)


class Projects(Catalog[Project]):
    """The projects, their members and user groups."""

    KIND = PROJECT

    def new(self, oid: str, pk: int, owner: str, now: str, fields: JSON) -> Project:
        """A new private project."""
        title = fields.get("title", "Untitled project")
        return Project(oid, owner, title, now, now, "project", pk, original_title=title)

    def add(self, user_id: int, id: str | None, fields: JSON) -> Project:
        """Create a project (``PROJECT_ADDED``), its owner linked as admin (``USER_LINKED``)."""
        project = super().add(user_id, id, fields)
        self.add_member(project, user_id, "admin", actor_id=0)
        return project

    def ancestors(self, project_id: str) -> set[str]:
        """``project_id`` and the projects above it."""
        seen: set[str] = set()
        current: str | None = project_id
        while current is not None and current not in seen and current in self.items:
            seen.add(current)
            current = self.items[current].project_id
        return seen

    def set_public(self, project: Project, public: bool) -> None:
        """Make public/private (400 when it already is)."""
        if project.isPublic == public:
            raise ApiError(400, f"Project is {'public' if public else 'private'} already")
        project.isPublic = public

    # ------------------------------------------------------------------ members and groups
    def add_member(self, project: Project, user_id: Any, role: str, actor_id: int) -> None:
        """Make a user a member (400 if already; ``USER_LINKED``)."""
        uid = self.users.get(user_id).id
        if uid in project.members:
            raise ApiError(400, "User is already member of this Project")
        project.members[uid] = role
        self.history.record("USER_LINKED", actor_id, (self.users.target(uid), self.target(project.id)))

    def remove_member(self, project: Project, user_id: Any, actor_id: int) -> None:
        """Remove a member (400 when not a member; ``USER_UNLINKED``)."""
        uid = self.users.get(user_id).id
        if project.members.pop(uid, None) is None:
            raise ApiError(400, "User is not a member of this Project")
        self.history.record("USER_UNLINKED", actor_id, (self.users.target(uid), self.target(project.id)))

    def add_guest(self, project: Project, email: str, actor_id: int) -> None:
        """Create a guest user with ``email`` and link it (400 if the user exists)."""
        if self.users.by_email(email) is not None:
            raise ApiError(400, "User already exists")
        self.add_member(project, self.users.add(email=email).id, "guest", actor_id)

    def members_json(self, project: Project, include_groups: bool = False) -> list[JSON]:
        """Members (and members of its user groups when ``include_groups``), with roles."""
        roles = dict(project.members)
        if include_groups:
            for gid in project.group_ids:
                for uid in self.users.groups[gid].user_ids:
                    roles.setdefault(uid, "member")
        out = []
        for uid, role in roles.items():
            user = self.users.by_id[uid]
            out.append(
                {
                    "id": user.id,
                    "first_name": user.first_name,
                    "last_name": user.last_name,
                    "email": user.email,
                    "user_role": {"name": role},
                }
            )
        return out

    def add_group(self, project: Project, group_id: Any) -> None:
        """Link a user group (400 if already linked)."""
        gid = self.users.group(group_id).id
        if gid in project.group_ids:
            raise ApiError(400, f"User group with id {gid} is already part of this Project")
        project.group_ids.append(gid)

    def remove_group(self, project: Project, group_id: Any) -> None:
        """Unlink a user group (400 if not linked)."""
        gid = self.users.group(group_id).id
        if gid not in project.group_ids:
            raise ApiError(400, f"User group with id {gid} is not part of this Project")
        project.group_ids.remove(gid)

    def groups_json(self, project: Project) -> list[JSON]:
        """User groups of a project, public form."""
        return [self.users.group_json(self.users.groups[gid]) for gid in project.group_ids]
