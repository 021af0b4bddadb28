"""A request budget per process: the connection extra ``max_requests_per_second``.

Media Pocket limits requests per account. A deployment with N triggerers (and workers) can give each
process a share of that limit: every request a process sends with a connection whose extra
``max_requests_per_second`` is set first takes a token from that connection's bucket. The bucket
belongs to the process, keyed by connection id, and is shared by the sync clients (tasks, any
thread) and the async clients (the triggerer's event loop) of that process; processes share nothing.

A token bucket of ``rate`` tokens a second holding at most ``rate`` tokens (one second's worth, at
least one): a quiet process may send a burst of that size, then requests are paced at ``rate``. A
request that has to wait sleeps: ``time.sleep`` on the sync side, ``asyncio.sleep`` on the async
side (the event loop runs on meanwhile). The bucket's lock guards a few arithmetic operations only
and is never held while anyone sleeps, so taking it on the event loop cannot block the loop.

A 429 answer carrying ``Retry-After`` pauses the whole bucket for that long: the other requests of the
process wait too instead of each collecting a 429 of its own (the request that got it is retried by
the hook as before, after ``Retry-After``), and when the pause ends they leave paced by the bucket,
not all at once.

A request that cannot get a token before its own deadline (a trigger's wait ending) is not sent: it
fails like a pool timeout, before anything left, which the hook treats as any transient failure.
"""

from __future__ import annotations

import asyncio
import threading
import time
from collections.abc import Awaitable, Callable
from typing import TypeVar

import httpx

from airflow_provider_mediapocket._transport import RetryPolicy, retry_after_seconds

R = TypeVar("R")

#: The longest pause a 429's ``Retry-After`` imposes on the bucket (as long as the hook would wait).
MAX_PAUSE = RetryPolicy().max_retry_after


class NoBudget(httpx.PoolTimeout):
    """No token before the request's deadline: the request was not sent."""


class TokenBucket:
    """``rate`` requests a second, bursts of up to ``max(1, rate)``; thread-safe.

    :param rate: tokens added per second (> 0).
    :param clock: monotonic seconds (injected by tests).
    """

    def __init__(self, rate: float, clock: Callable[[], float] = time.monotonic) -> None:
        self._lock = threading.Lock()
        self._clock = clock
        self.rate = float(rate)
        self._tokens = self.capacity
        # When ``_tokens`` was counted; in the future while a 429 pauses the bucket.
        self._at = clock()

    @property
    def capacity(self) -> float:
        return max(1.0, self.rate)

    def set_rate(self, rate: float) -> None:
        """Change the rate (the connection's extra was edited); tokens already counted are kept."""
        with self._lock:
            self._refill(self._clock())
            self.rate = float(rate)
            self._tokens = min(self._tokens, self.capacity)

    def _refill(self, now: float) -> None:
        if now > self._at:
            self._tokens = min(self.capacity, self._tokens + (now - self._at) * self.rate)
            self._at = now

    def reserve(self, within: float | None = None) -> float | None:
        """Take a token: the seconds to wait before sending (0: at once), or ``None`` -- nothing taken --
        when that wait would be longer than ``within`` seconds."""
        with self._lock:
            now = self._clock()
            self._refill(now)
            # Tokens below zero are requests already waiting: this one leaves after them.
            wait = (self._at - now) + max(1.0 - self._tokens, 0.0) / self.rate
            if within is not None and wait > within:
                return None
            self._tokens -= 1.0
            return max(wait, 0.0)

    def refund(self) -> None:
        """Give back a token whose request was not sent (its caller was cancelled while waiting)."""
        with self._lock:
            self._tokens = min(self._tokens + 1.0, self.capacity)

    def pause(self, seconds: float) -> None:
        """No token for ``seconds`` (a 429's ``Retry-After``), and none saved up meanwhile."""
        with self._lock:
            now = self._clock()
            self._refill(now)
            self._tokens = min(self._tokens, 0.0)
            self._at = max(self._at, now + min(seconds, MAX_PAUSE))

    def paused_for(self) -> float:
        """Seconds left of a pause (0 when not paused)."""
        with self._lock:
            return max(self._at - self._clock(), 0.0)


_BUCKETS: dict[str, TokenBucket] = {}
_BUCKETS_LOCK = threading.Lock()


def bucket(conn_id: str, rate: float | None) -> TokenBucket | None:
    """The process's bucket of connection ``conn_id`` at ``rate`` requests a second (``None``: no budget)."""
    if rate is None:
        return None
    with _BUCKETS_LOCK:
        found = _BUCKETS.get(conn_id)
        if found is None:
            found = _BUCKETS[conn_id] = TokenBucket(rate)
        elif found.rate != rate:
            found.set_rate(rate)
        return found


def _no_budget(budget: TokenBucket, within: float | None) -> NoBudget:
    return NoBudget(
        f"no request budget left within {within:.2f}s (connection extra max_requests_per_second = {budget.rate:g})"
    )


def _check_429(budget: TokenBucket, response: httpx.Response) -> httpx.Response:
    if response.status_code == 429:
        retry_after = retry_after_seconds(response)
        if retry_after is not None:
            budget.pause(retry_after)
    return response


def send(budget: TokenBucket | None, request: Callable[[], httpx.Response], within: float | None) -> httpx.Response:
    """``request()`` once ``budget`` allows (sleeping in this thread); ``NoBudget`` if not within ``within`` s."""
    if budget is None:
        return request()
    wait = budget.reserve(within)
    if wait is None:
        raise _no_budget(budget, within)
    while wait > 0:
        time.sleep(wait)
        wait = budget.paused_for()  # a 429 seen meanwhile paused the bucket
    return _check_429(budget, request())


async def asend(
    budget: TokenBucket | None, request: Callable[[], Awaitable[httpx.Response]], within: float | None
) -> httpx.Response:
    """The async :func:`send`: waits with ``asyncio.sleep``, so the event loop runs on meanwhile."""
    if budget is None:
        return await request()
    wait = budget.reserve(within)
    if wait is None:
        raise _no_budget(budget, within)
    try:
        while wait > 0:
            await asyncio.sleep(wait)
            wait = budget.paused_for()
    except asyncio.CancelledError:
        budget.refund()
        raise
    return _check_429(budget, await request())
