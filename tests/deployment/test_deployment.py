"""`make e2e`: the example ingest DAG in a real Airflow deployment (api-server, scheduler, dag-processor,
triggerer as separate processes) against the sandbox, driven by ``scripts/e2e_deployment.py``.

The script writes its findings as JSON (``--report``); this test asserts on those facts, not on the
printed prose. Marked ``deployment``: the default test run deselects it (``-m "not deployment"`` in
pytest's ``addopts``); ``make e2e`` selects it with ``-m deployment`` (add ``-rP`` to see the script's
report). It takes about 1.5 minutes on 2 cores and needs free loopback ports.
"""

from __future__ import annotations

import json
import signal
import subprocess
import sys
from pathlib import Path

import pytest

SCRIPT = Path(__file__).resolve().parents[2] / "scripts" / "e2e_deployment.py"
TIMEOUT = 1200  # the script bounds every wait itself (worst case ~16 min); this only guards against a hang


@pytest.mark.deployment
def test_ingest_dag_in_a_real_deployment(tmp_path: Path) -> None:
    report_path = tmp_path / "report.json"
    # The script stops its processes in a finally block: on a hang, SIGTERM it (not SIGKILL) so it cleans up.
    proc = subprocess.Popen(
        [sys.executable, str(SCRIPT), "--report", str(report_path)],
        stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
    )
    try:
        output, _ = proc.communicate(timeout=TIMEOUT)
    except subprocess.TimeoutExpired:
        proc.send_signal(signal.SIGTERM)
        try:
            output, _ = proc.communicate(timeout=90)
        except subprocess.TimeoutExpired:
            proc.kill()
            output, _ = proc.communicate()
        pytest.fail(f"{SCRIPT.name} did not finish in {TIMEOUT}s:\n{output[-20000:]}")
    tail = "\n".join(output.splitlines()[-150:])
    assert report_path.exists(), f"{SCRIPT.name} wrote no report:\n{tail}"
    report = json.loads(report_path.read_text())
    facts = report["facts"]
    assert (proc.returncode, report["result"], report["error"]) == (0, "PASS", None), tail
    assert facts["run"]["state"] == "success"
    states = facts["run"]["task_states"]
    assert set(states.values()) == {"success"}, states
    for task_id in ("wait_for_media", "run_dag_action"):
        assert sorted(label for label in states if label.startswith(f"{task_id}[")) == [f"{task_id}[{i}]" for i in range(3)]
    assert facts["summary_xcom"] == {"assets": 3, "media_types": {"image": 1, "video": 1, "audio": 1},
                                     "runs": {"completed": 3}}
    assert (facts["deferrals"]["checked"], facts["deferrals"]["expected"]) == (6, 6)
    assert facts["deferrals"]["triggerer_jobs"]
    assert facts["listeners"], "no TCP listener found: the loopback check saw nothing"
    assert facts["key_absent"]["files_scanned"] > 0
    assert facts["leftover_processes"] == []
    print("\n".join(report["lines"]))  # shown with `pytest -rP`
