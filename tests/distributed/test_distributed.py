"""`make e2e-distributed`: ``scripts/e2e_distributed.py`` (PostgreSQL, Redis, CeleryExecutor with two workers,
two triggerers, a triggerer and a worker SIGKILLed mid-run), checked through its JSON report.

Marked ``deployment`` like ``tests/deployment`` (the default run deselects it); ``make e2e-distributed``
selects it with ``-m deployment -rP tests/distributed``. It needs root or an installed PostgreSQL and Redis,
and takes about 10 minutes on 2 cores.
"""

from __future__ import annotations

import json
import signal
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

ROOT = Path(__file__).resolve().parents[2]
SCRIPT = ROOT / "scripts" / "e2e_distributed.py"
REPORT = ROOT / "build" / "e2e-distributed" / "report.json"
ITEMS = 100
TIMEOUT = 2400  # the script bounds every wait itself; this only guards against a hang


def run_script() -> tuple[int, str, dict[str, Any]]:
    REPORT.unlink(missing_ok=True)
    # The script stops everything in a finally block: on a hang, SIGTERM it (not SIGKILL) so it cleans up.
    proc = subprocess.Popen([sys.executable, str(SCRIPT), "--items", str(ITEMS)], stdout=subprocess.PIPE,
                            stderr=subprocess.STDOUT, text=True)
    try:
        output, _ = proc.communicate(timeout=TIMEOUT)
    except subprocess.TimeoutExpired:
        proc.send_signal(signal.SIGTERM)
        output, _ = proc.communicate(timeout=120)
        pytest.fail(f"{SCRIPT.name} did not finish in {TIMEOUT}s:\n{output[-20000:]}")
    report = json.loads(REPORT.read_text()) if REPORT.exists() else {}
    return proc.returncode, output, report


@pytest.mark.deployment
def test_ingest_survives_a_killed_triggerer_and_a_killed_worker() -> None:
    code, output, document = run_script()
    tail = "\n".join(output.splitlines()[-150:])
    assert code == 0 and document.get("result") == "PASS", tail
    report = document["facts"]

    takeover = report["triggerer_kill"]
    assert takeover["state"] == "success"
    assert takeover["assets"] == takeover["dag_action_runs"] == takeover["items"] == ITEMS
    # Every trigger the killed triggerer held was taken over by the other one (or had fired before the kill).
    assert takeover["triggers_taken_over"] >= 1
    assert takeover["triggers_taken_over"] + takeover["triggers_done_before"] == takeover["triggers_held_at_kill"]
    assert takeover["survivor_job"] != takeover["killed_job"]
    assert 0 < takeover["takeover_seconds"] < 120
    # Four messages per run (queued, started, processing, finished), each in its task's logs once.
    assert takeover["run_messages_checked"] == 4 * ITEMS

    worker = report["worker_kill"]
    assert worker["state"] == "success" and worker["reattached"] is True
    assert worker["final_try"] >= 2
    assert worker["assets"] == worker["dag_action_runs"] == 2

    assert report["files_scanned_for_api_key"] > 0
    assert report["left_running"] == []
    print(output[output.rfind("===== e2e distributed report"):])  # shown with `pytest -rP`
