"""An asyncio event loop on virtual time, with no I/O: the simulation's scheduler.

The real sequencers run on it unchanged. Time only moves when every task is waiting: the loop's
selector, asked to wait ``timeout`` seconds for I/O that can never come, advances the virtual clock
by exactly that much and returns at once. So a run is a pure function of the seed that drew the
delays and faults: asyncio runs ready callbacks in FIFO order, and nothing here depends on the wall
clock, threads or the network. A loop with nothing ready and nothing scheduled is a deadlock: every
task waits for something that will never happen, which the simulation reports as a failure.
"""

from __future__ import annotations

import asyncio
import contextlib
import math
import selectors
from collections.abc import Coroutine
from typing import Any, TypeVar

T = TypeVar("T")


class Deadlock(RuntimeError):
    """Every task waits and no timer is scheduled: nothing can ever happen again."""


class _Timeless(selectors.BaseSelector):
    def __init__(self, loop: VirtualTimeLoop) -> None:
        self._loop = loop
        self._keys: dict[Any, selectors.SelectorKey] = {}

    def register(self, fileobj: Any, events: int, data: Any = None) -> selectors.SelectorKey:
        key = selectors.SelectorKey(fileobj, 0, events, data)
        self._keys[fileobj] = key
        return key

    def unregister(self, fileobj: Any) -> selectors.SelectorKey:
        return self._keys.pop(fileobj)

    def select(self, timeout: float | None = None) -> list[tuple[selectors.SelectorKey, int]]:
        if timeout is None:
            raise Deadlock("every task is waiting and no timer is scheduled")
        self._loop.advance(timeout)
        return []

    def get_map(self) -> Any:
        return self._keys

    def close(self) -> None:
        self._keys.clear()


class VirtualTimeLoop(asyncio.SelectorEventLoop):
    def __init__(self) -> None:
        self._now = 0.0
        super().__init__(_Timeless(self))

    def time(self) -> float:
        return self._now

    def advance(self, seconds: float) -> None:
        """Move the clock; a wait of any positive length moves it by at least one step of the float,
        or a timer due a rounding error away would be waited for forever."""
        if seconds > 0:
            self._now = max(self._now + seconds, math.nextafter(self._now, math.inf))


def run(main: Coroutine[Any, Any, T]) -> T:
    """Run ``main`` to completion on a fresh virtual-time loop."""
    loop = VirtualTimeLoop()
    try:
        asyncio.set_event_loop(loop)
        return loop.run_until_complete(main)
    finally:
        left = asyncio.all_tasks(loop)  # what a crashed process or a failed run left behind
        for task in left:
            task.cancel()
        if left:
            with contextlib.suppress(Deadlock):  # a run that failed may leave tasks that wait forever
                loop.run_until_complete(asyncio.gather(*left, return_exceptions=True))
        asyncio.set_event_loop(None)
        loop.close()
