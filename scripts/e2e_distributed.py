"""`make e2e-distributed`: the ingest DAG on a distributed deployment, with a triggerer and a worker killed.

Everything runs on this machine, on 127.0.0.1, in a throwaway directory, and is stopped at the end:

* PostgreSQL (metadata DB and Celery result backend) and Redis (Celery broker) from Debian's packages,
  installed with apt-get when missing and started by this script (``scripts/_services.py``), not as
  system services;
* Airflow with the CeleryExecutor: api-server, scheduler, dag-processor, **two triggerers** and **two
  Celery workers**, each a separate process (``apache-airflow-providers-celery``, ``psycopg2-binary`` and
  ``asyncpg`` come from the project's ``distributed`` extra, installed by ``make e2e-distributed`` when
  missing);
* the Media Pocket sandbox, in this process (so that the test can count what it holds and script its
  faults).

Scenario ``triggerer_kill``: ``mediapocket_ingest`` over a manifest of ``--items`` (default 100) items, all
waits deferrable. While the DAG action run waits are on the triggerers, the triggerer holding the most
triggers is killed with SIGKILL (its whole process tree). Checked: the surviving triggerer takes over every
trigger the dead one held (the trigger table, and a trigger log by the survivor's job for each), the run
succeeds, the sandbox holds exactly one asset and one DAG action run per item, each run message appears
once in its task's logs, and the takeover time is measured (kill -> last trigger off the dead triggerer).

Scenario ``worker_kill``: the same DAG over 2 items; the first DAG action start (POST) is answered late by
the sandbox (it is applied at once), and while the start operator waits for that answer -- after its POST,
before its wait -- the Celery worker running it is killed with SIGKILL (its whole process tree). The
scheduler finds the task's heartbeat gone, the retry runs on the other worker and re-attaches to the run the
killed try started: exactly one run per asset, the run succeeds.

Then: no API key in any log (Airflow's, the processes', Postgres's, Redis's), every process (Airflow's,
Postgres's, Redis's) stopped. The report (each scenario's time, the takeover time, the total) is printed
and written to ``build/e2e-distributed/report.json``. Exit code 0 only when every check passed.

Usage::

    python scripts/e2e_distributed.py [--items 100] [--keep-home]
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import re
import secrets
import signal
import sys
import tempfile
import time
from collections import Counter
from collections.abc import Callable
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))
import _services as services
import e2e_deployment as harness

from airflow_provider_mediapocket.sandbox import MediaPocketSandbox
from airflow_provider_mediapocket.testing import migrate
from airflow_provider_mediapocket.testing.api import Api
from airflow_provider_mediapocket.testing.common import (
    DeploymentError,
    Interrupted,
    free_port,
    handle_interrupts,
    wait_for,
)
from airflow_provider_mediapocket.testing.common import log as _log
from airflow_provider_mediapocket.testing.deployment import STARTUP_TIMEOUT, Deployment, Proc
from airflow_provider_mediapocket.testing.logs import files_under, secret_absent, task_log_dir, trigger_logs
from airflow_provider_mediapocket.testing.process import descendants, still_same
from airflow_provider_mediapocket.testing.report import Report, finish

ROOT = harness.ROOT
DAG_ID = harness.DAG_ID
REPORT_PATH = ROOT / "build" / "e2e-distributed" / "report.json"
RUN_TRIGGER = "MediaPocketDagActionRunTrigger"
WORKERS = ("worker-1", "worker-2")
TRIGGERERS = ("triggerer-1", "triggerer-2")
#: Task slots per Celery worker: two workers on two cores, most waits on the triggerers.
WORKER_CONCURRENCY = 3
#: Seconds without a heartbeat after which a triggerer's triggers go to another one (default 30).
TRIGGERER_HEALTH_THRESHOLD = 15
#: Seconds without a task heartbeat after which the scheduler fails the try (default 300).
TASK_HEARTBEAT_TIMEOUT = 20
#: How long the sandbox holds the answer to the start that the worker kill interrupts.
START_ANSWER_DELAY = 120.0
#: "DAG action run 4: Started processing (at 2026-...Z)", alone (JSON task logs) or inside a console line.
MESSAGE_LINE = re.compile(r"DAG action run (\d+): (.+?)(?: \(at [^)]*\))?(?:\s+\[[\w.]+\]|$)")


def log(message: str) -> None:
    _log(message, prefix="e2e-distributed")


class Cluster:
    """Postgres, Redis, the sandbox and the Airflow processes of one run; :meth:`stop` ends them all."""

    def __init__(self, home: Path, args: argparse.Namespace) -> None:
        self.home = home
        self.args = args
        self.api_key = f"e2e-distributed-key-{secrets.token_hex(12)}"
        self.account = services.Account()
        self.postgres: services.Postgres | None = None
        self.redis: services.Redis | None = None
        self.sandbox: MediaPocketSandbox | None = None
        self.deployment: Deployment | None = None
        self.api: Api | None = None
        self.killed: list[Proc] = []
        self.triggerer_job: dict[str, int] = {}
        self.killed_pids: dict[int, int] = {}
        self.db: Any = None

    # ------------------------------------------------------------------------------------------ start
    def start(self, report: Report) -> None:
        installed = services.ensure_packages(log)
        # The servers' account must reach their directories inside the throwaway home.
        self.home.chmod(0o755)
        svc = self.home / "services"
        svc.mkdir()
        svc.chmod(0o755)
        self.postgres = services.Postgres(svc / "postgres", free_port(), self.account)
        pg_seconds = self.postgres.start()
        self.redis = services.Redis(svc / "redis", free_port(), self.account)
        redis_seconds = self.redis.start()
        report.add(f"PostgreSQL {self.postgres.version} ready in {pg_seconds:.1f}s, Redis in {redis_seconds:.1f}s "
                   f"(as user {self.account.name}; installed now: {installed or 'nothing'})",
                   installed_packages=installed, postgres_start_seconds=round(pg_seconds, 1),
                   redis_start_seconds=round(redis_seconds, 1))

        # The deployment's own sandbox object, served from this process (not as a process of its own).
        self.deployment, self.sandbox = harness.prepare(self.home, self.api_key, overrides=self.distributed_settings())
        self.sandbox.state.media_processing_seconds = self.args.media_processing_seconds
        self.sandbox.state.dag_action_run_seconds = self.args.dag_action_run_seconds
        self.sandbox.start()
        dep = self.deployment
        seconds = migrate(dep.env, log_path=dep.proc_logs / "db-migrate.log")
        report.add(f"airflow db migrate (PostgreSQL): {seconds or 0:.1f}s", migrate_seconds=seconds)
        import psycopg2

        self.db = psycopg2.connect(host="127.0.0.1", port=self.postgres.port, user=services.DB_USER,
                                   dbname=services.DB_NAME)
        self.db.autocommit = True

        started = time.monotonic()
        for component in ("api-server", "scheduler", "dag-processor"):
            dep.start(component)
        for name in WORKERS:
            dep.start("celery worker", "--skip-serve-logs", "--concurrency", str(WORKER_CONCURRENCY),
                      "--celery-hostname", f"{name}@%h", "--without-mingle", "--without-gossip", name=name)
        # One triggerer at a time: the TriggererJob row that appears next is the one of the triggerer just
        # started (the job table keeps no pid, and both run on this host).
        for name in TRIGGERERS:
            before = set(self.triggerer_jobs())
            dep.start("triggerer", name=name)
            new = wait_for(f"the TriggererJob of {name}", lambda b=before: set(self.triggerer_jobs()) - b,
                           STARTUP_TIMEOUT, 0.5, dep.check_alive)
            self.triggerer_job[name] = next(iter(new))
        self.api = Api(dep.api_url)
        ready = self.api.wait_ready(timeout=STARTUP_TIMEOUT, alive=dep.check_alive, dag_ids=[DAG_ID])
        wait_for("both Celery workers", self.workers_ready, STARTUP_TIMEOUT, 0.5, dep.check_alive)
        seconds = time.monotonic() - started
        report.add(f"api-server, scheduler, dag-processor, {len(WORKERS)} Celery workers and {len(TRIGGERERS)} "
                   f"triggerers (jobs {self.triggerer_job}) ready after {seconds:.1f}s",
                   airflow_start_seconds=round(seconds, 1), ready_seconds=ready)

    def distributed_settings(self) -> dict[str, str]:
        assert self.postgres is not None and self.redis is not None
        return {
            "AIRFLOW__DATABASE__SQL_ALCHEMY_CONN": self.postgres.url,
            "AIRFLOW__CORE__EXECUTOR": "CeleryExecutor",
            "AIRFLOW__CORE__PARALLELISM": str(2 * WORKER_CONCURRENCY),
            "AIRFLOW__CELERY__BROKER_URL": self.redis.url,
            "AIRFLOW__CELERY__RESULT_BACKEND": "db+" + self.postgres.url,
            "AIRFLOW__CELERY__WORKER_CONCURRENCY": str(WORKER_CONCURRENCY),
            "AIRFLOW__TRIGGERER__TRIGGERER_HEALTH_CHECK_THRESHOLD": str(TRIGGERER_HEALTH_THRESHOLD),
            "AIRFLOW__SCHEDULER__TASK_INSTANCE_HEARTBEAT_TIMEOUT": str(TASK_HEARTBEAT_TIMEOUT),
            "AIRFLOW__SCHEDULER__TASK_INSTANCE_HEARTBEAT_TIMEOUT_DETECTION_INTERVAL": "5",
            # A task message a killed worker had prefetched is never acked: requeue it after this long.
            "AIRFLOW__SCHEDULER__TASK_QUEUED_TIMEOUT": "120",
        }

    # ------------------------------------------------------------------------------------------ queries
    def query(self, sql: str, *params: Any) -> list[tuple[Any, ...]]:
        with self.db.cursor() as cur:
            cur.execute(sql, params)
            return list(cur.fetchall())

    def triggerer_jobs(self) -> list[int]:
        """Ids of the running TriggererJobs that heartbeat recently."""
        rows = self.query(
            "SELECT id FROM job WHERE job_type = 'TriggererJob' AND state = 'running' "
            "AND latest_heartbeat > now() - make_interval(secs => %s) ORDER BY id", TRIGGERER_HEALTH_THRESHOLD)
        return [int(r[0]) for r in rows]

    def triggers(self) -> list[tuple[int, int | None, str, str, int]]:
        """(trigger id, triggerer job id, classpath, task id, map index) of every trigger now."""
        return [(int(r[0]), r[1], r[2], r[3], int(r[4])) for r in self.query(
            "SELECT t.id, t.triggerer_id, t.classpath, ti.task_id, ti.map_index FROM trigger t "
            "JOIN task_instance ti ON ti.trigger_id = t.id WHERE ti.dag_id = %s", DAG_ID)]

    def workers_ready(self) -> bool:
        assert self.deployment is not None
        return all(" ready." in p.log_path.read_text(errors="replace")
                   for p in self.deployment.procs if p.name in WORKERS)

    def proc(self, name: str) -> Proc:
        assert self.deployment is not None
        return self.deployment.proc(name)

    # ------------------------------------------------------------------------------------------ kill
    def kill(self, name: str) -> float:
        """SIGKILL process ``name`` and its whole process tree (a crashed machine); returns the kill time."""
        proc = self.proc(name)
        tree = descendants([proc.popen.pid])
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(proc.pgid, signal.SIGKILL)
        for pid in tree:
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.kill(pid, signal.SIGKILL)
        killed_at = time.monotonic()
        proc.popen.wait(timeout=10)
        assert self.deployment is not None
        self.deployment.procs.remove(proc)
        self.killed.append(proc)
        self.killed_pids.update(tree)
        log(f"SIGKILL {name} (pid {proc.popen.pid}) and its {len(tree) - 1} descendant(s)")
        return killed_at

    # ------------------------------------------------------------------------------------------ runs
    def trigger_run(self, items: int, scenario: str) -> tuple[str, list[dict[str, Any]]]:
        assert self.api is not None
        manifest = [{"title": f"{scenario} item {i:03d}", "external_id": f"{scenario}-{i:03d}",
                     "file_url": f"https://media.example.com/e2e/{scenario}-{i:03d}.mp4", "tags": ["e2e"]}
                    for i in range(items)]
        run_id = self.api.trigger(DAG_ID, {"manifest": manifest, "project_title": f"Distributed {scenario}"})
        log(f"{scenario}: triggered run {run_id} over {items} items")
        return run_id, manifest

    def wait_run(self, run_id: str, timeout: float) -> str:
        assert self.api is not None and self.deployment is not None
        return self.api.wait_run(DAG_ID, run_id, timeout=timeout, alive=self.deployment.check_alive)

    def task_instances(self, run_id: str) -> list[dict[str, Any]]:
        assert self.api is not None
        tis: list[dict[str, Any]] = []
        while True:  # Api.task_instances reads one page of 100; a mapped run has more
            page = self.api.ok("GET", f"{self.api.run_path(DAG_ID, run_id)}/taskInstances?limit=100&offset={len(tis)}")
            tis.extend(page["task_instances"])
            if len(tis) >= page["total_entries"] or not page["task_instances"]:
                return tis

    def going(self, run_id: str) -> Callable[[], None]:
        """An ``alive`` check for a wait inside run ``run_id``: every process is up and the run has not ended.

        A run that ended before what the scenario waits for (e.g. a task failed) fails the wait at once,
        naming the task instances that did not succeed, instead of waiting out the timeout."""
        assert self.deployment is not None
        deployment = self.deployment

        def check() -> None:
            deployment.check_alive()
            rows = self.query("SELECT state FROM dag_run WHERE dag_id = %s AND run_id = %s", DAG_ID, run_id)
            if rows and rows[0][0] in ("success", "failed"):
                not_ok = sorted(f"{t['task_id']}[{t['map_index']}]={t['state']}"
                                for t in self.task_instances(run_id) if t["state"] != "success")
                raise DeploymentError(f"run {run_id} ended {rows[0][0]} before the scenario's step; "
                                      f"not successful: {not_ok[:20]}")

        return check

    # ------------------------------------------------------------------------------------------ checks
    def check_run(self, scenario: str, run_id: str, state: str, manifest: list[dict[str, Any]],
                  dead_job: int | None = None) -> dict[str, Any]:
        """Run and task states, one asset and one DAG action run per item, each run message logged once."""
        assert self.sandbox is not None
        tis = self.task_instances(run_id)
        not_ok = sorted(f"{t['task_id']}[{t['map_index']}]={t['state']}" for t in tis if t["state"] != "success")
        if state != "success" or not_ok:
            raise DeploymentError(f"{scenario}: run {run_id} ended {state}; not successful: {not_ok[:20]}")
        state_ = self.sandbox.state
        wanted = {item["external_id"] for item in manifest}
        assets = [a for a in state_.assets.values() if a.get("external_id") in wanted]
        per_item = Counter(a["external_id"] for a in assets)
        runs = [r for r in state_.runs.values() if r["asset_id"] in {a["id"] for a in assets}]
        per_asset = Counter(r["asset_id"] for r in runs)
        if set(per_item) != wanted or set(per_item.values()) != {1}:
            raise DeploymentError(f"{scenario}: assets per item {dict(per_item)}, expected one for each of "
                                     f"{len(wanted)}")
        if len(per_asset) != len(assets) or set(per_asset.values()) != {1}:
            raise DeploymentError(f"{scenario}: DAG action runs per asset {dict(per_asset)}, expected one each")
        messages = self.check_messages(run_id, runs, dead_job)
        retried = sorted(f"{t['task_id']}[{t['map_index']}] try {t['try_number']}" for t in tis if t["try_number"] > 1)
        return {"run_id": run_id, "state": state, "task_instances": len(tis), "assets": len(assets),
                "dag_action_runs": len(runs), **messages, "retried": retried}

    def check_messages(self, run_id: str, runs: list[dict[str, Any]], dead_job: int | None) -> dict[str, int]:
        """Every message of every run is logged once: in its task instance's logs (task and trigger logs) or,
        where Airflow 3.3.2 routes a finishing trigger's last lines, in a triggerer's process log.

        One exception, counted: a message the killed triggerer had logged (in its trigger log) before the kill
        is logged once more by the triggerer that takes the wait over -- the trigger restarts from what the
        task knew when it deferred. Anything else seen twice, or not at all, fails.
        """
        expected = Counter((str(r["id"]), m["message"]) for r in runs for m in r["dag_action_run_messages"])
        seen: Counter[tuple[str, str]] = Counter()
        before_kill: set[tuple[str, str]] = set()
        in_process_log = 0
        base = task_log_dir(self.home, DAG_ID, run_id, "run_dag_action", -1)
        for path in sorted(base.rglob("attempt=*")):
            found = self._messages(path.read_text(errors="replace").splitlines())
            seen.update(found)
            if dead_job is not None and path.name.endswith(f".log.trigger.{dead_job}.log"):
                before_kill.update(found)
        for proc in [*self.killed, *(self.deployment.procs if self.deployment else [])]:
            if proc.name in TRIGGERERS:
                lines = [x for x in proc.log_path.read_text(errors="replace").splitlines() if f"run_id={run_id}" in x]
                found = self._messages(lines)
                in_process_log += len(found)
                seen.update(found)
        relogged = {k for k, n in seen.items() if n == expected.get(k, 0) + 1 and k in before_kill}
        problems = [f"run {rid} {text!r}: logged {seen[(rid, text)]}x, expected {n}x"
                    for (rid, text), n in sorted(expected.items()) if seen[(rid, text)] != n
                    and (rid, text) not in relogged]
        problems += [f"run {rid} {text!r}: logged but not a message of the run" for rid, text in seen
                     if (rid, text) not in expected]
        if problems:
            raise DeploymentError("run messages not logged exactly once:\n  " + "\n  ".join(problems[:20]))
        return {"run_messages_checked": sum(expected.values()), "relogged_after_takeover": len(relogged),
                "messages_in_triggerer_process_log": in_process_log}

    @staticmethod
    def _messages(lines: list[str]) -> list[tuple[str, str]]:
        found = []
        for line in lines:
            event = line
            with contextlib.suppress(ValueError, AttributeError, TypeError):
                event = str(json.loads(line).get("event", line))
            match = MESSAGE_LINE.search(event)
            if match:
                found.append((match[1], match[2]))
        return found

    def check_no_key(self) -> int:
        """The API key is in no file under the home: Airflow's logs, the process logs, Postgres's and Redis's
        logs and data. Returns how many files were scanned."""
        return secret_absent(files_under(self.home), self.api_key)

    # ------------------------------------------------------------------------------------------ stop
    def stop(self, report: Report) -> None:
        """Everything down; raises if any process is left."""
        started = time.monotonic()
        left: list[str] = []
        if self.deployment is not None:
            snapshot = self.deployment.tree()
            left += [f"airflow pid {pid}" for pid in harness.stop(self.deployment, report)]
            left += [f"airflow pid {pid}" for pid in still_same({**snapshot, **self.killed_pids})]
        if self.db is not None:
            with contextlib.suppress(Exception):
                self.db.close()
        if self.sandbox is not None:
            self.sandbox.stop()
        for name, service in (("postgres", self.postgres), ("redis", self.redis)):
            if service is not None:
                left += [f"{name} pid {pid}" for pid in service.stop()]
        left = sorted(set(left))
        report.add(f"everything stopped in {time.monotonic() - started:.1f}s (Airflow, PostgreSQL, Redis); "
                   f"left running: {left or 'none'}", stop_seconds=round(time.monotonic() - started, 1),
                   left_running=left)
        if left:
            raise DeploymentError(f"still running after the stop: {', '.join(left)}")


def scenario_triggerer_kill(cluster: Cluster, args: argparse.Namespace) -> dict[str, Any]:
    started = time.monotonic()
    run_id, manifest = cluster.trigger_run(args.items, "takeover")
    assert cluster.deployment is not None

    def busy_enough() -> tuple[int, list[int]] | None:
        held: dict[int, list[int]] = {}
        for tid, job, classpath, _, _ in cluster.triggers():
            if job is not None and RUN_TRIGGER in classpath:
                held.setdefault(job, []).append(tid)
        busiest = max(held.items(), key=lambda kv: len(kv[1]), default=None)
        return busiest if busiest is not None and len(busiest[1]) >= args.kill_at_triggers else None

    dead_job, _ = wait_for(
        f"a triggerer holding {args.kill_at_triggers} DAG action run waits", busy_enough, args.run_timeout, 0.5,
        cluster.going(run_id))
    victim = next(name for name, job in cluster.triggerer_job.items() if job == dead_job)
    survivor = next(n for n in TRIGGERERS if n != victim)
    live_job = cluster.triggerer_job[survivor]
    killed_at = cluster.kill(victim)
    held = {t[0]: t for t in cluster.triggers() if t[1] == dead_job}
    log(f"{victim} (job {dead_job}) held {len(held)} triggers at the kill; waiting for {survivor} (job {live_job})")
    taken: dict[int, float] = {}
    done_before: set[int] = set()

    def taken_over() -> bool:
        now = {t[0]: t for t in cluster.triggers()}
        for tid in held:
            if tid in taken or tid in done_before:
                continue
            if tid not in now:
                done_before.add(tid)  # fired and handled before it was reassigned
            elif now[tid][1] == live_job:
                taken[tid] = time.monotonic() - killed_at
            elif now[tid][1] not in (dead_job, None):
                raise DeploymentError(f"trigger {tid} went to job {now[tid][1]}, not {live_job}")
        return len(taken) + len(done_before) == len(held)

    wait_for(f"{survivor} to take over the triggers of {victim}", taken_over, TRIGGERER_HEALTH_THRESHOLD * 6,
             0.5, cluster.deployment.check_alive)
    if not taken:
        raise DeploymentError(f"none of the {len(held)} triggers of {victim} was taken over by {survivor}")
    takeover = max(taken.values())
    log(f"{survivor} took over {len(taken)} triggers within {takeover:.1f}s of the kill "
        f"({len(done_before)} had finished)")
    state = cluster.wait_run(run_id, args.run_timeout)
    result = cluster.check_run("takeover", run_id, state, manifest, dead_job)
    # Each taken-over trigger ran on the survivor: its trigger log by the survivor's job says it fired.
    missing = []
    for tid in taken:
        _, _, _, task_id, map_index = held[tid]
        directory = task_log_dir(cluster.home, DAG_ID, run_id, task_id, map_index)
        logs = [path for path, job in trigger_logs(directory).items() if job == live_job]
        if not any("Trigger fired event" in p.read_text(errors="replace") for p in logs):
            missing.append(f"{task_id}[{map_index}]")
    if missing:
        raise DeploymentError(f"no 'Trigger fired event' in a trigger log of job {live_job} for {missing[:20]}")
    result.update({
        "items": args.items, "killed": victim, "killed_job": dead_job, "survivor": survivor, "survivor_job": live_job,
        "triggers_held_at_kill": len(held), "triggers_taken_over": len(taken), "triggers_done_before": len(done_before),
        "takeover_seconds": round(takeover, 1), "first_takeover_seconds": round(min(taken.values()), 1),
        "seconds": round(time.monotonic() - started, 1),
    })
    return result


def scenario_worker_kill(cluster: Cluster, args: argparse.Namespace) -> dict[str, Any]:
    started = time.monotonic()
    assert cluster.sandbox is not None and cluster.deployment is not None and cluster.api is not None
    sandbox = cluster.sandbox
    # The run must outlive the killed try: heartbeat timeout + detection + retry delay + queueing.
    sandbox.state.dag_action_run_seconds = args.worker_kill_run_seconds
    run_id, manifest = cluster.trigger_run(2, "workerkill")
    first = manifest[0]["external_id"]

    def first_asset() -> str | None:
        return next((a["id"] for a in sandbox.state.assets.values() if a.get("external_id") == first), None)

    alive = cluster.going(run_id)
    asset_id = wait_for(f"the asset of {first}", first_asset, args.run_timeout, 0.5, alive)
    # Applied at once, answered late: the start operator is held between its POST and its wait.
    sandbox.inject("slow", method="POST", path_prefix=f"/api/v2/assets/{asset_id}/dag_actions/",
                   delay=START_ANSWER_DELAY)

    def start_in_flight() -> dict[str, Any] | None:
        posted = [r for r in sandbox.requests if r.method == "POST" and "/dag_actions/" in r.path and r.fault == "slow"]
        if not posted:
            return None
        tis = [t for t in cluster.task_instances(run_id) if t["task_id"] == "run_dag_action" and t["state"] == "running"
               and t.get("pid")]
        return tis[0] if tis else None

    ti = wait_for("a DAG action start in flight", start_in_flight, args.run_timeout, 0.5, alive)
    owner = next((name for name in WORKERS if ti["pid"] in descendants([cluster.proc(name).popen.pid])), None)
    if owner is None:
        raise DeploymentError(f"task pid {ti['pid']} is in neither worker's process tree")
    cluster.kill(owner)
    state = cluster.wait_run(run_id, args.run_timeout)
    result = cluster.check_run("workerkill", run_id, state, manifest)
    tis = cluster.task_instances(run_id)
    again = next(t for t in tis if t["task_id"] == "run_dag_action" and t["map_index"] == ti["map_index"])
    if again["try_number"] < 2:
        raise DeploymentError(f"run_dag_action[{ti['map_index']}] was not retried (try {again['try_number']})")
    directory = task_log_dir(cluster.home, DAG_ID, run_id, "run_dag_action", ti["map_index"])
    text = "".join(p.read_text(errors="replace") for p in directory.glob("attempt=*"))
    if "attaching to" not in text:
        raise DeploymentError(f"run_dag_action[{ti['map_index']}]: no 'attaching to' line in its logs")
    result.update({"killed": owner, "task": f"run_dag_action[{ti['map_index']}]", "final_try": again["try_number"],
                   "reattached": True, "seconds": round(time.monotonic() - started, 1)})
    return result


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--items", type=int, default=100, help="manifest items of the takeover scenario")
    parser.add_argument("--kill-at-triggers", type=int, default=15,
                        help="kill a triggerer once it holds this many DAG action run waits")
    parser.add_argument("--media-processing-seconds", type=float, default=20.0)
    parser.add_argument("--dag-action-run-seconds", type=float, default=40.0)
    parser.add_argument("--worker-kill-run-seconds", type=float, default=90.0,
                        help="DAG action run time in the worker-kill scenario (must outlive the killed try)")
    parser.add_argument("--run-timeout", type=float, default=1500.0)
    parser.add_argument("--report", type=Path, default=REPORT_PATH, help="where to write the JSON report")
    parser.add_argument("--keep-home", action="store_true")
    args = parser.parse_args(argv)
    handle_interrupts()

    t0 = time.monotonic()
    home = Path(tempfile.mkdtemp(prefix="mediapocket-e2e-distributed-"))
    report = Report("e2e distributed")
    cluster = Cluster(home, args)
    code, error = 1, None
    try:
        try:
            cluster.start(report)
            result = scenario_triggerer_kill(cluster, args)
            report.add(f"triggerer_kill: {json.dumps(result, sort_keys=True)}", triggerer_kill=result)
            result = scenario_worker_kill(cluster, args)
            report.add(f"worker_kill: {json.dumps(result, sort_keys=True)}", worker_kill=result)
            scanned = cluster.check_no_key()
            report.add(f"API key: absent from all {scanned} files under the home (Airflow's logs, process logs, "
                       "PostgreSQL's and Redis's files)", files_scanned_for_api_key=scanned)
            code = 0
        finally:
            try:
                cluster.stop(report)
            except DeploymentError:
                code = 1
                raise
            finally:
                if code != 0 and cluster.deployment is not None:
                    cluster.deployment.print_tails(40)
    except DeploymentError as exc:
        error = str(exc)
        print(f"\nE2E-DISTRIBUTED FAILED: {exc}", flush=True)
    except Interrupted as exc:
        error = f"interrupted ({exc})"
        code = 130
    total = time.monotonic() - t0
    report.add(f"total wall time: {total:.1f}s", total_seconds=round(total, 1))
    finish(report, code, home, keep_home=args.keep_home, path=args.report, error=error)
    return code


if __name__ == "__main__":
    sys.exit(main())
