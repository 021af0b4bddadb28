"""`make e2e`: the example ingest DAG in a real Airflow deployment, against the bundled sandbox.

Unlike ``make demo`` (``dag.test()`` in one process), this starts the real components of an Airflow 3
deployment as separate processes in a throwaway ``AIRFLOW_HOME`` (SQLite, ``LocalExecutor``):

* the Media Pocket sandbox (``python -m airflow_provider_mediapocket.sandbox``) on a free loopback port;
* ``airflow api-server`` (REST API + execution API, one worker), ``airflow scheduler``,
  ``airflow dag-processor`` and ``airflow triggerer``, all with ``example_dags/`` as dags folder, the
  ``mediapocket_default`` connection as ``AIRFLOW_CONN_MEDIAPOCKET_DEFAULT`` and
  ``[operators] default_deferrable = True``.

It then unpauses and triggers ``mediapocket_ingest`` through the REST API (SimpleAuthManager with
``[core] simple_auth_manager_all_admins``; the token comes from ``GET /auth/token``), waits (bounded) for the
run and checks that:

1. the run and every task instance succeeded (retries are reported: Airflow 3.3.2 sometimes fails a task
   that resumed from deferral on a stale executor event, apache/airflow#72716; the DAG's retries absorb it);
2. the deferrable waits really went through our triggerer process: for each of the 6 deferrable task
   instances (``wait_for_media`` and ``run_dag_action``, 3 each) the task log says "Pausing task as DEFERRED"
   and the triggerer wrote a trigger log ``attempt=N.log.trigger.<job id>.log`` beside it, ``<job id>`` being
   a ``TriggererJob`` of this deployment (``/api/v2/jobs``), naming the trigger class (its logger:
   ``MediaPocketAssetTrigger`` / ``MediaPocketDagActionRunTrigger``) with "Trigger fired event" and
   "trigger completed";
3. the ``summary`` task's XCom is the expected counts;
4. every TCP listener of the deployment is on loopback (the log servers, which bind every interface, are
   off: ``--skip-serve-logs``);
5. the sandbox's API key appears nowhere under ``$AIRFLOW_HOME/logs``, in the processes' own logs or in the
   SQLite metadata DB.

The sandbox processes media for 30 s by default (``--media-processing-seconds``): with only a few seconds
the media is ready before ``wait_for_media`` first pokes, and the sensor succeeds without deferring.

Every process is started in its own session and stopped at the end -- success, failure, Ctrl-C or SIGTERM
-- by process group (SIGTERM, then SIGKILL after a grace period), then any descendant that left its group
(task processes call setpgid) is stopped by pid. On failure the tails of every process log are printed
and the exit code is 1 (130 when interrupted). Stdlib and the project only.

Usage::

    python scripts/e2e_deployment.py [--run-timeout 480] [--keep-home] [--media-processing-seconds 30]
"""

from __future__ import annotations

import argparse
import base64
import contextlib
import ipaddress
import json
import os
import secrets
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
DAGS_FOLDER = ROOT / "example_dags"
DAG_ID = "mediapocket_ingest"
#: Which trigger each deferrable task defers to.
TRIGGER_OF_TASK = {"wait_for_media": "MediaPocketAssetTrigger", "run_dag_action": "MediaPocketDagActionRunTrigger"}
DEFERRABLE_TASKS = tuple(TRIGGER_OF_TASK)
TRIGGER_CLASSES = tuple(TRIGGER_OF_TASK.values())
EXPECTED_SUMMARY = {"assets": 3, "media_types": {"image": 1, "video": 1, "audio": 1}, "runs": {"completed": 3}}
DEFERRED_LINE = "Pausing task as DEFERRED"
TERMINAL_RUN_STATES = {"success", "failed"}

# Bounds of every wait, seconds.
MIGRATE_TIMEOUT = 180.0
SANDBOX_READY_TIMEOUT = 30.0
STARTUP_TIMEOUT = 240.0  # api-server answering + scheduler/triggerer/dag-processor heartbeating + DAG parsed
STOP_GRACE = 20.0
HTTP_TIMEOUT = 30.0


class E2EFailure(Exception):
    """A check or a wait failed; the message says which."""


class Interrupted(BaseException):
    """SIGTERM/SIGINT/SIGHUP received: unwind through the ``finally`` blocks."""


def log(message: str) -> None:
    print(f"[e2e {time.strftime('%H:%M:%S')}] {message}", flush=True)


def free_port() -> int:
    """A TCP port on 127.0.0.1 that was free a moment ago (bind to port 0)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def wait_for(what: str, check: Callable[[], Any], timeout: float, interval: float = 1.0,
             alive: Callable[[], None] | None = None) -> Any:
    """Call ``check`` until it returns something truthy; ``alive`` raises if a process died. Bounded."""
    deadline = time.monotonic() + timeout
    last_error: BaseException | None = None
    while True:
        if alive is not None:
            alive()
        try:
            result = check()
            if result:
                return result
        except (OSError, ValueError, E2EFailure) as exc:  # URLError is an OSError
            last_error = exc
        if time.monotonic() >= deadline:
            detail = f" (last error: {last_error})" if last_error else ""
            raise E2EFailure(f"timed out after {timeout:.0f}s waiting for {what}{detail}")
        time.sleep(interval)


# --------------------------------------------------------------------------------------------------------------
# Processes
# --------------------------------------------------------------------------------------------------------------
@dataclass
class Proc:
    name: str
    popen: subprocess.Popen[bytes]
    log_path: Path
    started: float = field(default_factory=time.monotonic)

    @property
    def pgid(self) -> int:
        return self.popen.pid  # start_new_session=True: the child leads its own session and group

    def tail(self, lines: int = 60) -> str:
        try:
            text = self.log_path.read_text(errors="replace")
        except OSError as exc:
            return f"(cannot read {self.log_path}: {exc})"
        return "\n".join(text.splitlines()[-lines:])


def _group_alive(pgid: int) -> bool:
    try:
        os.killpg(pgid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def _signal_group(pgid: int, sig: int) -> None:
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(pgid, sig)


def _proc_table() -> dict[int, tuple[int, int]]:
    """pid -> (parent pid, start time in clock ticks) of every process, from /proc/<pid>/stat."""
    table: dict[int, tuple[int, int]] = {}
    proc_dir = Path("/proc")
    for entry in proc_dir.iterdir() if proc_dir.is_dir() else []:
        if not entry.name.isdigit():
            continue
        try:
            stat = (entry / "stat").read_text()
        except OSError:
            continue
        fields = stat[stat.rindex(")") + 2:].split()  # the command name may hold spaces and parentheses
        table[int(entry.name)] = (int(fields[1]), int(fields[19]))
    return table


def _descendants(roots: list[int]) -> dict[int, int]:
    """pid -> start time of ``roots`` and all their descendants alive now (start time guards pid reuse)."""
    table = _proc_table()
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


def _pids_with_env(marker: bytes) -> list[int]:
    """Pids of this user's processes whose environment holds ``marker`` (``AIRFLOW_HOME=<this run's home>``).

    Only a second net: processes that retitle themselves (setproctitle) overwrite what /proc shows of it.
    """
    found = []
    me = os.getpid()
    proc_dir = Path("/proc")
    for entry in proc_dir.iterdir() if proc_dir.is_dir() else []:
        if not entry.name.isdigit() or int(entry.name) == me:
            continue
        try:
            environ = (entry / "environ").read_bytes()
        except OSError:
            continue
        if marker in environ.split(b"\0"):
            found.append(int(entry.name))
    return found


def _still_same(pids: dict[int, int]) -> dict[int, int]:
    """The processes of ``pids`` (pid -> start time) that are still alive and not reused pids."""
    table = _proc_table()
    return {pid: start for pid, start in pids.items() if pid in table and table[pid][1] == start}


class Deployment:
    """The processes of one e2e run, all stopped by :meth:`stop_all`."""

    def __init__(self, home: Path, env: dict[str, str]) -> None:
        self.home = home
        self.env = env
        self.proc_logs = home / "process-logs"
        self.proc_logs.mkdir(parents=True, exist_ok=True)
        self.procs: list[Proc] = []

    def start(self, name: str, argv: list[str]) -> Proc:
        log_path = self.proc_logs / f"{name}.log"
        with open(log_path, "wb") as out:
            popen = subprocess.Popen(
                argv, env=self.env, cwd=self.home, stdin=subprocess.DEVNULL, stdout=out,
                stderr=subprocess.STDOUT, start_new_session=True,
            )
        proc = Proc(name, popen, log_path)
        self.procs.append(proc)
        log(f"started {name} (pid {popen.pid})")
        return proc

    def check_alive(self) -> None:
        for proc in self.procs:
            code = proc.popen.poll()
            if code is not None:
                raise E2EFailure(f"{proc.name} exited early with code {code}")

    def tree(self) -> dict[int, int]:
        """pid -> start time of every process started here and of all their descendants, plus processes
        carrying this run's AIRFLOW_HOME in their environment (orphans)."""
        pids = _descendants([proc.popen.pid for proc in self.procs])
        table = _proc_table()
        for pid in _pids_with_env(f"AIRFLOW_HOME={self.home}".encode()):
            if pid in table and pid not in pids:
                pids[pid] = table[pid][1]
        return pids

    def stop_all(self) -> None:
        """SIGTERM every process group (newest first), SIGKILL what is left after the grace period, then the
        same for any descendant in another process group (task processes call setpgid)."""
        snapshot = self.tree()
        for proc in reversed(self.procs):
            if _group_alive(proc.pgid):
                _signal_group(proc.pgid, signal.SIGTERM)
        deadline = time.monotonic() + STOP_GRACE
        while time.monotonic() < deadline and any(_group_alive(p.pgid) for p in self.procs):
            for proc in self.procs:
                proc.popen.poll()  # reap leaders so their group can disappear
            time.sleep(0.2)
        for proc in self.procs:
            if _group_alive(proc.pgid):
                log(f"{proc.name} still running after {STOP_GRACE:.0f}s: SIGKILL to its process group")
                _signal_group(proc.pgid, signal.SIGKILL)
        for proc in self.procs:
            try:
                proc.popen.wait(timeout=10)
            except subprocess.TimeoutExpired:
                log(f"{proc.name} (pid {proc.popen.pid}) did not exit after SIGKILL")
        leftovers = _still_same({**snapshot, **self.tree()})
        if not leftovers:
            return
        log(f"stopping {len(leftovers)} leftover process(es) outside the process groups: {sorted(leftovers)}")
        for pid in leftovers:
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.kill(pid, signal.SIGTERM)
        deadline = time.monotonic() + 5
        while leftovers and time.monotonic() < deadline:
            time.sleep(0.2)
            leftovers = _still_same(leftovers)
        for pid in leftovers:
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.kill(pid, signal.SIGKILL)

    def print_tails(self, lines: int = 60) -> None:
        for proc in self.procs:
            print(f"\n===== last {lines} lines of {proc.name} ({proc.log_path}) =====", flush=True)
            print(proc.tail(lines), flush=True)


# --------------------------------------------------------------------------------------------------------------
# REST API client (stdlib)
# --------------------------------------------------------------------------------------------------------------
class Api:
    def __init__(self, base_url: str) -> None:
        self.base_url = base_url.rstrip("/")
        self.token: str | None = None

    def request(self, method: str, path: str, body: Any = None, auth: bool = True) -> tuple[int, Any]:
        data = None if body is None else json.dumps(body).encode()
        req = urllib.request.Request(self.base_url + path, data=data, method=method)
        req.add_header("Accept", "application/json")
        if data is not None:
            req.add_header("Content-Type", "application/json")
        if auth and self.token:
            req.add_header("Authorization", f"Bearer {self.token}")
        try:
            with urllib.request.urlopen(req, timeout=HTTP_TIMEOUT) as resp:
                status, raw = resp.status, resp.read()
        except urllib.error.HTTPError as exc:
            status, raw = exc.code, exc.read()
        try:
            payload = json.loads(raw) if raw else None
        except ValueError:
            payload = raw.decode(errors="replace")
        return status, payload

    def ok(self, method: str, path: str, body: Any = None) -> Any:
        status, payload = self.request(method, path, body)
        if status >= 300:
            raise E2EFailure(f"{method} {path} -> HTTP {status}: {payload}")
        return payload

    def login(self) -> None:
        """Token from the SimpleAuthManager (``GET /auth/token`` works when everyone is admin)."""
        status, payload = self.request("GET", "/auth/token", auth=False)
        if status >= 300 or not isinstance(payload, dict) or "access_token" not in payload:
            raise E2EFailure(f"GET /auth/token -> HTTP {status}: {payload}")
        self.token = payload["access_token"]


# --------------------------------------------------------------------------------------------------------------
# The run
# --------------------------------------------------------------------------------------------------------------
def airflow_argv(*args: str) -> list[str]:
    return [sys.executable, "-m", "airflow", *args]


def build_env(home: Path, api_port: int, sandbox_port: int, api_key: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items()
           if not k.startswith(("AIRFLOW__", "AIRFLOW_CONN_", "AIRFLOW_VAR_")) and k not in ("AIRFLOW_CONFIG",)}
    api_url = f"http://127.0.0.1:{api_port}"
    connection = {
        "conn_type": "mediapocket", "host": f"http://127.0.0.1:{sandbox_port}", "password": api_key,
        "extra": {"retry_backoff": 0.2},
    }
    pythonpath = [p for p in env.get("PYTHONPATH", "").split(os.pathsep) if p]
    if str(ROOT) not in pythonpath:
        pythonpath.insert(0, str(ROOT))
    env.update({
        "AIRFLOW_HOME": str(home),
        "AIRFLOW_CONFIG": str(home / "airflow.cfg"),
        "AIRFLOW_CONN_MEDIAPOCKET_DEFAULT": json.dumps(connection),
        "AIRFLOW__OPERATORS__DEFAULT_DEFERRABLE": "True",
        "AIRFLOW__CORE__DAGS_FOLDER": str(DAGS_FOLDER),
        "AIRFLOW__CORE__LOAD_EXAMPLES": "False",
        "AIRFLOW__CORE__EXECUTOR": "LocalExecutor",
        "AIRFLOW__CORE__PARALLELISM": "4",
        "AIRFLOW__CORE__DAGS_ARE_PAUSED_AT_CREATION": "True",
        "AIRFLOW__CORE__UNIT_TEST_MODE": "False",
        "AIRFLOW__CORE__FERNET_KEY": base64.urlsafe_b64encode(os.urandom(32)).decode(),
        "AIRFLOW__CORE__EXECUTION_API_SERVER_URL": f"{api_url}/execution/",
        "AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_ALL_ADMINS": "True",
        "AIRFLOW__DATABASE__SQL_ALCHEMY_CONN": f"sqlite:///{home / 'airflow.db'}",
        "AIRFLOW__API__BASE_URL": api_url,
        "AIRFLOW__API__HOST": "127.0.0.1",
        "AIRFLOW__API__PORT": str(api_port),
        "AIRFLOW__API__WORKERS": "1",
        "AIRFLOW__API__SECRET_KEY": secrets.token_hex(16),
        "AIRFLOW__API_AUTH__JWT_SECRET": secrets.token_hex(32),
        "AIRFLOW__LOGGING__BASE_LOG_FOLDER": str(home / "logs"),
        "AIRFLOW__LOGGING__LOGGING_LEVEL": "INFO",
        "AIRFLOW__LOGGING__COLORED_CONSOLE_LOG": "False",
        # Only the run we trigger: no scheduled run when the DAG is unpaused.
        "AIRFLOW__SCHEDULER__USE_JOB_SCHEDULE": "False",
        "AIRFLOW__SCHEDULER__ENABLE_HEALTH_CHECK": "False",
        "PYTHONPATH": os.pathsep.join(pythonpath),
        "PYTHONUNBUFFERED": "1",
        "NO_COLOR": "1",
    })
    return env


def run_migrate(env: dict[str, str], home: Path) -> float:
    started = time.monotonic()
    log_path = home / "process-logs" / "db-migrate.log"
    log_path.parent.mkdir(parents=True, exist_ok=True)
    with open(log_path, "wb") as out:
        proc = subprocess.Popen(airflow_argv("db", "migrate"), env=env, cwd=home, stdin=subprocess.DEVNULL,
                                stdout=out, stderr=subprocess.STDOUT, start_new_session=True)
        try:
            code = proc.wait(timeout=MIGRATE_TIMEOUT)
        except BaseException:
            _signal_group(proc.pid, signal.SIGKILL)
            proc.wait(timeout=10)
            raise
    if code != 0:
        tail = "\n".join(log_path.read_text(errors="replace").splitlines()[-40:])
        raise E2EFailure(f"airflow db migrate exited with {code}:\n{tail}")
    return time.monotonic() - started


def ti_log_dir(home: Path, run_id: str, task_id: str, map_index: int) -> Path:
    """Default ``[logging] log_filename_template``: dag_id=/run_id=/task_id=/[map_index=/]attempt=N.log."""
    base = home / "logs" / f"dag_id={DAG_ID}" / f"run_id={run_id}" / f"task_id={task_id}"
    return base / f"map_index={map_index}" if map_index >= 0 else base


def check_deferrals(home: Path, run_id: str, tis: list[dict[str, Any]], triggerer_job_ids: set[int],
                    report: list[str]) -> int:
    """Evidence that every deferrable task instance deferred and its trigger ran in our triggerer process.

    For each such task instance: its task log has "Pausing task as DEFERRED", and next to it there is a trigger
    log ``attempt=N.log.trigger.<job id>.log`` written by the triggerer, where ``<job id>`` is the id of a
    ``TriggererJob`` of this deployment (REST ``/api/v2/jobs``), naming the trigger class (its logger) and
    saying the trigger fired and completed. Returns how many task instances were checked.
    """
    expected_class = TRIGGER_OF_TASK
    deferrable = [ti for ti in tis if ti["task_id"] in DEFERRABLE_TASKS]
    expected = EXPECTED_SUMMARY["assets"] * len(DEFERRABLE_TASKS)  # type: ignore[operator]
    if len(deferrable) != expected:
        raise E2EFailure(f"expected {expected} deferrable task instances, found {len(deferrable)}")
    problems = []
    example = ""
    for ti in sorted(deferrable, key=lambda t: (t["task_id"], t["map_index"])):
        directory = ti_log_dir(home, run_id, ti["task_id"], ti["map_index"])
        label = f"{ti['task_id']}[{ti['map_index']}]"
        files = sorted(directory.glob("attempt=*")) if directory.is_dir() else []
        trigger_logs = [p for p in files if ".log.trigger." in p.name]
        task_logs = [p for p in files if p.name.endswith(".log") and ".log.trigger." not in p.name]
        if not any(DEFERRED_LINE in p.read_text(errors="replace") for p in task_logs):
            problems.append(f"{label}: no '{DEFERRED_LINE}' in its task log(s) {[p.name for p in task_logs]}")
        good = []
        for path in trigger_logs:
            job_id = path.name.rsplit(".log.trigger.", 1)[1].removesuffix(".log")
            text = path.read_text(errors="replace")
            if (job_id.isdigit() and int(job_id) in triggerer_job_ids and expected_class[ti["task_id"]] in text
                    and "Trigger fired event" in text and "trigger completed" in text):
                good.append(path)
        if not good:
            problems.append(
                f"{label}: no trigger log by triggerer job {sorted(triggerer_job_ids)} naming "
                f"{expected_class[ti['task_id']]} with 'Trigger fired event' + 'trigger completed' "
                f"(files: {[p.name for p in files]})"
            )
        elif not example:
            example = str(good[0].relative_to(home))
    if problems:
        hint = (" (a wait_for_media that never deferred found the media already processed on its first poke:"
                " raise --media-processing-seconds)")
        raise E2EFailure("deferral evidence missing:\n  " + "\n  ".join(problems) + hint)
    report.append(
        f"triggerer handled {len(deferrable)}/{expected} deferred task instances "
        f"({', '.join(DEFERRABLE_TASKS)}, 3 each): each task log has "
        f"'{DEFERRED_LINE}' and a trigger log by TriggererJob {sorted(triggerer_job_ids)} naming "
        f"{' / '.join(TRIGGER_CLASSES)} with 'Trigger fired event' and 'trigger completed', e.g. {example}"
    )
    return len(deferrable)


def check_key_absent(home: Path, api_key: str, report: list[str]) -> None:
    """The API key is in no task/trigger/processor log, no process log, and nowhere in the metadata DB."""
    needle = api_key.encode()
    scanned = 0
    leaks = []
    paths: list[Path] = []
    for directory in (home / "logs", home / "process-logs"):
        paths.extend(sorted(p for p in directory.rglob("*") if p.is_file()) if directory.is_dir() else [])
    paths.extend(p for p in sorted(home.glob("airflow.db*")) if p.is_file())
    for path in paths:
        scanned += 1
        if needle in path.read_bytes():
            leaks.append(str(path.relative_to(home)))
    if leaks:
        raise E2EFailure("the sandbox API key appears in: " + ", ".join(leaks))
    report.append(f"API key: absent from all {scanned} files under $AIRFLOW_HOME/logs, the process logs and "
                  "the SQLite metadata DB")


def _listening_sockets() -> dict[int, str]:
    """socket inode -> "address:port" of every TCP socket in LISTEN state (from /proc/net/tcp, tcp6)."""
    found: dict[int, str] = {}
    for name, width in (("tcp", 8), ("tcp6", 32)):
        try:
            lines = Path(f"/proc/net/{name}").read_text().splitlines()[1:]
        except OSError:
            continue
        for line in lines:
            fields = line.split()
            if len(fields) < 10 or fields[3] != "0A":
                continue
            address_hex, port_hex = fields[1].split(":")
            raw = bytes.fromhex(address_hex[:width])
            # /proc prints each 32-bit word in host (little-endian) order.
            words = b"".join(raw[i:i + 4][::-1] for i in range(0, len(raw), 4))
            address = str(ipaddress.ip_address(words))
            found[int(fields[9])] = f"{address}:{int(port_hex, 16)}"
    return found


def check_loopback_only(deployment: Deployment, report: list[str]) -> None:
    """Every TCP listener of this deployment's processes (and their children) is bound to a loopback address."""
    listening = _listening_sockets()
    owner: dict[int, str] = {}
    for proc in deployment.procs:
        for pid in _descendants([proc.popen.pid]):
            owner.setdefault(pid, proc.name)
    mine: dict[str, str] = {}
    for pid, name in owner.items():
        try:
            fds = list(Path(f"/proc/{pid}/fd").iterdir())
        except OSError:
            continue
        for fd in fds:
            with contextlib.suppress(OSError):
                target = os.readlink(fd)
                if target.startswith("socket:[") and int(target[8:-1]) in listening:
                    mine[listening[int(target[8:-1])]] = f"{name} (pid {pid})"
    exposed = []
    for entry in sorted(mine):
        addr = ipaddress.ip_address(entry.rsplit(":", 1)[0])
        mapped = getattr(addr, "ipv4_mapped", None)
        if not (addr.is_loopback or (mapped is not None and mapped.is_loopback)):
            exposed.append(f"{entry} {mine[entry]}")
    if exposed:
        raise E2EFailure(f"listening on non-loopback addresses: {', '.join(exposed)}")
    report.append(f"TCP listeners of the {len(owner)} deployment processes: "
                  f"{', '.join(f'{k} {v}' for k, v in sorted(mine.items())) or 'none found'} (loopback only)")


def run(args: argparse.Namespace, home: Path, report: list[str]) -> None:
    t0 = time.monotonic()
    api_port, sandbox_port = free_port(), free_port()
    api_key = f"e2e-key-{secrets.token_hex(12)}"
    env = build_env(home, api_port, sandbox_port, api_key)
    deployment = Deployment(home, env)
    ok = False
    try:
        log(f"AIRFLOW_HOME={home}")
        seconds = run_migrate(env, home)
        report.append(f"airflow db migrate: {seconds:.1f}s")
        log(f"db migrated in {seconds:.1f}s")

        sandbox = deployment.start("sandbox", [
            sys.executable, "-m", "airflow_provider_mediapocket.sandbox", "--port", str(sandbox_port),
            "--api-key", api_key, "--media-processing-seconds", str(args.media_processing_seconds),
            "--dag-action-run-seconds", str(args.dag_action_run_seconds),
        ])
        t_start = time.monotonic()
        # --skip-serve-logs: the log servers bind every interface ([::]), and everything here shares one
        # log folder, so the api-server reads the logs from disk anyway.
        deployment.start("api-server", airflow_argv("api-server", "--host", "127.0.0.1", "--port", str(api_port),
                                                    "--workers", "1"))
        deployment.start("scheduler", airflow_argv("scheduler", "--skip-serve-logs"))
        deployment.start("dag-processor", airflow_argv("dag-processor"))
        deployment.start("triggerer", airflow_argv("triggerer", "--skip-serve-logs"))

        wait_for("the sandbox", lambda: "listening on" in sandbox.log_path.read_text(errors="replace"),
                 SANDBOX_READY_TIMEOUT, 0.2, deployment.check_alive)
        report.append(f"sandbox listening after {time.monotonic() - sandbox.started:.1f}s")

        api = Api(f"http://127.0.0.1:{api_port}")

        def api_up() -> bool:
            status, _ = api.request("GET", "/api/v2/monitor/health", auth=False)
            return status == 200

        startup_deadline = t_start + STARTUP_TIMEOUT

        def left() -> float:
            return max(1.0, startup_deadline - time.monotonic())

        wait_for("the api-server", api_up, left(), 0.5, deployment.check_alive)
        report.append(f"api-server answering after {time.monotonic() - t_start:.1f}s")
        api.login()

        ready_at: dict[str, float] = {}

        def healthy() -> bool:
            health = api.ok("GET", "/api/v2/monitor/health")
            for part in ("scheduler", "triggerer", "dag_processor"):
                if (health.get(part) or {}).get("status") == "healthy":
                    ready_at.setdefault(part, time.monotonic() - t_start)
            return len(ready_at) == 3 and (health.get("metadatabase") or {}).get("status") == "healthy"

        wait_for("scheduler, triggerer and dag-processor heartbeats", healthy, left(), 0.5,
                 deployment.check_alive)
        report.append("heartbeating (seen healthy in /api/v2/monitor/health) after: "
                      + ", ".join(f"{part} {seconds:.1f}s" for part, seconds in ready_at.items()))

        def dag_parsed() -> bool:
            status, _ = api.request("GET", f"/api/v2/dags/{DAG_ID}")
            if status == 200:
                return True
            errors = api.ok("GET", "/api/v2/importErrors")
            if errors.get("total_entries"):
                raise E2EFailure(f"import errors: {json.dumps(errors)[:2000]}")
            return False

        wait_for(f"{DAG_ID} to be parsed", dag_parsed, left(), 0.5, deployment.check_alive)
        report.append(f"{DAG_ID} parsed after {time.monotonic() - t_start:.1f}s")
        log(f"{DAG_ID} is parsed; unpausing and triggering it through the REST API")

        api.ok("PATCH", f"/api/v2/dags/{DAG_ID}", {"is_paused": False})
        dag_run = api.ok("POST", f"/api/v2/dags/{DAG_ID}/dagRuns", {"logical_date": None, "conf": {}})
        run_id = dag_run["dag_run_id"]
        quoted = urllib.parse.quote(run_id, safe="")
        t_trigger = time.monotonic()
        log(f"triggered run {run_id}; waiting up to {args.run_timeout:.0f}s")

        last_state: list[str] = []

        def finished() -> str | None:
            state = api.ok("GET", f"/api/v2/dags/{DAG_ID}/dagRuns/{quoted}")["state"]
            if not last_state or last_state[-1] != state:
                log(f"run state: {state}")
                last_state.append(state)
            return state if state in TERMINAL_RUN_STATES else None

        state = wait_for(f"run {run_id} to finish", finished, args.run_timeout, 2.0, deployment.check_alive)
        run_seconds = time.monotonic() - t_trigger
        tis = api.ok("GET", f"/api/v2/dags/{DAG_ID}/dagRuns/{quoted}/taskInstances?limit=100")["task_instances"]
        ti_states = sorted(f"{ti['task_id']}[{ti['map_index']}]={ti['state']}" for ti in tis)
        report.append(f"dag run {run_id}: {state} in {run_seconds:.1f}s; {len(tis)} task instances")
        if state != "success":
            raise E2EFailure(f"run {run_id} ended {state}: {', '.join(ti_states)}")
        not_ok = [s for s in ti_states if not s.endswith("=success")]
        if not_ok:
            raise E2EFailure(f"task instances not successful: {', '.join(not_ok)}")
        retried = sorted(f"{ti['task_id']}[{ti['map_index']}] (try {ti['try_number']})"
                         for ti in tis if ti["try_number"] > 1)
        if retried:
            scheduler_log = (home / "process-logs" / "scheduler.log").read_text(errors="replace")
            stale = scheduler_log.count("but the task instance's state attribute is running")
            report.append(
                f"WARNING retried: {', '.join(retried)}; scheduler saw {stale} stale defer-exit executor event(s) "
                "for resumed task instances (Airflow bug apache/airflow#72716, fix PR #72767)"
            )
        else:
            report.append("no task instance needed a retry")

        xcom = api.ok("GET", f"/api/v2/dags/{DAG_ID}/dagRuns/{quoted}/taskInstances/summary/xcomEntries/return_value")
        value = xcom.get("value")
        if isinstance(value, str):
            value = json.loads(value)
        if value != EXPECTED_SUMMARY:
            raise E2EFailure(f"summary XCom is {value!r}, expected {EXPECTED_SUMMARY!r}")
        report.append(f"summary XCom: {json.dumps(value, sort_keys=True)}")

        jobs = api.ok("GET", "/api/v2/jobs?job_type=TriggererJob&limit=100")["jobs"]
        triggerer_job_ids = {int(job["id"]) for job in jobs}
        check_deferrals(home, run_id, tis, triggerer_job_ids, report)
        check_loopback_only(deployment, report)
        check_key_absent(home, api_key, report)
        ok = True
    finally:
        t_stop = time.monotonic()
        log("stopping all processes")
        deployment.stop_all()
        report.append(f"all processes stopped in {time.monotonic() - t_stop:.1f}s")
        report.append(f"total wall time: {time.monotonic() - t0:.1f}s")
        if not ok:
            deployment.print_tails()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--run-timeout", type=float, default=480.0, help="max seconds for the DAG run")
    parser.add_argument("--keep-home", action="store_true", help="keep the throwaway AIRFLOW_HOME")
    parser.add_argument(
        "--media-processing-seconds", type=float, default=30.0,
        help="sandbox media processing time; long enough that wait_for_media finds the media still processing "
             "on its first poke and defers (with 3 s it is ready before the sensor starts and never defers)",
    )
    parser.add_argument("--dag-action-run-seconds", type=float, default=4.0, help="sandbox DAG action run time")
    args = parser.parse_args(argv)

    def _interrupt(signum: int, frame: object) -> None:
        # Once: a second signal must not abort the cleanup that this one starts (it is bounded anyway).
        for sig in (signal.SIGTERM, signal.SIGINT, signal.SIGHUP):
            signal.signal(sig, signal.SIG_IGN)
        raise Interrupted(f"signal {signum}")

    for sig in (signal.SIGTERM, signal.SIGINT, signal.SIGHUP):
        signal.signal(sig, _interrupt)

    home = Path(tempfile.mkdtemp(prefix="mediapocket-e2e-"))
    report: list[str] = []
    code = 1
    try:
        run(args, home, report)
        code = 0
    except E2EFailure as exc:
        print(f"\nE2E FAILED: {exc}", flush=True)
    except Interrupted as exc:
        print(f"\nE2E INTERRUPTED ({exc})", flush=True)
        code = 130
    finally:
        finish("e2e deployment", report, code, home, keep_home=args.keep_home)
    return code


def finish(title: str, report: list[str], code: int, home: Path, *, keep_home: bool) -> None:
    """Print the report and the result line; remove the throwaway AIRFLOW_HOME unless asked to keep it."""
    print(f"\n===== {title} report =====")
    for line in report:
        print(f"- {line}")
    print(f"RESULT: {'PASS' if code == 0 else 'FAIL'}", flush=True)
    if keep_home:
        print(f"AIRFLOW_HOME kept at {home}", flush=True)
    else:
        shutil.rmtree(home, ignore_errors=True)


if __name__ == "__main__":
    sys.exit(main())
