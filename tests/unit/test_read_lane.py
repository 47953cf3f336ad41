"""A read lane closed under its callers: queued reads end with LaneClosed, never as a cancellation."""

from __future__ import annotations

import asyncio
import sqlite3
import threading

import pytest

from ordergate.store.sqlite.lanes import LaneClosed, ReadLane

pytestmark = pytest.mark.anyio


async def test_a_read_still_queued_when_the_lane_closes_is_refused_not_cancelled() -> None:
    lane = ReadLane("test-lane", 1, lambda: sqlite3.connect(":memory:", check_same_thread=False))
    running = threading.Event()
    release = threading.Event()

    def hold(conn: sqlite3.Connection) -> int:
        running.set()
        release.wait(5)
        return 1

    first = asyncio.ensure_future(lane.run(hold))
    queued = asyncio.ensure_future(lane.run(lambda conn: 2))  # waits for the lane's one thread
    await asyncio.to_thread(running.wait, 5)
    closing = asyncio.get_running_loop().run_in_executor(None, lane.close)
    await asyncio.sleep(0.05)
    release.set()
    await closing
    assert await first == 1
    with pytest.raises(LaneClosed):
        await queued
