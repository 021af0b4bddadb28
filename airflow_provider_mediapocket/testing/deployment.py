"""A real Airflow deployment on loopback, one process per component, for deployment scripts.

Typical use (``scripts/e2e_deployment.py`` does exactly this)::

    api_port = free_port()
    env = deployment_env(home, dags_folder, api_port, {"AIRFLOW_CONN_MEDIAPOCKET_DEFAULT": conn})
    migrate(env, log_path=home / "process-logs" / "db-migrate.log")
    deployment = Deployment(home, env, api_port)
    try:
        deployment.start_sandbox(sandbox_port, api_key, media_processing_seconds=30)
        for component in ("api-server", "scheduler", "dag-processor", "triggerer"):
            deployment.start(component)
        ready = Api(deployment.api_url).wait_ready(timeout=240, alive=deployment.check_alive, dag_ids=[...])
        ...
    finally:
        deployment.stop_all()

Extension points (another executor, database or set of components without copying code):

* :func:`deployment_env` takes ``overrides`` (``AIRFLOW__CORE__EXECUTOR=CeleryExecutor``,
  ``AIRFLOW__DATABASE__SQL_ALCHEMY_CONN=postgresql+psycopg2://...``, ``AIRFLOW__CELERY__BROKER_URL``...);
* :meth:`Deployment.start` starts any ``airflow`` subcommand (``"celery worker"`` too) under any ``name``
  (two triggerers: ``start("triggerer", name="triggerer-2")``) with per-process ``env`` additions, and
  :data:`COMPONENT_ARGS` holds the default arguments of the usual components;
* :meth:`Deployment.start_process` starts anything else (a broker, a second sandbox) in the same way;
* every process carries :data:`MARKER_VARIABLE` in its environment, so :meth:`Deployment.stop_all` and
  :meth:`Deployment.leftovers` find the ones that left their process group and their parent.
"""

from __future__ import annotations

import base64
import contextlib
import ipaddress
import os
import secrets
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from airflow_provider_mediapocket.testing.airflow_home import airflow_command, airflow_env
from airflow_provider_mediapocket.testing.common import DeploymentError, log, wait_for
from airflow_provider_mediapocket.testing.process import (
    descendants,
    group_alive,
    pids_with_env,
    proc_table,
    signal_group,
    still_same,
)

__all__ = [
    "COMPONENT_ARGS",
    "MARKER_VARIABLE",
    "SANDBOX_READY_TIMEOUT",
    "STARTUP_TIMEOUT",
    "STOP_GRACE",
    "Deployment",
    "Proc",
    "deployment_env",
    "listening_sockets",
]

#: Seconds for the api-server to answer, the components to heartbeat and the DAGs to be parsed.
STARTUP_TIMEOUT = 240.0
#: Seconds for the sandbox process to listen.
SANDBOX_READY_TIMEOUT = 30.0
#: Seconds between SIGTERM and SIGKILL when stopping.
STOP_GRACE = 20.0
#: Set in the environment of every process a :class:`Deployment` starts, to its home.
MARKER_VARIABLE = "MEDIAPOCKET_DEPLOYMENT"

def deployment_env(
    home: Path, dags_folder: Path, api_port: int, overrides: Mapping[str, str] | None = None
) -> dict[str, str]:
    """The environment of every process of a deployment in ``home``: :func:`airflow_env` without the
    caller's connections, plus ``LocalExecutor``, the api-server on ``127.0.0.1:api_port`` (also the
    execution API), the SimpleAuthManager with everyone admin, fresh secrets, DAGs paused at creation and no
    scheduled runs (only triggered ones), plus ``overrides`` (which win).

    :param home: the ``AIRFLOW_HOME``.
    :param dags_folder: an existing folder of DAG files.
    :param api_port: the api-server's port.
    :param overrides: environment entries set last: connections, another executor or database.
    """
    api_url = f"http://127.0.0.1:{api_port}"
    settings = {
        "AIRFLOW__CORE__EXECUTOR": "LocalExecutor",
        "AIRFLOW__CORE__PARALLELISM": "4",
        "AIRFLOW__CORE__DAGS_ARE_PAUSED_AT_CREATION": "True",
        "AIRFLOW__CORE__FERNET_KEY": base64.urlsafe_b64encode(os.urandom(32)).decode(),
        "AIRFLOW__CORE__EXECUTION_API_SERVER_URL": f"{api_url}/execution/",
        "AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_ALL_ADMINS": "True",
        "AIRFLOW__API__BASE_URL": api_url,
        "AIRFLOW__API__HOST": "127.0.0.1",
        "AIRFLOW__API__PORT": str(api_port),
        "AIRFLOW__API__WORKERS": "1",
        "AIRFLOW__API__SECRET_KEY": secrets.token_hex(16),
        "AIRFLOW__API_AUTH__JWT_SECRET": secrets.token_hex(32),
        # Only the runs we trigger: no scheduled run when a DAG is unpaused.
        "AIRFLOW__SCHEDULER__USE_JOB_SCHEDULE": "False",
        **(overrides or {}),
    }
    return airflow_env(home, dags_folder, settings, inherit_connections=False)


@dataclass
class Proc:
    """One process of a deployment, leading its own session and process group.

    :ivar name: unique within the deployment; its output goes to ``process-logs/<name>.log``.
    """

    name: str
    popen: subprocess.Popen[bytes]
    log_path: Path
    started: float = field(default_factory=time.monotonic)

    @property
    def pgid(self) -> int:
        """Its process group (``start_new_session=True``: the child leads its own)."""
        return self.popen.pid

    def text(self) -> str:
        """Its whole log so far."""
        try:
            return self.log_path.read_text(errors="replace")
        except OSError as exc:
            return f"(cannot read {self.log_path}: {exc})"

    def tail(self, lines: int = 60) -> str:
        """The last ``lines`` lines of its log.

        :param lines: how many.
        """
        return "\n".join(self.text().splitlines()[-lines:])


class Deployment:
    """The processes of one deployment in ``home``, all stopped by :meth:`stop_all`.

    :param home: the ``AIRFLOW_HOME``; process logs go to ``home/process-logs``.
    :param env: the environment of every process (see :func:`deployment_env`).
    :param api_port: the api-server's port (``COMPONENT_ARGS["api-server"]`` uses it).
    """

    def __init__(self, home: Path, env: Mapping[str, str], api_port: int) -> None:
        self.home = Path(home)
        self.env = {**env, MARKER_VARIABLE: str(self.home)}
        self.api_port = api_port
        self.proc_logs = self.home / "process-logs"
        self.procs: list[Proc] = []

    @property
    def api_url(self) -> str:
        """``http://127.0.0.1:<api_port>``."""
        return f"http://127.0.0.1:{self.api_port}"

    # ------------------------------------------------------------------ starting
    def start_process(self, name: str, argv: Sequence[str], env: Mapping[str, str] | None = None) -> Proc:
        """Start ``argv`` in its own session with the deployment's environment (plus ``env``).

        :param name: unique name; the output goes to ``process-logs/<name>.log``.
        :param argv: the command.
        :param env: entries added to the deployment's environment for this process only.
        """
        if any(proc.name == name for proc in self.procs):
            raise ValueError(f"name {name!r} is taken: pass name= to start a second {name}")
        self.proc_logs.mkdir(parents=True, exist_ok=True)
        log_path = self.proc_logs / f"{name}.log"
        with open(log_path, "wb") as out:
            popen = subprocess.Popen(
                list(argv),
                env={**self.env, **(env or {})},
                cwd=self.home,
                stdin=subprocess.DEVNULL,
                stdout=out,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )
        proc = Proc(name, popen, log_path)
        self.procs.append(proc)
        log(f"started {name} (pid {popen.pid})")
        return proc

    def start(
        self, component: str, *args: str, name: str | None = None, env: Mapping[str, str] | None = None
    ) -> Proc:
        """Start ``airflow <component> <args>``.

        :param component: an ``airflow`` subcommand: ``api-server``, ``scheduler``, ``dag-processor``,
            ``triggerer``, ``celery worker``...
        :param args: its arguments; without any, those of :data:`COMPONENT_ARGS` (none for unknown ones).
        :param name: default the component (``celery worker`` -> ``celery-worker``); pass one to start a
            component twice.
        :param env: environment entries for this process only (e.g. another ``AIRFLOW__TRIGGERER__CAPACITY``).
        """
        words = component.split()
        defaults = COMPONENT_ARGS.get(component)
        arguments = list(args) if args or defaults is None else defaults(self)
        return self.start_process(name or "-".join(words), airflow_command(*words, *arguments), env)

    def start_sandbox(self, port: int, api_key: str, *, name: str = "sandbox", **options: Any) -> Proc:
        """Start ``python -m airflow_provider_mediapocket.sandbox`` on ``127.0.0.1:port`` and wait until it listens.

        The Airflow connection to it is ``MediaPocketSandbox(api_key=api_key, port=port).connection()``.

        :param port: its port.
        :param api_key: its API key.
        :param name: the process name.
        :param options: more command line options: ``media_processing_seconds=30`` becomes
            ``--media-processing-seconds 30``.
        """
        argv = [sys.executable, "-m", "airflow_provider_mediapocket.sandbox", "--port", str(port), "--api-key", api_key]
        for option, value in options.items():
            argv += [f"--{option.replace('_', '-')}", str(value)]
        proc = self.start_process(name, argv)
        wait_for(f"the {name}", lambda: "listening on" in proc.text(), SANDBOX_READY_TIMEOUT, 0.2, self.check_alive)
        return proc

    def proc(self, name: str) -> Proc:
        """The process called ``name``.

        :param name: as started.
        """
        for proc in self.procs:
            if proc.name == name:
                return proc
        raise KeyError(f"no process named {name!r} (started: {[p.name for p in self.procs]})")

    def check_alive(self) -> None:
        """Raise :class:`DeploymentError` if a started process has exited (pass it as ``alive`` to waits)."""
        for proc in self.procs:
            code = proc.popen.poll()
            if code is not None:
                raise DeploymentError(f"{proc.name} exited early with code {code}")

    # ------------------------------------------------------------------ inspecting
    def tree(self) -> dict[int, int]:
        """pid -> start time of every process started here and all their descendants, plus any process
        carrying this deployment's :data:`MARKER_VARIABLE` (orphans that left group and parent)."""
        pids = descendants([proc.popen.pid for proc in self.procs])
        for pid, start in pids_with_env(f"{MARKER_VARIABLE}={self.home}").items():
            pids.setdefault(pid, start)
        return pids

    def listeners(self) -> dict[str, str]:
        """``address:port`` -> ``"<process name> (pid N)"`` of every TCP socket this deployment's processes
        (and their descendants) listen on."""
        listening = listening_sockets()
        owner: dict[int, str] = {}
        for proc in self.procs:
            for pid in descendants([proc.popen.pid]):
                owner.setdefault(pid, proc.name)
        found: dict[str, str] = {}
        for pid, name in owner.items():
            try:
                fds = list(Path(f"/proc/{pid}/fd").iterdir())
            except OSError:
                continue
            for fd in fds:
                with contextlib.suppress(OSError):
                    target = os.readlink(fd)
                    if target.startswith("socket:[") and int(target[8:-1]) in listening:
                        found[listening[int(target[8:-1])]] = f"{name} (pid {pid})"
        return found

    def process_count(self) -> int:
        """How many processes the deployment has now (started ones and their descendants)."""
        return len(descendants([proc.popen.pid for proc in self.procs]))

    # ------------------------------------------------------------------ stopping
    def stop_all(self) -> None:
        """SIGTERM every process group (newest first), SIGKILL what is left after :data:`STOP_GRACE`, then
        the same for any descendant or marked process outside the groups (task processes call setpgid)."""
        snapshot = self.tree()
        for proc in reversed(self.procs):
            if group_alive(proc.pgid):
                signal_group(proc.pgid, signal.SIGTERM)
        deadline = time.monotonic() + STOP_GRACE
        while time.monotonic() < deadline and any(group_alive(p.pgid) for p in self.procs):
            for proc in self.procs:
                proc.popen.poll()  # reap leaders so their group can disappear
            time.sleep(0.2)
        for proc in self.procs:
            if group_alive(proc.pgid):
                log(f"{proc.name} still running after {STOP_GRACE:.0f}s: SIGKILL to its process group")
                signal_group(proc.pgid, signal.SIGKILL)
        for proc in self.procs:
            try:
                proc.popen.wait(timeout=10)
            except subprocess.TimeoutExpired:
                log(f"{proc.name} (pid {proc.popen.pid}) did not exit after SIGKILL")
        leftovers = still_same({**snapshot, **self.tree()})
        if not leftovers:
            return
        log(f"stopping {len(leftovers)} leftover process(es) outside the process groups: {sorted(leftovers)}")
        for pid in leftovers:
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.kill(pid, signal.SIGTERM)
        deadline = time.monotonic() + 5
        while leftovers and time.monotonic() < deadline:
            time.sleep(0.2)
            leftovers = still_same(leftovers)
        for pid in leftovers:
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.kill(pid, signal.SIGKILL)

    def leftovers(self) -> list[int]:
        """Pids of this deployment's processes still alive (call after :meth:`stop_all`: it should be none)."""
        table = proc_table()
        alive = [proc.popen.pid for proc in self.procs if proc.popen.poll() is None]
        alive += [pid for pid in pids_with_env(f"{MARKER_VARIABLE}={self.home}") if pid in table]
        return sorted(set(alive))

    def print_tails(self, lines: int = 60) -> None:
        """Print the last ``lines`` lines of every process log (for a failure report).

        :param lines: how many per process.
        """
        for proc in self.procs:
            print(f"\n===== last {lines} lines of {proc.name} ({proc.log_path}) =====", flush=True)
            print(proc.tail(lines), flush=True)


#: Default arguments of the components :meth:`Deployment.start` knows, given the deployment.
#: ``--skip-serve-logs``: the log servers bind every interface, and every process here shares one log
#: folder, so the api-server reads the logs from disk anyway.
COMPONENT_ARGS: dict[str, Callable[[Deployment], list[str]]] = {
    "api-server": lambda d: ["--host", "127.0.0.1", "--port", str(d.api_port), "--workers", "1"],
    "scheduler": lambda d: ["--skip-serve-logs"],
    "dag-processor": lambda d: [],
    "triggerer": lambda d: ["--skip-serve-logs"],
    "celery worker": lambda d: ["--skip-serve-logs"],
}


def listening_sockets() -> dict[int, str]:
    """socket inode -> ``address:port`` of every TCP socket in LISTEN state (from /proc/net/tcp, tcp6)."""
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
            words = b"".join(raw[i : i + 4][::-1] for i in range(0, len(raw), 4))
            address = str(ipaddress.ip_address(words))
            found[int(fields[9])] = f"{address}:{int(port_hex, 16)}"
    return found


def is_loopback(address: str) -> bool:
    """Whether ``address:port`` is on a loopback address (IPv4-mapped IPv6 included).

    :param address: as :meth:`Deployment.listeners` gives it.
    """
    addr = ipaddress.ip_address(address.rsplit(":", 1)[0])
    mapped = getattr(addr, "ipv4_mapped", None)
    return addr.is_loopback or (mapped is not None and mapped.is_loopback)
