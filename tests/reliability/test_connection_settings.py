"""Issue 7 items 13 and 19 (connection parts): bad settings are rejected before any request.

``timeout: "inf"`` made every sync call raise OverflowError and left async calls without a deadline;
``nan``, negative values and ``retry_limit: 1000000`` were accepted. A query string in the host, a
port given twice with different values and invalid JSON extras were silently ignored; a malformed
connection URI was reported as "could not be loaded, define it"; an IPv6 host without a scheme was
rejected. Every message names the field and never echoes the API key.
"""

from __future__ import annotations

import json
import math

import httpx
import pytest
import respx

from airflow_provider_mediapocket.exceptions import MediaPocketConfigError
from airflow_provider_mediapocket.hooks.mediapocket import MediaPocketHook, build_base_url
from airflow_provider_mediapocket.sandbox import MediaPocketSandbox

KEY = "sandbox-api-key"


def use_connection(monkeypatch: pytest.MonkeyPatch, sandbox: MediaPocketSandbox, **changes: object) -> None:
    """Point ``mediapocket_default`` at the sandbox with ``changes`` applied to the JSON connection."""
    (name, value), = sandbox.airflow_connection_env().items()
    conn = json.loads(value)
    extra = changes.pop("extra", None)
    if isinstance(extra, dict):
        conn["extra"] = {**conn["extra"], **extra}
    elif extra is not None:
        conn["extra"] = extra
    conn.update(changes)
    monkeypatch.setenv(name, json.dumps(conn))


BAD_EXTRAS = [
    ("timeout", "inf"), ("timeout", float("inf")), ("timeout", "nan"), ("timeout", -1), ("timeout", 0),
    ("timeout", 3601), ("timeout", "-inf"), ("retry_limit", 1_000_000), ("retry_limit", 21), ("retry_limit", -1),
    ("retry_limit", "nan"), ("retry_limit", 2.5), ("retry_backoff", "nan"), ("retry_backoff", -0.5),
    ("retry_backoff", 301), ("retry_backoff", "inf"),
]


@pytest.mark.parametrize(("name", "value"), BAD_EXTRAS)
def test_out_of_range_extras_are_rejected_before_any_request(
    monkeypatch: pytest.MonkeyPatch, mediapocket_sandbox: MediaPocketSandbox, name: str, value: object
) -> None:
    # json.dumps writes inf/nan as Infinity/NaN, which json.loads (and so Airflow) reads back as floats.
    use_connection(monkeypatch, mediapocket_sandbox, extra={name: value})
    hook = MediaPocketHook()
    with pytest.raises(MediaPocketConfigError, match=f"extra '{name}' must be ") as info:
        hook.list_api_keys()
    assert mediapocket_sandbox.requests == []
    assert KEY not in str(info.value)
    hook.close()


@pytest.mark.parametrize(("name", "value"), BAD_EXTRAS)
def test_out_of_range_hook_arguments_are_rejected_at_construction(name: str, value: object) -> None:
    with pytest.raises(MediaPocketConfigError, match=f"Invalid parameter '{name}': must be "):
        MediaPocketHook(**{name: value})  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("name", "value", "expected"),
    [("timeout", 3600, 3600.0), ("timeout", "0.5", 0.5), ("retry_limit", 20, 20), ("retry_limit", "0", 0),
     ("retry_limit", 4.0, 4), ("retry_backoff", 0, 0.0), ("retry_backoff", 300, 300.0)],
)
def test_the_bounds_themselves_are_accepted(name: str, value: object, expected: float) -> None:
    hook = MediaPocketHook(**{name: value})  # type: ignore[arg-type]
    assert hook._overrides()[name] == expected


def test_async_calls_have_a_finite_deadline(monkeypatch: pytest.MonkeyPatch, mediapocket_sandbox: MediaPocketSandbox) -> None:
    """What "inf" used to give the triggerer: a client without any timeout. Every accepted value is finite."""
    use_connection(monkeypatch, mediapocket_sandbox, extra={"timeout": 3600})
    settings = MediaPocketHook().get_settings()
    assert math.isfinite(settings.timeout) and settings.timeout == 3600.0


@pytest.mark.parametrize(
    ("changes", "message"),
    [
        ({"host": "http://127.0.0.1:1/?timeout=5"}, "host must be a base URL without a query string"),
        ({"host": "http://127.0.0.1:1#frag"}, "host must be a base URL without a query string or fragment"),
        ({"host": "http://127.0.0.1:8001", "port": 8002}, "port 8002 differs from the port 8001 in host"),
        ({"port": 70000}, "port must be a number from 1 to 65535"),
        ({"extra": "{timeout: 5"}, "extra is not valid JSON (line 1 column 2"),
        ({"extra": "[1, 2]"}, "extra must be a JSON object"),
        ({"host": "http://127.0.0.1:notaport"}, "its port must be a number from 1 to 65535"),
    ],
)
def test_malformed_connection_fields_are_rejected_naming_the_field(
    monkeypatch: pytest.MonkeyPatch, mediapocket_sandbox: MediaPocketSandbox, changes: dict[str, object], message: str
) -> None:
    use_connection(monkeypatch, mediapocket_sandbox, **changes)
    with pytest.raises(MediaPocketConfigError) as info:
        MediaPocketHook().list_api_keys()
    assert message in str(info.value)
    assert KEY not in str(info.value)
    assert mediapocket_sandbox.requests == []


def test_the_same_port_in_host_and_port_field_is_fine(
    monkeypatch: pytest.MonkeyPatch, mediapocket_sandbox: MediaPocketSandbox
) -> None:
    port = mediapocket_sandbox.port
    use_connection(monkeypatch, mediapocket_sandbox, host=f"http://127.0.0.1:{port}", port=port)
    hook = MediaPocketHook()
    assert hook.list_api_keys()
    hook.close()


@pytest.mark.parametrize(
    ("uri", "problem"),
    [
        (f"mediapocket://:{KEY}@127.0.0.1:notaport/http", "its port must be a number from 0 to 65535"),
        (f"mediapocket://:{KEY}@[::1/http", "unbalanced '[' or ']'"),
        (f"mediapocket://:{KEY}@http://127.0.0.1:8080", "cannot also carry the key"),
        ('{"conn_type": "mediapocket", "password": "' + KEY + '", "host": "x",', "is not valid JSON (line 1"),
        ('{"conn_type": "mediapocket", "password": "' + KEY + '", "host": "x", "port": "http"}',
         "its 'port' must be a whole number (got 'http')"),
    ],
)
def test_a_malformed_connection_says_what_is_malformed(monkeypatch: pytest.MonkeyPatch, uri: str, problem: str) -> None:
    monkeypatch.setenv("AIRFLOW_CONN_MEDIAPOCKET_DEFAULT", uri)
    with pytest.raises(MediaPocketConfigError) as info:
        MediaPocketHook().get_settings()
    text = str(info.value)
    assert "AIRFLOW_CONN_MEDIAPOCKET_DEFAULT is set but cannot be parsed" in text
    assert problem in text
    assert KEY not in text


def test_a_missing_key_names_the_api_key_field(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("AIRFLOW_CONN_MEDIAPOCKET_DEFAULT", json.dumps({"conn_type": "mediapocket", "host": "x"}))
    with pytest.raises(MediaPocketConfigError, match=r"has no API key: set the connection's API Key \(password\) field"):
        MediaPocketHook().get_settings()


@pytest.mark.parametrize(
    ("host", "schema", "port", "expected"),
    [
        ("::1", "http", 8080, "http://[::1]:8080"),
        ("::1", None, None, "https://[::1]"),
        ("[::1]:8080", "http", None, "http://[::1]:8080"),
        ("fe80::1%eth0/mp", "http", None, "http://[fe80::1%eth0]/mp"),
        ("http://::1", None, 9000, "http://[::1]:9000"),
    ],
)
def test_ipv6_hosts_without_brackets_or_scheme_are_bracketed(
    host: str, schema: str | None, port: int | None, expected: str
) -> None:
    assert build_base_url("c", host, schema, port) == expected


@respx.mock
def test_an_ipv6_connection_reaches_the_bracketed_address(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("AIRFLOW_CONN_MEDIAPOCKET_DEFAULT", json.dumps(
        {"conn_type": "mediapocket", "host": "::1", "schema": "http", "port": 8080, "password": KEY}
    ))
    route = respx.get("http://[::1]:8080/api/v2/user/api_keys").mock(
        return_value=httpx.Response(200, json={"api_keys": []})
    )
    hook = MediaPocketHook()
    assert hook.list_api_keys() == []
    assert route.called
    hook.close()
