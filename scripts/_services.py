"""PostgreSQL and Redis for ``make e2e-distributed``: Debian's packages, started in a throwaway directory.

Neither runs as a system service: each gets its own data directory under the test's temporary directory,
listens on 127.0.0.1 only (a free port), and is stopped -- and checked to be gone -- by the test.

* :func:`ensure_packages` installs ``postgresql`` and ``redis-server`` with apt-get when they are
  missing. A ``policy-rc.d`` that refuses every start is in place during the install (when none exists),
  so the packages' maintainer scripts do not start the system-wide daemons.
* PostgreSQL refuses to run as root: as root, both servers run as the unprivileged system user
  :data:`SERVICE_USER` (created with ``useradd --system`` when missing), which owns the directories.
  As another user, they run as that user.
* :class:`Postgres` uses ``initdb`` / ``pg_ctl`` of the newest ``/usr/lib/postgresql/<version>/bin``;
  durability is off (``fsync``, ``synchronous_commit``, ``full_page_writes``): the data is thrown away.
* :class:`Redis` runs ``redis-server`` in the foreground with its whole config on the command line (no
  persistence).

Stdlib and the project's testing toolkit only.
"""

from __future__ import annotations

import contextlib
import os
import pwd
import shutil
import signal
import subprocess
import time
from collections.abc import Callable
from pathlib import Path

from airflow_provider_mediapocket.testing.process import descendants

SERVICE_USER = "mpe2e"
PG_ROOT = Path("/usr/lib/postgresql")
DB_NAME = "airflow"
DB_USER = "airflow"
#: A policy-rc.d that forbids every service start (exit 101), see /usr/share/doc/init-system-helpers/README.policy-rc.d.
POLICY_RC_D = Path("/usr/sbin/policy-rc.d")
APT_TIMEOUT = 900.0
START_TIMEOUT = 60.0
STOP_TIMEOUT = 30.0


class ServiceError(Exception):
    """A service could not be installed, started or stopped; the message says which and why."""


def pg_bindir() -> Path | None:
    """The newest ``/usr/lib/postgresql/<version>/bin`` that has ``initdb`` and ``pg_ctl``, if any."""
    found = [d / "bin" for d in PG_ROOT.glob("*") if all((d / "bin" / n).exists() for n in ("initdb", "pg_ctl"))]
    found.sort(key=lambda p: int(p.parent.name) if p.parent.name.isdigit() else -1)
    return found[-1] if found else None


def redis_binary() -> str | None:
    return shutil.which("redis-server") or (
        "/usr/bin/redis-server" if Path("/usr/bin/redis-server").exists() else None
    )


def ensure_packages(log: Callable[[str], None]) -> list[str]:
    """Install what is missing of ``postgresql`` and ``redis-server`` (apt-get, as root); return the
    packages installed (empty when both were there)."""
    missing = [name for name, present in (("postgresql", pg_bindir()), ("redis-server", redis_binary())) if not present]
    if not missing:
        return []
    if os.geteuid() != 0:
        raise ServiceError(f"{', '.join(missing)} missing and not root: install them with apt-get (Debian)")
    log(f"installing {' '.join(missing)} with apt-get (system services kept from starting)")
    env = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}
    own_policy = not POLICY_RC_D.exists()
    if own_policy:
        POLICY_RC_D.write_text("#!/bin/sh\n# written by make e2e-distributed for the install only\nexit 101\n")
        POLICY_RC_D.chmod(0o755)
    try:
        for argv in (["apt-get", "update", "-q"],
                     ["apt-get", "install", "-y", "-q", "--no-install-recommends", *missing]):
            proc = subprocess.run(argv, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                                  timeout=APT_TIMEOUT, check=False)
            if proc.returncode != 0:
                raise ServiceError(f"`{' '.join(argv)}` exited {proc.returncode}:\n{proc.stdout[-4000:]}")
    finally:
        if own_policy:
            POLICY_RC_D.unlink(missing_ok=True)
    still = [name for name, present in (("postgresql", pg_bindir()), ("redis-server", redis_binary())) if not present]
    if still:
        raise ServiceError(f"apt-get install finished but {', '.join(still)} is still missing")
    return missing


class Account:
    """The unprivileged account the servers run as (``uid``/``gid`` for ``subprocess``), or the current
    user's when not root."""

    def __init__(self) -> None:
        if os.geteuid() != 0:
            self.name, self.uid, self.gid = pwd.getpwuid(os.geteuid()).pw_name, os.geteuid(), os.getegid()
            return
        try:
            entry = pwd.getpwnam(SERVICE_USER)
        except KeyError:
            subprocess.run(["useradd", "--system", "--no-create-home", "--shell", "/usr/sbin/nologin", SERVICE_USER],
                           check=True, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, timeout=60)
            entry = pwd.getpwnam(SERVICE_USER)
        self.name, self.uid, self.gid = entry.pw_name, entry.pw_uid, entry.pw_gid

    def own(self, path: Path) -> Path:
        """Create ``path`` (mode 0700) for this account; its parents must let the account pass."""
        path.mkdir(parents=True, exist_ok=True)
        if os.geteuid() == 0:
            os.chown(path, self.uid, self.gid)
        path.chmod(0o700)
        return path

    def run(self, argv: list[str], timeout: float, what: str) -> str:
        kwargs = {"user": self.uid, "group": self.gid, "extra_groups": []} if os.geteuid() == 0 else {}
        proc = subprocess.run(argv, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                              text=True, timeout=timeout, check=False, cwd="/", **kwargs)  # type: ignore[call-overload]
        if proc.returncode != 0:
            raise ServiceError(f"{what}: `{' '.join(argv)}` exited {proc.returncode}:\n{proc.stdout[-4000:]}")
        return str(proc.stdout)

    def popen(self, argv: list[str], log_path: Path) -> subprocess.Popen[bytes]:
        kwargs = {"user": self.uid, "group": self.gid, "extra_groups": []} if os.geteuid() == 0 else {}
        with open(log_path, "wb") as out:
            return subprocess.Popen(argv, stdin=subprocess.DEVNULL, stdout=out, stderr=subprocess.STDOUT, cwd="/",
                                    start_new_session=True, **kwargs)  # type: ignore[call-overload]


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    # A zombie is gone for our purpose (its parent has not reaped it yet).
    with contextlib.suppress(OSError):
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0] != "Z"
    return True


def _wait_gone(pids: list[int], timeout: float) -> list[int]:
    deadline = time.monotonic() + timeout
    alive = [p for p in pids if _pid_alive(p)]
    while alive and time.monotonic() < deadline:
        time.sleep(0.1)
        alive = [p for p in alive if _pid_alive(p)]
    return alive


class Postgres:
    """One PostgreSQL cluster in ``directory`` on ``127.0.0.1:port``, database and superuser ``airflow``
    (trust authentication: loopback and a private socket directory only)."""

    def __init__(self, directory: Path, port: int, account: Account) -> None:
        bindir = pg_bindir()
        if bindir is None:
            raise ServiceError(f"no PostgreSQL under {PG_ROOT}: run ensure_packages() first")
        self.bindir = bindir
        self.version = bindir.parent.name
        self.account = account
        self.directory = account.own(directory)
        self.data = self.directory / "data"
        self.sockets = account.own(self.directory / "run")
        self.log_path = self.directory / "postgres.log"
        self.port = port
        self.pids: list[int] = []

    @property
    def url(self) -> str:
        """SQLAlchemy URL (psycopg2 driver)."""
        return f"postgresql+psycopg2://{DB_USER}@127.0.0.1:{self.port}/{DB_NAME}"

    def start(self) -> float:
        """initdb, start (``pg_ctl -w``), create the database; returns the seconds it took."""
        started = time.monotonic()
        self.account.run([str(self.bindir / "initdb"), "-D", str(self.data), "-U", DB_USER, "--auth=trust",
                          "-E", "UTF8", "--no-sync", "--no-instructions"], 120, "initdb")
        options = " ".join([
            "-c listen_addresses=127.0.0.1", f"-p {self.port}", f"-k {self.sockets}",
            # Scheduler, dag-processor, two triggerers, api-server and two workers, each with a pool.
            "-c max_connections=300", "-c fsync=off", "-c synchronous_commit=off", "-c full_page_writes=off",
        ])
        self.account.run([str(self.bindir / "pg_ctl"), "-D", str(self.data), "-l", str(self.log_path), "-w",
                          "-t", str(int(START_TIMEOUT)), "-o", options, "start"], START_TIMEOUT + 10, "pg_ctl start")
        self.pids = [self.postmaster_pid()]
        self.account.run([str(self.bindir / "createdb"), "-h", "127.0.0.1", "-p", str(self.port), "-U", DB_USER,
                          DB_NAME], 60, "createdb")
        return time.monotonic() - started

    def postmaster_pid(self) -> int:
        return int((self.data / "postmaster.pid").read_text().splitlines()[0])

    def processes(self) -> list[int]:
        """Pids of this cluster's processes alive now (the postmaster and its children)."""
        return _children_and(self.pids)

    def stop(self) -> list[int]:
        """``pg_ctl stop -m fast``; SIGKILL whatever is left. Returns pids still alive after that (none)."""
        if not self.pids:
            return []
        everyone = self.processes()
        with contextlib.suppress(ServiceError, subprocess.TimeoutExpired):
            self.account.run([str(self.bindir / "pg_ctl"), "-D", str(self.data), "-m", "fast", "-w",
                              "-t", str(int(STOP_TIMEOUT)), "stop"], STOP_TIMEOUT + 10, "pg_ctl stop")
        left = _wait_gone(everyone, 5)
        for pid in left:
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)
        return _wait_gone(left, 5)


class Redis:
    """``redis-server`` on ``127.0.0.1:port`` in the foreground, no persistence, working dir ``directory``."""

    def __init__(self, directory: Path, port: int, account: Account) -> None:
        binary = redis_binary()
        if binary is None:
            raise ServiceError("redis-server not installed: run ensure_packages() first")
        self.binary = binary
        self.account = account
        self.directory = account.own(directory)
        self.log_path = directory.parent / "redis.log"
        self.port = port
        self.popen: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    def start(self) -> float:
        """Start and wait for "Ready to accept connections"; returns the seconds it took."""
        started = time.monotonic()
        self.popen = self.account.popen([
            self.binary, "--bind", "127.0.0.1", "--port", str(self.port), "--protected-mode", "yes",
            "--dir", str(self.directory), "--save", "", "--appendonly", "no", "--daemonize", "no",
            "--logfile", "",
        ], self.log_path)
        deadline = time.monotonic() + START_TIMEOUT
        while "Ready to accept connections" not in self.log_path.read_text(errors="replace"):
            if self.popen.poll() is not None:
                raise ServiceError(f"redis-server exited {self.popen.returncode}:\n{self.log_path.read_text()[-2000:]}")
            if time.monotonic() > deadline:
                raise ServiceError(f"redis-server not ready after {START_TIMEOUT:.0f}s")
            time.sleep(0.1)
        return time.monotonic() - started

    def processes(self) -> list[int]:
        return _children_and([self.popen.pid]) if self.popen is not None else []

    def stop(self) -> list[int]:
        """SIGTERM, SIGKILL after the grace period; returns pids still alive after that (none)."""
        if self.popen is None:
            return []
        everyone = self.processes()
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(self.popen.pid, signal.SIGTERM)
        try:
            self.popen.wait(timeout=STOP_TIMEOUT)
        except subprocess.TimeoutExpired:
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.killpg(self.popen.pid, signal.SIGKILL)
            self.popen.wait(timeout=10)
        return _wait_gone(everyone, 5)


def _children_and(roots: list[int]) -> list[int]:
    """``roots`` and their descendants alive now (zombies excluded)."""
    return [pid for pid in descendants(roots) if _pid_alive(pid)]
