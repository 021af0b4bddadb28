"""Comments on assets and projects."""

from __future__ import annotations

import functools
from dataclasses import dataclass
from typing import Any

from airflow_provider_mediapocket.sandbox.state.base import JSON, ApiError, Clock, Kind, parse_int
from airflow_provider_mediapocket.sandbox.state.catalog import Catalog
from airflow_provider_mediapocket.sandbox.state.users import Users

_COMMENT_WHERE = '[WHERE "comments"."target_id" = $1 AND "comments"."target_type" = $2]'
COMMENT_NOT_FOUND = "Couldn't find Comment with 'id'={} " + _COMMENT_WHERE


@dataclass
class Comment:
    """A comment on the asset/project ``target_id``."""

    id: int
    message: str
    updated_at: str
    user_id: int
    kind: Kind
    target_id: str


class Comments:
    """Comments by id; deleting an asset/project drops its comments."""

    def __init__(self, clock: Clock, users: Users, *catalogs: Catalog[Any]) -> None:
        self.clock = clock
        self.users = users
        self.by_id: dict[int, Comment] = {}
        for catalog in catalogs:
            catalog.on_delete.append(functools.partial(self.drop, catalog.kind))

    def add(self, catalog: Catalog[Any], target_id: str, message: str, user_id: int, id: int | None) -> Comment:
        """Add a comment (``<KIND>_ADDED_COMMENT``); 404 when the target is unknown."""
        catalog.get(target_id)
        cid = self.clock.int_id("comment", id)
        comment = self.by_id[cid] = Comment(cid, message, self.clock.stamp(), user_id, catalog.kind, target_id)
        catalog.record("ADDED_COMMENT", user_id, target_id)
        return comment

    def to_json(self, comment: Comment) -> JSON:
        """Public form."""
        return {
            "id": comment.id,
            "message": comment.message,
            "updated_at": comment.updated_at,
            "user": self.users.by_id[comment.user_id].to_json(),
            "mentioned_users": [],
        }

    def of(self, kind: Kind, target_id: str) -> list[Comment]:
        """Comments of an asset/project, oldest first."""
        return [c for c in self.by_id.values() if c.kind is kind and c.target_id == target_id]

    def find(self, kind: Kind, target_id: str, comment_id: Any) -> Comment:
        """The comment ``comment_id`` on the target (404 ``Couldn't find Comment``)."""
        cid = parse_int(comment_id)
        comment = self.by_id.get(cid) if cid is not None else None
        if comment is None or comment.kind is not kind or comment.target_id != target_id:
            raise ApiError(404, COMMENT_NOT_FOUND.format(comment_id))
        return comment

    def owned(self, kind: Kind, target_id: str, comment_id: Any, user_id: int) -> Comment:
        """Like :meth:`find`, and 403 when ``user_id`` does not own it."""
        comment = self.find(kind, target_id, comment_id)
        if comment.user_id != user_id:
            raise ApiError(403, "Not allowed to perform this action")
        return comment

    def edit(self, comment: Comment, message: str) -> None:
        """Change the text of a comment."""
        comment.message, comment.updated_at = message, self.clock.stamp()

    def delete(self, comment: Comment) -> None:
        """Delete a comment."""
        self.by_id.pop(comment.id, None)

    def drop(self, kind: Kind, target_id: str) -> None:
        """Delete the comments of an asset/project."""
        for comment in self.of(kind, target_id):
            del self.by_id[comment.id]
