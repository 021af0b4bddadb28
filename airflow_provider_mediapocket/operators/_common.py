"""What every Media Pocket operator and sensor shares: the hook, deferral defaults, run events, links."""

from __future__ import annotations

import functools
import math
import time
from collections.abc import Callable
from datetime import datetime, timezone
from functools import cached_property
from typing import TYPE_CHECKING, Any, TypeVar

from airflow_provider_mediapocket._recovery import IDEMPOTENCY_HINT, ambiguous
from airflow_provider_mediapocket.exceptions import (
    MediaPocketError,
    MediaPocketOperationError,
    MediaPocketRunFailedError,
    MediaPocketServerError,
    MediaPocketTimeoutError,
    MediaPocketTransportError,
    MediaPocketValidationError,
)
from airflow_provider_mediapocket.waiting import Outcome, failure_message, message_lines, status_news

if TYPE_CHECKING:
    from airflow.sdk.types import Logger

    from airflow_provider_mediapocket._task_state import TaskState
    from airflow_provider_mediapocket.hooks.mediapocket import MediaPocketHook
    from airflow_provider_mediapocket.models import DagActionRun

from airflow_provider_mediapocket.links.mediapocket import ASSET_URL_KEY, RUN_URL_KEY

HOOK_PARAMS = ("timeout", "retry_limit", "retry_backoff", "verify_ssl")

T = TypeVar("T")


def unclear(exc: BaseException) -> bool:
    """Whether a failed create may have been applied: a 5xx, or the connection lost after sending."""
    if isinstance(exc, MediaPocketServerError):
        return True
    return isinstance(exc, MediaPocketTransportError) and bool(getattr(exc, "request_sent", True))


def _when(epoch: float) -> str:
    return datetime.fromtimestamp(epoch, tz=timezone.utc).strftime("%Y-%m-%d %H:%M:%S UTC")


__all__ = [
    "ASSET_URL_KEY", "RUN_URL_KEY", "MediaPocketMixin", "default_deferrable", "positive_number", "unclear",
]


def default_deferrable() -> bool:
    """``[operators] default_deferrable``, read when an operator is built (no I/O: config is in memory)."""
    from airflow.providers.common.compat.sdk import conf

    return bool(conf.getboolean("operators", "default_deferrable", fallback=False))


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


def _closing_hook(method: Callable[..., Any]) -> Callable[..., Any]:
    @functools.wraps(method)
    def wrapper(self: MediaPocketMixin, *args: Any, **kwargs: Any) -> Any:
        try:
            return method(self, *args, **kwargs)
        finally:
            self.close_hook()

    wrapper._closes_hook = True  # type: ignore[attr-defined]
    return wrapper


class MediaPocketMixin:
    """Hook access and run-message logging for operators and sensors. Needs ``self.log``.

    ``execute`` and ``execute_complete`` of every subclass close the hook's clients when they end
    (returning, raising, deferring or rescheduling), and :meth:`on_kill` closes them when the task is
    killed, so no connection pool outlives the task's work.
    """

    mediapocket_conn_id: str
    hook_params: dict[str, Any]
    _last_status: str | None = None
    if TYPE_CHECKING:
        log: Logger

    def __init_subclass__(cls, **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        for name in ("execute", "execute_complete"):
            method = cls.__dict__.get(name)
            if callable(method) and not getattr(method, "_closes_hook", False):
                setattr(cls, name, _closing_hook(method))

    def close_hook(self) -> None:
        """Close the hook's clients if the hook was created (it is built lazily)."""
        hook = self.__dict__.get("hook")
        if hook is not None:
            hook.close_soon()

    def on_kill(self) -> None:
        """The task is being killed: close the hook's clients (from the signal handler, without waiting)."""
        self.close_hook()

    @cached_property
    def hook(self) -> MediaPocketHook:
        from airflow_provider_mediapocket.hooks.mediapocket import MediaPocketHook

        unknown = sorted(set(self.hook_params) - set(HOOK_PARAMS))
        if unknown:
            raise MediaPocketValidationError(
                f"Invalid parameter 'hook_params': unknown key(s) {unknown}; allowed: {', '.join(HOOK_PARAMS)}"
            )
        return MediaPocketHook(self.mediapocket_conn_id, **self.hook_params)

    def create_once(
        self,
        state: TaskState,
        key: str,
        what: str,
        create: Callable[[], T],
        find: Callable[[float], list[T]] | None,
        ident: Callable[[T], str],
    ) -> T:
        """Create something at most once across tries and lost answers; remember its id under ``key``.

        :param state: the task's state (empty before Airflow 3.3: only the lookup right
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
        intent = state.get(intent_key)
        sent_at = intent.get("sent_at") if isinstance(intent, dict) else None
        if isinstance(sent_at, (int, float)):
            found = self._recover(what, find, float(sent_at), intent_key=intent_key)
            if found is not None:
                return self._created(state, key, ident(found), found)
            self.log.info("The create of %s sent at %s was not applied: sending it again", what, _when(sent_at))
        else:
            sent_at = time.time()
            state.set(intent_key, {"what": what, "sent_at": sent_at})
        try:
            obj = create()
        except MediaPocketError as exc:
            if not unclear(exc):
                # A definite refusal: nothing was created, nothing to look for.
                state.delete(intent_key)
                raise
            found = self._recover(what, find, float(sent_at), lost=exc)
            if found is None:
                raise type(exc)(
                    f"{exc} The create of {what} may have been applied: the next try looks for it before "
                    "sending it again",
                    status=exc.status, method=exc.method, path=exc.path, server_message=exc.server_message,
                ) from exc
            obj = found
        return self._created(state, key, ident(obj), obj)

    def _created(self, state: TaskState, key: str, object_id: str, obj: T) -> T:
        state.set(key, object_id)
        state.delete(f"{key}_intent")
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

    def push_url(self, context: Any, key: str, url: str) -> None:
        context["ti"].xcom_push(key=key, value=url)

    def asset_url(self, asset_id: str) -> str:
        return f"{self.hook.get_settings().ui_url}/assets/{asset_id}"

    def run_url(self, asset_id: str, run_id: str | int) -> str:
        return f"{self.hook.get_settings().ui_url}/assets/{asset_id}/dag_action_runs/{run_id}"

    def log_run_messages(self, messages: list[str], run_id: Any) -> None:
        for message in messages:
            self.log.info("DAG action run %s: %s", run_id, message)

    def note_run_status(self, run: DagActionRun, asset_id: str, outcome: Outcome) -> None:
        """Log (INFO) a change of the run's status, once, and an unknown status once when first seen."""
        for line in status_news(self._last_status, run, outcome, asset_id):
            self.log.info(line)
        self._last_status = run.status

    def log_new_run_messages(self, run: DagActionRun, seen: int) -> int:
        """Log the run's messages after the first ``seen`` (with their own times); return how many are logged now."""
        for line in message_lines(run, seen):
            self.log.info(line)
        return max(seen, len(run.dag_action_run_messages))

    def finish_run_event(self, event: dict[str, Any]) -> dict[str, Any]:
        """Turn a DagActionRunTrigger event into the task's result; raise on failure.

        The trigger logged the run's messages as it saw them (its log is part of the task log), so nothing
        is logged again here. The event carries no run object (the "Trigger fired event" line prints it
        whole): on success the final run is read once for the task's return value.
        """
        if not isinstance(event, dict) or "status" not in event:
            raise MediaPocketError(f"Unexpected event from the Media Pocket trigger: {event!r}")
        # An event from a trigger of an earlier version, deferred before an upgrade, still carries them.
        self.log_run_messages(list(event.get("new_messages") or []), event.get("dag_action_run_id"))
        status = event["status"]
        if status == "success":
            self.log.info(event.get("message", ""))
            if isinstance(event.get("run"), dict):
                return dict(event["run"])
            return self.hook.get_dag_action_run(str(event["asset_id"]), event["dag_action_run_id"]).to_xcom()
        if status == "failed":
            raise MediaPocketRunFailedError(str(event.get("message")))
        if status == "timeout":
            raise MediaPocketTimeoutError(str(event.get("message")))
        raise MediaPocketError(str(event.get("message")))

    def run_trigger(self, asset_id: str, run_id: Any, end_time: float, poll_interval: float) -> Any:
        """The trigger that waits for a run, carrying this task's statuses and messages already logged."""
        from airflow_provider_mediapocket.triggers.mediapocket import MediaPocketDagActionRunTrigger

        return MediaPocketDagActionRunTrigger(
            asset_id=asset_id,
            dag_action_run_id=str(run_id),
            end_time=end_time,
            poll_interval=poll_interval,
            success_statuses=getattr(self, "success_statuses", None),
            failure_statuses=getattr(self, "failure_statuses", None),
            messages_seen=getattr(self, "_messages_seen", 0),
            last_status=self._last_status,
            mediapocket_conn_id=self.mediapocket_conn_id,
            hook_params=self.hook_params,
        )

    def raise_for_failed_run(self, run: DagActionRun, asset_id: str) -> None:
        raise MediaPocketRunFailedError(failure_message(run, asset_id))
