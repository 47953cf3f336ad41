"""What feeds the event hub and the log's counters: this process's commits, or the shared log's tail.

The event stream and ``/v1/stats`` describe the whole log. With the embedded store this process
commits every order, in order_id order, so its commit listener is the log's feed
(:class:`CommitFeed`). With several processes on one PostgreSQL database each commits only some of
the orders, out of order_id order, so a :class:`LogTail` reads the log itself in stream order, below
the watermark no transaction can fall under (:meth:`~ordergate.store.base.Store.stream_page`), and
publishes what it finds: every process's hub and counters then show the cluster's orders, each once.
The tail reads again soon after this process commits, and at least every ``interval`` seconds.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Callable, Sequence
from typing import Protocol

from ordergate.domain.record import OrderRecord
from ordergate.errors import StoreUnavailable
from ordergate.service.events import EventHub, Row
from ordergate.store.base import MAX_PAGE, Store, StreamPosition

log = logging.getLogger(__name__)

LogListener = Callable[[Sequence[OrderRecord]], None]
"""Called with the log's newly committed orders, in stream order (the telemetry's counters)."""


class Feed(Protocol):
    """Feeds the hub and the log listeners; called as this process's commit listener too."""

    def __call__(self, records: Sequence[OrderRecord]) -> None: ...

    def start(self) -> None: ...

    async def stop(self) -> None: ...


FeedFactory = Callable[[Store, EventHub, Sequence[LogListener]], Feed]
"""How the composition root builds the feed that suits its store."""

TAIL_INTERVAL = 0.1
"""Seconds between two reads of the shared log's tail while nothing commits in this process."""
TAIL_RETRY = 1.0
"""Seconds before reading the tail again after the store could not be read."""


class CommitFeed:
    """The embedded store's feed: this process's commit listener (ids follow commit order there)."""

    def __init__(self, store: Store, hub: EventHub, listeners: Sequence[LogListener]) -> None:
        self._hub = hub
        self._listeners = listeners

    def __call__(self, records: Sequence[OrderRecord]) -> None:
        _tell(self._listeners, records)
        self._hub.publish([(StreamPosition(0, r.order_id), r) for r in records])

    def start(self) -> None:
        return None

    async def stop(self) -> None:
        return None


class LogTail:
    """The shared store's feed: the log read in stream order, from the hub's position onwards."""

    def __init__(
        self, store: Store, hub: EventHub, listeners: Sequence[LogListener], *, interval: float = TAIL_INTERVAL
    ) -> None:
        self._store = store
        self._hub = hub
        self._listeners = listeners
        self._interval = interval
        self._wake = asyncio.Event()
        self._task: asyncio.Task[None] | None = None

    def __call__(self, records: Sequence[OrderRecord]) -> None:
        """This process committed: its orders are in the log, soon below the watermark."""
        self._wake.set()

    def start(self) -> None:
        self._task = asyncio.get_running_loop().create_task(self._run(), name="log-tail")

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
            self._task = None

    async def _run(self) -> None:
        while not self._hub.is_closed:
            try:
                page = await self._store.stream_page(self._hub.position, MAX_PAGE)
            except StoreUnavailable as exc:
                log.warning("cannot read the order log's tail for events and stats: %s", exc)
                await asyncio.sleep(TAIL_RETRY)
                continue
            self.publish(page.rows, page.until)
            if page.more:
                continue
            self._wake.clear()
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._wake.wait(), self._interval)

    def publish(self, rows: Sequence[Row], until: StreamPosition) -> None:
        if rows:
            _tell(self._listeners, [record for _, record in rows])
        self._hub.publish(rows, until)


def _tell(listeners: Sequence[LogListener], records: Sequence[OrderRecord]) -> None:
    for listener in listeners:
        try:
            listener(records)
        except Exception:
            log.exception("a log listener failed")
