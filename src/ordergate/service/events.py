"""The fan-out of the log's committed orders to event-stream clients (``GET /v1/events``), bounded.

The hub is fed, in stream order (:class:`~ordergate.store.base.StreamPosition`), with every order
the log commits: by this process's commit listener on the embedded store, by a tail of the shared
log on PostgreSQL, so that the stream is the whole cluster's (:mod:`ordergate.service.feeds`). Each
batch covers the stream from the hub's position before it to its own end, with no gap: a subscriber
that joins at the hub's position receives every order after it. Publishing is synchronous and never
waits for a client: a batch is appended to every subscriber's buffer as one shared :class:`Batch`
(its wire form is encoded once, by the first reader, and reused by the others). A subscriber whose
buffer would exceed ``buffer_limit`` orders is *dropped*: its buffer is freed at once and its reader
learns it must resync (the stream sends a ``resync`` event and ends; the client resumes from the log
with its token). So a slow or stuck client costs a bounded amount of memory and never slows order
handling. The hub also counts open streams, so that the HTTP layer can refuse clients past a cap.
"""

from __future__ import annotations

import asyncio
from collections import deque
from collections.abc import Callable, Sequence

from ordergate.domain.record import OrderRecord
from ordergate.store.base import START, StreamPosition

DEFAULT_BUFFER_LIMIT = 10_000
"""Orders a client may fall behind by before it is dropped with a resync event."""

Row = tuple[StreamPosition, OrderRecord]
Encoder = Callable[[Sequence[Row]], bytes]


class SubscriberDropped(Exception):
    """The subscriber fell more than the buffer limit behind; it must resync from the log."""


class HubClosed(Exception):
    """The gateway is shutting down; streams end so that the server can stop at once."""


class Batch:
    """Committed orders in stream order, shared by every subscriber's buffer; encoded once, on first use."""

    __slots__ = ("_wire", "rows", "until")

    def __init__(self, rows: Sequence[Row], until: StreamPosition) -> None:
        self.rows = rows
        self.until = until
        """The stream is complete up to here with this batch (at least its last row's position)."""
        self._wire: bytes | None = None

    def wire(self, encode: Encoder) -> bytes:
        """The batch in wire form; every reader passes the same encoder, so the first result is kept."""
        if self._wire is None:
            self._wire = encode(self.rows)
        return self._wire


class Subscriber:
    """One client's view of the hub: a bounded queue of batches."""

    def __init__(self, hub: EventHub) -> None:
        self._hub = hub
        self._batches: deque[Batch] = deque()
        self._pending = 0
        self._wake = asyncio.Event()
        self.dropped = False
        self.closed = False

    @property
    def pending(self) -> int:
        """Orders buffered and not read yet."""
        return self._pending

    def _offer(self, batch: Batch, limit: int) -> bool:
        """Buffer ``batch``; return False (and drop the buffer) if that would exceed ``limit`` orders."""
        size = len(batch.rows)
        if self._pending + size > limit:
            self._batches.clear()
            self._pending = 0
            self.dropped = True
            self._wake.set()
            return False
        self._batches.append(batch)
        self._pending += size
        self._wake.set()
        return True

    def _end(self) -> None:
        self.closed = True
        self._wake.set()

    async def next(self, timeout: float) -> Batch | None:
        """The next batch, or ``None`` if nothing came within ``timeout`` seconds.

        Raises :class:`SubscriberDropped` once the subscriber was dropped, :class:`HubClosed` once
        the hub closed (after the batches already buffered have been read).
        """
        while True:
            if self.dropped:
                raise SubscriberDropped
            if self._batches:
                batch = self._batches.popleft()
                self._pending -= len(batch.rows)
                return batch
            if self.closed:
                raise HubClosed
            self._wake.clear()
            try:
                await asyncio.wait_for(self._wake.wait(), timeout)
            except TimeoutError:
                return None

    def close(self) -> None:
        """Leave the hub (the client went away); idempotent."""
        self._hub._remove(self)
        self._end()


class EventHub:
    def __init__(self, position: StreamPosition = START, buffer_limit: int = DEFAULT_BUFFER_LIMIT) -> None:
        if buffer_limit < 1:
            raise ValueError(f"buffer_limit must be at least 1 (got {buffer_limit})")
        self._subscribers: dict[Subscriber, None] = {}  # a set in joining order: deliveries replay exactly
        self._buffer_limit = buffer_limit
        self._closed = False
        self.position = position
        """Every order at or below this stream position has been published."""
        self.dropped_total = 0
        """Subscribers dropped for falling behind, since start."""
        self.streams = 0
        """Event streams open now (catching up from the log or following the hub)."""

    @property
    def clients(self) -> int:
        return len(self._subscribers)

    @property
    def is_closed(self) -> bool:
        return self._closed

    def subscribe(self) -> Subscriber:
        """A new subscriber that receives every order after :attr:`position` (as of now)."""
        subscriber = Subscriber(self)
        if self._closed:
            subscriber._end()
        else:
            self._subscribers[subscriber] = None
        return subscriber

    def publish(self, rows: Sequence[Row], until: StreamPosition | None = None) -> None:
        """Hand the orders after :attr:`position` up to ``until`` (default: the last row) to every subscriber.

        Called by the feed with consecutive stretches of the stream, dropping subscribers too far behind.
        """
        end = until if until is not None else rows[-1][0] if rows else self.position
        if end <= self.position and not rows:
            return
        self.position = max(self.position, end)
        if not rows or not self._subscribers:
            return
        batch = Batch(rows, self.position)
        for subscriber in list(self._subscribers):
            if not subscriber._offer(batch, self._buffer_limit):
                self._subscribers.pop(subscriber, None)
                self.dropped_total += 1

    def close(self) -> None:
        """End every stream (server shutdown); new subscribers end at once. Idempotent."""
        self._closed = True
        for subscriber in self._subscribers:
            subscriber._end()
        self._subscribers.clear()

    def _remove(self, subscriber: Subscriber) -> None:
        self._subscribers.pop(subscriber, None)
