"""A small client of Airflow's REST API (``/api/v2``, stdlib only) for deployment scripts: log in through
the SimpleAuthManager, wait for the api-server and the components' heartbeats, trigger a DAG and wait
for its run, read task instances, XComs and jobs."""

from __future__ import annotations

import functools
import json
import time
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Callable, Iterable, Mapping
from typing import Any

from airflow_provider_mediapocket.testing.common import DeploymentError, log, wait_for

__all__ = ["HTTP_TIMEOUT", "TERMINAL_RUN_STATES", "Api"]

#: Seconds one REST request may take.
HTTP_TIMEOUT = 30.0
#: DAG run states a wait ends on.
TERMINAL_RUN_STATES = frozenset({"success", "failed"})
#: The heartbeating components ``/api/v2/monitor/health`` reports.
HEALTH_COMPONENTS = ("scheduler", "triggerer", "dag_processor")


class Api:
    """Airflow's REST API at ``base_url`` (``http://127.0.0.1:<port>``).

    :param base_url: the api-server's root URL.
    """

    def __init__(self, base_url: str) -> None:
        self.base_url = base_url.rstrip("/")
        self.token: str | None = None

    def request(self, method: str, path: str, body: Any = None, auth: bool = True) -> tuple[int, Any]:
        """One request; returns (HTTP status, decoded JSON or text). Never raises for an HTTP status.

        :param method: the HTTP method.
        :param path: from the root, e.g. ``/api/v2/dags``.
        :param body: sent as JSON when not None.
        :param auth: send the bearer token from :meth:`login`.
        """
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
        """Like :meth:`request`, but returns only the payload and raises :class:`DeploymentError` on HTTP >= 300.

        :param method: the HTTP method.
        :param path: from the root.
        :param body: sent as JSON when not None.
        """
        status, payload = self.request(method, path, body)
        if status >= 300:
            raise DeploymentError(f"{method} {path} -> HTTP {status}: {payload}")
        return payload

    def login(self) -> None:
        """Get a token from the SimpleAuthManager (``GET /auth/token`` works when everyone is admin)."""
        status, payload = self.request("GET", "/auth/token", auth=False)
        if status >= 300 or not isinstance(payload, dict) or "access_token" not in payload:
            raise DeploymentError(f"GET /auth/token -> HTTP {status}: {payload}")
        self.token = payload["access_token"]

    # ------------------------------------------------------------------ readiness
    def is_up(self) -> bool:
        """Whether the api-server answers its health endpoint."""
        return self.request("GET", "/api/v2/monitor/health", auth=False)[0] == 200

    def healthy_components(self, components: Iterable[str] = HEALTH_COMPONENTS) -> set[str]:
        """Which of ``components`` the health endpoint reports healthy (``metadatabase`` must be healthy too,
        or none is reported).

        :param components: keys of ``/api/v2/monitor/health`` (``scheduler``, ``triggerer``, ``dag_processor``).
        """
        health = self.ok("GET", "/api/v2/monitor/health")
        if (health.get("metadatabase") or {}).get("status") != "healthy":
            return set()
        return {part for part in components if (health.get(part) or {}).get("status") == "healthy"}

    def dag_parsed(self, dag_id: str) -> bool:
        """Whether ``dag_id`` is known; raises :class:`DeploymentError` when there are import errors instead.

        :param dag_id: the DAG.
        """
        if self.request("GET", f"/api/v2/dags/{dag_id}")[0] == 200:
            return True
        errors = self.ok("GET", "/api/v2/importErrors")
        if errors.get("total_entries"):
            raise DeploymentError(f"import errors: {json.dumps(errors)[:2000]}")
        return False

    def wait_ready(
        self,
        *,
        timeout: float,
        alive: Callable[[], None] | None = None,
        components: Iterable[str] = HEALTH_COMPONENTS,
        dag_ids: Iterable[str] = (),
    ) -> dict[str, float]:
        """Wait until the api-server answers (then log in), ``components`` heartbeat and ``dag_ids`` are parsed.

        Returns the seconds after which each became ready: keys ``api-server``, each component, and
        ``dag:<dag_id>``. Raises :class:`DeploymentError` on timeout or when ``alive`` raises.

        :param timeout: seconds for all of it.
        :param alive: called before every check (e.g. ``deployment.check_alive``).
        :param components: heartbeating components to wait for (see :meth:`healthy_components`).
        :param dag_ids: DAGs that must be parsed.
        """
        started = time.monotonic()
        deadline = started + timeout
        ready: dict[str, float] = {}

        def left() -> float:
            return max(1.0, deadline - time.monotonic())

        wait_for("the api-server", self.is_up, left(), 0.5, alive)
        ready["api-server"] = time.monotonic() - started
        self.login()
        wanted = tuple(components)

        def healthy() -> bool:
            for part in self.healthy_components(wanted):
                ready.setdefault(part, time.monotonic() - started)
            return all(part in ready for part in wanted)

        wait_for(f"{', '.join(wanted)} heartbeats", healthy, left(), 0.5, alive)
        for dag_id in dag_ids:
            wait_for(f"{dag_id} to be parsed", functools.partial(self.dag_parsed, dag_id), left(), 0.5, alive)
            ready[f"dag:{dag_id}"] = time.monotonic() - started
        return ready

    # ------------------------------------------------------------------ runs
    def trigger(self, dag_id: str, conf: Mapping[str, Any] | None = None) -> str:
        """Unpause ``dag_id`` and trigger a run of it now; returns the run id.

        :param dag_id: the DAG.
        :param conf: the run's ``conf``.
        """
        self.ok("PATCH", f"/api/v2/dags/{dag_id}", {"is_paused": False})
        run = self.ok("POST", f"/api/v2/dags/{dag_id}/dagRuns", {"logical_date": None, "conf": dict(conf or {})})
        return str(run["dag_run_id"])

    def run_path(self, dag_id: str, run_id: str) -> str:
        """``/api/v2/dags/<dag_id>/dagRuns/<run_id quoted>``.

        :param dag_id: the DAG.
        :param run_id: the run.
        """
        return f"/api/v2/dags/{dag_id}/dagRuns/{urllib.parse.quote(run_id, safe='')}"

    def wait_run(
        self, dag_id: str, run_id: str, *, timeout: float, alive: Callable[[], None] | None = None
    ) -> str:
        """Wait until the run is ``success`` or ``failed`` (logging each state change); returns that state.

        :param dag_id: the DAG.
        :param run_id: the run.
        :param timeout: seconds.
        :param alive: called before every check.
        """
        seen: list[str] = []

        def finished() -> str | None:
            state = str(self.ok("GET", self.run_path(dag_id, run_id))["state"])
            if not seen or seen[-1] != state:
                log(f"run state: {state}")
                seen.append(state)
            return state if state in TERMINAL_RUN_STATES else None

        return wait_for(f"run {run_id} to finish", finished, timeout, 2.0, alive)

    def task_instances(self, dag_id: str, run_id: str) -> list[dict[str, Any]]:
        """The run's task instances (every map index).

        :param dag_id: the DAG.
        :param run_id: the run.
        """
        return list(self.ok("GET", f"{self.run_path(dag_id, run_id)}/taskInstances?limit=100")["task_instances"])

    def xcom(self, dag_id: str, run_id: str, task_id: str, key: str = "return_value") -> Any:
        """An XCom value of an unmapped task, decoded from JSON when the API gives it as a string.

        :param dag_id: the DAG.
        :param run_id: the run.
        :param task_id: the task.
        :param key: the XCom key.
        """
        entry = self.ok("GET", f"{self.run_path(dag_id, run_id)}/taskInstances/{task_id}/xcomEntries/{key}")
        value = entry.get("value")
        return json.loads(value) if isinstance(value, str) else value

    def job_ids(self, job_type: str) -> set[int]:
        """Ids of the jobs of ``job_type`` (``TriggererJob``, ``SchedulerJob``, ...).

        :param job_type: the job type.
        """
        return {int(job["id"]) for job in self.ok("GET", f"/api/v2/jobs?job_type={job_type}&limit=100")["jobs"]}
