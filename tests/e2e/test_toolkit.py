"""The testing toolkit's machinery without Airflow: the child runner, a deployment's process groups, the
environment builder, log scans and the JSON report. Real processes, no mocks."""

from __future__ import annotations

import json
import os
import sys
import time
from collections.abc import Callable
from pathlib import Path

import httpx
import pytest

from airflow_provider_mediapocket.sandbox import MediaPocketSandbox
from airflow_provider_mediapocket.testing import airflow_command, airflow_env, run_child
from airflow_provider_mediapocket.testing.common import DeploymentError
from airflow_provider_mediapocket.testing.deployment import COMPONENT_ARGS, MARKER_VARIABLE, Deployment, deployment_env
from airflow_provider_mediapocket.testing.logs import files_under, messages_once, secret_absent, trigger_logs
from airflow_provider_mediapocket.testing.process import proc_table
from airflow_provider_mediapocket.testing.report import Report, finish

# Starts a grandchild in a session of its own (as Airflow's task processes leave their group), prints its
# pid and sleeps.
ESCAPING_CHILD = (
    "import subprocess, sys, time\n"
    "child = subprocess.Popen([sys.executable, '-c', 'import time; time.sleep(120)'], start_new_session=True)\n"
    "print(child.pid, flush=True)\n"
    "time.sleep(120)\n"
)


def alive(pid: int) -> bool:
    state = proc_table().get(pid)
    if state is None:
        return False
    try:
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0] != "Z"
    except OSError:
        return False


def first_line(path: Path, timeout: float = 30) -> str:
    """The first line a process wrote to ``path`` (bounded wait for it to appear)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        text = path.read_text() if path.exists() else ""
        if "\n" in text:
            return text.split("\n", 1)[0]
        time.sleep(0.05)
    raise AssertionError(f"nothing written to {path} in {timeout}s")


def test_run_child_kills_the_whole_process_group_on_timeout(tmp_path: Path) -> None:
    script = "import subprocess, sys, time\n" \
             "child = subprocess.Popen([sys.executable, '-c', 'import time; time.sleep(120)'])\n" \
             "print(child.pid, flush=True)\ntime.sleep(120)\n"
    done = run_child([sys.executable, "-c", script], os.environ, timeout=3, log_path=tmp_path / "out.log")
    assert done.timed_out and done.returncode == -9
    grandchild = int(done.output.split()[0])
    assert (tmp_path / "out.log").read_text() == done.output
    # SIGKILL is delivered at once but the kernel ends the process a moment later: bounded wait for that.
    deadline = time.monotonic() + 5
    while alive(grandchild) and time.monotonic() < deadline:
        time.sleep(0.05)
    assert not alive(grandchild), "the grandchild outlived the timeout"


def test_run_child_returns_exit_code_and_output() -> None:
    done = run_child([sys.executable, "-c", "import sys; print('hi'); sys.exit(3)"], os.environ, timeout=30)
    assert (done.returncode, done.output.strip(), done.timed_out) == (3, "hi", False)


def test_deployment_stops_processes_that_left_their_group(tmp_path: Path) -> None:
    deployment = Deployment(tmp_path, dict(os.environ), api_port=1)
    try:
        proc = deployment.start_process("escaper", [sys.executable, "-c", ESCAPING_CHILD])
        grandchild = int(first_line(proc.log_path))
        env = Path(f"/proc/{grandchild}/environ").read_bytes().split(b"\0")
        assert f"{MARKER_VARIABLE}={tmp_path}".encode() in env
        with pytest.raises(ValueError, match="name 'escaper' is taken"):
            deployment.start_process("escaper", [sys.executable, "-c", "pass"])
        assert deployment.leftovers()
    finally:
        deployment.stop_all()
    assert deployment.leftovers() == []
    assert not alive(grandchild)


def test_check_alive_names_the_process_that_exited(tmp_path: Path) -> None:
    deployment = Deployment(tmp_path, dict(os.environ), api_port=1)
    try:
        proc = deployment.start_process("quitter", [sys.executable, "-c", "raise SystemExit(4)"])
        proc.popen.wait(timeout=30)
        with pytest.raises(DeploymentError, match="quitter exited early with code 4"):
            deployment.check_alive()
    finally:
        deployment.stop_all()


def test_start_builds_the_airflow_command_with_component_defaults(tmp_path: Path) -> None:
    deployment = Deployment(tmp_path, dict(os.environ), api_port=8123)
    try:
        started = deployment.start("triggerer", "--help", name="triggerer-2")  # explicit args replace defaults
        assert started.popen.args == airflow_command("triggerer", "--help")
        assert deployment.proc("triggerer-2") is started
    finally:
        deployment.stop_all()
    assert COMPONENT_ARGS["api-server"](deployment) == ["--host", "127.0.0.1", "--port", "8123", "--workers", "1"]
    assert COMPONENT_ARGS["triggerer"](deployment) == ["--skip-serve-logs"]


def test_env_overrides_win_and_a_deployment_drops_the_callers_connections(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("AIRFLOW_CONN_FROM_CALLER", "{}")
    monkeypatch.setenv("AIRFLOW__CORE__EXECUTOR", "SequentialExecutor")
    dags = tmp_path / "dags"
    dags.mkdir()
    plain = airflow_env(tmp_path / "home", dags, {"AIRFLOW__CORE__LOAD_EXAMPLES": "True"})
    assert plain["AIRFLOW_CONN_FROM_CALLER"] == "{}"
    assert "AIRFLOW__CORE__EXECUTOR" not in plain
    assert plain["AIRFLOW__CORE__LOAD_EXAMPLES"] == "True"
    env = deployment_env(tmp_path / "home", dags, 8123, {"AIRFLOW__CORE__EXECUTOR": "CeleryExecutor"})
    assert "AIRFLOW_CONN_FROM_CALLER" not in env
    assert env["AIRFLOW__CORE__EXECUTOR"] == "CeleryExecutor"
    assert env["AIRFLOW__CORE__EXECUTION_API_SERVER_URL"] == "http://127.0.0.1:8123/execution/"
    with pytest.raises(FileNotFoundError, match="dags folder .*missing does not exist"):
        airflow_env(tmp_path / "home", tmp_path / "missing")


def test_log_scans(tmp_path: Path) -> None:
    logs = tmp_path / "logs"
    (logs / "a").mkdir(parents=True)
    (logs / "a" / "attempt=1.log").write_text("Pausing task as DEFERRED\n")
    (logs / "a" / "attempt=1.log.trigger.7.log").write_text("trigger completed\n")
    (tmp_path / "airflow.db").write_bytes(b"\0binary secret-key\0")
    assert trigger_logs(logs / "a") == {logs / "a" / "attempt=1.log.trigger.7.log": 7}
    assert secret_absent(files_under(logs), "secret-key") == 2
    with pytest.raises(DeploymentError, match="airflow.db"):
        secret_absent(files_under(logs, tmp_path / "airflow.db"), "secret-key")
    assert messages_once("a b c", ["a", "b"]) == {"a": 1, "b": 1}
    with pytest.raises(DeploymentError, match=r"each message once: \{'a': 2\}"):
        messages_once("a a", ["a"])


def test_finish_writes_the_report_as_json(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    home = tmp_path / "home"
    home.mkdir()
    report = Report("demo")
    report.add("ran 3 things", ran=3)
    finish(report, 1, home, keep_home=False, path=tmp_path / "out" / "report.json", error="boom")
    data = json.loads((tmp_path / "out" / "report.json").read_text())
    assert data == {"title": "demo", "result": "FAIL", "exit_code": 1, "error": "boom", "facts": {"ran": 3},
                    "lines": ["ran 3 things"]}
    assert "- ran 3 things\nRESULT: FAIL" in capsys.readouterr().out
    assert not home.exists()


def test_sandbox_connection_is_what_the_hook_reads(monkeypatch: pytest.MonkeyPatch) -> None:
    from airflow_provider_mediapocket.hooks.mediapocket import MediaPocketHook

    with MediaPocketSandbox(api_key="conn-key") as sandbox:
        conn = json.loads(sandbox.connection(retry_limit=1))
        assert conn == {"conn_type": "mediapocket", "host": sandbox.base_url, "password": "conn-key",
                        "extra": {"retry_backoff": 0.05, "retry_limit": 1}}
        monkeypatch.setenv("AIRFLOW_CONN_OTHER", sandbox.connection(api_key="rotated"))
        assert json.loads(os.environ["AIRFLOW_CONN_OTHER"])["password"] == "rotated"
        env = sandbox.airflow_connection_env("mine", timeout=5)
        monkeypatch.setenv(*next(iter(env.items())))
        assert MediaPocketHook("mine").test_connection()[0]
    # Before start, on a known port: the connection to a sandbox run as its own process.
    assert json.loads(MediaPocketSandbox(port=8765).connection())["host"] == "http://127.0.0.1:8765"


def test_sandbox_factory_makes_each_timing(mediapocket_sandbox_factory: Callable[..., MediaPocketSandbox]) -> None:
    slow = mediapocket_sandbox_factory(api_key="slow-key", media_processing_seconds=60)
    fast = mediapocket_sandbox_factory(media_processing_seconds=0.1)
    assert slow.base_url != fast.base_url
    assert json.loads(os.environ["AIRFLOW_CONN_MEDIAPOCKET_DEFAULT"])["host"] == fast.base_url
    assert httpx.get(f"{slow.base_url}/api/v2/projects", headers={"X-API-KEY": "slow-key"}).status_code == 200
