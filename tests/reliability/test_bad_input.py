"""Bad input is refused before anything is sent, with an error that names the parameter.

One row per case: the operator, sensor, hook call or connection with one bad value. Templated fields
are rendered first (as Airflow does before ``execute``), then the task runs. Each row records where
the value is refused: ``init`` (the constructor, e.g. for non-templated numbers) or ``execute`` (after
rendering). Every refusal must be a MediaPocketValidationError or MediaPocketConfigError whose message
names the parameter in quotes and says what is wrong, and the sandbox must have seen no request at all.
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import timedelta
from typing import Any

import pytest

from airflow_provider_mediapocket.exceptions import MediaPocketConfigError, MediaPocketValidationError
from airflow_provider_mediapocket.hooks.mediapocket import MediaPocketHook
from airflow_provider_mediapocket.operators.mediapocket import (
    MediaPocketAddCommentOperator,
    MediaPocketAddMediaOperator,
    MediaPocketAssignAssetOperator,
    MediaPocketBulkIngestOperator,
    MediaPocketCreateAssetOperator,
    MediaPocketCreateProjectOperator,
    MediaPocketStartDagActionOperator,
    MediaPocketTrashAssetOperator,
    MediaPocketUpdateAssetOperator,
)
from airflow_provider_mediapocket.sandbox import MediaPocketSandbox
from airflow_provider_mediapocket.sandbox.pytest_plugin import sandbox_as_connection
from airflow_provider_mediapocket.sensors.mediapocket import MediaPocketAssetSensor, MediaPocketDagActionRunSensor
from tests.triggers._support import make_context

INVALID = MediaPocketValidationError
CONFIG = MediaPocketConfigError
PARAMS = {"blank": "   ", "tags": ["a", "b"], "empty": ""}  # DAG params the templated rows render
URL = "https://cdn.example.com/clips/a.mp4"
BAD_CONN = "mp_bad"


@dataclass(frozen=True)
class Bad:
    id: str
    make: Callable[[], Any]  # the operator, sensor or hook holding the bad value
    param: str  # the name the message must quote
    says: str  # what the message must say is wrong
    at: str = "execute"  # where it is refused: "init" (constructor) or "execute" (after rendering / on use)
    error: type[Exception] = INVALID
    use: Callable[[Any], Any] | None = None  # for a hook: the call that must refuse it
    conn: dict[str, Any] | None = field(default=None)  # the connection BAD_CONN for this row


def create(**kwargs: Any) -> MediaPocketCreateAssetOperator:
    return MediaPocketCreateAssetOperator(task_id="create", **{"title": "ok", **kwargs})


def start(**kwargs: Any) -> MediaPocketStartDagActionOperator:
    return MediaPocketStartDagActionOperator(task_id="start", **{"asset_id": "A1", "deferrable": False, **kwargs})


def run_sensor(**kwargs: Any) -> MediaPocketDagActionRunSensor:
    return MediaPocketDagActionRunSensor(
        task_id="wait_run", **{"asset_id": "A1", "dag_action_run_id": "1", "deferrable": False, **kwargs}
    )


def bulk(**kwargs: Any) -> MediaPocketBulkIngestOperator:
    return MediaPocketBulkIngestOperator(task_id="bulk", **kwargs)


def item(n: int, **kwargs: Any) -> dict[str, Any]:
    return {"title": f"t{n}", "file_url": f"https://cdn.example.com/{n}.jpg", "external_id": f"e{n}", **kwargs}


def on_conn(**conn: Any) -> dict[str, Any]:
    return {"conn_type": "mediapocket", "host": "{sandbox}", "password": "{key}", **conn}


def with_bad_conn() -> MediaPocketCreateAssetOperator:
    return create(mediapocket_conn_id=BAD_CONN)


hook = MediaPocketHook

# fmt: off
CASES = [
    # --- MediaPocketCreateAssetOperator ------------------------------------------------------------------------
    Bad("title-too-long", lambda: create(title="{{ 'x' * 256 }}"), "title", "maximum is 255"),
    Bad("title-empty", lambda: create(title=""), "title", "must not be empty"),
    Bad("title-whitespace-rendered", lambda: create(title="{{ params.blank }}"), "title", "must not be empty"),
    Bad("title-none", lambda: create(title=None), "title", "is required"),
    Bad("tags-not-a-list", lambda: create(tags="a,b"), "tags", "valid list"),
    Bad("tags-rendered-to-a-string", lambda: create(tags="{{ params.tags }}"), "tags", "valid list"),
    Bad("tag-not-a-string", lambda: create(tags=["ok", 7]), "tags.1", "valid string"),
    Bad("media-type-image", lambda: create(media_type="image"), "media_type", "'article'"),
    Bad("description-not-a-string", lambda: create(description=42), "description", "valid string"),
    Bad("external-id-empty", lambda: create(external_id="{{ params.empty }}"), "external_id", "must not be empty"),
    Bad("file-url-ftp", lambda: create(file_url="ftp://x"), "file_url", "not an absolute http(s) URL"),
    Bad("file-url-local-path", lambda: create(file_url="/local/file.jpg"), "file_url", "not an absolute http(s) URL"),
    Bad("file-url-without-file-name", lambda: create(file_url="https://cdn.example.com/"), "filename",
        "cannot be derived"),
    Bad("filename-without-file-url", lambda: create(filename="a.jpg"), "filename", "give it with file_url"),
    Bad("s3-key-without-project", lambda: create(s3_key="in/a.jpg"), "s3_key", "needs project_id"),
    Bad("file-url-and-s3-key", lambda: create(project_id="P1", file_url=URL, s3_key="in/a.jpg"), "s3_key",
        "not both"),
    Bad("project-id-whitespace", lambda: create(project_id="  "), "project_id", "must not be empty"),
    # --- add media, assign, update, trash ------------------------------------------------------------------------
    Bad("add-media-asset-id-empty", lambda: MediaPocketAddMediaOperator(task_id="m", asset_id="", file_url=URL),
        "asset_id", "must not be empty"),
    Bad("add-media-filename-blank",
        lambda: MediaPocketAddMediaOperator(task_id="m", asset_id="A1", file_url=URL, filename=" "),
        "filename", "must not be empty"),
    Bad("assign-project-id-empty", lambda: MediaPocketAssignAssetOperator(task_id="a", asset_id="A1", project_id=""),
        "project_id", "must not be empty"),
    Bad("assign-asset-id-none", lambda: MediaPocketAssignAssetOperator(task_id="a", asset_id=None, project_id="P1"),
        "asset_id", "got None"),
    Bad("update-without-any-field", lambda: MediaPocketUpdateAssetOperator(task_id="u", asset_id="A1"),
        "title", "give at least one"),
    Bad("update-title-too-long", lambda: MediaPocketUpdateAssetOperator(task_id="u", asset_id="A1", title="x" * 300),
        "title", "maximum is 255"),
    Bad("update-asset-id-negative", lambda: MediaPocketUpdateAssetOperator(task_id="u", asset_id=-1, title="t"),
        "asset_id", "must not be negative"),
    Bad("trash-asset-id-whitespace", lambda: MediaPocketTrashAssetOperator(task_id="t", asset_id=" \t"),
        "asset_id", "must not be empty"),
    # --- projects and comments -----------------------------------------------------------------------------------
    Bad("project-title-too-long", lambda: MediaPocketCreateProjectOperator(task_id="p", title="p" * 256),
        "title", "maximum is 255"),
    Bad("project-parent-empty", lambda: MediaPocketCreateProjectOperator(task_id="p", title="p", parent_project_id=""),
        "parent_project_id", "must not be empty"),
    Bad("comment-empty", lambda: MediaPocketAddCommentOperator(task_id="c", comment="", asset_id="A1"),
        "comment", "must not be empty"),
    Bad("comment-without-target", lambda: MediaPocketAddCommentOperator(task_id="c", comment="hi"),
        "asset_id", "give exactly one"),
    Bad("comment-two-targets",
        lambda: MediaPocketAddCommentOperator(task_id="c", comment="hi", asset_id="A1", project_id="P1"),
        "project_id", "give exactly one"),
    Bad("comment-both-targets-rendered-empty",
        lambda: MediaPocketAddCommentOperator(task_id="c", comment="hi", asset_id="", project_id=""),
        "asset_id", "give exactly one (got asset_id='', project_id='')"),
    # --- MediaPocketStartDagActionOperator -----------------------------------------------------------------------
    Bad("start-asset-id-empty", lambda: start(asset_id="{{ params.empty }}", dag_action_id=1), "asset_id",
        "must not be empty"),
    Bad("start-id-and-name", lambda: start(dag_action_id=1, dag_action_name="Transcode"), "dag_action_id",
        "give exactly one"),
    Bad("start-neither-id-nor-name", lambda: start(), "dag_action_name", "give exactly one"),
    Bad("start-dag-action-id-negative", lambda: start(dag_action_id=-3), "dag_action_id", "must not be negative"),
    Bad("start-dag-action-name-blank", lambda: start(dag_action_name="{{ params.blank }}"), "dag_action_name",
        "empty"),
    Bad("start-poll-interval-zero", lambda: start(dag_action_id=1, poll_interval=0), "poll_interval",
        "positive number", at="init"),
    Bad("start-poll-interval-negative", lambda: start(dag_action_id=1, poll_interval=-5), "poll_interval",
        "positive number", at="init"),
    Bad("start-timeout-zero", lambda: start(dag_action_id=1, timeout=0), "timeout", "positive number", at="init"),
    Bad("start-timeout-negative", lambda: start(dag_action_id=1, timeout=timedelta(seconds=-5)), "timeout",
        "positive number", at="init"),
    Bad("start-statuses-overlap", lambda: start(dag_action_id=1, success_statuses=["done"], failure_statuses=["DONE"]),
        "success_statuses", "both success and failure", at="init"),
    Bad("start-success-statuses-empty", lambda: start(dag_action_id=1, success_statuses=[]), "success_statuses",
        "at least one status", at="init"),
    Bad("start-failure-status-blank", lambda: start(dag_action_id=1, failure_statuses=["failed", ""]),
        "failure_statuses", "non-empty string", at="init"),
    # --- sensors -------------------------------------------------------------------------------------------------
    Bad("run-sensor-asset-id-empty", lambda: run_sensor(asset_id=""), "asset_id", "must not be empty"),
    Bad("run-sensor-run-id-none", lambda: run_sensor(dag_action_run_id=None), "dag_action_run_id", "got None"),
    Bad("run-sensor-run-id-whitespace-deferrable", lambda: run_sensor(dag_action_run_id="{{ params.blank }}",
                                                                      deferrable=True),
        "dag_action_run_id", "must not be empty"),
    Bad("run-sensor-statuses-overlap", lambda: run_sensor(success_statuses=["error"]), "failure_statuses",
        "both success and failure", at="init"),
    Bad("asset-sensor-target-statuses-empty",
        lambda: MediaPocketAssetSensor(task_id="w", asset_id="A1", target_statuses=[]), "target_statuses",
        "at least one status", at="init"),
    Bad("asset-sensor-asset-id-empty-deferrable",
        lambda: MediaPocketAssetSensor(task_id="w", asset_id="{{ params.empty }}", deferrable=True),
        "asset_id", "must not be empty"),
    # --- bulk ingest ---------------------------------------------------------------------------------------------
    Bad("bulk-items-not-a-list", lambda: bulk(items="nope"), "items", "must be a list"),
    Bad("bulk-item-missing-external-id", lambda: bulk(items=[{"title": "t", "file_url": URL}]),
        "items[0].external_id", "is required"),
    Bad("bulk-duplicate-external-id", lambda: bulk(items=[item(1), item(2, external_id="e1")]),
        "items[1].external_id", "repeats items[0]"),
    Bad("bulk-max-concurrency-zero", lambda: bulk(items=[item(1)], max_concurrency=0), "max_concurrency",
        "whole number >= 1", at="init"),
    # --- the hook ------------------------------------------------------------------------------------------------
    Bad("hook-conn-id-empty", lambda: hook(""), "mediapocket_conn_id", "non-empty string", at="init"),
    Bad("hook-timeout-zero", lambda: hook(timeout=0), "timeout", "greater than 0 and at most 3600", at="init", error=CONFIG),
    Bad("hook-retry-limit-negative", lambda: hook(retry_limit=-1), "retry_limit", "whole number from 0 to 20", at="init",
        error=CONFIG),
    Bad("hook-guest-email-invalid", hook, "email", "is not an email address",
        use=lambda h: h.add_project_guest("P1", "nobody")),
    Bad("hook-thumbnail-asset-id-empty", hook, "thumbnail_asset_id", "must not be empty",
        use=lambda h: h.set_project_thumbnail("P1", "")),
    Bad("hook-comment-whitespace", hook, "comment", "must not be empty",
        use=lambda h: h.create_project_comment("P1", " \n")),
    Bad("hook-run-id-bool", hook, "dag_action_run_id", "got True", use=lambda h: h.get_dag_action_run("A1", True)),
    Bad("hook-project-asset-filename-alone", hook, "filename", "give it with file_url or s3_key",
        use=lambda h: h.create_project_asset("P1", "t", filename="a.jpg")),
    Bad("hook-create-project-unknown-field", hook, "colour", "is not a parameter",
        use=lambda h: h.create_project("t", colour="red")),
    # --- hook_params of an operator ------------------------------------------------------------------------------
    Bad("hook-params-timeout-abc", lambda: create(hook_params={"timeout": "abc"}), "timeout", "must be a finite number",
        error=CONFIG),
    Bad("hook-params-unknown-key", lambda: create(hook_params={"retries": 3}), "hook_params", "retries"),
    Bad("operator-conn-id-empty", lambda: create(mediapocket_conn_id="{{ params.empty }}"), "mediapocket_conn_id",
        "non-empty string"),
    # --- the connection ------------------------------------------------------------------------------------------
    Bad("conn-unknown", lambda: create(mediapocket_conn_id="mp_nowhere"), "mp_nowhere", "could not be loaded",
        error=CONFIG),
    Bad("conn-without-key", with_bad_conn, BAD_CONN, "no API key", error=CONFIG, conn=on_conn(password=None)),
    Bad("conn-without-host", with_bad_conn, BAD_CONN, "has no host", error=CONFIG, conn=on_conn(host=None)),
    Bad("conn-timeout-abc", with_bad_conn, "timeout", "must be a finite number", error=CONFIG,
        conn=on_conn(extra={"timeout": "abc"})),
    Bad("conn-retry-limit-negative", with_bad_conn, "retry_limit", "whole number from 0 to 20", error=CONFIG,
        conn=on_conn(extra={"retry_limit": -1})),
    Bad("conn-retry-backoff-negative", with_bad_conn, "retry_backoff", "number of seconds from 0 to 300", error=CONFIG,
        conn=on_conn(extra={"retry_backoff": -0.5})),
    Bad("conn-verify-ssl-maybe", with_bad_conn, "verify_ssl", "true or false", error=CONFIG,
        conn=on_conn(extra={"verify_ssl": "maybe"})),
    Bad("conn-host-ftp-scheme", with_bad_conn, BAD_CONN, "not an http(s) base URL", error=CONFIG,
        conn=on_conn(host="ftp://{hostport}")),
    Bad("conn-schema-ftp", with_bad_conn, BAD_CONN, "schema must be http or https", error=CONFIG,
        conn=on_conn(host="{hostport}", schema="ftp")),
]
# fmt: on


@pytest.fixture(scope="module")
def shared_sandbox() -> Iterator[MediaPocketSandbox]:
    with pytest.MonkeyPatch.context() as patch, sandbox_as_connection(patch) as sandbox:
        yield sandbox


@pytest.fixture
def sandbox(shared_sandbox: MediaPocketSandbox, monkeypatch: pytest.MonkeyPatch) -> MediaPocketSandbox:
    shared_sandbox.clear_requests()
    monkeypatch.delenv(f"AIRFLOW_CONN_{BAD_CONN.upper()}", raising=False)
    return shared_sandbox


def define_bad_conn(monkeypatch: pytest.MonkeyPatch, sandbox: MediaPocketSandbox, conn: dict[str, Any]) -> None:
    hostport = sandbox.base_url.removeprefix("http://")
    fill = {"{sandbox}": sandbox.base_url, "{key}": sandbox.api_key, "{hostport}": hostport}
    values = {k: fill.get(v, v.replace("{hostport}", hostport)) if isinstance(v, str) else v for k, v in conn.items()}
    monkeypatch.setenv(f"AIRFLOW_CONN_{BAD_CONN.upper()}", json.dumps({k: v for k, v in values.items() if v is not None}))


def refuse(case: Bad) -> tuple[str, Exception]:
    """Build the row's object and run it; (where it was refused, the error)."""
    try:
        target = case.make()
    except Exception as exc:
        return "init", exc
    context = {**make_context(), "params": PARAMS}
    try:
        if case.use is not None:
            case.use(target)
        else:
            target.render_template_fields(context)
            target.execute(context)
    except Exception as exc:
        return "execute", exc
    raise AssertionError(f"{case.id}: the bad value was accepted")


def test_the_table_is_big_and_ids_are_unique() -> None:
    assert len(CASES) >= 35
    assert len({case.id for case in CASES}) == len(CASES)


@pytest.mark.parametrize("case", CASES, ids=[case.id for case in CASES])
def test_bad_value_is_refused_before_any_request(
    case: Bad, sandbox: MediaPocketSandbox, monkeypatch: pytest.MonkeyPatch, record_property: Any
) -> None:
    if case.conn is not None:
        define_bad_conn(monkeypatch, sandbox, case.conn)
    stage, error = refuse(case)
    record_property("refused_at", stage)
    message = str(error)
    assert isinstance(error, case.error), f"{type(error).__name__}: {message}"
    assert f"'{case.param}'" in message, message
    assert case.says in message, message
    assert not re.search(r"parameters? ''", message), f"an empty parameter name: {message}"
    assert stage == case.at, f"refused at {stage}, expected at {case.at}: {message}"
    assert sandbox.api_key not in message
    assert sandbox.requests == [], [(r.method, r.path) for r in sandbox.requests]
