"""Bulk ingest: create many assets with their media concurrently, losing nothing and creating nothing twice.

Used by :class:`~airflow_provider_mediapocket.operators.mediapocket.MediaPocketBulkIngestOperator`;
usable on its own with a hook (``await ingest(hook, items, ...)``).

Every item carries an ``external_id``: the handle that makes an unclear outcome recoverable. When the
answer to a create is lost (dropped connection, 5xx after the request went out), the item is looked up
by ``external_id`` among the project's assets before anything is sent again; "External id has already
been taken" means an earlier attempt (or DAG run) created it, and the existing asset is used once it is
checked against the item: media missing -> added; media with another file name -> the item fails.

Progress is reported item by item (``on_progress``) as each finishes, so a caller can save it at once:
a try killed half-way loses nothing, and the next try skips what is done.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import asdict, dataclass
from typing import Any

from airflow_provider_mediapocket._metadata import METADATA, metadata_of
from airflow_provider_mediapocket._recovery import has_media
from airflow_provider_mediapocket._transport import ApiCall
from airflow_provider_mediapocket._validation import parameters_of
from airflow_provider_mediapocket.exceptions import (
    TRANSIENT_ERRORS,
    MediaPocketError,
    MediaPocketOperationError,
    MediaPocketValidationError,
)
from airflow_provider_mediapocket.hooks import _api
from airflow_provider_mediapocket.hooks.mediapocket import MediaPocketHook
from airflow_provider_mediapocket.models import Asset, MediaFromUrl

ITEM_FIELDS = frozenset({*METADATA, "file_url", "filename"})
# An unclear outcome: the request may or may not have been applied.
UNCLEAR = TRANSIENT_ERRORS
EXTERNAL_ID_TAKEN = "external id has already been taken"


@dataclass
class ItemResult:
    """What happened to one item: ``status`` is created, existing (made earlier) or failed.

    ``pending`` (only passed to ``on_progress``, never returned) means the asset exists but its media is
    not confirmed yet: a later try resumes it instead of creating it again.
    """

    external_id: str
    asset_id: str | None
    status: str
    error: str | None = None

    def to_json(self) -> dict[str, Any]:
        return asdict(self)


@dataclass(frozen=True)
class CheckedItem:
    """An item as :func:`validate_items` checked it, with the requests checking it built: the ones sent.

    ``create`` makes the asset (in ``project_id`` with its media in the same call, or on its own).
    ``media`` is the media of an asset made on its own (None in a project): the request adding it needs
    the asset's id, so it is built from this (already validated) media once the create has answered.
    """

    item: dict[str, Any]
    project_id: str | None
    create: ApiCall[Asset]
    media: MediaFromUrl | None

    @property
    def external_id(self) -> str:
        return str(self.item["external_id"])


def validate_items(items: Any, project_id: Any = None, *, name: str = "items") -> list[CheckedItem]:
    """Check every item before anything is sent; errors name the item and the parameter
    (``<name>[<index>].<field>``, ``name`` being what the caller calls the list, e.g. a DAG's param).
    Each item comes back with the requests that checking it built, for :func:`ingest` to send."""
    if isinstance(items, Mapping) or not isinstance(items, Iterable) or isinstance(items, (str, bytes)):
        raise MediaPocketValidationError(
            f"Invalid parameter '{name}': must be a list of dicts (got {type(items).__name__})"
        )
    checked: list[CheckedItem] = []
    seen: dict[str, int] = {}
    for index, item in enumerate(items):
        where = f"{name}[{index}]"
        if not isinstance(item, Mapping):
            raise MediaPocketValidationError(
                f"Invalid parameter '{where}': must be a dict (got {type(item).__name__})"  # a str may be a URL
            )
        unknown = sorted(set(item) - ITEM_FIELDS)
        if unknown:
            raise MediaPocketValidationError(
                f"Invalid parameter '{where}': unknown field(s) {unknown}; allowed: {sorted(ITEM_FIELDS)}"
            )
        for required in ("title", "file_url", "external_id"):
            if item.get(required) in (None, ""):
                raise MediaPocketValidationError(f"Invalid parameter '{where}.{required}': is required")
        media = None
        with parameters_of(where):
            if project_id is not None:
                create = _api.create_project_asset(project_id, **item)
            else:
                create = _api.create_asset(**metadata_of(item))
                media = _api.media_from_url(item["file_url"], item.get("filename"))
        external_id = str(item["external_id"])
        if external_id in seen:
            raise MediaPocketValidationError(
                f"Invalid parameter '{where}.external_id': {external_id!r} repeats {name}[{seen[external_id]}]"
            )
        seen[external_id] = index
        project = None if project_id is None else str(project_id)
        checked.append(CheckedItem(dict(item), project, create, media))
    return checked


class _ProjectIndex:
    """external_id -> asset of one project, fetched on demand and shared by concurrent lookups."""

    def __init__(self, hook: MediaPocketHook, project_id: str) -> None:
        self.hook = hook
        self.project_id = project_id
        self._fetched_at = float("-inf")
        self._by_external_id: dict[str, Asset] = {}
        self._pending: asyncio.Task[None] | None = None
        self._pending_started = float("-inf")

    async def find(self, external_id: str, not_before: float) -> Asset | None:
        """The asset with ``external_id`` as of a listing taken after ``not_before``."""
        while self._fetched_at < not_before:
            if self._pending is None or self._pending_started < not_before:
                self._pending_started = time.monotonic()
                self._pending = asyncio.ensure_future(self._fetch(self._pending_started))
            await asyncio.shield(self._pending)
        return self._by_external_id.get(external_id)

    async def _fetch(self, started: float) -> None:
        contents = await self.hook.alist_project_assets(self.project_id)
        self._by_external_id = {asset.external_id: asset for asset in contents.assets if asset.external_id}
        self._fetched_at = max(self._fetched_at, started)


async def ingest(
    hook: MediaPocketHook,
    items: Sequence[CheckedItem],
    *,
    max_concurrency: int = 16,
    done: Mapping[str, str] | None = None,
    attempts: int = 8,
    pending: Mapping[str, str] | None = None,
    on_progress: Callable[[ItemResult], None] | None = None,
) -> list[ItemResult]:
    """Create the assets of ``items`` with their media, at most ``max_concurrency`` at a time.

    :param hook: the hook whose async client sends the requests.
    :param items: the items as :func:`validate_items` checked them: each is created (in its project, if
        it was checked with one) by the requests checking it built.
    :param max_concurrency: requests in flight at once.
    :param done: external ids already handled (by an earlier try) -> asset ids: they are skipped.
    :param attempts: sends of one create at most.
    :param pending: external ids whose asset an earlier try created without confirmed media -> asset ids:
        the asset is resumed (media added when missing) instead of created again.
    :param on_progress: called with each item's result as soon as it is known (and with status
        ``pending`` when a standalone asset exists but its media is not added yet), on the event loop.

    Returns one result per item, in the items' order. Failed items are reported, never dropped.
    """
    semaphore = asyncio.Semaphore(max_concurrency)
    indexes: dict[str, _ProjectIndex] = {}
    done = dict(done or {})
    pending = dict(pending or {})

    def report(result: ItemResult) -> ItemResult:
        if on_progress is not None:
            on_progress(result)
        return result

    def index_of(project_id: str) -> _ProjectIndex:
        if project_id not in indexes:
            indexes[project_id] = _ProjectIndex(hook, project_id)
        return indexes[project_id]

    async def one(checked: CheckedItem) -> ItemResult:
        external_id = checked.external_id
        if external_id in done:
            return ItemResult(external_id, done[external_id], "existing")
        async with semaphore:
            try:
                if checked.project_id is not None:
                    return report(await _in_project(hook, index_of(checked.project_id), checked, attempts))
                return report(await _standalone(hook, checked, attempts, pending.get(external_id), report))
            except MediaPocketError as exc:
                asset_id = getattr(exc, "created_asset_id", None)
                return report(ItemResult(external_id, asset_id, "failed", str(exc)))

    return list(await asyncio.gather(*(one(item) for item in items)))


async def _reuse(hook: MediaPocketHook, asset: Asset, item: dict[str, Any]) -> Asset:
    """An existing asset of this item, checked against it (media added when missing)."""
    return await hook.areuse_asset(asset, file_url=item.get("file_url"), filename=item.get("filename"))


async def _in_project(hook: MediaPocketHook, index: _ProjectIndex, checked: CheckedItem, attempts: int) -> ItemResult:
    external_id, item = checked.external_id, checked.item
    for attempt in range(attempts):
        sent_at = time.monotonic()
        try:
            asset = await hook.arun(checked.create)
            return ItemResult(external_id, asset.id, "created")
        except MediaPocketValidationError as exc:
            if EXTERNAL_ID_TAKEN not in (exc.server_message or "").lower():
                raise
            existing = await index.find(external_id, sent_at)
            if existing is None:
                raise
            existing = await _reuse(hook, existing, item)
            return ItemResult(external_id, existing.id, "created" if attempt else "existing")
        except UNCLEAR:
            if attempt == attempts - 1:
                raise
            existing = await index.find(external_id, sent_at)
            if existing is not None:  # the lost answer's create did happen (its media may not have)
                existing = await _reuse(hook, existing, item)
                return ItemResult(external_id, existing.id, "created")
    raise AssertionError("unreachable")  # pragma: no cover


async def _standalone(
    hook: MediaPocketHook,
    checked: CheckedItem,
    attempts: int,
    resume_id: str | None,
    report: Callable[[ItemResult], ItemResult],
) -> ItemResult:
    """Without a project there is no lookup by external_id: a lost create answer is reported, not guessed."""
    external_id, item = checked.external_id, checked.item
    if resume_id is not None:  # an earlier try created the asset; its media may be missing
        asset = await _reuse(hook, await hook.aget_asset(resume_id), item)
        return ItemResult(external_id, asset.id, "created")
    try:
        asset = await hook.arun(checked.create)
    except MediaPocketValidationError as exc:
        if EXTERNAL_ID_TAKEN in (exc.server_message or "").lower():
            raise MediaPocketOperationError(
                f"an asset with external_id {external_id!r} already exists; without project_id Media Pocket "
                "offers no lookup by external_id, so it cannot be re-used: give project_id"
            ) from exc
        raise
    report(ItemResult(external_id, asset.id, "pending"))
    assert checked.media is not None  # an item made on its own was checked with its media (file_url is required)
    add_media = _api.put_media(asset.id, checked.media)
    for attempt in range(attempts):
        try:
            await hook.arun(add_media)
            return ItemResult(external_id, asset.id, "created")
        except UNCLEAR:
            if attempt == attempts - 1:
                raise
            current = await hook.aget_asset(asset.id)
            if has_media(current):
                return ItemResult(external_id, asset.id, "created")
        except MediaPocketError as exc:
            exc.created_asset_id = asset.id  # type: ignore[attr-defined]
            raise
    raise AssertionError("unreachable")  # pragma: no cover
