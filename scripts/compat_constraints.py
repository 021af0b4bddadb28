"""Rebuild an Airflow release's constraints file as of the day it was published.

Airflow publishes a pinned constraints file per release (``constraints-<version>/constraints-<python>.txt``
on GitHub); this machine, and CI, reach PyPI but not GitHub. The nearest honest alternative: resolve
``apache-airflow==<version>`` with every package capped at the newest release that PyPI had one day after
the Airflow release, repeat until the set of packages stops changing, and pin the result. The file is
committed under ``constraints/`` so that ``make compat`` installs the same set every time, offline from
this script. Run by a developer when a row is added to the matrix::

    .venv/bin/python scripts/compat_constraints.py 3.1.8
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import subprocess
import sys
import tempfile
import urllib.request
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

from packaging.utils import canonicalize_name
from packaging.version import InvalidVersion, Version

ROOT = Path(__file__).resolve().parent.parent
PYPI = "https://pypi.org/pypi/{}/json"


def releases(name: str) -> dict[str, dt.datetime]:
    with urllib.request.urlopen(PYPI.format(name), timeout=60) as reply:
        data = json.load(reply)
    out = {}
    for version, files in data["releases"].items():
        times = [f["upload_time_iso_8601"] for f in files if not f.get("yanked")]
        if times:
            out[version] = dt.datetime.fromisoformat(min(times).replace("Z", "+00:00"))
    return out


def newest_before(name: str, cutoff: dt.datetime) -> str | None:
    best: Version | None = None
    for text, when in releases(name).items():
        try:
            version = Version(text)
        except InvalidVersion:
            continue
        if when <= cutoff and not version.is_prerelease and (best is None or version > best):
            best = version
    return str(best) if best else None


def resolve(spec: str, caps: dict[str, str]) -> dict[str, str]:
    with tempfile.TemporaryDirectory() as tmp:
        cap_file = Path(tmp) / "caps.txt"
        cap_file.write_text("".join(f"{n}<={v}\n" for n, v in sorted(caps.items())))
        report = Path(tmp) / "report.json"
        subprocess.run(
            [sys.executable, "-m", "pip", "install", "--quiet", "--dry-run", "--ignore-installed",
             "--report", str(report), "-c", str(cap_file), spec],
            check=True,
        )
        installed = json.loads(report.read_text())["install"]
    return {canonicalize_name(i["metadata"]["name"]): i["metadata"]["version"] for i in installed}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("version", help="an Airflow release, e.g. 3.0.6")
    args = parser.parse_args(argv)
    published = releases("apache-airflow")[args.version]
    cutoff = published + dt.timedelta(days=1)
    spec = f"apache-airflow=={args.version}"
    caps: dict[str, str] = {}
    pinned = resolve(spec, caps)
    while True:
        missing = sorted(set(pinned) - set(caps))
        if not missing:
            break
        with ThreadPoolExecutor(16) as pool:
            for name, cap in zip(missing, pool.map(lambda n: newest_before(n, cutoff), missing), strict=True):
                # A package first released after the cutoff keeps today's version: nothing older exists.
                caps[name] = cap or pinned[name]
        pinned = resolve(spec, caps)
    python = f"{sys.version_info.major}.{sys.version_info.minor}"
    target = ROOT / "constraints" / f"airflow-{args.version}-python{python}.txt"
    target.parent.mkdir(exist_ok=True)
    header = (
        f"# apache-airflow {args.version} (published {published:%Y-%m-%d %H:%M} UTC), Python {python}:\n"
        f"# every package at its newest release on PyPI before {cutoff:%Y-%m-%d %H:%M} UTC.\n"
        "# Made by scripts/compat_constraints.py; Airflow's own constraints files are not reachable here.\n"
    )
    target.write_text(header + "".join(f"{n}=={v}\n" for n, v in sorted(pinned.items())))
    print(f"{target.relative_to(ROOT)}: {len(pinned)} packages")
    return 0


if __name__ == "__main__":
    sys.exit(main())
