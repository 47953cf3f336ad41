"""When to try a request again, and how long to wait first: the retry policy and its schedule.

A retry is only ever safe because of what the gateway promises: a 503 or a 429 means nothing was
stored, a connection that could not be opened sent nothing, and an order carries a client order id
that the client keeps across its retries, so an order sent twice is decided once (the second answer
is the stored decision, ``replayed``). A lost answer (the connection broke, or timed out, after the
request went out) is therefore retried only for requests that are safe to repeat
(``idempotent``); a 4xx is never retried.

The schedule is capped exponential backoff with jitter ("equal jitter": half the ceiling plus a
random half), so that many clients thrown off by one outage do not come back in step; a
``Retry-After`` from the server replaces it (capped). Attempts and the total time are both bounded.
:class:`RetryBudget` holds that arithmetic with an injected clock and random source, so tests run
the schedule without sleeping; the loops that sleep live in :mod:`ordergate.client.transport`.
"""

from __future__ import annotations

import math
import random
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from email.utils import parsedate_to_datetime

import httpx

RETRYABLE_STATUSES = frozenset({429, 502, 503, 504})
"""Answers that mean "not now": the gateway's own 503 and 429 (nothing stored), a proxy's 502 and 504."""
NOT_SENT = (httpx.ConnectError, httpx.ConnectTimeout, httpx.PoolTimeout)
"""Network errors raised before any byte of the request left: safe to retry for any request."""


@dataclass(frozen=True, slots=True)
class RetryPolicy:
    """How hard to try. ``attempts`` counts the first try; ``total_seconds`` bounds the waiting and
    trying together (``math.inf``: no bound). Invalid values raise ``ValueError``."""

    attempts: int = 8
    base_seconds: float = 0.1
    cap_seconds: float = 5.0
    retry_after_cap_seconds: float = 60.0
    total_seconds: float = 30.0

    def __post_init__(self) -> None:
        if self.attempts < 1:
            raise ValueError(f"attempts must be at least 1 (got {self.attempts})")
        for name in ("base_seconds", "cap_seconds", "retry_after_cap_seconds", "total_seconds"):
            value = getattr(self, name)
            if not (value >= 0 and not math.isnan(value)):
                raise ValueError(f"{name} must be 0 or more (got {value})")

    def delay(self, retry: int, retry_after: str | None, jitter: random.Random) -> float:
        """Seconds to wait before retry number ``retry`` (0-based): the server's ``Retry-After`` when it
        gave a usable one (capped), else capped exponential backoff with jitter."""
        if retry_after is not None:
            seconds = parse_retry_after(retry_after)
            if seconds is not None:
                return min(seconds, self.retry_after_cap_seconds)
        ceiling = min(self.cap_seconds, self.base_seconds * 2.0 ** min(retry, 64))
        return ceiling / 2 + jitter.uniform(0, ceiling / 2)

    def start(self, *, clock: Callable[[], float] = time.monotonic, jitter: random.Random | None = None) -> RetryBudget:
        """A fresh budget for one request (or one outage of an event stream)."""
        return RetryBudget(self, clock, jitter if jitter is not None else random.Random())


NO_RETRIES = RetryPolicy(attempts=1)


class RetryBudget:
    """The retries left for one request: ask :meth:`next_delay` after each failed attempt."""

    __slots__ = ("_clock", "_jitter", "_policy", "_started", "attempts")

    def __init__(self, policy: RetryPolicy, clock: Callable[[], float], jitter: random.Random) -> None:
        self._policy = policy
        self._clock = clock
        self._jitter = jitter
        self._started = clock()
        self.attempts = 0
        """Attempts made so far (the caller counts each one with :meth:`attempted`)."""

    def attempted(self) -> None:
        self.attempts += 1

    def next_delay(self, retry_after: str | None = None) -> float | None:
        """Seconds to wait before the next attempt, or ``None`` when the attempts or the time are spent
        (a wait that would end past the total is not started)."""
        if self.attempts >= self._policy.attempts:
            return None
        delay = self._policy.delay(self.attempts - 1, retry_after, self._jitter)
        if self._clock() - self._started + delay > self._policy.total_seconds:
            return None
        return delay


def should_retry(outcome: httpx.Response | httpx.TransportError, *, idempotent: bool) -> bool:
    """Whether this outcome of an attempt may be retried: "not now" answers always, network errors
    before sending always, network errors after sending only when the request is ``idempotent``."""
    if isinstance(outcome, httpx.Response):
        return outcome.status_code in RETRYABLE_STATUSES
    return idempotent or isinstance(outcome, NOT_SENT)


def parse_retry_after(value: str) -> float | None:
    """``Retry-After`` in seconds (delta-seconds or an HTTP date), or ``None`` when it is neither."""
    try:
        seconds = float(value)
    except ValueError:
        pass
    else:
        return max(0.0, seconds) if math.isfinite(seconds) else None
    try:
        when = parsedate_to_datetime(value)
    except (TypeError, ValueError, IndexError):
        return None
    if when.tzinfo is None:
        when = when.replace(tzinfo=UTC)
    return max(0.0, (when - datetime.now(UTC)).total_seconds())
