"""Child processes: run one to completion (:func:`run_child`), and find or stop whole process trees.

Every child starts in its own session, so it leads its own process group: a timeout, a Ctrl-C or a
crash of the parent stops the child *and* whatever it started, by group. Descendants that left the
group (Airflow's task processes call ``setpgid``) are found through ``/proc`` (:func:`descendants`) or by
a marker in their environment (:func:`pids_with_env`). Linux only for the ``/proc`` parts; stdlib only.
"""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

__all__ = [
    "ChildResult",
    "descendants",
    "group_alive",
    "pids_with_env",
    "proc_table",
    "run_child",
    "signal_group",
    "still_same",
]


@dataclass(frozen=True)
class ChildResult:
    """How one child process ended.

    :ivar returncode: its exit code (-9 when it was killed on timeout).
    :ivar output: its combined stdout and stderr (also written to ``log_path`` when one was given).
    :ivar duration: wall time, seconds.
    :ivar timed_out: whether it was killed because it ran past its timeout.
    """

    returncode: int
    output: str
    duration: float
    timed_out: bool = False

    def tail(self, lines: int = 40) -> str:
        """The last ``lines`` lines of :attr:`output`."""
        return "\n".join(self.output.splitlines()[-lines:])


def run_child(
    argv: Sequence[str],
    env: Mapping[str, str],
    *,
    timeout: float,
    cwd: Path | None = None,
    log_path: Path | None = None,
) -> ChildResult:
    """Run ``argv`` to completion in its own process group; never leave it running.

    :param argv: the command.
    :param env: its whole environment.
    :param timeout: seconds; past it the process group gets SIGKILL and the result says ``timed_out``.
    :param cwd: its working directory (default: ours).
    :param log_path: also keep its output in this file (created with its parent folders).
    """
    started = time.monotonic()
    if log_path is not None:
        log_path.parent.mkdir(parents=True, exist_ok=True)
    with open(log_path, "w+b") if log_path is not None else contextlib.nullcontext() as sink:
        proc = subprocess.Popen(
            list(argv),
            env=dict(env),
            cwd=str(cwd) if cwd is not None else None,
            stdin=subprocess.DEVNULL,
            stdout=sink if sink is not None else subprocess.PIPE,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
        timed_out = False
        try:
            piped, _ = proc.communicate(timeout=timeout)
        except subprocess.TimeoutExpired:
            timed_out = True
            signal_group(proc.pid, signal.SIGKILL)
            piped, _ = proc.communicate()
        except BaseException:
            # Interrupted (Ctrl-C, SIGTERM turned into an exception): the child must not outlive us.
            signal_group(proc.pid, signal.SIGKILL)
            proc.wait(timeout=10)
            raise
        if sink is not None:
            sink.seek(0)
            raw = sink.read()
        else:
            raw = piped or b""
    return ChildResult(
        returncode=-9 if timed_out else proc.returncode,
        output=raw.decode("utf-8", errors="replace"),
        duration=time.monotonic() - started,
        timed_out=timed_out,
    )


def group_alive(pgid: int) -> bool:
    """Whether any process of group ``pgid`` is still alive."""
    try:
        os.killpg(pgid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def signal_group(pgid: int, sig: int) -> None:
    """Send ``sig`` to group ``pgid``; a group that is gone already is fine."""
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(pgid, sig)


def proc_table() -> dict[int, tuple[int, int]]:
    """pid -> (parent pid, start time in clock ticks) of every process, from ``/proc/<pid>/stat``."""
    table: dict[int, tuple[int, int]] = {}
    proc_dir = Path("/proc")
    for entry in proc_dir.iterdir() if proc_dir.is_dir() else []:
        if not entry.name.isdigit():
            continue
        try:
            stat = (entry / "stat").read_text()
        except OSError:
            continue
        fields = stat[stat.rindex(")") + 2 :].split()  # the command name may hold spaces and parentheses
        table[int(entry.name)] = (int(fields[1]), int(fields[19]))
    return table


def descendants(roots: Sequence[int]) -> dict[int, int]:
    """pid -> start time of ``roots`` and all their descendants alive now (the start time guards against
    pid reuse, see :func:`still_same`)."""
    table = proc_table()
    children: dict[int, list[int]] = {}
    for pid, (ppid, _) in table.items():
        children.setdefault(ppid, []).append(pid)
    found: dict[int, int] = {}
    todo = [pid for pid in roots if pid in table]
    while todo:
        pid = todo.pop()
        if pid in found:
            continue
        found[pid] = table[pid][1]
        todo.extend(children.get(pid, []))
    return found


def pids_with_env(marker: str) -> dict[int, int]:
    """pid -> start time of this user's processes whose environment holds the entry ``marker``
    (``NAME=value``), except this process.

    A second net for orphans that left both their group and their parent: processes that retitle
    themselves (setproctitle) may overwrite what ``/proc`` shows of their environment.
    """
    needle = marker.encode()
    table = proc_table()
    found: dict[int, int] = {}
    me = os.getpid()
    for pid, (_, start) in table.items():
        if pid == me:
            continue
        try:
            environ = Path(f"/proc/{pid}/environ").read_bytes()
        except OSError:
            continue
        if needle in environ.split(b"\0"):
            found[pid] = start
    return found


def still_same(pids: Mapping[int, int]) -> dict[int, int]:
    """The processes of ``pids`` (pid -> start time) that are still alive and are not reused pids."""
    table = proc_table()
    return {pid: start for pid, start in pids.items() if pid in table and table[pid][1] == start}
