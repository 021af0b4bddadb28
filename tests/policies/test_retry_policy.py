"""Issue 9 section 5: ``MediaPocketRetryPolicy`` (Airflow 3.3 task retry policies, AIP-105); its run in
real ``dag.test()`` is in tests/e2e/test_retry_policy_dag.py."""

from __future__ import annotations

from datetime import timedelta

import pytest
from airflow.sdk import RetryAction

from airflow_provider_mediapocket.exceptions import (
    MediaPocketAuthError,
    MediaPocketBadResponseError,
    MediaPocketConfigError,
    MediaPocketError,
    MediaPocketNetworkError,
    MediaPocketNotFoundError,
    MediaPocketOperationError,
    MediaPocketPermissionError,
    MediaPocketRateLimitError,
    MediaPocketRunFailedError,
    MediaPocketServerUnavailableError,
    MediaPocketTimeoutError,
    MediaPocketValidationError,
)
from airflow_provider_mediapocket.policies.mediapocket import MediaPocketRetryPolicy, classify


def rate_limited(retry_after: float | None) -> MediaPocketRateLimitError:
    error = MediaPocketRateLimitError("HTTP 429", status=429)
    error.retry_after = retry_after
    return error


@pytest.mark.parametrize(
    ("error", "action"),
    [
        (MediaPocketServerUnavailableError("503", status=503), RetryAction.RETRY),
        (MediaPocketNetworkError("reset"), RetryAction.RETRY),
        (rate_limited(None), RetryAction.RETRY),
        (MediaPocketValidationError("Invalid parameter 'title'"), RetryAction.FAIL),
        (MediaPocketAuthError("401", status=401), RetryAction.FAIL),
        (MediaPocketPermissionError("403", status=403), RetryAction.FAIL),
        (MediaPocketNotFoundError("404", status=404), RetryAction.FAIL),
        (MediaPocketConfigError("no API key"), RetryAction.FAIL),
        (MediaPocketRunFailedError("run failed"), RetryAction.DEFAULT),
        (MediaPocketTimeoutError("too slow"), RetryAction.DEFAULT),
        (MediaPocketOperationError("Project not found."), RetryAction.DEFAULT),
        (MediaPocketBadResponseError("HTML"), RetryAction.DEFAULT),
        (RuntimeError("not Media Pocket's"), RetryAction.DEFAULT),
    ],
)
def test_decisions(error: BaseException, action: RetryAction) -> None:
    assert MediaPocketRetryPolicy().evaluate(error, try_number=1, max_tries=4).action is action


def test_rate_limit_honours_retry_after_up_to_the_cap() -> None:
    policy = MediaPocketRetryPolicy(max_retry_after=timedelta(seconds=60))
    assert policy.evaluate(rate_limited(7), 1, 4).retry_delay == timedelta(seconds=7)
    assert policy.evaluate(rate_limited(3600), 1, 4).retry_delay == timedelta(seconds=60)
    assert policy.evaluate(rate_limited(None), 1, 4).retry_delay is None  # the task's own retry_delay


def test_an_error_raised_from_a_media_pocket_error_is_classified_by_its_cause() -> None:
    def wrapped(cause: MediaPocketError) -> BaseException:
        try:
            try:
                raise cause
            except MediaPocketError as exc:
                raise RuntimeError("task code wrapped it") from exc
        except RuntimeError as outer:
            return outer

    assert classify(wrapped(MediaPocketNotFoundError("404"))) == "permanent"
    assert classify(wrapped(MediaPocketServerUnavailableError("502"))) == "transient"
    assert classify(ValueError("x")) == "other"


def test_bad_cap_is_refused() -> None:
    with pytest.raises(MediaPocketValidationError, match="'max_retry_after'"):
        MediaPocketRetryPolicy(max_retry_after=timedelta(0))


def test_serialize_round_trip() -> None:
    policy = MediaPocketRetryPolicy(max_retry_after=timedelta(seconds=90))
    assert MediaPocketRetryPolicy.deserialize(policy.serialize()).max_retry_after == timedelta(seconds=90)
