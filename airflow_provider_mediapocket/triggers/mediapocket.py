"""Deferrable waits on the triggerer: a DAG action run reaching a terminal status, an asset becoming ready.

Async all the way: the connection is read with ``aget_connection`` and every call goes through the
hook's ``httpx.AsyncClient``. Each poll checks the status first and the deadline second (a run that
finished just before the deadline is a success, not a timeout). Deadlines are wall-clock epoch seconds,
so they survive a triggerer restart, and every request of a poll is bounded by the time left before it.
Transient failures (429, 5xx, timeouts, resets) that outlast the hook's own retries are logged and
polled again; a permanent one (connection refused, unresolvable host, TLS error, a body that is not
the API's JSON, any 4xx) ends the wait at once with an ``error`` event that names the cause.
Events are plain JSON: ``{"status": "success" | "failed" | "timeout" | "error", "message": ..., <ids>, <object>}``.
"""

from __future__ import annotations

import asyncio
import math
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any, TypeVar

from airflow.triggers.base import BaseTrigger, TriggerEvent  # type: ignore[attr-defined,unused-ignore]

from airflow_provider_mediapocket.exceptions import TRANSIENT_ERRORS, MediaPocketError
from airflow_provider_mediapocket.hooks import _api
from airflow_provider_mediapocket.hooks.mediapocket import MediaPocketHook, request_deadline
from airflow_provider_mediapocket.triggers import _shared
from airflow_provider_mediapocket.waiting import RunWatch, asset_state, normalise_statuses, run_summary

T = TypeVar("T")
MIN_INTERVAL = 0.01


def _event(payload: dict[str, Any]) -> TriggerEvent:
    return TriggerEvent(payload)  # type: ignore[no-untyped-call,unused-ignore]


class _MediaPocketPollingTrigger(BaseTrigger):
    """Poll until :meth:`check` returns an event, the deadline passes, or a permanent error occurs."""

    def __init__(
        self,
        *,
        end_time: float,
        poll_interval: float = 30.0,
        mediapocket_conn_id: str = MediaPocketHook.default_conn_name,
        hook_params: dict[str, Any] | None = None,
    ) -> None:
        super().__init__()  # type: ignore[no-untyped-call]
        self._interval = MIN_INTERVAL
        self._started = 0.0
        self._hook_key = ""
        self.end_time = float(end_time)
        self.poll_interval = float(poll_interval)
        self.mediapocket_conn_id = mediapocket_conn_id
        # timeout / retry_limit / retry_backoff / verify_ssl of the operator's hook; never the key.
        self.hook_params = dict(hook_params or {})

    def serialize(self) -> tuple[str, dict[str, Any]]:
        return f"{type(self).__module__}.{type(self).__qualname__}", {**self._own_kwargs(), **self._base_kwargs()}

    def _own_kwargs(self) -> dict[str, Any]:
        raise NotImplementedError

    def _base_kwargs(self) -> dict[str, Any]:
        return {
            "end_time": self.end_time,
            "poll_interval": self.poll_interval,
            "mediapocket_conn_id": self.mediapocket_conn_id,
            "hook_params": self.hook_params,
        }

    def _ids(self) -> dict[str, Any]:
        raise NotImplementedError

    async def check(self, hook: MediaPocketHook, tick: int) -> dict[str, Any] | None:
        """One poll: the event's payload if the wait is over, else None.

        :param hook: the hook shared by the triggers of this connection.
        :param tick: the wall-clock tick this poll belongs to (for :meth:`shared`).
        """
        raise NotImplementedError

    async def shared(self, what: str, fetch: Callable[[], Awaitable[T]], tick: int) -> T:
        """``fetch()`` shared with the triggers of this process polling ``what`` in tick ``tick``.

        Only an answer to a request sent after this poll became due is shared: after the start of
        the tick, and for the first poll after this wait began (the run or media it waits for was
        made before that; a list taken earlier in the tick would not show it).
        """
        not_before = max(tick * self._interval, self._started)
        return await _shared.coalesced(self._hook_key, what, self._interval, not_before, fetch)

    def timeout_event(self) -> dict[str, Any]:
        raise NotImplementedError

    def _event(self, status: str, message: str, **extra: Any) -> TriggerEvent:
        return _event({"status": status, "message": message, **self._ids(), **extra})

    async def run(self) -> AsyncIterator[TriggerEvent]:
        """Check at once, then on every wall-clock tick of ``poll_interval`` until done or past the deadline.

        Ticks are aligned (``floor(time / poll_interval)``) so that the triggers watching the same asset
        poll together and share one request (see :mod:`._shared`), as they share one client.
        """
        self._interval = max(self.poll_interval, MIN_INTERVAL)
        self._started = time.time()
        self._hook_key, hook = _shared.acquire(
            self.mediapocket_conn_id, self.hook_params, refresh_every=self._interval
        )
        try:
            while True:
                tick = math.floor(time.time() / self._interval)
                try:
                    # Every request of this poll is bounded by the wait's own deadline, so that a slow
                    # answer cannot carry the wait a whole request timeout past it.
                    with request_deadline(self.end_time):
                        payload = await self.check(hook, tick)
                except TRANSIENT_ERRORS as exc:
                    # 429, 5xx, timeouts, resets: they say nothing about what we wait for.
                    self.log.warning("Transient Media Pocket error, polling again: %s", exc)
                    payload = None
                except MediaPocketError as exc:
                    # Permanent (refused, DNS, TLS, a body that is not the API's, 4xx): waiting cannot
                    # help, so end now with the cause instead of at the deadline.
                    yield self._event("error", str(exc), error_type=type(exc).__name__)
                    return
                if payload is not None:
                    yield _event({**self._ids(), **payload})
                    return
                now = time.time()
                remaining = self.end_time - now
                if remaining <= 0:
                    yield _event({**self._ids(), **self.timeout_event()})
                    return
                next_tick = (tick + 1) * self._interval
                await asyncio.sleep(min(max(next_tick - now, 0.0), remaining))
        finally:
            await _shared.release(self._hook_key)


class MediaPocketDagActionRunTrigger(_MediaPocketPollingTrigger):
    """Wait until DAG action run ``dag_action_run_id`` of asset ``asset_id`` reaches a terminal status.

    ``watch`` is the task's :class:`~airflow_provider_mediapocket.waiting.RunWatch` as
    :meth:`~airflow_provider_mediapocket.waiting.RunWatch.to_dict` (None: the default statuses, nothing
    logged yet): statuses are compared lower-cased with its ``success_statuses`` and
    ``failure_statuses``, and any other value means the run is still going (logged once when first
    seen). Its ``messages_seen`` is the number of run messages the task already logged: the trigger logs
    each newer one as it sees it, with the message's own time (the trigger's log is part of the task
    log), and the resumed task logs none, so each message is written once. Its ``last_status`` is the
    status the task last logged (the trigger logs a status only when it differs). The event is small:
    status, message and ids.

    :param asset_id: the asset the run belongs to.
    :param dag_action_run_id: the run's id.
    :param end_time: the deadline (epoch seconds).
    :param poll_interval: seconds between polls.
    :param watch: the task's watch of the run, as a dict (see above).
    :param mediapocket_conn_id: the Media Pocket connection.
    :param hook_params: the hook's timeout, retry_limit, retry_backoff and verify_ssl.
    """

    def __init__(
        self,
        *,
        asset_id: str,
        dag_action_run_id: str | int,
        end_time: float,
        poll_interval: float = 30.0,
        watch: dict[str, Any] | None = None,
        mediapocket_conn_id: str = MediaPocketHook.default_conn_name,
        hook_params: dict[str, Any] | None = None,
    ) -> None:
        super().__init__(end_time=end_time, poll_interval=poll_interval, mediapocket_conn_id=mediapocket_conn_id,
                         hook_params=hook_params)
        self.asset_id = str(asset_id)
        self.dag_action_run_id = str(dag_action_run_id)
        self._watch = RunWatch.from_dict(self.asset_id, watch)
        # As deferred: a restarted trigger starts again from what the task had logged, not from this one.
        self.watch = self._watch.to_dict()

    def _own_kwargs(self) -> dict[str, Any]:
        return {"asset_id": self.asset_id, "dag_action_run_id": self.dag_action_run_id, "watch": self.watch}

    def _ids(self) -> dict[str, Any]:
        return {"asset_id": self.asset_id, "dag_action_run_id": self.dag_action_run_id}

    async def check(self, hook: MediaPocketHook, tick: int) -> dict[str, Any] | None:
        # One listing per asset and tick, shared; only this trigger's run is validated from it (an
        # asset's thousands of runs validated on the event loop would stall every other trigger). The
        # listing was requested after this wait began, so a run missing from it is really missing.
        runs = await self.shared(
            f"runs/{self.asset_id}", lambda: hook.aget_dag_action_run_listing(self.asset_id), tick
        )
        run = _api.find_run(runs, self.dag_action_run_id)
        self.log.debug("Polled %s", run_summary(run, self.asset_id))
        observation = self._watch.observe(run)
        for line in observation.lines:
            self.log.info(line)
        if observation.outcome == "running":
            return None
        return {"status": observation.outcome, "message": observation.summary}

    def timeout_event(self) -> dict[str, Any]:
        return {
            "status": "timeout",
            "message": f"DAG action run {self.dag_action_run_id} on asset {self.asset_id} did not finish before "
            f"its deadline (last status: {self._watch.last_status})",
        }


class MediaPocketAssetTrigger(_MediaPocketPollingTrigger):
    """Wait until asset ``asset_id`` is ready: media processed (``wait_for_media``) and ``status`` in
    ``target_statuses`` (if given). A trashed or missing asset ends the wait with a failure."""

    def __init__(
        self,
        *,
        asset_id: str,
        end_time: float,
        poll_interval: float = 30.0,
        wait_for_media: bool = True,
        target_statuses: list[str] | None = None,
        mediapocket_conn_id: str = MediaPocketHook.default_conn_name,
        hook_params: dict[str, Any] | None = None,
    ) -> None:
        super().__init__(end_time=end_time, poll_interval=poll_interval, mediapocket_conn_id=mediapocket_conn_id,
                         hook_params=hook_params)
        self.asset_id = str(asset_id)
        self.wait_for_media = bool(wait_for_media)
        self.target_statuses = (
            None if target_statuses is None else normalise_statuses("target_statuses", target_statuses, frozenset())
        )
        self._last_message: str | None = None

    def _own_kwargs(self) -> dict[str, Any]:
        return {
            "asset_id": self.asset_id,
            "wait_for_media": self.wait_for_media,
            "target_statuses": self.target_statuses,
        }

    def _ids(self) -> dict[str, Any]:
        return {"asset_id": self.asset_id}

    async def check(self, hook: MediaPocketHook, tick: int) -> dict[str, Any] | None:
        asset = await self.shared(f"asset/{self.asset_id}", lambda: hook.aget_asset(self.asset_id), tick)
        outcome, message = asset_state(asset, wait_for_media=self.wait_for_media, target_statuses=self.target_statuses)
        if message != self._last_message:
            self.log.info(message)
            self._last_message = message
        if outcome == "waiting":
            return None
        return {"status": "success" if outcome == "ready" else "failed", "message": message,
                "asset": asset.to_xcom()}

    def timeout_event(self) -> dict[str, Any]:
        return {
            "status": "timeout",
            "message": f"asset {self.asset_id} was not ready before the deadline ({self._last_message})",
            "asset": None,
        }
