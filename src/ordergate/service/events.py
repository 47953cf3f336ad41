"""The fan-out of committed orders to event-stream clients (``GET /v1/events``), with bounded buffers.

The hub is a commit listener of the sequencer: it only ever sees orders that are committed, in
order_id order. Publishing is synchronous and never waits for a client: each group is appended to
every subscriber's buffer as one shared :class:`Batch` (its wire form is encoded once, by the first
reader, and reused by the others). A subscriber whose buffer would exceed ``buffer_limit`` orders
is *dropped*: its buffer is freed at once and its reader learns it must resync (the HTTP layer
sends a ``resync`` event and ends the stream; the client resumes from the log with
``Last-Event-ID``). So a slow or stuck client costs a bounded amount of memory and never slows
order handling.
"""

from __future__ import annotations

import asyncio
from collections import deque
from collections.abc import Callable, Sequence

from ordergate.domain.record import OrderRecord

DEFAULT_BUFFER_LIMIT = 10_000
"""Orders a client may fall behind by before it is dropped with a resync event."""

Encoder = Callable[[Sequence[OrderRecord]], bytes]


class SubscriberDropped(Exception):
    """The subscriber fell more than the buffer limit behind; it must resync from the log."""


class HubClosed(Exception):
    """The gateway is shutting down; streams end so that the server can stop at once."""


class Batch:
    """One committed group, shared by every subscriber's buffer; encoded once, on first use."""

    __slots__ = ("_wire", "records")

    def __init__(self, records: Sequence[OrderRecord]) -> None:
        self.records = records
        self._wire: bytes | None = None

    @property
    def last_id(self) -> int:
        return self.records[-1].order_id

    def wire(self, encode: Encoder) -> bytes:
        """The group in wire form; every reader passes the same encoder, so the first result is kept."""
        if self._wire is None:
            self._wire = encode(self.records)
        return self._wire


class Subscriber:
    """One client's view of the hub: a bounded queue of committed groups."""

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
        size = len(batch.records)
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
        """The next group, or ``None`` if nothing came within ``timeout`` seconds (time for a heartbeat).

        Raises :class:`SubscriberDropped` once the subscriber was dropped, :class:`HubClosed` once
        the hub closed (after the groups already buffered have been read).
        """
        while True:
            if self.dropped:
                raise SubscriberDropped
            if self._batches:
                batch = self._batches.popleft()
                self._pending -= len(batch.records)
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
    def __init__(self, last_order_id: int = 0, buffer_limit: int = DEFAULT_BUFFER_LIMIT) -> None:
        if buffer_limit < 1:
            raise ValueError(f"buffer_limit must be at least 1 (got {buffer_limit})")
        self._subscribers: set[Subscriber] = set()
        self._buffer_limit = buffer_limit
        self._closed = False
        self.last_order_id = last_order_id
        """The last committed order the hub knows of (the log's end)."""
        self.dropped_total = 0
        """Subscribers dropped for falling behind, since start."""

    @property
    def clients(self) -> int:
        return len(self._subscribers)

    @property
    def is_closed(self) -> bool:
        return self._closed

    def subscribe(self) -> Subscriber:
        """A new subscriber that receives every group published from now on."""
        subscriber = Subscriber(self)
        if self._closed:
            subscriber._end()
        else:
            self._subscribers.add(subscriber)
        return subscriber

    def publish(self, records: Sequence[OrderRecord]) -> None:
        """The commit listener: hand a committed group to every subscriber, dropping those too far behind."""
        if not records:
            return
        self.last_order_id = records[-1].order_id
        if not self._subscribers:
            return
        batch = Batch(records)
        for subscriber in list(self._subscribers):
            if not subscriber._offer(batch, self._buffer_limit):
                self._subscribers.discard(subscriber)
                self.dropped_total += 1

    def close(self) -> None:
        """End every stream (server shutdown); new subscribers end at once. Idempotent."""
        self._closed = True
        for subscriber in self._subscribers:
            subscriber._end()
        self._subscribers.clear()

    def _remove(self, subscriber: Subscriber) -> None:
        self._subscribers.discard(subscriber)
