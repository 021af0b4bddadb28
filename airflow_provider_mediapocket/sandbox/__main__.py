"""Run the sandbox from the command line: ``python -m airflow_provider_mediapocket.sandbox``."""

from __future__ import annotations

import argparse
import signal
import sys
import threading
from types import FrameType

from airflow_provider_mediapocket.sandbox.server import DEFAULT_API_KEY, MediaPocketSandbox
from airflow_provider_mediapocket.sandbox.state import FaultConfig

DESCRIPTION = """\
A local Media Pocket API v2 server for development and tests, no account needed. It answers every
documented endpoint under /api/v2/ (status codes and error texts as the real API), runs media
processing and DAG action runs on timers, and serves read-only HTML pages at /assets/<id> and
/assets/<id>/dag_action_runs/<run id> (where the operators' extra links point). Everything is kept in
memory and lost when it stops (Ctrl-C or SIGTERM).

Point an Airflow connection at it (conn type mediapocket): Base URL http://127.0.0.1:8765 (with the
port), API Key sandbox-api-key (or the --api-key you chose), and on Airflow 3.3.2 Port 8765 too (its
Test button needs it).
"""

EPILOG = """\
example:
  python -m airflow_provider_mediapocket.sandbox --port 8765 --media-processing-seconds 10
  export AIRFLOW_CONN_MEDIAPOCKET_DEFAULT='{"conn_type": "mediapocket", "host": "http://127.0.0.1:8765", \
"password": "sandbox-api-key"}'
"""


def build_parser() -> argparse.ArgumentParser:
    """The command-line options, each explained in ``--help``."""
    parser = argparse.ArgumentParser(
        prog="python -m airflow_provider_mediapocket.sandbox", description=DESCRIPTION, epilog=EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--host", default="127.0.0.1",
                        help="address to listen on (default: %(default)s, this machine only)")
    parser.add_argument("--port", type=int, default=8765,
                        help="TCP port to listen on; 0 picks a free one, printed at start (default: %(default)s)")
    parser.add_argument("--api-key", default=DEFAULT_API_KEY,
                        help="the API key clients must send in X-API-KEY, with every permission; put it in "
                             "the connection's API Key field (default: %(default)s)")
    parser.add_argument("--media-processing-seconds", type=float, default=2.0, metavar="SECONDS",
                        help="how long added media stays 'processing' before it gets its real media type "
                             "(default: %(default)s)")
    parser.add_argument("--dag-action-run-seconds", type=float, default=5.0, metavar="SECONDS",
                        help="how long a started DAG action run takes to finish (default: %(default)s)")
    parser.add_argument("--latency", type=float, default=0.0, metavar="SECONDS",
                        help="seconds every API request waits before it is handled, a stand-in for the "
                             "network round trip (default: %(default)s)")
    parser.add_argument("--fault-rate", type=float, default=0.0, metavar="FRACTION",
                        help="fraction (0 to 1) of API requests that fail at random with 500, 502, 503, 429, "
                             "a dropped connection or a lost answer, to try retries (default: %(default)s)")
    parser.add_argument("--connection-timeout", type=float, default=30.0, metavar="SECONDS",
                        help="seconds before an idle or stalled client connection is closed (default: %(default)s)")
    parser.add_argument("--max-body-bytes", type=int, default=10 * 1024 * 1024, metavar="BYTES",
                        help="largest request body accepted; a larger one gets HTTP 413 (default: %(default)s)")
    parser.add_argument("--seed", type=int, default=None,
                        help="random seed of the faults and run outcomes, for a reproducible session "
                             "(default: none)")
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
