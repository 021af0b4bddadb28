"""The transport core shared by the sync and the async client.

One exchange (send, maybe retry, parse) is written once, as a generator that yields what it needs
done -- :class:`Send` a request or :class:`Sleep` -- and receives the outcome. The sync driver runs
it with ``httpx.Client`` and ``time.sleep``; the async driver with ``httpx.AsyncClient`` and
``asyncio.sleep``. Deciding whether to retry and turning a response into data or an error therefore
cannot drift apart between workers and the triggerer.
"""

from __future__ import annotations

import email.utils
import errno as errno_names
import logging
import math
import random
import re
import socket
import ssl
import time
from collections.abc import Callable, Generator
from dataclasses import dataclass
from datetime import timezone
from typing import Any, Generic, TypeVar

import httpx

from airflow_provider_mediapocket.exceptions import (
    MediaPocketAuthError,
    MediaPocketBadResponseError,
    MediaPocketError,
    MediaPocketNetworkError,
    MediaPocketNotFoundError,
    MediaPocketOperationError,
    MediaPocketPermissionError,
    MediaPocketRateLimitError,
    MediaPocketServerUnavailableError,
    MediaPocketTransportError,
    MediaPocketValidationError,
)

log = logging.getLogger(__name__)

# "Asset kX8dWQXv3pCzwCokTgG6 created, adding media to asset failed: not a valid HTTP URL"
_CREATED_ASSET = re.compile(r"Asset (\S+) created, ")

T = TypeVar("T")

RETRY_STATUSES = frozenset({429, 500, 502, 503, 504})
# Errors raised before any byte of the request reached the server: always safe to repeat.
NOT_SENT_ERRORS: tuple[type[httpx.TransportError], ...] = (httpx.ConnectError, httpx.ConnectTimeout,
                                                           httpx.PoolTimeout, httpx.UnsupportedProtocol)
REDIRECT_STATUSES = frozenset({301, 302, 303, 307, 308})
#: Redirects followed for one GET; more fail (a loop, or a base URL that points somewhere wrong).
MAX_REDIRECTS = 5
#: The shortest request timeout when a deadline is near or already passed: a wait whose deadline has
#: come still gets one last look (a run that finished just before its deadline is a success).
LAST_LOOK = 1.0
#: The shortest timeout any request gets (a retry that starts just before the deadline).
MIN_TIMEOUT = 0.05
#: OpenSSL reasons seen when an https:// URL reaches a server that speaks plain HTTP.
_PLAIN_HTTP_TLS_REASONS = frozenset({"WRONG_VERSION_NUMBER", "RECORD_LAYER_FAILURE", "PACKET_LENGTH_TOO_LONG"})


@dataclass(frozen=True)
class RetryPolicy:
    """Capped exponential backoff with jitter; ``retry_limit`` retries after the first try."""

    retry_limit: int = 3
    backoff: float = 1.0
    max_backoff: float = 30.0
    max_retry_after: float = 120.0

    def delay(self, attempt: int, retry_after: float | None = None) -> float:
        """Seconds to wait before retry number ``attempt + 1`` (attempt counts from 0).

        A server's ``retry_after`` is honoured up to ``max_retry_after``; one that is not a finite
        number falls back to the backoff (``inf``/``nan`` must never reach a sleep).
        """
        if retry_after is not None and math.isfinite(retry_after):
            return min(max(retry_after, 0.0), self.max_retry_after)
        ceiling = min(self.max_backoff, self.backoff * (2 ** min(attempt, 62)))
        return float(ceiling * random.uniform(0.5, 1.0))


@dataclass(frozen=True)
class AlreadyDone:
    """An answer that, after an earlier attempt whose outcome was unclear, says the end state holds.

    A DELETE whose answer was lost is repeated; the repeat then finds nothing left to delete and says
    so (404 for a deleted asset, HTTP 200 with an error for an unassigned asset). That is the success
    the caller asked for. Only used after an unclear attempt: on a first attempt it stays an error.
    ``message`` is a regular expression searched in the server's message; ``result`` turns the
    answer's body into the call's value.
    """

    status: int
    message: str
    result: Callable[[Any], Any]

    def matches(self, error: MediaPocketError) -> bool:
        return error.status == self.status and re.search(self.message, error.server_message or "") is not None


@dataclass(frozen=True)
class ApiCall(Generic[T]):
    """One API call: what to send and how to turn the JSON answer into a value.

    ``idempotent`` says whether repeating the request after an unclear outcome (a 5xx or a connection
    lost after the request went out) is harmless. GET, PUT and DELETE are; a POST is only when the
    caller says so. A request that never left (connect errors) or was refused (429) is always retried.
    """

    method: str
    path: str
    parse: Callable[[Any], T]
    json: dict[str, Any] | None = None
    params: dict[str, Any] | None = None
    idempotent: bool | None = None
    error_keys: tuple[str, ...] = ("error",)
    #: Answers that mean "already done" when an earlier attempt's answer was lost (see AlreadyDone).
    already_done: tuple[AlreadyDone, ...] = ()
    #: How to decode a non-empty body (default: ``json.loads`` of all of it); raises ValueError if not JSON.
    decode: Callable[[bytes], Any] | None = None

    @property
    def safe_to_repeat(self) -> bool:
        if self.idempotent is not None:
            return self.idempotent
        return self.method.upper() != "POST"

    def describe(self) -> str:
        return f"{self.method} {self.path}"


@dataclass(frozen=True)
class Send:
    """Send ``call`` (to ``url`` instead of its path when following a redirect). ``timeout`` is the
    longest the request may take, when a deadline bounds it (None: the client's own timeout)."""

    call: ApiCall[Any]
    url: str | None = None
    timeout: float | None = None


@dataclass(frozen=True)
class Sleep:
    seconds: float


Step = Send | Sleep
Outcome = httpx.Response | httpx.TransportError | None


@dataclass
class _Attempt:
    number: int = 0


_DELTA_SECONDS = re.compile(r"\d+(\.\d+)?")


def retry_after_seconds(response: httpx.Response) -> float | None:
    """The ``Retry-After`` header as seconds, or None when absent or malformed.

    Accepted: a finite non-negative number of seconds, or an HTTP date (a past one means 0). Anything
    else (``soon``, ``nan``, ``inf``, ``-5``) is ignored, so the caller falls back to its backoff.
    """
    value = (response.headers.get("Retry-After") or "").strip()
    if not value:
        return None
    if _DELTA_SECONDS.fullmatch(value):
        seconds = float(value)
        return seconds if math.isfinite(seconds) else None
    try:
        parsed = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError, IndexError, OverflowError):
        return None
    if parsed is None:
        return None
    if parsed.tzinfo is None:  # "-0000" in the date: UTC with no offset information
        parsed = parsed.replace(tzinfo=timezone.utc)
    try:
        return max(parsed.timestamp() - time.time(), 0.0)
    except (OverflowError, OSError, ValueError):
        return None


def _time_left(deadline: float | None) -> float | None:
    return None if deadline is None else deadline - time.time()


def _fits(deadline: float | None, delay: float) -> bool:
    """Whether sleeping ``delay`` still leaves time for another request before ``deadline``."""
    left = _time_left(deadline)
    return left is None or delay < left


def exchange(
    call: ApiCall[T], policy: RetryPolicy, deadline: float | None = None
) -> Generator[Step, Outcome, T]:
    """Run ``call`` to its end: yields sends and sleeps, returns the parsed value or raises.

    ``deadline`` (epoch seconds) bounds the whole exchange: each request gets at most the time left
    (at least :data:`LAST_LOOK`), and no retry starts whose wait would end past the deadline.
    """
    attempt = _Attempt()
    url: str | None = None
    redirects = 0
    # True once an attempt may have been applied without us seeing the answer (lost answer, 5xx).
    unclear = False
    while True:
        left = _time_left(deadline)
        # The first attempt may take a last look past the deadline; a retry only starts with time left
        # (see _fits) and gets no more than that.
        timeout = None if left is None else max(left, LAST_LOOK if attempt.number == 0 else MIN_TIMEOUT)
        outcome = yield Send(call, url, timeout)
        if isinstance(outcome, httpx.TransportError):
            sent = not isinstance(outcome, NOT_SENT_ERRORS)
            transient, cause = describe_transport_error(outcome)
            worth_it = transient or isinstance(outcome, httpx.ConnectError)
            delay = policy.delay(attempt.number)
            if (
                worth_it and attempt.number < policy.retry_limit and (not sent or call.safe_to_repeat)
                and _fits(deadline, delay)
            ):
                log.warning(
                    "Media Pocket %s: %s; retry %d of %d in %.2fs",
                    call.describe(), cause, attempt.number + 1, policy.retry_limit, delay,
                )
                unclear = unclear or sent
                attempt.number += 1
                yield Sleep(delay)
                continue
            raise _transport_error(call, outcome, sent=sent, attempts=attempt.number + 1, cause=cause,
                                   transient=transient)
        assert outcome is not None
        response = outcome
        status = response.status_code
        if status in REDIRECT_STATUSES:
            target = _redirect_target(call, response, redirects)
            redirects += 1
            log.info("Media Pocket %s answered HTTP %d: following it to %s", call.describe(), status,
                     _safe_url(target))
            url = str(target)
            continue
        if status in RETRY_STATUSES and attempt.number < policy.retry_limit and (
            status == 429 or call.safe_to_repeat
        ):
            retry_after = retry_after_seconds(response) if status in (429, 503) else None
            delay = policy.delay(attempt.number, retry_after)
            if _fits(deadline, delay):
                log.warning(
                    "Media Pocket %s answered HTTP %d; retry %d of %d in %.2fs",
                    call.describe(), status, attempt.number + 1, policy.retry_limit, delay,
                )
                unclear = unclear or status != 429
                attempt.number += 1
                yield Sleep(delay)
                continue
            log.info("Media Pocket %s answered HTTP %d; not retried: the wait of %.2fs would end past the "
                     "caller's deadline", call.describe(), status, delay)
        try:
            body = parse_body(call, response)
        except MediaPocketError as exc:
            done = next((d for d in call.already_done if d.matches(exc)), None) if unclear else None
            if done is None:
                raise
            log.warning(
                "Media Pocket %s: an earlier attempt's answer was lost and this one says it is already done "
                "(HTTP %s: %s): the earlier attempt did it", call.describe(), exc.status, exc.server_message,
            )
            return done.result(exc.body)  # type: ignore[no-any-return]
        try:
            return call.parse(body)
        except (KeyError, TypeError, ValueError) as exc:
            if isinstance(exc, MediaPocketError):
                raise
            error = MediaPocketBadResponseError(
                f"Media Pocket {call.describe()} answered HTTP {status} ({_content_type(response)}) with a "
                f"body of an unexpected shape: {type(exc).__name__}: {str(exc)[:200]}",
                status=status, method=call.method, path=call.path, body=body,
            )
            error.content_type = _content_type(response)
            raise error from None


def _safe_url(url: httpx.URL | str) -> str:
    """``url`` without user info and query string (either may hold a credential)."""
    parsed = httpx.URL(str(url))
    return str(parsed.copy_with(userinfo=b"", query=None, fragment=None))


def _origin(url: httpx.URL) -> tuple[str, str, int | None]:
    default = {"http": 80, "https": 443}.get(url.scheme)
    return url.scheme, url.host, url.port or default


def _redirect_target(call: ApiCall[Any], response: httpx.Response, redirects: int) -> httpx.URL:
    """Where to follow a redirect of a GET, or MediaPocketBadResponseError naming the ``Location``.

    Only GETs are followed (another verb might be applied twice, or turned into a GET), only within
    the same origin (the API key header would otherwise go to another host) and at most
    :data:`MAX_REDIRECTS` times.
    """
    location = response.headers.get("Location")
    target: httpx.URL | None = None
    if location:
        try:
            target = response.request.url.join(location)
        except (httpx.InvalidURL, ValueError):
            target = None
    shown = _safe_url(target) if target is not None else repr(location)
    if target is None:
        reason = "without a usable Location header"
    elif call.method.upper() != "GET":
        reason = f"to {shown}; a {call.method.upper()} is not re-sent to another address"
    elif _origin(target) != _origin(response.request.url):
        reason = f"to {shown}, another host: not followed, it would send the API key there"
    elif redirects >= MAX_REDIRECTS:
        reason = f"to {shown} after {redirects} redirects already: not followed (a loop?)"
    else:
        return target
    error = MediaPocketBadResponseError(
        f"Media Pocket {call.describe()} answered HTTP {response.status_code} redirecting {reason}. "
        "Set the connection's Base URL to the address the API is served at now.",
        status=response.status_code, method=call.method, path=call.path,
    )
    error.location = _safe_url(target) if target is not None else location
    raise error


def _content_type(response: httpx.Response) -> str:
    return response.headers.get("Content-Type") or "no Content-Type"


def _transport_text(error: httpx.TransportError) -> str:
    text = str(error).strip()
    return f"{type(error).__name__}: {text}" if text else type(error).__name__


def _causes(error: BaseException) -> list[BaseException]:
    """``error`` and what it was raised from (httpx wraps httpcore, which wraps the OSError)."""
    chain: list[BaseException] = []
    current: BaseException | None = error
    while current is not None and current not in chain and len(chain) < 10:
        chain.append(current)
        current = current.__cause__ or current.__context__
    return chain


def _address(error: httpx.TransportError) -> str:
    """``host:port`` of the failed request (never its user info or query string)."""
    try:
        url = error.request.url
    except RuntimeError:
        return "the server"
    origin = _origin(url)
    return f"{origin[1]}:{origin[2]}" if origin[2] else origin[1]


def _errno_text(number: int | None) -> str:
    if number is None:
        return ""
    name = errno_names.errorcode.get(number) if number > 0 else None
    return f"errno {number} {name}" if name else f"errno {number}"


def describe_transport_error(error: httpx.TransportError) -> tuple[bool, str]:
    """``(transient, cause)`` of a network failure.

    Transient: timeouts, and a connection reset or closed without an answer. Permanent: connection
    refused, an unresolvable host, a TLS failure, and whatever else cannot get better by itself.
    """
    where = _address(error)
    base = _transport_text(error)
    if isinstance(error, httpx.TimeoutException):
        return True, f"{base} (talking to {where})"
    if isinstance(error, httpx.ConnectError):
        for cause in _causes(error)[1:]:
            if isinstance(cause, ssl.SSLCertVerificationError):
                return False, f"{base} (TLS certificate of {where} not accepted: {cause.verify_message})"
            if isinstance(cause, ssl.SSLError):
                reason = cause.reason or str(cause)
                hint = (
                    " -- is the Base URL's scheme right? the server answered plain HTTP"
                    if reason in _PLAIN_HTTP_TLS_REASONS else ""
                )
                return False, f"{base} (TLS handshake with {where} failed: {reason}{hint})"
            if isinstance(cause, socket.gaierror):
                host = where.rsplit(":", 1)[0]
                return False, f"{base} (host {host!r} could not be resolved: DNS {_errno_text(cause.errno)})"
            if isinstance(cause, ConnectionRefusedError):
                return False, f"{base} (connection to {where} refused, {_errno_text(cause.errno)})"
            if isinstance(cause, (ConnectionResetError, ConnectionAbortedError, BrokenPipeError)):
                return True, f"{base} (connection to {where} reset, {_errno_text(cause.errno)})"
            if isinstance(cause, OSError) and cause.errno is not None:
                return False, f"{base} (could not connect to {where}: {cause.strerror}, {_errno_text(cause.errno)})"
        return False, f"{base} (could not connect to {where})"
    if isinstance(error, (httpx.ReadError, httpx.WriteError, httpx.RemoteProtocolError, httpx.CloseError)):
        return True, f"{base} (connection to {where} reset or closed without an answer)"
    return False, f"{base} ({where})"


def _transport_error(
    call: ApiCall[Any], error: httpx.TransportError, *, sent: bool, attempts: int, cause: str, transient: bool
) -> MediaPocketTransportError:
    outcome = (
        " The request may have been applied: it was not repeated because repeating it could duplicate it."
        if sent and not call.safe_to_repeat
        else ""
    )
    cls = MediaPocketNetworkError if transient else MediaPocketTransportError
    exc = cls(
        f"Media Pocket {call.describe()} failed after {attempts} attempt(s): {cause}.{outcome}",
        method=call.method,
        path=call.path,
    )
    exc.request_sent = sent
    exc.cause = cause
    return exc


_STATUS_ERRORS: dict[int, type[MediaPocketError]] = {
    400: MediaPocketValidationError,
    401: MediaPocketAuthError,
    403: MediaPocketPermissionError,
    404: MediaPocketNotFoundError,
    422: MediaPocketValidationError,
    429: MediaPocketRateLimitError,
}


def _server_message(body: Any) -> str | None:
    if isinstance(body, dict):
        for key in ("error", "message"):
            value = body.get(key)
            if isinstance(value, str):
                return value
            if isinstance(value, dict) and isinstance(value.get("error"), str):
                return str(value["error"])
    return None


# What a status means for the user, where the bare status would leave them guessing.
_STATUS_HINTS = {
    401: "the API key was rejected: set a valid key in the API Key field of the Airflow connection "
         "(Admin > Connections)",
}


def parse_body(call: ApiCall[Any], response: httpx.Response) -> Any:
    """The JSON body of a successful answer, or the right MediaPocketError for a failed one."""
    status = response.status_code
    try:
        content = response.content
        body: Any = (response.json() if call.decode is None else call.decode(content)) if content else None
    except ValueError:
        body = None
        if status < 400:
            bad = MediaPocketBadResponseError(
                f"Media Pocket {call.describe()} answered HTTP {status} with a body that is not JSON "
                f"({_content_type(response)}): {response.text[:200]!r}",
                status=status, method=call.method, path=call.path,
            )
            bad.content_type = _content_type(response)
            raise bad from None
    if status >= 400:
        message = _server_message(body) or (response.text[:200] if body is None else None) or (
            response.reason_phrase or "error"
        )
        cls = _STATUS_ERRORS.get(status, MediaPocketServerUnavailableError if status >= 500 else MediaPocketError)
        hint = f" -- {_STATUS_HINTS[status]}" if status in _STATUS_HINTS else ""
        exc = cls(
            f"Media Pocket {call.describe()} failed with HTTP {status}: {message}{hint}",
            status=status, method=call.method, path=call.path, server_message=message, body=body,
        )
        if isinstance(exc, MediaPocketRateLimitError):
            exc.retry_after = retry_after_seconds(response)
        raise exc
    if isinstance(body, dict):
        for key in call.error_keys:
            if body.get(key):
                message = _server_message({"error": body[key]}) or str(body[key])
                error = MediaPocketOperationError(
                    f"Media Pocket {call.describe()} answered HTTP {status} but reported a failure: {message}",
                    status=status, method=call.method, path=call.path, server_message=message, body=body,
                )
                created = _CREATED_ASSET.match(message)
                error.created_asset_id = created.group(1) if created else None
                raise error
    return body
