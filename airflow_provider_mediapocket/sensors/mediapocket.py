"""Sensors: wait for a DAG action run to finish, or for an asset to be ready (poke, reschedule or deferred)."""

from __future__ import annotations

import time
from collections.abc import Sequence
from datetime import timedelta
from typing import Any

from airflow.providers.common.compat.sdk import BaseSensorOperator, PokeReturnValue

from airflow_provider_mediapocket import DEFAULT_CONN_ID
from airflow_provider_mediapocket._mixin import MediaPocketMixin, default_deferrable
from airflow_provider_mediapocket._validation import check_id
from airflow_provider_mediapocket.exceptions import (
    TRANSIENT_ERRORS,
    MediaPocketError,
    MediaPocketSensorTimeout,
    MediaPocketTimeoutError,
)
from airflow_provider_mediapocket.waiting import (
    DEFAULT_FAILURE_STATUSES,
    DEFAULT_SUCCESS_STATUSES,
    RunWatch,
    asset_state,
    check_status_sets,
    normalise_statuses,
    run_summary,
)


class _MediaPocketSensor(MediaPocketMixin, BaseSensorOperator):
    """Poke on a worker, or check once and then defer to :meth:`make_trigger`'s trigger."""

    def __init__(
        self,
        *,
        mediapocket_conn_id: str = DEFAULT_CONN_ID,
        hook_params: dict[str, Any] | None = None,
        deferrable: bool | None = None,
        **kwargs: Any,
    ) -> None:
        super().__init__(**kwargs)
        self.mediapocket_conn_id = mediapocket_conn_id
        self.hook_params = dict(hook_params or {})
        self.deferrable = default_deferrable() if deferrable is None else deferrable

    def make_trigger(self, end_time: float) -> Any:
        raise NotImplementedError

    @staticmethod
    def state_store(context: Any) -> Any:
        """The try's ``task_state_store`` (Airflow >= 3.3), or None.

        In reschedule mode every poke runs in a new process with a new sensor object: what must
        survive between pokes (messages already logged, the last status logged) is kept there.
        """
        return context.get("task_state_store") if hasattr(context, "get") else None

    def execute(self, context: Any) -> Any:
        if not self.deferrable:
            return super().execute(context)
        first = self.poke(context)
        if isinstance(first, PokeReturnValue) and first.is_done:
            return first.xcom_value
        self.defer(
            trigger=self.make_trigger(time.time() + self.timeout),
            method_name="execute_complete",
            timeout=timedelta(seconds=self.timeout),
        )


class MediaPocketDagActionRunSensor(_MediaPocketSensor):
    """Wait until a DAG action run of an asset reaches a success or failure status.

    :param asset_id: the asset the run belongs to (templated).
    :param dag_action_run_id: the run's id (templated; compared as a string).
    :param success_statuses: statuses meaning success (default: completed, complete, finished, success,
        succeeded, done); compared case-insensitively.
    :param failure_statuses: statuses meaning failure (default: failed, failure, error, errored, cancelled,
        canceled, aborted, timeout, timed_out). Any other status means the run is still going.
    :param deferrable: wait on the triggerer (default ``[operators] default_deferrable``); ``poke_interval``
        becomes the trigger's poll interval and ``timeout`` its deadline.

    Each new run message is written to the task log once, in order. A failed run fails the task with
    the run's messages in the error. Returns the final run object (plain JSON) as XCom.
    """

    template_fields: Sequence[str] = ("asset_id", "dag_action_run_id", "mediapocket_conn_id")

    def __init__(
        self,
        *,
        asset_id: str,
        dag_action_run_id: str | int,
        success_statuses: Sequence[str] | None = None,
        failure_statuses: Sequence[str] | None = None,
        **kwargs: Any,
    ) -> None:
        super().__init__(**kwargs)
        self.asset_id = asset_id
        self.dag_action_run_id = dag_action_run_id
        self.success_statuses = normalise_statuses("success_statuses", success_statuses, DEFAULT_SUCCESS_STATUSES)
        self.failure_statuses = normalise_statuses("failure_statuses", failure_statuses, DEFAULT_FAILURE_STATUSES)
        check_status_sets(self.success_statuses, self.failure_statuses)
        self._watch: RunWatch | None = None

    def _ids(self) -> tuple[str, str]:
        return check_id("asset_id", self.asset_id), check_id("dag_action_run_id", self.dag_action_run_id)

    def _run_watch(self, asset_id: str) -> RunWatch:
        """This sensor's watch of the run (made at the first poke, when the ids are rendered)."""
        if self._watch is None:
            self._watch = RunWatch(asset_id, self.success_statuses, self.failure_statuses)
        return self._watch

    def poke(self, context: Any) -> PokeReturnValue | bool:
        asset_id, run_id = self._ids()
        try:
            run = self.hook.get_dag_action_run(asset_id, run_id)
        except TRANSIENT_ERRORS as exc:
            self.log.warning("Transient Media Pocket error, poking again: %s", exc)
            return False
        # In reschedule mode every poke is a new process: the watch's progress (messages already logged,
        # the last status logged) is kept in task_state_store (Airflow >= 3.3), so each message reaches
        # the log once and a status is logged when it changes, not at every poke.
        watch = self._run_watch(asset_id)
        store = self.state_store(context)
        key = f"mediapocket_run_watch_{asset_id}_{run_id}"
        if store is not None:
            watch.catch_up(store.get(key))
        before = watch.to_dict()
        self.log.debug(run_summary(run, asset_id))
        observation = watch.observe(run)
        if store is not None and watch.to_dict() != before:
            store.set(key, watch.to_dict())
        if self.report(observation).outcome == "success":
            return PokeReturnValue(is_done=True, xcom_value=run.to_xcom())
        return False

    def make_trigger(self, end_time: float) -> Any:
        asset_id, run_id = self._ids()
        return self.run_trigger(self._run_watch(asset_id), run_id, end_time, self.poke_interval)

    def execute_complete(self, context: Any, event: dict[str, Any]) -> Any:
        """Finish after the trigger's event: the run (success), or raise on failure, error or timeout.

        :param context: the task's context.
        :param event: the DagActionRunTrigger's event.
        """
        try:
            return self.finish_run_event(event)
        except MediaPocketTimeoutError as exc:  # the trigger's "timeout" event: the sensor's timeout
            raise MediaPocketSensorTimeout(str(exc)) from None


class MediaPocketAssetSensor(_MediaPocketSensor):
    """Wait until an asset is ready: its media processed and, if given, its status one of ``target_statuses``.

    :param asset_id: the asset (templated).
    :param target_statuses: asset statuses to wait for (e.g. ``["open"]``), compared case-insensitively;
        None means any status.
    :param wait_for_media: wait while ``media_type`` is ``processing`` (default True).
    :param deferrable: wait on the triggerer (default ``[operators] default_deferrable``).

    A trashed or missing asset fails the task with a clear message. Returns the asset (plain JSON).
    """

    template_fields: Sequence[str] = ("asset_id", "mediapocket_conn_id")

    def __init__(
        self,
        *,
        asset_id: str,
        target_statuses: Sequence[str] | None = None,
        wait_for_media: bool = True,
        **kwargs: Any,
    ) -> None:
        super().__init__(**kwargs)
        self.asset_id = asset_id
        self.target_statuses = (
            None if target_statuses is None else normalise_statuses("target_statuses", target_statuses, frozenset())
        )
        self.wait_for_media = wait_for_media
        self._last_message: str | None = None

    def poke(self, context: Any) -> PokeReturnValue | bool:
        try:
            asset = self.hook.get_asset(check_id("asset_id", self.asset_id))
        except TRANSIENT_ERRORS as exc:
            self.log.warning("Transient Media Pocket error, poking again: %s", exc)
            return False
        outcome, message = asset_state(asset, wait_for_media=self.wait_for_media, target_statuses=self.target_statuses)
        if outcome == "failed":
            raise MediaPocketError(message)
        # Log the asset's state when it changes, not at every poke (across reschedules too).
        store = self.state_store(context)
        key = f"mediapocket_asset_state_{asset.id}"
        if store is not None and self._last_message is None:
            self._last_message = store.get(key) or None
        if message != self._last_message:
            self.log.info(message)
            if store is not None:
                store.set(key, message)
            self._last_message = message
        if outcome == "ready":
            return PokeReturnValue(is_done=True, xcom_value=asset.to_xcom())
        return False

    def make_trigger(self, end_time: float) -> Any:
        from airflow_provider_mediapocket.triggers.mediapocket import MediaPocketAssetTrigger

        return MediaPocketAssetTrigger(
            asset_id=check_id("asset_id", self.asset_id),
            end_time=end_time,
            poll_interval=self.poke_interval,
            wait_for_media=self.wait_for_media,
            target_statuses=self.target_statuses,
            mediapocket_conn_id=self.mediapocket_conn_id,
            hook_params=self.hook_params,
        )

    def execute_complete(self, context: Any, event: dict[str, Any]) -> Any:
        """Finish after the trigger's event: the asset (ready), or raise on failure, error or timeout.

        :param context: the task's context.
        :param event: the AssetTrigger's event.
        """
        status = event.get("status") if isinstance(event, dict) else None
        if status == "success":
            self.log.info(event.get("message", ""))
            return event["asset"]
        if status == "timeout":
            # The same end as poke and reschedule mode: AirflowSensorTimeout, never retried.
            raise MediaPocketSensorTimeout(str(event.get("message")))
        raise MediaPocketError(str(event.get("message") if isinstance(event, dict) else event))
