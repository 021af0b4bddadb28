"""The transport core shared by the sync and the async client.

One exchange (send, maybe retry, parse) is written once, as a generator that yields what it needs
done -- :class:`Send` a request or :class:`Sleep` -- and receives the outcome. The sync driver runs
it with ``httpx.Client`` and ``time.sleep``; the async driver with ``httpx.AsyncClient`` and
``asyncio.sleep``. Deciding whether to retry and turning a response into data or an error therefore
cannot drift apart between workers and the triggerer.
"""

from __future__ import annotations

import email.utils
import logging
import random
import re
import time
from collections.abc import Callable, Generator
from dataclasses import dataclass
from typing import Any, Generic, TypeVar

import httpx

from airflow_provider_mediapocket.exceptions import (
    MediaPocketAuthError,
    MediaPocketError,
    MediaPocketNotFoundError,
    MediaPocketOperationError,
    MediaPocketPermissionError,
    MediaPocketRateLimitError,
    MediaPocketServerError,
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
                                                           httpx.PoolTimeout)


@dataclass(frozen=True)
class RetryPolicy:
    """Capped exponential backoff with jitter; ``retry_limit`` retries after the first try."""

    retry_limit: int = 3
    backoff: float = 1.0
    max_backoff: float = 30.0
    max_retry_after: float = 120.0

    def delay(self, attempt: int, retry_after: float | None = None) -> float:
        """Seconds to wait before retry number ``attempt + 1`` (attempt counts from 0)."""
        if retry_after is not None:
            return min(max(retry_after, 0.0), self.max_retry_after)
        ceiling = min(self.max_backoff, self.backoff * (2**attempt))
        return float(ceiling * random.uniform(0.5, 1.0))


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
    call: ApiCall[Any]


@dataclass(frozen=True)
class Sleep:
    seconds: float


Step = Send | Sleep
Outcome = httpx.Response | httpx.TransportError | None


@dataclass
class _Attempt:
    number: int = 0


def retry_after_seconds(response: httpx.Response) -> float | None:
    """The ``Retry-After`` header as seconds (delta-seconds or an HTTP date), or None."""
    value = response.headers.get("Retry-After")
    if not value:
        return None
    try:
        return max(float(value), 0.0)
    except ValueError:
        parsed = email.utils.parsedate_to_datetime(value) if value else None
        if parsed is None:
            return None
        return max(parsed.timestamp() - time.time(), 0.0)


def exchange(call: ApiCall[T], policy: RetryPolicy) -> Generator[Step, Outcome, T]:
    """Run ``call`` to its end: yields sends and sleeps, returns the parsed value or raises."""
    attempt = _Attempt()
    while True:
        outcome = yield Send(call)
        if isinstance(outcome, httpx.TransportError):
            sent = not isinstance(outcome, NOT_SENT_ERRORS)
            if attempt.number < policy.retry_limit and (not sent or call.safe_to_repeat):
                delay = policy.delay(attempt.number)
                log.warning(
                    "Media Pocket %s: %s; retry %d of %d in %.2fs",
                    call.describe(), _transport_text(outcome), attempt.number + 1, policy.retry_limit, delay,
                )
                attempt.number += 1
                yield Sleep(delay)
                continue
            raise _transport_error(call, outcome, sent=sent, attempts=attempt.number + 1)
        assert outcome is not None
        response = outcome
        status = response.status_code
        if status in RETRY_STATUSES and attempt.number < policy.retry_limit and (
            status == 429 or call.safe_to_repeat
        ):
            retry_after = retry_after_seconds(response) if status in (429, 503) else None
            delay = policy.delay(attempt.number, retry_after)
            log.warning(
                "Media Pocket %s answered HTTP %d; retry %d of %d in %.2fs",
                call.describe(), status, attempt.number + 1, policy.retry_limit, delay,
            )
            attempt.number += 1
            yield Sleep(delay)
            continue
        body = parse_body(call, response)
        try:
            return call.parse(body)
        except (KeyError, TypeError, ValueError) as exc:
            if isinstance(exc, MediaPocketError):
                raise
            raise MediaPocketServerError(
                f"Media Pocket {call.describe()} answered HTTP {status} with an unexpected body: "
                f"{type(exc).__name__}: {str(exc)[:200]}",
                status=status, method=call.method, path=call.path, body=body,
            ) from None


def _transport_text(error: httpx.TransportError) -> str:
    text = str(error).strip()
    return f"{type(error).__name__}: {text}" if text else type(error).__name__


def _transport_error(
    call: ApiCall[Any], error: httpx.TransportError, *, sent: bool, attempts: int
) -> MediaPocketTransportError:
    outcome = (
        " The request may have been applied: it was not repeated because repeating it could duplicate it."
        if sent and not call.safe_to_repeat
        else ""
    )
    exc = MediaPocketTransportError(
        f"Media Pocket {call.describe()} failed after {attempts} attempt(s): {_transport_text(error)}.{outcome}",
        method=call.method,
        path=call.path,
    )
    exc.request_sent = sent
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


def parse_body(call: ApiCall[Any], response: httpx.Response) -> Any:
    """The JSON body of a successful answer, or the right MediaPocketError for a failed one."""
    status = response.status_code
    try:
        content = response.content
        body: Any = (response.json() if call.decode is None else call.decode(content)) if content else None
    except ValueError:
        body = None
        if status < 400:
            raise MediaPocketServerError(
                f"Media Pocket {call.describe()} answered HTTP {status} with a body that is not JSON: "
                f"{response.text[:200]!r}",
                status=status, method=call.method, path=call.path,
            ) from None
    if status >= 400:
        message = _server_message(body) or (response.text[:200] if body is None else None) or (
            response.reason_phrase or "error"
        )
        cls = _STATUS_ERRORS.get(status, MediaPocketServerError if status >= 500 else MediaPocketError)
        exc = cls(
            f"Media Pocket {call.describe()} failed with HTTP {status}: {message}",
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
