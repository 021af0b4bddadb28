"""What every Media Pocket operator and sensor shares: the hook, deferral defaults, run waits, links."""

from __future__ import annotations

import functools
from collections.abc import Callable
from functools import cached_property
from typing import TYPE_CHECKING, Any

from airflow_provider_mediapocket.exceptions import (
    MediaPocketError,
    MediaPocketRunFailedError,
    MediaPocketTimeoutError,
    MediaPocketValidationError,
)

if TYPE_CHECKING:
    from airflow.sdk.types import Logger

    from airflow_provider_mediapocket.hooks.mediapocket import MediaPocketHook
    from airflow_provider_mediapocket.triggers.mediapocket import MediaPocketDagActionRunTrigger
    from airflow_provider_mediapocket.waiting import Observation, RunWatch

HOOK_PARAMS = ("timeout", "retry_limit", "retry_backoff", "verify_ssl")


def default_deferrable() -> bool:
    """``[operators] default_deferrable``, read when an operator is built (no I/O: config is in memory)."""
    from airflow.providers.common.compat.sdk import conf

    return bool(conf.getboolean("operators", "default_deferrable", fallback=False))


def _closing_hook(method: Callable[..., Any]) -> Callable[..., Any]:
    @functools.wraps(method)
    def wrapper(self: MediaPocketMixin, *args: Any, **kwargs: Any) -> Any:
        # A subclass's execute calling super().execute() nests wrappers: only the outermost one records.
        depth = self.__dict__.get("_mediapocket_depth", 0)
        self.__dict__["_mediapocket_depth"] = depth + 1
        try:
            result = method(self, *args, **kwargs)
            if depth == 0:
                from airflow_provider_mediapocket.assets import record_outcome

                record_outcome(self, args[0] if args else kwargs.get("context"), result)
            return result
        finally:
            self.__dict__["_mediapocket_depth"] = depth
            if depth == 0:
                self.close_hook()

    wrapper._closes_hook = True  # type: ignore[attr-defined]
    return wrapper


class MediaPocketMixin:
    """Hook access, run waits and links for operators and sensors. Needs ``self.log``.

    ``execute`` and ``execute_complete`` of every subclass close the hook's clients when they end
    (returning, raising, deferring or rescheduling), and :meth:`on_kill` closes them when the task is
    killed, so no connection pool outlives the task's work.
    """

    mediapocket_conn_id: str
    hook_params: dict[str, Any]
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

    def push_url(self, context: Any, key: str, url: str) -> None:
        context["ti"].xcom_push(key=key, value=url)

    def asset_url(self, asset_id: str) -> str:
        return f"{self.hook.get_settings().ui_url}/assets/{asset_id}"

    def run_url(self, asset_id: str, run_id: str | int) -> str:
        return f"{self.hook.get_settings().ui_url}/assets/{asset_id}/dag_action_runs/{run_id}"

    def log_run_messages(self, messages: list[str], run_id: Any) -> None:
        for message in messages:
            self.log.info("DAG action run %s: %s", run_id, message)

    def report(self, observation: Observation) -> Observation:
        """Log what a :class:`~airflow_provider_mediapocket.waiting.RunWatch` observed; raise if the run failed.

        :param observation: what :meth:`RunWatch.observe` returned.
        """
        for line in observation.lines:
            self.log.info(line)
        if observation.outcome == "failed":
            raise MediaPocketRunFailedError(observation.summary)
        return observation

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

    def run_trigger(
        self, watch: RunWatch, run_id: Any, end_time: float, poll_interval: float
    ) -> MediaPocketDagActionRunTrigger:
        """The trigger that goes on with ``watch``: the task's statuses, and what the task logged already.

        :param watch: the task's watch of the run (its asset id, statuses and progress).
        :param run_id: the run's id.
        :param end_time: the wait's deadline (epoch seconds).
        :param poll_interval: seconds between the trigger's polls.
        """
        from airflow_provider_mediapocket.triggers.mediapocket import MediaPocketDagActionRunTrigger

        return MediaPocketDagActionRunTrigger(
            asset_id=watch.asset_id,
            dag_action_run_id=str(run_id),
            end_time=end_time,
            poll_interval=poll_interval,
            watch=watch.to_dict(),
            mediapocket_conn_id=self.mediapocket_conn_id,
            hook_params=self.hook_params,
        )
