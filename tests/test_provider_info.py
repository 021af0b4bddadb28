"""Provider registration: the metadata validates against Airflow's schema and the CLI sees it."""

from __future__ import annotations

import importlib
import json
import os
import subprocess
import sys
from importlib.metadata import entry_points
from pathlib import Path

import airflow
import jsonschema
import pytest

from airflow_provider_mediapocket import __version__, get_provider_info


def test_provider_info_validates_against_airflow_schema() -> None:
    schema = json.loads((Path(airflow.__file__).parent / "provider_info.schema.json").read_text())
    jsonschema.validate(get_provider_info(), schema)


def test_every_declared_class_and_module_imports() -> None:
    info = get_provider_info()
    kinds = ("hooks", "operators", "sensors", "triggers")
    modules = [m for kind in kinds for item in info.get(kind, []) for m in item["python-modules"]]
    for module in modules:
        importlib.import_module(module)
    for dotted in [*info.get("extra-links", []), info["connection-types"][0]["hook-class-name"]]:
        module, _, name = dotted.rpartition(".")
        assert hasattr(importlib.import_module(module), name), dotted
    assert info["versions"] == [__version__]


def test_entry_points_are_registered() -> None:
    providers = {ep.value for ep in entry_points(group="apache_airflow_provider")}
    assert "airflow_provider_mediapocket:get_provider_info" in providers
    plugins = {ep.value for ep in entry_points(group="pytest11")}
    assert "airflow_provider_mediapocket.sandbox.pytest_plugin" in plugins


@pytest.fixture(scope="module")
def airflow_cli(tmp_path_factory: pytest.TempPathFactory):  # type: ignore[no-untyped-def]
    home = tmp_path_factory.mktemp("airflow-home")
    # Airflow 3.0 prints INFO lines on stdout before the JSON.
    env = {**os.environ, "AIRFLOW_HOME": str(home), "AIRFLOW__CORE__LOAD_EXAMPLES": "False",
           "AIRFLOW__LOGGING__LOGGING_LEVEL": "WARNING"}

    def run(*args: str) -> str:
        done = subprocess.run(
            [sys.executable, "-m", "airflow", *args], env=env, capture_output=True, text=True, timeout=300
        )
        assert done.returncode == 0, done.stderr[-2000:]
        return done.stdout

    return run


def test_cli_lists_provider_and_connection_type(airflow_cli) -> None:  # type: ignore[no-untyped-def]
    providers = json.loads(airflow_cli("providers", "list", "--output", "json"))
    ours = [p for p in providers if p["package_name"] == "airflow-provider-mediapocket"]
    assert ours and ours[0]["version"] == __version__
    hooks = json.loads(airflow_cli("providers", "hooks", "--output", "json"))
    types = {h["connection_type"]: h for h in hooks}
    assert types["mediapocket"]["class"] == "airflow_provider_mediapocket.hooks.mediapocket.MediaPocketHook"


def test_asset_uri_callables_and_notifiers_import() -> None:
    info = get_provider_info()
    dotted = [path for entry in info["asset-uris"] for key, path in entry.items() if key != "schemes"]
    for path in [*dotted, *info["notifications"]]:
        module, _, name = path.rpartition(".")
        assert callable(getattr(importlib.import_module(module), name)), path
