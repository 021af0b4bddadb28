"""Deployment checks of the event-driven example DAG ``mediapocket_on_ingest`` (real triggerer).

:func:`run_event_checks` runs against a started deployment (scheduler, dag-processor, api-server,
triggerer, and the sandbox as its own process) whose dag-processor saw ``MEDIAPOCKET_INGEST_PROJECT_ID``
set to the project made by :func:`prepare_project` (call it after the sandbox is up and before the
dag-processor starts). While the deployment runs it creates assets with media in that project (each
gives ``ASSET_ADDED``, ``ASSET_STARTED_INGEST`` and later ``ASSET_FINISHED_INGEST``), comments on them
(``ASSET_ADDED_COMMENT``) and creates an asset outside the project, in three waves; between the second
and the third it kills the triggerer with SIGKILL while the second wave's events are being delivered and
starts a new one. It then checks, from Airflow's REST API and the sandbox's history feed:

1. every ``ASSET_FINISHED_INGEST`` event of the project after the watcher started became an asset event
   of ``mediapocket_ingest_finished`` (none missed, before or after the kill); none fired twice, except
   events the killed triggerer had fired (delivery is at least once: the cursor write of an event stored
   just before the kill may be lost), and those are reported;
2. no other history event became one (other types, other assets);
3. no asset event was consumed by two DAG runs of ``mediapocket_on_ingest`` (Airflow may put several in
   one run when they land between two scheduler loops), every run succeeded, and the DAG action was
   started exactly once on each asset whose ingest finished (the DAG skips repeated history events) and
   on no other asset.

Stdlib and the project's testing toolkit. Facts go to ``report(line, **facts)`` (``Report.add``); ``main()``
(``make e2e`` through ``tests/deployment/test_events_deployment.py``) writes them to
``build/e2e-events/report.json``.
"""

from __future__ import annotations

import json
import os
import re
import signal
import time
import urllib.parse
import urllib.request
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

DAG_ID = "mediapocket_on_ingest"
ASSET_NAME = "mediapocket_ingest_finished"
INGEST = "ASSET_FINISHED_INGEST"
WATCHER_STARTED = "Following projects/"
HTTP_TIMEOUT = 30.0
#: How long stored events may wait for their DAG run before the check sends a flush event (seconds).
SCHEDULER_GRACE = 30.0
#: A history event id in the triggerer's "Trigger fired event" log line.
FIRED = re.compile(r"Trigger fired event.*?'event_id': '(\d+)'")


class EventCheckFailure(Exception):
    """A check of the event-driven DAG failed (the message says which and with what)."""


@dataclass
class Handles:
    """What the checks need of the running deployment.

    :param api: ``(method, path, body) -> JSON`` on Airflow's REST API (``/api/v2/...``), raising on HTTP >= 300.
    :param triggerer_log: the text of the current triggerer process's own log (watchers log there).
    :param triggerer_pid: the pid of the current triggerer process (the leader of its process group).
    :param start_triggerer: start a new triggerer process (after the kill).
    :param alive: raise if a deployment process died unexpectedly.
    :param sandbox_url: base URL of the sandbox process; ``api_key``: its key.
    """

    api: Callable[[str, str, Any], Any]
    triggerer_log: Callable[[], str]
    triggerer_pid: Callable[[], int]
    start_triggerer: Callable[[], None]
    alive: Callable[[], None]
    sandbox_url: str
    api_key: str


def _sandbox(url: str, key: str, method: str, path: str, body: Any = None) -> Any:
    data = None if body is None else json.dumps(body).encode()
    request = urllib.request.Request(f"{url}/api/v2/{path}", data=data, method=method)
    request.add_header("X-API-KEY", key)
    request.add_header("Content-Type", "application/json")
    with urllib.request.urlopen(request, timeout=HTTP_TIMEOUT) as response:
        return json.loads(response.read())


def prepare_project(sandbox_url: str, api_key: str) -> str:
    """The ingest project the watcher follows (its id goes to ``MEDIAPOCKET_INGEST_PROJECT_ID``)."""
    return str(_sandbox(sandbox_url, api_key, "POST", "projects", {"title": "Event-driven ingest"})["project"]["id"])


def project_history(sandbox_url: str, api_key: str, project_id: str) -> list[dict[str, Any]]:
    """Every history event of the project, oldest first (following ``next_cursor``)."""
    events: list[dict[str, Any]] = []
    cursor: Any = "0"
    while cursor is not None:
        page = _sandbox(sandbox_url, api_key, "GET", f"projects/{project_id}/history/{cursor}")["history"]
        events.extend(page["results"])
        cursor = page["next_cursor"]
    return sorted(events, key=lambda event: int(event["id"]))


def wait(what: str, check: Callable[[], Any], timeout: float, alive: Callable[[], None], every: float = 1.0) -> Any:
    deadline = time.monotonic() + timeout
    while True:
        alive()
        result = check()
        if result:
            return result
        if time.monotonic() > deadline:
            raise EventCheckFailure(f"timed out after {timeout:.0f}s waiting for {what}")
        time.sleep(every)


def _wave(h: Handles, project_id: str, name: str, count: int) -> list[str]:
    """``count`` assets with media in the project, a comment on each, and one asset outside it."""
    made = []
    for i in range(count):
        body = {"title": f"{name} {i}", "url": {"file_url": f"https://media.example.com/{name}-{i}.jpg",
                                                 "filename": f"{name}-{i}.jpg"}}
        asset = _sandbox(h.sandbox_url, h.api_key, "POST", f"projects/{project_id}/assets", body)["asset"]
        _sandbox(h.sandbox_url, h.api_key, "POST", f"assets/{asset['id']}/comments", {"comment": "new"})
        made.append(str(asset["id"]))
    outside = _sandbox(h.sandbox_url, h.api_key, "POST", "assets", {"title": f"{name} elsewhere"})["asset"]
    _sandbox(h.sandbox_url, h.api_key, "POST", f"assets/{outside['id']}/media",
             {"file_url": f"https://media.example.com/{name}-out.jpg", "filename": f"{name}-out.jpg"})
    return made


def _asset_events(h: Handles) -> list[dict[str, Any]]:
    assets = h.api("GET", f"/api/v2/assets?name_pattern={ASSET_NAME}&limit=10", None)["assets"]
    asset = next(a for a in assets if a["name"] == ASSET_NAME)
    found: list[dict[str, Any]] = []
    while True:
        page = h.api("GET", f"/api/v2/assets/events?asset_id={asset['id']}&limit=100&offset={len(found)}", None)
        found.extend(page["asset_events"])
        if len(found) >= page["total_entries"] or not page["asset_events"]:
            return found


def _run_events(h: Handles, run: dict[str, Any]) -> list[dict[str, Any]]:
    """The asset events DAG run ``run`` consumed."""
    quoted = urllib.parse.quote(run["dag_run_id"], safe="")
    return list(h.api("GET", f"/api/v2/dags/{DAG_ID}/dagRuns/{quoted}/upstreamAssetEvents", None)["asset_events"])


def _event_id(asset_event: dict[str, Any]) -> str:
    return str(((asset_event.get("extra") or {}).get("payload") or {}).get("event_id"))


def _finished_ingests(h: Handles, project_id: str, after: int) -> list[str]:
    return [str(e["id"]) for e in project_history(h.sandbox_url, h.api_key, project_id)
            if e["event_type"] == INGEST and int(e["id"]) > after]


def run_event_checks(
    h: Handles, project_id: str, report: Callable[..., None], *, per_wave: int = 3, timeout: float = 420.0,
) -> None:
    """Drive the three waves with a triggerer SIGKILL mid-stream and check the runs (see the module doc)."""
    started = time.monotonic()
    h.api("PATCH", f"/api/v2/dags/{DAG_ID}", {"is_paused": False})
    wait("the watcher to start following the project", lambda: WATCHER_STARTED + project_id in h.triggerer_log(),
         timeout, h.alive)
    baseline = max((int(e["id"]) for e in project_history(h.sandbox_url, h.api_key, project_id)), default=0)
    report(f"watcher following projects/{project_id} after {time.monotonic() - started:.1f}s", watcher_started=True)

    waves = {"first": _wave(h, project_id, "first", per_wave)}

    def fired(count: int) -> Callable[[], bool]:
        # From the triggerer's log: Airflow 3.3.2's /api/v2/assets/events answers 500 while a DAG run it
        # created is still queued (AssetEventResponse.created_dagruns[].start_date is None).
        return lambda: len(set(FIRED.findall(h.triggerer_log()))) >= count

    wait(f"{per_wave} ingest-finished events to fire", fired(per_wave), timeout, h.alive)
    fired_first = set(FIRED.findall(h.triggerer_log()))
    waves["second"] = _wave(h, project_id, "second", per_wave)
    # Kill as soon as the second wave starts to fire: mid-stream, with its other events still to come.
    wait("the second wave to start firing", fired(per_wave + 1), timeout, h.alive, every=0.2)
    killed = h.triggerer_pid()
    os.killpg(killed, signal.SIGKILL)
    # What the killed triggerer fired: only these may fire again (their cursor write may have been lost).
    fired_before_kill = set(FIRED.findall(h.triggerer_log())) | fired_first
    report(f"triggerer {killed} killed with SIGKILL mid-stream, after firing {len(fired_before_kill)} events",
           triggerer_killed=killed)
    h.start_triggerer()
    waves["third"] = _wave(h, project_id, "third", per_wave)
    total = 3 * per_wave

    def all_ingested() -> list[str] | None:
        done = _finished_ingests(h, project_id, baseline)
        return done if len(done) >= total else None

    def settled() -> tuple[list[dict[str, Any]], set[int], set[int]] | None:
        """Every run finished and every expected event stored: (runs, stored ids, consumed ids)."""
        runs = h.api("GET", f"/api/v2/dags/{DAG_ID}/dagRuns?limit=100", None)["dag_runs"]
        if not all(run["state"] in ("success", "failed") for run in runs):
            return None
        try:  # (the 3.3.2 listing bug above: a run created meanwhile may still be queued)
            consumed = {event["id"] for run in runs for event in _run_events(h, run)}
            stored = _asset_events(h)
        except Exception:
            return None
        if not set(expected) <= {_event_id(e) for e in stored}:
            return None
        return runs, {e["id"] for e in stored}, consumed

    flushes = 0
    while True:
        expected = wait("every asset's ingest to finish in the sandbox", all_ingested, timeout, h.alive)
        runs, stored, consumed = wait("every event stored and every DAG run finished", settled, timeout, h.alive,
                                      every=2.0)
        if stored <= consumed or flushes == 3:
            break
        try:  # the scheduler may just not have made the run yet: give it a few loops
            runs, stored, consumed = wait("a DAG run for the stored events", lambda: (
                (state := settled()) is not None and state[1] <= state[2] and state), SCHEDULER_GRACE, h.alive, 2.0)
            break
        except EventCheckFailure:
            pass
        # Airflow 3.3.2 race: an event stored after the scheduler read the DAG's asset queue row and before
        # it deleted it is neither in that run nor queued again; it waits for the next event. Send one.
        flushes += 1
        total += 1
        waves[f"flush-{flushes}"] = _wave(h, project_id, f"flush-{flushes}", 1)
    report(f"events left waiting for a next event by the scheduler (Airflow race): flushed {flushes} time(s)",
           scheduler_flushes=flushes)

    expected = _finished_ingests(h, project_id, baseline)
    asset_events = _asset_events(h)
    fired_ids = Counter(_event_id(e) for e in asset_events)
    twice = sorted((i for i, n in fired_ids.items() if n > 1), key=int)
    consumed_by: Counter[int] = Counter()
    run_lines = []
    for run in runs:
        events = _run_events(h, run)
        consumed_by.update(e["id"] for e in events)
        run_lines.append(f"{run['dag_run_id']}: {run['state']}, history events {sorted(_event_id(e) for e in events)}")
    ingested_assets = {e["event_targets"][0]["target"]["elasticsearch_id"]
                       for e in project_history(h.sandbox_url, h.api_key, project_id)
                       if e["event_type"] == INGEST and str(e["id"]) in expected}
    all_assets = [a for wave in waves.values() for a in wave]
    actions = {a: len(_sandbox(h.sandbox_url, h.api_key, "GET", f"assets/{a}/dag_action_runs")["dag_action_runs"])
               for a in all_assets}
    facts = {
        "events_expected": len(expected),
        "events_fired": sum(fired_ids.values()),
        "event_runs": len(runs),
        "events_twice_after_kill": [i for i in twice if i in fired_before_kill],
        # Must all be empty:
        "events_missing": sorted(set(expected) - set(fired_ids), key=int),
        "events_unexpected": sorted(set(fired_ids) - set(expected)),
        "events_twice_unexplained": [i for i in twice if i not in fired_before_kill],
        "events_in_two_runs": sorted(i for i, n in consumed_by.items() if n > 1),
        "event_runs_failed": [run["dag_run_id"] for run in runs if run["state"] != "success"],
        "actions_not_once": {a: n for a, n in actions.items() if n != (1 if a in ingested_assets else 0)},
    }
    report(f"{len(expected)} ingest-finished events in the project; {sum(fired_ids.values())} asset events "
           f"(fired again after the kill: {facts['events_twice_after_kill']}); {len(runs)} DAG runs of {DAG_ID}; "
           f"DAG action started once on each of {sum(actions.values())} assets", **facts)
    for line in run_lines:
        report(f"  {line}")
    must_be_empty = ("events_missing", "events_unexpected", "events_twice_unexplained", "events_in_two_runs",
                     "event_runs_failed", "actions_not_once")
    problems = {key: facts[key] for key in must_be_empty if facts[key]}
    if problems or len(expected) != total or len(ingested_assets) != total:
        raise EventCheckFailure(f"event-driven DAG: {problems or f'expected {total} ingest events'}")


DEFAULT_REPORT = Path("build/e2e-events/report.json")


def main(argv: list[str] | None = None) -> int:  # pragma: no cover - run by make e2e
    """Start a deployment with the testing toolkit (as ``e2e_deployment.py`` does) and run the event checks."""
    import argparse
    import secrets
    import sys
    import tempfile

    sys.path.insert(0, str(Path(__file__).resolve().parent))
    import e2e_deployment as harness

    from airflow_provider_mediapocket.testing import MigrationError, migrate
    from airflow_provider_mediapocket.testing.api import Api
    from airflow_provider_mediapocket.testing.common import DeploymentError, Interrupted, handle_interrupts
    from airflow_provider_mediapocket.testing.deployment import STARTUP_TIMEOUT
    from airflow_provider_mediapocket.testing.report import Report, finish

    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--keep-home", action="store_true", help="keep the throwaway AIRFLOW_HOME")
    parser.add_argument("--report", type=Path, default=DEFAULT_REPORT, help=f"JSON report (default {DEFAULT_REPORT})")
    args = parser.parse_args(argv)
    handle_interrupts()
    home = Path(tempfile.mkdtemp(prefix="mediapocket-e2e-events-"))
    report = Report("e2e events")
    code, error = 1, None
    try:
        api_key = f"e2e-key-{secrets.token_hex(12)}"
        # Asset-triggered runs are created only when the scheduler schedules; no other DAG is unpaused.
        deployment, sandbox = harness.prepare(home, api_key, overrides={
            "AIRFLOW__SCHEDULER__USE_JOB_SCHEDULE": "True", "MEDIAPOCKET_ON_INGEST_POLL_SECONDS": "2",
        })
        try:
            migrate(deployment.env, log_path=deployment.proc_logs / "db-migrate.log")
            deployment.start_sandbox(sandbox.port, api_key, media_processing_seconds=4, dag_action_run_seconds=2)
            sandbox_url = f"http://127.0.0.1:{sandbox.port}"
            # The DAG file reads the project at parse time: make it before the dag-processor starts.
            project_id = prepare_project(sandbox_url, api_key)
            deployment.env["MEDIAPOCKET_INGEST_PROJECT_ID"] = project_id
            for component in harness.COMPONENTS:
                deployment.start(component)
            api = Api(deployment.api_url)
            api.wait_ready(timeout=STARTUP_TIMEOUT, alive=deployment.check_alive, dag_ids=[DAG_ID])
            triggerers = [deployment.proc("triggerer")]

            def start_triggerer() -> None:
                deployment.procs.remove(triggerers[-1])  # killed on purpose (its whole group): not an early exit
                triggerers.append(deployment.start("triggerer", name=f"triggerer-{len(triggerers) + 1}"))

            handles = Handles(
                api=lambda method, path, body: api.ok(method, path, body),
                triggerer_log=lambda: triggerers[-1].text(),
                triggerer_pid=lambda: triggerers[-1].popen.pid,
                start_triggerer=start_triggerer,
                alive=deployment.check_alive,
                sandbox_url=sandbox_url,
                api_key=api_key,
            )
            run_event_checks(handles, project_id, report.add)
            harness.key_absent(deployment, api_key, report)
            code = 0
        finally:
            left = harness.stop(deployment, report)
            if left and code == 0:
                code, error = 1, f"processes left running after the stop: {left}"
            if code != 0:
                deployment.print_tails()
    except (EventCheckFailure, DeploymentError, MigrationError) as exc:
        error = str(exc)
        print(f"\nE2E EVENTS FAILED: {exc}", flush=True)
    except Interrupted as exc:
        error, code = f"interrupted ({exc})", 130
    finally:
        finish(report, code, home, keep_home=args.keep_home, path=args.report, error=error)
    return code


if __name__ == "__main__":  # pragma: no cover
    raise SystemExit(main())
