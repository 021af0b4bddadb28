"""Request builders: one function per Media Pocket API v2 endpoint, shared by the sync and async hook.

Each returns an :class:`ApiCall` (method, path, body, how to parse the answer). Parameters are
validated here, so a bad value fails before anything is sent, whichever client sends it.
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable
from typing import Any, TypeVar
from urllib.parse import quote, unquote, urlsplit

from pydantic import BaseModel

from airflow_provider_mediapocket._redact import redact_url
from airflow_provider_mediapocket._transport import AlreadyDone, ApiCall
from airflow_provider_mediapocket.exceptions import (
    MediaPocketBadResponseError,
    MediaPocketNotFoundError,
    MediaPocketValidationError,
)
from airflow_provider_mediapocket.models import (
    ApiKey,
    Asset,
    AssetCreate,
    AssetUpdate,
    AssignBody,
    Attachment,
    AttachmentCreate,
    Collection,
    Comment,
    CommentBody,
    DagAction,
    DagActionRun,
    GuestBody,
    HistoryPage,
    Media,
    MediaFromS3,
    MediaFromUrl,
    Project,
    ProjectAssetCreate,
    ProjectContents,
    ProjectCreate,
    ProjectUpdate,
    RequestModel,
    Stats,
    ThumbnailBody,
    User,
    UserGroup,
    check_id,
    validate_request,
)

API = "/api/v2"
M = TypeVar("M", bound=BaseModel)
RM = TypeVar("RM", bound=RequestModel)


def path(*parts: str) -> str:
    """``/api/v2/<part>/<part>...`` with every id quoted as one path segment."""
    return API + "".join("/" + quote(part, safe="") for part in parts)


def one(key: str, model: type[M]) -> Callable[[Any], M]:
    return lambda body: model.model_validate(body[key])


def many(key: str, model: type[M]) -> Callable[[Any], list[M]]:
    return lambda body: [model.model_validate(item) for item in body[key]]


def text(*keys: str) -> Callable[[Any], str]:
    """The first of ``keys`` present in the body, as a string (``{"ok": "ok"}`` -> ``"ok"``)."""

    def parse(body: Any) -> str:
        for key in keys:
            if key in body:
                return str(body[key])
        raise KeyError(keys[0])

    return parse


def answered(value: str) -> Callable[[Any], str]:
    """The value of a call that turned out to be done already: what its success would have said."""
    return lambda _body: value


# "Already done" answers of the DELETE endpoints, as the API gives them when there is nothing left to
# delete (seen on the real API, see the seeds' examples). They count as success only after an earlier
# attempt whose answer was lost (see AlreadyDone); a first attempt that gets them still fails.
ASSET_GONE = AlreadyDone(404, r"^asset not found$", answered("ok"))
PROJECT_GONE = AlreadyDone(404, r"^project not found$", answered("ok"))
NO_PARENT = AlreadyDone(200, r"does not have a parent project$", answered("ok"))
COMMENT_GONE = AlreadyDone(404, r"^Couldn't find Comment with 'id'=", answered("comment deleted"))


def body_of(model: type[RM], data: dict[str, Any], prefix: str = "") -> dict[str, Any]:
    """Validate ``data`` (None values mean "not given") with ``model`` and return the JSON body."""
    given = {key: value for key, value in data.items() if value is not None}
    return validate_request(model, given, prefix=prefix).to_body()


def filename_from_url(file_url: str) -> str:
    """The last path segment of a URL, unquoted (``.../clips/a%20b.mp4?x=1`` -> ``a b.mp4``)."""
    name = unquote(urlsplit(file_url).path.rsplit("/", 1)[-1])
    if not name:
        raise MediaPocketValidationError(
            f"Invalid parameter 'filename': cannot be derived from file_url {redact_url(file_url)!r} "
            "(it has no file name); pass filename explicitly"
        )
    return name


def media_from_url(file_url: Any, filename: Any) -> MediaFromUrl:
    url = validate_request(MediaFromUrl, {"file_url": file_url, "filename": "x"}).file_url
    name = filename if filename is not None else filename_from_url(url)
    return validate_request(MediaFromUrl, {"file_url": url, "filename": name})


# ---------------------------------------------------------------------------------------------- assets


def get_asset(asset_id: Any) -> ApiCall[Asset]:
    return ApiCall("GET", path("assets", check_id("asset_id", asset_id)), one("asset", Asset))


def create_asset(**fields: Any) -> ApiCall[Asset]:
    return ApiCall("POST", path("assets"), one("asset", Asset), json=body_of(AssetCreate, fields))


def update_asset(asset_id: Any, **fields: Any) -> ApiCall[Asset]:
    return ApiCall(
        "PUT", path("assets", check_id("asset_id", asset_id)), one("asset", Asset),
        json=body_of(AssetUpdate, fields),
    )


def asset_action(asset_id: Any, action: str, method: str = "POST") -> ApiCall[str]:
    """trash_bin / restore (POST) and the permanent DELETE (``action`` "")."""
    parts = ["assets", check_id("asset_id", asset_id)] + ([action] if action else [])
    gone = (ASSET_GONE,) if method == "DELETE" and not action else ()
    return ApiCall(method, path(*parts), text("ok"), already_done=gone)


def assign(kind: str, item_id: Any, project_id: Any) -> ApiCall[str]:
    """Assign an asset or project (``kind`` "assets"/"projects") to a parent project.

    Assigning to the same project again answers ``ok``, so a retry after a lost answer is harmless.
    """
    item = check_id(f"{kind[:-1]}_id", item_id)
    body = body_of(AssignBody, {"to_project_id": check_id("project_id", project_id)})
    return ApiCall("POST", path(kind, item, "assign"), text("ok"), json=body, idempotent=True)


def unassign(kind: str, item_id: Any) -> ApiCall[str]:
    return ApiCall(
        "DELETE", path(kind, check_id(f"{kind[:-1]}_id", item_id), "unassign"), text("ok"), already_done=(NO_PARENT,)
    )


def add_media(asset_id: Any, file_url: Any, filename: Any = None) -> ApiCall[str]:
    media = media_from_url(file_url, filename)
    return ApiCall(
        "POST", path("assets", check_id("asset_id", asset_id), "media"), text("ok"), json=media.to_body()
    )


def list_media(asset_id: Any, include_locations: bool = False) -> ApiCall[list[Media]]:
    params = {"include_locations": "true"} if include_locations else None
    return ApiCall(
        "GET", path("assets", check_id("asset_id", asset_id), "media"), many("media", Media), params=params
    )


def remove_media(asset_id: Any) -> ApiCall[Asset]:
    # Answers 200 with the asset plus {"errors": {...}} when there was no media: that is a failure,
    # unless an earlier attempt whose answer was lost removed it (then the asset in the body is the answer).
    parse = one("asset", Asset)
    return ApiCall(
        "DELETE", path("assets", check_id("asset_id", asset_id), "media"), parse,
        error_keys=("error", "errors"),
        already_done=(AlreadyDone(200, r"^No media found on this asset\.?$", parse),),
    )


def media_download_url(asset_id: Any, media_id: Any, filename: Any) -> ApiCall[str | None]:
    name = check_id("filename", filename)
    return ApiCall(
        "GET",
        path("assets", check_id("asset_id", asset_id), "media", check_id("media_id", media_id), "download_url"),
        lambda body: None if body["url"] is None else str(body["url"]),
        params={"filename": name},
    )


def file_metadata(asset_id: Any) -> ApiCall[dict[str, Any]]:
    def parse(body: Any) -> dict[str, Any]:
        value = body.get("file_metadata", body)
        return dict(value)

    return ApiCall("GET", path("assets", check_id("asset_id", asset_id), "file_metadata"), parse)


def asset_collections(asset_id: Any) -> ApiCall[list[Collection]]:
    return ApiCall(
        "GET", path("assets", check_id("asset_id", asset_id), "collections"), many("collections", Collection)
    )


def history(kind: str, item_id: Any, cursor: Any = "0") -> ApiCall[HistoryPage]:
    item = check_id(f"{kind[:-1]}_id", item_id)
    return ApiCall("GET", path(kind, item, "history", check_id("cursor", cursor)), one("history", HistoryPage))


# --------------------------------------------------------------------------- comments and attachments


def list_comments(kind: str, item_id: Any) -> ApiCall[list[Comment]]:
    return ApiCall(
        "GET", path(kind, check_id(f"{kind[:-1]}_id", item_id), "comments"), many("comments", Comment)
    )


def comment(kind: str, item_id: Any, comment_id: Any, method: str = "GET", text_: Any = None) -> ApiCall[Any]:
    """GET, POST (update: the same text again is harmless) or DELETE one comment."""
    item = check_id(f"{kind[:-1]}_id", item_id)
    target = path(kind, item, "comments", check_id("comment_id", comment_id))
    if method == "DELETE":
        return ApiCall("DELETE", target, text("ok"), already_done=(COMMENT_GONE,))
    body = body_of(CommentBody, {"comment": text_}) if method == "POST" else None
    return ApiCall(method, target, one("comment", Comment), json=body, idempotent=method == "POST" or None)


def create_comment(kind: str, item_id: Any, text_: Any) -> ApiCall[Comment]:
    body = body_of(CommentBody, {"comment": text_})
    return ApiCall(
        "POST", path(kind, check_id(f"{kind[:-1]}_id", item_id), "comments"), one("comment", Comment), json=body
    )


def list_attachments(kind: str, item_id: Any) -> ApiCall[list[Attachment]]:
    return ApiCall(
        "GET", path(kind, check_id(f"{kind[:-1]}_id", item_id), "attachments"), many("attachments", Attachment)
    )


def create_attachment(kind: str, item_id: Any, **fields: Any) -> ApiCall[Attachment]:
    return ApiCall(
        "POST", path(kind, check_id(f"{kind[:-1]}_id", item_id), "attachments"), one("asset", Attachment),
        json=body_of(AttachmentCreate, fields),
    )


# --------------------------------------------------------------------------------------- DAG actions


def list_dag_actions(asset_id: Any) -> ApiCall[list[DagAction]]:
    return ApiCall(
        "GET", path("assets", check_id("asset_id", asset_id), "dag_actions"), many("dag_actions", DagAction)
    )


def start_dag_action(asset_id: Any, dag_action_id: Any) -> ApiCall[DagActionRun]:
    return ApiCall(
        "POST",
        path("assets", check_id("asset_id", asset_id), "dag_actions", check_id("dag_action_id", dag_action_id)),
        one("dag_action_run", DagActionRun),
    )


def list_dag_action_runs(asset_id: Any) -> ApiCall[list[DagActionRun]]:
    return ApiCall(
        "GET", path("assets", check_id("asset_id", asset_id), "dag_action_runs"),
        many("dag_action_runs", DagActionRun),
    )


_JSON = json.JSONDecoder()
_SPACE = re.compile(r"[ \t\n\r]*")


class RunIndex:
    """The ``dag_action_runs`` array of a listing, kept as JSON text with the offset of each run by id.

    The API has no endpoint for one run and an asset's runs accumulate (thousands, megabytes of
    JSON). Decoding the array into thousands of dicts and validating every run into a model to pick
    one costs a hundred milliseconds or more on a triggerer's event loop, and what is decoded must
    then be traced by the garbage collector, whose full passes stall the loop again. Instead each run
    is decoded on its own to read its id and dropped at once; a run asked for is decoded again from
    its offset and validated alone.
    """

    def __init__(self, text: str, offsets: dict[str, int], count: int) -> None:
        self._text = text
        self._offsets = offsets
        self.count = count

    @classmethod
    def scan(cls, text: str, pos: int) -> tuple[RunIndex, int]:
        """Index the array that starts at ``text[pos]`` (``[``); returns it and the offset after ``]``."""
        offsets: dict[str, int] = {}
        count = 0
        pos = _SPACE.match(text, pos + 1).end()  # type: ignore[union-attr]
        if text.startswith("]", pos):
            return cls(text, offsets, 0), pos + 1
        while True:
            run, end = _JSON.raw_decode(text, pos)
            if not isinstance(run, dict):
                raise TypeError(f"'dag_action_runs' item {count} is {type(run).__name__}, not an object")
            offsets.setdefault(str(run.get("id")), pos)  # the first of equal ids, as a scan would find
            count += 1
            pos = _SPACE.match(text, end).end()  # type: ignore[union-attr]
            if text.startswith("]", pos):
                return cls(text, offsets, count), pos + 1
            if not text.startswith(",", pos):
                raise json.JSONDecodeError("Expecting ',' delimiter", text, pos)
            pos = _SPACE.match(text, pos + 1).end()  # type: ignore[union-attr]

    def __len__(self) -> int:
        return self.count

    def raw(self, run_id: str) -> dict[str, Any] | None:
        """The JSON object of run ``run_id``, or None."""
        pos = self._offsets.get(run_id)
        if pos is None:
            return None
        run: dict[str, Any] = _JSON.raw_decode(self._text, pos)[0]
        return run

    def ids(self) -> list[str]:
        return list(self._offsets)

    def __contains__(self, run_id: object) -> bool:
        return str(run_id) in self._offsets


def decode_run_listing(content: bytes) -> Any:
    """Decode ``{"dag_action_runs": [...], ...}`` with the array as a :class:`RunIndex`; other members,
    and any other shape, decode as ``json.loads`` would (so error bodies are seen as usual)."""
    text = content.decode(json.detect_encoding(content), "surrogatepass")  # as json.loads does
    pos = _SPACE.match(text).end()  # type: ignore[union-attr]
    if not text.startswith("{", pos):
        return json.loads(text)
    members: dict[str, Any] = {}
    pos = _SPACE.match(text, pos + 1).end()  # type: ignore[union-attr]
    if text.startswith("}", pos):
        return json.loads(text)
    while True:
        key, pos = _JSON.raw_decode(text, pos)
        if not isinstance(key, str):
            raise json.JSONDecodeError("Expecting property name", text, pos)
        pos = _SPACE.match(text, pos).end()  # type: ignore[union-attr]
        if not text.startswith(":", pos):
            raise json.JSONDecodeError("Expecting ':' delimiter", text, pos)
        pos = _SPACE.match(text, pos + 1).end()  # type: ignore[union-attr]
        if key == "dag_action_runs" and text.startswith("[", pos):
            members[key], pos = RunIndex.scan(text, pos)
        else:
            members[key], pos = _JSON.raw_decode(text, pos)
        pos = _SPACE.match(text, pos).end()  # type: ignore[union-attr]
        if text.startswith("}", pos):
            break
        if not text.startswith(",", pos):
            raise json.JSONDecodeError("Expecting ',' delimiter", text, pos)
        pos = _SPACE.match(text, pos + 1).end()  # type: ignore[union-attr]
    if text[pos + 1:].strip(" \t\n\r"):
        raise json.JSONDecodeError("Extra data", text, pos + 1)
    return members


class RunListing:
    """An asset's runs as one listing answered them; a run is validated only when asked for."""

    def __init__(self, runs: RunIndex, asset_id: str, listing_path: str) -> None:
        self.asset_id = asset_id
        self.path = listing_path
        self._runs = runs

    @classmethod
    def parse(cls, body: Any, asset_id: str, listing_path: str) -> RunListing:
        """The listing of a body decoded by :func:`decode_run_listing`; KeyError/TypeError for another shape."""
        runs = body["dag_action_runs"]
        if not isinstance(runs, RunIndex):
            raise TypeError(f"'dag_action_runs' is {type(runs).__name__}, not a list")
        return cls(runs, asset_id, listing_path)

    def __len__(self) -> int:
        return len(self._runs)

    def __contains__(self, run_id: object) -> bool:
        return run_id in self._runs

    def get(self, run_id: str) -> DagActionRun | None:
        """Run ``run_id`` (compared as a string) validated, or None when the listing does not hold it."""
        item = self._runs.raw(str(run_id))
        if item is None:
            return None
        try:
            return DagActionRun.model_validate(item)
        except ValueError as exc:  # pydantic's ValidationError: the body is not what the API promises
            raise MediaPocketBadResponseError(
                f"Media Pocket GET {self.path} answered HTTP 200 with a body of an unexpected shape: "
                f"run {run_id}: {type(exc).__name__}: {str(exc)[:200]}",
                status=200, method="GET", path=self.path,
            ) from None

    def runs(self) -> list[DagActionRun]:
        """Every run, validated (costly for a long listing; not for an event loop)."""
        return [run for run in (self.get(run_id) for run_id in self._runs.ids()) if run is not None]


def dag_action_run_listing(asset_id: Any) -> ApiCall[RunListing]:
    """The asset's runs as a :class:`RunListing` (only the runs asked for are decoded and validated)."""
    wanted_asset = check_id("asset_id", asset_id)
    listing_path = path("assets", wanted_asset, "dag_action_runs")
    return ApiCall(
        "GET", listing_path, lambda body: RunListing.parse(body, wanted_asset, listing_path),
        decode=decode_run_listing,
    )


def find_run(runs: RunListing, run_id: str) -> DagActionRun:
    """The run ``run_id`` (compared as strings) in the listing, or MediaPocketNotFoundError."""
    run = runs.get(run_id)
    if run is None:
        raise MediaPocketNotFoundError(
            f"DAG action run {run_id} not found among the {len(runs)} runs of asset {runs.asset_id}",
            status=404, method="GET", path=runs.path,
        )
    return run


def get_dag_action_run(asset_id: Any, run_id: Any) -> ApiCall[DagActionRun]:
    """The API has no endpoint for one run: list the asset's runs and pick it (ids compared as strings)."""
    wanted = check_id("dag_action_run_id", run_id)
    listing = dag_action_run_listing(asset_id)
    return ApiCall("GET", listing.path, lambda body: find_run(listing.parse(body), wanted), decode=listing.decode)


# ------------------------------------------------------------------------------------------ projects


def list_projects() -> ApiCall[list[Project]]:
    return ApiCall("GET", path("projects"), many("projects", Project))


def get_project(project_id: Any) -> ApiCall[Project]:
    return ApiCall("GET", path("projects", check_id("project_id", project_id)), one("project", Project))


def create_project(parent_id: Any = None, **fields: Any) -> ApiCall[Project]:
    parts = ["projects"] if parent_id is None else ["projects", check_id("parent_project_id", parent_id),
                                                      "projects"]
    return ApiCall("POST", path(*parts), one("project", Project), json=body_of(ProjectCreate, fields))


def update_project(project_id: Any, **fields: Any) -> ApiCall[Project]:
    return ApiCall(
        "PUT", path("projects", check_id("project_id", project_id)), one("project", Project),
        json=body_of(ProjectUpdate, fields),
    )


def project_action(project_id: Any, action: str, method: str = "POST") -> ApiCall[str]:
    parts = ["projects", check_id("project_id", project_id)] + ([action] if action else [])
    gone = (PROJECT_GONE,) if method == "DELETE" and not action else ()
    return ApiCall(method, path(*parts), text("ok"), already_done=gone)


def list_subprojects(project_id: Any) -> ApiCall[list[Project]]:
    return ApiCall(
        "GET", path("projects", check_id("project_id", project_id), "projects"), many("projects", Project)
    )


def list_project_assets(project_id: Any) -> ApiCall[ProjectContents]:
    return ApiCall(
        "GET", path("projects", check_id("project_id", project_id), "assets"), ProjectContents.model_validate
    )


def create_project_asset(
    project_id: Any, *, file_url: Any = None, filename: Any = None, s3_key: Any = None, **fields: Any
) -> ApiCall[Asset]:
    """Create an asset in a project, with media from ``file_url`` or ``s3_key`` in the same call.

    A bad media URL is answered HTTP 200 with an error although the asset was created: that raises
    MediaPocketOperationError whose ``created_asset_id`` names the asset.
    """
    if file_url is not None and s3_key is not None:
        raise MediaPocketValidationError("Invalid parameters 'file_url' and 's3_key': give one, not both")
    data = dict(fields)
    if file_url is not None:
        data["url"] = media_from_url(file_url, filename).to_body()
    elif s3_key is not None:
        name = filename if filename is not None else (str(s3_key).rsplit("/", 1)[-1] or None)
        data["s3"] = validate_request(MediaFromS3, {"s3_key": s3_key, "filename": name}).to_body()
    elif filename is not None:
        raise MediaPocketValidationError("Invalid parameter 'filename': give it with file_url or s3_key")
    return ApiCall(
        "POST", path("projects", check_id("project_id", project_id), "assets"), one("asset", Asset),
        json=body_of(ProjectAssetCreate, data),
    )


def project_stats(project_id: Any) -> ApiCall[Stats]:
    return ApiCall("GET", path("projects", check_id("project_id", project_id), "stats"), one("stats", Stats))


def project_visibility(project_id: Any, public: bool) -> ApiCall[bool]:
    return ApiCall(
        "POST", path("projects", check_id("project_id", project_id), "public" if public else "private"),
        lambda body: bool(body["is_public"]),
    )


def project_users(project_id: Any, everyone: bool = False) -> ApiCall[list[User]]:
    return ApiCall(
        "GET", path("projects", check_id("project_id", project_id), "all_users" if everyone else "users"),
        many("users", User),
    )


def project_member(project_id: Any, kind: str, member_id: Any, add: bool) -> ApiCall[str]:
    """Add or remove a user (``kind`` "users") or user group ("user_groups") of a project."""
    name = "user_id" if kind == "users" else "user_group_id"
    member = check_id(name, member_id)
    gone: tuple[AlreadyDone, ...] = ()
    if not add:
        # "User is not a member of this Project" / "User group with id 6 is not part of this Project"
        label = "User" if kind == "users" else "User group"
        gone = (AlreadyDone(400, r"^User (is not a member|group with id \S+ is not part) of this Project$",
                            answered(f"{label} {member} was removed succesfully")),)
    return ApiCall(
        "POST" if add else "DELETE",
        path("projects", check_id("project_id", project_id), kind, member),
        text("ok"),
        already_done=gone,
    )


def add_project_guest(project_id: Any, email: Any) -> ApiCall[list[User]]:
    return ApiCall(
        "POST", path("projects", check_id("project_id", project_id), "guests"), many("users", User),
        json=body_of(GuestBody, {"email": email}),
    )


def project_user_groups(project_id: Any) -> ApiCall[list[UserGroup]]:
    return ApiCall(
        "GET", path("projects", check_id("project_id", project_id), "user_groups"),
        many("user_groups", UserGroup),
    )


def set_project_thumbnail(project_id: Any, asset_id: Any) -> ApiCall[str]:
    body = body_of(ThumbnailBody, {"thumbnail_asset_id": check_id("thumbnail_asset_id", asset_id)})
    return ApiCall(
        "PUT", path("projects", check_id("project_id", project_id), "thumbnail"), text("message"), json=body
    )


def remove_project_thumbnail(project_id: Any) -> ApiCall[str]:
    return ApiCall("DELETE", path("projects", check_id("project_id", project_id), "thumbnail"), text("message"))


# ------------------------------------------------------------------------------------------------ user


def list_api_keys() -> ApiCall[list[ApiKey]]:
    return ApiCall("GET", path("user", "api_keys"), many("api_keys", ApiKey))
