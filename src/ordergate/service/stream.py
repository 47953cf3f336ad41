"""One event-stream client's view of the log: everything committed after its token, exactly once.

:func:`follow` is the whole protocol of ``GET /v1/events`` below HTTP (the route only parses the
token and writes frames). From a :class:`~ordergate.store.base.StreamPosition` it reads the log's
committed orders from the store, a page at a time, up to the store's watermark; then subscribes to
the hub and reads the store once more (what committed while it subscribed); then follows the hub's
batches, skipping what it already sent. Both sources deliver the same stream in the same order, and
the hub's batches have no gap after the position a subscriber joined at (which the store had reached
before), so the merge is "skip what is at or below the cursor": every order after the token, once,
whichever process served the token and whichever serves the stream now.

A token past the store's watermark (another store's, or from before the store was replaced) gets a
``resync`` at once; a client that falls too far behind gets one when it is dropped; a client whose key
stops being admitted (revoked) is told so within ``check_every`` seconds and the stream ends. A store
that cannot be read raises :class:`~ordergate.errors.StoreUnavailable`: the client resumes later.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Callable, Sequence
from dataclasses import dataclass

from ordergate.service.events import Batch, EventHub, HubClosed, Row, SubscriberDropped
from ordergate.store.base import MAX_PAGE, Store, StreamPosition


@dataclass(frozen=True, slots=True)
class Orders:
    """Orders to send, in stream order; ``batch`` is the hub's shared batch when they are all of it."""

    rows: Sequence[Row]
    batch: Batch | None = None


@dataclass(frozen=True, slots=True)
class Resync:
    """The client must reload: ``ahead_of_log`` (its token is not of this log) or ``slow_client``."""

    reason: str
    position: StreamPosition


@dataclass(frozen=True, slots=True)
class Quiet:
    """Nothing for ``heartbeat`` seconds: time for a keep-alive."""


@dataclass(frozen=True, slots=True)
class Revoked:
    """The client's key is not admitted any more; the stream ends."""


Item = Orders | Resync | Quiet | Revoked


async def follow(
    store: Store,
    hub: EventHub,
    start: StreamPosition,
    *,
    heartbeat: float,
    admitted: Callable[[], bool] | None = None,
    check_every: float = 0.25,
) -> AsyncIterator[Item]:
    cursor = start
    head = await store.stream_head()
    if cursor > head:
        yield Resync("ahead_of_log", head)
        cursor = head
    async for rows, until in _from_store(store, hub, cursor):  # the bulk of a catch-up, unbuffered
        if admitted is not None and not admitted():
            yield Revoked()
            return
        if rows:
            yield Orders(rows)
        cursor = until
    subscriber = hub.subscribe()
    try:
        async for rows, until in _from_store(store, hub, cursor):  # what committed while it subscribed
            if rows:
                yield Orders(rows)
            cursor = until
        loop = asyncio.get_running_loop()
        quiet_since = loop.time()
        wait = min(heartbeat, check_every) if admitted is not None else heartbeat
        while True:
            batch = await subscriber.next(wait)
            if admitted is not None and not admitted():
                yield Revoked()
                return
            if batch is None:
                if loop.time() - quiet_since >= heartbeat:
                    yield Quiet()
                    quiet_since = loop.time()
                continue
            if batch.until <= cursor:
                continue
            if batch.rows and batch.rows[0][0] > cursor:
                yield Orders(batch.rows, batch)
            else:
                fresh = [row for row in batch.rows if row[0] > cursor]
                if fresh:
                    yield Orders(fresh)
            cursor = batch.until
            quiet_since = loop.time()
    except SubscriberDropped:
        yield Resync("slow_client", cursor)
    except HubClosed:
        return
    finally:
        subscriber.close()


async def _from_store(
    store: Store, hub: EventHub, after: StreamPosition
) -> AsyncIterator[tuple[Sequence[Row], StreamPosition]]:
    """Committed orders after ``after`` from the store, a page at a time, up to its watermark, with
    the position each page is complete up to."""
    while not hub.is_closed:
        page = await store.stream_page(after, MAX_PAGE)
        if _stopped(hub):  # the gateway stopped while the store was read
            return
        yield page.rows, page.until
        after = page.until
        if not page.more:
            return


def _stopped(hub: EventHub) -> bool:
    """Whether the hub is closed now (a call, so that a type checker does not assume it unchanged)."""
    return hub.is_closed
