"""``dag.test()`` runs, each in a fresh subprocess: :func:`run_dag_test` and its :class:`DagTestResult`.

The parent side starts ``python -m airflow_provider_mediapocket.testing run DAG_ID`` with the environment
of a prepared home (:func:`~airflow_provider_mediapocket.testing.airflow_home.prepare_airflow_home`); the
child side (:func:`_child_run`) runs ``dag.test()`` there and prints one machine-readable result line.
This module does not import Airflow at import time (only the subprocess it starts does).
"""

from __future__ import annotations

import argparse
import importlib
import json
import sys
import traceback
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from airflow_provider_mediapocket.testing.airflow_home import prepare_airflow_home
from airflow_provider_mediapocket.testing.process import run_child

__all__ = [
    "RESULT_MARKER",
    "DagTestResult",
    "main",
    "run_dag_test",
]

#: Prefix of the one machine-readable line the subprocess prints at the end of a run.
RESULT_MARKER = "@@DAG_TEST_RESULT@@"

_FINISHED_OK = "success"


# --------------------------------------------------------------------------------------------------------------
# Result
# --------------------------------------------------------------------------------------------------------------
@dataclass
class DagTestResult:
    """What one ``dag.test()`` run gave.

    :ivar dag_id: the DAG that was run.
    :ivar state: the DAG run's final state (``"success"``, ``"failed"``, ...), or ``None`` when no run
        happened (DAG not found, import error, crash, timeout: see :attr:`error`).
    :ivar tasks: one dict per task instance: ``task_id``, ``map_index``, ``state``, ``try_number``,
        ``operator``, ``start_date``, ``end_date``, ``duration``.
    :ivar xcoms: ``return_value`` XCom of each task that pushed one: ``task_id -> value``; for a mapped task
        a list ordered by map index (``None`` where that instance pushed nothing).
    :ivar xcom_entries: every XCom of the run (any key): dicts with ``task_id``, ``map_index``, ``key``,
        ``value``.
    :ivar output: the whole combined stdout + stderr of the subprocess (Airflow's and the tasks' logs), less
        the result line.
    :ivar returncode: the subprocess's exit code (0 when the run succeeded, 1 when it finished in another
        state, 2 when no run happened).
    :ivar error: why no run happened, if so.
    :ivar run_id: the DAG run's id.
    :ivar logical_date: the DAG run's logical date (ISO 8601).
    :ivar duration: wall time of the whole subprocess, seconds.
    """

    dag_id: str
    state: str | None
    tasks: list[dict[str, Any]] = field(default_factory=list)
    xcoms: dict[str, Any] = field(default_factory=dict)
    output: str = field(default="", repr=False)
    returncode: int = 0
    error: str | None = None
    run_id: str | None = None
    logical_date: str | None = None
    xcom_entries: list[dict[str, Any]] = field(default_factory=list, repr=False)
    duration: float = 0.0

    @property
    def succeeded(self) -> bool:
        """Whether the DAG run finished in state ``success``."""
        return self.state == _FINISHED_OK

    def task_instances(self, task_id: str) -> list[dict[str, Any]]:
        """The task instances of ``task_id`` (several for a mapped task), ordered by map index."""
        return sorted((t for t in self.tasks if t["task_id"] == task_id), key=lambda t: int(t["map_index"]))

    def task_state(self, task_id: str, map_index: int | None = None) -> str | None:
        """The state of one task instance.

        With ``map_index=None``: the state of an unmapped task, or for a mapped task the state shared by all
        its instances (``"mixed"`` if they differ). ``None`` if there is no such task instance.
        """
        tis = self.task_instances(task_id)
        if map_index is not None:
            tis = [t for t in tis if int(t["map_index"]) == map_index]
        states = {t["state"] for t in tis}
        if not states:
            return None
        if len(states) == 1:
            return next(iter(states))  # type: ignore[no-any-return]
        return "mixed"

    def task_states(self) -> dict[str, str | None]:
        """``task_id -> state`` for every task (see :meth:`task_state` for mapped tasks)."""
        return {task_id: self.task_state(task_id) for task_id in dict.fromkeys(t["task_id"] for t in self.tasks)}

    def output_tail(self, lines: int = 80) -> str:
        """The last ``lines`` lines of :attr:`output` (handy as an assertion message)."""
        tail = "\n".join(self.output.splitlines()[-lines:])
        head = f"dag_id={self.dag_id} state={self.state} error={self.error} tasks={self.task_states()}"
        return f"{head}\n--- last {lines} lines of output ---\n{tail}"

    def assert_success(self) -> None:
        """Raise ``AssertionError`` (with the log tail) unless the run succeeded."""
        if not self.succeeded:
            raise AssertionError(f"DAG run did not succeed.\n{self.output_tail()}")


# --------------------------------------------------------------------------------------------------------------
# Parent side: one subprocess per run
# --------------------------------------------------------------------------------------------------------------
def _split_output(text: str) -> tuple[str, dict[str, Any] | None]:
    """Take the last result line out of ``text``; return (the rest, the parsed payload or None)."""
    payload: dict[str, Any] | None = None
    kept: list[str] = []
    for line in text.splitlines(keepends=True):
        stripped = line.strip()
        if stripped.startswith(RESULT_MARKER):
            try:
                payload = json.loads(stripped[len(RESULT_MARKER) :].strip())
            except ValueError:
                kept.append(line)
            continue
        kept.append(line)
    return "".join(kept), payload


def run_dag_test(
    dag_id: str,
    env: Mapping[str, str],
    *,
    conf: Mapping[str, Any] | None = None,
    logical_date: str | None = None,
    timeout: float = 600,
    cwd: Path | None = None,
) -> DagTestResult:
    """Run DAG ``dag_id`` once with ``dag.test()`` in a fresh subprocess using ``env``.

    Deferrable tasks' triggers run inline. Never raises for a failed run: look at the result.

    :param dag_id: the DAG to run.
    :param env: what :func:`prepare_airflow_home` returned (add ``AIRFLOW_CONN_<ID>`` entries to it for
        connections, e.g. ``MediaPocketSandbox.airflow_connection_env()``).
    :param conf: the run's ``dag_run.conf``.
    :param logical_date: ISO 8601; default now.
    :param timeout: seconds; past it the subprocess (and its process group) is killed and the result says so.
    :param cwd: the subprocess's working directory.
    """
    cmd = [sys.executable, "-m", "airflow_provider_mediapocket.testing", "run", dag_id]
    if conf is not None:
        cmd += ["--conf", json.dumps(dict(conf))]
    if logical_date is not None:
        cmd += ["--logical-date", logical_date]

    done = run_child(cmd, env, timeout=timeout, cwd=cwd)
    if done.timed_out:
        return DagTestResult(
            dag_id=dag_id,
            state=None,
            output=done.output,
            returncode=done.returncode,
            error=f"timed out after {timeout} s",
            duration=done.duration,
        )
    duration = done.duration
    output, payload = _split_output(done.output)
    if payload is None:
        return DagTestResult(
            dag_id=dag_id,
            state=None,
            output=output,
            returncode=done.returncode,
            error=f"the subprocess exited with code {done.returncode} without printing a result line",
            duration=duration,
        )
    return DagTestResult(
        dag_id=dag_id,
        state=payload.get("state"),
        tasks=list(payload.get("tasks") or []),
        xcoms=dict(payload.get("xcoms") or {}),
        xcom_entries=list(payload.get("xcom_entries") or []),
        output=output,
        returncode=done.returncode,
        error=payload.get("error"),
        run_id=payload.get("run_id"),
        logical_date=payload.get("logical_date"),
        duration=duration,
    )


# --------------------------------------------------------------------------------------------------------------
# Child side: runs inside the subprocess, where the environment is already set
# --------------------------------------------------------------------------------------------------------------
def _jsonable(value: Any) -> Any:
    """``value`` made JSON-safe (unknown objects become their ``repr``; pydantic models their dump)."""
    try:
        json.dumps(value)
        return value
    except (TypeError, ValueError):
        pass
    if isinstance(value, Mapping):
        return {str(k): _jsonable(v) for k, v in value.items()}
    if isinstance(value, (list, tuple, set, frozenset)):
        return [_jsonable(v) for v in value]
    dump = getattr(value, "model_dump", None)
    if callable(dump):
        try:
            return _jsonable(dump(mode="json"))
        except Exception:
            pass
    isoformat = getattr(value, "isoformat", None)
    if callable(isoformat):
        return isoformat()
    return repr(value)


def _state_text(state: Any) -> str | None:
    if state is None:
        return None
    return str(getattr(state, "value", state))


def _date_text(value: Any) -> str | None:
    return value.isoformat() if value is not None else None


def _emit(payload: Mapping[str, Any]) -> None:
    sys.stderr.flush()
    sys.stdout.write(f"\n{RESULT_MARKER} {json.dumps(_jsonable(dict(payload)), sort_keys=True)}\n")
    sys.stdout.flush()


def _load_dag(dag_id: str) -> Any:
    from airflow import settings

    try:
        dagbag_module = importlib.import_module("airflow.dag_processing.dagbag")
    except ImportError:  # Airflow < 3.1
        dagbag_module = importlib.import_module("airflow.models.dagbag")

    bag = dagbag_module.DagBag(dag_folder=settings.DAGS_FOLDER)
    dag = bag.dags.get(dag_id)
    if dag is None:
        errors = "; ".join(
            f"{path}: {err.strip().splitlines()[-1] if err.strip() else err}" for path, err in bag.import_errors.items()
        )
        found = ", ".join(sorted(bag.dags)) or "none"
        raise LookupError(
            f"DAG {dag_id!r} not found in {settings.DAGS_FOLDER} (DAGs found: {found})"
            + (f"; import errors: {errors}" if errors else "")
        )
    return dag


def _collect_xcoms(dr: Any) -> list[dict[str, Any]]:
    from airflow.models.xcom import XComModel
    from airflow.utils.session import create_session

    entries: list[dict[str, Any]] = []
    with create_session() as session:
        rows: list[Any] = list(session.scalars(XComModel.get_many(run_id=dr.run_id, dag_ids=dr.dag_id)))
        for row in rows:
            try:
                value = XComModel.deserialize_value(row)
            except Exception:
                value = row.value
            entries.append(
                {"task_id": row.task_id, "map_index": row.map_index, "key": row.key, "value": _jsonable(value)}
            )
    entries.sort(key=lambda e: (e["task_id"], e["map_index"], e["key"]))
    return entries


def _return_values(tasks: Sequence[Mapping[str, Any]], entries: Sequence[Mapping[str, Any]]) -> dict[str, Any]:
    by_ti = {(e["task_id"], e["map_index"]): e["value"] for e in entries if e["key"] == "return_value"}
    mapped: dict[str, list[int]] = {}
    for t in tasks:
        if int(t["map_index"]) >= 0:
            mapped.setdefault(t["task_id"], []).append(int(t["map_index"]))
    xcoms: dict[str, Any] = {}
    for task_id, indexes in mapped.items():
        size = max(indexes) + 1
        xcoms[task_id] = [by_ti.get((task_id, i)) for i in range(size)]
    for (task_id, map_index), value in by_ti.items():
        if task_id not in mapped and map_index < 0:
            xcoms[task_id] = value
    return dict(sorted(xcoms.items()))


def _child_run(dag_id: str, conf: dict[str, Any] | None, logical_date: str | None) -> int:
    try:
        dag = _load_dag(dag_id)
    except Exception as exc:
        traceback.print_exc()
        _emit({"dag_id": dag_id, "state": None, "error": f"{type(exc).__name__}: {exc}"})
        return 2

    kwargs: dict[str, Any] = {"run_conf": conf}
    if logical_date is not None:
        from datetime import datetime

        parsed = datetime.fromisoformat(logical_date.replace("Z", "+00:00"))
        if parsed.tzinfo is None:
            from datetime import timezone

            parsed = parsed.replace(tzinfo=timezone.utc)
        kwargs["logical_date"] = parsed

    try:
        dr = dag.test(**kwargs)
    except Exception as exc:
        traceback.print_exc()
        _emit({"dag_id": dag_id, "state": None, "error": f"dag.test() raised {type(exc).__name__}: {exc}"})
        return 2

    tasks = [
        {
            "task_id": ti.task_id,
            "map_index": ti.map_index,
            "state": _state_text(ti.state),
            "try_number": ti.try_number,
            "operator": ti.operator,
            "start_date": _date_text(ti.start_date),
            "end_date": _date_text(ti.end_date),
            "duration": ti.duration,
        }
        for ti in sorted(dr.get_task_instances(), key=lambda t: (t.task_id, t.map_index))
    ]
    try:
        entries = _collect_xcoms(dr)
        xcom_error = None
    except Exception as exc:
        traceback.print_exc()
        entries, xcom_error = [], f"could not read XComs: {type(exc).__name__}: {exc}"
    state = _state_text(dr.state)
    _emit(
        {
            "dag_id": dag_id,
            "run_id": dr.run_id,
            "logical_date": _date_text(dr.logical_date),
            "state": state,
            "tasks": tasks,
            "xcoms": _return_values(tasks, entries),
            "xcom_entries": entries,
            "error": xcom_error,
        }
    )
    return 0 if state == _FINISHED_OK else 1


# --------------------------------------------------------------------------------------------------------------
# CLI
# --------------------------------------------------------------------------------------------------------------
def _parse_conf(text: str | None) -> dict[str, Any] | None:
    if text is None:
        return None
    value = json.loads(text)
    if not isinstance(value, dict):
        raise SystemExit("--conf must be a JSON object")
    return value


def main(argv: Sequence[str] | None = None) -> int:
    """Command line entry point (``python -m airflow_provider_mediapocket.testing``)."""
    parser = argparse.ArgumentParser(
        prog="python -m airflow_provider_mediapocket.testing",
        description="Run a DAG end to end with Airflow's dag.test().",
    )
    sub = parser.add_subparsers(dest="command", required=True)

    run_p = sub.add_parser(
        "run",
        help="run DAG_ID with dag.test() in THIS process (AIRFLOW_HOME etc. must already be set and migrated) "
        f"and print a final '{RESULT_MARKER} {{json}}' line",
    )
    run_p.add_argument("dag_id")
    run_p.add_argument("--conf", help="dag_run.conf as a JSON object")
    run_p.add_argument("--logical-date", help="ISO 8601 logical date (default: now)")

    test_p = sub.add_parser(
        "test",
        help="prepare a throwaway AIRFLOW_HOME (migrated once), run DAG_ID in a subprocess, print its log "
        "and a summary; exit 0 only if the run succeeded",
    )
    test_p.add_argument("dag_id")
    test_p.add_argument("--dags-folder", required=True, type=Path)
    test_p.add_argument("--home", type=Path, default=Path(".airflow_home"), help="default: ./.airflow_home")
    test_p.add_argument("--conf", help="dag_run.conf as a JSON object")
    test_p.add_argument("--logical-date", help="ISO 8601 logical date (default: now)")
    test_p.add_argument("--env", action="append", default=[], metavar="KEY=VALUE", help="extra environment")
    test_p.add_argument("--timeout", type=float, default=600)
    test_p.add_argument("--quiet", action="store_true", help="print only the summary, not the log")

    args = parser.parse_args(argv)
    if args.command == "run":
        return _child_run(args.dag_id, _parse_conf(args.conf), args.logical_date)

    extra: dict[str, str] = {}
    for item in args.env:
        key, sep, value = item.partition("=")
        if not sep:
            parser.error(f"--env needs KEY=VALUE, got {item!r}")
        extra[key] = value
    env = prepare_airflow_home(args.home, args.dags_folder, extra_env=extra)
    result = run_dag_test(
        args.dag_id, env, conf=_parse_conf(args.conf), logical_date=args.logical_date, timeout=args.timeout
    )
    if not args.quiet:
        print(result.output)
    print(
        f"DAG {result.dag_id}: {result.state} in {result.duration:.1f} s"
        + (f" ({result.error})" if result.error else "")
    )
    for t in result.tasks:
        suffix = f"[{t['map_index']}]" if int(t["map_index"]) >= 0 else ""
        print(f"  {t['task_id']}{suffix}: {t['state']}")
    return 0 if result.succeeded else 1


if __name__ == "__main__":
    sys.exit(main())
