"""`make e2e`: the example ingest DAG in a real Airflow deployment (api-server, scheduler, dag-processor,
triggerer as separate processes) against the sandbox, driven by ``scripts/e2e_deployment.py``.

Marked ``deployment``: the default test run deselects it (``-m "not deployment"`` in pytest's ``addopts``);
``make e2e`` selects it with ``-m deployment`` (add ``-rP`` to see the script's report). It takes about
1.5 minutes on 2 cores and needs free loopback ports.
"""

from __future__ import annotations

import signal
import subprocess
import sys
from pathlib import Path

import pytest

SCRIPT = Path(__file__).resolve().parents[2] / "scripts" / "e2e_deployment.py"
TIMEOUT = 1200  # the script bounds every wait itself (worst case ~16 min); this only guards against a hang


@pytest.mark.deployment
def test_ingest_dag_in_a_real_deployment() -> None:
    # The script stops its processes in a finally block: on a hang, SIGTERM it (not SIGKILL) so it cleans up.
    proc = subprocess.Popen(
        [sys.executable, str(SCRIPT)], stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
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
    assert proc.returncode == 0, f"{SCRIPT.name} exited {proc.returncode}:\n{tail}"
    assert "RESULT: PASS" in output, tail
    assert "triggerer handled 6/6 deferred task instances" in output, tail
    assert '"runs": {"completed": 3}' in output, tail
    print(output[output.rfind("===== e2e deployment report"):])  # shown with `pytest -rP`
