"""Every Media Pocket API v2 endpoint, declared once as a request builder.

A builder takes the endpoint's parameters (typed, documented) and returns an :class:`ApiCall`: method,
path, body and how to parse the answer. Building is validating: a bad value raises a
MediaPocketValidationError naming the parameter, before anything is sent and without any I/O. The hook
binds each public builder as a sync method and an ``a``-prefixed async method of the same signature
(:func:`~airflow_provider_mediapocket.hooks.mediapocket.endpoint`); operators build a call once and
hand it to ``hook.run``. The docstrings here are the hook methods' docstrings.
"""

from __future__ import annotations

import inspect
import re
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Generic, TypeVar
from urllib.parse import quote, unquote, urlsplit

from pydantic import BaseModel

from airflow_provider_mediapocket._redact import redact_url
from airflow_provider_mediapocket._transport import AlreadyDone, ApiCall
from airflow_provider_mediapocket._validation import exactly_one, invalid
from airflow_provider_mediapocket.exceptions import MediaPocketValidationError
from airflow_provider_mediapocket.hooks._run_listing import RunListing, decode_run_listing
from airflow_provider_mediapocket.hooks._run_listing import (
    find_run as find_run,  # re-exported: the trigger reads it here
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
B = TypeVar("B", bound=Callable[..., Any])


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


@dataclass(frozen=True)
class Kind(Generic[M]):
    """A resource others hang off: its path segment, the name of its id parameter and its model.

    ``noun`` is the key the API answers one of them under (``{"asset": {...}}``) and the word for it
    in messages.
    """

    segment: str
    id_name: str
    model: type[M]
    noun: str

    def path(self, item_id: Any, *rest: str) -> str:
        """``/api/v2/<segment>/<id>/<rest>...``; the id is checked under :attr:`id_name`."""
        return path(self.segment, check_id(self.id_name, item_id), *rest)

    def one(self) -> Callable[[Any], M]:
        return one(self.noun, self.model)


ASSETS = Kind("assets", "asset_id", Asset, "asset")
PROJECTS = Kind("projects", "project_id", Project, "project")
USERS = Kind("users", "user_id", User, "user")
USER_GROUPS = Kind("user_groups", "user_group_id", UserGroup, "user group")

# "Already done" answers of the DELETE endpoints, as the API gives them when there is nothing left to
# delete (seen on the real API, see the seeds' examples). They count as success only after an earlier
# attempt whose answer was lost (see AlreadyDone); a first attempt that gets them still fails.
ASSET_GONE = AlreadyDone(404, r"^asset not found$", answered("ok"))
PROJECT_GONE = AlreadyDone(404, r"^project not found$", answered("ok"))
NO_PARENT = AlreadyDone(200, r"does not have a parent project$", answered("ok"))
COMMENT_GONE = AlreadyDone(404, r"^Couldn't find Comment with 'id'=", answered("comment deleted"))
# "User is not a member of this Project" / "User group with id 6 is not part of this Project"
NOT_A_MEMBER = r"^User (is not a member|group with id \S+ is not part) of this Project$"


def body_of(model: type[RM], **data: Any) -> dict[str, Any]:
    """Validate ``data`` (None values mean "not given") with ``model`` and return the JSON body."""
    given = {key: value for key, value in data.items() if value is not None}
    return validate_request(model, given).to_body()


def filename_from_url(file_url: str) -> str:
    """The last path segment of a URL, unquoted (``.../clips/a%20b.mp4?x=1`` -> ``a b.mp4``)."""
    name = unquote(urlsplit(file_url).path.rsplit("/", 1)[-1])
    if not name:
        raise invalid(
            "filename",
            f"cannot be derived from file_url {redact_url(file_url)!r} (it has no file name); pass filename explicitly",
        )
    return name


def media_from_url(file_url: Any, filename: Any = None) -> MediaFromUrl:
    """The media of ``file_url`` (``filename`` defaults to its last path segment), validated."""
    url = validate_request(MediaFromUrl, {"file_url": file_url, "filename": "x"}).file_url
    name = filename if filename is not None else filename_from_url(url)
    return validate_request(MediaFromUrl, {"file_url": url, "filename": name})


#: What the parameters shared by many endpoints mean, said once. A builder's docstring documents only
#: the parameters whose meaning is its own; :func:`documented` adds the others from here.
PARAMETERS = {
    "asset_id": "the asset's id.",
    "project_id": "the project's id.",
    "comment_id": "the comment's id.",
    "comment": "the comment's text.",
    "cursor": 'where the page starts ("0": the newest events).',
    "user_id": "the user's id.",
    "user_group_id": "the user group's id.",
    "title": "the title (at most 255 characters).",
    "description": "the description.",
    "category": "the category.",
    "tags": "the tags.",
    "external_id": "your own id for it.",
}
_PARAM = re.compile(r"^:param (\w+):(.*?)(?=^:param |\Z)", re.MULTILINE | re.DOTALL)


def documented(build: B) -> B:
    """Give ``build`` (a public builder) a docstring with one ``:param:`` line per parameter, in order:
    its own where it has one, else the one of :data:`PARAMETERS` (a parameter in neither fails here, at
    import)."""
    doc = inspect.cleandoc(build.__doc__ or "")
    own = {name: text.strip() for name, text in _PARAM.findall(doc)}
    summary = doc.split("\n:param ", 1)[0].rstrip()
    params = [f":param {name}: {own.get(name) or PARAMETERS[name]}" for name in inspect.signature(build).parameters]
    build.__doc__ = "\n\n".join(filter(None, [summary, "\n".join(params)])) + "\n"
    return build


# -------------------------------------------------------------- shared shapes of per-kind endpoints


def _update(kind: Kind[M], model: type[RM], item_id: Any, **fields: Any) -> ApiCall[M]:
    target = kind.path(item_id)
    return ApiCall("PUT", target, kind.one(), json=body_of(model, **fields))


def _action(kind: Kind[Any], item_id: Any, action: str) -> ApiCall[str]:
    return ApiCall("POST", kind.path(item_id, action), text("ok"))


def _delete(kind: Kind[Any], item_id: Any, gone: AlreadyDone) -> ApiCall[str]:
    return ApiCall("DELETE", kind.path(item_id), text("ok"), already_done=(gone,))


def _assign(kind: Kind[Any], item_id: Any, target_name: str, target_id: Any) -> ApiCall[str]:
    # Assigning to the same project again answers ``ok``, so a retry after a lost answer is harmless.
    item = kind.path(item_id, "assign")
    body = body_of(AssignBody, to_project_id=check_id(target_name, target_id))
    return ApiCall("POST", item, text("ok"), json=body, idempotent=True)


def _unassign(kind: Kind[Any], item_id: Any) -> ApiCall[str]:
    return ApiCall("DELETE", kind.path(item_id, "unassign"), text("ok"), already_done=(NO_PARENT,))


def _history(kind: Kind[Any], item_id: Any, cursor: Any) -> ApiCall[HistoryPage]:
    item = check_id(kind.id_name, item_id)
    return ApiCall("GET", path(kind.segment, item, "history", check_id("cursor", cursor)), one("history", HistoryPage))


def _comments(kind: Kind[Any], item_id: Any) -> ApiCall[list[Comment]]:
    return ApiCall("GET", kind.path(item_id, "comments"), many("comments", Comment))


def _comment_path(kind: Kind[Any], item_id: Any, comment_id: Any) -> str:
    item = check_id(kind.id_name, item_id)
    return path(kind.segment, item, "comments", check_id("comment_id", comment_id))


def _get_comment(kind: Kind[Any], item_id: Any, comment_id: Any) -> ApiCall[Comment]:
    return ApiCall("GET", _comment_path(kind, item_id, comment_id), one("comment", Comment))


def comment_target(asset_id: Any, project_id: Any) -> tuple[Kind[Any], str]:
    """Where a comment goes: ``(ASSETS, id)`` or ``(PROJECTS, id)``. Exactly one of the two must be given
    (one that rendered empty counts as not given); the id is checked under its parameter's name."""
    kind = ASSETS if exactly_one(asset_id=asset_id, project_id=project_id) == "asset_id" else PROJECTS
    return kind, check_id(kind.id_name, asset_id if kind is ASSETS else project_id)


def _create_comment(kind: Kind[Any], item_id: Any, comment: Any) -> ApiCall[Comment]:
    body = body_of(CommentBody, comment=comment)
    return ApiCall("POST", kind.path(item_id, "comments"), one("comment", Comment), json=body)


def _update_comment(kind: Kind[Any], item_id: Any, comment_id: Any, comment: Any) -> ApiCall[Comment]:
    # The same text sent again is harmless: the update may be repeated after a lost answer.
    target = _comment_path(kind, item_id, comment_id)
    body = body_of(CommentBody, comment=comment)
    return ApiCall("POST", target, one("comment", Comment), json=body, idempotent=True)


def _delete_comment(kind: Kind[Any], item_id: Any, comment_id: Any) -> ApiCall[str]:
    target = _comment_path(kind, item_id, comment_id)
    return ApiCall("DELETE", target, text("ok"), already_done=(COMMENT_GONE,))


def _attachments(kind: Kind[Any], item_id: Any) -> ApiCall[list[Attachment]]:
    return ApiCall("GET", kind.path(item_id, "attachments"), many("attachments", Attachment))


def _create_attachment(kind: Kind[Any], item_id: Any, **fields: Any) -> ApiCall[Attachment]:
    target = kind.path(item_id, "attachments")
    return ApiCall("POST", target, one("asset", Attachment), json=body_of(AttachmentCreate, **fields))


def _member(project_id: Any, kind: Kind[Any], member_id: Any, *, add: bool) -> ApiCall[str]:
    """Add or remove a user or user group of a project; removing one that is gone is done already."""
    member = check_id(kind.id_name, member_id)
    target = PROJECTS.path(project_id, kind.segment, member)
    if add:
        return ApiCall("POST", target, text("ok"))
    label = kind.noun.capitalize()
    gone = AlreadyDone(400, NOT_A_MEMBER, answered(f"{label} {member} was removed succesfully"))
    return ApiCall("DELETE", target, text("ok"), already_done=(gone,))


# --------------------------------------------------------------------------------------------- user


@documented
def list_api_keys() -> ApiCall[list[ApiKey]]:
    """The API keys of the key's user, as the API lists them."""
    return ApiCall("GET", path("user", "api_keys"), many("api_keys", ApiKey))


# ------------------------------------------------------------------------------------------- assets


@documented
def get_asset(asset_id: str) -> ApiCall[Asset]:
    """The asset."""
    return ApiCall("GET", ASSETS.path(asset_id), ASSETS.one())


@documented
def create_asset(
    title: str,
    *,
    description: str | None = None,
    category: str | None = None,
    tags: list[str] | None = None,
    media_type: str | None = None,
    external_id: str | None = None,
) -> ApiCall[Asset]:
    """Create an asset (``placeholder`` until media is added).

    :param media_type: only "article" (an asset without media); compared case-insensitively.
    """
    body = body_of(AssetCreate, title=title, description=description, category=category, tags=tags,
                   media_type=media_type, external_id=external_id)
    return ApiCall("POST", path("assets"), ASSETS.one(), json=body)


def put_media(asset_id: str, media: MediaFromUrl) -> ApiCall[str]:
    """Add media that was validated already (see :func:`media_from_url`) to the asset."""
    return ApiCall("POST", ASSETS.path(asset_id, "media"), text("ok"), json=media.to_body())


@documented
def add_media(asset_id: str, file_url: str, filename: str | None = None) -> ApiCall[str]:
    """Add media to the asset: Media Pocket downloads it from ``file_url``.

    :param file_url: an absolute http(s) URL Media Pocket can download.
    :param filename: the original file name (default: the URL's last path segment).
    """
    return put_media(asset_id, media_from_url(file_url, filename))


@documented
def list_media(asset_id: str, *, include_locations: bool = False) -> ApiCall[list[Media]]:
    """The asset's media files.

    :param include_locations: also list where each file is stored.
    """
    params = {"include_locations": "true"} if include_locations else None
    return ApiCall("GET", ASSETS.path(asset_id, "media"), many("media", Media), params=params)


@documented
def remove_media(asset_id: str) -> ApiCall[Asset]:
    """Remove the asset's media; "No media found on this asset." (sent as HTTP 200) raises."""
    # Answers 200 with the asset plus {"errors": {...}} when there was no media: that is a failure,
    # unless an earlier attempt whose answer was lost removed it (then the asset in the body is the answer).
    parse = ASSETS.one()
    return ApiCall(
        "DELETE", ASSETS.path(asset_id, "media"), parse, error_keys=("error", "errors"),
        already_done=(AlreadyDone(200, r"^No media found on this asset\.?$", parse),),
    )


@documented
def get_media_download_url(asset_id: str, media_id: int | str, filename: str) -> ApiCall[str | None]:
    """A download URL of one of the asset's media files (None while there is none).

    :param media_id: the media file's id.
    :param filename: the file name the download gets.
    """
    name = check_id("filename", filename)
    asset = check_id("asset_id", asset_id)
    return ApiCall(
        "GET", path("assets", asset, "media", check_id("media_id", media_id), "download_url"),
        lambda body: None if body["url"] is None else str(body["url"]), params={"filename": name},
    )


@documented
def get_file_metadata(asset_id: str) -> ApiCall[dict[str, Any]]:
    """EXIF/IPTC/XMP metadata and mediainfo of the asset's original file."""
    return ApiCall("GET", ASSETS.path(asset_id, "file_metadata"), lambda body: dict(body.get("file_metadata", body)))


@documented
def list_asset_collections(asset_id: str) -> ApiCall[list[Collection]]:
    """The collections the asset is in."""
    return ApiCall("GET", ASSETS.path(asset_id, "collections"), many("collections", Collection))


# ----------------------------------------------------------------------------------------- projects


@documented
def list_projects() -> ApiCall[list[Project]]:
    """The user's top-level projects."""
    return ApiCall("GET", path("projects"), many("projects", Project))


@documented
def get_project(project_id: str) -> ApiCall[Project]:
    """The project."""
    return ApiCall("GET", PROJECTS.path(project_id), PROJECTS.one())


@documented
def create_project(
    title: str,
    *,
    description: str | None = None,
    category: str | None = None,
    tags: list[str] | None = None,
    external_id: str | None = None,
) -> ApiCall[Project]:
    """Create a top-level project."""
    body = body_of(ProjectCreate, title=title, description=description, category=category, tags=tags,
                   external_id=external_id)
    return ApiCall("POST", path("projects"), PROJECTS.one(), json=body)


@documented
def create_subproject(
    project_id: str,
    title: str,
    *,
    description: str | None = None,
    category: str | None = None,
    tags: list[str] | None = None,
    external_id: str | None = None,
) -> ApiCall[Project]:
    """Create a project inside the project.

    :param project_id: the parent project's id.
    """
    parent = PROJECTS.path(project_id, "projects")
    body = body_of(ProjectCreate, title=title, description=description, category=category, tags=tags,
                   external_id=external_id)
    return ApiCall("POST", parent, PROJECTS.one(), json=body)


@documented
def list_subprojects(project_id: str) -> ApiCall[list[Project]]:
    """The projects inside the project."""
    return ApiCall("GET", PROJECTS.path(project_id, "projects"), many("projects", Project))


@documented
def list_project_assets(project_id: str) -> ApiCall[ProjectContents]:
    """The project's assets, sub-projects and stats."""
    return ApiCall("GET", PROJECTS.path(project_id, "assets"), ProjectContents.model_validate)


@documented
def create_project_asset(
    project_id: str,
    title: str,
    *,
    file_url: str | None = None,
    filename: str | None = None,
    s3_key: str | None = None,
    description: str | None = None,
    category: str | None = None,
    tags: list[str] | None = None,
    media_type: str | None = None,
    external_id: str | None = None,
) -> ApiCall[Asset]:
    """Create an asset in the project, with media from ``file_url`` or ``s3_key`` in the same call.

    A bad media URL is answered HTTP 200 with an error although the asset *was* created: that raises
    MediaPocketOperationError whose ``created_asset_id`` names the asset.

    :param file_url: media from this absolute http(s) URL (not with ``s3_key``).
    :param filename: the media's original file name (default: the last segment of the URL or key).
    :param s3_key: media from this key of the account's S3 bucket (not with ``file_url``).
    :param media_type: only "article" (an asset without media).
    """
    if file_url is not None and s3_key is not None:
        raise MediaPocketValidationError("Invalid parameters 'file_url' and 's3_key': give one, not both")
    url = s3 = None
    if file_url is not None:
        url = media_from_url(file_url, filename).to_body()
    elif s3_key is not None:
        name = filename if filename is not None else (str(s3_key).rsplit("/", 1)[-1] or None)
        s3 = validate_request(MediaFromS3, {"s3_key": s3_key, "filename": name}).to_body()
    elif filename is not None:
        raise invalid("filename", "give it with file_url or s3_key")
    target = PROJECTS.path(project_id, "assets")
    body = body_of(ProjectAssetCreate, title=title, description=description, category=category, tags=tags,
                   media_type=media_type, external_id=external_id, url=url, s3=s3)
    return ApiCall("POST", target, ASSETS.one(), json=body)


@documented
def get_project_stats(project_id: str) -> ApiCall[Stats]:
    """Counts and sizes of the project's contents."""
    return ApiCall("GET", PROJECTS.path(project_id, "stats"), one("stats", Stats))


def _visibility(project_id: Any, public: bool) -> ApiCall[bool]:
    return ApiCall(
        "POST", PROJECTS.path(project_id, "public" if public else "private"), lambda body: bool(body["is_public"])
    )


@documented
def make_project_public(project_id: str) -> ApiCall[bool]:
    """Make the project public; returns whether it is public now."""
    return _visibility(project_id, True)


@documented
def make_project_private(project_id: str) -> ApiCall[bool]:
    """Make the project private; returns whether it is public now."""
    return _visibility(project_id, False)


@documented
def list_project_users(project_id: str, *, include_inherited: bool = False) -> ApiCall[list[User]]:
    """The project's users.

    :param include_inherited: also the users it inherits from parent projects (``all_users``).
    """
    return ApiCall(
        "GET", PROJECTS.path(project_id, "all_users" if include_inherited else "users"), many("users", User)
    )


@documented
def add_project_user(project_id: str, user_id: int | str) -> ApiCall[str]:
    """Make a user a member of the project."""
    return _member(project_id, USERS, user_id, add=True)


@documented
def remove_project_user(project_id: str, user_id: int | str) -> ApiCall[str]:
    """Remove a user from the project."""
    return _member(project_id, USERS, user_id, add=False)


@documented
def add_project_guest(project_id: str, email: str) -> ApiCall[list[User]]:
    """Invite a guest by e-mail; returns the project's users.

    :param email: the guest's e-mail address.
    """
    target = PROJECTS.path(project_id, "guests")
    return ApiCall("POST", target, many("users", User), json=body_of(GuestBody, email=email))


@documented
def list_project_user_groups(project_id: str) -> ApiCall[list[UserGroup]]:
    """The project's user groups."""
    return ApiCall("GET", PROJECTS.path(project_id, "user_groups"), many("user_groups", UserGroup))


@documented
def add_project_user_group(project_id: str, user_group_id: int | str) -> ApiCall[str]:
    """Give a user group access to the project."""
    return _member(project_id, USER_GROUPS, user_group_id, add=True)


@documented
def remove_project_user_group(project_id: str, user_group_id: int | str) -> ApiCall[str]:
    """Remove a user group from the project."""
    return _member(project_id, USER_GROUPS, user_group_id, add=False)


@documented
def set_project_thumbnail(project_id: str, asset_id: str) -> ApiCall[str]:
    """Show an asset as the project's thumbnail.

    :param asset_id: the asset to show.
    """
    body = body_of(ThumbnailBody, thumbnail_asset_id=check_id("thumbnail_asset_id", asset_id))
    return ApiCall("PUT", PROJECTS.path(project_id, "thumbnail"), text("message"), json=body)


@documented
def remove_project_thumbnail(project_id: str) -> ApiCall[str]:
    """Remove the project's thumbnail."""
    return ApiCall("DELETE", PROJECTS.path(project_id, "thumbnail"), text("message"))


# --------------------------------------------------------------- what assets and projects both have


@documented
def update_asset(
    asset_id: str,
    *,
    title: str | None = None,
    description: str | None = None,
    category: str | None = None,
    tags: list[str] | None = None,
    external_id: str | None = None,
) -> ApiCall[Asset]:
    """Update the asset's metadata (at least one field); the fields given replace the old ones."""
    return _update(ASSETS, AssetUpdate, asset_id, title=title, description=description, category=category,
                   tags=tags, external_id=external_id)


@documented
def update_project(
    project_id: str,
    *,
    title: str | None = None,
    description: str | None = None,
    category: str | None = None,
    tags: list[str] | None = None,
    external_id: str | None = None,
) -> ApiCall[Project]:
    """Update the project's metadata (at least one field); the fields given replace the old ones."""
    return _update(PROJECTS, ProjectUpdate, project_id, title=title, description=description, category=category,
                   tags=tags, external_id=external_id)


@documented
def trash_asset(asset_id: str) -> ApiCall[str]:
    """Move the asset to the trash bin (deleted for good after 14 days)."""
    return _action(ASSETS, asset_id, "trash_bin")


@documented
def trash_project(project_id: str) -> ApiCall[str]:
    """Move the project to the trash bin."""
    return _action(PROJECTS, project_id, "trash_bin")


@documented
def restore_asset(asset_id: str) -> ApiCall[str]:
    """Take the asset back out of the trash bin."""
    return _action(ASSETS, asset_id, "restore")


@documented
def restore_project(project_id: str) -> ApiCall[str]:
    """Take the project back out of the trash bin."""
    return _action(PROJECTS, project_id, "restore")


@documented
def delete_asset(asset_id: str) -> ApiCall[str]:
    """Delete the asset permanently."""
    return _delete(ASSETS, asset_id, ASSET_GONE)


@documented
def delete_project(project_id: str) -> ApiCall[str]:
    """Delete the project permanently."""
    return _delete(PROJECTS, project_id, PROJECT_GONE)


@documented
def assign_asset(asset_id: str, project_id: str) -> ApiCall[str]:
    """Put the asset in a project. "Project not found." (sent as HTTP 200) raises.

    :param project_id: the project to put it in.
    """
    return _assign(ASSETS, asset_id, "project_id", project_id)


@documented
def assign_project(project_id: str, to_project_id: str) -> ApiCall[str]:
    """Make the project a sub-project of another.

    :param to_project_id: the project to put it in.
    """
    return _assign(PROJECTS, project_id, "to_project_id", to_project_id)


@documented
def unassign_asset(asset_id: str) -> ApiCall[str]:
    """Take the asset out of its project."""
    return _unassign(ASSETS, asset_id)


@documented
def unassign_project(project_id: str) -> ApiCall[str]:
    """Make the sub-project a top-level project again."""
    return _unassign(PROJECTS, project_id)


@documented
def get_asset_history(asset_id: str, cursor: str | int = "0") -> ApiCall[HistoryPage]:
    """One page of the asset's history; its ``next_cursor`` asks for the next one."""
    return _history(ASSETS, asset_id, cursor)


@documented
def get_project_history(project_id: str, cursor: str | int = "0") -> ApiCall[HistoryPage]:
    """One page of the project's history; its ``next_cursor`` asks for the next one."""
    return _history(PROJECTS, project_id, cursor)


@documented
def list_asset_comments(asset_id: str) -> ApiCall[list[Comment]]:
    """The asset's comments."""
    return _comments(ASSETS, asset_id)


@documented
def list_project_comments(project_id: str) -> ApiCall[list[Comment]]:
    """The project's comments."""
    return _comments(PROJECTS, project_id)


@documented
def get_asset_comment(asset_id: str, comment_id: int | str) -> ApiCall[Comment]:
    """One comment on the asset."""
    return _get_comment(ASSETS, asset_id, comment_id)


@documented
def get_project_comment(project_id: str, comment_id: int | str) -> ApiCall[Comment]:
    """One comment on the project."""
    return _get_comment(PROJECTS, project_id, comment_id)


@documented
def create_asset_comment(asset_id: str, comment: str) -> ApiCall[Comment]:
    """Comment on the asset."""
    return _create_comment(ASSETS, asset_id, comment)


@documented
def create_project_comment(project_id: str, comment: str) -> ApiCall[Comment]:
    """Comment on the project."""
    return _create_comment(PROJECTS, project_id, comment)


@documented
def update_asset_comment(asset_id: str, comment_id: int | str, comment: str) -> ApiCall[Comment]:
    """Change the text of a comment on the asset.

    :param comment: the new text.
    """
    return _update_comment(ASSETS, asset_id, comment_id, comment)


@documented
def update_project_comment(project_id: str, comment_id: int | str, comment: str) -> ApiCall[Comment]:
    """Change the text of a comment on the project.

    :param comment: the new text.
    """
    return _update_comment(PROJECTS, project_id, comment_id, comment)


@documented
def delete_asset_comment(asset_id: str, comment_id: int | str) -> ApiCall[str]:
    """Delete a comment on the asset."""
    return _delete_comment(ASSETS, asset_id, comment_id)


@documented
def delete_project_comment(project_id: str, comment_id: int | str) -> ApiCall[str]:
    """Delete a comment on the project."""
    return _delete_comment(PROJECTS, project_id, comment_id)


@documented
def list_asset_attachments(asset_id: str) -> ApiCall[list[Attachment]]:
    """The asset's attachments."""
    return _attachments(ASSETS, asset_id)


@documented
def list_project_attachments(project_id: str) -> ApiCall[list[Attachment]]:
    """The project's attachments."""
    return _attachments(PROJECTS, project_id)


@documented
def create_asset_attachment(
    asset_id: str,
    title: str,
    *,
    description: str | None = None,
    category: str | None = None,
    tags: list[str] | None = None,
    external_id: str | None = None,
) -> ApiCall[Attachment]:
    """Attach a new asset to the asset."""
    return _create_attachment(ASSETS, asset_id, title=title, description=description, category=category,
                              tags=tags, external_id=external_id)


@documented
def create_project_attachment(
    project_id: str,
    title: str,
    *,
    description: str | None = None,
    category: str | None = None,
    tags: list[str] | None = None,
    external_id: str | None = None,
) -> ApiCall[Attachment]:
    """Attach a new asset to the project."""
    return _create_attachment(PROJECTS, project_id, title=title, description=description, category=category,
                              tags=tags, external_id=external_id)


# -------------------------------------------------------------------------------------- DAG actions


@documented
def list_dag_actions(asset_id: str) -> ApiCall[list[DagAction]]:
    """The DAG actions that can run on the asset (needs ``ACTIONS_VIEW``)."""
    return ApiCall("GET", ASSETS.path(asset_id, "dag_actions"), many("dag_actions", DagAction))


def start_dag_action(asset_id: str, dag_action_id: int | str) -> ApiCall[DagActionRun]:
    """The bare start request (the hook's ``start_dag_action`` adds the recovery of a lost answer)."""
    asset = check_id("asset_id", asset_id)
    return ApiCall(
        "POST", path("assets", asset, "dag_actions", check_id("dag_action_id", dag_action_id)),
        one("dag_action_run", DagActionRun),
    )


@documented
def list_dag_action_runs(asset_id: str) -> ApiCall[list[DagActionRun]]:
    """The asset's DAG action runs (needs ``ACTIONS_VIEW``)."""
    return ApiCall("GET", ASSETS.path(asset_id, "dag_action_runs"), many("dag_action_runs", DagActionRun))


@documented
def get_dag_action_run_listing(asset_id: str) -> ApiCall[RunListing]:
    """The asset's runs as a :class:`RunListing`: one request, runs validated only when asked for.

    :param asset_id: the asset's id (needs ``ACTIONS_VIEW``).
    """
    wanted_asset = check_id("asset_id", asset_id)
    listing_path = path("assets", wanted_asset, "dag_action_runs")
    return ApiCall(
        "GET", listing_path, lambda body: RunListing.parse(body, wanted_asset, listing_path),
        decode=decode_run_listing,
    )


@documented
def get_dag_action_run(asset_id: str, run_id: int | str) -> ApiCall[DagActionRun]:
    """One run of the asset. The API has no endpoint for one run: the asset's runs are listed and the
    run picked (ids compared as strings).

    :param run_id: the run's id.
    """
    wanted = check_id("dag_action_run_id", run_id)
    listing = get_dag_action_run_listing(asset_id)
    return ApiCall("GET", listing.path, lambda body: find_run(listing.parse(body), wanted), decode=listing.decode)
