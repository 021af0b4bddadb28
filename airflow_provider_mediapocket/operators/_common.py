"""What the operators share beyond :class:`~airflow_provider_mediapocket._mixin.MediaPocketMixin`: creating
something at most once across tries, and parameter checks."""

from __future__ import annotations

import math
import time
from collections.abc import Callable
from datetime import datetime, timezone
from typing import TYPE_CHECKING, Any, TypeVar

from airflow_provider_mediapocket._recovery import IDEMPOTENCY_HINT, ambiguous
from airflow_provider_mediapocket.exceptions import (
    MediaPocketError,
    MediaPocketOperationError,
    MediaPocketServerError,
    MediaPocketTransportError,
    MediaPocketValidationError,
)

if TYPE_CHECKING:
    from airflow.sdk.types import Logger

T = TypeVar("T")


def unclear(exc: BaseException) -> bool:
    """Whether a failed create may have been applied: a 5xx, or the connection lost after sending."""
    if isinstance(exc, MediaPocketServerError):
        return True
    return isinstance(exc, MediaPocketTransportError) and bool(getattr(exc, "request_sent", True))


def _when(epoch: float) -> str:
    return datetime.fromtimestamp(epoch, tz=timezone.utc).strftime("%Y-%m-%d %H:%M:%S UTC")


def positive_number(name: str, value: Any, *, allow_zero: bool = False) -> float:
    """A positive number of seconds (timedelta accepted), or an error naming the parameter."""
    seconds = value.total_seconds() if hasattr(value, "total_seconds") else value
    if isinstance(seconds, bool) or not isinstance(seconds, (int, float)) or not math.isfinite(seconds) or (
        seconds < 0 or (seconds == 0 and not allow_zero)
    ):
        raise MediaPocketValidationError(
            f"Invalid parameter '{name}': must be a {'non-negative' if allow_zero else 'positive'} number of "
            f"seconds (got {value!r})"
        )
    return float(seconds)


def forget(store: Any, key: str) -> None:
    """Remove ``key`` from Airflow 3.3's ``task_state_store`` (which refuses ``None`` as a value)."""
    if store is None:
        return
    delete = getattr(store, "delete", None)
    if delete is not None:
        delete(key)
    else:  # a store without delete: an empty mapping reads as "nothing recorded"
        store.set(key, {})


class CreateOnceMixin:
    """Creating something at most once across tries and lost answers (``task_state_store``). Needs ``self.log``."""

    if TYPE_CHECKING:
        log: Logger

    def create_once(
        self,
        store: Any,
        key: str,
        what: str,
        create: Callable[[], T],
        find: Callable[[float], list[T]] | None,
        ident: Callable[[T], str],
    ) -> T:
        """Create something at most once across tries and lost answers; remember its id under ``key``.

        :param store: the task's ``task_state_store`` (None before Airflow 3.3: only the lookup right
            after a lost answer protects then).
        :param key: where the id is kept; the intent is kept under ``<key>_intent``.
        :param what: the object in words, for logs and errors (no secret in it).
        :param create: sends the create and returns the object.
        :param find: the objects that may be the one an attempt sent at the given time (epoch seconds,
            worker clock) created, from a listing; None when the API has no listing that could tell.
        :param ident: the object's id.

        Before sending, the intent (what, and when) is stored. A later try that finds an intent but no
        id looks first: exactly one match -> it is used; two or more -> an error naming them; none -> the
        create is sent again. Where no listing can tell, a recorded intent fails the try with an error
        saying the create may have been applied. A lost answer is also looked up at once in the same try.
        """
        intent_key = f"{key}_intent"
        intent = store.get(intent_key) if store is not None else None
        sent_at = intent.get("sent_at") if isinstance(intent, dict) else None
        if isinstance(sent_at, (int, float)):
            found = self._recover(what, find, float(sent_at), intent_key=intent_key)
            if found is not None:
                return self._created(store, key, ident(found), found)
            self.log.info("The create of %s sent at %s was not applied: sending it again", what, _when(sent_at))
        else:
            sent_at = time.time()
            if store is not None:
                store.set(intent_key, {"what": what, "sent_at": sent_at})
        try:
            obj = create()
        except MediaPocketError as exc:
            if not unclear(exc):
                # A definite refusal: nothing was created, nothing to look for.
                forget(store, intent_key)
                raise
            found = self._recover(what, find, float(sent_at), lost=exc)
            if found is None:
                raise type(exc)(
                    f"{exc} The create of {what} may have been applied: the next try looks for it before "
                    "sending it again",
                    status=exc.status, method=exc.method, path=exc.path, server_message=exc.server_message,
                ) from exc
            obj = found
        return self._created(store, key, ident(obj), obj)

    def _created(self, store: Any, key: str, object_id: str, obj: T) -> T:
        if store is not None:
            store.set(key, object_id)
        forget(store, f"{key}_intent")
        return obj

    def _recover(
        self,
        what: str,
        find: Callable[[float], list[T]] | None,
        sent_at: float,
        lost: MediaPocketError | None = None,
        intent_key: str | None = None,
    ) -> T | None:
        """The object an earlier attempt (sent at ``sent_at``) created, None if there is none."""
        if find is None:
            cause = f" ({lost})" if lost is not None else ""
            clear = (
                f" If it was not created, delete the task_state_store key {intent_key!r} (or clear the task's "
                "state) to let the task create it." if intent_key else ""
            )
            raise MediaPocketOperationError(
                f"The create of {what} sent at {_when(sent_at)} may have been applied{cause}, and Media Pocket "
                f"has no listing in which it could be found: not creating another. Check in Media Pocket.{clear} "
                f"To make this create idempotent, {IDEMPOTENCY_HINT}"
            )
        candidates = find(sent_at)
        if len(candidates) > 1:
            raise ambiguous(f"Creating {what}", [getattr(c, "id", c) for c in candidates])
        if candidates:
            self.log.info(
                "The create of %s sent at %s was applied (its answer was lost): using %s",
                what, _when(sent_at), getattr(candidates[0], "id", candidates[0]),
            )
            return candidates[0]
        return None
