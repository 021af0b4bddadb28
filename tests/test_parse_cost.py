"""DAG files import the operators, sensors, triggers, the notifier and the asset helpers at every parse; the
request builders, the pydantic models and the hook load only when a task runs (``_lazy``)."""

from __future__ import annotations

import subprocess
import sys

PARSE_TIME_MODULES = (
    "airflow_provider_mediapocket.operators.mediapocket",
    "airflow_provider_mediapocket.sensors.mediapocket",
    "airflow_provider_mediapocket.triggers.history",
    "airflow_provider_mediapocket.notifications.mediapocket",
    "airflow_provider_mediapocket.assets",
)
RUN_TIME_MODULES = (
    "airflow_provider_mediapocket.hooks._api",
    "airflow_provider_mediapocket.hooks.mediapocket",
    "airflow_provider_mediapocket.models",
)


def test_what_a_dag_file_imports_and_builds_loads_no_request_builder_model_or_hook() -> None:
    code = (
        "import importlib, sys\n"
        f"for name in {PARSE_TIME_MODULES!r}: importlib.import_module(name)\n"
        # what a DAG file builds at parse time
        "from airflow_provider_mediapocket.operators.mediapocket import MediaPocketCreateAssetOperator as C, "
        "MediaPocketStartDagActionOperator as S\n"
        "from airflow_provider_mediapocket.notifications.mediapocket import MediaPocketNotifier as N\n"
        "from airflow_provider_mediapocket.triggers.history import MediaPocketHistoryEventTrigger as H\n"
        "from airflow_provider_mediapocket.assets import create_asset\n"
        "C(task_id='c', title='t', project_id='p'); S(task_id='s', asset_id='a', dag_action_name='Transcode')\n"
        "N(asset_id='a', message='m'); H(project_id='p', event_types=['ASSET_FINISHED_INGEST']); create_asset(host='h', project_id='p')\n"
        f"print(sorted(m for m in {RUN_TIME_MODULES!r} if m in sys.modules))\n"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=300, check=False)
    assert done.returncode == 0, done.stderr[-3000:]
    assert done.stdout.strip() == "[]", done.stdout
