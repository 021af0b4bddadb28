"""Issue 7 item 17: credentials inside URLs never reach logs, task_state_store, XCom or errors.

A presigned URL's query string is a bearer credential; a base URL with ``user:password@`` carries a
password. Both used to be logged at INFO, stored in ``task_state_store`` and shown in links and the
Test Connection message.
"""

from __future__ import annotations

import json

import pytest

from airflow_provider_mediapocket._redact import redact_url
from airflow_provider_mediapocket.exceptions import MediaPocketConfigError, MediaPocketValidationError
from airflow_provider_mediapocket.hooks.mediapocket import MediaPocketHook
from airflow_provider_mediapocket.operators.mediapocket import (
    MediaPocketAddMediaOperator,
    MediaPocketCreateAssetOperator,
)
from airflow_provider_mediapocket.sandbox import MediaPocketSandbox
from tests.triggers._support import FakeStateStore, FakeTI, make_context

SIGNATURE = "deadbeef0123signature"
CREDENTIAL = "AKIAEXAMPLE%2F20261123"
PRESIGNED = (
    "https://bucket.s3.eu-north-1.amazonaws.com/in/clip.mp4?X-Amz-Algorithm=AWS4-HMAC-SHA256"
    f"&X-Amz-Credential={CREDENTIAL}&X-Amz-Signature={SIGNATURE}"
)
PASSWORD = "proxy-password-77"


def leaks(*texts: str) -> list[str]:
    return [secret for secret in (SIGNATURE, CREDENTIAL, "X-Amz", PASSWORD) if any(secret in t for t in texts)]


def everything_logged(caplog: pytest.LogCaptureFixture, capsys: pytest.CaptureFixture[str]) -> str:
    captured = capsys.readouterr()
    return "\n".join([caplog.text, *(r.getMessage() for r in caplog.records), captured.out, captured.err])


@pytest.mark.parametrize(
    ("url", "shown"),
    [
        (PRESIGNED, "https://bucket.s3.eu-north-1.amazonaws.com/in/clip.mp4?<redacted>"),
        ("https://user:pw@dam.example.com:8443/a/b?x=1#frag", "https://dam.example.com:8443/a/b?<redacted>#<redacted>"),
        ("https://dam.example.com/plain.mp4", "https://dam.example.com/plain.mp4"),
        ("user:pw@host/file.mp4", "<redacted>"),
        ("not a url?sig=1", "not a url?<redacted>"),
    ],
)
def test_redact_url(url: str, shown: str) -> None:
    assert redact_url(url) == shown


def test_add_media_logs_and_stores_no_query_string(
    mediapocket_sandbox: MediaPocketSandbox, caplog: pytest.LogCaptureFixture, capsys: pytest.CaptureFixture[str]
) -> None:
    caplog.set_level("DEBUG")
    asset_id = str(mediapocket_sandbox.state.add_asset(title="presigned")["id"])
    store, ti = FakeStateStore(), FakeTI()
    op = MediaPocketAddMediaOperator(task_id="m", asset_id=asset_id, file_url=PRESIGNED)
    assert op.execute(make_context(store, ti)) == asset_id
    # The retry still recognises the earlier try's media without the URL in the store.
    MediaPocketAddMediaOperator(task_id="m", asset_id=asset_id, file_url=PRESIGNED).execute(make_context(store))
    posts = [r for r in mediapocket_sandbox.requests if r.method == "POST" and r.path.endswith("/media")]
    assert len(posts) == 1
    assert posts[0].body["file_url"] == PRESIGNED  # the API itself gets the real URL
    logged = everything_logged(caplog, capsys)
    assert "clip.mp4?<redacted>" in logged
    assert leaks(logged, json.dumps(store.data), json.dumps(ti.xcoms)) == []


def test_create_asset_logs_and_stores_no_query_string(
    mediapocket_sandbox: MediaPocketSandbox, caplog: pytest.LogCaptureFixture, capsys: pytest.CaptureFixture[str]
) -> None:
    caplog.set_level("DEBUG")
    store, ti = FakeStateStore(), FakeTI()
    for project_id in (None, mediapocket_sandbox.state.seed_project_id):
        op = MediaPocketCreateAssetOperator(task_id="c", title="presigned", file_url=PRESIGNED, project_id=project_id)
        op.execute(make_context(store, ti))
    logged = everything_logged(caplog, capsys)
    assert leaks(logged, json.dumps(store.data), json.dumps(ti.xcoms)) == []


def test_a_rejected_url_is_shown_redacted(mediapocket_sandbox: MediaPocketSandbox) -> None:
    hook = MediaPocketHook()
    for url in (f"ftp://files.example.com/a.mp4?sig={SIGNATURE}", f"https://files.example.com/?sig={SIGNATURE}"):
        with pytest.raises(MediaPocketValidationError) as info:
            hook.add_media("an-asset", url)
        assert leaks(str(info.value)) == [], str(info.value)
    assert mediapocket_sandbox.requests == []


def test_a_base_url_with_a_password_is_rejected_without_showing_it(
    monkeypatch: pytest.MonkeyPatch, mediapocket_sandbox: MediaPocketSandbox,
    caplog: pytest.LogCaptureFixture, capsys: pytest.CaptureFixture[str],
) -> None:
    (name, value), = mediapocket_sandbox.airflow_connection_env().items()
    conn = json.loads(value)
    conn["host"] = conn["host"].replace("://", f"://proxyuser:{PASSWORD}@")
    monkeypatch.setenv(name, json.dumps(conn))
    ok, message = MediaPocketHook().test_connection()
    assert not ok and "host must not contain credentials" in message
    ti = FakeTI()
    op = MediaPocketAddMediaOperator(task_id="m", asset_id="an-asset", file_url="https://x.example.com/a.mp4")
    with pytest.raises(MediaPocketConfigError) as info:
        op.execute(make_context(FakeStateStore(), ti))
    assert leaks(message, str(info.value), json.dumps(ti.xcoms), everything_logged(caplog, capsys)) == []
    assert mediapocket_sandbox.requests == []
