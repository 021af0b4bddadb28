"""The `mediapocket` connection: JSON and URI forms, defaults, overrides and clear configuration errors."""

from __future__ import annotations

import json

import pytest

from airflow_provider_mediapocket import get_provider_info
from airflow_provider_mediapocket.exceptions import MediaPocketConfigError, MediaPocketValidationError
from airflow_provider_mediapocket.hooks.mediapocket import MediaPocketHook, build_base_url


def set_conn(monkeypatch: pytest.MonkeyPatch, value: str | dict[str, object], conn_id: str = "mp") -> None:
    text = value if isinstance(value, str) else json.dumps(value)
    monkeypatch.setenv(f"AIRFLOW_CONN_{conn_id.upper()}", text)


def test_json_connection_with_extras(monkeypatch: pytest.MonkeyPatch) -> None:
    set_conn(monkeypatch, {
        "conn_type": "mediapocket", "host": "https://tryme.mediapocket.fi", "password": "secret-json",
        "extra": {"timeout": 12, "verify_ssl": False, "retry_limit": 5, "retry_backoff": 0.5},
    })
    settings = MediaPocketHook("mp").get_settings()
    assert settings.base_url == "https://tryme.mediapocket.fi"
    assert settings.api_key == "secret-json"
    assert (settings.timeout, settings.verify_ssl, settings.retry_limit, settings.retry_backoff) == (
        12.0, False, 5, 0.5
    )


def test_uri_connection_schema_port_and_string_extras(monkeypatch: pytest.MonkeyPatch) -> None:
    set_conn(monkeypatch, "mediapocket://:secret%2Furi@127.0.0.1:8765/http?timeout=5&verify_ssl=false&retry_limit=2")
    settings = MediaPocketHook("mp").get_settings()
    assert settings.base_url == "http://127.0.0.1:8765"
    assert settings.api_key == "secret/uri"
    assert (settings.timeout, settings.verify_ssl, settings.retry_limit) == (5.0, False, 2)


def test_defaults_and_hook_arguments_override_extras(monkeypatch: pytest.MonkeyPatch) -> None:
    set_conn(monkeypatch, {"conn_type": "mediapocket", "host": "tryme.mediapocket.fi", "password": "k",
                           "extra": {"timeout": 99}})
    assert MediaPocketHook("mp").get_settings().timeout == 99.0
    settings = MediaPocketHook("mp", timeout=3, retry_limit=0).get_settings()
    assert settings.base_url == "https://tryme.mediapocket.fi"
    assert (settings.timeout, settings.retry_limit, settings.retry_backoff, settings.verify_ssl) == (3.0, 0, 1.0, True)


@pytest.mark.parametrize(
    ("host", "schema", "port", "expected"),
    [
        ("tryme.mediapocket.fi", None, None, "https://tryme.mediapocket.fi"),
        ("tryme.mediapocket.fi", "http", 8080, "http://tryme.mediapocket.fi:8080"),
        ("http://127.0.0.1:9000/", "https", 1234, "http://127.0.0.1:9000"),
        ("https://dam.example.com/api/v2", None, None, "https://dam.example.com"),
        ("https://dam.example.com/mp/", None, None, "https://dam.example.com/mp"),
    ],
)
def test_base_url(host: str, schema: str | None, port: int | None, expected: str) -> None:
    assert build_base_url("c", host, schema, port) == expected


@pytest.mark.parametrize(
    ("conn", "message"),
    [
        ({"conn_type": "mediapocket", "host": "https://x"}, "connection 'mp' has no API key"),
        ({"conn_type": "mediapocket", "password": "k"}, "connection 'mp' has no host"),
        ({"conn_type": "mediapocket", "host": "x", "schema": "ftp", "password": "k"}, "schema must be http or https"),
        ({"conn_type": "mediapocket", "host": "https://x", "password": "k", "extra": {"timeout": "soon"}},
         "'timeout' must be a number >= 0.001 (got 'soon')"),
        ({"conn_type": "mediapocket", "host": "https://x", "password": "k", "extra": {"retry_limit": -1}},
         "'retry_limit' must be a whole number >= 0 (got -1)"),
        ({"conn_type": "mediapocket", "host": "https://x", "password": "k", "extra": {"verify_ssl": "maybe"}},
         "'verify_ssl' must be true or false (got 'maybe')"),
    ],
)
def test_bad_connections_are_clear(monkeypatch: pytest.MonkeyPatch, conn: dict[str, object], message: str) -> None:
    set_conn(monkeypatch, conn)
    with pytest.raises(MediaPocketConfigError) as info:
        MediaPocketHook("mp").get_settings()
    assert message in str(info.value)


def test_unknown_connection_names_the_env_var(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("AIRFLOW_CONN_NOPE", raising=False)
    with pytest.raises(MediaPocketConfigError, match="'nope' could not be loaded.*AIRFLOW_CONN_NOPE"):
        MediaPocketHook("nope").get_settings()


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"mediapocket_conn_id": ""}, "Invalid parameter 'mediapocket_conn_id'"),
        ({"timeout": 0}, "'timeout' must be a number >= 0.001"),
        ({"retry_backoff": -2}, "'retry_backoff' must be a number >= 0"),
    ],
)
def test_bad_hook_arguments_fail_at_construction(kwargs: dict[str, object], message: str) -> None:
    with pytest.raises((MediaPocketConfigError, MediaPocketValidationError), match=message):
        MediaPocketHook(**kwargs)  # type: ignore[arg-type]


def test_constructor_does_no_io_and_repr_hides_the_key(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("AIRFLOW_CONN_MISSING", raising=False)
    hook = MediaPocketHook("missing")  # would fail if it read the connection
    assert repr(hook) == "MediaPocketHook(mediapocket_conn_id='missing')"
    set_conn(monkeypatch, {"conn_type": "mediapocket", "host": "https://x", "password": "very-secret-key"})
    hook = MediaPocketHook("mp")
    settings = hook.get_settings()
    assert "very-secret-key" not in repr(settings)
    assert "very-secret-key" not in repr(hook)
    assert "very-secret-key" not in json.dumps(hook.hook_kwargs())


def test_ui_field_behaviour_matches_provider_info() -> None:
    behaviour = MediaPocketHook.get_ui_field_behaviour()
    declared = get_provider_info()["connection-types"][0]["ui-field-behaviour"]
    assert behaviour["hidden_fields"] == declared["hidden-fields"] == ["login"]
    assert behaviour["relabeling"]["host"] == "Base URL"
    assert behaviour["relabeling"]["password"] == "API Key"
