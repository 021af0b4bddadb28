"""HTTP layer of the Media Pocket API v2 sandbox: routing, validation, faults, request log."""

from __future__ import annotations

import contextlib
import json
import re
import socket
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from types import TracebackType
from typing import Any
from urllib.parse import parse_qsl, urlsplit

from airflow_provider_mediapocket.sandbox import ui
from airflow_provider_mediapocket.sandbox.state import (
    FAULT_ERRORS,
    FAULT_KINDS,
    JSON,
    ApiError,
    FaultConfig,
    SandboxState,
)

Reply = tuple[int, JSON]
#: The key the sandbox accepts unless told otherwise (the CLI's ``--api-key`` default, as in the README).
DEFAULT_API_KEY = "sandbox-api-key"
MAX_TITLE = 255
STRING_PARAMS = ("title", "description", "category", "external_id", "status")


@dataclass(frozen=True)
class RequestRecord:
    """One request seen by the sandbox (headers, and so the API key, are never recorded)."""

    method: str
    path: str
    query: dict[str, str]
    body: Any
    status: int | None
    fault: str | None = None


@dataclass(frozen=True)
class RawReply:
    """A scripted answer sent as is instead of the API's (fault kind ``"raw"``): any status, body,
    content type and headers, e.g. an HTML 200 from a proxy, a malformed ``Retry-After`` or a redirect."""

    status: int = 200
    body: bytes = b""
    content_type: str | None = "application/json; charset=utf-8"
    headers: tuple[tuple[str, str], ...] = ()


@dataclass
class _Scripted:
    kind: str
    method: str | None
    path_prefix: str | None
    delay: float
    retry_after: int | str
    reply: RawReply | None = None

    def matches(self, method: str, path: str) -> bool:
        return (self.method is None or self.method == method) and (
            self.path_prefix is None or path.startswith(self.path_prefix)
        )


@dataclass
class Ctx:
    """What a route handler gets: the state, path arguments, query, JSON body and caller."""

    state: SandboxState
    args: dict[str, str]
    query: dict[str, str]
    body: JSON
    user_id: int
    permissions: frozenset[str]

    @property
    def kind(self) -> str:
        """ "Asset" or "Project", from the path."""
        return "Asset" if self.args.get("kind", "assets") == "assets" else "Project"

    def target(self) -> JSON:
        """The asset/project named by the path (404 when unknown)."""
        oid = self.args["id"]
        return self.state.asset(oid) if self.kind == "Asset" else self.state.project(oid)

    def require(self, name: str) -> Any:
        """A required body parameter (422 when missing)."""
        value = self.body.get(name)
        if value is None:
            raise ApiError(422, f"Missing parameter {name}")
        return value

    def require_permission(self, permission: str) -> None:
        """403 unless the caller's key has ``permission``."""
        if permission not in self.permissions:
            raise ApiError(403, f"Permission denied. Must have {permission} permissions.")


# ---------------------------------------------------------------------- validation
def _invalid(name: str, value: Any, rule: str) -> ApiError:
    return ApiError(422, f"Invalid parameter '{name}' value {json.dumps(value)}: {rule}")


def metadata_params(body: JSON, create: bool, allow_media_type: bool = True) -> JSON:
    """Validate asset/project metadata parameters and return the accepted ones."""
    if create and body.get("title") is None:
        raise ApiError(422, "Missing parameter title")
    fields: JSON = {}
    for name in STRING_PARAMS:
        if name in body:
            value = body[name]
            if value is not None and not isinstance(value, str):
                raise _invalid(name, value, "Must be a String")
            fields[name] = value
    if "tags" in body and body["tags"] is not None:
        tags = body["tags"]
        if not isinstance(tags, list) or not all(isinstance(t, str) for t in tags):
            raise _invalid("tags", tags, "Must be an array of String")
        fields["tags"] = tags
    if create and allow_media_type and body.get("media_type") is not None:
        if body["media_type"] != "article":
            raise _invalid("media_type", body["media_type"], "Must be one of: <code>article</code>.")
        fields["media_type"] = "article"
    if create or fields.get("status") is None:
        fields.pop("status", None)
    if fields.get("title") is not None and len(fields["title"]) > MAX_TITLE:
        raise ApiError(400, f"Title is too long (maximum is {MAX_TITLE} characters)")
    if create and fields.get("title") is None:
        fields.pop("title", None)
    return fields


def media_params(value: Any, prefix: str, keys: tuple[str, str]) -> tuple[str, str]:
    """Validate a ``{file_url|s3_key, filename}`` media object (422 on a missing/invalid part)."""
    if not isinstance(value, dict):
        raise _invalid(prefix, value, "Must be a Hash")
    out = []
    for key in keys:
        name = f"{prefix}[{key}]" if prefix else key
        part = value.get(key)
        if part is None:
            raise ApiError(422, f"Missing parameter {name}")
        if not isinstance(part, str):
            raise _invalid(name, part, "Must be a String")
        out.append(part)
    return out[0], out[1]


def is_http_url(url: str) -> bool:
    """True for an absolute http(s) URL with a host."""
    parts = urlsplit(url)
    return parts.scheme in ("http", "https") and bool(parts.netloc)


# ---------------------------------------------------------------------- handlers shared by assets/projects
def _wrap(ctx: Ctx, obj: JSON) -> JSON:
    return {ctx.kind.lower(): obj}


def get_target(ctx: Ctx) -> Reply:
    """GET /assets/:id, /projects/:id."""
    return 200, _wrap(ctx, ctx.target())


def update_target(ctx: Ctx) -> Reply:
    """PUT /assets/:id, /projects/:id."""
    obj = ctx.target()
    fields = metadata_params(ctx.body, create=False)
    if ctx.kind == "Asset":
        return 200, _wrap(ctx, ctx.state.update_asset(obj["id"], ctx.user_id, fields))
    return 200, _wrap(ctx, ctx.state.update_project(obj["id"], ctx.user_id, fields))


def trash_target(ctx: Ctx) -> Reply:
    """POST .../trash_bin."""
    ctx.state.set_trashed(ctx.kind, ctx.target()["id"], True, ctx.user_id)
    return 200, {"ok": "ok"}


def restore_target(ctx: Ctx) -> Reply:
    """POST .../restore."""
    ctx.state.set_trashed(ctx.kind, ctx.target()["id"], False, ctx.user_id)
    return 200, {"ok": "ok"}


def delete_target(ctx: Ctx) -> Reply:
    """DELETE /assets/:id, /projects/:id."""
    oid = ctx.target()["id"]
    if ctx.kind == "Asset":
        ctx.state.delete_asset(oid)
    else:
        ctx.state.delete_project(oid)
    return 200, {"ok": "ok"}


def _ok_or_error(error: str | None) -> Reply:
    return 200, ({"error": error} if error else {"ok": "ok"})


def assign_target(ctx: Ctx) -> Reply:
    """POST .../assign: failures are HTTP 200 with an error body."""
    oid = ctx.target()["id"]
    to_project = ctx.require("to_project_id")
    if not isinstance(to_project, str):
        raise _invalid("to_project_id", to_project, "Must be a String")
    return _ok_or_error(ctx.state.assign(ctx.kind, oid, to_project, ctx.user_id))


def unassign_target(ctx: Ctx) -> Reply:
    """DELETE .../unassign: failures are HTTP 200 with an error body."""
    return _ok_or_error(ctx.state.unassign(ctx.kind, ctx.target()["id"], ctx.user_id))


def list_comments(ctx: Ctx) -> Reply:
    """GET .../comments."""
    oid = ctx.target()["id"]
    return 200, {"comments": [ctx.state.render_comment(c) for c in ctx.state.comments_of(ctx.kind, oid)]}


def _comment_text(ctx: Ctx) -> str:
    text = ctx.require("comment")
    if not isinstance(text, str):
        raise _invalid("comment", text, "Must be a String")
    return text


def create_comment(ctx: Ctx) -> Reply:
    """POST .../comments."""
    oid = ctx.target()["id"]
    return 200, {"comment": ctx.state.add_comment(ctx.kind, oid, _comment_text(ctx), ctx.user_id)}


def get_comment(ctx: Ctx) -> Reply:
    """GET .../comments/:comment_id."""
    comment = ctx.state.find_comment(ctx.kind, ctx.target()["id"], ctx.args["cid"])
    return 200, {"comment": ctx.state.render_comment(comment)}


def update_comment(ctx: Ctx) -> Reply:
    """POST/PUT .../comments/:comment_id (owner only)."""
    comment = ctx.state.owned_comment(ctx.kind, ctx.target()["id"], ctx.args["cid"], ctx.user_id)
    comment.update(message=_comment_text(ctx), updated_at=ctx.state.now())
    return 200, {"comment": ctx.state.render_comment(comment)}


def delete_comment(ctx: Ctx) -> Reply:
    """DELETE .../comments/:comment_id (owner only)."""
    comment = ctx.state.owned_comment(ctx.kind, ctx.target()["id"], ctx.args["cid"], ctx.user_id)
    ctx.state.delete_comment(comment["id"])
    return 200, {"ok": "comment deleted"}


def history(ctx: Ctx) -> Reply:
    """GET .../history/:cursor."""
    oid = ctx.target()["id"]
    return 200, {"history": ctx.state.history_page(ctx.kind, oid, ctx.args.get("cursor") or "0")}


def list_attachments(ctx: Ctx) -> Reply:
    """GET .../attachments."""
    return 200, {"attachments": ctx.state.attachments_of(ctx.target()["id"])}


def create_attachment(ctx: Ctx) -> Reply:
    """POST .../attachments: an asset whose parent is the asset/project."""
    parent = ctx.target()["id"]
    fields = metadata_params(ctx.body, create=True, allow_media_type=False)
    ctx.state.check_external_id(fields.get("external_id"))
    return 200, {"asset": ctx.state.add_asset(user_id=ctx.user_id, parent_id=parent, **fields)}


# ---------------------------------------------------------------------- asset-only handlers
def create_asset(ctx: Ctx, project_id: str | None = None) -> JSON:
    """Validate and create an asset; returns the stored asset."""
    fields = metadata_params(ctx.body, create=True)
    ctx.state.check_external_id(fields.get("external_id"))
    return ctx.state.add_asset(user_id=ctx.user_id, project_id=project_id, **fields)


def post_asset(ctx: Ctx) -> Reply:
    """POST /assets."""
    return 200, {"asset": create_asset(ctx)}


def add_media(ctx: Ctx) -> Reply:
    """POST /assets/:id/media."""
    asset = ctx.target()
    file_url, filename = media_params(ctx.body, "", ("file_url", "filename"))
    if not is_http_url(file_url):
        raise ApiError(400, "not a valid HTTP URL")
    ctx.state.add_media(asset["id"], filename, file_url=file_url, user_id=ctx.user_id)
    return 200, {"ok": "ok"}


def _render_media(media: JSON, locations: bool) -> JSON:
    ready = media["status"] == "ready"
    out = {
        "id": media["id"],
        "filename": media["filename"],
        "media_type": media["media_type"],
        "status": media["status"],
        "size": media["size"],
        "created_at": media["created_at"],
        "preview_url": f"https://sandbox.mediapocket.invalid/previews/{media['id']}.jpg" if ready else None,
    }
    if locations:
        key = f"originals/{media['asset_id']}/{media['id']}/{media['filename']}"
        out["locations"] = [{"type": "original", "storage": "s3", "key": key}]
    return out


def list_media(ctx: Ctx) -> Reply:
    """GET /assets/:id/media[?include_locations=true]."""
    locations = ctx.query.get("include_locations", "").lower() in ("true", "1", "yes")
    return 200, {"media": [_render_media(m, locations) for m in ctx.state.media_of(ctx.target()["id"])]}


def remove_media(ctx: Ctx) -> Reply:
    """DELETE /assets/:id/media: 200 with an ``errors`` object when there was no media."""
    asset = ctx.target()
    if ctx.state.remove_media(asset["id"]):
        return 200, {"asset": asset}
    return 200, {"asset": asset, "errors": {"error": "No media found on this asset.", "status": 400}}


def download_url(ctx: Ctx) -> Reply:
    """GET /assets/:id/media/:media_id/download_url?filename=."""
    media = ctx.state.find_media(ctx.target()["id"], ctx.args["mid"])
    filename = ctx.query.get("filename")
    if not filename:
        raise ApiError(422, "Missing parameter filename")
    if media["status"] != "ready":
        return 200, {"url": None}
    url = f"https://sandbox.mediapocket.invalid/download/{media['asset_id']}/{media['id']}/{filename}"
    return 200, {"url": url}


def file_metadata(ctx: Ctx) -> Reply:
    """GET /assets/:id/file_metadata (404 until the media is processed)."""
    media = next((m for m in ctx.state.media_of(ctx.target()["id"]) if m["status"] == "ready"), None)
    if media is None:
        raise ApiError(404, "File metadata not found")
    return 200, {
        "file_metadata": {
            "exif": {
                "FileName": media["filename"],
                "FileSize": media["size"],
                "MIMEType": media["media_type"],
            },
            "mediainfo": {"format": media["filename"].rsplit(".", 1)[-1].upper(), "size": media["size"]},
        }
    }


def collections(ctx: Ctx) -> Reply:
    """GET /assets/:id/collections."""
    return 200, {"collections": ctx.state.collections_of(ctx.target()["id"])}


def list_dag_actions(ctx: Ctx) -> Reply:
    """GET /assets/:id/dag_actions (ACTIONS_VIEW)."""
    ctx.require_permission("ACTIONS_VIEW")
    ctx.target()
    return 200, {"dag_actions": ctx.state.dag_actions()}


def start_dag_action(ctx: Ctx) -> Reply:
    """POST /assets/:id/dag_actions/:dag_action_id (ACTIONS_START)."""
    ctx.require_permission("ACTIONS_START")
    run = ctx.state.start_run(ctx.target()["id"], ctx.args["aid"], ctx.user_id)
    return 200, {"dag_action_run": run}


def list_runs(ctx: Ctx) -> Reply:
    """GET /assets/:id/dag_action_runs (ACTIONS_VIEW)."""
    ctx.require_permission("ACTIONS_VIEW")
    return 200, {"dag_action_runs": ctx.state.runs_of(ctx.target()["id"])}


# ---------------------------------------------------------------------- project-only handlers
def list_projects(ctx: Ctx) -> Reply:
    """GET /projects."""
    return 200, {"projects": ctx.state.top_level_projects()}


def create_project(ctx: Ctx, parent: str | None = None) -> Reply:
    """POST /projects (and sub-projects)."""
    fields = metadata_params(ctx.body, create=True, allow_media_type=False)
    ctx.state.check_external_id(fields.get("external_id"))
    return 200, {"project": ctx.state.add_project(user_id=ctx.user_id, project_id=parent, **fields)}


def list_subprojects(ctx: Ctx) -> Reply:
    """GET /projects/:id/projects."""
    return 200, {"projects": ctx.state.children(ctx.target()["id"])[1]}


def post_subproject(ctx: Ctx) -> Reply:
    """POST /projects/:id/projects."""
    return create_project(ctx, ctx.target()["id"])


def project_assets(ctx: Ctx) -> Reply:
    """GET /projects/:id/assets."""
    pid = ctx.target()["id"]
    assets, subs = ctx.state.children(pid)
    return 200, {"assets": assets, "subprojects": subs, "stats": ctx.state.stats(pid)}


def post_project_asset(ctx: Ctx) -> Reply:
    """POST /projects/:id/assets, with optional media from ``url`` or ``s3``."""
    pid = ctx.target()["id"]
    url = media_params(ctx.body["url"], "url", ("file_url", "filename")) if ctx.body.get("url") else None
    s3 = media_params(ctx.body["s3"], "s3", ("s3_key", "filename")) if ctx.body.get("s3") else None
    asset = create_asset(ctx, pid)
    if url is not None:
        if not is_http_url(url[0]):
            return 200, {
                "error": f"Asset {asset['id']} created, adding media to asset failed: not a valid HTTP URL"
            }
        ctx.state.add_media(asset["id"], url[1], file_url=url[0], user_id=ctx.user_id)
    elif s3 is not None:
        ctx.state.add_media(asset["id"], s3[1], file_url=f"s3://{s3[0]}", user_id=ctx.user_id)
    return 200, {"asset": ctx.state.asset(asset["id"])}


def project_stats(ctx: Ctx) -> Reply:
    """GET /projects/:id/stats."""
    return 200, {"stats": ctx.state.stats(ctx.target()["id"])}


def make_public(ctx: Ctx) -> Reply:
    """POST /projects/:id/public."""
    ctx.state.set_project_public(ctx.target()["id"], True)
    return 200, {"is_public": True}


def make_private(ctx: Ctx) -> Reply:
    """POST /projects/:id/private."""
    ctx.state.set_project_public(ctx.target()["id"], False)
    return 200, {"is_public": False}


def all_users(ctx: Ctx) -> Reply:
    """GET /projects/:id/all_users (members and user-group members)."""
    return 200, {"users": ctx.state.project_users(ctx.target()["id"], include_groups=True)}


def users(ctx: Ctx) -> Reply:
    """GET /projects/:id/users."""
    return 200, {"users": ctx.state.project_users(ctx.target()["id"])}


def add_user(ctx: Ctx) -> Reply:
    """POST /projects/:id/users/:user_id."""
    ctx.state.add_project_user(ctx.target()["id"], ctx.args["uid"], actor_id=ctx.user_id)
    return 200, {"ok": f"User {ctx.args['uid']} was added succesfully"}


def remove_user(ctx: Ctx) -> Reply:
    """DELETE /projects/:id/users/:user_id."""
    ctx.state.remove_project_user(ctx.target()["id"], ctx.args["uid"], actor_id=ctx.user_id)
    return 200, {"ok": f"User {ctx.args['uid']} was removed succesfully"}


def add_guest(ctx: Ctx) -> Reply:
    """POST /projects/:id/guests {"email"}."""
    pid = ctx.target()["id"]
    email = ctx.require("email")
    if not isinstance(email, str) or "@" not in email:
        raise _invalid("email", email, "Must be a valid email address")
    ctx.state.add_guest(pid, email, ctx.user_id)
    return 200, {"users": ctx.state.project_users(pid)}


def user_groups(ctx: Ctx) -> Reply:
    """GET /projects/:id/user_groups."""
    return 200, {"user_groups": ctx.state.project_user_groups(ctx.target()["id"])}


def add_group(ctx: Ctx) -> Reply:
    """POST /projects/:id/user_groups/:group_id."""
    ctx.state.add_project_user_group(ctx.target()["id"], ctx.args["gid"])
    return 200, {"ok": f"User group {ctx.args['gid']} was added succesfully"}


def remove_group(ctx: Ctx) -> Reply:
    """DELETE /projects/:id/user_groups/:group_id."""
    ctx.state.remove_project_user_group(ctx.target()["id"], ctx.args["gid"])
    return 200, {"ok": f"User group {ctx.args['gid']} was removed succesfully"}


def set_thumbnail(ctx: Ctx) -> Reply:
    """PUT /projects/:id/thumbnail {"thumbnail_asset_id"}."""
    pid = ctx.target()["id"]
    asset_id = ctx.require("thumbnail_asset_id")
    if not isinstance(asset_id, str):
        raise _invalid("thumbnail_asset_id", asset_id, "Must be a String")
    ctx.state.set_thumbnail(pid, asset_id)
    return 200, {"message": f"Succesfully added asset {asset_id} as projects thumbnail image"}


def remove_thumbnail(ctx: Ctx) -> Reply:
    """DELETE /projects/:id/thumbnail."""
    ctx.state.set_thumbnail(ctx.target()["id"], None)
    return 200, {"message": "Succesfully removed thumbnail from project"}


# ---------------------------------------------------------------------- user api keys
def list_keys(ctx: Ctx) -> Reply:
    """GET /user/api_keys: the caller's keys, masked."""
    return 200, {"api_keys": ctx.state.list_api_keys(ctx.user_id)}


def create_key(ctx: Ctx) -> Reply:
    """POST /user/api_keys: a new key for the caller, shown in full once."""
    name = ctx.body.get("name")
    if name is not None and not isinstance(name, str):
        raise _invalid("name", name, "Must be a String")
    wanted = ctx.body.get("permissions")
    if wanted is None:
        permissions: frozenset[str] = ctx.permissions
    elif isinstance(wanted, list) and all(isinstance(p, str) for p in wanted):
        permissions = frozenset(wanted) & ctx.permissions
    else:
        raise _invalid("permissions", wanted, "Must be an array of String")
    return 200, {"api_key": ctx.state.create_api_key(ctx.user_id, name, permissions)}


# ---------------------------------------------------------------------- route table
Handler = Callable[[Ctx], Reply]
_BOTH = "(?P<kind>assets|projects)"
_A = "(?P<kind>assets)/(?P<id>[^/]+)"
_P = "(?P<kind>projects)/(?P<id>[^/]+)"
_ROUTE_SPECS: list[tuple[str, str, Handler]] = [
    ("POST", "assets", post_asset),
    ("GET", "projects", list_projects),
    ("POST", "projects", create_project),
    ("GET", "user/api_keys", list_keys),
    ("POST", "user/api_keys", create_key),
    ("GET", f"{_BOTH}/(?P<id>[^/]+)", get_target),
    ("PUT", f"{_BOTH}/(?P<id>[^/]+)", update_target),
    ("DELETE", f"{_BOTH}/(?P<id>[^/]+)", delete_target),
    ("POST", f"{_BOTH}/(?P<id>[^/]+)/trash_bin", trash_target),
    ("POST", f"{_BOTH}/(?P<id>[^/]+)/restore", restore_target),
    ("POST", f"{_BOTH}/(?P<id>[^/]+)/assign", assign_target),
    ("DELETE", f"{_BOTH}/(?P<id>[^/]+)/unassign", unassign_target),
    ("GET", f"{_BOTH}/(?P<id>[^/]+)/comments", list_comments),
    ("POST", f"{_BOTH}/(?P<id>[^/]+)/comments", create_comment),
    ("GET", f"{_BOTH}/(?P<id>[^/]+)/comments/(?P<cid>[^/]+)", get_comment),
    ("POST", f"{_BOTH}/(?P<id>[^/]+)/comments/(?P<cid>[^/]+)", update_comment),
    ("PUT", f"{_BOTH}/(?P<id>[^/]+)/comments/(?P<cid>[^/]+)", update_comment),
    ("DELETE", f"{_BOTH}/(?P<id>[^/]+)/comments/(?P<cid>[^/]+)", delete_comment),
    ("GET", f"{_BOTH}/(?P<id>[^/]+)/history(?:/(?P<cursor>[^/]+))?", history),
    ("GET", f"{_BOTH}/(?P<id>[^/]+)/attachments", list_attachments),
    ("POST", f"{_BOTH}/(?P<id>[^/]+)/attachments", create_attachment),
    ("POST", f"{_A}/media", add_media),
    ("GET", f"{_A}/media", list_media),
    ("DELETE", f"{_A}/media", remove_media),
    ("GET", f"{_A}/media/(?P<mid>[^/]+)/download_url", download_url),
    ("GET", f"{_A}/file_metadata", file_metadata),
    ("GET", f"{_A}/collections", collections),
    ("GET", f"{_A}/dag_actions", list_dag_actions),
    ("POST", f"{_A}/dag_actions/(?P<aid>[^/]+)", start_dag_action),
    ("GET", f"{_A}/dag_action_runs", list_runs),
    ("GET", f"{_P}/projects", list_subprojects),
    ("POST", f"{_P}/projects", post_subproject),
    ("GET", f"{_P}/assets", project_assets),
    ("POST", f"{_P}/assets", post_project_asset),
    ("GET", f"{_P}/stats", project_stats),
    ("POST", f"{_P}/public", make_public),
    ("POST", f"{_P}/private", make_private),
    ("GET", f"{_P}/all_users", all_users),
    ("GET", f"{_P}/users", users),
    ("POST", f"{_P}/users/(?P<uid>[^/]+)", add_user),
    ("DELETE", f"{_P}/users/(?P<uid>[^/]+)", remove_user),
    ("POST", f"{_P}/guests", add_guest),
    ("GET", f"{_P}/user_groups", user_groups),
    ("POST", f"{_P}/user_groups/(?P<gid>[^/]+)", add_group),
    ("DELETE", f"{_P}/user_groups/(?P<gid>[^/]+)", remove_group),
    ("PUT", f"{_P}/thumbnail", set_thumbnail),
    ("DELETE", f"{_P}/thumbnail", remove_thumbnail),
]
ROUTES: dict[str, list[tuple[re.Pattern[str], Handler]]] = {}
for _method, _pattern, _handler in _ROUTE_SPECS:
    ROUTES.setdefault(_method, []).append((re.compile(f"/api/v2/{_pattern}/?"), _handler))

API_PREFIX = "/api/v2/"
NOT_FOUND: JSON = {"error": "Not found"}


def _encode(body: JSON) -> bytes:
    return json.dumps(body, separators=(",", ":")).encode()


# ---------------------------------------------------------------------- HTTP server
class _Refused(Exception):
    """A request refused at the HTTP layer (unusable framing, body too large or too slow)."""

    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status
        self.message = message


class _Server(ThreadingHTTPServer):
    daemon_threads = True
    block_on_close = False
    allow_reuse_address = True
    request_queue_size = 1024

    def __init__(self, address: tuple[str, int], sandbox: MediaPocketSandbox) -> None:
        self.sandbox = sandbox
        # Every accepted connection until its handler is done with it, so that stop() can end the
        # kept-alive ones (their handler threads would otherwise go on answering after stop()).
        self._connections: set[socket.socket] = set()
        self._connections_lock = threading.Lock()
        super().__init__(address, _RequestHandler)

    def get_request(self) -> tuple[socket.socket, Any]:
        connection, address = super().get_request()
        with self._connections_lock:
            self._connections.add(connection)
        return connection, address

    def shutdown_request(self, request: Any) -> None:
        with self._connections_lock:
            self._connections.discard(request)
        super().shutdown_request(request)

    def close_connections(self) -> None:
        """Shut down every open connection: a handler blocked on a read sees EOF and ends, the peer sees
        EOF or a reset. Only ``shutdown`` here; the handler thread closes its own socket (closing it from
        this thread could close a file descriptor number that is already reused)."""
        with self._connections_lock:
            connections = list(self._connections)
        for connection in connections:
            with contextlib.suppress(OSError):
                connection.shutdown(socket.SHUT_RDWR)


class _RequestHandler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    # Headers and body go out in separate writes: without TCP_NODELAY, Nagle's algorithm and the
    # client's delayed ACK add ~40 ms to every keep-alive response.
    disable_nagle_algorithm = True
    server: _Server

    def setup(self) -> None:
        # A socket timeout on every read and write of the connection: an idle kept-alive connection,
        # a request that stops half-way and a client that never reads its answer each end after
        # ``connection_timeout`` seconds instead of holding a handler thread forever.
        super().setup()
        self.connection.settimeout(self.server.sandbox.connection_timeout)

    def log_message(self, format: str, *args: Any) -> None:
        """Never log (requests carry the API key in a header)."""

    def do_GET(self) -> None:
        self._handle("GET")

    def do_POST(self) -> None:
        self._handle("POST")

    def do_PUT(self) -> None:
        self._handle("PUT")

    def do_DELETE(self) -> None:
        self._handle("DELETE")

    def do_PATCH(self) -> None:
        self._handle("PATCH")

    def _send(
        self,
        status: int,
        payload: bytes,
        headers: dict[str, str] | None = None,
        content_type: str | None = "application/json; charset=utf-8",
    ) -> None:
        self.send_response(status)
        if content_type is not None:
            self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(payload)))
        for name, value in (headers or {}).items():
            self.send_header(name, value)
        self.end_headers()
        self.wfile.write(payload)

    def _abort(self) -> None:
        """Close the connection without sending any response."""
        self.close_connection = True
        with contextlib.suppress(OSError):
            self.connection.shutdown(socket.SHUT_RDWR)

    def send_error(self, code: int, message: str | None = None, explain: str | None = None) -> None:
        """The HTTP layer's own errors (bad request line, 414, 431, 501, ...) as JSON, like the API's,
        instead of the standard library's HTML page; the connection is closed after them."""
        self.close_connection = True
        # Before the request line is understood the version is HTTP/0.9, which has no status line
        # or headers: answer as HTTP/1.1 so that any client can read the error.
        if self.request_version == "HTTP/0.9":
            self.request_version = "HTTP/1.1"
        reason = self.responses.get(code, ("Error", ""))[0]
        self.send_response(code, reason)
        self.send_header("Connection", "close")
        if code < 200 or code in (204, 205, 304) or self.command == "HEAD":
            self.end_headers()
            return
        payload = _encode({"error": message or reason})
        self.send_header("Content-Type", "application/json; charset=utf-8")
        self.send_header("Content-Length", str(len(payload)))
        self.end_headers()
        self.wfile.write(payload)

    def handle_expect_100(self) -> bool:
        # Refuse an unusable or too large body before inviting the client to send it.
        try:
            self._content_length()
        except _Refused as refused:
            split = urlsplit(self.path)
            query = dict(parse_qsl(split.query, keep_blank_values=True))
            self.server.sandbox.record(RequestRecord(self.command, split.path, query, None, refused.status))
            self._refuse(refused.status, refused.message)
            return False
        return super().handle_expect_100()

    def _refuse(self, status: int, message: str) -> None:
        """Answer an HTTP-level error (JSON, like the API's) and close: after a bad or unread body the
        rest of the stream cannot be trusted to start the next request."""
        self.close_connection = True
        with contextlib.suppress(OSError):
            self._send(status, _encode({"error": message}), {"Connection": "close"})
            # Lingering close: closing with unread request bytes makes the kernel send a reset, which
            # can destroy the answer before the client reads it. Read and discard for a bounded while.
            self.connection.shutdown(socket.SHUT_WR)
            deadline = time.monotonic() + min(self.server.sandbox.connection_timeout, 2.0)
            budget = 1 << 20
            while budget > 0 and (left := deadline - time.monotonic()) > 0:
                self.connection.settimeout(left)
                chunk = self.connection.recv(1 << 16)
                if not chunk:
                    break
                budget -= len(chunk)

    def _content_length(self) -> int:
        """The body's length from a usable ``Content-Length`` (none: 0)."""
        if self.headers.get("Transfer-Encoding") is not None:
            raise _Refused(411, "Transfer-Encoding is not supported: send the body with a Content-Length")
        values = self.headers.get_all("Content-Length") or []
        if not values:
            return 0
        text = values[0].strip()
        if len(values) > 1 or not (text.isascii() and text.isdigit()):
            raise _Refused(400, f"Invalid Content-Length header: {', '.join(values)[:40]!r}")
        length = int(text)
        limit = self.server.sandbox.max_body_bytes
        if length > limit:
            raise _Refused(413, f"Request body too large: {length} bytes, the limit is {limit}")
        return length

    def _read_body(self, length: int) -> bytes:
        """Exactly ``length`` bytes of body, all within one ``connection_timeout`` (a client dripping a
        byte at a time cannot hold the thread either)."""
        timeout = self.server.sandbox.connection_timeout
        deadline = time.monotonic() + timeout
        chunks: list[bytes] = []
        remaining = length
        try:
            while remaining > 0:
                left = deadline - time.monotonic()
                if left <= 0:
                    raise TimeoutError
                self.connection.settimeout(left)
                chunk = self.rfile.read1(min(remaining, 1 << 16))
                if not chunk:
                    raise _Refused(400, f"Request body ended after {length - remaining} of {length} bytes")
                chunks.append(chunk)
                remaining -= len(chunk)
        except TimeoutError:
            raise _Refused(
                408, f"Request body not received within {timeout:g}s ({length - remaining} of {length} bytes)"
            ) from None
        self.connection.settimeout(timeout)
        return b"".join(chunks)

    def _handle(self, method: str) -> None:
        sandbox = self.server.sandbox
        split = urlsplit(self.path)
        path, query = split.path, dict(parse_qsl(split.query, keep_blank_values=True))
        try:
            raw = self._read_body(self._content_length())
        except _Refused as refused:
            sandbox.record(RequestRecord(method, path, query, None, refused.status))
            self._refuse(refused.status, refused.message)
            return
        try:
            body: Any = json.loads(raw) if raw.strip() else None
            bad_json = False
        except (ValueError, RecursionError):  # RecursionError: nesting deeper than the parser's stack
            body, bad_json = raw.decode("utf-8", "replace"), True

        def record(status: int | None, fault: str | None = None) -> None:
            sandbox.record(RequestRecord(method, path, query, body, status, fault))

        if not path.startswith(API_PREFIX):
            page = ui.render(sandbox.state, path) if method == "GET" else None
            if page is not None:  # the extra links' targets: read-only HTML, no key needed
                record(page[0])
                self._send(page[0], page[1], content_type="text/html; charset=utf-8")
                return
            record(404)
            self._send(404, _encode(NOT_FOUND))
            return
        if sandbox.latency > 0:
            time.sleep(sandbox.latency)
        fault, delay, retry_after, raw_reply = sandbox.take_fault(method, path)
        if fault == "raw" and raw_reply is not None:
            record(raw_reply.status, fault)
            self._send(raw_reply.status, raw_reply.body, dict(raw_reply.headers), raw_reply.content_type)
            return
        if fault == "drop":
            record(None, fault)
            self._abort()
            return
        if fault in FAULT_ERRORS:
            status = int(fault)
            record(status, fault)
            extra = {"Retry-After": str(retry_after)} if status == 429 else None
            self._send(status, _encode({"error": FAULT_ERRORS[fault]}), extra)
            return
        if fault == "delay" and delay > 0:
            time.sleep(delay)
        status, payload = sandbox.dispatch(method, path, query, body, bad_json, self.headers.get("X-API-KEY"))
        record(status, fault)
        if fault == "lost":
            self._abort()
            return
        if fault == "slow" and delay > 0:
            # Applied already; the answer comes late (a client with a shorter timeout gives up first).
            time.sleep(delay)
        self._send(status, payload)


class MediaPocketSandbox:
    """A local emulator of the Media Pocket API v2, served over HTTP in a background thread."""

    def __init__(
        self,
        api_key: str = DEFAULT_API_KEY,
        host: str = "127.0.0.1",
        port: int = 0,
        state: SandboxState | None = None,
        latency: float = 0.0,
        connection_timeout: float = 30.0,
        max_body_bytes: int = 10 * 1024 * 1024,
        **state_kwargs: Any,
    ) -> None:
        if not (isinstance(connection_timeout, (int, float)) and 0 < connection_timeout < float("inf")):
            raise ValueError(f"connection_timeout must be a positive number of seconds (got {connection_timeout!r})")
        if isinstance(max_body_bytes, bool) or not isinstance(max_body_bytes, int) or max_body_bytes < 0:
            raise ValueError(f"max_body_bytes must be a non-negative int (got {max_body_bytes!r})")
        self.api_key = api_key
        #: Seconds a connection may stay idle between requests, or take to send one request's body, or
        #: to take in an answer, before the sandbox closes it (408 when a body is incomplete).
        self.connection_timeout = float(connection_timeout)
        #: Largest request body accepted; a larger ``Content-Length`` gets 413 without being read.
        self.max_body_bytes = max_body_bytes
        #: Seconds every API request waits before it is handled: a stand-in for the network round trip
        #: to the real service (benchmarks use it; 0 for tests).
        self.latency = latency
        self.host = host
        self.port = port
        self.state = state if state is not None else SandboxState(**state_kwargs)
        if self.state.key_info(api_key) is None:
            self.state.add_api_key(api_key)
        self._requests: list[RequestRecord] = []
        self._scripted: list[_Scripted] = []
        self._lock = threading.Lock()
        self._server: _Server | None = None
        self._thread: threading.Thread | None = None

    # ------------------------------------------------------------------ lifecycle
    def start(self) -> MediaPocketSandbox:
        """Start serving on ``host:port`` (a free port when 0)."""
        if self._server is None:
            self._server = _Server((self.host, self.port), self)
            self.port = self._server.server_address[1]
            self._thread = threading.Thread(
                target=self._server.serve_forever,
                kwargs={"poll_interval": 0.05},
                daemon=True,
                name=f"mediapocket-sandbox-{self.port}",
            )
            self._thread.start()
        return self

    def stop(self) -> None:
        """Stop serving, end every open connection (kept-alive ones get EOF, not another answer) and
        release the port."""
        server, self._server = self._server, None
        if server is not None:
            server.shutdown()
            server.server_close()
            server.close_connections()
        if self._thread is not None:
            self._thread.join(timeout=5)
            self._thread = None

    def __enter__(self) -> MediaPocketSandbox:
        return self.start()

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.stop()

    @property
    def base_url(self) -> str:
        """``http://host:port`` of the running server."""
        return f"http://{self.host}:{self.port}"

    def connection(self, *, api_key: str | None = None, **extras: Any) -> str:
        """The Airflow connection to this sandbox, as the JSON that ``AIRFLOW_CONN_<ID>`` accepts.

        Works before :meth:`start` when :attr:`port` is set (e.g. for a sandbox run as its own process on a
        known port). Retries back off for 0.05 s unless ``extras`` say otherwise.

        :param api_key: the key the connection carries (default: this sandbox's; another one tests a
            wrong or a rotated key).
        :param extras: connection extras (``retry_backoff``, ``retry_limit``, ``timeout``, ...).
        """
        conn = {
            "conn_type": "mediapocket",
            "host": self.base_url,
            "password": self.api_key if api_key is None else api_key,
            "extra": {"retry_backoff": 0.05, **extras},
        }
        return json.dumps(conn)

    def airflow_connection_env(self, conn_id: str = "mediapocket_default", **extras: Any) -> dict[str, str]:
        """The environment variable defining the Airflow connection ``conn_id`` to this sandbox.

        :param conn_id: the connection id.
        :param extras: passed to :meth:`connection`.
        """
        return {f"AIRFLOW_CONN_{conn_id.upper()}": self.connection(**extras)}

    # ------------------------------------------------------------------ request log
    def record(self, entry: RequestRecord) -> None:
        """Append to the request log."""
        with self._lock:
            self._requests.append(entry)

    @property
    def requests(self) -> list[RequestRecord]:
        """The requests seen so far, oldest first."""
        with self._lock:
            return list(self._requests)

    def clear_requests(self) -> None:
        """Empty the request log."""
        with self._lock:
            self._requests.clear()

    # ------------------------------------------------------------------ faults
    def inject(
        self,
        *kinds: str,
        method: str | None = None,
        path_prefix: str | None = None,
        delay: float = 0.0,
        retry_after: int | str = 1,
        reply: RawReply | None = None,
    ) -> None:
        """Queue faults, consumed in order by the next matching /api/v2 requests.

        Kinds: ``"500"``/``"502"``/``"503"``/``"504"``/``"429"`` (that error, ``retry_after`` as the
        raw ``Retry-After`` value of a 429), ``"drop"`` (connection closed, request not applied),
        ``"lost"`` (applied, then the connection closed with no answer), ``"delay"`` (wait ``delay``
        seconds, then apply and answer), ``"slow"`` (apply, then answer ``delay`` seconds later) and
        ``"raw"`` (send ``reply`` as is; the request is not applied).
        """
        unknown = set(kinds) - FAULT_KINDS
        if unknown:
            raise ValueError(f"unknown fault kinds: {sorted(unknown)}")
        if "raw" in kinds and reply is None:
            raise ValueError("fault kind 'raw' needs reply=RawReply(...)")
        with self._lock:
            self._scripted.extend(
                _Scripted(k, method.upper() if method else None, path_prefix, delay, retry_after, reply)
                for k in kinds
            )

    def set_faults(self, config: FaultConfig | None) -> None:
        """Enable (or with None, disable) random fault injection."""
        self.state.faults = config

    def take_fault(self, method: str, path: str) -> tuple[str | None, float, int | str, RawReply | None]:
        """The fault for this request: (kind or None, delay, retry_after, raw reply)."""
        with self._lock:
            for index, scripted in enumerate(self._scripted):
                if scripted.matches(method, path):
                    del self._scripted[index]
                    return scripted.kind, scripted.delay, scripted.retry_after, scripted.reply
        config = self.state.faults
        if config is None:
            return None, 0.0, 1, None
        return config.pick(), config.delay, config.retry_after, None

    # ------------------------------------------------------------------ dispatch
    def dispatch(
        self, method: str, path: str, query: dict[str, str], body: Any, bad_json: bool, api_key: str | None
    ) -> tuple[int, bytes]:
        """Authenticate, route and run one API request; returns (status, JSON payload)."""
        state = self.state
        key = state.key_info(api_key)
        if key is None:
            return 401, _encode({"error": "Unauthorized"})
        if bad_json or not (body is None or isinstance(body, dict)):
            return 400, _encode({"error": "Invalid JSON body"})
        for pattern, handler in ROUTES.get(method, ()):
            match = pattern.fullmatch(path)
            if match is None:
                continue
            args = {k: v for k, v in match.groupdict().items() if v is not None}
            ctx = Ctx(state, args, query, body or {}, key["user_id"], key["permissions"])
            with state.lock:
                state.tick()
                try:
                    status, reply = handler(ctx)
                except ApiError as err:
                    status, reply = err.status, {"error": err.message}
                except Exception:  # a sandbox bug must not kill the connection
                    status, reply = 500, {"error": "Internal Server Error"}
                return status, _encode(reply)
        return 404, _encode(NOT_FOUND)


__all__ = ["Ctx", "MediaPocketSandbox", "RawReply", "RequestRecord"]
