"""``MediaPocketRetryPolicy``: a task retry policy (Airflow 3.3, AIP-105) that knows Media Pocket's errors.

Attach it to any task that calls Media Pocket::

    from airflow_provider_mediapocket.policies.mediapocket import MediaPocketRetryPolicy

    MediaPocketCreateAssetOperator(..., retries=5, retry_policy=MediaPocketRetryPolicy())

When the task fails, Airflow asks the policy (in the worker, with the exception):

* HTTP 429: retry after the server's ``Retry-After`` (capped at ``max_retry_after``), else the task's delay;
* HTTP 500/502/503/504, a timeout, a connection reset or closed without an answer: retry (task's delay);
* a rejected parameter (400/422 or before sending), 401, 403, 404, a missing or incomplete connection:
  fail at once, without spending the remaining retries (asking again gets the same answer);
* anything else (a failed DAG action run, a wait that timed out, an error that is not Media Pocket's):
  the task's own ``retries`` and ``retry_delay`` decide, as without a policy.

A policy never adds tries: ``RETRY`` still counts against the task's ``retries``. The hook's own retries
(``retry_limit``) happen first, inside one try; the policy decides about the next try.

On Airflow before 3.3 there are no retry policies (the ``retry_policy`` argument does not exist);
:func:`classify` gives the same answer for use in your own callbacks.
"""

from __future__ import annotations

from datetime import timedelta
from typing import Any, Literal

from airflow_provider_mediapocket.exceptions import (
    MediaPocketAuthError,
    MediaPocketConfigError,
    MediaPocketError,
    MediaPocketNotFoundError,
    MediaPocketPermissionError,
    MediaPocketRateLimitError,
    MediaPocketTransientError,
    MediaPocketValidationError,
)

try:
    from airflow.providers.common.compat.sdk import RetryDecision, RetryPolicy

    HAS_RETRY_POLICIES = True
except (ImportError, AttributeError):  # pragma: no cover - Airflow < 3.3 has no retry policies
    HAS_RETRY_POLICIES = False

    class RetryPolicy:  # type: ignore[no-redef]
        """Stands in on Airflow < 3.3 so that :func:`classify` stays importable."""

__all__ = ["HAS_RETRY_POLICIES", "MediaPocketRetryPolicy", "classify"]

#: Failures that asking again cannot fix.
PERMANENT_ERRORS: tuple[type[MediaPocketError], ...] = (
    MediaPocketValidationError,
    MediaPocketAuthError,
    MediaPocketPermissionError,
    MediaPocketNotFoundError,
    MediaPocketConfigError,
)

Kind = Literal["transient", "permanent", "other"]


def _mediapocket_error(exc: BaseException | None) -> MediaPocketError | None:
    """The Media Pocket error in ``exc`` or the exceptions it was raised from (``raise ... from``)."""
    seen: set[int] = set()
    while exc is not None and id(exc) not in seen:
        if isinstance(exc, MediaPocketError):
            return exc
        seen.add(id(exc))
        exc = exc.__cause__ or exc.__context__
    return None


def classify(exc: BaseException) -> Kind:
    """``"transient"`` (429, 5xx unavailable, timeout, reset: try again later), ``"permanent"`` (rejected
    parameter, 401, 403, 404, connection setup: fail) or ``"other"`` (anything else, including errors that
    are not Media Pocket's).

    :param exc: the exception a task raised; the exceptions it was raised from are looked at too.
    """
    error = _mediapocket_error(exc)
    if isinstance(error, MediaPocketTransientError):
        return "transient"
    if isinstance(error, PERMANENT_ERRORS):
        return "permanent"
    return "other"


class MediaPocketRetryPolicy(RetryPolicy):  # type: ignore[misc,unused-ignore]
    """Retry transient Media Pocket failures, fail at once on permanent ones (see the module docstring).

    :param max_retry_after: the longest ``Retry-After`` honoured (default one hour); a longer hint is cut
        to it.
    """

    def __init__(self, *, max_retry_after: timedelta = timedelta(hours=1)) -> None:
        if not HAS_RETRY_POLICIES:  # pragma: no cover - Airflow < 3.3
            raise MediaPocketConfigError(
                "MediaPocketRetryPolicy needs Airflow 3.3 or later (task retry policies, AIP-105); on older "
                "versions use airflow_provider_mediapocket.policies.mediapocket.classify in your callbacks"
            )
        if not isinstance(max_retry_after, timedelta) or max_retry_after <= timedelta(0):
            raise MediaPocketValidationError(
                f"Invalid parameter 'max_retry_after': must be a positive timedelta (got {max_retry_after!r})"
            )
        self.max_retry_after = max_retry_after

    def evaluate(
        self, exception: BaseException, try_number: int, max_tries: int, context: Any = None
    ) -> RetryDecision:
        """The decision about the next try after ``exception`` (called by Airflow in the worker).

        :param exception: the exception that failed the try.
        :param try_number: the try that failed (1-based).
        :param max_tries: the task's maximum tries.
        :param context: the task's context (not used).
        """
        kind = classify(exception)
        error = _mediapocket_error(exception)
        if kind == "permanent":
            return RetryDecision.fail(reason=f"Media Pocket: {type(error).__name__} is permanent, not retrying")
        if kind == "transient":
            delay = None
            retry_after = getattr(error, "retry_after", None)
            if isinstance(error, MediaPocketRateLimitError) and isinstance(retry_after, (int, float)):
                delay = min(timedelta(seconds=max(float(retry_after), 0.0)), self.max_retry_after)
            hint = f" after the server's Retry-After ({delay.total_seconds():g}s)" if delay is not None else ""
            return RetryDecision.retry(delay, reason=f"Media Pocket: {type(error).__name__} is transient, "
                                                     f"retrying{hint}")
        return RetryDecision.default()

    def serialize(self) -> dict[str, Any]:
        """JSON form (Airflow 3.3 stores only that a task has a policy; the worker uses the DAG file's)."""
        return {"__type": "MediaPocketRetryPolicy", "max_retry_after": self.max_retry_after.total_seconds()}

    @classmethod
    def deserialize(cls, data: dict[str, Any]) -> MediaPocketRetryPolicy:
        """The policy of :meth:`serialize`'s output.

        :param data: what :meth:`serialize` returned.
        """
        return cls(max_retry_after=timedelta(seconds=float(data["max_retry_after"])))
