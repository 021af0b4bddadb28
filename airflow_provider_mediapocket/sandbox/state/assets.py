"""Assets, their media (with the timed ingest) and the collections that hold them."""

from __future__ import annotations

import hashlib
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any, ClassVar

from airflow_provider_mediapocket.sandbox.state.base import ASSET, JSON, ApiError, Clock, parse_int
from airflow_provider_mediapocket.sandbox.state.catalog import Catalog, Entry, Listed

MEDIA_TYPES = ("placeholder", "video", "image", "audio", "article", "document", "other", "processing")
_EXTENSIONS: dict[str, tuple[str, ...]] = {
    "image": ("jpg", "jpeg", "png", "gif", "webp", "tif", "tiff", "bmp", "heic"),
    "video": ("mp4", "mov", "avi", "mkv", "webm", "m4v", "mxf"),
    "audio": ("mp3", "wav", "aac", "flac", "ogg", "m4a"),
    "document": ("pdf", "doc", "docx", "xls", "xlsx", "ppt", "pptx", "txt", "odt", "csv"),
}
EXTENSION_TYPES: dict[str, str] = {ext: kind for kind, exts in _EXTENSIONS.items() for ext in exts}
MEDIA_NOT_FOUND = 'Couldn\'t find Media with \'id\'={} [WHERE "media"."asset_id" = $1]'


def media_type_for(filename: str) -> str:
    """Media type derived from a file name's extension."""
    ext = filename.rsplit(".", 1)[-1].lower() if "." in filename else ""
    return EXTENSION_TYPES.get(ext, "other")


@dataclass
class Asset(Entry):
    """An asset."""

    FIELDS: ClassVar[tuple[str, ...]] = (
        "id", "external_id", "parent_id", "project_id", "owner", "title", "description", "category", "tags",
        "ai_tags", "status", "media_type", "original_filename", "drop_folder_id", "md5_sum", "created_date",
        "modification_date", "deleted",
    )  # fmt: skip
    parent_id: str | None = None
    ai_tags: list[Any] = field(default_factory=list)
    status: str = "open"
    original_filename: str | None = None
    drop_folder_id: Any = None
    md5_sum: str | None = None


class Assets(Catalog[Asset]):
    """The assets."""

    KIND = ASSET

    def new(self, oid: str, pk: int, owner: str, now: str, fields: JSON) -> Asset:
        """A new placeholder asset."""
        return Asset(oid, owner, "Untitled", now, now, "placeholder", pk)


@dataclass
class Media:
    """The media (file) of an asset."""

    id: int
    asset_id: str
    filename: str
    file_url: str | None
    created_at: str
    media_type: str = "processing"
    status: str = "processing"
    size: int = 0


class MediaFiles:
    """Media by id; an asset has at most one, ingested ``processing_seconds`` after it is added."""

    def __init__(self, clock: Clock, assets: Assets, processing_seconds: float) -> None:
        self.clock = clock
        self.assets = assets
        self.processing_seconds = processing_seconds
        self.by_id: dict[int, Media] = {}
        self._of_asset: dict[str, list[int]] = {}
        assets.on_delete.append(self.drop)

    def add(
        self, asset: Asset, filename: str, id: int | None, processed: bool, file_url: str | None, user_id: int
    ) -> Media:
        """Attach media to an asset, replacing any (``ASSET_STARTED_INGEST``)."""
        self.drop(asset.id)
        mid = self.clock.int_id("media", id)
        media = self.by_id[mid] = Media(mid, asset.id, filename, file_url, self.clock.stamp())
        self._of_asset[asset.id] = [mid]
        asset.media_type, asset.original_filename, asset.md5_sum = "processing", filename, None
        asset.modification_date = self.clock.stamp()
        self.assets.record("STARTED_INGEST", user_id, asset.id)
        if processed:
            self._finish_ingest(mid, self.clock.now())
        else:
            self.clock.at(self.clock.now() + self.processing_seconds, lambda due: self._finish_ingest(mid, due))
        return media

    def _finish_ingest(self, media_id: int, due: float) -> None:
        media = self.by_id.get(media_id)
        if media is None or media.status != "processing":
            return
        kind = media_type_for(media.filename)
        digest = hashlib.md5(f"{media.id}:{media.filename}".encode(), usedforsecurity=False)
        media.status, media.media_type = "ready", kind
        media.size = 1024 * (1 + self.clock.rng.randrange(10_000))
        asset = self.assets.items.get(media.asset_id)
        if asset is None:
            return
        asset.media_type, asset.md5_sum, asset.modification_date = kind, digest.hexdigest(), self.clock.stamp(due)
        self.assets.record("FINISHED_INGEST", 0, asset.id, at=due)

    def of(self, asset_id: str) -> list[Media]:
        """The media of an asset."""
        return [self.by_id[m] for m in self._of_asset.get(asset_id, [])]

    def find(self, asset_id: str, media_id: Any) -> Media:
        """The media ``media_id`` of ``asset_id`` (404 ``Couldn't find Media``)."""
        mid = parse_int(media_id)
        media = self.by_id.get(mid) if mid is not None else None
        if media is None or media.asset_id != asset_id:
            raise ApiError(404, MEDIA_NOT_FOUND.format(media_id))
        return media

    def remove(self, asset: Asset) -> bool:
        """Remove the media of an asset (back to placeholder); False when there was none."""
        if not self.drop(asset.id):
            return False
        asset.media_type, asset.original_filename, asset.md5_sum = "placeholder", None, None
        asset.modification_date = self.clock.stamp()
        return True

    def drop(self, asset_id: str) -> list[int]:
        """Forget the media of ``asset_id``; their ids."""
        removed = self._of_asset.pop(asset_id, [])
        for mid in removed:
            self.by_id.pop(mid, None)
        return removed


@dataclass
class Collection(Listed):
    """A collection of assets."""

    FIELDS: ClassVar[tuple[str, ...]] = (
        "id", "title", "description", "category", "tags", "owner", "media_type", "isPublic", "created_date",
        "modification_date", "original_title",
    )  # fmt: skip
    original_title: str
    isPublic: bool = False
    asset_ids: list[str] = field(default_factory=list)


class Collections:
    """Collections by id."""

    def __init__(self, clock: Clock, assets: Assets) -> None:
        self.clock = clock
        self.by_id: dict[str, Collection] = {}
        assets.on_delete.append(self.remove_asset)

    def add(self, id: str, owner: str, asset_ids: Iterable[str], title: str, fields: JSON) -> Collection:
        """Create a collection holding ``asset_ids``."""
        now = self.clock.stamp()
        collection = Collection(id, owner, title, now, now, "collection", title, asset_ids=list(asset_ids))
        for name, value in fields.items():
            collection.put(name, value)
        self.by_id[id] = collection
        return collection

    def of(self, asset_id: str) -> list[Collection]:
        """The collections that hold ``asset_id``."""
        return [c for c in self.by_id.values() if asset_id in c.asset_ids]

    def remove_asset(self, asset_id: str) -> None:
        """Take ``asset_id`` out of every collection."""
        for collection in self.by_id.values():
            if asset_id in collection.asset_ids:
                collection.asset_ids.remove(asset_id)
