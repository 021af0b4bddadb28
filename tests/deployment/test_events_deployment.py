"""`make e2e`: the event-driven DAG ``mediapocket_on_ingest`` in a real deployment, driven by
``scripts/e2e_events.py``: assets are ingested in the sandbox while it runs, the triggerer is killed with
SIGKILL mid-stream and restarted, and every ingest-finished event must start the DAG action exactly once.

Marked ``deployment`` (deselected by default). About 5 minutes on 2 loaded cores.
"""

from __future__ import annotations

import json
import signal
import subprocess
import sys
from pathlib import Path

import pytest

SCRIPT = Path(__file__).resolve().parents[2] / "scripts" / "e2e_events.py"
TIMEOUT = 1500  # the script bounds every wait itself; this only guards against a hang


@pytest.mark.deployment
def test_event_driven_dag_in_a_real_deployment_with_a_triggerer_kill(tmp_path: Path) -> None:
    report_path = tmp_path / "report.json"
    proc = subprocess.Popen([sys.executable, str(SCRIPT), "--report", str(report_path)],
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    try:
        output, _ = proc.communicate(timeout=TIMEOUT)
    except subprocess.TimeoutExpired:
        proc.send_signal(signal.SIGTERM)  # the script stops its deployment on SIGTERM
        output, _ = proc.communicate(timeout=120)
        pytest.fail(f"{SCRIPT.name} did not finish in {TIMEOUT}s:\n{output[-20000:]}")
    tail = "\n".join(output.splitlines()[-150:])
    assert report_path.exists(), tail
    document = json.loads(report_path.read_text())
    assert proc.returncode == 0 and document["result"] == "PASS", tail
    facts = document["facts"]
    assert facts["events_expected"] >= 9 and facts["events_missing"] == [] and facts["events_twice_unexplained"] == []
    assert facts["events_unexpected"] == [] and facts["events_in_two_runs"] == []
    assert facts["actions_not_once"] == {} and facts["event_runs_failed"] == []
    assert facts["triggerer_killed"] and facts["leftover_processes"] == [], tail
    print(output[output.rfind("===== e2e events report"):])  # shown with `pytest -rP`
