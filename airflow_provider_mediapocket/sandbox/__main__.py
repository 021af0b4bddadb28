"""Run the sandbox from the command line: ``python -m airflow_provider_mediapocket.sandbox``."""

from __future__ import annotations

import argparse
import signal
import sys
import threading
from types import FrameType

from airflow_provider_mediapocket.sandbox.server import MediaPocketSandbox
from airflow_provider_mediapocket.sandbox.state import FaultConfig


def build_parser() -> argparse.ArgumentParser:
    """The command-line options."""
    parser = argparse.ArgumentParser(
        prog="python -m airflow_provider_mediapocket.sandbox", description="Media Pocket API v2 sandbox"
    )
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=8765)
    parser.add_argument("--api-key", default="sandbox-api-key")
    parser.add_argument("--media-processing-seconds", type=float, default=2.0)
    parser.add_argument("--dag-action-run-seconds", type=float, default=5.0)
    parser.add_argument("--latency", type=float, default=0.0, help="seconds every request waits (network stand-in)")
    parser.add_argument("--fault-rate", type=float, default=0.0)
    parser.add_argument(
        "--connection-timeout", type=float, default=30.0,
        help="seconds before an idle or stalled connection is closed",
    )
    parser.add_argument(
        "--max-body-bytes", type=int, default=10 * 1024 * 1024, help="larger request bodies get 413"
    )
    parser.add_argument("--seed", type=int, default=None)
    return parser


def main(argv: list[str] | None = None) -> int:
    """Serve until SIGINT/SIGTERM."""
    args = build_parser().parse_args(argv)
    sandbox = MediaPocketSandbox(
        api_key=args.api_key,
        host=args.host,
        port=args.port,
        media_processing_seconds=args.media_processing_seconds,
        dag_action_run_seconds=args.dag_action_run_seconds,
        seed=args.seed,
        latency=args.latency,
        connection_timeout=args.connection_timeout,
        max_body_bytes=args.max_body_bytes,
    )
    if args.fault_rate > 0:
        kinds = {"500": 1.0, "502": 1.0, "503": 1.0, "429": 1.0, "drop": 1.0, "lost": 1.0}
        sandbox.set_faults(FaultConfig(rate=args.fault_rate, kinds=kinds, seed=args.seed))
    stop = threading.Event()

    def _on_signal(signum: int, frame: FrameType | None) -> None:
        stop.set()

    signal.signal(signal.SIGTERM, _on_signal)
    signal.signal(signal.SIGINT, _on_signal)
    with sandbox:
        print(f"Media Pocket sandbox listening on {sandbox.base_url}", flush=True)
        while not stop.wait(0.5):
            pass
    print("Media Pocket sandbox stopped", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
