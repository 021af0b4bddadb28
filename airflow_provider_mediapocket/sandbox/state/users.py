"""Users, user groups and API keys."""

from __future__ import annotations

import secrets
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

from airflow_provider_mediapocket.sandbox.state.base import JSON, Clock, Target, lookup

DEFAULT_PERMISSIONS: frozenset[str] = frozenset({"ACTIONS_VIEW", "ACTIONS_START"})
DEFAULT_USER_EMAIL = "sandbox-user@example.com"


@dataclass
class User:
    """A user."""

    id: int
    email: str
    first_name: str | None = None
    last_name: str | None = None
    avatar_url: str | None = None

    def to_json(self) -> JSON:
        """Public form."""
        return {
            "id": self.id,
            "email": self.email,
            "first_name": self.first_name,
            "last_name": self.last_name,
            "avatar_url": self.avatar_url,
        }


@dataclass
class UserGroup:
    """A named group of users."""

    id: int
    name: str
    description: str
    created_at: str
    updated_at: str
    user_ids: list[int] = field(default_factory=list)


@dataclass
class ApiKey:
    """A registered API key and what it may do."""

    id: int
    key: str
    name: str
    user_id: int
    permissions: frozenset[str]
    created_at: str

    def to_json(self, masked: bool = True) -> JSON:
        """Public form; ``masked`` hides all but the first 4 characters."""
        return {
            "id": self.id,
            "name": self.name,
            "key": self.key[:4] + "*" * 12 if masked else self.key,
            "permissions": sorted(self.permissions),
            "created_at": self.created_at,
        }


class Users:
    """Users (one default user owns what the sandbox creates by itself), user groups and API keys."""

    def __init__(self, clock: Clock) -> None:
        self.clock = clock
        self.by_id: dict[int, User] = {}
        self.groups: dict[int, UserGroup] = {}
        self.keys: dict[str, ApiKey] = {}
        self.default_id = self.add(email=DEFAULT_USER_EMAIL).id

    def add(self, id: int | None = None, email: str | None = None) -> User:
        """Create a user."""
        uid = self.clock.int_id("user", id)
        user = self.by_id[uid] = User(uid, email or f"user-{uid}@example.com")
        return user

    def get(self, user_id: Any) -> User:
        """The user ``user_id`` (404 ``Couldn't find User``)."""
        return lookup(self.by_id, user_id, "User")

    def by_email(self, email: str) -> User | None:
        """The user with this email, if any."""
        return next((u for u in self.by_id.values() if u.email == email), None)

    def actor(self, user_id: int | None) -> int:
        """``user_id``, or the default user's id when None."""
        return self.default_id if user_id is None else user_id

    def target(self, user_id: int) -> Target:
        """A history target for ``user_id``."""
        user = self.by_id.get(user_id)
        shown: JSON = {"id": user_id, "first_name": None, "last_name": None}
        if user is not None:
            shown.update(first_name=user.first_name, last_name=user.last_name)
        return Target("User", user_id, shown, tracked=False)

    # ------------------------------------------------------------------ user groups
    def add_group(self, id: int | None, name: str | None, user_ids: Iterable[int], description: str) -> UserGroup:
        """Create a user group."""
        gid = self.clock.int_id("user_group", id)
        now = self.clock.stamp()
        group = UserGroup(gid, name or f"user-group-{gid}", description, now, now, list(user_ids))
        self.groups[gid] = group
        return group

    def group(self, group_id: Any) -> UserGroup:
        """The group ``group_id`` (404 ``Couldn't find UserGroup``)."""
        return lookup(self.groups, group_id, "UserGroup")

    def group_json(self, group: UserGroup) -> JSON:
        """Public form of a group, with its users."""
        return {
            "id": group.id,
            "name": group.name,
            "description": group.description,
            "created_at": group.created_at,
            "updated_at": group.updated_at,
            "users": [self.by_id[u].to_json() for u in group.user_ids],
        }

    # ------------------------------------------------------------------ api keys
    def add_key(self, key: str, permissions: Iterable[str] | None = None, email: str | None = None) -> ApiKey:
        """Register ``key`` for the user with ``email`` (created if needed; default user if None)."""
        if email is None:
            uid = self.default_id
        else:
            user = self.by_email(email)
            uid = user.id if user else self.add(email=email).id
        record = ApiKey(
            self.clock.next("api_key"),
            key,
            "default",
            uid,
            frozenset(DEFAULT_PERMISSIONS if permissions is None else permissions),
            self.clock.stamp(),
        )
        self.keys[key] = record
        return record

    def create_key(self, user_id: int, name: str | None, permissions: Iterable[str]) -> ApiKey:
        """A new random key for ``user_id``."""
        record = self.add_key("mp_" + secrets.token_urlsafe(24), permissions, email=self.by_id[user_id].email)
        record.name = name or f"key-{record.id}"
        return record

    def keys_of(self, user_id: int) -> list[ApiKey]:
        """The keys of ``user_id``."""
        return [k for k in self.keys.values() if k.user_id == user_id]
