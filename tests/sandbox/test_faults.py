"""Fault injection: scripted and seeded random faults, and the request log."""

from __future__ import annotations

import contextlib
import time
from collections.abc import Iterator

import httpx
import pytest

from airflow_provider_mediapocket.sandbox import FaultConfig, MediaPocketSandbox, RequestRecord


@pytest.fixture
def sandbox() -> Iterator[MediaPocketSandbox]:
    with MediaPocketSandbox(api_key="fault-key") as sb:
        yield sb


@pytest.fixture
def http(sandbox: MediaPocketSandbox) -> Iterator[httpx.Client]:
    with httpx.Client(
        base_url=sandbox.base_url, headers={"X-API-KEY": sandbox.api_key}, timeout=10
    ) as client:
        yield client


def test_scripted_faults_are_consumed_in_order(sandbox: MediaPocketSandbox, http: httpx.Client) -> None:
    pid = sandbox.state.seed_project_id
    sandbox.inject("503", "429", method="GET", path_prefix="/api/v2/projects", retry_after=7)
    first = http.get(f"/api/v2/projects/{pid}")
    second = http.get(f"/api/v2/projects/{pid}")
    third = http.get(f"/api/v2/projects/{pid}")
    assert (first.status_code, first.json()) == (503, {"error": "Service Unavailable"})
    assert (second.status_code, second.json()) == (429, {"error": "Too Many Requests"})
    assert second.headers["Retry-After"] == "7"
    assert third.status_code == 200
    assert [(r.status, r.fault) for r in sandbox.requests] == [(503, "503"), (429, "429"), (200, None)]


def test_scripted_fault_matches_method_and_prefix_only(
    sandbox: MediaPocketSandbox, http: httpx.Client
) -> None:
    sandbox.inject("500", method="POST", path_prefix="/api/v2/assets")
    assert http.get("/api/v2/projects").status_code == 200
    assert http.post("/api/v2/projects", json={"title": "p"}).status_code == 200
    failed = http.post("/api/v2/assets", json={"title": "not applied"})
    assert (failed.status_code, failed.json()) == (500, {"error": "Internal Server Error"})
    assert sandbox.state.assets == {}
    assert http.post("/api/v2/assets", json={"title": "applied"}).status_code == 200
    assert [a["title"] for a in sandbox.state.assets.values()] == ["applied"]


def test_502_is_not_applied(sandbox: MediaPocketSandbox, http: httpx.Client) -> None:
    sandbox.inject("502")
    reply = http.post("/api/v2/assets", json={"title": "x"})
    assert (reply.status_code, reply.json()) == (502, {"error": "Bad Gateway"})
    assert sandbox.state.assets == {}


def test_drop_closes_without_applying(sandbox: MediaPocketSandbox, http: httpx.Client) -> None:
    sandbox.inject("drop")
    with pytest.raises(httpx.TransportError):
        http.post("/api/v2/assets", json={"title": "dropped"})
    assert sandbox.state.assets == {}
    record = sandbox.requests[-1]
    assert (record.method, record.path, record.status, record.fault) == (
        "POST",
        "/api/v2/assets",
        None,
        "drop",
    )
    assert http.get("/api/v2/projects").status_code == 200


def test_lost_applies_but_loses_response(sandbox: MediaPocketSandbox, http: httpx.Client) -> None:
    sandbox.inject("lost")
    with pytest.raises(httpx.TransportError):
        http.post("/api/v2/assets", json={"title": "lost one"})
    assert [a["title"] for a in sandbox.state.assets.values()] == ["lost one"]
    assert sandbox.requests[-1] == RequestRecord(
        "POST", "/api/v2/assets", {}, {"title": "lost one"}, 200, "lost"
    )


def test_delay_then_normal_answer(sandbox: MediaPocketSandbox, http: httpx.Client) -> None:
    sandbox.inject("delay", delay=0.3)
    started = time.monotonic()
    reply = http.get("/api/v2/projects")
    assert reply.status_code == 200 and time.monotonic() - started >= 0.3
    assert sandbox.requests[-1].fault == "delay"


def test_faults_only_apply_to_api_paths(sandbox: MediaPocketSandbox, http: httpx.Client) -> None:
    sandbox.inject("500")
    assert http.get("/health").status_code == 404
    assert http.get("/api/v2/projects").status_code == 500


def _statuses(seed: int, count: int = 40) -> list[tuple[int | None, str | None]]:
    kinds = {"500": 1.0, "502": 1.0, "503": 1.0, "429": 1.0, "drop": 1.0, "lost": 1.0}
    with MediaPocketSandbox(seed=1) as sandbox:
        sandbox.state.faults = FaultConfig(rate=0.3, kinds=kinds, seed=seed, retry_after=1)
        for _ in range(count):
            headers = {"X-API-KEY": sandbox.api_key}
            with (
                httpx.Client(base_url=sandbox.base_url, headers=headers) as client,
                contextlib.suppress(httpx.TransportError),
            ):
                client.get("/api/v2/projects")
        return [(r.status, r.fault) for r in sandbox.requests]


def test_random_faults_are_deterministic_per_seed() -> None:
    first, again, other = _statuses(123), _statuses(123), _statuses(7)
    assert first == again
    assert first != other
    faults = [fault for _, fault in first if fault]
    assert 3 <= len(faults) <= 25
    assert any(status == 200 for status, _ in first)


def test_set_faults_none_disables(sandbox: MediaPocketSandbox, http: httpx.Client) -> None:
    sandbox.set_faults(FaultConfig(rate=1.0, kinds={"503": 1}, seed=1))
    assert http.get("/api/v2/projects").status_code == 503
    sandbox.set_faults(None)
    assert http.get("/api/v2/projects").status_code == 200


def test_request_log_never_holds_the_key(sandbox: MediaPocketSandbox, http: httpx.Client) -> None:
    http.get("/api/v2/projects", params={"page": "2"})
    http.post("/api/v2/assets", json={"title": "logged"})
    assert sandbox.requests == [
        RequestRecord("GET", "/api/v2/projects", {"page": "2"}, None, 200, None),
        RequestRecord("POST", "/api/v2/assets", {}, {"title": "logged"}, 200, None),
    ]
    assert "fault-key" not in repr(sandbox.requests)
    sandbox.clear_requests()
    assert sandbox.requests == []


def test_unknown_fault_kind_is_rejected(sandbox: MediaPocketSandbox) -> None:
    with pytest.raises(ValueError, match="unknown fault kinds"):
        sandbox.inject("418")
    with pytest.raises(ValueError, match="unknown fault kinds"):
        FaultConfig(rate=0.5, kinds={"teapot": 1})


def test_slow_fault_applies_then_answers_late(sandbox: MediaPocketSandbox) -> None:
    sandbox.inject("slow", method="POST", path_prefix="/api/v2/assets", delay=1.0)
    with httpx.Client(base_url=sandbox.base_url, headers={"X-API-KEY": sandbox.api_key}, timeout=0.2) as quick, \
            pytest.raises(httpx.ReadTimeout):
        quick.post("/api/v2/assets", json={"title": "slow but applied"})
    assert [a["title"] for a in sandbox.state.assets.values()] == ["slow but applied"]
    assert [(r.status, r.fault) for r in sandbox.requests] == [(200, "slow")]


def test_raw_fault_sends_the_reply_as_is_and_applies_nothing(sandbox: MediaPocketSandbox, http: httpx.Client) -> None:
    from airflow_provider_mediapocket.sandbox import RawReply

    sandbox.inject("raw", method="POST", reply=RawReply(200, b"<html>login</html>", "text/html",
                                                          (("Retry-After", "soon"),)))
    reply = http.post("/api/v2/assets", json={"title": "x"})
    assert (reply.status_code, reply.text, reply.headers["content-type"]) == (200, "<html>login</html>", "text/html")
    assert reply.headers["Retry-After"] == "soon"
    assert sandbox.state.assets == {}
    with pytest.raises(ValueError, match="needs reply"):
        sandbox.inject("raw")


def test_a_429_carries_a_raw_retry_after(sandbox: MediaPocketSandbox, http: httpx.Client) -> None:
    sandbox.inject("429", retry_after="nan")
    assert http.get("/api/v2/projects").headers["Retry-After"] == "nan"
