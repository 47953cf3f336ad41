"""Wall-clock timestamps as the log stores them: ISO 8601, UTC, microseconds, ``Z`` suffix.

Every order is stamped, so the formatting is on the hot path: the date and time up to the second are
formatted once per second, and only the microseconds per call.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from datetime import UTC, datetime

Clock = Callable[[], str]

_second = -1
_prefix = ""


def utc_now() -> str:
    global _second, _prefix
    now = time.time_ns() // 1000
    second, micros = divmod(now, 1_000_000)
    if second != _second:
        _prefix = datetime.fromtimestamp(second, UTC).strftime("%Y-%m-%dT%H:%M:%S.")
        _second = second
    return f"{_prefix}{micros:06d}Z"
