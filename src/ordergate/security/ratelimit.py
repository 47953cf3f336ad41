"""Token buckets: at most ``rate`` requests a second per caller, with bursts of up to ``burst``.

Each caller (an API key, or the client's address when auth is off) has a bucket of ``burst`` tokens
that refills at ``rate`` tokens a second; a request takes one token, or is refused with the time
until the next one (HTTP 429 with ``Retry-After``). The clock is injected, so tests need no sleeps.

Memory is strictly bounded and every request costs O(1) on the event loop, however many callers
there are: the buckets live in an LRU table of at most ``max_callers`` (default 10,000) entries, and
a caller not yet in the table evicts the *least recently seen* caller, in one step, without a scan.
A request counts as "seen" whether it is allowed or refused, so a caller that keeps sending is never
evicted. Eviction only forgets: an evicted caller that comes back starts again with a full bucket,
which gives it at most one extra burst, and only if ``max_callers`` other callers arrived since its
last request and before its own bucket would have refilled anyway (``burst / rate`` seconds). With
auth on, callers are keys, far fewer than the cap; with auth off, a client that can send from more
than ``max_callers`` addresses is not held back by a per-address limit, whatever its memory.
"""

from __future__ import annotations

import time
from collections import OrderedDict
from collections.abc import Callable

MAX_CALLERS = 10_000
"""Callers tracked at once by default; a new caller beyond it evicts the least recently seen one."""


class RateLimiter:
    __slots__ = ("_buckets", "_clock", "burst", "max_callers", "rate")

    def __init__(
        self,
        rate: float,
        burst: int | None = None,
        *,
        clock: Callable[[], float] = time.monotonic,
        max_callers: int = MAX_CALLERS,
    ) -> None:
        if rate <= 0:
            raise ValueError("rate must be more than 0 requests a second")
        if max_callers < 1:
            raise ValueError("max_callers must be at least 1")
        self.rate = rate
        self.burst = float(burst if burst is not None else max(1, round(rate)))
        if self.burst < 1:
            raise ValueError("burst must be at least 1 request")
        self.max_callers = max_callers
        self._clock = clock
        self._buckets: OrderedDict[str, tuple[float, float]] = OrderedDict()  # caller -> (tokens, at), oldest first

    def __len__(self) -> int:
        """How many callers are tracked now (never more than ``max_callers``)."""
        return len(self._buckets)

    def wait(self, caller: str) -> float:
        """The seconds until ``caller`` has a token (0.0: it has one now); takes nothing, changes nothing."""
        bucket = self._buckets.get(caller)
        if bucket is None:
            return 0.0
        tokens = min(self.burst, bucket[0] + (self._clock() - bucket[1]) * self.rate)
        return 0.0 if tokens >= 1.0 else (1.0 - tokens) / self.rate

    def take(self, caller: str) -> float:
        """Take a token for ``caller``: 0.0 when allowed, else the seconds until a token is available."""
        now = self._clock()
        buckets = self._buckets
        bucket = buckets.pop(caller, None)
        if bucket is None:
            tokens = self.burst
            if len(buckets) >= self.max_callers:
                buckets.popitem(last=False)  # the least recently seen caller
        else:
            tokens = min(self.burst, bucket[0] + (now - bucket[1]) * self.rate)
        if tokens >= 1.0:
            buckets[caller] = (tokens - 1.0, now)  # (re)inserted last: the most recently seen
            return 0.0
        buckets[caller] = (tokens, now)
        return (1.0 - tokens) / self.rate
