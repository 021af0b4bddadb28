"""A throwaway ``AIRFLOW_HOME``: its environment, the ``airflow`` command, and ``airflow db migrate`` once.

Airflow reads ``AIRFLOW_HOME`` and every ``AIRFLOW__...`` setting when it is first imported, so every
Airflow process here is a child started with the environment :func:`airflow_env` builds. Both the
``dag.test()`` runs (:mod:`.dag_test`) and the deployments (:mod:`.deployment`) start from it.
"""

from __future__ import annotations

import importlib.util
import json
import os
import sys
from collections.abc import Mapping
from pathlib import Path

from airflow_provider_mediapocket.testing.process import run_child

__all__ = [
    "MIGRATE_TIMEOUT",
    "MigrationError",
    "airflow_command",
    "airflow_env",
    "migrate",
    "prepare_airflow_home",
]

#: Seconds ``airflow db migrate`` may take.
MIGRATE_TIMEOUT = 600.0

_MIGRATED_MARKER = ".mediapocket_testing_migrated"


class MigrationError(RuntimeError):
    """``airflow db migrate`` failed; the message holds the command's exit code and the tail of its output."""


def _package_root() -> Path:
    return Path(__file__).resolve().parents[2]


def _with_pythonpath(env: dict[str, str], *dirs: Path) -> None:
    parts = [p for p in env.get("PYTHONPATH", "").split(os.pathsep) if p]
    for directory in reversed(dirs):
        text = str(directory)
        if text not in parts:
            parts.insert(0, text)
    if parts:
        env["PYTHONPATH"] = os.pathsep.join(parts)


def airflow_env(
    home: Path,
    dags_folder: Path,
    overrides: Mapping[str, str] | None = None,
    *,
    inherit_connections: bool = True,
) -> dict[str, str]:
    """The environment of an Airflow process whose home is ``home`` (SQLite) and dags folder ``dags_folder``.

    A copy of ``os.environ`` without the caller's ``AIRFLOW__...`` settings and ``AIRFLOW_CONFIG``, plus the
    settings for fast, quiet and deterministic runs, plus ``overrides`` (which win: another executor,
    database, ``AIRFLOW_CONN_...``). From a source checkout the provider is put on ``PYTHONPATH``.

    :param home: the ``AIRFLOW_HOME`` (created if missing).
    :param dags_folder: an existing folder of DAG files.
    :param overrides: environment entries set last.
    :param inherit_connections: keep the caller's ``AIRFLOW_CONN_...`` and ``AIRFLOW_VAR_...`` entries
        (a deployment passes False: it defines its own).
    """
    home = Path(home).resolve()
    dags = Path(dags_folder).resolve()
    home.mkdir(parents=True, exist_ok=True)
    if not dags.is_dir():
        raise FileNotFoundError(f"dags folder {dags} does not exist")
    dropped = ("AIRFLOW__",) if inherit_connections else ("AIRFLOW__", "AIRFLOW_CONN_", "AIRFLOW_VAR_")
    env = {k: v for k, v in os.environ.items() if not k.startswith(dropped) and k != "AIRFLOW_CONFIG"}
    env.update(
        {
            "AIRFLOW_HOME": str(home),
            "AIRFLOW_CONFIG": str(home / "airflow.cfg"),
            "AIRFLOW__CORE__DAGS_FOLDER": str(dags),
            "AIRFLOW__CORE__LOAD_EXAMPLES": "False",
            "AIRFLOW__CORE__PLUGINS_FOLDER": str(home / "plugins"),
            "AIRFLOW__CORE__DAGS_ARE_PAUSED_AT_CREATION": "False",
            "AIRFLOW__CORE__UNIT_TEST_MODE": "False",
            "AIRFLOW__DATABASE__SQL_ALCHEMY_CONN": f"sqlite:///{home / 'airflow.db'}",
            "AIRFLOW__LOGGING__BASE_LOG_FOLDER": str(home / "logs"),
            "AIRFLOW__LOGGING__LOGGING_LEVEL": "INFO",
            "AIRFLOW__LOGGING__COLORED_CONSOLE_LOG": "False",
            "AIRFLOW__SCHEDULER__ENABLE_HEALTH_CHECK": "False",
            "PYTHONUNBUFFERED": "1",
            "PYTHONHASHSEED": "0",
            "NO_COLOR": "1",
        }
    )
    root = _package_root()
    if root.name not in ("site-packages", "dist-packages"):
        # Running from a source checkout: make the provider importable by the children and their DAGs.
        _with_pythonpath(env, root)
    if overrides:
        env.update(overrides)
    return env


def airflow_command(*args: str) -> list[str]:
    """``python -m airflow ARGS`` (works on Airflow 3), else the ``airflow`` script beside the interpreter.

    :param args: the CLI arguments, e.g. ``"db", "migrate"`` or ``"triggerer", "--skip-serve-logs"``.
    """
    script = Path(sys.executable).with_name("airflow")
    try:
        if importlib.util.find_spec("airflow.__main__") is not None:
            return [sys.executable, "-m", "airflow", *args]
    except (ImportError, ValueError):
        pass
    if script.exists():
        return [str(script), *args]
    return [sys.executable, "-m", "airflow", *args]


def _migration_stamp(env: Mapping[str, str]) -> dict[str, str]:
    """What a migrated database depends on: the database URL and the installed Airflow version."""
    from importlib import metadata

    version = "unknown"
    for dist in ("apache-airflow-core", "apache-airflow"):
        try:
            version = metadata.version(dist)
            break
        except metadata.PackageNotFoundError:
            continue
    return {"sql_alchemy_conn": env.get("AIRFLOW__DATABASE__SQL_ALCHEMY_CONN", ""), "airflow": version}


def _is_migrated(marker: Path, stamp: Mapping[str, str], env: Mapping[str, str]) -> bool:
    try:
        recorded = json.loads(marker.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return False
    if recorded != dict(stamp):
        return False
    conn = env.get("AIRFLOW__DATABASE__SQL_ALCHEMY_CONN", "")
    if conn.startswith("sqlite:///"):
        # The database file may have been deleted since: then migrate again.
        return Path(conn[len("sqlite:///") :]).exists()
    return True


def migrate(env: Mapping[str, str], *, log_path: Path | None = None, timeout: float = MIGRATE_TIMEOUT) -> float | None:
    """Run ``airflow db migrate`` in ``env`` unless this home's database is migrated already.

    A marker file in ``AIRFLOW_HOME`` records the database URL and the Airflow version it was migrated
    with; a change of either (or a deleted SQLite file) migrates again. Returns the seconds it took, or
    None when it was skipped. Raises :class:`MigrationError` when the command fails or times out.

    :param env: an environment from :func:`airflow_env` (plus any overrides).
    :param log_path: also keep the command's output in this file.
    :param timeout: seconds the command may take.
    """
    marker = Path(env["AIRFLOW_HOME"]) / _MIGRATED_MARKER
    stamp = _migration_stamp(env)
    if _is_migrated(marker, stamp, env):
        return None
    marker.unlink(missing_ok=True)
    cmd = airflow_command("db", "migrate")
    done = run_child(cmd, env, timeout=timeout, cwd=Path(env["AIRFLOW_HOME"]), log_path=log_path)
    if done.timed_out or done.returncode != 0:
        why = f"timed out after {timeout:.0f} s" if done.timed_out else f"failed with exit code {done.returncode}"
        raise MigrationError(f"`{' '.join(cmd)}` {why}:\n{done.output[-8000:]}")
    marker.write_text(json.dumps(stamp, sort_keys=True) + "\n", encoding="utf-8")
    return done.duration


def prepare_airflow_home(
    path: Path,
    dags_folder: Path,
    extra_env: Mapping[str, str] | None = None,
) -> dict[str, str]:
    """Make ``path`` a throwaway ``AIRFLOW_HOME`` (SQLite) reading DAGs from ``dags_folder``, migrated.

    Returns the environment to run Airflow in (see :func:`airflow_env`; ``extra_env`` wins). Runs
    ``airflow db migrate`` in it once; later calls with the same ``path`` skip it (see :func:`migrate`).
    Reuse one home for many runs: migrating takes several seconds.

    :param path: the ``AIRFLOW_HOME``.
    :param dags_folder: an existing folder of DAG files.
    :param extra_env: environment entries set last (``AIRFLOW_CONN_...``, settings).
    """
    env = airflow_env(path, dags_folder, extra_env)
    migrate(env)
    return env
