"""Order timestamps are ISO 8601 UTC with microseconds, and they agree with the standard library."""

from __future__ import annotations

import re
from datetime import UTC, datetime

from ordergate.service.clock import utc_now


def test_timestamp_is_iso_8601_utc_with_microseconds_and_close_to_now() -> None:
    stamp = utc_now()
    assert re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{6}Z", stamp)
    parsed = datetime.fromisoformat(stamp.replace("Z", "+00:00"))
    assert abs((datetime.now(UTC) - parsed).total_seconds()) < 1


def test_timestamps_never_go_backwards_across_many_calls() -> None:
    stamps = [utc_now() for _ in range(20_000)]
    assert stamps == sorted(stamps)
