"""The ``python -m airflow_provider_mediapocket.sandbox`` command line."""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
from pathlib import Path

import httpx

REPO = Path(__file__).resolve().parents[2]


def test_cli_serves_and_stops_cleanly() -> None:
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    cmd = [
        sys.executable,
        "-m",
        "airflow_provider_mediapocket.sandbox",
        "--port",
        "0",
        "--api-key",
        "cli-secret",
        "--media-processing-seconds",
        "0.5",
        "--seed",
        "3",
    ]
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env)
    try:
        assert proc.stdout is not None
        line = proc.stdout.readline()
        match = re.search(r"(http://127\.0\.0\.1:(\d+))", line)
        assert match is not None, line
        assert "cli-secret" not in line and int(match.group(2)) > 0
        response = httpx.get(
            f"{match.group(1)}/api/v2/projects", headers={"X-API-KEY": "cli-secret"}, timeout=10
        )
        assert response.status_code == 200
        assert [p["title"] for p in response.json()["projects"]] == ["Sandbox Project"]
        assert httpx.get(f"{match.group(1)}/api/v2/projects", timeout=10).status_code == 401
        proc.send_signal(signal.SIGTERM)
        out, err = proc.communicate(timeout=20)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    assert proc.returncode == 0, err
    assert "stopped" in out and "cli-secret" not in out + err
