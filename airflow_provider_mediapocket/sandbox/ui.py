"""Read-only HTML pages of the sandbox, the targets of the operators' extra links.

The real Media Pocket UI's routes are not documented; the sandbox serves the routes the links use by
default (``<base URL>/assets/<id>`` and ``<base URL>/assets/<id>/dag_action_runs/<run id>``) so that
the links lead somewhere in development. No API key is needed: the sandbox is a local test server, and
these pages only read. Every value is HTML-escaped (titles and run messages are user data).
"""

from __future__ import annotations

import html
import re
from typing import Any
from urllib.parse import unquote

from airflow_provider_mediapocket.sandbox.state import ApiError, SandboxState

ASSET_PAGE = re.compile(r"/assets/(?P<id>[^/]+)/?")
RUN_PAGE = re.compile(r"/assets/(?P<id>[^/]+)/dag_action_runs/(?P<run>[^/]+)/?")
ASSET_FIELDS = ("id", "title", "status", "media_type", "external_id", "original_filename", "tags", "project_id",
                "created_date")


def _e(value: Any) -> str:
    if isinstance(value, (list, tuple)):
        value = ", ".join(str(item) for item in value)
    return html.escape("" if value is None else str(value), quote=True)


def _page(title: str, body: str, status: int = 200) -> tuple[int, bytes]:
    text = (
        "<!DOCTYPE html>\n<html lang=\"en\"><head><meta charset=\"utf-8\">"
        f"<title>{_e(title)} - Media Pocket sandbox</title></head>\n<body>\n"
        f"<p>Media Pocket sandbox (read-only)</p>\n<h1>{_e(title)}</h1>\n{body}\n</body></html>\n"
    )
    return status, text.encode()


def _table(rows: list[tuple[str, Any]]) -> str:
    cells = "".join(f"<tr><th>{_e(name)}</th><td class=\"{_e(name)}\">{_e(value)}</td></tr>" for name, value in rows)
    return f"<table>{cells}</table>"


def _messages(run: dict[str, Any]) -> str:
    items = "".join(
        f"<li><time>{_e(m.get('created_at'))}</time> {_e(m.get('message'))}</li>"
        for m in run.get("dag_action_run_messages", [])
    )
    return f"<h2>Messages</h2>\n<ol class=\"messages\">{items}</ol>" if items else "<h2>Messages</h2>\n<p>none</p>"


def asset_page(state: SandboxState, asset_id: str) -> tuple[int, bytes]:
    """The asset (its fields and its DAG action runs, newest first)."""
    with state.lock:
        store = state.store
        store.clock.tick()
        asset = store.assets.get(asset_id).to_json()
        runs = store.runs.of(asset_id)
    rows = [(name, asset.get(name)) for name in ASSET_FIELDS]
    run_rows = "".join(
        f"<li><a href=\"/assets/{_e(asset_id)}/dag_action_runs/{_e(run['id'])}\">"
        f"{_e((run.get('dag_action') or {}).get('name'))} run {_e(run['id'])}</a>: "
        f"<span class=\"status\">{_e(run.get('status'))}</span></li>"
        for run in runs
    )
    body = _table(rows) + "\n<h2>DAG action runs</h2>\n" + (f"<ul>{run_rows}</ul>" if run_rows else "<p>none</p>")
    return _page(f"Asset {asset.get('title') or asset_id}", body)


def run_page(state: SandboxState, asset_id: str, run_id: str) -> tuple[int, bytes]:
    """One DAG action run of an asset: its action, status and messages."""
    with state.lock:
        store = state.store
        store.clock.tick()
        asset = store.assets.get(asset_id).to_json()
        run = next((r for r in store.runs.of(asset_id) if str(r["id"]) == run_id), None)
    if run is None:
        raise ApiError(404, "dag action run not found")
    name = (run.get("dag_action") or {}).get("name") or "DAG action"
    rows = [
        ("asset", f"{asset.get('title')} ({asset_id})"),
        ("dag_action", name),
        ("run", run["id"]),
        ("status", run.get("status")),
        ("created_at", run.get("created_at")),
    ]
    body = (
        _table(rows) + f"\n<p><a href=\"/assets/{_e(asset_id)}\">Back to the asset</a></p>\n" + _messages(run)
    )
    return _page(f"{name} run {run['id']} on asset {asset.get('title') or asset_id}", body)


def render(state: SandboxState, path: str) -> tuple[int, bytes] | None:
    """The HTML page for ``path`` (status, body), or ``None`` when ``path`` is not a page."""
    try:
        match = RUN_PAGE.fullmatch(path)
        if match:
            return run_page(state, unquote(match["id"]), unquote(match["run"]))
        match = ASSET_PAGE.fullmatch(path)
        if match:
            return asset_page(state, unquote(match["id"]))
    except ApiError as err:
        return _page("Not found", f"<p>{_e(err.message)}</p>", err.status)
    return None
