"""`make e2e`: the example ingest DAG in a real Airflow deployment, against the bundled sandbox.

Unlike ``make demo`` (``dag.test()`` in one process), this starts the real components of an Airflow 3
deployment as separate processes in a throwaway ``AIRFLOW_HOME`` (SQLite, ``LocalExecutor``):

* the Media Pocket sandbox (``python -m airflow_provider_mediapocket.sandbox``) on a free loopback port;
* ``airflow api-server`` (REST API + execution API, one worker), ``airflow scheduler``,
  ``airflow dag-processor`` and ``airflow triggerer``, all with ``example_dags/`` as dags folder, the
  ``mediapocket_default`` connection as ``AIRFLOW_CONN_MEDIAPOCKET_DEFAULT`` and
  ``[operators] default_deferrable = True``.

It then unpauses and triggers ``mediapocket_ingest`` through the REST API (SimpleAuthManager with
``[core] simple_auth_manager_all_admins``), waits (bounded) for the run and runs :data:`CHECKS`:

1. the run and every task instance succeeded (retries are reported: Airflow 3.3.2 sometimes fails a task
   that resumed from deferral on a stale executor event, apache/airflow#72716; the DAG's retries absorb it);
2. the ``summary`` task's XCom is the expected counts;
3. the deferrable waits really went through our triggerer process: for each of the 6 deferrable task
   instances (``wait_for_media`` and ``run_dag_action``, 3 each) the task log says "Pausing task as DEFERRED"
   and the triggerer wrote a trigger log ``attempt=N.log.trigger.<job id>.log`` beside it, ``<job id>`` being
   a ``TriggererJob`` of this deployment (``/api/v2/jobs``), naming the trigger class (its logger:
   ``MediaPocketAssetTrigger`` / ``MediaPocketDagActionRunTrigger``) with "Trigger fired event" and
   "trigger completed";
4. every TCP listener of the deployment is on loopback (the log servers, which bind every interface, are
   off: ``--skip-serve-logs``);
5. the sandbox's API key appears nowhere under ``$AIRFLOW_HOME/logs``, in the processes' own logs or in the
   SQLite metadata DB;

and, after stopping everything, that no process of the deployment is left.

The sandbox processes media for 30 s by default (``--media-processing-seconds``): with only a few seconds
the media is ready before ``wait_for_media`` first pokes, and the sensor succeeds without deferring.

The script is three steps, each a function: :func:`start` (environment, migrate, processes, readiness),
:func:`trigger_and_wait` (one run through the REST API) and the checks (each ``check_*(run, report)``).
Every finding goes into a :class:`~airflow_provider_mediapocket.testing.report.Report`: a line for people
and facts for tests, written as JSON to ``--report`` (default ``build/e2e/report.json``); the deployment
test asserts on those facts. The machinery (processes, REST client, log scanning) is the toolkit in
``airflow_provider_mediapocket.testing``.

Extension points: another script (a Celery/Postgres deployment, event-trigger checks) reuses :func:`start`
with other ``components`` and env ``overrides``, :func:`trigger_and_wait` for its own DAG, and appends its
own ``check_*(run, report)`` functions to :data:`CHECKS` or runs them after it.

Every process is started in its own session and stopped at the end -- success, failure, Ctrl-C or SIGTERM
-- by process group (SIGTERM, then SIGKILL after a grace period), then any descendant that left its group
(task processes call setpgid) is stopped by pid. On failure the tails of every process log are printed
and the exit code is 1 (130 when interrupted). Stdlib and the project only.

Usage::

    python scripts/e2e_deployment.py [--run-timeout 480] [--keep-home] [--media-processing-seconds 30] \
        [--report build/e2e/report.json]
"""

from __future__ import annotations

import argparse
import secrets
import sys
import tempfile
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from airflow_provider_mediapocket.sandbox import MediaPocketSandbox
from airflow_provider_mediapocket.testing import MigrationError, migrate
from airflow_provider_mediapocket.testing.api import Api
from airflow_provider_mediapocket.testing.common import (
    DeploymentError,
    Interrupted,
    free_port,
    handle_interrupts,
    log,
)
from airflow_provider_mediapocket.testing.deployment import (
    STARTUP_TIMEOUT,
    Deployment,
    deployment_env,
    is_loopback,
)
from airflow_provider_mediapocket.testing.logs import files_under, secret_absent, task_log_dir, trigger_logs
from airflow_provider_mediapocket.testing.report import Report, finish

ROOT = Path(__file__).resolve().parents[1]
DAGS_FOLDER = ROOT / "example_dags"
DEFAULT_REPORT = ROOT / "build" / "e2e" / "report.json"
DAG_ID = "mediapocket_ingest"
#: The components a default deployment runs (``Deployment.start`` names).
COMPONENTS = ("api-server", "scheduler", "dag-processor", "triggerer")
#: Which trigger each deferrable task defers to.
TRIGGER_OF_TASK = {"wait_for_media": "MediaPocketAssetTrigger", "run_dag_action": "MediaPocketDagActionRunTrigger"}
ASSETS = 3
EXPECTED_SUMMARY = {"assets": ASSETS, "media_types": {"image": 1, "video": 1, "audio": 1}, "runs": {"completed": 3}}
DEFERRED_LINE = "Pausing task as DEFERRED"


# --------------------------------------------------------------------------------------------------------------
# 1. Start
# --------------------------------------------------------------------------------------------------------------
def prepare(
    home: Path, api_key: str, *, connection: bool = True, overrides: Mapping[str, str] | None = None
) -> tuple[Deployment, MediaPocketSandbox]:
    """A migrated deployment in ``home`` with nothing started yet, and the (not started) sandbox it talks to.

    The sandbox runs as its own process (:func:`start` starts it); the object only says where it will
    listen and makes the connection to it.

    :param home: the throwaway ``AIRFLOW_HOME``.
    :param api_key: the sandbox's API key.
    :param connection: define ``mediapocket_default`` in the environment (the UI script adds it in the form).
    :param overrides: more environment for every process (another executor, database...).
    """
    api_port = free_port()
    sandbox = MediaPocketSandbox(api_key=api_key, port=free_port())
    settings = {"AIRFLOW__OPERATORS__DEFAULT_DEFERRABLE": "True"}
    if connection:
        settings.update(sandbox.airflow_connection_env(retry_backoff=0.2))
    env = deployment_env(home, DAGS_FOLDER, api_port, {**settings, **(overrides or {})})
    return Deployment(home, env, api_port), sandbox


def start(
    deployment: Deployment,
    sandbox: MediaPocketSandbox,
    report: Report,
    *,
    sandbox_options: Mapping[str, Any],
    components: Sequence[str] = COMPONENTS,
    dag_ids: Sequence[str] = (DAG_ID,),
) -> Api:
    """Migrate, start the sandbox process and ``components``, wait until all are ready and ``dag_ids`` parsed.

    Returns the logged-in REST client.

    :param deployment: from :func:`prepare`.
    :param sandbox: from :func:`prepare`.
    :param report: gets the timings.
    :param sandbox_options: the sandbox's command line options (``media_processing_seconds=30``...).
    :param components: ``Deployment.start`` names, started in this order.
    :param dag_ids: DAGs that must be parsed.
    """
    log(f"AIRFLOW_HOME={deployment.home}")
    seconds = migrate(deployment.env, log_path=deployment.proc_logs / "db-migrate.log")
    report.add(f"airflow db migrate: {seconds or 0:.1f}s", migrate_seconds=seconds)
    proc = deployment.start_sandbox(sandbox.port, sandbox.api_key, **sandbox_options)
    report.add(f"sandbox listening after {time.monotonic() - proc.started:.1f}s")
    started = time.monotonic()
    for component in components:
        deployment.start(component)
    api = Api(deployment.api_url)
    ready = api.wait_ready(timeout=STARTUP_TIMEOUT, alive=deployment.check_alive, dag_ids=dag_ids)
    report.add(
        f"ready after {time.monotonic() - started:.1f}s: "
        + ", ".join(f"{part} {seconds:.1f}s" for part, seconds in ready.items()),
        ready_seconds=ready,
    )
    return api


def stop(deployment: Deployment, report: Report) -> list[int]:
    """Stop every process of ``deployment``; returns the pids still alive afterwards (should be none).

    :param deployment: the deployment.
    :param report: gets the time it took and what is left.
    """
    started = time.monotonic()
    log("stopping all processes")
    deployment.stop_all()
    left = deployment.leftovers()
    report.add(
        f"all processes stopped in {time.monotonic() - started:.1f}s; left running: {left or 'none'}",
        leftover_processes=left,
    )
    return left


# --------------------------------------------------------------------------------------------------------------
# 2. Trigger and wait
# --------------------------------------------------------------------------------------------------------------
@dataclass
class Run:
    """One finished DAG run of a deployment: what the checks look at.

    :ivar tis: its task instances as the REST API gives them.
    """

    deployment: Deployment
    api: Api
    api_key: str
    dag_id: str
    run_id: str
    state: str
    tis: list[dict[str, Any]]

    @property
    def home(self) -> Path:
        """The deployment's ``AIRFLOW_HOME``."""
        return self.deployment.home


def trigger_and_wait(
    deployment: Deployment, api: Api, api_key: str, report: Report, *, timeout: float, dag_id: str = DAG_ID,
    conf: Mapping[str, Any] | None = None,
) -> Run:
    """Unpause and trigger ``dag_id`` through the REST API and wait (bounded) until its run ends.

    :param deployment: a started deployment.
    :param api: its logged-in REST client.
    :param api_key: the sandbox's key (for the checks).
    :param report: gets the run's outcome.
    :param timeout: seconds the run may take.
    :param dag_id: the DAG.
    :param conf: the run's conf.
    """
    run_id = api.trigger(dag_id, conf)
    started = time.monotonic()
    log(f"triggered {dag_id} run {run_id}; waiting up to {timeout:.0f}s")
    state = api.wait_run(dag_id, run_id, timeout=timeout, alive=deployment.check_alive)
    tis = api.task_instances(dag_id, run_id)
    seconds = time.monotonic() - started
    report.add(
        f"dag run {run_id}: {state} in {seconds:.1f}s; {len(tis)} task instances",
        run={"dag_id": dag_id, "run_id": run_id, "state": state, "seconds": round(seconds, 1),
             "task_states": {_label(ti): ti["state"] for ti in tis}},
    )
    return Run(deployment, api, api_key, dag_id, run_id, state, tis)


# --------------------------------------------------------------------------------------------------------------
# 3. Checks: each takes the run and the report, adds its finding, raises DeploymentError when it fails
# --------------------------------------------------------------------------------------------------------------
def _label(ti: Mapping[str, Any]) -> str:
    return f"{ti['task_id']}[{ti['map_index']}]"


def check_run_succeeded(run: Run, report: Report) -> None:
    """The run and every task instance succeeded; retries are reported with the scheduler's stale events."""
    states = {_label(ti): ti["state"] for ti in run.tis}
    not_ok = sorted(label for label, state in states.items() if state != "success")
    if run.state != "success" or not_ok:
        raise DeploymentError(f"run {run.run_id} ended {run.state}; not successful: {', '.join(not_ok) or 'none'}")
    retried = sorted(f"{_label(ti)} (try {ti['try_number']})" for ti in run.tis if ti["try_number"] > 1)
    if not retried:
        report.add("no task instance needed a retry", retried=[])
        return
    scheduler_log = run.deployment.proc("scheduler").text()
    stale = scheduler_log.count("but the task instance's state attribute is running")
    report.add(
        f"WARNING retried: {', '.join(retried)}; scheduler saw {stale} stale defer-exit executor event(s) "
        "for resumed task instances (Airflow bug apache/airflow#72716, fix PR #72767)",
        retried=retried,
    )


def check_summary(run: Run, report: Report) -> None:
    """The ``summary`` task's XCom is :data:`EXPECTED_SUMMARY`."""
    value = run.api.xcom(run.dag_id, run.run_id, "summary")
    if value != EXPECTED_SUMMARY:
        raise DeploymentError(f"summary XCom is {value!r}, expected {EXPECTED_SUMMARY!r}")
    report.add(f"summary XCom: {value}", summary_xcom=value)


def _deferral_problem(run: Run, ti: Mapping[str, Any], triggerer_jobs: set[int]) -> tuple[str | None, Path | None]:
    """Why ``ti`` shows no deferral through our triggerer (None if it does), and its good trigger log."""
    directory = task_log_dir(run.home, run.dag_id, run.run_id, ti["task_id"], ti["map_index"])
    task_logs = sorted(p for p in directory.glob("attempt=*.log") if ".log.trigger." not in p.name)
    if not any(DEFERRED_LINE in p.read_text(errors="replace") for p in task_logs):
        return f"{_label(ti)}: no '{DEFERRED_LINE}' in its task log(s) {[p.name for p in task_logs]}", None
    trigger_class = TRIGGER_OF_TASK[ti["task_id"]]
    for path, job in trigger_logs(directory).items():
        text = path.read_text(errors="replace")
        if job in triggerer_jobs and trigger_class in text and "Trigger fired event" in text \
                and "trigger completed" in text:
            return None, path
    return (
        f"{_label(ti)}: no trigger log by triggerer job {sorted(triggerer_jobs)} naming {trigger_class} with "
        f"'Trigger fired event' + 'trigger completed' (files: {sorted(p.name for p in directory.glob('*'))})"
    ), None


def check_deferrals(run: Run, report: Report) -> None:
    """Every deferrable task instance deferred and its trigger ran in this deployment's triggerer.

    For each: its task log has "Pausing task as DEFERRED", and beside it a trigger log
    ``attempt=N.log.trigger.<job id>.log`` by a ``TriggererJob`` of this deployment (REST ``/api/v2/jobs``),
    naming the trigger class (its logger) and saying the trigger fired and completed.
    """
    deferrable = sorted((ti for ti in run.tis if ti["task_id"] in TRIGGER_OF_TASK),
                        key=lambda ti: (ti["task_id"], ti["map_index"]))
    expected = ASSETS * len(TRIGGER_OF_TASK)
    if len(deferrable) != expected:
        raise DeploymentError(f"expected {expected} deferrable task instances, found {len(deferrable)}")
    jobs = run.api.job_ids("TriggererJob")
    found = [_deferral_problem(run, ti, jobs) for ti in deferrable]
    problems = [problem for problem, _ in found if problem]
    if problems:
        raise DeploymentError(
            "deferral evidence missing:\n  " + "\n  ".join(problems)
            + " (a wait_for_media that never deferred found the media already processed on its first poke:"
            " raise --media-processing-seconds)"
        )
    example = next(str(path.relative_to(run.home)) for _, path in found if path is not None)
    report.add(
        f"triggerer handled {len(deferrable)}/{expected} deferred task instances ({', '.join(TRIGGER_OF_TASK)}): "
        f"each task log has '{DEFERRED_LINE}' and a trigger log by TriggererJob {sorted(jobs)} naming "
        f"{' / '.join(TRIGGER_OF_TASK.values())} with 'Trigger fired event' and 'trigger completed', "
        f"e.g. {example}",
        deferrals={"checked": len(deferrable), "expected": expected, "triggerer_jobs": sorted(jobs),
                   "example": example},
    )


def check_loopback_only(run: Run, report: Report) -> None:
    """Every TCP listener of the deployment's processes (and their children) is on a loopback address."""
    listeners = run.deployment.listeners()
    exposed = sorted(f"{address} {owner}" for address, owner in listeners.items() if not is_loopback(address))
    if exposed:
        raise DeploymentError(f"listening on non-loopback addresses: {', '.join(exposed)}")
    report.add(
        f"TCP listeners of the {run.deployment.process_count()} deployment processes: "
        f"{', '.join(f'{k} {v}' for k, v in sorted(listeners.items())) or 'none found'} (loopback only)",
        listeners=sorted(listeners),
    )


def key_absent(deployment: Deployment, api_key: str, report: Report) -> None:
    """``api_key`` is in no task/trigger/processor log, no process log, and nowhere in the metadata DB.

    :param deployment: the deployment (its home and process logs are scanned).
    :param api_key: the sandbox's key.
    :param report: gets how many files were scanned.
    """
    home = deployment.home
    scanned = secret_absent(files_under(home / "logs", deployment.proc_logs, *home.glob("airflow.db*")), api_key)
    report.add(
        f"API key: absent from all {scanned} files under $AIRFLOW_HOME/logs, the process logs and the SQLite "
        "metadata DB",
        key_absent={"files_scanned": scanned},
    )


def check_key_absent(run: Run, report: Report) -> None:
    """The sandbox's API key is nowhere the deployment wrote (see :func:`key_absent`)."""
    key_absent(run.deployment, run.api_key, report)


#: The checks run after the DAG run, in order. Another script adds its own ``check_*(run, report)``.
CHECKS: list[Callable[[Run, Report], None]] = [
    check_run_succeeded,
    check_summary,
    check_deferrals,
    check_loopback_only,
    check_key_absent,
]


# --------------------------------------------------------------------------------------------------------------
# The script
# --------------------------------------------------------------------------------------------------------------
def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--run-timeout", type=float, default=480.0, help="max seconds for the DAG run")
    parser.add_argument("--keep-home", action="store_true", help="keep the throwaway AIRFLOW_HOME")
    parser.add_argument(
        "--media-processing-seconds", type=float, default=30.0,
        help="sandbox media processing time; long enough that wait_for_media finds the media still processing "
             "on its first poke and defers (with 3 s it is ready before the sensor starts and never defers)",
    )
    parser.add_argument("--dag-action-run-seconds", type=float, default=4.0, help="sandbox DAG action run time")
    parser.add_argument("--report", type=Path, default=DEFAULT_REPORT, help=f"JSON report (default {DEFAULT_REPORT})")
    return parser.parse_args(argv)


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(argv)
    handle_interrupts()
    home = Path(tempfile.mkdtemp(prefix="mediapocket-e2e-"))
    report = Report("e2e deployment")
    code, error = 1, None
    t0 = time.monotonic()
    try:
        api_key = f"e2e-key-{secrets.token_hex(12)}"
        deployment, sandbox = prepare(home, api_key)
        try:
            api = start(deployment, sandbox, report, sandbox_options={
                "media_processing_seconds": args.media_processing_seconds,
                "dag_action_run_seconds": args.dag_action_run_seconds,
            })
            run = trigger_and_wait(deployment, api, api_key, report, timeout=args.run_timeout)
            for check in CHECKS:
                check(run, report)
            code = 0
        finally:
            left = stop(deployment, report)
            if left and code == 0:
                code, error = 1, f"processes left running after the stop: {left}"
                print(f"\nE2E FAILED: {error}", flush=True)
            if code != 0:
                deployment.print_tails()
    except (DeploymentError, MigrationError) as exc:
        error = str(exc)
        print(f"\nE2E FAILED: {exc}", flush=True)
    except Interrupted as exc:
        error = f"interrupted ({exc})"
        print(f"\nE2E INTERRUPTED ({exc})", flush=True)
        code = 130
    finally:
        report.add(f"total wall time: {time.monotonic() - t0:.1f}s", wall_seconds=round(time.monotonic() - t0, 1))
        finish(report, code, home, keep_home=args.keep_home, path=args.report, error=error)
    return code


if __name__ == "__main__":
    sys.exit(main())
