"""A project's history feed also shows what happens to the assets in it (ingest, comments, edits)."""

from __future__ import annotations

import httpx

from airflow_provider_mediapocket.sandbox import MediaPocketSandbox


def _types(client: httpx.Client, kind: str, oid: str) -> list[str]:
    body = client.get(f"/api/v2/{kind}/{oid}/history/0").json()
    return [event["event_type"] for event in reversed(body["history"]["results"])]


def test_project_feed_has_its_assets_events(mediapocket_sandbox: MediaPocketSandbox, client: httpx.Client) -> None:
    state = mediapocket_sandbox.state
    pid = state.seed_project_id
    before = _types(client, "projects", pid)
    inside = client.post(
        f"/api/v2/projects/{pid}/assets", json={"title": "In", "url": {"file_url": "https://x.test/in.jpg", "filename": "in.jpg"}}
    ).json()["asset"]
    outside = client.post("/api/v2/assets", json={"title": "Out"}).json()["asset"]
    client.post(f"/api/v2/assets/{outside['id']}/media", json={"file_url": "https://x.test/o.jpg", "filename": "o.jpg"})
    client.post(f"/api/v2/assets/{inside['id']}/comments", json={"comment": "hi"})
    state.advance(state.media_processing_seconds + 1)

    new = _types(client, "projects", pid)[len(before):]
    assert new == ["ASSET_ADDED", "ASSET_STARTED_INGEST", "ASSET_ADDED_COMMENT", "ASSET_FINISHED_INGEST"]
    latest = client.get(f"/api/v2/projects/{pid}/history/0").json()["history"]["results"][0]
    # The event names the asset it is about (the project is the feed, not a target).
    assert [t["target"]["elasticsearch_id"] for t in latest["event_targets"]] == [inside["id"]]
    # The asset's own feed is unchanged; the other asset's events stay out of the project's feed.
    assert _types(client, "assets", inside["id"])[-1] == "ASSET_FINISHED_INGEST"
    assert "ASSET_FINISHED_INGEST" in _types(client, "assets", outside["id"])
