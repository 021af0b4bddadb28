"""``make compat``: the provider against the latest patch of every Airflow 3.x it supports.

Each row gets its own venv under ``build/compat/`` (inside the clone; nothing is cached elsewhere):
``apache-airflow==<version>`` installed with ``constraints/airflow-<version>-python<X.Y>.txt`` (the
release's dependency set, see ``scripts/compat_constraints.py``), then this package with its ``dev``
extra as a user adds a provider to a constrained install (pip upgrades only what our floors need).
Then the hook, operator, sensor, trigger, notifier and asset tests and the example DAGs under
``dag.test()`` (``mediapocket_ingest`` with its asset events and the project-downstream DAG, and
``mediapocket_dag_action``) run in it. Rows run two at a time (the CI machine has two cores). Tests of
features a version lacks are marked ``requires_airflow`` and listed by name as not applicable, never
counted as passes.
Writes ``build/compat/report.json`` and exits non-zero if any row failed.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
BUILD = ROOT / "build" / "compat"
VERSIONS = ("3.0.6", "3.1.8", "3.2.2", "3.3.2")
TESTS = ("tests/hooks", "tests/operators", "tests/sensors", "tests/triggers", "tests/notifications", "tests/assets",
         "tests/test_provider_info.py", "tests/e2e/test_example_dags.py", "tests/e2e/test_asset_events.py")
#: pip's cache, shared by the rows, inside the clone (pip would otherwise write to ~/.cache/pip).
PIP_CACHE = BUILD / "pip-cache"
PYTHON = f"{sys.version_info.major}.{sys.version_info.minor}"


def log(message: str) -> None:
    print(f"[compat {time.strftime('%H:%M:%S')}] {message}", flush=True)


def run_row(version: str) -> dict[str, object]:
    began = time.monotonic()
    row_dir = BUILD / version
    venv = row_dir / "venv"
    pip = [str(venv / "bin" / "python"), "-m", "pip", "--quiet", "--disable-pip-version-check"]
    constraints = ROOT / "constraints" / f"airflow-{version}-python{PYTHON}.txt"
    out = row_dir / "output.txt"
    row: dict[str, object] = {"airflow": version, "python": PYTHON}
    if not constraints.exists():
        row.update(result="error", detail=f"no constraints file {constraints.relative_to(ROOT)}")
        return row
    shutil.rmtree(row_dir, ignore_errors=True)
    row_dir.mkdir(parents=True)
    with out.open("w") as sink:
        def step(argv: list[str], **kwargs: object) -> int:
            sink.write(f"$ {' '.join(argv)}\n")
            sink.flush()
            return subprocess.run(argv, stdout=sink, stderr=subprocess.STDOUT, **kwargs).returncode  # type: ignore[call-overload]

        # Airflow itself stays at the row's release while our extras are added (pip would otherwise be
        # free to upgrade it to satisfy an optional provider's newer floor).
        airflow_pins = row_dir / "airflow-pins.txt"
        airflow_pins.write_text("".join(
            line for line in constraints.read_text().splitlines(keepends=True)
            if line.startswith(("apache-airflow==", "apache-airflow-core==", "apache-airflow-task-sdk=="))
        ))
        steps = [
            [sys.executable, "-m", "venv", str(venv)],
            [*pip, "install", "--upgrade", "pip"],
            [*pip, "install", "-c", str(constraints), f"apache-airflow=={version}"],
            [*pip, "install", "-c", str(airflow_pins), "-e", f"{ROOT}[dev]"],
        ]
        for argv in steps:
            if step(argv, env={**os.environ, "PIP_CACHE_DIR": str(PIP_CACHE)}) != 0:
                row.update(result="error", detail=f"install failed: {' '.join(argv[-2:])}",
                           seconds=round(time.monotonic() - began))
                return row
        installed = time.monotonic()
        with tempfile.TemporaryDirectory(prefix=f"compat-{version}-") as home:
            env = {**os.environ, "AIRFLOW_HOME": home, "AIRFLOW__CORE__LOAD_EXAMPLES": "False"}
            junit = row_dir / "junit.xml"
            code = step([str(venv / "bin" / "python"), "-m", "pytest", "-q", "-rfEs", "-p", "no:cacheprovider",
                         f"--junitxml={junit}", *TESTS], cwd=ROOT, env=env)
    text = out.read_text()
    summary = re.findall(r"^=* ?(\d+ (?:passed|failed|error).*) in [\d.]+s", text, re.MULTILINE)
    not_applicable = sorted(set(re.findall(r"^SKIPPED \[\d+\] (\S+): (needs Airflow .*)$", text, re.MULTILINE)))
    row.update(
        result="pass" if code == 0 else "fail",
        summary=summary[-1] if summary else "no summary",
        failed=re.findall(r"^FAILED (\S+)", text, re.MULTILINE),
        not_applicable=[f"{where}: {why}" for where, why in not_applicable],
        install_seconds=round(installed - began),
        seconds=round(time.monotonic() - began),
    )
    return row


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="Run the provider's tests against each Airflow 3.x.")
    parser.add_argument("versions", nargs="*", default=list(VERSIONS))
    parser.add_argument("--jobs", type=int, default=2)
    args = parser.parse_args(argv)
    BUILD.mkdir(parents=True, exist_ok=True)
    began = time.monotonic()
    log(f"Airflow {', '.join(args.versions)} on Python {PYTHON}, {args.jobs} at a time; output in {BUILD}")
    with ThreadPoolExecutor(args.jobs) as pool:
        rows = list(pool.map(run_row, args.versions))
    report = {"seconds": round(time.monotonic() - began), "rows": rows}
    (BUILD / "report.json").write_text(json.dumps(report, indent=2))
    for row in rows:
        log(f"Airflow {row['airflow']}: {str(row['result']).upper()} - {row.get('summary', row.get('detail'))}"
            f" ({row.get('seconds', '?')} s)")
        for name in row.get("failed", []):  # type: ignore[attr-defined]
            log(f"    failed: {name}")
        for line in row.get("not_applicable", []):  # type: ignore[attr-defined]
            log(f"    n/a: {line}")
    ok = all(row["result"] == "pass" for row in rows)
    log(f"RESULT: {'PASS' if ok else 'FAIL'} in {report['seconds']} s")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
