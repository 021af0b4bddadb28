"""`make e2e-ui`: a new user's first hour in the Airflow UI, in a real browser, against the sandbox.

Starts the Media Pocket sandbox and an Airflow deployment (api-server, scheduler, dag-processor, triggerer;
LocalExecutor, SQLite, ``[operators] default_deferrable = True``) on loopback in a throwaway ``AIRFLOW_HOME``
with the harness of ``scripts/e2e_deployment.py``, but *without* the ``mediapocket_default`` connection. Then,
in Chromium driven by Playwright, with real clicks and typing:

1. Admin > Connections > Add Connection: the ``mediapocket_default`` connection through the form (type
   "Media Pocket", Base URL, API Key, Port), saved;
2. the row's Test Connection button: Airflow answers success (on 3.3.2 this needs the Port filled in);
3. the ``mediapocket_ingest`` trigger form with its default params (the manifest in a JSON editor, not
   ``[object Object]``), triggered; the run must succeed;
4. the ``run_dag_action`` task of the first item, opened from the grid (its mapped instances are named after
   the item's title): its log shows each of the run's messages once (logged live by the trigger);
5. its Details tab: both extra links ("Media Pocket asset", "DAG action run") open pages that show the asset
   (title, id) and the run (status, messages).

Screenshots go to ``build/e2e-ui/`` (gitignored). Every process started here (the deployment, the browser,
Playwright's driver) is stopped at the end, on success, failure or Ctrl-C. About 2-3 minutes.

It installs what it needs when missing: Debian's ``chromium`` (``apt-get update`` and ``apt-get install -y
chromium``, as root or with ``sudo -n``) and Playwright from the package index (``pip install -e .[ui]`` into
this Python). Playwright's own browser download is never used: it drives the system's Chromium through
``executable_path``.

Usage::

    python scripts/e2e_ui.py [--run-timeout 300] [--keep-home]
"""

from __future__ import annotations

import argparse
import json
import os
import re
import secrets
import shutil
import subprocess
import sys
import tempfile
import time
import urllib.parse
from pathlib import Path
from typing import Any

from airflow_provider_mediapocket.testing.api import Api
from airflow_provider_mediapocket.testing.common import DeploymentError as E2EFailure
from airflow_provider_mediapocket.testing.common import Interrupted, handle_interrupts, log
from airflow_provider_mediapocket.testing.deployment import Deployment
from airflow_provider_mediapocket.testing.logs import messages_once
from airflow_provider_mediapocket.testing.report import Report, finish

sys.path.insert(0, str(Path(__file__).resolve().parent))
import e2e_deployment as harness

ROOT = harness.ROOT
SHOTS = ROOT / "build" / "e2e-ui"
REPORT = SHOTS / "report.json"
DAG_ID = "mediapocket_ingest"
CONN_ID = "mediapocket_default"
TASK_ID = "run_dag_action"
FIRST_TITLE = "Harbour at dawn"  # the first item of the DAG's default manifest
RUN_MESSAGES = ("Set in queue...", "Started processing", "Processing asset {asset}", "Finished successfully")
CHROMIUM_CANDIDATES = ("/usr/bin/chromium", "/usr/bin/chromium-browser")
CHROMIUM_ARGS = [
    "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
    "--disable-background-networking", "--disable-component-update", "--disable-sync",
]
UI_TIMEOUT_MS = 60_000


# --------------------------------------------------------------------------------------------------------------
# What the test needs, installed when missing
# --------------------------------------------------------------------------------------------------------------
def _as_root(argv: list[str]) -> list[str]:
    if os.geteuid() == 0:
        return argv
    if shutil.which("sudo"):
        return ["sudo", "-n", *argv]
    raise E2EFailure(f"need root to run {' '.join(argv)}: install Debian's chromium first")


def ensure_chromium() -> str:
    """The path of the system's Chromium; installs Debian's ``chromium`` package when there is none."""
    for path in CHROMIUM_CANDIDATES:
        if os.access(path, os.X_OK):
            return path
    if not shutil.which("apt-get"):
        raise E2EFailure("no Chromium at /usr/bin/chromium and no apt-get to install it")
    log("installing Debian's chromium (apt-get update; apt-get install -y chromium)")
    env = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}
    for argv in (["apt-get", "update"], ["apt-get", "install", "-y", "--no-install-recommends", "chromium"]):
        done = subprocess.run(_as_root(argv), env=env, stdin=subprocess.DEVNULL, capture_output=True, text=True,
                              timeout=900, check=False)
        if done.returncode != 0:
            raise E2EFailure(f"{' '.join(argv)} exited {done.returncode}:\n{done.stdout[-2000:]}{done.stderr[-2000:]}")
    for path in CHROMIUM_CANDIDATES:
        if os.access(path, os.X_OK):
            return path
    raise E2EFailure("apt-get installed chromium but there is no /usr/bin/chromium")


def ensure_playwright() -> None:
    """Playwright (the Python package only) in this interpreter, from the project's ``ui`` extra."""
    try:
        import playwright.sync_api  # noqa: F401
    except ImportError:
        log("installing Playwright into this Python (pip install -e .[ui]; no browser download)")
        subprocess.run([sys.executable, "-m", "pip", "install", "--quiet", "-e", f"{ROOT}[ui]"], check=True,
                       stdin=subprocess.DEVNULL, timeout=900)


# --------------------------------------------------------------------------------------------------------------
# The browser session
# --------------------------------------------------------------------------------------------------------------
class Session:
    """One Chromium page on the Airflow UI, with numbered screenshots."""

    def __init__(self, page: Any, base_url: str) -> None:
        self.page = page
        self.base_url = base_url
        self.shots: list[str] = []

    def shot(self, name: str, page: Any = None) -> None:
        path = SHOTS / f"{len(self.shots) + 1:02d}-{name}.png"
        (page or self.page).screenshot(path=str(path), full_page=True)
        self.shots.append(path.name)
        log(f"screenshot {path.relative_to(ROOT)}")

    def goto(self, path: str) -> None:
        self.page.goto(self.base_url + path)


def add_connection(ui: Session, sandbox_url: str, api_key: str, report: Report) -> None:
    page = ui.page
    ui.goto("/connections")
    page.get_by_role("button", name="Add Connection").click()
    page.locator("input[name=connection_id]").click()
    page.keyboard.type(CONN_ID)
    page.get_by_role("combobox").first.click()
    page.keyboard.type("Media Pocket")
    page.get_by_role("option", name="Media Pocket", exact=True).click()
    host = page.locator("input[name=host]")
    host.click()
    page.keyboard.type(sandbox_url)
    page.locator("input[name=password]").click()
    page.keyboard.type(api_key)
    port = page.locator("input[name=port]")
    port.click()
    page.keyboard.type(sandbox_url.rsplit(":", 1)[1])
    for label in ("Base URL", "API Key", "Port (fill in for Test on Airflow 3.3.2)"):
        if not page.get_by_text(label, exact=True).count():
            raise E2EFailure(f"the connection form has no field labelled {label!r}")
    ui.shot("connection-form")
    with page.expect_response(lambda r: r.url.endswith("/api/v2/connections") and r.request.method == "POST") as saved:
        page.get_by_role("button", name="Save").click()
    if saved.value.status != 201:
        raise E2EFailure(f"saving the connection: HTTP {saved.value.status} {saved.value.text()[:500]}")
    page.get_by_role("cell", name=CONN_ID).wait_for()
    ui.shot("connection-saved")
    report.add(f"connection {CONN_ID} added through the form (Base URL {sandbox_url}, API Key, Port)")


def test_connection(ui: Session, report: Report) -> None:
    page = ui.page
    with page.expect_response(lambda r: r.url.endswith("/api/v2/connections/test")) as tested:
        page.get_by_role("button", name="Test Connection").click()
    body = tested.value.json() if tested.value.ok else tested.value.text()
    if tested.value.status != 200 or not isinstance(body, dict) or body.get("status") is not True:
        ui.shot("connection-test-failed")
        raise E2EFailure(f"Test Connection: HTTP {tested.value.status} {body}")
    page.get_by_text("Test Connection Successful").first.wait_for()
    ui.shot("connection-test-success")
    report.add(f"Test Connection: success ({body.get('message')!r})")


def trigger_dag(ui: Session, report: Report) -> str:
    page = ui.page
    ui.goto(f"/dags/{DAG_ID}")
    page.get_by_role("button", name="Trigger").first.click()
    page.get_by_test_id("trigger-dag-submit").wait_for()
    page.get_by_text(FIRST_TITLE).first.wait_for()  # the manifest, shown as JSON in the editor
    dialog = page.get_by_role("dialog").inner_text()
    if "[object Object]" in dialog:
        raise E2EFailure("the trigger form shows [object Object] for the manifest")
    ui.shot("trigger-form")
    page.get_by_test_id("trigger-dag-submit").click()
    page.wait_for_url(re.compile(rf".*/dags/{DAG_ID}/runs/[^/]+$"), timeout=UI_TIMEOUT_MS)
    run_id = urllib.parse.unquote(page.url.rsplit("/runs/", 1)[1])
    report.add(f"triggered {DAG_ID} from its trigger form with the default params: run {run_id}")
    return run_id


def wait_for_run(ui: Session, api: Api, run_id: str, timeout: float, alive: Any, report: Report) -> None:
    started = time.monotonic()
    state = api.wait_run(DAG_ID, run_id, timeout=timeout, alive=alive)
    ui.page.reload()
    ui.page.get_by_text(TASK_ID).first.wait_for()
    ui.shot(f"run-{state}")
    if state != "success":
        tis = api.task_instances(DAG_ID, run_id)
        raise E2EFailure(f"run {run_id} ended {state}: "
                         + ", ".join(f"{t['task_id']}[{t['map_index']}]={t['state']}" for t in tis))
    report.add(f"run {run_id}: success after {time.monotonic() - started:.0f}s")


def open_task(ui: Session, run_id: str, report: Report) -> None:
    """The run's task (its list of mapped instances), then the first instance, found by the item's title."""
    page = ui.page
    ui.goto(f"/dags/{DAG_ID}/runs/{urllib.parse.quote(run_id, safe='')}/tasks/{TASK_ID}/mapped")
    page.get_by_role("link", name=FIRST_TITLE, exact=True).first.wait_for()
    ui.shot("mapped-task-instances")
    page.get_by_role("link", name=FIRST_TITLE, exact=True).first.click()
    page.wait_for_url(re.compile(rf".*/tasks/{TASK_ID}/mapped/\d+.*"), timeout=UI_TIMEOUT_MS)
    page.get_by_text(f"{TASK_ID} [{FIRST_TITLE}]").first.wait_for()
    report.add(f"opened {TASK_ID} [{FIRST_TITLE}] from the grid (mapped instances named after the item)")


def check_log(ui: Session, asset_id: str, dag_run_id: str, report: Report) -> None:
    page = ui.page
    page.get_by_text("Logs", exact=True).first.click()
    last = f"DAG action run {dag_run_id}: {RUN_MESSAGES[-1]}"
    page.get_by_text(last).first.wait_for(timeout=UI_TIMEOUT_MS)
    text = page.locator("body").inner_text()
    ui.shot("task-log")
    lines = [f"DAG action run {dag_run_id}: {message.format(asset=asset_id)} (at " for message in RUN_MESSAGES]
    counts = messages_once(text, lines, "the task log (each run message with its time)")
    report.add(f"task log shows each of the run's {len(counts)} messages once, with its own time")


def check_links(ui: Session, context: Any, asset_id: str, dag_run_id: str, report: Report) -> None:
    page = ui.page
    page.get_by_text("Details", exact=True).first.click()
    page.get_by_text("Extra Links").first.wait_for()
    ui.shot("task-details-extra-links")
    expected = {
        "Media Pocket asset": (f"/assets/{asset_id}", [FIRST_TITLE, asset_id, f"run {dag_run_id}"]),
        "DAG action run": (f"/assets/{asset_id}/dag_action_runs/{dag_run_id}",
                           [FIRST_TITLE, "completed", *(m.format(asset=asset_id) for m in RUN_MESSAGES)]),
    }
    for name, (path, needles) in expected.items():
        link = page.get_by_role("link", name=name, exact=True)
        href = link.get_attribute("href") or ""
        if not href.endswith(path):
            raise E2EFailure(f"extra link {name!r} points at {href!r}, expected .../{path}")
        with context.expect_page() as opened:
            link.click()
        target = opened.value
        target.wait_for_load_state()
        body = target.locator("body").inner_text()
        ui.shot("link-" + name.lower().replace(" ", "-"), target)
        missing = [needle for needle in needles if needle not in body]
        if missing or "Not found" in body:
            raise E2EFailure(f"extra link {name!r} ({href}) opened a page without {missing}: {body[:500]}")
        target.close()
    report.add(f"both extra links open pages showing the asset ({FIRST_TITLE}, {asset_id}) and run "
                  f"{dag_run_id} (status and messages)")


def first_item_ids(api: Api, run_id: str) -> tuple[str, str]:
    """(asset id, DAG action run id) the first mapped run_dag_action pushed to XCom."""
    base = f"{api.run_path(DAG_ID, run_id)}/taskInstances/{TASK_ID}/xcomEntries"
    values = []
    for key in ("asset_id", "dag_action_run_id"):
        value = api.ok("GET", f"{base}/{key}?map_index=0")["value"]
        values.append(json.loads(value) if isinstance(value, str) and value.startswith('"') else str(value))
    return values[0], values[1]


def browse(args: argparse.Namespace, chromium: str, home: Path, api: Api, deployment: Deployment,
           sandbox_url: str, api_key: str, report: Report) -> list[str]:
    from playwright.sync_api import sync_playwright

    profile = Path(tempfile.mkdtemp(prefix="e2e-ui-chromium-", dir=home))
    with sync_playwright() as playwright:
        context = playwright.chromium.launch_persistent_context(
            str(profile), executable_path=chromium, headless=True, args=CHROMIUM_ARGS,
            viewport={"width": 1400, "height": 1000},
        )
        try:
            context.set_default_timeout(UI_TIMEOUT_MS)
            ui = Session(context.new_page(), api.base_url)
            try:
                add_connection(ui, sandbox_url, api_key, report)
                test_connection(ui, report)
                run_id = trigger_dag(ui, report)
                wait_for_run(ui, api, run_id, args.run_timeout, deployment.check_alive, report)
                asset_id, dag_run_id = first_item_ids(api, run_id)
                open_task(ui, run_id, report)
                check_log(ui, asset_id, dag_run_id, report)
                check_links(ui, context, asset_id, dag_run_id, report)
            except Exception:
                try:
                    ui.shot("failure")
                except Exception as exc:
                    log(f"no failure screenshot: {exc}")
                raise
            return ui.shots
        finally:
            context.close()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--run-timeout", type=float, default=300.0, help="max seconds for the DAG run")
    parser.add_argument("--keep-home", action="store_true", help="keep the throwaway AIRFLOW_HOME")
    parser.add_argument("--report", type=Path, default=REPORT, help=f"JSON report (default {REPORT})")
    args = parser.parse_args(argv)
    handle_interrupts()

    report = Report("e2e-ui")
    code, error = 1, None
    t0 = time.monotonic()
    home = Path(tempfile.mkdtemp(prefix="mediapocket-e2e-ui-"))
    try:
        chromium = ensure_chromium()
        ensure_playwright()
        report.add(f"browser: {chromium} (system Chromium, driven by Playwright)", browser=chromium)
        shutil.rmtree(SHOTS, ignore_errors=True)
        SHOTS.mkdir(parents=True)
        # Without the connection: the user adds it in the form.
        api_key = f"e2e-ui-key-{secrets.token_hex(8)}"
        deployment, sandbox = harness.prepare(
            home, api_key, connection=False, overrides={"AIRFLOW__CORE__TEST_CONNECTION": "Enabled"}
        )
        try:
            api = harness.start(deployment, sandbox, report,
                                sandbox_options={"media_processing_seconds": 8, "dag_action_run_seconds": 6})
            try:
                shots = browse(args, chromium, home, api, deployment, sandbox.base_url, api_key, report)
            finally:
                report.add("screenshots in build/e2e-ui/: " + ", ".join(sorted(p.name for p in SHOTS.glob("*.png"))))
            harness.key_absent(deployment, api_key, report)
            report.add(f"{len(shots)} screenshots taken", screenshots=shots)
            code = 0
        finally:
            if harness.stop(deployment, report) and code == 0:
                code, error = 1, "processes left running after the stop"
            if code != 0:
                deployment.print_tails(40)
    except E2EFailure as exc:
        error = str(exc)
        print(f"\nE2E-UI FAILED: {exc}", flush=True)
    except Interrupted as exc:
        error = f"interrupted ({exc})"
        print(f"\nE2E-UI INTERRUPTED ({exc})", flush=True)
        code = 130
    except Exception as exc:  # a Playwright timeout names the selector that did not appear
        error = f"{type(exc).__name__}: {exc}"
        print(f"\nE2E-UI FAILED: {error}", flush=True)
    finally:
        report.add(f"total wall time: {time.monotonic() - t0:.1f}s")
        finish(report, code, home, keep_home=args.keep_home, path=args.report, error=error)
    return code


if __name__ == "__main__":
    sys.exit(main())
