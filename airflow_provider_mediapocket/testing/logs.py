"""Reading what a deployment wrote: task and trigger log files, a secret that must appear nowhere, and
messages that must appear exactly once."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from pathlib import Path

from airflow_provider_mediapocket.testing.common import DeploymentError

__all__ = ["files_under", "message_counts", "messages_once", "secret_absent", "task_log_dir", "trigger_logs"]


def task_log_dir(home: Path, dag_id: str, run_id: str, task_id: str, map_index: int = -1) -> Path:
    """The folder of a task instance's logs under the default ``[logging] log_filename_template``
    (``dag_id=/run_id=/task_id=/[map_index=/]attempt=N.log``).

    :param home: the ``AIRFLOW_HOME`` (logs in ``home/logs``).
    :param dag_id: the DAG.
    :param run_id: the run.
    :param task_id: the task.
    :param map_index: -1 for an unmapped task.
    """
    base = home / "logs" / f"dag_id={dag_id}" / f"run_id={run_id}" / f"task_id={task_id}"
    return base / f"map_index={map_index}" if map_index >= 0 else base


def trigger_logs(directory: Path) -> dict[Path, int | None]:
    """The trigger logs in a task instance's log folder (``attempt=N.log.trigger.<job id>.log``), each with
    the id of the ``TriggererJob`` that wrote it (None if the name holds no number).

    :param directory: from :func:`task_log_dir`.
    """
    found: dict[Path, int | None] = {}
    for path in sorted(directory.glob("attempt=*.log.trigger.*")) if directory.is_dir() else []:
        job = path.name.rsplit(".log.trigger.", 1)[1].removesuffix(".log")
        found[path] = int(job) if job.isdigit() else None
    return found


def files_under(*roots: Path) -> list[Path]:
    """Every file under ``roots`` (a root that is a file counts itself; missing ones count nothing), sorted.

    :param roots: folders or files.
    """
    paths: set[Path] = set()
    for root in roots:
        if root.is_file():
            paths.add(root)
        elif root.is_dir():
            paths.update(p for p in root.rglob("*") if p.is_file())
    return sorted(paths)


def secret_absent(paths: Iterable[Path], secret: str) -> int:
    """Check that ``secret`` is in none of ``paths`` (bytes, so binary files such as SQLite count); returns
    how many files were scanned. Raises :class:`DeploymentError` naming the files that hold it.

    :param paths: the files (see :func:`files_under`).
    :param secret: e.g. the API key.
    """
    needle = secret.encode()
    scanned, leaks = 0, []
    for path in paths:
        scanned += 1
        if needle in path.read_bytes():
            leaks.append(str(path))
    if leaks:
        raise DeploymentError(f"the secret appears in: {', '.join(leaks)}")
    return scanned


def message_counts(text: str, messages: Iterable[str]) -> dict[str, int]:
    """How often each of ``messages`` occurs in ``text``.

    :param text: a log, a page's text.
    :param messages: the substrings to count.
    """
    return {message: text.count(message) for message in messages}


def messages_once(text: str, messages: Iterable[str], what: str = "the log") -> Mapping[str, int]:
    """Check that each of ``messages`` occurs exactly once in ``text``; returns the counts. Raises
    :class:`DeploymentError` with all counts otherwise.

    :param text: a log, a page's text.
    :param messages: the substrings.
    :param what: names ``text`` in the error.
    """
    counts = message_counts(text, messages)
    if any(count != 1 for count in counts.values()):
        raise DeploymentError(f"{what} should show each message once: {counts}")
    return counts
