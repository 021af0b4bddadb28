"""pydantic v2 models of Media Pocket API v2 objects and of the request bodies the provider sends.

Response models use ``extra="allow"`` so that fields the API adds later pass through untouched, and
keep timestamps as the strings the API sends. ``to_xcom()`` gives the plain JSON that goes to XCom.

Request models validate before anything is sent; :func:`validate_request` turns a pydantic error into
a :class:`~airflow_provider_mediapocket.exceptions.MediaPocketValidationError` that names the
parameter and says what is wrong with its value.
"""

from __future__ import annotations

from typing import Annotated, Any, Literal, TypeVar
from urllib.parse import urlsplit

from pydantic import (
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    StrictStr,
    ValidationError,
    field_validator,
    model_validator,
)

from airflow_provider_mediapocket._redact import redact_url
from airflow_provider_mediapocket._validation import NOT_A_PARAMETER, _short, check_id, parameter
from airflow_provider_mediapocket.exceptions import MediaPocketValidationError

__all__ = ["check_id"]

TITLE_MAX_LENGTH = 255


#: An object id (or a reference to one): always a string, also when the API sends a number. Ids are
#: compared as strings everywhere (a templated id arrives as a string), and one object type may come
#: with either. Coerced in pydantic's core: no Python call per id in a long run list.
Id = Annotated[str, Field(coerce_numbers_to_str=True)]

T = TypeVar("T")


def _null_list(value: Any) -> Any:
    return [] if value is None else value


def _null_dict(value: Any) -> Any:
    return {} if value is None else value


def _null_zero(value: Any) -> Any:
    return 0 if value is None else value


#: A list the API may send as ``null``: read as empty instead of failing the whole call.
Items = Annotated[list[T], BeforeValidator(_null_list)]
#: A JSON object the API may send as ``null``: read as empty.
Mapping = Annotated[dict[str, T], BeforeValidator(_null_dict)]
#: A count the API may send as ``null``: read as 0.
Count = Annotated[int, BeforeValidator(_null_zero)]


class MediaPocketModel(BaseModel):
    """Base of every response model: unknown fields are kept; ids are strings; a ``null`` list, object
    or count (``tags: null``) reads as empty instead of failing the whole call."""

    model_config = ConfigDict(extra="allow", populate_by_name=True)

    def to_xcom(self) -> dict[str, Any]:
        """Plain JSON, with the API's own field names, for XCom."""
        return self.model_dump(mode="json", by_alias=True)


class User(MediaPocketModel):
    id: Id
    email: str | None = None
    first_name: str | None = None
    last_name: str | None = None
    avatar_url: str | None = None
    user_role: dict[str, Any] | None = None


class UserGroup(MediaPocketModel):
    id: Id
    name: str | None = None
    description: str | None = None
    created_at: str | None = None
    updated_at: str | None = None
    users: Items[User] = Field(default_factory=list)


class Comment(MediaPocketModel):
    id: Id
    message: str | None = None
    updated_at: str | None = None
    user: User | None = None
    mentioned_users: Items[Any] = Field(default_factory=list)


class Asset(MediaPocketModel):
    id: Id
    external_id: Id | None = None
    parent_id: Id | None = None
    project_id: Id | None = None
    owner: str | None = None
    title: str | None = None
    description: str | None = None
    category: str | None = None
    tags: Items[str] = Field(default_factory=list)
    ai_tags: Items[str] = Field(default_factory=list)
    status: str | None = None
    media_type: str | None = None
    original_filename: str | None = None
    drop_folder_id: Id | None = None
    md5_sum: str | None = None
    created_date: str | None = None
    modification_date: str | None = None
    deleted: str | None = None

    @property
    def is_processing(self) -> bool:
        """True while Media Pocket is still processing the asset's media (``media_type`` in any case,
        as run statuses are)."""
        return (self.media_type or "").strip().lower() == "processing"

    @property
    def is_placeholder(self) -> bool:
        """True for an asset without media: ``media_type`` placeholder (any case) and no original file."""
        return self.original_filename is None and (self.media_type or "").strip().lower() == "placeholder"

    @property
    def is_trashed(self) -> bool:
        return self.deleted is not None


class Attachment(Asset):
    """An attachment is an asset whose ``parent_id`` is the asset or project it is attached to."""


class Project(MediaPocketModel):
    id: Id
    external_id: Id | None = None
    project_id: Id | None = None
    owner: str | None = None
    title: str | None = None
    description: str | None = None
    category: str | None = None
    tags: Items[str] = Field(default_factory=list)
    media_type: str | None = None
    is_public: bool | None = Field(default=None, alias="isPublic")
    thumbnail_asset_id: Id | None = None
    created_date: str | None = None
    modification_date: str | None = None
    deleted: str | None = None
    original_title: str | None = None


class Collection(MediaPocketModel):
    id: Id
    title: str | None = None
    description: str | None = None
    category: str | None = None
    tags: Items[str] = Field(default_factory=list)
    owner: str | None = None
    media_type: str | None = None
    is_public: bool | None = Field(default=None, alias="isPublic")
    created_date: str | None = None
    modification_date: str | None = None
    original_title: str | None = None


class Media(MediaPocketModel):
    id: Id
    filename: str | None = None


class DagAction(MediaPocketModel):
    id: Id
    name: str | None = None
    description: str | None = None
    category: str | None = None


class DagActionRunMessage(MediaPocketModel):
    id: Id
    message: str | None = None
    created_at: str | None = None


class DagActionRun(MediaPocketModel):
    id: Id
    status: str | None = None
    created_at: str | None = None
    dag_action: DagAction | None = None
    dag_action_run_messages: Items[DagActionRunMessage] = Field(default_factory=list)


class HistoryEventTarget(MediaPocketModel):
    target_type: str | None = None
    target: Mapping[Any] = Field(default_factory=dict)


class HistoryEvent(MediaPocketModel):
    id: Id
    user_id: Id | None = None
    event_type: str | None = None
    created_at: str | None = None
    updated_at: str | None = None
    event_targets: Items[HistoryEventTarget] = Field(default_factory=list)


class HistoryPage(MediaPocketModel):
    results: Items[HistoryEvent] = Field(default_factory=list)
    next_cursor: str | int | None = None


class Stats(MediaPocketModel):
    assets: Count = 0
    projects: Count = 0
    total_size: Count = 0
    media_types: Mapping[int] = Field(default_factory=dict)


class ProjectContents(MediaPocketModel):
    """``GET /projects/:id/assets``: the assets, sub-projects and stats of a project."""

    assets: Items[Asset] = Field(default_factory=list)
    subprojects: Items[Project] = Field(default_factory=list)
    stats: Stats | None = None


class ApiKey(MediaPocketModel):
    """An API key of the current user as ``/user/api_keys`` lists it (the API masks the value)."""


# --------------------------------------------------------------------------------------------------
# Request models
# --------------------------------------------------------------------------------------------------


class RequestModel(BaseModel):
    """Base of request bodies: unknown parameters are refused, strings are never coerced."""

    model_config = ConfigDict(extra="forbid", strict=True)

    def to_body(self) -> dict[str, Any]:
        return self.model_dump(mode="json", exclude_none=True)


def _check_title(value: str | None) -> str | None:
    if value is None:
        return None
    if not value.strip():
        raise ValueError("must not be empty")
    if len(value) > TITLE_MAX_LENGTH:
        raise ValueError(f"is {len(value)} characters long; the maximum is {TITLE_MAX_LENGTH}")
    return value


def _check_not_blank(value: str | None) -> str | None:
    if value is not None and not value.strip():
        raise ValueError("must not be empty")
    return value


def check_http_url(value: str) -> str:
    """Accept only an absolute http(s) URL with a host, as Media Pocket downloads it itself."""
    parts = urlsplit(value)
    if parts.scheme.lower() not in ("http", "https") or not parts.hostname:
        raise ValueError(f"{redact_url(value)!r} is not an absolute http(s) URL")
    return value


class _MetadataFields(RequestModel):
    description: StrictStr | None = None
    category: StrictStr | None = None
    tags: list[StrictStr] | None = None
    external_id: StrictStr | None = None

    _blank_external_id = field_validator("external_id")(_check_not_blank)


class AssetCreate(_MetadataFields):
    """Body of ``POST /assets``."""

    title: StrictStr
    media_type: Literal["article"] | None = None

    _title = field_validator("title")(_check_title)

    @field_validator("media_type", mode="before")
    @classmethod
    def _fold_media_type(cls, value: Any) -> Any:
        # Media types compare case-insensitively, like statuses: "Article" is sent as "article".
        return value.strip().lower() if isinstance(value, str) else value


class AssetUpdate(_MetadataFields):
    """Body of ``PUT /assets/:id``: at least one field."""

    title: StrictStr | None = None

    _title = field_validator("title")(_check_title)

    @model_validator(mode="after")
    def _not_empty(self) -> AssetUpdate:
        if not self.to_body():
            raise ValueError("give at least one of 'title', 'description', 'category', 'tags', 'external_id'")
        return self


class MediaFromUrl(RequestModel):
    """Media Pocket downloads the file from ``file_url``; ``filename`` is the original file name."""

    file_url: StrictStr
    filename: StrictStr

    _url = field_validator("file_url")(check_http_url)
    _filename = field_validator("filename")(_check_not_blank)


class MediaFromS3(RequestModel):
    s3_key: StrictStr
    filename: StrictStr

    _key = field_validator("s3_key")(_check_not_blank)
    _filename = field_validator("filename")(_check_not_blank)


class ProjectAssetCreate(AssetCreate):
    """Body of ``POST /projects/:id/assets``: an asset, optionally with media from a URL or S3."""

    url: MediaFromUrl | None = None
    s3: MediaFromS3 | None = None

    @model_validator(mode="after")
    def _one_media_source(self) -> ProjectAssetCreate:
        if self.url is not None and self.s3 is not None:
            raise ValueError("give 'url' or 's3' (media from a URL or from S3), not both")
        return self


class ProjectCreate(_MetadataFields):
    title: StrictStr

    _title = field_validator("title")(_check_title)


class ProjectUpdate(AssetUpdate):
    """Body of ``PUT /projects/:id``."""


class AttachmentCreate(_MetadataFields):
    title: StrictStr

    _title = field_validator("title")(_check_title)


class CommentBody(RequestModel):
    comment: StrictStr

    _comment = field_validator("comment")(_check_not_blank)


class AssignBody(RequestModel):
    to_project_id: StrictStr

    _id = field_validator("to_project_id")(_check_not_blank)


class ThumbnailBody(RequestModel):
    thumbnail_asset_id: StrictStr

    _id = field_validator("thumbnail_asset_id")(_check_not_blank)


class GuestBody(RequestModel):
    email: StrictStr

    @field_validator("email")
    @classmethod
    def _email(cls, value: str) -> str:
        if "@" not in value.strip(" @"):
            raise ValueError(f"{value!r} is not an email address")
        return value


R = TypeVar("R", bound=RequestModel)


def _describe(error: dict[str, Any], prefix: str) -> str:
    loc = ".".join(str(part) for part in error.get("loc", ()))
    name = parameter(f"{prefix}.{loc}" if prefix and loc else (loc or prefix))
    message = str(error.get("msg", "is invalid"))
    message = message.removeprefix("Value error, ")
    if error.get("type") == "missing":
        message = "is required"
    elif error.get("type") == "extra_forbidden":
        message = NOT_A_PARAMETER
        name = name or "<empty name>"
    elif "input" in error and error.get("type") not in ("value_error",):
        message = f"{message} (got {_short(error['input'])})"
    if not name:  # a check of the whole request: its message names the parameters
        return f"Invalid parameters: {message}"
    return f"Invalid parameter '{name}': {message}"


def validate_request(model: type[R], data: dict[str, Any], *, prefix: str = "") -> R:
    """Build ``model`` from ``data`` or raise a MediaPocketValidationError naming each bad parameter."""
    try:
        return model.model_validate(data)
    except ValidationError as exc:
        messages = [_describe(dict(err), prefix) for err in exc.errors(include_url=False)]
        raise MediaPocketValidationError("; ".join(messages)) from None
