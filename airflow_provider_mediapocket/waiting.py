"""What "done" means for a DAG action run and for an asset, written once for sensors, operators and triggers.

Pure functions of API objects: no I/O, no Airflow imports, safe to use in a trigger's event loop.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import TYPE_CHECKING, Literal

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


def classify_run(run: DagActionRun, success: Iterable[str], failure: Iterable[str]) -> Outcome:
    """``success``/``failed`` for terminal statuses (compared case-insensitively), else ``running``."""
    return classify_status(run.status, success, failure)


def classify_status(status: str | None, success: Iterable[str], failure: Iterable[str]) -> Outcome:
    """:func:`classify_run` for a bare status string."""
    status = (status or "").strip().lower()
    if status in set(success):
        return "success"
    if status in set(failure):
        return "failed"
    return "running"


def new_messages(run: DagActionRun, seen: int) -> list[str]:
    """The run's messages after the first ``seen`` ones, oldest first (the API appends in order)."""
    return [message.message or "" for message in run.dag_action_run_messages[seen:]]


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
