"""What "done" means for a DAG action run and for an asset, written once for sensors, operators and triggers.

:class:`RunWatch` is one wait for one run (its statuses, the messages logged, the last status logged):
the operator's worker loop, the sensor's pokes and the trigger's polls feed it every run they read.
Pure functions and records of API objects: no I/O, no Airflow imports, safe in a trigger's event loop.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Literal

from airflow_provider_mediapocket.exceptions import MediaPocketValidationError

if TYPE_CHECKING:
    from airflow_provider_mediapocket.models import Asset, DagActionRun

DEFAULT_SUCCESS_STATUSES = frozenset({"completed", "complete", "finished", "success", "succeeded", "done"})
DEFAULT_FAILURE_STATUSES = frozenset({
    "failed", "failure", "error", "errored", "cancelled", "canceled", "aborted", "timeout", "timed_out",
})

Outcome = Literal["success", "failed", "running"]


def normalise_statuses(name: str, values: Iterable[str] | str | None, default: frozenset[str]) -> list[str]:
    """Lower-cased, sorted status names (JSON-friendly for trigger kwargs); ``None`` means ``default``."""
    if values is None:
        return sorted(default)
    if isinstance(values, str):
        values = [part for part in values.split(",") if part.strip()]
    result: set[str] = set()
    for value in values:
        if not isinstance(value, str) or not value.strip():
            raise MediaPocketValidationError(
                f"Invalid parameter '{name}': every status must be a non-empty string (got {value!r})"
            )
        result.add(value.strip().lower())
    if not result:
        raise MediaPocketValidationError(f"Invalid parameter '{name}': give at least one status")
    return sorted(result)


def check_status_sets(success: list[str], failure: list[str]) -> None:
    overlap = set(success) & set(failure)
    if overlap:
        raise MediaPocketValidationError(
            "Invalid parameters 'success_statuses' and 'failure_statuses': "
            f"{sorted(overlap)} cannot be both success and failure"
        )


def classify_status(status: str | None, success: Iterable[str], failure: Iterable[str]) -> Outcome:
    """``success``/``failed`` for terminal statuses (compared case-insensitively), else ``running``."""
    status = (status or "").strip().lower()
    if status in set(success):
        return "success"
    if status in set(failure):
        return "failed"
    return "running"


def message_lines(run: DagActionRun, seen: int) -> list[str]:
    """The log lines of the run's messages after the first ``seen``: ``DAG action run <id>: <text> (at <time>)``,
    with the message's own time, since the log line's time is when it was seen (a poll later, or on resume)."""
    lines = []
    for message in run.dag_action_run_messages[seen:]:
        when = f" (at {message.created_at})" if message.created_at else ""
        lines.append(f"DAG action run {run.id}: {message.message or ''}{when}")
    return lines


def run_name(run: DagActionRun, asset_id: str) -> str:
    """``Transcode run 4 on asset X``: what the run is, without its status."""
    name = run.dag_action.name if run.dag_action and run.dag_action.name else "DAG action"
    return f"{name!s} run {run.id} on asset {asset_id}"


def run_summary(run: DagActionRun, asset_id: str) -> str:
    """``Transcode run 4 on asset X has status 'running'``: reads right whatever the (free-form) status is."""
    return f"{run_name(run, asset_id)} has status {run.status!r}"


def started_line(run: DagActionRun, asset_id: str) -> str:
    """The log line after a start: ``Started Transcode run 4 on asset X (status 'running')``."""
    return f"Started {run_name(run, asset_id)} (status {run.status!r})"


def success_message(run: DagActionRun, asset_id: str) -> str:
    """``Transcode run 4 on asset X finished with status 'completed'``."""
    return f"{run_name(run, asset_id)} finished with status {run.status!r}"


KNOWN_RUNNING_STATUSES = frozenset({"running", "queued", "pending"})


def status_news(previous: str | None, run: DagActionRun, outcome: Outcome, asset_id: str) -> list[str]:
    """The INFO lines to log when a run's status changed since ``previous`` (none when it did not)."""
    if run.status == previous:
        return []
    lines = []
    if outcome == "running" and (run.status or "").lower() not in KNOWN_RUNNING_STATUSES:
        lines.append(f"Status {run.status!r} is neither a success nor a failure status: treating it as still running")
    lines.append(run_summary(run, asset_id))
    return lines


def failure_message(run: DagActionRun, asset_id: str) -> str:
    """The error text of a failed run: its status and every message of the run."""
    messages = [message.message or "" for message in run.dag_action_run_messages]
    detail = "; ".join(messages) if messages else "no messages"
    return f"{run_name(run, asset_id)} failed with status {run.status!r}. Run messages: {detail}"


@dataclass(frozen=True)
class Observation:
    """What one look at a run found: its outcome, the summary for it, and the INFO lines to log now.

    ``summary`` is the run's status in words while it is running, the success message when it is done,
    and the failure message (with every run message) when it failed.
    """

    outcome: Outcome
    summary: str
    lines: list[str]


@dataclass
class RunWatch:
    """One wait for one DAG action run: which statuses end it, and what has been logged about it so far.

    The operator's wait on a worker, the sensor's pokes and the trigger's polls each hold one and feed it
    every run they read (:meth:`observe`); it says whether the run is still going, done or failed, and
    which lines to log so that each run message is logged once and a status when it changes. The
    progress travels with the wait: in the trigger's kwargs and in the sensor's ``task_state_store``
    as :meth:`to_dict`. The asset id is not in that dict: its holder keeps it beside it.

    :param asset_id: the asset the run belongs to (named in the status lines).
    :param success_statuses: the statuses that mean done (normalised as by :func:`normalise_statuses`).
    :param failure_statuses: the statuses that mean failed; any other status means still running.
    :param messages_seen: how many of the run's messages were logged already (they are logged in order).
    :param last_status: the status last said in the log (None: none yet).
    """

    asset_id: str
    success_statuses: list[str] = field(default_factory=lambda: sorted(DEFAULT_SUCCESS_STATUSES))
    failure_statuses: list[str] = field(default_factory=lambda: sorted(DEFAULT_FAILURE_STATUSES))
    messages_seen: int = 0
    last_status: str | None = None

    def classify(self, status: str | None) -> Outcome:
        """The outcome a run with ``status`` has for this wait (nothing is noted).

        :param status: the run's status.
        """
        return classify_status(status, self.success_statuses, self.failure_statuses)

    def started(self, run: DagActionRun) -> str:
        """The line to log after starting ``run``; it says the status, so it is not said again as a change.

        :param run: the run the start returned.
        """
        self.last_status = run.status
        return started_line(run, self.asset_id)

    def observe(self, run: DagActionRun) -> Observation:
        """Classify ``run`` and note what is logged now: its new messages, then its status if it changed.

        :param run: the run as just read.
        """
        lines = message_lines(run, self.messages_seen)
        self.messages_seen = max(self.messages_seen, len(run.dag_action_run_messages))
        outcome = self.classify(run.status)
        lines += status_news(self.last_status, run, outcome, self.asset_id)
        self.last_status = run.status
        if outcome == "success":
            summary = success_message(run, self.asset_id)
        elif outcome == "failed":
            summary = failure_message(run, self.asset_id)
        else:
            summary = run_summary(run, self.asset_id)
        return Observation(outcome, summary, lines)

    def catch_up(self, progress: Mapping[str, Any] | None) -> None:
        """Take over what an earlier holder logged (a :meth:`to_dict`); what this one logged stays logged.

        :param progress: the earlier :meth:`to_dict`, or None; only its progress is read, not its statuses.
        """
        if not progress:
            return
        self.messages_seen = max(self.messages_seen, int(progress.get("messages_seen") or 0))
        if self.last_status is None:
            self.last_status = progress.get("last_status") or None

    def to_dict(self) -> dict[str, Any]:
        """Plain JSON: the statuses and the progress (not the asset id)."""
        return {
            "success_statuses": list(self.success_statuses),
            "failure_statuses": list(self.failure_statuses),
            "messages_seen": self.messages_seen,
            "last_status": self.last_status,
        }

    @classmethod
    def from_dict(cls, asset_id: str, data: Mapping[str, Any] | None) -> RunWatch:
        """The watch :meth:`to_dict` described, for ``asset_id``; missing keys take their defaults.

        :param asset_id: the asset the run belongs to.
        :param data: a :meth:`to_dict`, or None for a fresh watch with the default statuses.
        """
        data = data or {}
        return cls(
            asset_id=str(asset_id),
            success_statuses=normalise_statuses("success_statuses", data.get("success_statuses"),
                                                DEFAULT_SUCCESS_STATUSES),
            failure_statuses=normalise_statuses("failure_statuses", data.get("failure_statuses"),
                                                DEFAULT_FAILURE_STATUSES),
            messages_seen=int(data.get("messages_seen") or 0),
            last_status=data.get("last_status"),
        )


AssetOutcome = Literal["ready", "waiting", "failed"]


def asset_state(asset: Asset, *, wait_for_media: bool, target_statuses: Iterable[str] | None) -> tuple[
    AssetOutcome, str
]:
    """Whether an asset is ready: media processed (if asked) and ``status`` in ``target_statuses`` (if given)."""
    if asset.is_trashed:
        return "failed", f"asset {asset.id} is in the trash bin (deleted {asset.deleted})"
    waiting: list[str] = []
    if wait_for_media and asset.is_processing:
        waiting.append("its media is still processing")
    targets = set(target_statuses) if target_statuses is not None else None
    if targets is not None and (asset.status or "").lower() not in targets:
        waiting.append(f"its status is {asset.status!r}, waiting for one of {sorted(targets)}")
    if waiting:
        return "waiting", f"asset {asset.id}: " + " and ".join(waiting)
    return "ready", f"asset {asset.id} is ready: media_type={asset.media_type}, status={asset.status}"
