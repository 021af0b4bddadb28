"""`make demo`: start the Media Pocket sandbox and drive it through MediaPocketHook.

Creates a project, an asset with media from a URL, waits until the media is processed, starts a DAG
action and waits for its run, then prints what happened. Everything talks HTTP to the sandbox on
127.0.0.1; nothing leaves the machine.
"""

from __future__ import annotations

import os
import tempfile
import time

os.environ.setdefault("AIRFLOW_HOME", tempfile.mkdtemp(prefix="mediapocket-demo-"))

from airflow_provider_mediapocket.hooks.mediapocket import MediaPocketHook
from airflow_provider_mediapocket.sandbox import MediaPocketSandbox


def wait(what: str, check, timeout: float = 30.0, interval: float = 0.2):  # type: ignore[no-untyped-def]
    deadline = time.monotonic() + timeout
    while True:
        value = check()
        if value is not None:
            return value
        if time.monotonic() > deadline:
            raise TimeoutError(f"{what} did not finish within {timeout}s")
        time.sleep(interval)


def main() -> None:
    with MediaPocketSandbox(media_processing_seconds=1.0, dag_action_run_seconds=2.0) as sandbox:
        os.environ.update(sandbox.airflow_connection_env())
        print(f"Media Pocket sandbox running at {sandbox.base_url}")
        with MediaPocketHook() as hook:
            project = hook.create_project("Demo ingest", tags=["demo"])
            asset = hook.create_project_asset(
                project.id, "Launch video", file_url="https://cdn.example.com/media/launch.mp4",
                tags=["launch", "demo"], external_id="demo-launch-video",
            )
            print(f"created asset {asset.id} in project {project.id}: media_type={asset.media_type}")
            asset = wait("media processing", lambda: (a := hook.get_asset(asset.id)) and (
                None if a.is_processing else a))
            print(f"media processed: media_type={asset.media_type} original_filename={asset.original_filename}")
            actions = {action.name: action.id for action in hook.list_dag_actions(asset.id)}
            run = hook.start_dag_action(asset.id, actions["Transcode"])
            print(f"started DAG action 'Transcode': run {run.id} status={run.status}")
            run = wait("DAG action run", lambda: (r := hook.get_dag_action_run(asset.id, run.id)) and (
                None if r.status == "running" else r))
            for message in run.dag_action_run_messages:
                print(f"  run message: {message.message}")
            print(f"run {run.id} finished: status={run.status}")
            events = [event.event_type for event in hook.iter_asset_history(asset.id)]
            print(f"asset history: {', '.join(reversed([str(e) for e in events]))}")
            print(f"summary: 1 asset ({asset.media_type}), 1 run ({run.status}), "
                  f"{len(sandbox.requests)} API requests")
            if run.status != "completed" or asset.media_type != "video":
                raise SystemExit("demo failed")


if __name__ == "__main__":
    main()
