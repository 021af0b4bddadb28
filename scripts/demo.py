"""`make demo`: run the example ingest DAG end to end against the bundled sandbox.

Starts the Media Pocket sandbox on 127.0.0.1, prepares a throwaway AIRFLOW_HOME (``.airflow_home/``,
migrated once and reused), runs ``mediapocket_ingest`` with Airflow's ``dag.test()`` with deferrable
waits (their triggers run for real, inline), and prints what happened: each asset, its media type,
the DAG action run and its final status, and the counts. Nothing leaves the machine.
"""

from __future__ import annotations

import sys
from pathlib import Path

from airflow_provider_mediapocket.sandbox import MediaPocketSandbox
from airflow_provider_mediapocket.testing import prepare_airflow_home, run_dag_test

ROOT = Path(__file__).resolve().parents[1]


def wait_line(waits: int, deferred: int) -> str:
    """How many of the waits deferred, saying why the others did not (a puzzle otherwise: 4 of 6?)."""
    satisfied = waits - deferred
    line = f"waits: {waits}; {deferred} deferred to the triggerer"
    if satisfied:
        line += (f", {satisfied} found their media processed or run finished at the first check and never "
                 "deferred (a wait defers only when there is something to wait for)")
    return line


def main() -> int:
    with MediaPocketSandbox(media_processing_seconds=3.0, dag_action_run_seconds=4.0) as sandbox:
        print(f"Media Pocket sandbox running at {sandbox.base_url}")
        env = prepare_airflow_home(
            ROOT / ".airflow_home",
            ROOT / "example_dags",
            extra_env={**sandbox.airflow_connection_env(), "AIRFLOW__OPERATORS__DEFAULT_DEFERRABLE": "True"},
        )
        print("Running mediapocket_ingest with dag.test() (deferrable waits run their triggers inline)...")
        result = run_dag_test("mediapocket_ingest", env)
        if result.state != "success":
            print(result.output_tail(120))
            print(f"mediapocket_ingest ended {result.state}: {result.error or 'see the log above'}")
            return 1
        assets = result.xcoms["wait_for_media"]
        runs = result.xcoms["run_dag_action"]
        print()
        print(f"{'asset id':22}  {'title':24}  {'media':6}  {'file':22}  {'run':>3}  {'action':10}  status")
        for asset, run in zip(assets, runs, strict=True):
            print(
                f"{asset['id']:22}  {asset['title'][:24]:24}  {asset['media_type']:6}  "
                f"{(asset['original_filename'] or '')[:22]:22}  {run['id']!s:>3}  "
                f"{run['dag_action']['name']:10}  {run['status']}"
            )
        summary = result.xcoms["summary"]
        deferred = result.output.count("[DAG TEST] running trigger in line")
        print()
        print(f"assets: {summary['assets']}  media types: {summary['media_types']}  runs: {summary['runs']}")
        print(f"tasks: {len(result.tasks)} task instances, all {set(result.task_states().values())}; "
              f"{len(sandbox.requests)} API requests; {result.duration:.0f}s")
        print(wait_line(len(assets) + len(runs), deferred))
        return 0


if __name__ == "__main__":
    sys.exit(main())
