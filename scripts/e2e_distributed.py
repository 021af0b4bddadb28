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
import urllib.parse
from collections import Counter
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))
import _services as services
import e2e_deployment as harness

from airflow_provider_mediapocket.sandbox.server import MediaPocketSandbox

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
    print(f"[e2e-distributed {time.strftime('%H:%M:%S')}] {message}", flush=True)


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
        self.deployment: harness.Deployment | None = None
        self.api: harness.Api | None = None
        self.killed: list[harness.Proc] = []
        self.triggerer_job: dict[str, int] = {}
        self.killed_pids: dict[int, int] = {}
        self.db: Any = None

    # ------------------------------------------------------------------------------------------ start
    def start(self, report: dict[str, Any]) -> None:
        installed = services.ensure_packages(log)
        report["installed_packages"] = installed
        # The servers' account must reach their directories inside the throwaway home.
        self.home.chmod(0o755)
        svc = self.home / "services"
        svc.mkdir()
        svc.chmod(0o755)
        self.postgres = services.Postgres(svc / "postgres", harness.free_port(), self.account)
        report["postgres_start_seconds"] = round(self.postgres.start(), 1)
        self.redis = services.Redis(svc / "redis", harness.free_port(), self.account)
        report["redis_start_seconds"] = round(self.redis.start(), 1)
        log(f"PostgreSQL {self.postgres.version} on port {self.postgres.port}, Redis on port {self.redis.port} "
            f"(as user {self.account.name})")

        self.sandbox = MediaPocketSandbox(
            api_key=self.api_key, port=0, media_processing_seconds=self.args.media_processing_seconds,
            dag_action_run_seconds=self.args.dag_action_run_seconds,
        ).start()
        api_port = harness.free_port()
        env = harness.build_env(self.home, api_port, self.sandbox.port, self.api_key)
        env.update(self.distributed_settings())
        self.deployment = harness.Deployment(self.home, env)
        report["db_migrate_seconds"] = round(harness.run_migrate(env, self.home), 1)
        import psycopg2

        self.db = psycopg2.connect(host="127.0.0.1", port=self.postgres.port, user=services.DB_USER,
                                   dbname=services.DB_NAME)
        self.db.autocommit = True

        started = time.monotonic()
        dep = self.deployment
        dep.start("api-server", harness.airflow_argv("api-server", "--host", "127.0.0.1", "--port", str(api_port),
                                                     "--workers", "1"))
        dep.start("scheduler", harness.airflow_argv("scheduler", "--skip-serve-logs"))
        dep.start("dag-processor", harness.airflow_argv("dag-processor"))
        for name in WORKERS:
            dep.start(name, harness.airflow_argv(
                "celery", "worker", "--skip-serve-logs", "--concurrency", str(WORKER_CONCURRENCY),
                "--celery-hostname", f"{name}@%h", "--without-mingle", "--without-gossip",
            ))
        # One triggerer at a time: the TriggererJob row that appears next is the one of the triggerer just
        # started (the job table keeps no pid, and both run on this host).
        for name in TRIGGERERS:
            before = set(self.triggerer_jobs())
            dep.start(name, harness.airflow_argv("triggerer", "--skip-serve-logs"))
            new = harness.wait_for(f"the TriggererJob of {name}", lambda b=before: set(self.triggerer_jobs()) - b,
                                   harness.STARTUP_TIMEOUT, 0.5, dep.check_alive)
            self.triggerer_job[name] = next(iter(new))
        self.api = api = harness.Api(f"http://127.0.0.1:{api_port}")
        harness.wait_for("the api-server",
                         lambda: api.request("GET", "/api/v2/monitor/health", auth=False)[0] == 200,
                         harness.STARTUP_TIMEOUT, 0.5, dep.check_alive)
        api.login()

        def ready() -> bool:
            health = api.ok("GET", "/api/v2/monitor/health")
            parts = all((health.get(p) or {}).get("status") == "healthy"
                        for p in ("scheduler", "triggerer", "dag_processor"))
            return (parts and len(self.triggerer_jobs()) == len(TRIGGERERS) and self.workers_ready()
                    and api.request("GET", f"/api/v2/dags/{DAG_ID}")[0] == 200)

        harness.wait_for("scheduler, dag-processor, 2 triggerers, 2 workers and the DAG parsed", ready,
                         harness.STARTUP_TIMEOUT, 1.0, dep.check_alive)
        report["airflow_start_seconds"] = round(time.monotonic() - started, 1)
        api.ok("PATCH", f"/api/v2/dags/{DAG_ID}", {"is_paused": False})

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

    def proc(self, name: str) -> harness.Proc:
        assert self.deployment is not None
        return next(p for p in self.deployment.procs if p.name == name)

    # ------------------------------------------------------------------------------------------ kill
    def kill(self, name: str) -> float:
        """SIGKILL process ``name`` and its whole process tree (a crashed machine); returns the kill time."""
        proc = self.proc(name)
        tree = harness._descendants([proc.popen.pid])
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
        conf = {"manifest": manifest, "project_title": f"Distributed {scenario}"}
        run = self.api.ok("POST", f"/api/v2/dags/{DAG_ID}/dagRuns", {"logical_date": None, "conf": conf})
        log(f"{scenario}: triggered run {run['dag_run_id']} over {items} items")
        return run["dag_run_id"], manifest

    def wait_run(self, run_id: str, timeout: float) -> str:
        assert self.api is not None and self.deployment is not None
        api = self.api
        path = f"/api/v2/dags/{DAG_ID}/dagRuns/{urllib.parse.quote(run_id, safe='')}"
        return harness.wait_for(  # type: ignore[no-any-return]
            f"run {run_id} to finish",
            lambda: (state if (state := api.ok("GET", path)["state"]) in harness.TERMINAL_RUN_STATES else None),
            timeout, 2.0, self.deployment.check_alive)

    def task_instances(self, run_id: str) -> list[dict[str, Any]]:
        assert self.api is not None
        quoted = urllib.parse.quote(run_id, safe="")
        tis: list[dict[str, Any]] = []
        while True:
            page = self.api.ok("GET", f"/api/v2/dags/{DAG_ID}/dagRuns/{quoted}/taskInstances"
                                      f"?limit=100&offset={len(tis)}")
            tis.extend(page["task_instances"])
            if len(tis) >= page["total_entries"] or not page["task_instances"]:
                return tis

    # ------------------------------------------------------------------------------------------ checks
    def check_run(self, scenario: str, run_id: str, state: str, manifest: list[dict[str, Any]],
                  dead_job: int | None = None) -> dict[str, Any]:
        """Run and task states, one asset and one DAG action run per item, each run message logged once."""
        assert self.sandbox is not None
        tis = self.task_instances(run_id)
        not_ok = sorted(f"{t['task_id']}[{t['map_index']}]={t['state']}" for t in tis if t["state"] != "success")
        if state != "success" or not_ok:
            raise harness.E2EFailure(f"{scenario}: run {run_id} ended {state}; not successful: {not_ok[:20]}")
        state_ = self.sandbox.state
        wanted = {item["external_id"] for item in manifest}
        assets = [a for a in state_.assets.values() if a.get("external_id") in wanted]
        per_item = Counter(a["external_id"] for a in assets)
        runs = [r for r in state_.runs.values() if r["asset_id"] in {a["id"] for a in assets}]
        per_asset = Counter(r["asset_id"] for r in runs)
        if set(per_item) != wanted or set(per_item.values()) != {1}:
            raise harness.E2EFailure(f"{scenario}: assets per item {dict(per_item)}, expected one for each of "
                                     f"{len(wanted)}")
        if len(per_asset) != len(assets) or set(per_asset.values()) != {1}:
            raise harness.E2EFailure(f"{scenario}: DAG action runs per asset {dict(per_asset)}, expected one each")
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
        base = harness.ti_log_dir(self.home, run_id, "run_dag_action", -1)
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
            raise harness.E2EFailure("run messages not logged exactly once:\n  " + "\n  ".join(problems[:20]))
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
        """The API key is in no file under the home (Airflow's logs, the process logs, Postgres's and Redis's
        logs and data)."""
        needle = self.api_key.encode()
        files = [p for p in self.home.rglob("*") if p.is_file()]
        leaks = []
        for path in files:
            with contextlib.suppress(OSError):
                if needle in path.read_bytes():
                    leaks.append(str(path.relative_to(self.home)))
        if leaks:
            raise harness.E2EFailure("the API key appears in: " + ", ".join(leaks[:20]))
        return len(files)

    # ------------------------------------------------------------------------------------------ stop
    def stop(self, report: dict[str, Any]) -> None:
        """Everything down; raises if any process is left."""
        started = time.monotonic()
        left: list[str] = []
        if self.deployment is not None:
            snapshot = self.deployment.tree()
            self.deployment.stop_all()
            alive = harness._still_same({**snapshot, **self.killed_pids, **self.deployment.tree()})
            left += [f"airflow pid {pid}" for pid in alive]
        if self.db is not None:
            with contextlib.suppress(Exception):
                self.db.close()
        if self.sandbox is not None:
            self.sandbox.stop()
        for name, service in (("postgres", self.postgres), ("redis", self.redis)):
            if service is not None:
                left += [f"{name} pid {pid}" for pid in service.stop()]
        report["stop_seconds"] = round(time.monotonic() - started, 1)
        report["left_running"] = left
        if left:
            raise harness.E2EFailure(f"still running after the stop: {', '.join(left)}")


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

    dead_job, _ = harness.wait_for(
        f"a triggerer holding {args.kill_at_triggers} DAG action run waits", busy_enough, args.run_timeout, 0.5,
        cluster.deployment.check_alive)
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
                raise harness.E2EFailure(f"trigger {tid} went to job {now[tid][1]}, not {live_job}")
        return len(taken) + len(done_before) == len(held)

    harness.wait_for(f"{survivor} to take over the triggers of {victim}", taken_over,
                     TRIGGERER_HEALTH_THRESHOLD * 6, 0.5, cluster.deployment.check_alive)
    if not taken:
        raise harness.E2EFailure(f"none of the {len(held)} triggers of {victim} was taken over by {survivor}")
    takeover = max(taken.values())
    log(f"{survivor} took over {len(taken)} triggers within {takeover:.1f}s of the kill "
        f"({len(done_before)} had finished)")
    state = cluster.wait_run(run_id, args.run_timeout)
    result = cluster.check_run("takeover", run_id, state, manifest, dead_job)
    # Each taken-over trigger ran on the survivor: its trigger log by the survivor's job says it fired.
    missing = []
    for tid in taken:
        _, _, _, task_id, map_index = held[tid]
        directory = harness.ti_log_dir(cluster.home, run_id, task_id, map_index)
        logs = list(directory.glob(f"attempt=*.log.trigger.{live_job}.log"))
        if not any("Trigger fired event" in p.read_text(errors="replace") for p in logs):
            missing.append(f"{task_id}[{map_index}]")
    if missing:
        raise harness.E2EFailure(f"no 'Trigger fired event' in a trigger log of job {live_job} for {missing[:20]}")
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

    asset_id = harness.wait_for(f"the asset of {first}", first_asset, args.run_timeout, 0.5,
                                cluster.deployment.check_alive)
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

    ti = harness.wait_for("a DAG action start in flight", start_in_flight, args.run_timeout, 0.5,
                          cluster.deployment.check_alive)
    owner = next((name for name in WORKERS if ti["pid"] in harness._descendants([cluster.proc(name).popen.pid])), None)
    if owner is None:
        raise harness.E2EFailure(f"task pid {ti['pid']} is in neither worker's process tree")
    cluster.kill(owner)
    state = cluster.wait_run(run_id, args.run_timeout)
    result = cluster.check_run("workerkill", run_id, state, manifest)
    tis = cluster.task_instances(run_id)
    again = next(t for t in tis if t["task_id"] == "run_dag_action" and t["map_index"] == ti["map_index"])
    if again["try_number"] < 2:
        raise harness.E2EFailure(f"run_dag_action[{ti['map_index']}] was not retried (try {again['try_number']})")
    directory = harness.ti_log_dir(cluster.home, run_id, "run_dag_action", ti["map_index"])
    text = "".join(p.read_text(errors="replace") for p in directory.glob("attempt=*"))
    if "attaching to" not in text:
        raise harness.E2EFailure(f"run_dag_action[{ti['map_index']}]: no 'attaching to' line in its logs")
    result.update({"killed": owner, "task": f"run_dag_action[{ti['map_index']}]", "final_try": again["try_number"],
                   "reattached": True, "seconds": round(time.monotonic() - started, 1)})
    return result


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--items", type=int, default=100, help="manifest items of the takeover scenario")
    parser.add_argument("--kill-at-triggers", type=int, default=15,
                        help="kill a triggerer once it holds this many DAG action run waits")
    parser.add_argument("--media-processing-seconds", type=float, default=20.0)
    parser.add_argument("--dag-action-run-seconds", type=float, default=40.0)
    parser.add_argument("--worker-kill-run-seconds", type=float, default=90.0,
                        help="DAG action run time in the worker-kill scenario (must outlive the killed try)")
    parser.add_argument("--run-timeout", type=float, default=900.0)
    parser.add_argument("--keep-home", action="store_true")
    args = parser.parse_args(argv)

    def _interrupt(signum: int, frame: object) -> None:
        for sig in (signal.SIGTERM, signal.SIGINT, signal.SIGHUP):
            signal.signal(sig, signal.SIG_IGN)
        raise harness.Interrupted(f"signal {signum}")

    for sig in (signal.SIGTERM, signal.SIGINT, signal.SIGHUP):
        signal.signal(sig, _interrupt)

    t0 = time.monotonic()
    home = Path(tempfile.mkdtemp(prefix="mediapocket-e2e-distributed-"))
    report: dict[str, Any] = {"result": "FAIL"}
    cluster = Cluster(home, args)
    code = 1
    try:
        try:
            cluster.start(report)
            report["triggerer_kill"] = scenario_triggerer_kill(cluster, args)
            report["worker_kill"] = scenario_worker_kill(cluster, args)
            report["files_scanned_for_api_key"] = cluster.check_no_key()
            code = 0
        finally:
            try:
                cluster.stop(report)
            except harness.E2EFailure:
                code = 1
                raise
            finally:
                if code != 0 and cluster.deployment is not None:
                    cluster.deployment.print_tails(40)
    except harness.E2EFailure as exc:
        report["error"] = str(exc)
        print(f"\nE2E-DISTRIBUTED FAILED: {exc}", flush=True)
    except harness.Interrupted as exc:
        report["error"] = f"interrupted ({exc})"
        code = 130
    report["result"] = "PASS" if code == 0 else "FAIL"
    report["total_seconds"] = round(time.monotonic() - t0, 1)
    REPORT_PATH.parent.mkdir(parents=True, exist_ok=True)
    REPORT_PATH.write_text(json.dumps(report, indent=2, sort_keys=True) + "\n")
    lines = [f"{key}: {json.dumps(value, sort_keys=True)}" for key, value in report.items() if key != "result"]
    harness.finish("e2e distributed", lines, code, home, keep_home=args.keep_home)
    return code


if __name__ == "__main__":
    sys.exit(main())
