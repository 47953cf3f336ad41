"""Token buckets: at most ``rate`` requests a second per key, with bursts of up to ``burst``.

Each caller (an API key, or the client's address when auth is off) has a bucket of ``burst`` tokens
that refills at ``rate`` tokens a second; a request takes one token, or is refused with the time
until the next one (HTTP 429 with ``Retry-After``). The clock is injected, so tests need no sleeps.
"""

from __future__ import annotations

import time
from collections.abc import Callable

MAX_BUCKETS = 10_000
"""Callers tracked at once; beyond it, buckets that are full again (idle callers) are dropped."""


class RateLimiter:
    __slots__ = ("_buckets", "_clock", "burst", "rate")

    def __init__(self, rate: float, burst: int | None = None, *, clock: Callable[[], float] = time.monotonic) -> None:
        if rate <= 0:
            raise ValueError("rate must be more than 0 requests a second")
        self.rate = rate
        self.burst = float(burst if burst is not None else max(1, round(rate)))
        if self.burst < 1:
            raise ValueError("burst must be at least 1 request")
        self._clock = clock
        self._buckets: dict[str, tuple[float, float]] = {}  # caller -> (tokens, at)

    def take(self, caller: str) -> float:
        """Take a token for ``caller``: 0.0 when allowed, else the seconds until a token is available."""
        now = self._clock()
        tokens, at = self._buckets.get(caller, (self.burst, now))
        tokens = min(self.burst, tokens + (now - at) * self.rate)
        if tokens >= 1.0:
            if len(self._buckets) >= MAX_BUCKETS and caller not in self._buckets:
                self._forget_idle(now)
            self._buckets[caller] = (tokens - 1.0, now)
            return 0.0
        self._buckets[caller] = (tokens, now)
        return (1.0 - tokens) / self.rate

    def _forget_idle(self, now: float) -> None:
        full = [c for c, (tokens, at) in self._buckets.items() if tokens + (now - at) * self.rate >= self.burst]
        for caller in full:
            del self._buckets[caller]
