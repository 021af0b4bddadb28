"""DAG actions and their runs on assets (queued, started, processing, finished, on the sandbox clock)."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from airflow_provider_mediapocket.sandbox.state.base import JSON, Clock, format_ts, lookup
from airflow_provider_mediapocket.sandbox.state.catalog import Catalog

DAG_ACTION_CATEGORY = "Sandbox"


@dataclass(frozen=True)
class DagAction:
    """A DAG action; ``outcome`` is the status its runs end in ("never": they never finish)."""

    id: int
    name: str
    description: str
    outcome: str

    def to_json(self) -> JSON:
        """Public form."""
        return {"id": self.id, "name": self.name, "description": self.description, "category": DAG_ACTION_CATEGORY}


DAG_ACTIONS: tuple[DagAction, ...] = (
    DagAction(1, "Transcode", "Transcode the original media into delivery formats", "completed"),
    DagAction(2, "Auto-tag", "Detect and add AI tags to the asset", "completed"),
    DagAction(3, "Publish", "Publish the asset to the delivery channels", "completed"),
    DagAction(4, "Broken pipeline", "A pipeline that always fails (sandbox)", "failed"),
    DagAction(5, "Never ending", "A pipeline that never finishes (sandbox)", "never"),
)

_ACTIONS_BY_ID = {action.id: action for action in DAG_ACTIONS}


@dataclass(frozen=True)
class RunMessage:
    """One message of a run."""

    id: int
    message: str
    created_at: str

    def to_json(self) -> JSON:
        """Public form."""
        return {"id": self.id, "message": self.message, "created_at": self.created_at}


@dataclass
class Run:
    """A DAG action run on an asset."""

    id: int
    asset_id: str
    action: DagAction
    created_at: str
    status: str = "running"
    messages: list[RunMessage] = field(default_factory=list)


class Runs:
    """Runs by id. A run lasts ``run_seconds``, or a seeded draw from a ``(low, high)`` range."""

    def __init__(self, clock: Clock, assets: Catalog[Any], run_seconds: float | tuple[float, float]) -> None:
        self.clock = clock
        self.run_seconds = run_seconds
        self.by_id: dict[int, Run] = {}
        self._of_asset: dict[str, list[int]] = {}
        assets.on_delete.append(self.drop)

    @staticmethod
    def actions() -> list[JSON]:
        """The DAG actions available on every asset."""
        return [action.to_json() for action in DAG_ACTIONS]

    def start(self, asset_id: str, dag_action_id: Any) -> Run:
        """Start a run (404 for an unknown action); its lifecycle is scheduled on the clock."""
        action = lookup(_ACTIONS_BY_ID, dag_action_id, "DagAction")
        start = self.clock.now()
        run = Run(self.clock.next("run"), asset_id, action, format_ts(start))
        self.by_id[run.id] = run
        self._of_asset.setdefault(asset_id, []).append(run.id)
        self._message(run, "Set in queue...", start)
        total = self._duration()
        self.clock.at(start + 0.2 * total, lambda due: self._message(run, "Started processing", due))
        if action.outcome != "never":
            self.clock.at(start + 0.5 * total, lambda due: self._message(run, f"Processing asset {asset_id}", due))
            self.clock.at(start + total, lambda due: self._finish(run, due))
        return run

    def _duration(self) -> float:
        if isinstance(self.run_seconds, tuple):
            return self.clock.rng.uniform(*self.run_seconds)
        return float(self.run_seconds)

    def _message(self, run: Run, message: str, due: float) -> None:
        run.messages.append(RunMessage(self.clock.next("run_message"), message, format_ts(due)))

    def _finish(self, run: Run, due: float) -> None:
        run.status = run.action.outcome
        text = "Finished successfully" if run.status == "completed" else "Error: pipeline step failed"
        self._message(run, text, due)

    def render(self, run: Run) -> JSON:
        """Public form."""
        return {
            "id": run.id,
            "status": run.status,
            "created_at": run.created_at,
            "dag_action": run.action.to_json(),
            "dag_action_run_messages": [m.to_json() for m in run.messages],
        }

    def of(self, asset_id: str) -> list[JSON]:
        """Runs of an asset, newest first, public form."""
        return [self.render(self.by_id[r]) for r in reversed(self._of_asset.get(asset_id, []))]

    def drop(self, asset_id: str) -> None:
        """Forget the runs of ``asset_id``."""
        for rid in self._of_asset.pop(asset_id, []):
            self.by_id.pop(rid, None)
