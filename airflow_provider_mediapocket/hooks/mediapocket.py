"""MediaPocketHook: every Media Pocket API v2 endpoint, sync for workers and async for the triggerer."""

from __future__ import annotations

import asyncio
import functools
import ssl
import time
from collections.abc import AsyncIterator, Generator, Iterator
from dataclasses import dataclass, field
from typing import Any, TypeVar, cast
from urllib.parse import urlsplit

import httpx

from airflow_provider_mediapocket import DEFAULT_CONN_ID, __version__
from airflow_provider_mediapocket._recovery import has_media, reuse_problem
from airflow_provider_mediapocket._transport import ApiCall, RetryPolicy, Send, Sleep, exchange
from airflow_provider_mediapocket.exceptions import (
    MediaPocketConfigError,
    MediaPocketError,
    MediaPocketOperationError,
    MediaPocketPermissionError,
    MediaPocketRateLimitError,
    MediaPocketServerError,
    MediaPocketTransportError,
    MediaPocketValidationError,
)
from airflow_provider_mediapocket.hooks import _api
from airflow_provider_mediapocket.models import (
    ApiKey,
    Asset,
    Attachment,
    Collection,
    Comment,
    DagAction,
    DagActionRun,
    HistoryEvent,
    HistoryPage,
    Media,
    Project,
    ProjectContents,
    Stats,
    User,
    UserGroup,
    check_id,
)

try:
    from airflow.sdk import BaseHook
except ImportError:  # pragma: no cover - Airflow before the task SDK exported it
    from airflow.hooks.base import BaseHook  # type: ignore[no-redef,attr-defined]

T = TypeVar("T")
# A multi-call plan yields the calls to make (and, to wait between them, a Sleep).
Plan = Generator[ApiCall[Any] | Sleep, Any, T]

DEFAULT_TIMEOUT = 30.0
DEFAULT_RETRY_LIMIT = 3
DEFAULT_RETRY_BACKOFF = 1.0


@dataclass(frozen=True)
class ConnectionSettings:
    """What a hook needs from its connection. The API key is kept out of ``repr``."""

    base_url: str
    api_key: str = field(repr=False)
    timeout: float = DEFAULT_TIMEOUT
    verify_ssl: bool = True
    retry_limit: int = DEFAULT_RETRY_LIMIT
    retry_backoff: float = DEFAULT_RETRY_BACKOFF


def _number(conn_id: str, name: str, value: Any, *, integer: bool = False, minimum: float = 0.0) -> Any:
    """A numeric connection extra or hook argument, checked and converted, or a clear error."""
    kind = "a whole number" if integer else "a number"
    try:
        if isinstance(value, bool):
            raise ValueError
        number = int(str(value)) if integer else float(value)
    except (TypeError, ValueError):
        raise MediaPocketConfigError(
            f"Media Pocket connection {conn_id!r}: '{name}' must be {kind} >= {minimum:g} (got {value!r})"
        ) from None
    if number < minimum or number != number:
        raise MediaPocketConfigError(
            f"Media Pocket connection {conn_id!r}: '{name}' must be {kind} >= {minimum:g} (got {value!r})"
        )
    return number


def _boolean(conn_id: str, name: str, value: Any) -> bool:
    if isinstance(value, bool):
        return value
    text = str(value).strip().lower()
    if text in ("true", "1", "yes", "on"):
        return True
    if text in ("false", "0", "no", "off"):
        return False
    raise MediaPocketConfigError(
        f"Media Pocket connection {conn_id!r}: '{name}' must be true or false (got {value!r})"
    )


def build_base_url(conn_id: str, host: str | None, schema: str | None, port: int | None) -> str:
    """``host`` as a base URL: its own scheme, else ``schema`` (http/https), else https; plus ``port``."""
    host = (host or "").strip()
    if not host:
        raise MediaPocketConfigError(
            f"Media Pocket connection {conn_id!r} has no host: set it to the base URL, "
            "e.g. https://tryme.mediapocket.fi"
        )
    if "://" not in host:
        scheme = (schema or "").strip().lower() or "https"
        if scheme not in ("http", "https"):
            raise MediaPocketConfigError(
                f"Media Pocket connection {conn_id!r}: schema must be http or https (got {schema!r})"
            )
        host = f"{scheme}://{host}"
    parts = urlsplit(host)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise MediaPocketConfigError(
            f"Media Pocket connection {conn_id!r}: host {host!r} is not an http(s) base URL"
        )
    netloc = parts.netloc
    if port and parts.port is None:
        netloc = f"{netloc}:{int(port)}"
    base_path = parts.path.rstrip("/")
    if base_path.endswith(_api.API):
        base_path = base_path[: -len(_api.API)]
    return f"{parts.scheme}://{netloc}{base_path}"


def settings_from_connection(conn: Any, conn_id: str, overrides: dict[str, Any]) -> ConnectionSettings:
    """Read base URL, API key and extras from an Airflow connection; hook arguments win over extras."""
    api_key = (conn.password or "").strip()
    if not api_key:
        raise MediaPocketConfigError(
            f"Media Pocket connection {conn_id!r} has no API key: put it in the connection's password field"
        )
    extras = dict(conn.extra_dejson or {})
    merged = {**extras, **{key: value for key, value in overrides.items() if value is not None}}
    return ConnectionSettings(
        base_url=build_base_url(conn_id, conn.host, conn.schema, conn.port),
        api_key=api_key,
        timeout=_number(conn_id, "timeout", merged.get("timeout", DEFAULT_TIMEOUT), minimum=0.001),
        verify_ssl=_boolean(conn_id, "verify_ssl", merged.get("verify_ssl", True)),
        retry_limit=_number(conn_id, "retry_limit", merged.get("retry_limit", DEFAULT_RETRY_LIMIT), integer=True),
        retry_backoff=_number(conn_id, "retry_backoff", merged.get("retry_backoff", DEFAULT_RETRY_BACKOFF)),
    )


@functools.cache
def _ssl_context(verify: bool) -> ssl.SSLContext:
    """One TLS context per setting for the whole process: building one costs ~35 ms (CA bundle load),
    which a triggerer would otherwise pay for every client it opens."""
    import certifi

    if not verify:
        context = ssl.create_default_context()
        context.check_hostname = False
        context.verify_mode = ssl.CERT_NONE
        return context
    return ssl.create_default_context(cafile=certifi.where())


class MediaPocketHook(BaseHook):
    """Talks to the Media Pocket API v2 with the ``mediapocket`` connection ``mediapocket_conn_id``.

    Connection: host = base URL (a host without scheme means https, or ``schema``), optional port,
    password = API key; extras ``timeout`` (seconds, default 30), ``verify_ssl`` (default true),
    ``retry_limit`` (default 3) and ``retry_backoff`` (seconds, default 1). The keyword arguments
    override the extras. Nothing is read or sent before the first call.

    Every method is named after its endpoint and returns models from
    :mod:`airflow_provider_mediapocket.models`; methods prefixed ``a`` are the async twins for the
    triggerer. Failures raise :class:`~airflow_provider_mediapocket.exceptions.MediaPocketError`
    subclasses. Transient failures (429 honouring ``Retry-After``, 500/502/503/504, network errors)
    are retried with capped exponential backoff and jitter; a POST that may have reached the server is
    not repeated unless repeating cannot duplicate it.
    """

    conn_name_attr = "mediapocket_conn_id"
    default_conn_name = DEFAULT_CONN_ID
    conn_type = "mediapocket"
    hook_name = "Media Pocket"

    def __init__(
        self,
        mediapocket_conn_id: str = default_conn_name,
        *,
        timeout: float | None = None,
        retry_limit: int | None = None,
        retry_backoff: float | None = None,
        verify_ssl: bool | None = None,
    ) -> None:
        super().__init__()
        if not isinstance(mediapocket_conn_id, str) or not mediapocket_conn_id.strip():
            raise MediaPocketValidationError(
                f"Invalid parameter 'mediapocket_conn_id': must be a non-empty string (got {mediapocket_conn_id!r})"
            )
        self.mediapocket_conn_id = mediapocket_conn_id
        self.timeout = timeout
        self.retry_limit = retry_limit
        self.retry_backoff = retry_backoff
        self.verify_ssl = verify_ssl
        # Check the arguments now (no I/O): a bad one fails at DAG parse time, not mid-run.
        self._overrides()
        self._settings: ConnectionSettings | None = None
        self._client: httpx.Client | None = None
        self._aclient: httpx.AsyncClient | None = None
        self._aclient_loop: asyncio.AbstractEventLoop | None = None
        self._aclient_lock: tuple[asyncio.AbstractEventLoop, asyncio.Lock] | None = None

    def __repr__(self) -> str:
        return f"{type(self).__name__}(mediapocket_conn_id={self.mediapocket_conn_id!r})"

    # ------------------------------------------------------------------------------ connection form

    @classmethod
    def get_ui_field_behaviour(cls) -> dict[str, Any]:
        """Connection form layout for UIs that read it from the hook (the same as the provider info)."""
        from airflow_provider_mediapocket import get_provider_info

        behaviour = get_provider_info()["connection-types"][0]["ui-field-behaviour"]
        return {key.replace("-", "_"): value for key, value in behaviour.items()}

    # --------------------------------------------------------------------------------- settings

    def hook_kwargs(self) -> dict[str, Any]:
        """The constructor arguments, so a trigger can rebuild an equal hook (no secret in them)."""
        return {
            "mediapocket_conn_id": self.mediapocket_conn_id,
            "timeout": self.timeout,
            "retry_limit": self.retry_limit,
            "retry_backoff": self.retry_backoff,
            "verify_ssl": self.verify_ssl,
        }

    def _overrides(self) -> dict[str, Any]:
        conn_id = self.mediapocket_conn_id
        checked: dict[str, Any] = {}
        if self.timeout is not None:
            checked["timeout"] = _number(conn_id, "timeout", self.timeout, minimum=0.001)
        if self.retry_limit is not None:
            checked["retry_limit"] = _number(conn_id, "retry_limit", self.retry_limit, integer=True)
        if self.retry_backoff is not None:
            checked["retry_backoff"] = _number(conn_id, "retry_backoff", self.retry_backoff)
        if self.verify_ssl is not None:
            checked["verify_ssl"] = _boolean(conn_id, "verify_ssl", self.verify_ssl)
        return checked

    def _load(self, conn: Any) -> ConnectionSettings:
        self._settings = settings_from_connection(conn, self.mediapocket_conn_id, self._overrides())
        return self._settings

    def get_settings(self) -> ConnectionSettings:
        """The connection's settings, read once (sync)."""
        if self._settings is None:
            self._load(self._fetch_connection())
        assert self._settings is not None
        return self._settings

    async def aget_settings(self) -> ConnectionSettings:
        """The connection's settings, read once without blocking the event loop."""
        if self._settings is None:
            self._load(await self._afetch_connection())
        assert self._settings is not None
        return self._settings

    def _fetch_connection(self) -> Any:
        try:
            return self.get_connection(self.mediapocket_conn_id)
        except MediaPocketError:
            raise
        except Exception as exc:
            raise self._missing_connection(exc) from None

    async def _afetch_connection(self) -> Any:
        try:
            getter = getattr(type(self), "aget_connection", None)
            if getter is not None:
                return await getter(self.mediapocket_conn_id)
            from asgiref.sync import sync_to_async

            return await sync_to_async(self.get_connection)(self.mediapocket_conn_id)
        except MediaPocketError:
            raise
        except Exception as exc:
            raise self._missing_connection(exc) from None

    def _missing_connection(self, exc: Exception) -> MediaPocketConfigError:
        return MediaPocketConfigError(
            f"Media Pocket connection {self.mediapocket_conn_id!r} could not be loaded "
            f"({type(exc).__name__}): define it in Airflow or as AIRFLOW_CONN_"
            f"{self.mediapocket_conn_id.upper()}"
        )

    @property
    def policy(self) -> RetryPolicy:
        settings = self._settings
        if settings is None:
            return RetryPolicy()
        return RetryPolicy(retry_limit=settings.retry_limit, backoff=settings.retry_backoff)

    # ---------------------------------------------------------------------------------- clients

    @staticmethod
    def _client_kwargs(settings: ConnectionSettings) -> dict[str, Any]:
        return {
            "base_url": settings.base_url,
            "headers": {
                "X-API-KEY": settings.api_key,
                "Content-Type": "application/json",
                "Accept": "application/json",
                "User-Agent": f"airflow-provider-mediapocket/{__version__} httpx/{httpx.__version__}",
            },
            "timeout": httpx.Timeout(settings.timeout),
            "verify": _ssl_context(settings.verify_ssl),
            "limits": httpx.Limits(max_connections=100, max_keepalive_connections=20),
            "follow_redirects": False,
        }

    def get_client(self) -> httpx.Client:
        """The hook's ``httpx.Client``, created on first use and reused (keep-alive pool)."""
        if self._client is None:
            self._client = httpx.Client(**self._client_kwargs(self.get_settings()))
        return self._client

    async def aget_client(self) -> httpx.AsyncClient:
        """The hook's ``httpx.AsyncClient`` for the running event loop (a new loop gets a new client).

        Safe to call from many coroutines at once: the first one reads the connection and builds the
        client, the others wait for it (triggers sharing a hook would otherwise each read it).
        """
        loop = asyncio.get_running_loop()
        if self._aclient_ready(loop):
            assert self._aclient is not None
            return self._aclient
        if self._aclient_lock is None or self._aclient_lock[0] is not loop:
            self._aclient_lock = (loop, asyncio.Lock())
        async with self._aclient_lock[1]:
            if not self._aclient_ready(loop):
                settings = await self.aget_settings()
                self._aclient = httpx.AsyncClient(**self._client_kwargs(settings))
                self._aclient_loop = loop
        assert self._aclient is not None
        return self._aclient

    def _aclient_ready(self, loop: asyncio.AbstractEventLoop) -> bool:
        return self._aclient is not None and self._aclient_loop is loop and not self._aclient.is_closed

    def close(self) -> None:
        """Close the sync client (the hook can be used again afterwards)."""
        if self._client is not None:
            self._client.close()
            self._client = None

    async def aclose(self) -> None:
        """Close the async client."""
        if self._aclient is not None:
            await self._aclient.aclose()
            self._aclient = None
            self._aclient_loop = None

    def __enter__(self) -> MediaPocketHook:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    # ---------------------------------------------------------------------------------- drivers

    def _run(self, call: ApiCall[T]) -> T:
        """Send ``call`` with the sync client, retrying as the shared policy says."""
        client = self.get_client()
        steps = exchange(call, self.policy)
        outcome: Any = None
        try:
            while True:
                step = steps.send(outcome)
                if isinstance(step, Sleep):
                    time.sleep(step.seconds)
                    outcome = None
                    continue
                assert isinstance(step, Send)
                self.log.debug("Media Pocket request %s", call.describe())
                try:
                    outcome = client.request(call.method, call.path, json=call.json, params=call.params)
                except httpx.TransportError as exc:
                    outcome = exc
        except StopIteration as done:
            return cast(T, done.value)

    async def _arun(self, call: ApiCall[T]) -> T:
        """Send ``call`` with the async client: the same exchange as :meth:`_run`, never blocking."""
        client = await self.aget_client()
        steps = exchange(call, self.policy)
        outcome: Any = None
        try:
            while True:
                step = steps.send(outcome)
                if isinstance(step, Sleep):
                    await asyncio.sleep(step.seconds)
                    outcome = None
                    continue
                assert isinstance(step, Send)
                self.log.debug("Media Pocket request %s", call.describe())
                try:
                    outcome = await client.request(call.method, call.path, json=call.json, params=call.params)
                except httpx.TransportError as exc:
                    outcome = exc
        except StopIteration as done:
            return cast(T, done.value)

    def _drive(self, plan: Plan[T]) -> T:
        """Run a multi-call plan (a generator of calls) with the sync client."""
        value: Any = None
        error: MediaPocketError | None = None
        while True:
            try:
                call = plan.throw(error) if error is not None else plan.send(value)
            except StopIteration as done:
                return cast(T, done.value)
            if isinstance(call, Sleep):
                time.sleep(call.seconds)
                value, error = None, None
                continue
            try:
                value, error = self._run(call), None
            except MediaPocketError as exc:
                value, error = None, exc

    async def _adrive(self, plan: Plan[T]) -> T:
        """Run a multi-call plan with the async client."""
        value: Any = None
        error: MediaPocketError | None = None
        while True:
            try:
                call = plan.throw(error) if error is not None else plan.send(value)
            except StopIteration as done:
                return cast(T, done.value)
            if isinstance(call, Sleep):
                await asyncio.sleep(call.seconds)
                value, error = None, None
                continue
            try:
                value, error = await self._arun(call), None
            except MediaPocketError as exc:
                value, error = None, exc

    # ------------------------------------------------------------------------------- connection

    def test_connection(self) -> tuple[bool, str]:
        """One cheap authenticated call (list the key owner's API keys); used by Test Connection."""
        try:
            settings = self.get_settings()
            self._run(_api.list_api_keys())
        except MediaPocketError as exc:
            return False, str(exc)
        finally:
            self.close()
        return True, f"Connected to Media Pocket at {settings.base_url}"

    def list_api_keys(self) -> list[ApiKey]:
        """The current user's API keys as the API lists them."""
        return self._run(_api.list_api_keys())

    # ----------------------------------------------------------------------------------- assets

    def get_asset(self, asset_id: str) -> Asset:
        return self._run(_api.get_asset(asset_id))

    async def aget_asset(self, asset_id: str) -> Asset:
        return await self._arun(_api.get_asset(asset_id))

    def create_asset(
        self,
        title: str,
        *,
        description: str | None = None,
        category: str | None = None,
        tags: list[str] | None = None,
        media_type: str | None = None,
        external_id: str | None = None,
    ) -> Asset:
        """Create an asset (``placeholder`` until media is added; ``media_type`` may only be "article")."""
        return self._run(_api.create_asset(
            title=title, description=description, category=category, tags=tags, media_type=media_type,
            external_id=external_id,
        ))

    async def acreate_asset(self, title: str, **fields: Any) -> Asset:
        return await self._arun(_api.create_asset(title=title, **fields))

    def update_asset(self, asset_id: str, **fields: Any) -> Asset:
        """Update title, description, category, tags and/or external_id."""
        return self._run(_api.update_asset(asset_id, **fields))

    async def aupdate_asset(self, asset_id: str, **fields: Any) -> Asset:
        return await self._arun(_api.update_asset(asset_id, **fields))

    def trash_asset(self, asset_id: str) -> str:
        """Move the asset to the trash bin (deleted for good after 14 days)."""
        return self._run(_api.asset_action(asset_id, "trash_bin"))

    def restore_asset(self, asset_id: str) -> str:
        return self._run(_api.asset_action(asset_id, "restore"))

    def delete_asset(self, asset_id: str) -> str:
        """Delete the asset permanently."""
        return self._run(_api.asset_action(asset_id, "", method="DELETE"))

    def assign_asset(self, asset_id: str, project_id: str) -> str:
        """Put the asset in a project. "Project not found." (sent as HTTP 200) raises."""
        return self._run(_api.assign("assets", asset_id, project_id))

    async def aassign_asset(self, asset_id: str, project_id: str) -> str:
        return await self._arun(_api.assign("assets", asset_id, project_id))

    def unassign_asset(self, asset_id: str) -> str:
        return self._run(_api.unassign("assets", asset_id))

    def add_media(self, asset_id: str, file_url: str, filename: str | None = None) -> str:
        """Media Pocket downloads ``file_url`` into the asset; ``filename`` defaults to the URL's last segment."""
        return self._run(_api.add_media(asset_id, file_url, filename))

    async def aadd_media(self, asset_id: str, file_url: str, filename: str | None = None) -> str:
        return await self._arun(_api.add_media(asset_id, file_url, filename))

    def list_media(self, asset_id: str, *, include_locations: bool = False) -> list[Media]:
        return self._run(_api.list_media(asset_id, include_locations))

    async def alist_media(self, asset_id: str, *, include_locations: bool = False) -> list[Media]:
        return await self._arun(_api.list_media(asset_id, include_locations))

    def remove_media(self, asset_id: str) -> Asset:
        """Remove the asset's media; "No media found on this asset." (sent as HTTP 200) raises."""
        return self._run(_api.remove_media(asset_id))

    def get_media_download_url(self, asset_id: str, media_id: int | str, filename: str) -> str | None:
        return self._run(_api.media_download_url(asset_id, media_id, filename))

    def get_file_metadata(self, asset_id: str) -> dict[str, Any]:
        """EXIF/IPTC/XMP metadata and mediainfo of the asset's original file."""
        return self._run(_api.file_metadata(asset_id))

    file_metadata = get_file_metadata

    def list_asset_collections(self, asset_id: str) -> list[Collection]:
        return self._run(_api.asset_collections(asset_id))

    def get_asset_history(self, asset_id: str, cursor: str | int = "0") -> HistoryPage:
        return self._run(_api.history("assets", asset_id, cursor))

    async def aget_asset_history(self, asset_id: str, cursor: str | int = "0") -> HistoryPage:
        return await self._arun(_api.history("assets", asset_id, cursor))

    def iter_asset_history(self, asset_id: str, cursor: str | int = "0") -> Iterator[HistoryEvent]:
        """Every history event of the asset from ``cursor`` on, following ``next_cursor`` to the end."""
        return self._iter_history("assets", asset_id, cursor)

    def aiter_asset_history(self, asset_id: str, cursor: str | int = "0") -> AsyncIterator[HistoryEvent]:
        return self._aiter_history("assets", asset_id, cursor)

    def _iter_history(self, kind: str, item_id: str, cursor: str | int | None) -> Iterator[HistoryEvent]:
        while cursor is not None:
            page = self._run(_api.history(kind, item_id, cursor))
            yield from page.results
            cursor = page.next_cursor

    async def _aiter_history(
        self, kind: str, item_id: str, cursor: str | int | None
    ) -> AsyncIterator[HistoryEvent]:
        while cursor is not None:
            page = await self._arun(_api.history(kind, item_id, cursor))
            for event in page.results:
                yield event
            cursor = page.next_cursor

    # ------------------------------------------------------------------ asset comments, attachments

    def list_asset_comments(self, asset_id: str) -> list[Comment]:
        return self._run(_api.list_comments("assets", asset_id))

    def get_asset_comment(self, asset_id: str, comment_id: int | str) -> Comment:
        return cast(Comment, self._run(_api.comment("assets", asset_id, comment_id)))

    def create_asset_comment(self, asset_id: str, comment: str) -> Comment:
        return self._run(_api.create_comment("assets", asset_id, comment))

    def update_asset_comment(self, asset_id: str, comment_id: int | str, comment: str) -> Comment:
        return cast(Comment, self._run(_api.comment("assets", asset_id, comment_id, "POST", comment)))

    def delete_asset_comment(self, asset_id: str, comment_id: int | str) -> str:
        return cast(str, self._run(_api.comment("assets", asset_id, comment_id, "DELETE")))

    def list_asset_attachments(self, asset_id: str) -> list[Attachment]:
        return self._run(_api.list_attachments("assets", asset_id))

    def create_asset_attachment(self, asset_id: str, title: str, **fields: Any) -> Attachment:
        return self._run(_api.create_attachment("assets", asset_id, title=title, **fields))

    # -------------------------------------------------------------------------------- DAG actions

    def list_dag_actions(self, asset_id: str) -> list[DagAction]:
        """The DAG actions that can run on the asset (needs ``ACTIONS_VIEW``)."""
        return self._run(_api.list_dag_actions(asset_id))

    async def alist_dag_actions(self, asset_id: str) -> list[DagAction]:
        return await self._arun(_api.list_dag_actions(asset_id))

    def start_dag_action(
        self, asset_id: str, dag_action_id: int | str, *, settle_seconds: float | None = None
    ) -> DagActionRun:
        """Start a DAG action on the asset (needs ``ACTIONS_START``) and return the new run.

        :param asset_id: the asset to run the action on.
        :param dag_action_id: the DAG action's id.
        :param settle_seconds: after an unclear start, how long to watch the asset's run list for the
            run it may have made before deciding (default: the request timeout, at least 5 s).

        Never starts two runs for one call. The API has no idempotency key and no single-run lookup, so
        when the answer to the start is lost (timeout, dropped connection, 5xx) the server may still be
        applying it: the asset's runs are watched for ``settle_seconds`` and compared with the list
        taken just before the start was sent. Exactly one new run of this action -> it is the one we
        started; two or more -> MediaPocketOperationError naming them (one may be someone else's); none
        -> the start is sent again. Without ``ACTIONS_VIEW`` an unclear start is not repeated.
        """
        return self._drive(self._start_dag_action_plan(asset_id, dag_action_id, settle_seconds))

    async def astart_dag_action(
        self, asset_id: str, dag_action_id: int | str, *, settle_seconds: float | None = None
    ) -> DagActionRun:
        """Async twin of :meth:`start_dag_action` (same parameters)."""
        return await self._adrive(self._start_dag_action_plan(asset_id, dag_action_id, settle_seconds))

    def _settle_window(self, settle_seconds: float | None) -> float:
        if settle_seconds is not None:
            return float(settle_seconds)
        timeout = self._settings.timeout if self._settings is not None else DEFAULT_TIMEOUT
        # At least one request timeout: the start the client gave up on may be applied that much later.
        return max(timeout, 5.0)

    def _start_dag_action_plan(
        self, asset_id: str, dag_action_id: int | str, settle_seconds: float | None = None
    ) -> Plan[DagActionRun]:
        start = _api.start_dag_action(asset_id, dag_action_id)
        listing = _api.list_dag_action_runs(asset_id)
        try:
            before: set[str] | None = {str(run.id) for run in (yield listing)}
        except MediaPocketPermissionError:
            before = None  # no ACTIONS_VIEW: a lost answer cannot be recovered, so it is not retried
        attempts = self.policy.retry_limit + 1
        for attempt in range(attempts):
            try:
                return cast(DagActionRun, (yield start))
            except (MediaPocketTransportError, MediaPocketServerError) as exc:
                unclear = not isinstance(exc, MediaPocketTransportError) or exc.request_sent
                if unclear and before is None:
                    raise
                if unclear:
                    assert before is not None
                    runs = yield from self._new_runs(listing, before, dag_action_id, settle_seconds)
                    if len(runs) == 1:
                        self.log.warning(
                            "The answer to starting DAG action %s on asset %s was lost (%s); found the run "
                            "it started: %s", dag_action_id, asset_id, exc.message, runs[0].id,
                        )
                        return runs[0]
                    if runs:
                        raise MediaPocketOperationError(
                            f"Starting DAG action {dag_action_id} on asset {asset_id}: the answer was lost "
                            f"({exc.message}) and {len(runs)} runs of this action were started since "
                            f"({', '.join(str(run.id) for run in runs)}); one may be someone else's, so none "
                            "is adopted and no other is started",
                            method=exc.method, path=exc.path,
                        ) from exc
                if attempt == attempts - 1:
                    raise
                self.log.warning(
                    "Starting DAG action %s on asset %s failed (%s) and no run was started; sending it again",
                    dag_action_id, asset_id, exc.message,
                )
        raise AssertionError("unreachable")  # pragma: no cover

    def _new_runs(
        self, listing: ApiCall[list[DagActionRun]], before: set[str], dag_action_id: int | str,
        settle_seconds: float | None,
    ) -> Plan[list[DagActionRun]]:
        """Watch the run list for the settle window; the runs of this action that were not in ``before``.

        The whole window is watched even after a first new run shows up: a second one (someone else's,
        or ours landing late) must not be missed, since adopting the wrong run cannot be undone.
        """
        window = self._settle_window(settle_seconds)
        deadline = time.monotonic() + window
        step = min(1.0, max(window / 10, 0.05))
        seen: dict[str, DagActionRun] = {}
        while True:
            try:
                runs = yield listing
            except (MediaPocketTransportError, MediaPocketServerError, MediaPocketRateLimitError):
                runs = []  # the list is unavailable for now: keep watching until the window ends
            for run in runs:
                if str(run.id) not in before and (
                    run.dag_action is None or str(run.dag_action.id) == str(dag_action_id)
                ):
                    seen[str(run.id)] = run
            left = deadline - time.monotonic()
            if left <= 0:
                return sorted(seen.values(), key=lambda r: (r.created_at or "", str(r.id)))
            yield Sleep(min(step, left))

    def list_dag_action_runs(self, asset_id: str) -> list[DagActionRun]:
        """The asset's DAG action runs (needs ``ACTIONS_VIEW``)."""
        return self._run(_api.list_dag_action_runs(asset_id))

    async def alist_dag_action_runs(self, asset_id: str) -> list[DagActionRun]:
        return await self._arun(_api.list_dag_action_runs(asset_id))

    def get_dag_action_run(self, asset_id: str, run_id: int | str) -> DagActionRun:
        """One run of the asset (the API lists runs per asset; ids are compared as strings)."""
        return self._run(_api.get_dag_action_run(asset_id, run_id))

    async def aget_dag_action_run(self, asset_id: str, run_id: int | str) -> DagActionRun:
        return await self._arun(_api.get_dag_action_run(asset_id, run_id))

    # ----------------------------------------------------------------------------------- projects

    def list_projects(self) -> list[Project]:
        return self._run(_api.list_projects())

    def get_project(self, project_id: str) -> Project:
        return self._run(_api.get_project(project_id))

    async def aget_project(self, project_id: str) -> Project:
        return await self._arun(_api.get_project(project_id))

    def create_project(self, title: str, **fields: Any) -> Project:
        """Create a top-level project (description, category, tags, external_id optional)."""
        return self._run(_api.create_project(title=title, **fields))

    async def acreate_project(self, title: str, **fields: Any) -> Project:
        return await self._arun(_api.create_project(title=title, **fields))

    def update_project(self, project_id: str, **fields: Any) -> Project:
        return self._run(_api.update_project(project_id, **fields))

    def trash_project(self, project_id: str) -> str:
        return self._run(_api.project_action(project_id, "trash_bin"))

    def restore_project(self, project_id: str) -> str:
        return self._run(_api.project_action(project_id, "restore"))

    def delete_project(self, project_id: str) -> str:
        return self._run(_api.project_action(project_id, "", method="DELETE"))

    def list_subprojects(self, project_id: str) -> list[Project]:
        return self._run(_api.list_subprojects(project_id))

    def create_subproject(self, project_id: str, title: str, **fields: Any) -> Project:
        return self._run(_api.create_project(project_id, title=title, **fields))

    def list_project_assets(self, project_id: str) -> ProjectContents:
        """The project's assets, sub-projects and stats."""
        return self._run(_api.list_project_assets(project_id))

    async def alist_project_assets(self, project_id: str) -> ProjectContents:
        return await self._arun(_api.list_project_assets(project_id))

    def create_project_asset(
        self,
        project_id: str,
        title: str,
        *,
        file_url: str | None = None,
        filename: str | None = None,
        s3_key: str | None = None,
        **fields: Any,
    ) -> Asset:
        """Create an asset in the project, with media from ``file_url`` or ``s3_key`` in the same call.

        A bad media URL is reported as HTTP 200 with an error while the asset *is* created: that raises
        MediaPocketOperationError with ``created_asset_id`` set.
        """
        return self._run(_api.create_project_asset(
            project_id, title=title, file_url=file_url, filename=filename, s3_key=s3_key, **fields
        ))

    async def acreate_project_asset(self, project_id: str, title: str, **fields: Any) -> Asset:
        return await self._arun(_api.create_project_asset(project_id, title=title, **fields))

    def find_project_asset(self, project_id: str, *, external_id: str) -> Asset | None:
        """The asset of the project whose ``external_id`` matches, or None (the API has no search)."""
        wanted = check_id("external_id", external_id)
        for asset in self.list_project_assets(project_id).assets:
            if asset.external_id == wanted:
                return asset
        return None

    async def afind_project_asset(self, project_id: str, *, external_id: str) -> Asset | None:
        wanted = check_id("external_id", external_id)
        for asset in (await self.alist_project_assets(project_id)).assets:
            if asset.external_id == wanted:
                return asset
        return None

    def reuse_asset(
        self, asset: Asset, *, file_url: str | None = None, filename: str | None = None, s3_key: str | None = None
    ) -> Asset:
        """Check an existing asset (found by ``external_id``) against a create request before re-using it.

        :param asset: the asset found (as listed).
        :param file_url: / :param filename: / :param s3_key: the media the request asked for.

        Media with another file name than the request's -> MediaPocketOperationError (the old file is
        never returned as the new one). No media -> it is added from ``file_url`` and the asset is read
        again; from ``s3_key`` it cannot be (S3 media is only taken at creation) -> an error naming the
        asset. The API does not show the URL media came from: the same file name from another URL passes.
        """
        return self._drive(self._reuse_asset_plan(asset, file_url, filename, s3_key))

    async def areuse_asset(
        self, asset: Asset, *, file_url: str | None = None, filename: str | None = None, s3_key: str | None = None
    ) -> Asset:
        """Async twin of :meth:`reuse_asset` (same parameters)."""
        return await self._adrive(self._reuse_asset_plan(asset, file_url, filename, s3_key))

    def _reuse_asset_plan(
        self, asset: Asset, file_url: str | None, filename: str | None, s3_key: str | None
    ) -> Plan[Asset]:
        problem = reuse_problem(asset, file_url, filename, s3_key)
        if problem is not None:
            raise MediaPocketOperationError(problem)
        if has_media(asset) or (file_url is None and s3_key is None):
            return asset
        if file_url is None:
            raise MediaPocketOperationError(
                f"Asset {asset.id} (external_id {asset.external_id!r}) exists without its media (an earlier "
                "attempt's media was not added), and media from S3 can only be given when an asset is created: "
                "trash the asset (or add the media in Media Pocket) and run the task again"
            )
        self.log.info("Asset %s exists without its media (an earlier attempt's was not added): adding it", asset.id)
        try:
            yield _api.add_media(asset.id, file_url, filename)
        except MediaPocketError as exc:
            raise type(exc)(
                f"Asset {asset.id} (external_id {asset.external_id!r}) exists without its media and adding it "
                f"failed: {exc}",
                status=exc.status, method=exc.method, path=exc.path, server_message=exc.server_message,
            ) from exc
        return cast(Asset, (yield _api.get_asset(asset.id)))

    def get_project_stats(self, project_id: str) -> Stats:
        return self._run(_api.project_stats(project_id))

    def make_project_public(self, project_id: str) -> bool:
        return self._run(_api.project_visibility(project_id, True))

    def make_project_private(self, project_id: str) -> bool:
        return self._run(_api.project_visibility(project_id, False))

    def list_project_users(self, project_id: str, *, include_inherited: bool = False) -> list[User]:
        """The project's users; ``include_inherited`` uses ``all_users``."""
        return self._run(_api.project_users(project_id, include_inherited))

    def add_project_user(self, project_id: str, user_id: int | str) -> str:
        return self._run(_api.project_member(project_id, "users", user_id, add=True))

    def remove_project_user(self, project_id: str, user_id: int | str) -> str:
        return self._run(_api.project_member(project_id, "users", user_id, add=False))

    def add_project_guest(self, project_id: str, email: str) -> list[User]:
        """Invite a guest by e-mail; returns the project's users."""
        return self._run(_api.add_project_guest(project_id, email))

    def list_project_user_groups(self, project_id: str) -> list[UserGroup]:
        return self._run(_api.project_user_groups(project_id))

    def add_project_user_group(self, project_id: str, user_group_id: int | str) -> str:
        return self._run(_api.project_member(project_id, "user_groups", user_group_id, add=True))

    def remove_project_user_group(self, project_id: str, user_group_id: int | str) -> str:
        return self._run(_api.project_member(project_id, "user_groups", user_group_id, add=False))

    def get_project_history(self, project_id: str, cursor: str | int = "0") -> HistoryPage:
        return self._run(_api.history("projects", project_id, cursor))

    def iter_project_history(self, project_id: str, cursor: str | int = "0") -> Iterator[HistoryEvent]:
        """Every history event of the project, following ``next_cursor`` to the end."""
        return self._iter_history("projects", project_id, cursor)

    def aiter_project_history(self, project_id: str, cursor: str | int = "0") -> AsyncIterator[HistoryEvent]:
        return self._aiter_history("projects", project_id, cursor)

    def set_project_thumbnail(self, project_id: str, asset_id: str) -> str:
        return self._run(_api.set_project_thumbnail(project_id, asset_id))

    def remove_project_thumbnail(self, project_id: str) -> str:
        return self._run(_api.remove_project_thumbnail(project_id))

    def assign_project(self, project_id: str, to_project_id: str) -> str:
        """Make the project a sub-project of ``to_project_id``."""
        return self._run(_api.assign("projects", project_id, to_project_id))

    def unassign_project(self, project_id: str) -> str:
        return self._run(_api.unassign("projects", project_id))

    def list_project_comments(self, project_id: str) -> list[Comment]:
        return self._run(_api.list_comments("projects", project_id))

    def get_project_comment(self, project_id: str, comment_id: int | str) -> Comment:
        return cast(Comment, self._run(_api.comment("projects", project_id, comment_id)))

    def create_project_comment(self, project_id: str, comment: str) -> Comment:
        return self._run(_api.create_comment("projects", project_id, comment))

    def update_project_comment(self, project_id: str, comment_id: int | str, comment: str) -> Comment:
        return cast(Comment, self._run(_api.comment("projects", project_id, comment_id, "POST", comment)))

    def delete_project_comment(self, project_id: str, comment_id: int | str) -> str:
        return cast(str, self._run(_api.comment("projects", project_id, comment_id, "DELETE")))

    def list_project_attachments(self, project_id: str) -> list[Attachment]:
        return self._run(_api.list_attachments("projects", project_id))

    def create_project_attachment(self, project_id: str, title: str, **fields: Any) -> Attachment:
        return self._run(_api.create_attachment("projects", project_id, title=title, **fields))

    # ------------------------------------------------ async twins of the other reads and operator calls

    async def alist_api_keys(self) -> list[ApiKey]:
        return await self._arun(_api.list_api_keys())

    async def atrash_asset(self, asset_id: str) -> str:
        return await self._arun(_api.asset_action(asset_id, "trash_bin"))

    async def arestore_asset(self, asset_id: str) -> str:
        return await self._arun(_api.asset_action(asset_id, "restore"))

    async def aget_media_download_url(self, asset_id: str, media_id: int | str, filename: str) -> str | None:
        return await self._arun(_api.media_download_url(asset_id, media_id, filename))

    async def aget_file_metadata(self, asset_id: str) -> dict[str, Any]:
        return await self._arun(_api.file_metadata(asset_id))

    async def alist_asset_collections(self, asset_id: str) -> list[Collection]:
        return await self._arun(_api.asset_collections(asset_id))

    async def alist_asset_comments(self, asset_id: str) -> list[Comment]:
        return await self._arun(_api.list_comments("assets", asset_id))

    async def aget_asset_comment(self, asset_id: str, comment_id: int | str) -> Comment:
        return cast(Comment, await self._arun(_api.comment("assets", asset_id, comment_id)))

    async def acreate_asset_comment(self, asset_id: str, comment: str) -> Comment:
        return await self._arun(_api.create_comment("assets", asset_id, comment))

    async def alist_asset_attachments(self, asset_id: str) -> list[Attachment]:
        return await self._arun(_api.list_attachments("assets", asset_id))

    async def alist_projects(self) -> list[Project]:
        return await self._arun(_api.list_projects())

    async def alist_subprojects(self, project_id: str) -> list[Project]:
        return await self._arun(_api.list_subprojects(project_id))

    async def acreate_subproject(self, project_id: str, title: str, **fields: Any) -> Project:
        return await self._arun(_api.create_project(project_id, title=title, **fields))

    async def aget_project_stats(self, project_id: str) -> Stats:
        return await self._arun(_api.project_stats(project_id))

    async def alist_project_users(self, project_id: str, *, include_inherited: bool = False) -> list[User]:
        return await self._arun(_api.project_users(project_id, include_inherited))

    async def alist_project_user_groups(self, project_id: str) -> list[UserGroup]:
        return await self._arun(_api.project_user_groups(project_id))

    async def aget_project_history(self, project_id: str, cursor: str | int = "0") -> HistoryPage:
        return await self._arun(_api.history("projects", project_id, cursor))

    async def alist_project_comments(self, project_id: str) -> list[Comment]:
        return await self._arun(_api.list_comments("projects", project_id))

    async def aget_project_comment(self, project_id: str, comment_id: int | str) -> Comment:
        return cast(Comment, await self._arun(_api.comment("projects", project_id, comment_id)))

    async def acreate_project_comment(self, project_id: str, comment: str) -> Comment:
        return await self._arun(_api.create_comment("projects", project_id, comment))

    async def alist_project_attachments(self, project_id: str) -> list[Attachment]:
        return await self._arun(_api.list_attachments("projects", project_id))
