"""Wall-clock timestamps as the log stores them: ISO 8601, UTC, microseconds, ``Z`` suffix."""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime

Clock = Callable[[], str]


def utc_now() -> str:
    return datetime.now(UTC).isoformat(timespec="microseconds").replace("+00:00", "Z")
