"""Issue 10, "the first hour in the Airflow UI": the connection form, the Providers page link, the extra links'
targets in the sandbox and the ``ui_base_url`` extra."""

from __future__ import annotations

import json
from importlib.metadata import distribution
from typing import Any

import httpx
import pytest

from airflow_provider_mediapocket import DOCUMENTATION_URL, get_provider_info
from airflow_provider_mediapocket.exceptions import MediaPocketConfigError
from airflow_provider_mediapocket.hooks.mediapocket import MediaPocketHook
from airflow_provider_mediapocket.sandbox import MediaPocketSandbox
from airflow_provider_mediapocket.sandbox.state.runs import RunMessage


def _conn_type() -> dict[str, Any]:
    return dict(get_provider_info()["connection-types"][0])


# ------------------------------------------------------------------------------------- item 1: Port
def test_port_field_asks_to_be_filled_in_for_test_on_3_3_2() -> None:
    """Airflow 3.3.2's Test button sends a stored empty Port as 0 and its API answers "Bad Request"; hiding
    the field does not help (the list's Test sends ``Number(null)``), a filled-in Port does: the form says so."""
    behaviour = _conn_type()["ui-field-behaviour"]
    assert "port" not in behaviour["hidden-fields"]
    assert "3.3.2" in behaviour["relabeling"]["port"]
    assert "443" in behaviour["placeholders"]["port"]


@pytest.mark.parametrize(("host", "port"), [("http://127.0.0.1:8765", 0), ("http://127.0.0.1:8765", 8765),
                                            ("http://127.0.0.1", 8765)])
def test_port_zero_or_repeated_in_the_base_url_is_harmless(
    monkeypatch: pytest.MonkeyPatch, host: str, port: int
) -> None:
    """What the 3.3.2 form stores or sends (port 0, or the Base URL's own port again) gives the same URL."""
    monkeypatch.setenv("AIRFLOW_CONN_MP", json.dumps({
        "conn_type": "mediapocket", "host": host, "password": "k", "port": port,
    }))
    assert MediaPocketHook("mp").get_settings().base_url == "http://127.0.0.1:8765"


# ------------------------------------------------------------------------------------- item 3: docs
def test_documentation_url_is_the_package_index_page() -> None:
    assert DOCUMENTATION_URL == "https://pypi.org/project/airflow-provider-mediapocket/"
    assert get_provider_info()["documentation-url"] == DOCUMENTATION_URL


def test_installed_metadata_carries_the_same_documentation_url() -> None:
    """Airflow 3.3 overrides "documentation-url" with the package's ``Project-URL: Documentation``."""
    urls = distribution("airflow-provider-mediapocket").metadata.get_all("Project-URL") or []
    docs = [url.split(",", 1)[1].strip() for url in urls if url.split(",", 1)[0].strip().lower() == "documentation"]
    assert docs == [DOCUMENTATION_URL]


# ------------------------------------------------------------------------------------- item 4: ui_base_url
def _settings(monkeypatch: pytest.MonkeyPatch, extra: dict[str, Any]) -> Any:
    monkeypatch.setenv("AIRFLOW_CONN_MP", json.dumps({
        "conn_type": "mediapocket", "host": "https://api.example.com", "password": "k", "extra": extra,
    }))
    return MediaPocketHook("mp").get_settings()


def test_ui_base_url_defaults_to_the_base_url(monkeypatch: pytest.MonkeyPatch) -> None:
    settings = _settings(monkeypatch, {})
    assert settings.ui_base_url is None
    assert settings.ui_url == "https://api.example.com"
    assert _settings(monkeypatch, {"ui_base_url": "  "}).ui_url == "https://api.example.com"


def test_ui_base_url_is_used_and_trimmed(monkeypatch: pytest.MonkeyPatch) -> None:
    assert _settings(monkeypatch, {"ui_base_url": "https://app.example.com/dam/"}).ui_url == (
        "https://app.example.com/dam"
    )


@pytest.mark.parametrize("value", ["app.example.com", "ftp://app.example.com", "/assets", "https://", 42,
                                   "https://user:pw@app.example.com"])
def test_bad_ui_base_url_is_refused_naming_the_extra(monkeypatch: pytest.MonkeyPatch, value: Any) -> None:
    with pytest.raises(MediaPocketConfigError, match="'ui_base_url'") as info:
        _settings(monkeypatch, {"ui_base_url": value})
    assert "pw" not in str(info.value)


def test_ui_base_url_is_a_documented_form_field() -> None:
    field = _conn_type()["conn-fields"]["ui_base_url"]
    assert field["label"] == "UI base URL"
    assert "http" in field["description"]


# ------------------------------------------------------------------------------------- item 4: sandbox pages
@pytest.fixture
def sandbox() -> Any:
    with MediaPocketSandbox(api_key="ui-test-key", dag_action_run_seconds=0.05) as running:
        yield running


def _api(sandbox: MediaPocketSandbox) -> httpx.Client:
    return httpx.Client(base_url=sandbox.base_url + "/api/v2", headers={"X-API-KEY": sandbox.api_key})


def test_asset_and_run_pages_show_the_object_status_and_messages(sandbox: MediaPocketSandbox) -> None:
    with _api(sandbox) as api:
        asset = api.post("/assets", json={"title": "Harbour at dawn"}).json()["asset"]
        actions = api.get(f"/assets/{asset['id']}/dag_actions").json()["dag_actions"]
        transcode = next(a for a in actions if a["name"] == "Transcode")
        run = api.post(f"/assets/{asset['id']}/dag_actions/{transcode['id']}").json()["dag_action_run"]
    sandbox.state.advance(1)
    page = httpx.get(f"{sandbox.base_url}/assets/{asset['id']}")
    assert page.status_code == 200
    assert page.headers["content-type"].startswith("text/html")
    assert "Harbour at dawn" in page.text and asset["id"] in page.text
    assert f"Transcode run {run['id']}" in page.text and "completed" in page.text
    run_page = httpx.get(f"{sandbox.base_url}/assets/{asset['id']}/dag_action_runs/{run['id']}")
    assert run_page.status_code == 200
    assert "Harbour at dawn" in run_page.text
    assert "<td class=\"status\">completed</td>" in run_page.text
    for message in ("Set in queue...", "Started processing", f"Processing asset {asset['id']}",
                    "Finished successfully"):
        assert message in run_page.text


def test_pages_escape_every_value(sandbox: MediaPocketSandbox) -> None:
    evil = "<script>alert('x')</script> & \"quotes\""
    asset = sandbox.state.add_asset(title=evil, tags=["<b>tag</b>"])
    page = httpx.get(f"{sandbox.base_url}/assets/{asset['id']}").text
    assert "<script>" not in page and "<b>tag</b>" not in page
    assert "&lt;script&gt;alert(&#x27;x&#x27;)&lt;/script&gt; &amp; &quot;quotes&quot;" in page
    run = sandbox.state.start_run(asset["id"], 1)
    with sandbox.state.lock:
        sandbox.state.store.runs.by_id[int(run["id"])].messages.append(
            RunMessage(999, "<img src=x onerror=alert(1)>", "2026-01-01T00:00:00.000Z")
        )
    run_page = httpx.get(f"{sandbox.base_url}/assets/{asset['id']}/dag_action_runs/{run['id']}").text
    assert "<img" not in run_page and "&lt;img src=x onerror=alert(1)&gt;" in run_page
    assert "<script>" not in run_page


def test_unknown_asset_or_run_page_is_a_404_page(sandbox: MediaPocketSandbox) -> None:
    missing = httpx.get(f"{sandbox.base_url}/assets/nope")
    assert missing.status_code == 404 and "asset not found" in missing.text
    asset = sandbox.state.add_asset(title="a")
    missing_run = httpx.get(f"{sandbox.base_url}/assets/{asset['id']}/dag_action_runs/12345")
    assert missing_run.status_code == 404 and "dag action run not found" in missing_run.text
    assert httpx.post(f"{sandbox.base_url}/assets/{asset['id']}").status_code == 404  # read-only
    assert httpx.get(f"{sandbox.base_url}/elsewhere").json() == {"error": "Not found"}


# ------------------------------------------------------------------------------------- item 8: sandbox CLI
def test_sandbox_cli_help_explains_every_option_and_the_default_key() -> None:
    from airflow_provider_mediapocket.sandbox.__main__ import build_parser
    from airflow_provider_mediapocket.sandbox.server import DEFAULT_API_KEY

    parser = build_parser()
    options = [action for action in parser._actions if action.option_strings and action.dest != "help"]
    assert {action.dest for action in options} >= {"host", "port", "api_key", "media_processing_seconds",
                                                     "dag_action_run_seconds", "latency", "fault_rate", "seed"}
    for action in options:
        assert action.help and len(action.help) > 20, action.dest
    assert parser.get_default("api_key") == DEFAULT_API_KEY == MediaPocketSandbox().api_key == "sandbox-api-key"
    text = parser.format_help()
    assert "/assets/<id>" in text and DEFAULT_API_KEY in text and "Port" in text
