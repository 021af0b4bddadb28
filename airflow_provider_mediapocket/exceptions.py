"""Exceptions raised by the Media Pocket provider.

Every failure is a :class:`MediaPocketError` (an ``AirflowException``). An error that came from the
API carries the HTTP ``status``, the request ``method`` and ``path`` and the server's own ``message``;
none of them ever carries request headers or the API key.
"""

from __future__ import annotations

from typing import Any

try:
    from airflow.sdk.exceptions import AirflowException, AirflowSensorTimeout
except ImportError:  # pragma: no cover - Airflow 3.0 kept them only in airflow.exceptions
    from airflow.exceptions import (  # type: ignore[attr-defined,no-redef,unused-ignore]
        AirflowException,
        AirflowSensorTimeout,
    )


class MediaPocketError(AirflowException):
    """Base class of every Media Pocket failure."""

    def __init__(
        self,
        message: str,
        *,
        status: int | None = None,
        method: str | None = None,
        path: str | None = None,
        server_message: str | None = None,
        body: Any = None,
    ) -> None:
        super().__init__(message)
        self.message = message
        self.status = status
        self.method = method
        self.path = path
        self.server_message = server_message
        self.body = body

    def __str__(self) -> str:
        return self.message

    @property
    def transient(self) -> bool:
        """Whether the failure says nothing about the thing asked for (429, 5xx, a timeout or a reset),
        so that a wait may poll again. Everything else is permanent and ends a wait at once."""
        return isinstance(self, MediaPocketTransientError)

    def __reduce__(self) -> tuple[Any, ...]:
        # Keep keyword-only attributes when the error crosses a process boundary (pickle).
        return (_rebuild, (type(self), self.message, self.__dict__))


def _rebuild(cls: type[MediaPocketError], message: str, state: dict[str, Any]) -> MediaPocketError:
    error = cls.__new__(cls)
    AirflowException.__init__(error, message)
    error.__dict__.update(state)
    return error


class MediaPocketConfigError(MediaPocketError):
    """The Airflow connection is missing or incomplete (no host, no API key, bad extras)."""


class MediaPocketValidationError(MediaPocketError, ValueError):
    """A parameter was rejected: by the provider before sending (``status`` None) or by the API (400/422)."""


class MediaPocketAuthError(MediaPocketError):
    """HTTP 401: the API key is missing, wrong or revoked."""


class MediaPocketPermissionError(MediaPocketError):
    """HTTP 403: the key's user lacks a permission (``ACTIONS_VIEW``, ``ACTIONS_START``, ownership)."""


class MediaPocketNotFoundError(MediaPocketError):
    """HTTP 404: the asset, project, comment, DAG action, run or user does not exist."""


class MediaPocketTransientError(MediaPocketError):
    """Mixin of the failures that are worth trying again later: HTTP 429, HTTP 5xx, a timeout, a
    connection reset or closed without an answer. They say nothing about the thing asked for.

    Anything that is not one of these is permanent: connection refused, an unresolvable host, a TLS
    failure, an HTTP 200 whose body is not the JSON the API promises, a redirect that is not followed,
    and every 4xx. The hook retries both kinds within its retry budget where repeating is safe; waits
    (triggers, sensors) poll again after a transient failure and end at once on a permanent one.
    """


class MediaPocketRateLimitError(MediaPocketTransientError):
    """HTTP 429 after the retries ran out; ``retry_after`` holds the server's hint in seconds."""

    retry_after: float | None = None


class MediaPocketServerError(MediaPocketError):
    """HTTP 5xx after the retries ran out (:class:`MediaPocketServerUnavailableError`, transient), or an
    answer that is not what the API promises (:class:`MediaPocketBadResponseError`, permanent)."""


class MediaPocketServerUnavailableError(MediaPocketServerError, MediaPocketTransientError):
    """HTTP 500/502/503/504 after the retries ran out: transient."""


class MediaPocketBadResponseError(MediaPocketServerError):
    """A successful status with a body that is not JSON (``content_type`` names what came instead) or
    not of the documented shape, or a redirect that was not followed (``location``): permanent, as
    asking again gets the same answer (a proxy's HTML page, a wrong base URL)."""

    content_type: str | None = None
    location: str | None = None


class MediaPocketOperationError(MediaPocketError):
    """The API answered HTTP 200 but the body reports a failure (``{"error": ...}`` or ``errors``).

    Media Pocket does this for assign/unassign, for creating an asset in a project whose media URL is
    bad (the asset *is* created: see ``created_asset_id``) and for removing media that is not there.
    """

    created_asset_id: str | None = None


class MediaPocketTransportError(MediaPocketError):
    """The request failed on the network after the retries.

    ``request_sent`` tells whether the server may have received and applied the request: when True
    the outcome of a non-idempotent call is unknown and it was deliberately not repeated. ``cause``
    names what failed (the host and errno, the TLS reason, the timeout). This class itself is a
    permanent failure (connection refused, unresolvable host, TLS error, an unsupported URL); a
    timeout or a connection reset or closed without an answer is a
    :class:`MediaPocketNetworkError` (transient).
    """

    request_sent: bool = False
    cause: str = ""


class MediaPocketNetworkError(MediaPocketTransportError, MediaPocketTransientError):
    """A timeout, or a connection reset or closed without an answer, after the retries: transient."""


class MediaPocketRunFailedError(MediaPocketError):
    """A DAG action run ended in a failure status."""


class MediaPocketTimeoutError(MediaPocketError):
    """A wait (run or asset) passed its deadline."""


class MediaPocketSensorTimeout(MediaPocketTimeoutError, AirflowSensorTimeout):
    """A sensor's deferred wait passed the sensor's ``timeout``.

    Also an ``AirflowSensorTimeout``, so that a deferrable sensor ends like one in poke or reschedule
    mode: failed without retries (or skipped with ``soft_fail``), instead of waiting all over again
    on every retry.
    """


#: Failures worth polling again after the hook's own retries ran out: they say nothing about the
#: thing being waited for (429, 5xx, timeouts, resets). Waits (triggers, sensors, the start
#: operator's wait) ride them out; any other MediaPocketError ends the wait. Same as ``exc.transient``.
TRANSIENT_ERRORS: tuple[type[MediaPocketError], ...] = (MediaPocketTransientError,)
