"""In-memory state of the Media Pocket API v2 sandbox (pure logic, no HTTP).

Every public method takes the state's re-entrant lock, so the HTTP layer can hold the lock
around a whole request and call several methods atomically. Time-driven lifecycles (media
ingest, DAG action runs) are materialised lazily from :attr:`SandboxState.clock`.
"""

from __future__ import annotations

import hashlib
import heapq
import itertools
import random
import secrets
import threading
import time
from collections.abc import Callable, Iterable
from datetime import datetime, timezone
from typing import Any

JSON = dict[str, Any]

DEFAULT_PERMISSIONS: frozenset[str] = frozenset({"ACTIONS_VIEW", "ACTIONS_START"})
DEFAULT_USER_EMAIL = "sandbox-user@example.com"
ID_ALPHABET = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_"
MEDIA_TYPES = ("placeholder", "video", "image", "audio", "article", "document", "other", "processing")

_EXTENSIONS: dict[str, tuple[str, ...]] = {
    "image": ("jpg", "jpeg", "png", "gif", "webp", "tif", "tiff", "bmp", "heic"),
    "video": ("mp4", "mov", "avi", "mkv", "webm", "m4v", "mxf"),
    "audio": ("mp3", "wav", "aac", "flac", "ogg", "m4a"),
    "document": ("pdf", "doc", "docx", "xls", "xlsx", "ppt", "pptx", "txt", "odt", "csv"),
}
EXTENSION_TYPES: dict[str, str] = {ext: kind for kind, exts in _EXTENSIONS.items() for ext in exts}

# (id, name, description, outcome); outcome is "completed", "failed" or "never".
DAG_ACTIONS: tuple[tuple[int, str, str, str], ...] = (
    (1, "Transcode", "Transcode the original media into delivery formats", "completed"),
    (2, "Auto-tag", "Detect and add AI tags to the asset", "completed"),
    (3, "Publish", "Publish the asset to the delivery channels", "completed"),
    (4, "Broken pipeline", "A pipeline that always fails (sandbox)", "failed"),
    (5, "Never ending", "A pipeline that never finishes (sandbox)", "never"),
)
DAG_ACTION_CATEGORY = "Sandbox"

_COMMENT_WHERE = '[WHERE "comments"."target_id" = $1 AND "comments"."target_type" = $2]'
COMMENT_NOT_FOUND = "Couldn't find Comment with 'id'={} " + _COMMENT_WHERE
MEDIA_NOT_FOUND = 'Couldn\'t find Media with \'id\'={} [WHERE "media"."asset_id" = $1]'


class ApiError(Exception):
    """A failure answered with ``status`` and ``{"error": message}``."""

    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status
        self.message = message


def media_type_for(filename: str) -> str:
    """Media type derived from a file name's extension."""
    ext = filename.rsplit(".", 1)[-1].lower() if "." in filename else ""
    return EXTENSION_TYPES.get(ext, "other")


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


class SandboxState:
    """The sandbox's data: assets, projects, users, comments, media, runs, history, keys."""

    def __init__(
        self,
        media_processing_seconds: float = 2.0,
        dag_action_run_seconds: float | tuple[float, float] = 5.0,
        history_page_size: int = 50,
        seed: int | None = None,
    ) -> None:
        self.media_processing_seconds = media_processing_seconds
        self.dag_action_run_seconds = dag_action_run_seconds
        self.history_page_size = history_page_size
        self.lock = threading.RLock()
        self._rng = random.Random(seed)
        self._offset = 0.0
        self._counters: dict[str, itertools.count[int]] = {}
        self._schedule: list[tuple[float, int, Callable[[float], None]]] = []
        self._assets: dict[str, JSON] = {}
        self._projects: dict[str, JSON] = {}
        self._pks: dict[str, int] = {}
        self._external_ids: dict[str, str] = {}
        self._users: dict[int, JSON] = {}
        self._user_groups: dict[int, JSON] = {}
        self._members: dict[str, dict[int, str]] = {}
        self._project_groups: dict[str, list[int]] = {}
        self._comments: dict[int, JSON] = {}
        self._media: dict[int, JSON] = {}
        self._asset_media: dict[str, list[int]] = {}
        self._collections: dict[str, JSON] = {}
        self._collection_assets: dict[str, list[str]] = {}
        self._runs: dict[int, JSON] = {}
        self._asset_runs: dict[str, list[int]] = {}
        self._history: dict[tuple[str, str], list[JSON]] = {}
        self._api_keys: dict[str, JSON] = {}
        self.faults: FaultConfig | None = None
        self.default_user_id = self.add_user(email=DEFAULT_USER_EMAIL)
        self.seed_project_id: str = self.add_project(title="Sandbox Project")["id"]
        self.seed_collection_id: str = self.add_collection(title="Sandbox Collection")["id"]

    # ------------------------------------------------------------------ clock, ids, scheduling
    @property
    def clock(self) -> float:
        """Current sandbox time (epoch seconds): wall clock plus the advanced offset."""
        return time.time() + self._offset

    def now(self) -> str:
        """Current sandbox time, formatted like the API."""
        return format_ts(self.clock)

    def advance(self, seconds: float) -> None:
        """Move the sandbox clock forward and materialise what became due."""
        with self.lock:
            self._offset += seconds
            self.tick()

    def tick(self) -> None:
        """Run the scheduled lifecycle steps that are due, in time order."""
        with self.lock:
            now = self.clock
            while self._schedule and self._schedule[0][0] <= now:
                due, _, step = heapq.heappop(self._schedule)
                step(due)

    def _at(self, due: float, step: Callable[[float], None]) -> None:
        heapq.heappush(self._schedule, (due, self._next("schedule"), step))

    def _next(self, name: str) -> int:
        return next(self._counters.setdefault(name, itertools.count(1)))

    def _bump(self, name: str, value: int) -> int:
        """Make the counter ``name`` continue after ``value`` (for objects created with a given id)."""
        counter = self._counters.setdefault(name, itertools.count(1))
        nxt = next(counter)
        self._counters[name] = itertools.count(max(nxt, value + 1))
        return value

    def _int_id(self, name: str, given: int | None) -> int:
        return self._next(name) if given is None else self._bump(name, given)

    def new_id(self) -> str:
        """A fresh random 20-character URL-safe id."""
        with self.lock:
            while True:
                value = "".join(self._rng.choice(ID_ALPHABET) for _ in range(20))
                if (
                    value not in self._assets
                    and value not in self._projects
                    and value not in self._collections
                ):
                    return value

    # ------------------------------------------------------------------ users and api keys
    def add_user(self, id: int | None = None, email: str | None = None) -> int:
        """Create a user and return its id."""
        with self.lock:
            uid = self._int_id("user", id)
            self._users[uid] = {
                "id": uid,
                "email": email or f"user-{uid}@example.com",
                "first_name": None,
                "last_name": None,
                "avatar_url": None,
            }
            return uid

    def get_user(self, user_id: Any) -> JSON:
        """The user ``user_id`` (404 ``Couldn't find User``)."""
        uid = parse_int(user_id)
        with self.lock:
            if uid is None or uid not in self._users:
                raise ApiError(404, f"Couldn't find User with 'id'={user_id}")
            return self._users[uid]

    def user_by_email(self, email: str) -> JSON | None:
        """The user with this email, if any."""
        with self.lock:
            return next((u for u in self._users.values() if u["email"] == email), None)

    def add_api_key(
        self, key: str, permissions: Iterable[str] | None = None, email: str | None = None
    ) -> int:
        """Register ``key`` for the user with ``email`` (created if needed; default user if None)."""
        with self.lock:
            if email is None:
                uid = self.default_user_id
            else:
                user = self.user_by_email(email)
                uid = user["id"] if user else self.add_user(email=email)
            self._api_keys[key] = {
                "id": self._next("api_key"),
                "key": key,
                "name": "default",
                "user_id": uid,
                "permissions": frozenset(DEFAULT_PERMISSIONS if permissions is None else permissions),
                "created_at": self.now(),
            }
            return uid

    def revoke_api_key(self, key: str) -> None:
        """Forget ``key``: requests with it get 401 from now on (a rotated-out key)."""
        with self.lock:
            self._api_keys.pop(key, None)

    def key_info(self, key: str | None) -> JSON | None:
        """The registered key record for ``key`` (None when unknown)."""
        if key is None:
            return None
        with self.lock:
            return self._api_keys.get(key)

    def create_api_key(self, user_id: int, name: str | None, permissions: Iterable[str]) -> JSON:
        """Create a new random key for ``user_id`` and return its full (unmasked) record."""
        with self.lock:
            key = "mp_" + secrets.token_urlsafe(24)
            user = self._users[user_id]
            self.add_api_key(key, permissions, email=user["email"])
            record = self._api_keys[key]
            record["name"] = name or f"key-{record['id']}"
            return self.render_api_key(record, masked=False)

    def list_api_keys(self, user_id: int) -> list[JSON]:
        """The keys of ``user_id``, masked."""
        with self.lock:
            return [self.render_api_key(k) for k in self._api_keys.values() if k["user_id"] == user_id]

    @staticmethod
    def render_api_key(record: JSON, masked: bool = True) -> JSON:
        """Public form of a key record; ``masked`` hides all but the first 4 characters."""
        key: str = record["key"]
        return {
            "id": record["id"],
            "name": record["name"],
            "key": key[:4] + "*" * 12 if masked else key,
            "permissions": sorted(record["permissions"]),
            "created_at": record["created_at"],
        }

    # ------------------------------------------------------------------ history
    def _target(self, kind: str, ref: Any) -> JSON:
        if kind == "User":
            user = self._users.get(ref, {})
            return {"id": ref, "first_name": user.get("first_name"), "last_name": user.get("last_name")}
        obj = (self._assets if kind == "Asset" else self._projects)[ref]
        return {"id": self._pks[ref], "elasticsearch_id": ref, "title": obj["title"]}

    def record_event(
        self, event_type: str, user_id: int, targets: list[tuple[str, Any]], at: float | None = None
    ) -> JSON:
        """Append a history event visible in the history of each Asset/Project target."""
        with self.lock:
            ts = format_ts(self.clock if at is None else at)
            event = {
                "id": self._next("event"),
                "user_id": user_id,
                "event_type": event_type,
                "created_at": ts,
                "updated_at": ts,
                "event_targets": [{"target_type": k, "target": self._target(k, r)} for k, r in targets],
            }
            feeds = [(kind, ref) for kind, ref in targets if kind != "User"]
            # A project's feed also shows what happens to the assets in it (an event feed of the project).
            for kind, ref in targets:
                parent = self._assets[ref]["project_id"] if kind == "Asset" and ref in self._assets else None
                if parent is not None and ("Project", parent) not in feeds:
                    feeds.append(("Project", parent))
            for feed in feeds:
                self._history.setdefault(feed, []).append(event)
            return event

    def history_page(self, kind: str, obj_id: str, cursor: str) -> JSON:
        """A page of history, newest first; ``cursor`` "0" starts, else the last id seen."""
        start = parse_int(cursor)
        if start is None:
            raise ApiError(422, f"Invalid parameter 'cursor' value \"{cursor}\": Invalid cursor")
        with self.lock:
            events = self._history.get((kind, obj_id), [])
            newest_first = reversed(events)
            if start:
                newest_first = (e for e in newest_first if e["id"] < start)
            page = list(itertools.islice(newest_first, self.history_page_size + 1))
            more = len(page) > self.history_page_size
            page = page[: self.history_page_size]
            return {"results": page, "next_cursor": str(page[-1]["id"]) if more else None}

    def events(self, kind: str, obj_id: str) -> list[JSON]:
        """All history events of an object, oldest first (for tests)."""
        with self.lock:
            self.tick()
            return list(self._history.get((kind, obj_id), []))

    # ------------------------------------------------------------------ assets
    @staticmethod
    def _norm(fields: JSON) -> JSON:
        out = dict(fields)
        if isinstance(out.get("category"), str):
            out["category"] = out["category"].lower()
        if isinstance(out.get("tags"), list):
            out["tags"] = [t.lower() if isinstance(t, str) else t for t in out["tags"]]
        return out

    def check_external_id(self, external_id: Any, own_id: str | None = None) -> None:
        """400 when ``external_id`` is already used by another asset/project."""
        with self.lock:
            if external_id is not None and self._external_ids.get(external_id, own_id) != own_id:
                raise ApiError(400, "External id has already been taken")

    def _set_external_id(self, obj: JSON, external_id: Any) -> None:
        if obj["external_id"] is not None:
            self._external_ids.pop(obj["external_id"], None)
        if external_id is not None:
            self._external_ids[external_id] = obj["id"]
        obj["external_id"] = external_id

    def add_asset(self, id: str | None = None, user_id: int | None = None, **fields: Any) -> JSON:
        """Create an asset (ASSET_ADDED recorded) and return it; ``fields`` override defaults."""
        with self.lock:
            uid = self.default_user_id if user_id is None else user_id
            aid = id or self.new_id()
            now = self.now()
            asset: JSON = {
                "id": aid,
                "external_id": None,
                "parent_id": None,
                "project_id": None,
                "owner": self._users[uid]["email"],
                "title": "Untitled",
                "description": None,
                "category": None,
                "tags": [],
                "ai_tags": [],
                "status": "open",
                "media_type": "placeholder",
                "original_filename": None,
                "drop_folder_id": None,
                "md5_sum": None,
                "created_date": now,
                "modification_date": now,
                "deleted": None,
            }
            external_id = fields.pop("external_id", None)
            asset.update(self._norm(fields))
            self._assets[aid] = asset
            self._pks[aid] = self._next("pk")
            self._set_external_id(asset, external_id)
            self.record_event("ASSET_ADDED", uid, [("Asset", aid)])
            return dict(asset)

    def asset(self, asset_id: str) -> JSON:
        """The stored asset ``asset_id`` (404 ``asset not found``)."""
        with self.lock:
            found = self._assets.get(asset_id)
            if found is None:
                raise ApiError(404, "asset not found")
            return found

    @property
    def assets(self) -> dict[str, JSON]:
        """Snapshot of all assets by id."""
        with self.lock:
            self.tick()
            return {k: dict(v) for k, v in self._assets.items()}

    def update_asset(self, asset_id: str, user_id: int, fields: JSON) -> JSON:
        """Update metadata fields (ASSET_EDITED_METADATA) and return the asset."""
        return self._update("Asset", self.asset(asset_id), user_id, fields, "ASSET_EDITED_METADATA")

    def _update(self, kind: str, obj: JSON, user_id: int, fields: JSON, event: str) -> JSON:
        with self.lock:
            if "external_id" in fields:
                self.check_external_id(fields["external_id"], obj["id"])
                self._set_external_id(obj, fields.pop("external_id"))
            obj.update(self._norm(fields))
            obj["modification_date"] = self.now()
            self.record_event(event, user_id, [(kind, obj["id"])])
            return obj

    def set_trashed(self, kind: str, obj_id: str, trashed: bool, user_id: int | None = None) -> None:
        """Move an asset/project to (or out of) the trash bin; 400 when restoring a non-trashed one."""
        with self.lock:
            obj = self.asset(obj_id) if kind == "Asset" else self.project(obj_id)
            if not trashed and obj["deleted"] is None:
                noun = "Assets" if kind == "Asset" else "projects"
                raise ApiError(400, f"Can not restore {noun} that is not in trash bin")
            obj["deleted"] = self.now() if trashed else None
            prefix = "ASSET" if kind == "Asset" else "PROJECT"
            uid = self.default_user_id if user_id is None else user_id
            self.record_event(f"{prefix}_{'REMOVED' if trashed else 'RESTORED'}", uid, [(kind, obj_id)])

    def trash_asset(self, asset_id: str) -> None:
        """Put an asset in the trash bin (test helper)."""
        self.set_trashed("Asset", asset_id, True)

    def trash_project(self, project_id: str) -> None:
        """Put a project in the trash bin (test helper)."""
        self.set_trashed("Project", project_id, True)

    def delete_asset(self, asset_id: str) -> None:
        """Delete an asset permanently with its media, comments and runs."""
        with self.lock:
            asset = self.asset(asset_id)
            self._set_external_id(asset, None)
            del self._assets[asset_id]
            for mid in self._asset_media.pop(asset_id, []):
                self._media.pop(mid, None)
            for rid in self._asset_runs.pop(asset_id, []):
                self._runs.pop(rid, None)
            self._drop_comments("Asset", asset_id)
            for members in self._collection_assets.values():
                if asset_id in members:
                    members.remove(asset_id)

    # ------------------------------------------------------------------ linking (assign/unassign)
    def assign(self, kind: str, obj_id: str, to_project_id: str, user_id: int) -> str | None:
        """Link an asset/project under ``to_project_id``; returns an error text or None."""
        with self.lock:
            obj = self.asset(obj_id) if kind == "Asset" else self.project(obj_id)
            if kind == "Project" and to_project_id == obj_id:
                raise ApiError(400, "A project cannot be its own parent project.")
            target = self._projects.get(to_project_id)
            if target is None or target["deleted"] is not None:
                return "Project not found."
            if kind == "Project" and obj_id in self._ancestors(to_project_id):
                raise ApiError(400, "A project cannot be its own parent project.")
            obj["project_id"] = to_project_id
            obj["modification_date"] = self.now()
            self.record_event(f"{kind.upper()}_LINKED", user_id, [(kind, obj_id), ("Project", to_project_id)])
            return None

    def unassign(self, kind: str, obj_id: str, user_id: int) -> str | None:
        """Unlink an asset/project from its parent project; returns an error text or None."""
        with self.lock:
            obj = self.asset(obj_id) if kind == "Asset" else self.project(obj_id)
            parent = obj["project_id"]
            if parent is None:
                return f"{obj_id} does not have a parent project"
            obj["project_id"] = None
            obj["modification_date"] = self.now()
            targets: list[tuple[str, Any]] = [(kind, obj_id)]
            if parent in self._projects:
                targets.append(("Project", parent))
            self.record_event(f"{kind.upper()}_UNLINKED", user_id, targets)
            return None

    def _ancestors(self, project_id: str) -> set[str]:
        seen: set[str] = set()
        current: str | None = project_id
        while current is not None and current not in seen and current in self._projects:
            seen.add(current)
            current = self._projects[current]["project_id"]
        return seen

    # ------------------------------------------------------------------ media
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
        with self.lock:
            asset = self.asset(asset_id)
            uid = self.default_user_id if user_id is None else user_id
            for old in self._asset_media.pop(asset_id, []):
                self._media.pop(old, None)
            mid = self._int_id("media", id)
            media: JSON = {
                "id": mid,
                "asset_id": asset_id,
                "filename": filename,
                "file_url": file_url,
                "media_type": "processing",
                "status": "processing",
                "size": 0,
                "created_at": self.now(),
            }
            self._media[mid] = media
            self._asset_media[asset_id] = [mid]
            asset.update(media_type="processing", original_filename=filename, md5_sum=None)
            asset["modification_date"] = self.now()
            self.record_event("ASSET_STARTED_INGEST", uid, [("Asset", asset_id)])
            if processed:
                self._finish_ingest(mid, self.clock)
            else:
                self._at(
                    self.clock + self.media_processing_seconds, lambda due: self._finish_ingest(mid, due)
                )
            return dict(media)

    def _finish_ingest(self, media_id: int, due: float) -> None:
        media = self._media.get(media_id)
        if media is None or media["status"] != "processing":
            return
        asset = self._assets.get(media["asset_id"])
        kind = media_type_for(media["filename"])
        digest = hashlib.md5(f"{media_id}:{media['filename']}".encode(), usedforsecurity=False)
        media.update(status="ready", media_type=kind, size=1024 * (1 + self._rng.randrange(10_000)))
        if asset is None:
            return
        asset.update(media_type=kind, md5_sum=digest.hexdigest(), modification_date=format_ts(due))
        self.record_event("ASSET_FINISHED_INGEST", 0, [("Asset", asset["id"])], at=due)

    def media_of(self, asset_id: str) -> list[JSON]:
        """The media records of an asset."""
        with self.lock:
            return [self._media[m] for m in self._asset_media.get(asset_id, [])]

    def find_media(self, asset_id: str, media_id: Any) -> JSON:
        """The media ``media_id`` of ``asset_id`` (404 ``Couldn't find Media``)."""
        mid = parse_int(media_id)
        with self.lock:
            media = self._media.get(mid) if mid is not None else None
            if media is None or media["asset_id"] != asset_id:
                raise ApiError(404, MEDIA_NOT_FOUND.format(media_id))
            return media

    def remove_media(self, asset_id: str) -> bool:
        """Remove all media of an asset (back to placeholder); False when there was none."""
        with self.lock:
            asset = self.asset(asset_id)
            removed = self._asset_media.pop(asset_id, [])
            if not removed:
                return False
            for mid in removed:
                self._media.pop(mid, None)
            asset.update(media_type="placeholder", original_filename=None, md5_sum=None)
            asset["modification_date"] = self.now()
            return True

    # ------------------------------------------------------------------ comments
    def add_comment(
        self,
        target_type: str,
        target_id: str,
        message: str,
        user_id: int | None = None,
        id: int | None = None,
    ) -> JSON:
        """Add a comment (``target_type`` "Asset" or "Project") and return its public form."""
        with self.lock:
            kind = target_type.capitalize()
            self.asset(target_id) if kind == "Asset" else self.project(target_id)
            uid = self.default_user_id if user_id is None else user_id
            cid = self._int_id("comment", id)
            self._comments[cid] = {
                "id": cid,
                "message": message,
                "updated_at": self.now(),
                "user_id": uid,
                "target": (kind, target_id),
            }
            self.record_event(f"{kind.upper()}_ADDED_COMMENT", uid, [(kind, target_id)])
            return self.render_comment(self._comments[cid])

    def render_comment(self, comment: JSON) -> JSON:
        """Public form of a comment."""
        with self.lock:
            return {
                "id": comment["id"],
                "message": comment["message"],
                "updated_at": comment["updated_at"],
                "user": dict(self._users[comment["user_id"]]),
                "mentioned_users": [],
            }

    def comments_of(self, kind: str, target_id: str) -> list[JSON]:
        """Comments of an asset/project, oldest first."""
        with self.lock:
            return [c for c in self._comments.values() if c["target"] == (kind, target_id)]

    def find_comment(self, kind: str, target_id: str, comment_id: Any) -> JSON:
        """The comment ``comment_id`` on the target (404 ``Couldn't find Comment``)."""
        cid = parse_int(comment_id)
        with self.lock:
            comment = self._comments.get(cid) if cid is not None else None
            if comment is None or comment["target"] != (kind, target_id):
                raise ApiError(404, COMMENT_NOT_FOUND.format(comment_id))
            return comment

    def owned_comment(self, kind: str, target_id: str, comment_id: Any, user_id: int) -> JSON:
        """Like :meth:`find_comment`, and 403 when ``user_id`` does not own it."""
        comment = self.find_comment(kind, target_id, comment_id)
        if comment["user_id"] != user_id:
            raise ApiError(403, "Not allowed to perform this action")
        return comment

    def delete_comment(self, comment_id: int) -> None:
        """Delete a comment."""
        with self.lock:
            self._comments.pop(comment_id, None)

    def _drop_comments(self, kind: str, target_id: str) -> None:
        for comment in self.comments_of(kind, target_id):
            del self._comments[comment["id"]]

    # ------------------------------------------------------------------ collections
    def add_collection(
        self,
        id: str | None = None,
        asset_ids: Iterable[str] = (),
        title: str = "Sample Collection",
        **fields: Any,
    ) -> JSON:
        """Create a collection containing ``asset_ids`` and return it."""
        with self.lock:
            cid = id or self.new_id()
            now = self.now()
            collection: JSON = {
                "id": cid,
                "title": title,
                "description": None,
                "category": None,
                "tags": [],
                "owner": self._users[self.default_user_id]["email"],
                "media_type": "collection",
                "isPublic": False,
                "created_date": now,
                "modification_date": now,
                "original_title": title,
            }
            collection.update(fields)
            self._collections[cid] = collection
            self._collection_assets[cid] = list(asset_ids)
            return dict(collection)

    def add_to_collection(self, collection_id: str, asset_id: str) -> None:
        """Put an asset into a collection."""
        with self.lock:
            self._collection_assets[collection_id].append(asset_id)

    def collections_of(self, asset_id: str) -> list[JSON]:
        """Collections that contain ``asset_id``."""
        with self.lock:
            return [
                dict(self._collections[c]) for c, ids in self._collection_assets.items() if asset_id in ids
            ]

    # ------------------------------------------------------------------ dag actions and runs
    @staticmethod
    def dag_actions() -> list[JSON]:
        """The DAG actions available on every asset."""
        return [
            {"id": aid, "name": name, "description": desc, "category": DAG_ACTION_CATEGORY}
            for aid, name, desc, _ in DAG_ACTIONS
        ]

    def start_run(self, asset_id: str, dag_action_id: Any, user_id: int | None = None) -> JSON:
        """Start a DAG action run on an asset (404 for an unknown action) and return it."""
        with self.lock:
            self.asset(asset_id)
            aid = parse_int(dag_action_id)
            action = next((a for a in DAG_ACTIONS if a[0] == aid), None)
            if action is None:
                raise ApiError(404, f"Couldn't find DagAction with 'id'={dag_action_id}")
            rid = self._next("run")
            start = self.clock
            run: JSON = {
                "id": rid,
                "asset_id": asset_id,
                "status": "running",
                "created_at": format_ts(start),
                "dag_action_id": action[0],
                "messages": [],
            }
            self._runs[rid] = run
            self._asset_runs.setdefault(asset_id, []).append(rid)
            self._run_message(run, "Set in queue...", start)
            total = self._run_seconds()
            self._at(start + 0.2 * total, lambda due: self._run_message(run, "Started processing", due))
            outcome = action[3]
            if outcome != "never":
                self._at(
                    start + 0.5 * total, lambda d: self._run_message(run, f"Processing asset {asset_id}", d)
                )
                self._at(start + total, lambda due: self._finish_run(run, outcome, due))
            return self.render_run(run)

    def _run_seconds(self) -> float:
        """How long a new run takes: ``dag_action_run_seconds``, or a seeded draw from a (low, high) range."""
        duration = self.dag_action_run_seconds
        if isinstance(duration, tuple):
            return self._rng.uniform(*duration)
        return float(duration)

    def set_run_status(self, run_id: int, status: str) -> None:
        """Force a run's status (tests of statuses the documents do not show, e.g. "Transcoding")."""
        with self.lock:
            self.tick()
            self._runs[run_id]["status"] = status

    def _run_message(self, run: JSON, message: str, due: float) -> None:
        run["messages"].append(
            {"id": self._next("run_message"), "message": message, "created_at": format_ts(due)}
        )

    def _finish_run(self, run: JSON, outcome: str, due: float) -> None:
        run["status"] = outcome
        text = "Finished successfully" if outcome == "completed" else "Error: pipeline step failed"
        self._run_message(run, text, due)

    def render_run(self, run: JSON) -> JSON:
        """Public form of a run."""
        action = next(a for a in self.dag_actions() if a["id"] == run["dag_action_id"])
        return {
            "id": run["id"],
            "status": run["status"],
            "created_at": run["created_at"],
            "dag_action": action,
            "dag_action_run_messages": [dict(m) for m in run["messages"]],
        }

    def runs_of(self, asset_id: str) -> list[JSON]:
        """Runs of an asset, newest first."""
        with self.lock:
            return [self.render_run(self._runs[r]) for r in reversed(self._asset_runs.get(asset_id, []))]

    @property
    def runs(self) -> dict[int, JSON]:
        """Snapshot of all runs by id (public form plus ``asset_id``)."""
        with self.lock:
            self.tick()
            return {rid: {**self.render_run(r), "asset_id": r["asset_id"]} for rid, r in self._runs.items()}

    # ------------------------------------------------------------------ projects
    def add_project(self, id: str | None = None, user_id: int | None = None, **fields: Any) -> JSON:
        """Create a project (owner linked as admin; PROJECT_ADDED and USER_LINKED recorded)."""
        with self.lock:
            uid = self.default_user_id if user_id is None else user_id
            pid = id or self.new_id()
            now = self.now()
            title = fields.get("title", "Untitled project")
            project: JSON = {
                "id": pid,
                "external_id": None,
                "project_id": None,
                "owner": self._users[uid]["email"],
                "title": title,
                "description": None,
                "category": None,
                "tags": [],
                "media_type": "project",
                "isPublic": False,
                "thumbnail_asset_id": None,
                "created_date": now,
                "modification_date": now,
                "deleted": None,
                "original_title": title,
            }
            external_id = fields.pop("external_id", None)
            project.update(self._norm(fields))
            self._projects[pid] = project
            self._pks[pid] = self._next("pk")
            self._set_external_id(project, external_id)
            self._members[pid] = {}
            self._project_groups[pid] = []
            self.record_event("PROJECT_ADDED", uid, [("Project", pid)])
            self.add_project_user(pid, uid, role="admin", actor_id=0)
            return dict(project)

    def project(self, project_id: str) -> JSON:
        """The stored project ``project_id`` (404 ``project not found``)."""
        with self.lock:
            found = self._projects.get(project_id)
            if found is None:
                raise ApiError(404, "project not found")
            return found

    @property
    def projects(self) -> dict[str, JSON]:
        """Snapshot of all projects by id."""
        with self.lock:
            return {k: dict(v) for k, v in self._projects.items()}

    def update_project(self, project_id: str, user_id: int, fields: JSON) -> JSON:
        """Update a project's metadata and return it."""
        return self._update("Project", self.project(project_id), user_id, fields, "PROJECT_EDITED_METADATA")

    def delete_project(self, project_id: str) -> None:
        """Delete a project permanently; its assets and sub-projects become top-level."""
        with self.lock:
            project = self.project(project_id)
            self._set_external_id(project, None)
            del self._projects[project_id]
            for obj in itertools.chain(self._assets.values(), self._projects.values()):
                if obj["project_id"] == project_id:
                    obj["project_id"] = None
            self._drop_comments("Project", project_id)

    def children(self, project_id: str) -> tuple[list[JSON], list[JSON]]:
        """Non-trashed assets and sub-projects directly inside a project."""
        with self.lock:
            assets = [
                a for a in self._assets.values() if a["project_id"] == project_id and a["deleted"] is None
            ]
            subs = [
                p for p in self._projects.values() if p["project_id"] == project_id and p["deleted"] is None
            ]
            return assets, subs

    def top_level_projects(self) -> list[JSON]:
        """Non-trashed projects without a parent."""
        with self.lock:
            return [p for p in self._projects.values() if p["project_id"] is None and p["deleted"] is None]

    def attachments_of(self, parent_id: str) -> list[JSON]:
        """Non-trashed attachments (assets whose parent is ``parent_id``)."""
        with self.lock:
            return [a for a in self._assets.values() if a["parent_id"] == parent_id and a["deleted"] is None]

    def stats(self, project_id: str) -> JSON:
        """Counts of a project's direct content by media type, and total media size."""
        with self.lock:
            assets, subs = self.children(project_id)
            counts = dict.fromkeys((*MEDIA_TYPES, "project"), 0)
            total = 0
            for asset in assets:
                counts[asset["media_type"]] = counts.get(asset["media_type"], 0) + 1
                total += sum(m["size"] for m in self.media_of(asset["id"]))
            counts["project"] = len(subs)
            return {"assets": len(assets), "projects": len(subs), "total_size": total, "media_types": counts}

    def set_project_public(self, project_id: str, public: bool) -> None:
        """Make a project public/private (400 when it already is)."""
        with self.lock:
            project = self.project(project_id)
            if project["isPublic"] == public:
                raise ApiError(400, f"Project is {'public' if public else 'private'} already")
            project["isPublic"] = public

    def set_thumbnail(self, project_id: str, asset_id: str | None) -> None:
        """Set (or with None, remove) a project's thumbnail asset, validated like the API."""
        with self.lock:
            project = self.project(project_id)
            if asset_id is None:
                if project["thumbnail_asset_id"] is None:
                    raise ApiError(400, "Project has no thumbnail asset")
            else:
                asset = self._assets.get(asset_id)
                if asset is None:
                    raise ApiError(404, f"Could not find asset with id {asset_id}")
                if asset["project_id"] != project_id:
                    raise ApiError(400, "Thumbnail asset must belong to the given project")
                if asset["media_type"] != "image":
                    raise ApiError(400, "Thumbnail asset must be an image")
            project["thumbnail_asset_id"] = asset_id

    # ------------------------------------------------------------------ project members and groups
    def add_project_user(
        self, project_id: str, user_id: Any, role: str = "member", actor_id: int | None = None
    ) -> None:
        """Make a user a project member (400 if already; USER_LINKED recorded)."""
        with self.lock:
            members = self._members[self.project(project_id)["id"]]
            uid = self.get_user(user_id)["id"]
            if uid in members:
                raise ApiError(400, "User is already member of this Project")
            members[uid] = role
            actor = self.default_user_id if actor_id is None else actor_id
            self.record_event("USER_LINKED", actor, [("User", uid), ("Project", project_id)])

    def remove_project_user(self, project_id: str, user_id: Any, actor_id: int | None = None) -> None:
        """Remove a member (400 when not a member; USER_UNLINKED recorded)."""
        with self.lock:
            members = self._members[self.project(project_id)["id"]]
            uid = self.get_user(user_id)["id"]
            if members.pop(uid, None) is None:
                raise ApiError(400, "User is not a member of this Project")
            actor = self.default_user_id if actor_id is None else actor_id
            self.record_event("USER_UNLINKED", actor, [("User", uid), ("Project", project_id)])

    def add_guest(self, project_id: str, email: str, actor_id: int) -> None:
        """Create a guest user with ``email`` and link it to the project (400 if the user exists)."""
        with self.lock:
            self.project(project_id)
            if self.user_by_email(email) is not None:
                raise ApiError(400, "User already exists")
            self.add_project_user(project_id, self.add_user(email=email), role="guest", actor_id=actor_id)

    def project_users(self, project_id: str, include_groups: bool = False) -> list[JSON]:
        """Members of a project (and of its user groups when ``include_groups``), with roles."""
        with self.lock:
            roles = dict(self._members[self.project(project_id)["id"]])
            if include_groups:
                for gid in self._project_groups[project_id]:
                    for uid in self._user_groups[gid]["user_ids"]:
                        roles.setdefault(uid, "member")
            return [
                {
                    **{k: self._users[u][k] for k in ("id", "first_name", "last_name", "email")},
                    "user_role": {"name": role},
                }
                for u, role in roles.items()
            ]

    def add_user_group(
        self,
        id: int | None = None,
        name: str | None = None,
        user_ids: Iterable[int] = (),
        description: str = "Sandbox user group",
    ) -> int:
        """Create a user group and return its id."""
        with self.lock:
            gid = self._int_id("user_group", id)
            now = self.now()
            self._user_groups[gid] = {
                "id": gid,
                "name": name or f"user-group-{gid}",
                "description": description,
                "created_at": now,
                "updated_at": now,
                "user_ids": list(user_ids),
            }
            return gid

    def _group(self, group_id: Any) -> int:
        gid = parse_int(group_id)
        if gid is None or gid not in self._user_groups:
            raise ApiError(404, f"Couldn't find UserGroup with 'id'={group_id}")
        return gid

    def add_project_user_group(self, project_id: str, group_id: Any) -> None:
        """Link a user group to a project (400 if already linked)."""
        with self.lock:
            groups = self._project_groups[self.project(project_id)["id"]]
            gid = self._group(group_id)
            if gid in groups:
                raise ApiError(400, f"User group with id {gid} is already part of this Project")
            groups.append(gid)

    def remove_project_user_group(self, project_id: str, group_id: Any) -> None:
        """Unlink a user group from a project (400 if not linked)."""
        with self.lock:
            groups = self._project_groups[self.project(project_id)["id"]]
            gid = self._group(group_id)
            if gid not in groups:
                raise ApiError(400, f"User group with id {gid} is not part of this Project")
            groups.remove(gid)

    def project_user_groups(self, project_id: str) -> list[JSON]:
        """User groups of a project, public form."""
        with self.lock:
            out = []
            for gid in self._project_groups[self.project(project_id)["id"]]:
                group = dict(self._user_groups[gid])
                group["users"] = [dict(self._users[u]) for u in group.pop("user_ids")]
                out.append(group)
            return out


FAULT_ERRORS: dict[str, str] = {
    "500": "Internal Server Error",
    "502": "Bad Gateway",
    "503": "Service Unavailable",
    "504": "Gateway Timeout",
    "429": "Too Many Requests",
}
FAULT_KINDS: frozenset[str] = frozenset({*FAULT_ERRORS, "drop", "lost", "delay", "slow", "raw"})


class FaultConfig:
    """Random fault injection: a fraction ``rate`` of requests get a fault picked by weight.

    The choice sequence is deterministic for a given ``seed`` (a fresh config restarts it).
    """

    def __init__(
        self,
        rate: float = 0.0,
        kinds: dict[str, float] | None = None,
        seed: int | None = None,
        retry_after: int = 1,
        delay: float = 0.0,
    ) -> None:
        self.rate = rate
        self.kinds = dict(kinds) if kinds else {"500": 1.0, "502": 1.0, "503": 1.0, "429": 1.0}
        unknown = set(self.kinds) - FAULT_KINDS
        if unknown:
            raise ValueError(f"unknown fault kinds: {sorted(unknown)}")
        self.seed = seed
        self.retry_after = retry_after
        self.delay = delay
        self._rng = random.Random(seed)
        self._lock = threading.Lock()

    def pick(self) -> str | None:
        """The fault for the next request, or None."""
        with self._lock:
            if self.rate <= 0 or self._rng.random() >= self.rate:
                return None
            return self._rng.choices(list(self.kinds), weights=list(self.kinds.values()))[0]

    def __repr__(self) -> str:
        return f"FaultConfig(rate={self.rate}, kinds={self.kinds}, seed={self.seed})"
