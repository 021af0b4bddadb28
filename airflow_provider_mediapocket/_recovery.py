"""Recovering from an unclear create: what the API can tell about an object an earlier attempt made.

Media Pocket has no idempotency key and no search outside projects. What a client can do after a
create whose answer was lost (or a task retried after it) is look in the listings the API has:

* by ``external_id`` (assets and projects; unique on the server) -- the strongest key;
* otherwise by the exact title (projects, assets in a project) or text (comments) among the objects
  created after the attempt was sent. Worker and server clocks differ, so "after" is judged with
  :data:`CLOCK_SKEW_TOLERANCE` of slack; more than one match is ambiguous and never guessed.

Re-using an existing asset (found by ``external_id``) is only right when it is the asset the request
describes: :func:`reuse_problem` compares its media with the request. The API does not show the URL
an asset's media came from (assets, media lists and history show only the file name), so two URLs
with the same file name cannot be told apart; a different file name can.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence
from datetime import datetime, timedelta
from typing import TYPE_CHECKING, Any, TypeVar

from airflow_provider_mediapocket.exceptions import MediaPocketOperationError

if TYPE_CHECKING:  # the models load when a task runs, not when a DAG file is parsed
    from airflow_provider_mediapocket.models import Asset

T = TypeVar("T")

#: Slack for the difference between the worker's clock (when an attempt was sent) and the server's
#: (when the object was created). An object of the same title/text made by someone else this long
#: before the attempt can be mistaken for ours; two candidates are never guessed between.
CLOCK_SKEW_TOLERANCE = timedelta(minutes=2)

#: What ``external_id`` with ``project_id`` buys: the one create the API lets a client look up again.
IDEMPOTENCY_HINT = (
    "give the asset an external_id and a project_id: then a retry finds the asset by external_id "
    "instead of creating another"
)

_NO_MEDIA_TYPES = frozenset({None, "placeholder", "article"})


def parse_time(value: str | None) -> float | None:
    """An API timestamp (``2023-11-27T09:42:48.538Z``) as epoch seconds, or None."""
    if not value:
        return None
    try:
        return datetime.fromisoformat(value.replace("Z", "+00:00")).timestamp()
    except ValueError:
        return None


def created_since(stamp: str | None, sent_at: float) -> bool:
    """Whether an object stamped ``stamp`` (server clock) may have been created by an attempt sent at
    ``sent_at`` (worker clock, epoch seconds). An object without a readable stamp may be ours."""
    created = parse_time(stamp)
    return created is None or created >= sent_at - CLOCK_SKEW_TOLERANCE.total_seconds()


def matches(
    objects: Iterable[T], sent_at: float, key: Callable[[T], Any], wanted: Any, stamp: Callable[[T], str | None]
) -> list[T]:
    """The objects whose ``key`` equals ``wanted`` and that were created after ``sent_at`` (with slack)."""
    return [obj for obj in objects if key(obj) == wanted and created_since(stamp(obj), sent_at)]


def ambiguous(what: str, ids: Sequence[Any]) -> MediaPocketOperationError:
    """Two or more objects could be the one an unclear create made: say so, never pick one."""
    return MediaPocketOperationError(
        f"{what}: the answer to an earlier attempt was lost and {len(ids)} matching objects were created since "
        f"({', '.join(str(i) for i in ids)}); one may be someone else's, so none is taken and none is created: "
        "check them in Media Pocket and remove the extra one(s); the next try then takes the one left"
    )


def has_media(asset: Asset) -> bool:
    """Whether the asset has (or is processing) media: a placeholder or bare article has none."""
    media_type = asset.media_type.lower() if asset.media_type else None
    return asset.original_filename is not None or media_type not in _NO_MEDIA_TYPES


def expected_filename(file_url: str | None, filename: str | None, s3_key: str | None) -> str | None:
    """The file name media from this request gets (``filename``, else the URL's last path segment)."""
    if filename is not None:
        return filename
    if file_url is not None:
        from airflow_provider_mediapocket.hooks._api import filename_from_url

        return filename_from_url(file_url)
    if s3_key is not None:
        return s3_key.rstrip("/").rsplit("/", 1)[-1] or None
    return None


def reuse_problem(asset: Asset, file_url: str | None, filename: str | None, s3_key: str | None) -> str | None:
    """Why the existing ``asset`` is not the one this request would make (None when it may be).

    Only media is compared: an asset with media whose file name differs from the requested one holds
    another file. An asset without media is not a mismatch (its media can be added).
    """
    wanted = expected_filename(file_url, filename, s3_key)
    if wanted is None or not has_media(asset) or asset.original_filename in (None, wanted):
        return None
    return (
        f"Asset {asset.id} (external_id {asset.external_id!r}) already exists with media "
        f"{asset.original_filename!r}, not the requested {wanted!r}: it is not re-used as if it held the new "
        "file. Give the new file its own external_id, or replace the asset's media and run the task again"
    )


__all__ = [
    "CLOCK_SKEW_TOLERANCE",
    "IDEMPOTENCY_HINT",
    "ambiguous",
    "created_since",
    "expected_filename",
    "has_media",
    "matches",
    "parse_time",
    "reuse_problem",
]
