"""MediaPocketHook: every Media Pocket API v2 endpoint, sync for workers and async for the triggerer."""

from __future__ import annotations

import asyncio
import contextlib
import contextvars
import dataclasses
import functools
import inspect
import ipaddress
import json
import logging
import math
import os
import ssl
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Generator, Iterator
from contextlib import contextmanager
from contextvars import ContextVar
from dataclasses import dataclass, field
from typing import Any, Concatenate, ParamSpec, TypeVar, cast
from urllib.parse import urlsplit

import httpx

from airflow_provider_mediapocket import DEFAULT_CONN_ID, __version__, _ratelimit
from airflow_provider_mediapocket._recovery import has_media, reuse_problem
from airflow_provider_mediapocket._redact import redact_url
from airflow_provider_mediapocket._transport import ApiCall, RetryPolicy, Send, Sleep, exchange
from airflow_provider_mediapocket._validation import NOT_A_PARAMETER, invalid
from airflow_provider_mediapocket.exceptions import (
    MediaPocketAuthError,
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
    Asset,
    DagActionRun,
    HistoryEvent,
    HistoryPage,
    ProjectContents,
    check_id,
)

try:
    from airflow.sdk import BaseHook
except ImportError:  # pragma: no cover - Airflow before the task SDK exported it
    from airflow.hooks.base import BaseHook  # type: ignore[no-redef,attr-defined]

T = TypeVar("T")
P = ParamSpec("P")
# A multi-call plan yields the calls to make (and, to wait between them, a Sleep).
Plan = Generator[ApiCall[Any] | Sleep, Any, T]

DEFAULT_TIMEOUT = 30.0
DEFAULT_RETRY_LIMIT = 3
DEFAULT_RETRY_BACKOFF = 1.0
#: How old (seconds) the connection's settings may get before a call re-reads the connection, so that
#: a changed key or extra reaches long-lived hooks (the triggerer's shared hooks lower it to their poll
#: interval). A 401 re-reads it at once regardless.
DEFAULT_SETTINGS_MAX_AGE = 30.0
#: Idle connections a client keeps open; more concurrent requests open connections that are closed after.
KEEPALIVE_CONNECTIONS = 20


@dataclass(frozen=True)
class _Range:
    """The allowed values of a numeric setting, and how to say so."""

    low: float
    high: float
    integer: bool = False
    low_open: bool = False  # low itself is excluded
    unit: str = "seconds"

    def describe(self) -> str:
        if self.integer:
            return f"a whole number from {self.low:g} to {self.high:g}"
        if self.low_open:
            return f"a finite number of {self.unit} greater than {self.low:g} and at most {self.high:g}"
        return f"a finite number of {self.unit} from {self.low:g} to {self.high:g}"

    def check(self, value: Any) -> float | int | None:
        """The value converted, or None when it is not allowed."""
        if isinstance(value, bool):
            return None
        try:
            if self.integer:
                if isinstance(value, float):
                    if not value.is_integer():
                        return None
                    value = int(value)
                number: float | int = int(str(value).strip())
            else:
                number = float(value)
        except (TypeError, ValueError, OverflowError):
            return None
        # nan fails every comparison, so it is rejected here too; inf is above every ``high``.
        if not (number > self.low if self.low_open else number >= self.low) or not number <= self.high:
            return None
        return number


#: Bounds of the numeric connection extras and hook arguments. A timeout of 0, ``inf`` or ``nan`` would
#: make every call fail or never time out; a huge retry_limit or retry_backoff would turn a dead server
#: into a wait of days. The ranges are documented in the README ("Connection").
SETTING_RANGES: dict[str, _Range] = {
    "timeout": _Range(0.0, 3600.0, low_open=True),
    "retry_limit": _Range(0, 20, integer=True),
    "retry_backoff": _Range(0.0, 300.0),
    # Connection extra only: this process's share of the account's request limit (see _ratelimit).
    "max_requests_per_second": _Range(0.0, 10000.0, low_open=True, unit="requests per second"),
}


@dataclass(frozen=True)
class ConnectionSettings:
    """What a hook needs from its connection. The API key is kept out of ``repr``."""

    base_url: str
    api_key: str = field(repr=False)
    timeout: float = DEFAULT_TIMEOUT
    verify_ssl: bool = True
    retry_limit: int = DEFAULT_RETRY_LIMIT
    retry_backoff: float = DEFAULT_RETRY_BACKOFF
    #: Extra ``ui_base_url``: where the operators' extra links point; ``None`` means :attr:`base_url`.
    ui_base_url: str | None = None
    #: Extra ``max_requests_per_second``: this process's request budget for the connection (None: none).
    max_requests_per_second: float | None = None

    @property
    def ui_url(self) -> str:
        """The base of the extra links' URLs: ``ui_base_url`` if set, else the API's base URL."""
        return self.ui_base_url or self.base_url


def _short(value: Any) -> str:
    text = repr(value)
    return text if len(text) <= 60 else text[:57] + "..."


def _setting(name: str, value: Any, error: Callable[[str], MediaPocketError]) -> Any:
    """A numeric setting checked against :data:`SETTING_RANGES`, or ``error(problem)``."""
    allowed = SETTING_RANGES[name]
    number = allowed.check(value)
    if number is None:
        raise error(f"must be {allowed.describe()} (got {_short(value)})")
    return number


def _extra_error(conn_id: str, name: str) -> Callable[[str], MediaPocketError]:
    return lambda problem: MediaPocketConfigError(f"Media Pocket connection {conn_id!r}: extra '{name}' {problem}")


def _argument_error(name: str) -> Callable[[str], MediaPocketError]:
    # A configuration error (as before), worded like every other rejected parameter.
    return lambda problem: MediaPocketConfigError(f"Invalid parameter '{name}': {problem}")


def _boolean(name: str, value: Any, error: Callable[[str], MediaPocketError]) -> bool:
    if isinstance(value, bool):
        return value
    text = str(value).strip().lower()
    if text in ("true", "1", "yes", "on"):
        return True
    if text in ("false", "0", "no", "off"):
        return False
    raise error(f"must be true or false (got {_short(value)})")


def _bracket_ipv6(host: str) -> str:
    """``::1`` or ``fe80::1%eth0/api`` (an IPv6 literal without brackets) bracketed, as URLs need it;
    anything else unchanged."""
    address, slash, rest = host.partition("/")
    if address.count(":") < 2 or address.startswith("["):
        return host
    try:
        ipaddress.ip_address(address.split("%", 1)[0])
    except ValueError:
        return host
    return f"[{address}]{slash}{rest}"


def build_base_url(conn_id: str, host: str | None, schema: str | None, port: Any) -> str:
    """``host`` as a base URL: its own scheme, else ``schema`` (http/https), else https; plus ``port``.

    Rejected, naming the field: a query string or fragment in ``host`` (it would be dropped silently),
    credentials in ``host`` (the API authenticates with the key; a password there would show in links
    and messages), a port in ``host`` that differs from the ``port`` field, an invalid port. An IPv6
    address without brackets (``::1``) is accepted and bracketed.
    """
    where = f"Media Pocket connection {conn_id!r}"
    host = (host or "").strip()
    if not host:
        raise MediaPocketConfigError(
            f"{where} has no host: set it to the base URL, e.g. https://tryme.mediapocket.fi"
        )
    if "://" not in host:
        scheme = (schema or "").strip().lower() or "https"
        if scheme not in ("http", "https"):
            raise MediaPocketConfigError(f"{where}: schema must be http or https (got {_short(schema)})")
        host = f"{scheme}://{_bracket_ipv6(host)}"
    else:
        scheme_part, _, rest = host.partition("://")
        host = f"{scheme_part}://{_bracket_ipv6(rest)}"
    parts = urlsplit(host)
    # Checked before anything that may echo the host: a password there must never be shown.
    if "@" in parts.netloc:
        raise MediaPocketConfigError(
            f"{where}: host must not contain credentials (user:password@): Media Pocket authenticates with "
            "the API key, set in the connection's API Key (password) field"
        )
    shown = redact_url(host)
    if "?" in host or "#" in host:
        raise MediaPocketConfigError(
            f"{where}: host must be a base URL without a query string or fragment (got {shown!r}); "
            "set timeout, verify_ssl, retry_limit and retry_backoff as extras"
        )
    try:
        hostname = parts.hostname
        host_port = parts.port
    except ValueError:
        raise MediaPocketConfigError(
            f"{where}: host {shown!r} is not a valid base URL: its port must be a number from 1 to 65535 "
            "and an IPv6 address must be in brackets when a port follows it, e.g. http://[::1]:8080"
        ) from None
    if parts.scheme not in ("http", "https") or not hostname:
        raise MediaPocketConfigError(f"{where}: host {shown!r} is not an http(s) base URL")
    if port not in (None, ""):
        field_port = port if isinstance(port, int) and not isinstance(port, bool) else None
        if field_port is None:
            try:
                field_port = int(str(port).strip())
            except ValueError:
                field_port = None
        if field_port is None or not 1 <= field_port <= 65535:
            raise MediaPocketConfigError(f"{where}: port must be a number from 1 to 65535 (got {_short(port)})")
        if host_port is not None and host_port != field_port:
            raise MediaPocketConfigError(
                f"{where}: port {field_port} differs from the port {host_port} in host {shown!r}: "
                "give the port in one place"
            )
        host_port = field_port
    netloc = f"[{hostname}]" if ":" in hostname else hostname
    if host_port is not None:
        netloc = f"{netloc}:{host_port}"
    base_path = parts.path.rstrip("/")
    if base_path.endswith(_api.API):
        base_path = base_path[: -len(_api.API)]
    return f"{parts.scheme}://{netloc}{base_path}"


def connection_extras(conn: Any, conn_id: str) -> dict[str, Any]:
    """The connection's extras, parsed from ``conn.extra`` (the JSON text) without any I/O.

    Not ``conn.extra_dejson``: in Airflow 3's task SDK that property masks the extras through a
    blocking call to the supervisor, which must not run on the triggerer's event loop; and it turns
    invalid JSON into ``{}`` with a logged traceback, silently dropping every setting. The SDK has
    already masked the whole ``extra`` text when it loaded the connection.
    """
    raw = getattr(conn, "extra", None)
    if raw is None or raw == "":
        return {}
    if isinstance(raw, dict):
        return dict(raw)
    try:
        value = json.loads(raw)
    except (TypeError, ValueError) as exc:
        where = f"line {exc.lineno} column {exc.colno}: {exc.msg}" if isinstance(exc, json.JSONDecodeError) else (
            type(exc).__name__
        )
        raise MediaPocketConfigError(
            f"Media Pocket connection {conn_id!r}: extra is not valid JSON ({where}); "
            'it must be a JSON object such as {"timeout": 30, "retry_limit": 3}'
        ) from None
    if not isinstance(value, dict):
        raise MediaPocketConfigError(
            f"Media Pocket connection {conn_id!r}: extra must be a JSON object such as {{\"timeout\": 30}} "
            f"(got a JSON {type(value).__name__})"
        )
    return value


def parse_ui_base_url(conn_id: str, value: Any) -> str | None:
    """Extra ``ui_base_url``: an absolute http(s) URL (trailing slash dropped), or ``None`` when unset."""
    if value is None or (isinstance(value, str) and not value.strip()):
        return None
    parts = urlsplit(value.strip()) if isinstance(value, str) else None
    if parts is None or parts.scheme not in ("http", "https") or not parts.hostname:
        raise MediaPocketConfigError(
            f"Media Pocket connection {conn_id!r}: extra 'ui_base_url' must be an absolute http(s) URL such as "
            f"https://tryme.mediapocket.fi (got {_short(redact_url(str(value)))})"
        )
    if parts.username or parts.password:
        # The links land in XCom and the UI: a credential in them would leak.
        raise MediaPocketConfigError(
            f"Media Pocket connection {conn_id!r}: extra 'ui_base_url' must not contain credentials"
        )
    return str(value).strip().rstrip("/")


def settings_from_connection(conn: Any, conn_id: str, overrides: dict[str, Any]) -> ConnectionSettings:
    """Read base URL, API key and extras from an Airflow connection; hook arguments win over extras.

    Pure (no I/O, no supervisor call): safe on an event loop. Every value is checked before any request.
    """
    api_key = (conn.password or "").strip()
    if not api_key:
        raise MediaPocketConfigError(
            f"Media Pocket connection {conn_id!r} has no API key: set the connection's API Key (password) field"
        )
    base_url = build_base_url(conn_id, conn.host, conn.schema, conn.port)
    extras = connection_extras(conn, conn_id)
    values: dict[str, Any] = {}
    for name in ("timeout", "retry_limit", "retry_backoff"):
        if name in overrides:
            values[name] = overrides[name]  # checked when the hook was built
        elif extras.get(name) not in (None, ""):
            values[name] = _setting(name, extras[name], _extra_error(conn_id, name))
    if "verify_ssl" in overrides:
        verify_ssl = overrides["verify_ssl"]
    else:
        raw_verify = extras.get("verify_ssl")
        verify_ssl = True if raw_verify in (None, "") else _boolean(
            "verify_ssl", raw_verify, _extra_error(conn_id, "verify_ssl")
        )
    return ConnectionSettings(
        base_url=base_url,
        api_key=api_key,
        timeout=float(values.get("timeout", DEFAULT_TIMEOUT)),
        verify_ssl=verify_ssl,
        retry_limit=int(values.get("retry_limit", DEFAULT_RETRY_LIMIT)),
        retry_backoff=float(values.get("retry_backoff", DEFAULT_RETRY_BACKOFF)),
        ui_base_url=parse_ui_base_url(conn_id, extras.get("ui_base_url")),
        max_requests_per_second=None if extras.get("max_requests_per_second") in (None, "") else float(_setting(
            "max_requests_per_second", extras["max_requests_per_second"],
            _extra_error(conn_id, "max_requests_per_second"),
        )),
    )


# The client a driver call runs with: pinned for the call so that a connection re-read during the
# call cannot swap it underneath (and so that the call is counted as a user of that client).
_PINNED: contextvars.ContextVar[tuple[Any, Any] | None] = contextvars.ContextVar("mediapocket_client", default=None)

_F = TypeVar("_F", bound=Callable[..., Any])


def _reauthenticating(run: _F) -> _F:
    """Wrap the sync driver: on a 401 re-read the connection once and, if it changed (a rotated key),
    repeat the call once with a client built from the new settings. A second 401 is raised."""

    @functools.wraps(run)
    def wrapper(self: MediaPocketHook, *args: Any, **kwargs: Any) -> Any:
        for attempt in (0, 1):
            unpinned = _PINNED.set(None)  # a pin copied into a task started during another call is not ours
            try:
                client = self.get_client()
            finally:
                _PINNED.reset(unpinned)
            token = _PINNED.set((self, client))
            try:
                return run(self, *args, **kwargs)
            except MediaPocketAuthError:
                if attempt or not self._reload_after_401(client):
                    raise
                self.log.warning(
                    "Media Pocket rejected the API key; connection %r has changed since: trying once more "
                    "with the new settings", self.mediapocket_conn_id,
                )
            finally:
                _PINNED.reset(token)
        raise AssertionError("unreachable")  # pragma: no cover

    return cast(_F, wrapper)


def _areauthenticating(arun: _F) -> _F:
    """The async twin of :func:`_reauthenticating`; it also counts the calls using each client, so a
    client replaced after a key rotation is closed only when the calls still using it have ended."""

    @functools.wraps(arun)
    async def wrapper(self: MediaPocketHook, *args: Any, **kwargs: Any) -> Any:
        for attempt in (0, 1):
            unpinned = _PINNED.set(None)  # a pin copied into a task started during another call is not ours
            try:
                client = await self.aget_client()
            finally:
                _PINNED.reset(unpinned)
            self._aclient_users[client] = self._aclient_users.get(client, 0) + 1
            token = _PINNED.set((self, client))
            try:
                return await arun(self, *args, **kwargs)
            except MediaPocketAuthError:
                if attempt or not await self._areload_after_401(client):
                    raise
                self.log.warning(
                    "Media Pocket rejected the API key; connection %r has changed since: trying once more "
                    "with the new settings", self.mediapocket_conn_id,
                )
            finally:
                _PINNED.reset(token)
                await self._leave_aclient(client)
        raise AssertionError("unreachable")  # pragma: no cover

    return cast(_F, wrapper)


async def _close_at_loop_shutdown(client: httpx.AsyncClient) -> None:
    """Wait for ever; when cancelled -- by :meth:`MediaPocketHook.aclose`, or by ``asyncio.run`` and the
    triggerer cancelling every task as their loop shuts down -- close ``client`` while its loop still runs."""
    try:
        await asyncio.Event().wait()
    finally:
        with contextlib.suppress(Exception):
            await client.aclose()


def _close_foreign(
    client: httpx.AsyncClient, loop: asyncio.AbstractEventLoop | None, guard: asyncio.Task[None] | None
) -> None:
    """Close an async client that belongs to another event loop than the running one (or from a
    thread): on its own loop when that loop still runs (an async client cannot be closed on another
    loop); when the loop is closed, its guard task already closed the client at shutdown if the loop
    was shut down by ``asyncio.run`` or the triggerer, else its sockets are closed directly."""
    if loop is not None and not loop.is_closed():
        def close_there() -> None:
            if guard is not None and not guard.done():
                guard.cancel()  # its ``finally`` closes the client
            else:
                loop.create_task(client.aclose())

        with contextlib.suppress(RuntimeError):  # the loop closed meanwhile
            loop.call_soon_threadsafe(close_there)
            return
    if not client.is_closed:
        _close_sockets(client)


def _close_sockets(client: httpx.AsyncClient) -> None:
    """Last resort for a client whose event loop is gone: nothing can be awaited, so close the pool's
    sockets directly. Best effort over httpx/httpcore internals; a failure is only logged."""
    try:
        pool = client._transport._pool  # type: ignore[attr-defined]
        for connection in list(pool.connections):
            stream = getattr(getattr(connection, "_connection", None), "_network_stream", None)
            sock = stream.get_extra_info("socket") if stream is not None else None
            raw = getattr(sock, "_sock", sock)  # asyncio wraps it in a TransportSocket
            if raw is not None:
                raw.close()
    except Exception as exc:  # internals changed: leave the rest to garbage collection
        logging.getLogger(__name__).debug("Could not close the sockets of a Media Pocket client: %r", exc)


def _changed_fields(old: ConnectionSettings | None, new: ConnectionSettings) -> list[str]:
    """Names of the settings that differ (the key is named, never shown)."""
    if old is None:
        return []
    return [f.name for f in dataclasses.fields(new) if getattr(old, f.name) != getattr(new, f.name)]


def env_connection_problem(conn_id: str, value: str | None) -> str | None:
    """What makes the ``AIRFLOW_CONN_<ID>`` value unparseable, or None when Airflow can parse it (or it
    is unset). Says what is wrong in its own words: never the value, which holds the API key."""
    if value is None or not value.strip():
        return None
    text = value.strip()
    if text.startswith("{"):
        try:
            data = json.loads(text)
        except ValueError as exc:
            position = (
                f" (line {exc.lineno} column {exc.colno}: {exc.msg})" if isinstance(exc, json.JSONDecodeError) else ""
            )
            return f"it starts with '{{' but is not valid JSON{position}"
        if not isinstance(data, dict):
            return "it must be a JSON object"
        port = data.get("port")
        if port not in (None, ""):
            try:
                int(port)
            except (TypeError, ValueError):
                return f"its 'port' must be a whole number (got {_short(port)})"
        problem = None
    else:
        problem = _uri_problem(text)
    if problem is not None:
        return problem
    try:
        from airflow.sdk.definitions.connection import Connection

        if text.startswith("{"):
            Connection.from_json(text, conn_id=conn_id)
        else:
            Connection.from_uri(text, conn_id=conn_id)
    except Exception as exc:  # any parse failure is reported, without its text
        return f"Airflow rejects it ({type(exc).__name__}); check it against the connection URI format"
    return None


def _uri_problem(uri: str) -> str | None:
    """A malformed connection URI's problem, described without echoing any part that may be secret."""
    if "://" not in uri:
        return "it is neither a JSON object nor a URI like mediapocket://:API_KEY@host:port/https"
    if uri.count("://") > 2:
        return "it holds more than two '://'"
    rest = uri.split("://", 1)[1]
    if "://" in rest:
        netloc = rest.split("://", 1)[0]
        if "@" in netloc or ":" in netloc:
            return (
                "a host with its own scheme (mediapocket://http://...) cannot also carry the key: URL-encode "
                "the host (mediapocket://:KEY@http%3A%2F%2Fhost) or give the scheme as the path (/http)"
            )
        return None
    try:
        parts = urlsplit(uri)
        parts.port  # noqa: B018 - raises ValueError on a bad port
    except ValueError as exc:
        if "IPv6" in str(exc):
            return "its host has an unbalanced '[' or ']' (an IPv6 address goes in brackets: [::1])"
        # Nothing of the host part is shown: with an unencoded key it may hold part of the key.
        return (
            "its port must be a number from 0 to 65535; a key with special characters (/ ? # @ :) must be "
            "URL-encoded in a URI"
        )
    return None


#: The deadline (epoch seconds) of the wait the current code runs for, if any: see request_deadline.
_DEADLINE: ContextVar[float | None] = ContextVar("mediapocket_request_deadline", default=None)


@contextmanager
def request_deadline(deadline: float | None) -> Iterator[None]:
    """Bound every Media Pocket request made inside the block (sync or async, in this context) by
    ``deadline`` (epoch seconds): each request's timeout is at most the time left (with a short last
    look once it has passed) and no retry starts that would wait past it. ``None`` lifts the bound.

    A context variable, so it reaches the calls a wait makes through shared helpers (and the tasks
    they start) without every hook method taking a parameter.
    """
    token = _DEADLINE.set(deadline)
    try:
        yield
    finally:
        _DEADLINE.reset(token)


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


_HistoryPages = Callable[[str, "str | int"], ApiCall[HistoryPage]]


def _returned(build: Callable[..., Any]) -> Any:
    """What calling the hook method returns: ``X`` of the builder's ``ApiCall[X]`` (as written)."""
    annotation = inspect.signature(build).return_annotation
    if isinstance(annotation, str) and annotation.startswith("ApiCall[") and annotation.endswith("]"):
        return annotation[len("ApiCall["):-1]
    raise TypeError(f"{build.__qualname__} must be annotated to return ApiCall[...] (got {annotation!r})")


def endpoint(
    build: Callable[P, ApiCall[T]],
) -> tuple[Callable[Concatenate[MediaPocketHook, P], T], Callable[Concatenate[MediaPocketHook, P], Awaitable[T]]]:
    """The sync hook method and its async twin (``a`` + the builder's name) of one request builder.

    Both take exactly the builder's parameters -- the signature ``help()`` and ``inspect.signature`` show,
    and mypy checks -- and carry its docstring; the sync one returns ``hook.run(build(...))``, the async
    one ``await hook.arun(build(...))``. A bad parameter therefore fails before anything is sent, alike.
    """
    name = build.__name__
    params = list(inspect.signature(build).parameters.values())
    self_param = inspect.Parameter("self", inspect.Parameter.POSITIONAL_OR_KEYWORD)
    signature = inspect.Signature([self_param, *params], return_annotation=_returned(build))
    keywords = frozenset(p.name for p in params if p.kind in (p.POSITIONAL_OR_KEYWORD, p.KEYWORD_ONLY))

    def request(args: Any, kwargs: dict[str, Any]) -> ApiCall[T]:
        # An unknown keyword is a bad parameter like any other (a DAG passes what it was given): say so
        # by name, as the API's own validation would, instead of a bare TypeError.
        unknown = sorted(set(kwargs) - keywords)
        if unknown:
            raise MediaPocketValidationError("; ".join(str(invalid(key, NOT_A_PARAMETER)) for key in unknown))
        return build(*args, **kwargs)

    def method(self: MediaPocketHook, /, *args: P.args, **kwargs: P.kwargs) -> T:
        return self.run(request(args, kwargs))

    async def amethod(self: MediaPocketHook, /, *args: P.args, **kwargs: P.kwargs) -> T:
        return await self.arun(request(args, kwargs))

    bound: Any
    for bound, bound_name in ((method, name), (amethod, "a" + name)):
        bound.__name__ = bound_name
        bound.__qualname__ = f"MediaPocketHook.{bound_name}"
        bound.__doc__ = build.__doc__
        bound.__signature__ = signature
        bound.__wrapped__ = build
    return method, amethod


def _twin_of(sync: Callable[..., Any]) -> Callable[[_F], _F]:
    """Give a hand-written async twin the docstring of its sync method (their parameters are the same)."""

    def dress(twin: _F) -> _F:
        twin.__doc__ = sync.__doc__
        return twin

    return dress


def _with_external_id(contents: ProjectContents, external_id: str) -> Asset | None:
    return next((asset for asset in contents.assets if asset.external_id == external_id), None)


class MediaPocketHook(BaseHook):
    """Talks to the Media Pocket API v2 with the ``mediapocket`` connection ``mediapocket_conn_id``.

    Connection: host = base URL (a host without scheme means https, or ``schema``; an IPv6 address may
    be given bare, ``::1``), optional port (not also a different one in host), password = API key;
    extras (a JSON object) ``timeout`` (seconds, over 0 and up to 3600, default 30), ``verify_ssl``
    (default true), ``retry_limit`` (0 to 20, default 3) and ``retry_backoff`` (seconds, 0 to 300,
    default 1), and ``max_requests_per_second`` (this process's request budget for the connection, shared
    by its sync and async clients; over 0 and up to 10000, default none, see
    :mod:`airflow_provider_mediapocket._ratelimit`). Anything else -- a query string or credentials in host,
    invalid JSON extras, a value out of range, ``inf`` or ``nan`` -- is rejected with an error naming the
    field, before any request.
    Nothing is read or sent before the first call.

    :param mediapocket_conn_id: the Airflow connection to use.
    :param timeout: overrides the ``timeout`` extra (same range).
    :param retry_limit: overrides the ``retry_limit`` extra (same range).
    :param retry_backoff: overrides the ``retry_backoff`` extra (same range).
    :param verify_ssl: overrides the ``verify_ssl`` extra.

    The connection is read again when its settings are older than ``settings_max_age`` seconds
    (default 30; the triggerer's shared hooks use their poll interval, at least 1 s), and at once when
    the API answers 401: if the key (or any setting) changed, the client is rebuilt and the call is
    tried once more with it; a second 401, or a 401 with an unchanged connection, is raised. A rotated
    key therefore reaches hooks that live for days in the triggerer.

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
        #: Seconds after which a call re-reads the connection (None: only on a 401).
        self.settings_max_age: float | None = DEFAULT_SETTINGS_MAX_AGE
        self._settings: ConnectionSettings | None = None
        self._settings_read_at = -math.inf
        self._client: httpx.Client | None = None
        self._client_settings: ConnectionSettings | None = None
        self._aclient: httpx.AsyncClient | None = None
        self._aclient_settings: ConnectionSettings | None = None
        self._aclient_loop: asyncio.AbstractEventLoop | None = None
        # Per async client, the task that closes it when its event loop shuts down.
        self._guards: dict[httpx.AsyncClient, asyncio.Task[None]] = {}
        self._aclient_lock: tuple[asyncio.AbstractEventLoop, asyncio.Lock] | None = None
        # Async clients replaced while calls were still using them: closed when their last call ends.
        self._aclient_users: dict[httpx.AsyncClient, int] = {}
        self._retired: set[httpx.AsyncClient] = set()

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
        checked: dict[str, Any] = {}
        for name in ("timeout", "retry_limit", "retry_backoff"):
            value = getattr(self, name)
            if value is not None:
                checked[name] = _setting(name, value, _argument_error(name))
        if self.verify_ssl is not None:
            checked["verify_ssl"] = _boolean("verify_ssl", self.verify_ssl, _argument_error("verify_ssl"))
        return checked

    def _settings_from(self, conn: Any) -> ConnectionSettings:
        return settings_from_connection(conn, self.mediapocket_conn_id, self._overrides())

    def _settings_stale(self) -> bool:
        max_age = self.settings_max_age
        return max_age is not None and time.monotonic() - self._settings_read_at >= max_age

    def _adopt(self, settings: ConnectionSettings) -> bool:
        """Make ``settings`` current; True when they differ from the previous ones (clients are then
        rebuilt by their next use, see :meth:`get_client` and :meth:`aget_client`)."""
        self._settings_read_at = time.monotonic()
        changed = self._settings is not None and settings != self._settings
        if changed:
            # Never log the settings themselves: they hold the key.
            self.log.info(
                "Media Pocket connection %r changed (%s): using the new settings",
                self.mediapocket_conn_id, ", ".join(_changed_fields(self._settings, settings)),
            )
        self._settings = settings
        return changed

    def _stale_read_failed(self, exc: MediaPocketError) -> None:
        # A periodic re-read that fails (secrets backend hiccup, connection being edited) keeps the
        # settings in use; a 401 or the next period tries again.
        self._settings_read_at = time.monotonic()
        self.log.warning(
            "Could not re-read Media Pocket connection %r, keeping its current settings: %s",
            self.mediapocket_conn_id, exc,
        )

    def get_settings(self) -> ConnectionSettings:
        """The connection's settings (sync): read on first use and again when older than
        ``settings_max_age`` seconds."""
        if self._settings is None:
            self._adopt(self._settings_from(self._fetch_connection()))
        elif self._settings_stale():
            try:
                self._adopt(self._settings_from(self._fetch_connection()))
            except MediaPocketError as exc:
                self._stale_read_failed(exc)
        assert self._settings is not None
        return self._settings

    async def aget_settings(self) -> ConnectionSettings:
        """The connection's settings, read like :meth:`get_settings` without blocking the event loop."""
        if self._settings is None:
            self._adopt(self._settings_from(await self._afetch_connection()))
        elif self._settings_stale():
            try:
                self._adopt(self._settings_from(await self._afetch_connection()))
            except MediaPocketError as exc:
                self._stale_read_failed(exc)
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
        conn_id = self.mediapocket_conn_id
        variable = f"AIRFLOW_CONN_{conn_id.upper()}"
        problem = env_connection_problem(conn_id, os.environ.get(variable))
        if problem is not None:
            # Airflow skips a connection it cannot parse and then reports it as undefined.
            return MediaPocketConfigError(
                f"Media Pocket connection {conn_id!r}: {variable} is set but cannot be parsed: {problem}"
            )
        return MediaPocketConfigError(
            f"Media Pocket connection {conn_id!r} could not be loaded "
            f"({type(exc).__name__}): define it in Airflow or as {variable}"
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
            "limits": httpx.Limits(max_connections=100, max_keepalive_connections=KEEPALIVE_CONNECTIONS),
            "follow_redirects": False,
        }

    def get_client(self) -> httpx.Client:
        """The hook's ``httpx.Client``, created on first use and reused (keep-alive pool); rebuilt when the
        connection's settings changed (a rotated key, a new timeout)."""
        pinned = _PINNED.get()
        if pinned is not None and pinned[0] is self and isinstance(pinned[1], httpx.Client):
            return pinned[1]
        settings = self.get_settings()
        if self._client is not None and (self._client_settings != settings or self._client.is_closed):
            # Sync clients serve one thread at a time: nothing else can be using the old one.
            self._client.close()
            self._client = None
        if self._client is None:
            self._client = httpx.Client(**self._client_kwargs(settings))
            self._client_settings = settings
        return self._client

    async def aget_client(self) -> httpx.AsyncClient:
        """The hook's ``httpx.AsyncClient`` for the running event loop (a new loop gets a new client).

        Safe to call from many coroutines at once: the first one reads the connection and builds the
        client, the others wait for it (triggers sharing a hook would otherwise each read it). The
        client is rebuilt when the connection's settings changed; the replaced one is closed once the
        calls still using it end. A client is closed when its event loop shuts down, and the client of
        an earlier event loop is closed when another loop takes over.
        """
        pinned = _PINNED.get()
        if pinned is not None and pinned[0] is self and isinstance(pinned[1], httpx.AsyncClient):
            return pinned[1]
        loop = asyncio.get_running_loop()
        if self._aclient_ready(loop) and not self._settings_stale():
            assert self._aclient is not None
            return self._aclient
        if self._aclient_lock is None or self._aclient_lock[0] is not loop:
            self._aclient_lock = (loop, asyncio.Lock())
        async with self._aclient_lock[1]:
            settings = await self.aget_settings()
            if not self._aclient_ready(loop):
                await self._retire_aclient(loop)
                # Loading the CA bundle holds the CPU for ~30 ms: do it (once, it is cached) off the loop.
                await asyncio.to_thread(_ssl_context, settings.verify_ssl)
                self._aclient = httpx.AsyncClient(**self._client_kwargs(settings))
                self._aclient_settings = settings
                self._aclient_loop = loop
                self._guards[self._aclient] = loop.create_task(
                    _close_at_loop_shutdown(self._aclient), name=f"mediapocket-client-{self.mediapocket_conn_id}"
                )
        assert self._aclient is not None
        return self._aclient

    def _aclient_ready(self, loop: asyncio.AbstractEventLoop) -> bool:
        return (
            self._aclient is not None
            and self._aclient_loop is loop
            and not self._aclient.is_closed
            and self._aclient_settings == self._settings
        )

    async def _retire_aclient(self, loop: asyncio.AbstractEventLoop) -> None:
        """Close (or arrange to close) the current async client before another replaces it."""
        client, client_loop = self._aclient, self._aclient_loop
        self._aclient = self._aclient_settings = self._aclient_loop = None
        if client is None:
            return
        if client_loop is not loop:
            _close_foreign(client, client_loop, self._guards.pop(client, None))
        elif self._aclient_users.get(client):
            self._retired.add(client)  # calls are still using it: the last one closes it
        else:
            await self._close_aclient(client)

    async def _close_aclient(self, client: httpx.AsyncClient) -> None:
        guard = self._guards.pop(client, None)
        if guard is not None:
            guard.cancel()  # no longer needed: the client is closed here
        await client.aclose()

    async def _leave_aclient(self, client: httpx.AsyncClient) -> None:
        users = self._aclient_users.get(client, 0) - 1
        if users > 0:
            self._aclient_users[client] = users
            return
        self._aclient_users.pop(client, None)
        if client in self._retired:
            self._retired.discard(client)
            await self._close_aclient(client)

    async def _areload_after_401(self, client: httpx.AsyncClient) -> bool:
        """After a 401 with ``client``: re-read the connection (once for all concurrent callers); True
        when the settings changed, so the call is worth one more try with a new client."""
        loop = asyncio.get_running_loop()
        if self._aclient_lock is None or self._aclient_lock[0] is not loop:
            self._aclient_lock = (loop, asyncio.Lock())
        async with self._aclient_lock[1]:
            if client is not self._aclient or self._aclient_settings != self._settings:
                return True  # another caller re-read the connection meanwhile: retry with what it found
            return self._adopt(self._settings_from(await self._afetch_connection()))

    def _reload_after_401(self, client: httpx.Client) -> bool:
        """The sync twin of :meth:`_areload_after_401`."""
        if client is not self._client or self._client_settings != self._settings:
            return True
        return self._adopt(self._settings_from(self._fetch_connection()))

    def close(self) -> None:
        """Close the sync client (the hook can be used again afterwards)."""
        if self._client is not None:
            self._client.close()
            self._client = None
            self._client_settings = None

    async def aclose(self) -> None:
        """Close the async client (and any replaced one still open); the hook can be used again."""
        client, client_loop = self._aclient, self._aclient_loop
        self._aclient = self._aclient_settings = self._aclient_loop = None
        if client is not None and client_loop is not asyncio.get_running_loop():
            _close_foreign(client, client_loop, self._guards.pop(client, None))  # cannot be awaited here
            client = None
        retired, self._retired = self._retired, set()
        for old in [client, *retired]:
            if old is not None:
                await self._close_aclient(old)

    def close_soon(self) -> None:
        """Close every client without waiting, from any thread (for ``on_kill``): the sync client at
        once, the async client on its own event loop if that loop still runs."""
        self.close()
        client, loop = self._aclient, self._aclient_loop
        self._aclient = self._aclient_settings = self._aclient_loop = None
        if client is not None and not client.is_closed:
            _close_foreign(client, loop, self._guards.pop(client, None))

    def __enter__(self) -> MediaPocketHook:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    # ---------------------------------------------------------------------------------- drivers

    def _send_kwargs(self, step: Send) -> dict[str, Any]:
        """``httpx`` request arguments for ``step``: a redirect target replaces path and query, and a
        deadline shortens the timeout of every phase (connect, read, write, pool) to the time left."""
        call = step.call
        kwargs: dict[str, Any] = {"json": call.json, "params": None if step.url else call.params}
        if step.timeout is not None:
            configured = self._settings.timeout if self._settings is not None else DEFAULT_TIMEOUT
            kwargs["timeout"] = httpx.Timeout(min(configured, step.timeout))
        return kwargs

    def _budget(self) -> _ratelimit.TokenBucket | None:
        """This process's request budget for the connection (extra ``max_requests_per_second``), if set."""
        settings = self._settings
        rate = settings.max_requests_per_second if settings is not None else None
        return _ratelimit.bucket(self.mediapocket_conn_id, rate)

    def _send(self, client: httpx.Client, step: Send) -> httpx.Response | httpx.TransportError:
        """Send one request (sync): the only place the sync client goes on the wire."""
        call = step.call
        self.log.debug("Media Pocket request %s", call.describe())
        try:
            return _ratelimit.send(self._budget(), functools.partial(
                client.request, call.method, step.url or call.path, **self._send_kwargs(step)), step.timeout)
        except httpx.TransportError as exc:
            return exc

    async def _asend(self, client: httpx.AsyncClient, step: Send) -> httpx.Response | httpx.TransportError:
        """Send one request (async): the only place the async client goes on the wire."""
        call = step.call
        self.log.debug("Media Pocket request %s", call.describe())
        try:
            return await _ratelimit.asend(self._budget(), functools.partial(
                client.request, call.method, step.url or call.path, **self._send_kwargs(step)), step.timeout)
        except httpx.TransportError as exc:
            return exc

    @_reauthenticating
    def run(self, call: ApiCall[T], deadline: float | None = None) -> T:
        """Send ``call`` (a request built by :mod:`~airflow_provider_mediapocket.hooks._api`) with the sync
        client, retrying as the connection's retry settings say, and return its parsed answer.

        :param call: the request; building it validated its parameters.
        :param deadline: epoch seconds bounding every request and retry wait (default: the one set with
            :func:`request_deadline`, if any).
        """
        client = self.get_client()
        steps = exchange(call, self.policy, deadline if deadline is not None else _DEADLINE.get())
        outcome: Any = None
        try:
            while True:
                step = steps.send(outcome)
                if isinstance(step, Sleep):
                    time.sleep(step.seconds)
                    outcome = None
                    continue
                outcome = self._send(client, step)
        except StopIteration as done:
            return cast(T, done.value)

    @_areauthenticating
    async def arun(self, call: ApiCall[T], deadline: float | None = None) -> T:
        """Send ``call`` with the async client: the same exchange as :meth:`run`, never blocking.

        :param call: the request; building it validated its parameters.
        :param deadline: epoch seconds bounding every request and retry wait (default: the one set with
            :func:`request_deadline`, if any).
        """
        client = await self.aget_client()
        steps = exchange(call, self.policy, deadline if deadline is not None else _DEADLINE.get())
        outcome: Any = None
        try:
            while True:
                step = steps.send(outcome)
                if isinstance(step, Sleep):
                    await asyncio.sleep(step.seconds)
                    outcome = None
                    continue
                outcome = await self._asend(client, step)
        except StopIteration as done:
            return cast(T, done.value)

    def _drive(self, plan: Plan[T], deadline: float | None = None) -> T:
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
                value, error = self.run(call, deadline), None
            except MediaPocketError as exc:
                value, error = None, exc

    async def _adrive(self, plan: Plan[T], deadline: float | None = None) -> T:
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
                value, error = await self.arun(call, deadline), None
            except MediaPocketError as exc:
                value, error = None, exc

    # ------------------------------------------------------------------------------- connection

    def test_connection(self) -> tuple[bool, str]:
        """One cheap authenticated call (list the key owner's API keys); used by Test Connection."""
        try:
            settings = self.get_settings()
            self.run(_api.list_api_keys())
        except MediaPocketError as exc:
            return False, str(exc)
        finally:
            self.close()
        return True, f"Connected to Media Pocket at {settings.base_url}"

    # ------------------------------------------------------------------------------- endpoints
    # One line an endpoint: the builder in _api declares it (typed, documented); ``endpoint`` binds it as
    # the sync method and its ``a``-prefixed async twin, so the two cannot differ.

    list_api_keys, alist_api_keys = endpoint(_api.list_api_keys)

    get_asset, aget_asset = endpoint(_api.get_asset)
    create_asset, acreate_asset = endpoint(_api.create_asset)
    update_asset, aupdate_asset = endpoint(_api.update_asset)
    trash_asset, atrash_asset = endpoint(_api.trash_asset)
    restore_asset, arestore_asset = endpoint(_api.restore_asset)
    delete_asset, adelete_asset = endpoint(_api.delete_asset)
    assign_asset, aassign_asset = endpoint(_api.assign_asset)
    unassign_asset, aunassign_asset = endpoint(_api.unassign_asset)
    add_media, aadd_media = endpoint(_api.add_media)
    list_media, alist_media = endpoint(_api.list_media)
    remove_media, aremove_media = endpoint(_api.remove_media)
    get_media_download_url, aget_media_download_url = endpoint(_api.get_media_download_url)
    get_file_metadata, aget_file_metadata = endpoint(_api.get_file_metadata)
    file_metadata = get_file_metadata
    list_asset_collections, alist_asset_collections = endpoint(_api.list_asset_collections)
    get_asset_history, aget_asset_history = endpoint(_api.get_asset_history)
    list_asset_comments, alist_asset_comments = endpoint(_api.list_asset_comments)
    get_asset_comment, aget_asset_comment = endpoint(_api.get_asset_comment)
    create_asset_comment, acreate_asset_comment = endpoint(_api.create_asset_comment)
    update_asset_comment, aupdate_asset_comment = endpoint(_api.update_asset_comment)
    delete_asset_comment, adelete_asset_comment = endpoint(_api.delete_asset_comment)
    list_asset_attachments, alist_asset_attachments = endpoint(_api.list_asset_attachments)
    create_asset_attachment, acreate_asset_attachment = endpoint(_api.create_asset_attachment)

    list_dag_actions, alist_dag_actions = endpoint(_api.list_dag_actions)
    list_dag_action_runs, alist_dag_action_runs = endpoint(_api.list_dag_action_runs)
    get_dag_action_run_listing, aget_dag_action_run_listing = endpoint(_api.get_dag_action_run_listing)
    get_dag_action_run, aget_dag_action_run = endpoint(_api.get_dag_action_run)

    list_projects, alist_projects = endpoint(_api.list_projects)
    get_project, aget_project = endpoint(_api.get_project)
    create_project, acreate_project = endpoint(_api.create_project)
    create_subproject, acreate_subproject = endpoint(_api.create_subproject)
    update_project, aupdate_project = endpoint(_api.update_project)
    trash_project, atrash_project = endpoint(_api.trash_project)
    restore_project, arestore_project = endpoint(_api.restore_project)
    delete_project, adelete_project = endpoint(_api.delete_project)
    list_subprojects, alist_subprojects = endpoint(_api.list_subprojects)
    list_project_assets, alist_project_assets = endpoint(_api.list_project_assets)
    create_project_asset, acreate_project_asset = endpoint(_api.create_project_asset)
    get_project_stats, aget_project_stats = endpoint(_api.get_project_stats)
    make_project_public, amake_project_public = endpoint(_api.make_project_public)
    make_project_private, amake_project_private = endpoint(_api.make_project_private)
    list_project_users, alist_project_users = endpoint(_api.list_project_users)
    add_project_user, aadd_project_user = endpoint(_api.add_project_user)
    remove_project_user, aremove_project_user = endpoint(_api.remove_project_user)
    add_project_guest, aadd_project_guest = endpoint(_api.add_project_guest)
    list_project_user_groups, alist_project_user_groups = endpoint(_api.list_project_user_groups)
    add_project_user_group, aadd_project_user_group = endpoint(_api.add_project_user_group)
    remove_project_user_group, aremove_project_user_group = endpoint(_api.remove_project_user_group)
    get_project_history, aget_project_history = endpoint(_api.get_project_history)
    set_project_thumbnail, aset_project_thumbnail = endpoint(_api.set_project_thumbnail)
    remove_project_thumbnail, aremove_project_thumbnail = endpoint(_api.remove_project_thumbnail)
    assign_project, aassign_project = endpoint(_api.assign_project)
    unassign_project, aunassign_project = endpoint(_api.unassign_project)
    list_project_comments, alist_project_comments = endpoint(_api.list_project_comments)
    get_project_comment, aget_project_comment = endpoint(_api.get_project_comment)
    create_project_comment, acreate_project_comment = endpoint(_api.create_project_comment)
    update_project_comment, aupdate_project_comment = endpoint(_api.update_project_comment)
    delete_project_comment, adelete_project_comment = endpoint(_api.delete_project_comment)
    list_project_attachments, alist_project_attachments = endpoint(_api.list_project_attachments)
    create_project_attachment, acreate_project_attachment = endpoint(_api.create_project_attachment)

    # ----------------------------------------------------------------------- history iterators

    def iter_asset_history(self, asset_id: str, cursor: str | int = "0") -> Iterator[HistoryEvent]:
        """Every history event of the asset from ``cursor`` on, following ``next_cursor`` to the end.

        :param asset_id: the asset's id.
        :param cursor: where to start ("0": the newest events).
        """
        return self._iter_history(_api.get_asset_history, asset_id, cursor)

    @_twin_of(iter_asset_history)
    def aiter_asset_history(self, asset_id: str, cursor: str | int = "0") -> AsyncIterator[HistoryEvent]:
        return self._aiter_history(_api.get_asset_history, asset_id, cursor)

    def iter_project_history(self, project_id: str, cursor: str | int = "0") -> Iterator[HistoryEvent]:
        """Every history event of the project from ``cursor`` on, following ``next_cursor`` to the end.

        :param project_id: the project's id.
        :param cursor: where to start ("0": the newest events).
        """
        return self._iter_history(_api.get_project_history, project_id, cursor)

    @_twin_of(iter_project_history)
    def aiter_project_history(self, project_id: str, cursor: str | int = "0") -> AsyncIterator[HistoryEvent]:
        return self._aiter_history(_api.get_project_history, project_id, cursor)

    def _iter_history(self, page: _HistoryPages, item_id: str, cursor: str | int | None) -> Iterator[HistoryEvent]:
        while cursor is not None:
            answer = self.run(page(item_id, cursor))
            yield from answer.results
            cursor = answer.next_cursor

    async def _aiter_history(
        self, page: _HistoryPages, item_id: str, cursor: str | int | None
    ) -> AsyncIterator[HistoryEvent]:
        while cursor is not None:
            answer = await self.arun(page(item_id, cursor))
            for event in answer.results:
                yield event
            cursor = answer.next_cursor

    # ------------------------------------------------------------------- finding and re-using assets

    def find_project_asset(self, project_id: str, *, external_id: str) -> Asset | None:
        """The asset of the project whose ``external_id`` matches, or None (the API has no search).

        :param project_id: the project's id.
        :param external_id: the external id to look for.
        """
        wanted = check_id("external_id", external_id)
        return _with_external_id(self.list_project_assets(project_id), wanted)

    @_twin_of(find_project_asset)
    async def afind_project_asset(self, project_id: str, *, external_id: str) -> Asset | None:
        wanted = check_id("external_id", external_id)
        return _with_external_id(await self.alist_project_assets(project_id), wanted)

    def reuse_asset(
        self, asset: Asset, *, file_url: str | None = None, filename: str | None = None, s3_key: str | None = None
    ) -> Asset:
        """Check an existing asset (found by ``external_id``) against a create request before re-using it.

        Media with another file name than the request's -> MediaPocketOperationError (the old file is
        never returned as the new one). No media -> it is added from ``file_url`` and the asset is read
        again; from ``s3_key`` it cannot be (S3 media is only taken at creation) -> an error naming the
        asset. The API does not show the URL media came from: the same file name from another URL passes.

        :param asset: the asset found (as listed).
        :param file_url: the media URL the request asked for.
        :param filename: the media file name the request asked for.
        :param s3_key: the S3 key the request asked for.
        """
        return self._drive(self._reuse_asset_plan(asset, file_url, filename, s3_key))

    @_twin_of(reuse_asset)
    async def areuse_asset(
        self, asset: Asset, *, file_url: str | None = None, filename: str | None = None, s3_key: str | None = None
    ) -> Asset:
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


    # ------------------------------------------------------------------------ starting a DAG action

    def start_dag_action(
        self, asset_id: str, dag_action_id: int | str, *, settle_seconds: float | None = None
    ) -> DagActionRun:
        """Start a DAG action on the asset (needs ``ACTIONS_START``) and return the new run.

        Never starts two runs for one call. The API has no idempotency key and no single-run lookup, so
        when the answer to the start is lost (timeout, dropped connection, 5xx) the server may still be
        applying it: the asset's runs are watched for ``settle_seconds`` and compared with the list
        taken just before the start was sent. Exactly one new run of this action -> it is the one we
        started; two or more -> MediaPocketOperationError naming them (one may be someone else's); none
        -> the start is sent again. Without ``ACTIONS_VIEW`` an unclear start is not repeated.

        :param asset_id: the asset to run the action on.
        :param dag_action_id: the DAG action's id.
        :param settle_seconds: after an unclear start, how long to watch the asset's run list for the
            run it may have made before deciding (default: the request timeout, at least 5 s).
        """
        return self._drive(self._start_dag_action_plan(asset_id, dag_action_id, settle_seconds))

    @_twin_of(start_dag_action)
    async def astart_dag_action(
        self, asset_id: str, dag_action_id: int | str, *, settle_seconds: float | None = None
    ) -> DagActionRun:
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

