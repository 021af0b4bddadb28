"""Lifecycles of the sandbox: media ingest, DAG action runs, history, auth and validation."""

from __future__ import annotations

import json
import os
import re
from typing import Any

import httpx
import pytest

from airflow_provider_mediapocket.sandbox import MediaPocketSandbox, SandboxState

TS = re.compile(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z")


def _asset(client: httpx.Client, **body: Any) -> dict[str, Any]:
    response = client.post("/api/v2/assets", json={"title": "Lifecycle", **body})
    assert response.status_code == 200, response.text
    asset: dict[str, Any] = response.json()["asset"]
    return asset


def _events(client: httpx.Client, kind: str, oid: str) -> list[str]:
    body = client.get(f"/api/v2/{kind}/{oid}/history/0").json()
    return [e["event_type"] for e in body["history"]["results"]]


def test_media_ingest_lifecycle(mediapocket_sandbox: MediaPocketSandbox, client: httpx.Client) -> None:
    asset = _asset(client)
    assert asset["media_type"] == "placeholder"
    aid = asset["id"]
    mediapocket_sandbox.state.media_processing_seconds = 30.0  # only advance() finishes it
    assert client.get(f"/api/v2/assets/{aid}/file_metadata").status_code == 404
    added = client.post(
        f"/api/v2/assets/{aid}/media", json={"file_url": "https://x.test/a.MP4", "filename": "a.MP4"}
    )
    assert added.json() == {"ok": "ok"}
    got = client.get(f"/api/v2/assets/{aid}").json()["asset"]
    assert (got["media_type"], got["original_filename"], got["md5_sum"]) == ("processing", "a.MP4", None)
    media = client.get(f"/api/v2/assets/{aid}/media").json()["media"]
    assert [m["status"] for m in media] == ["processing"]
    assert client.get(f"/api/v2/assets/{aid}/media/{media[0]['id']}/download_url?filename=a.mp4").json() == {
        "url": None
    }

    mediapocket_sandbox.state.advance(25)
    assert client.get(f"/api/v2/assets/{aid}").json()["asset"]["media_type"] == "processing"
    mediapocket_sandbox.state.advance(5)
    got = client.get(f"/api/v2/assets/{aid}").json()["asset"]
    assert got["media_type"] == "video"
    assert re.fullmatch(r"[0-9a-f]{32}", got["md5_sum"])
    assert _events(client, "assets", aid) == ["ASSET_FINISHED_INGEST", "ASSET_STARTED_INGEST", "ASSET_ADDED"]
    located = client.get(f"/api/v2/assets/{aid}/media", params={"include_locations": "true"}).json()["media"]
    assert located[0]["status"] == "ready" and located[0]["locations"][0]["type"] == "original"
    url = client.get(f"/api/v2/assets/{aid}/media/{media[0]['id']}/download_url?filename=a.mp4").json()["url"]
    assert isinstance(url, str) and url.endswith("/a.mp4")
    assert "file_metadata" in client.get(f"/api/v2/assets/{aid}/file_metadata").json()

    removed = client.delete(f"/api/v2/assets/{aid}/media").json()
    assert set(removed) == {"asset"} and removed["asset"]["media_type"] == "placeholder"
    again = client.delete(f"/api/v2/assets/{aid}/media").json()
    assert again["errors"] == {"error": "No media found on this asset.", "status": 400}


@pytest.mark.parametrize(
    ("filename", "media_type"),
    [
        ("p.jpeg", "image"),
        ("s.flac", "audio"),
        ("d.docx", "document"),
        ("v.mxf", "video"),
        ("x.bin", "other"),
    ],
)
def test_media_type_from_extension(filename: str, media_type: str) -> None:
    state = SandboxState(media_processing_seconds=1.0)
    aid = state.add_asset(title="t")["id"]
    state.add_media(aid, filename)
    assert state.assets[aid]["media_type"] == "processing"
    state.advance(1.0)
    assert state.assets[aid]["media_type"] == media_type


def test_project_asset_with_s3_and_bad_url(
    mediapocket_sandbox: MediaPocketSandbox, client: httpx.Client
) -> None:
    pid = mediapocket_sandbox.state.seed_project_id
    body = {"title": "S3", "s3": {"s3_key": "bucket/key/clip.mov", "filename": "clip.mov"}}
    asset = client.post(f"/api/v2/projects/{pid}/assets", json=body).json()["asset"]
    assert (asset["media_type"], asset["project_id"]) == ("processing", pid)
    bad = {"title": "Bad", "url": {"file_url": "ftp://x/y.jpg", "filename": "y.jpg"}}
    reply = client.post(f"/api/v2/projects/{pid}/assets", json=bad)
    assert reply.status_code == 200
    created = re.fullmatch(
        r"Asset (\S{20}) created, adding media to asset failed: not a valid HTTP URL", reply.json()["error"]
    )
    assert created is not None
    assert mediapocket_sandbox.state.assets[created.group(1)]["media_type"] == "placeholder"
    mediapocket_sandbox.state.advance(1)
    listing = client.get(f"/api/v2/projects/{pid}/assets").json()
    assert listing["stats"]["assets"] == 2 and listing["stats"]["media_types"]["video"] == 1


def _run(client: httpx.Client, aid: str, action: int) -> dict[str, Any]:
    response = client.post(f"/api/v2/assets/{aid}/dag_actions/{action}")
    assert response.status_code == 200, response.text
    run: dict[str, Any] = response.json()["dag_action_run"]
    return run


def _messages(run: dict[str, Any]) -> list[str]:
    return [m["message"] for m in run["dag_action_run_messages"]]


@pytest.mark.parametrize(
    ("action", "status", "last"),
    [(1, "completed", "Finished successfully"), (4, "failed", "Error: pipeline step failed")],
)
def test_dag_action_run_finishes(
    mediapocket_sandbox: MediaPocketSandbox, client: httpx.Client, action: int, status: str, last: str
) -> None:
    aid = _asset(client)["id"]
    mediapocket_sandbox.state.dag_action_run_seconds = 100.0  # only advance() moves it on
    run = _run(client, aid, action)
    assert (run["status"], _messages(run)) == ("running", ["Set in queue..."])
    mediapocket_sandbox.state.advance(30)
    runs = client.get(f"/api/v2/assets/{aid}/dag_action_runs").json()["dag_action_runs"]
    assert (runs[0]["status"], _messages(runs[0])) == ("running", ["Set in queue...", "Started processing"])
    mediapocket_sandbox.state.advance(70)
    runs = client.get(f"/api/v2/assets/{aid}/dag_action_runs").json()["dag_action_runs"]
    assert runs[0]["status"] == status
    assert _messages(runs[0]) == ["Set in queue...", "Started processing", f"Processing asset {aid}", last]
    ids = [m["id"] for m in runs[0]["dag_action_run_messages"]]
    assert ids == sorted(ids)


def test_never_ending_run_and_listing_order(
    mediapocket_sandbox: MediaPocketSandbox, client: httpx.Client
) -> None:
    aid = _asset(client)["id"]
    first = _run(client, aid, 5)
    second = _run(client, aid, 2)
    mediapocket_sandbox.state.advance(60)
    runs = client.get(f"/api/v2/assets/{aid}/dag_action_runs").json()["dag_action_runs"]
    assert [r["id"] for r in runs] == [second["id"], first["id"]]
    assert (runs[1]["status"], _messages(runs[1])) == ("running", ["Set in queue...", "Started processing"])
    assert runs[0]["status"] == "completed"
    assert mediapocket_sandbox.state.runs[first["id"]]["asset_id"] == aid
    names = [a["name"] for a in client.get(f"/api/v2/assets/{aid}/dag_actions").json()["dag_actions"]]
    assert names == ["Transcode", "Auto-tag", "Publish", "Broken pipeline", "Never ending"]
    missing = client.post(f"/api/v2/assets/{aid}/dag_actions/99")
    assert (missing.status_code, missing.json()) == (404, {"error": "Couldn't find DagAction with 'id'=99"})


def test_history_events_and_cursor_paging() -> None:
    with MediaPocketSandbox(history_page_size=3) as sandbox:
        headers = {"X-API-KEY": sandbox.api_key}
        with httpx.Client(base_url=sandbox.base_url, headers=headers) as client:
            aid = _asset(client)["id"]
            pid = sandbox.state.seed_project_id
            client.put(f"/api/v2/assets/{aid}", json={"description": "d"})
            client.post(f"/api/v2/assets/{aid}/comments", json={"comment": "hi"})
            client.post(f"/api/v2/assets/{aid}/assign", json={"to_project_id": pid})
            client.delete(f"/api/v2/assets/{aid}/unassign")
            client.post(f"/api/v2/assets/{aid}/trash_bin")
            client.post(f"/api/v2/assets/{aid}/restore")
            seen: list[dict[str, Any]] = []
            cursor: str | None = "0"
            pages = 0
            while cursor is not None:
                page = client.get(f"/api/v2/assets/{aid}/history/{cursor}").json()["history"]
                assert len(page["results"]) <= 3
                seen.extend(page["results"])
                cursor = page["next_cursor"]
                pages += 1
            bad = client.get(f"/api/v2/assets/{aid}/history/abc")
            project_events = _events(client, "projects", pid)
    assert pages == 3
    assert [e["event_type"] for e in seen] == [
        "ASSET_RESTORED",
        "ASSET_REMOVED",
        "ASSET_UNLINKED",
        "ASSET_LINKED",
        "ASSET_ADDED_COMMENT",
        "ASSET_EDITED_METADATA",
        "ASSET_ADDED",
    ]
    assert [e["id"] for e in seen] == sorted((e["id"] for e in seen), reverse=True)
    assert all(TS.fullmatch(e["created_at"]) for e in seen)
    assert (bad.status_code, bad.json()) == (
        422,
        {"error": "Invalid parameter 'cursor' value \"abc\": Invalid cursor"},
    )
    assert project_events == ["ASSET_UNLINKED", "ASSET_LINKED", "USER_LINKED"]


def test_trash_and_restore(client: httpx.Client) -> None:
    aid = _asset(client)["id"]
    assert client.post(f"/api/v2/assets/{aid}/trash_bin").json() == {"ok": "ok"}
    assert TS.fullmatch(client.get(f"/api/v2/assets/{aid}").json()["asset"]["deleted"])
    assert client.post(f"/api/v2/assets/{aid}/restore").json() == {"ok": "ok"}
    assert client.get(f"/api/v2/assets/{aid}").json()["asset"]["deleted"] is None
    again = client.post(f"/api/v2/assets/{aid}/restore")
    assert (again.status_code, again.json()["error"]) == (
        400,
        "Can not restore Assets that is not in trash bin",
    )
    assert client.delete(f"/api/v2/assets/{aid}").json() == {"ok": "ok"}
    assert client.get(f"/api/v2/assets/{aid}").status_code == 404


def test_projects_list_update_and_assign(
    mediapocket_sandbox: MediaPocketSandbox, client: httpx.Client
) -> None:
    seed = mediapocket_sandbox.state.seed_project_id
    assert [p["title"] for p in client.get("/api/v2/projects").json()["projects"]] == ["Sandbox Project"]
    updated = client.put(f"/api/v2/projects/{seed}", json={"title": "Renamed", "tags": ["A", "B"]}).json()
    assert (updated["project"]["title"], updated["project"]["tags"]) == ("Renamed", ["a", "b"])
    child = client.post(f"/api/v2/projects/{seed}/projects", json={"title": "Child"}).json()["project"]
    assert child["project_id"] == seed
    assert [p["id"] for p in client.get(f"/api/v2/projects/{seed}/projects").json()["projects"]] == [
        child["id"]
    ]
    assert client.get("/api/v2/projects").json()["projects"][0]["id"] == seed
    cycle = client.post(f"/api/v2/projects/{seed}/assign", json={"to_project_id": child["id"]})
    assert cycle.status_code == 400
    aid = _asset(client)["id"]
    assert client.post(f"/api/v2/assets/{aid}/assign", json={"to_project_id": "nope"}).json() == {
        "error": "Project not found."
    }
    assert client.post(f"/api/v2/assets/{aid}/assign", json={"to_project_id": seed}).json() == {"ok": "ok"}
    assert mediapocket_sandbox.state.assets[aid]["project_id"] == seed


def test_seeded_collection(mediapocket_sandbox: MediaPocketSandbox, client: httpx.Client) -> None:
    state = mediapocket_sandbox.state
    aid = _asset(client)["id"]
    assert client.get(f"/api/v2/assets/{aid}/collections").json() == {"collections": []}
    state.add_to_collection(state.seed_collection_id, aid)
    found = client.get(f"/api/v2/assets/{aid}/collections").json()["collections"]
    assert [c["id"] for c in found] == [state.seed_collection_id]


def test_validation_errors(client: httpx.Client) -> None:
    cases: list[tuple[Any, int, str]] = [
        (
            {"title": "t", "tags": "x"},
            422,
            "Invalid parameter 'tags' value \"x\": Must be an array of String",
        ),
        ({"title": "t", "tags": [1]}, 422, "Invalid parameter 'tags' value [1]: Must be an array of String"),
        ({"title": 5}, 422, "Invalid parameter 'title' value 5: Must be a String"),
        ({"title": "x" * 256}, 400, "Title is too long (maximum is 255 characters)"),
        ({}, 422, "Missing parameter title"),
    ]
    for body, status, error in cases:
        response = client.post("/api/v2/assets", json=body)
        assert (response.status_code, response.json()) == (status, {"error": error}), body
    assert client.post("/api/v2/assets", json={"title": "x" * 255}).status_code == 200
    bad_json = client.post("/api/v2/assets", content=b"{nope", headers={"Content-Type": "application/json"})
    assert (bad_json.status_code, bad_json.json()) == (400, {"error": "Invalid JSON body"})
    assert client.get("/api/v2/nothing/here").json() == {"error": "Not found"}
    assert client.patch("/api/v2/assets/x").status_code == 404
    _asset(client, external_id="ext-1")
    dup = client.post("/api/v2/assets", json={"title": "t", "external_id": "ext-1"})
    assert (dup.status_code, dup.json()) == (400, {"error": "External id has already been taken"})


def test_auth_and_permissions(mediapocket_sandbox: MediaPocketSandbox, client: httpx.Client) -> None:
    url = f"{mediapocket_sandbox.base_url}/api/v2/projects"
    for headers in ({}, {"X-API-KEY": "wrong"}):
        response = httpx.get(url, headers=headers)
        assert (response.status_code, response.json()) == (401, {"error": "Unauthorized"})
    aid = _asset(client)["id"]
    state = mediapocket_sandbox.state
    state.add_api_key("view-only", permissions={"ACTIONS_VIEW"})
    state.add_api_key("nothing", permissions=set())
    base = mediapocket_sandbox.base_url
    start = httpx.post(f"{base}/api/v2/assets/{aid}/dag_actions/1", headers={"X-API-KEY": "view-only"})
    assert (start.status_code, start.json()) == (
        403,
        {"error": "Permission denied. Must have ACTIONS_START permissions."},
    )
    assert (
        httpx.get(f"{base}/api/v2/assets/{aid}/dag_actions", headers={"X-API-KEY": "view-only"}).status_code
        == 200
    )
    for sub in ("dag_actions", "dag_action_runs"):
        denied = httpx.get(f"{base}/api/v2/assets/{aid}/{sub}", headers={"X-API-KEY": "nothing"})
        assert (denied.status_code, denied.json()) == (
            403,
            {"error": "Permission denied. Must have ACTIONS_VIEW permissions."},
        )


def test_comment_owner_only(mediapocket_sandbox: MediaPocketSandbox, client: httpx.Client) -> None:
    other_id = mediapocket_sandbox.state.add_api_key("other-key", email="other@example.com")
    aid = _asset(client)["id"]
    other = {"X-API-KEY": "other-key"}
    comment = httpx.post(
        f"{mediapocket_sandbox.base_url}/api/v2/assets/{aid}/comments",
        json={"comment": "theirs"},
        headers=other,
    ).json()["comment"]
    assert comment["user"]["id"] == other_id and comment["user"]["email"] == "other@example.com"
    url = f"/api/v2/assets/{aid}/comments/{comment['id']}"
    for response in (client.post(url, json={"comment": "mine"}), client.delete(url)):
        assert (response.status_code, response.json()) == (
            403,
            {"error": "Not allowed to perform this action"},
        )
    own = client.post(f"/api/v2/assets/{aid}/comments", json={"comment": "mine"}).json()["comment"]
    edited = client.put(f"/api/v2/assets/{aid}/comments/{own['id']}", json={"comment": "edited"}).json()
    assert edited["comment"]["message"] == "edited"
    assert client.delete(f"/api/v2/assets/{aid}/comments/{own['id']}").json() == {"ok": "comment deleted"}
    assert [c["message"] for c in client.get(f"/api/v2/assets/{aid}/comments").json()["comments"]] == [
        "theirs"
    ]


def test_api_keys_are_masked_and_per_user(
    mediapocket_sandbox: MediaPocketSandbox, client: httpx.Client
) -> None:
    mediapocket_sandbox.state.add_api_key("someone-elses-key", email="else@example.com")
    keys = client.get("/api/v2/user/api_keys").json()["api_keys"]
    assert len(keys) == 1 and mediapocket_sandbox.api_key not in json.dumps(keys)
    created = client.post("/api/v2/user/api_keys", json={"name": "ci"}).json()["api_key"]
    assert created["name"] == "ci" and len(created["key"]) > 20
    listed = client.get("/api/v2/user/api_keys").json()["api_keys"]
    assert len(listed) == 2 and created["key"] not in json.dumps(listed)
    assert "someone-elses-key" not in json.dumps(listed)
    fresh = httpx.get(
        f"{mediapocket_sandbox.base_url}/api/v2/projects", headers={"X-API-KEY": created["key"]}
    )
    assert fresh.status_code == 200


def test_project_members_guests_groups_and_thumbnail(
    mediapocket_sandbox: MediaPocketSandbox, client: httpx.Client
) -> None:
    state = mediapocket_sandbox.state
    pid = state.seed_project_id
    member = state.add_user(email="member@example.com")
    group = state.add_user_group(name="editors", user_ids=[state.add_user(email="g@example.com")])
    assert client.post(f"/api/v2/projects/{pid}/users/{member}").json() == {
        "ok": f"User {member} was added succesfully"
    }
    assert client.post(f"/api/v2/projects/{pid}/user_groups/{group}").status_code == 200
    guests = client.post(f"/api/v2/projects/{pid}/guests", json={"email": "guest@example.com"}).json()[
        "users"
    ]
    assert [u["user_role"]["name"] for u in guests] == ["admin", "member", "guest"]
    everyone = client.get(f"/api/v2/projects/{pid}/all_users").json()["users"]
    assert {u["email"] for u in everyone} >= {"g@example.com", "guest@example.com"}
    image = state.add_asset(title="img", project_id=pid)["id"]
    state.add_media(image, "cover.png", processed=True)
    assert (
        client.put(f"/api/v2/projects/{pid}/thumbnail", json={"thumbnail_asset_id": image}).status_code == 200
    )
    assert state.projects[pid]["thumbnail_asset_id"] == image


def test_connection_env_and_plugin_fixture(mediapocket_sandbox: MediaPocketSandbox) -> None:
    env = mediapocket_sandbox.airflow_connection_env("my_conn")
    conn = json.loads(env["AIRFLOW_CONN_MY_CONN"])
    assert conn == {
        "conn_type": "mediapocket",
        "host": mediapocket_sandbox.base_url,
        "password": mediapocket_sandbox.api_key,
        "extra": {"retry_backoff": 0.05},
    }
    assert json.loads(os.environ["AIRFLOW_CONN_MEDIAPOCKET_DEFAULT"])["host"] == mediapocket_sandbox.base_url
    assert mediapocket_sandbox.state.media_processing_seconds == 0.2
