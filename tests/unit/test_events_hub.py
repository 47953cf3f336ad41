"""The event hub: committed groups fan out in order, a lagging subscriber is dropped, never waited for."""

from __future__ import annotations

import asyncio
import inspect
from collections.abc import Sequence

import pytest

from ordergate.domain.model import Decision, Order, Reason, Scope, Side, Status
from ordergate.domain.record import OrderRecord
from ordergate.service.events import EventHub, HubClosed, SubscriberDropped
from ordergate.store.base import StreamPosition

pytestmark = pytest.mark.anyio


def records(first: int, count: int) -> list[tuple[StreamPosition, OrderRecord]]:
    return [
        (
            StreamPosition(0, order_id),
            OrderRecord(
                order_id=order_id,
                received_at="2026-01-02T03:04:05.000001Z",
                order=Order("S1", "ACC", Side.SELL),
                decision=Decision(Status.REJECTED, Reason.NO_OPEN_POSITION, (), ()),
                scope=Scope.ACCOUNT,
                profile_fingerprint="f",
                client_order_id=None,
            ),
        )
        for order_id in range(first, first + count)
    ]


def ids(batch: Sequence[tuple[StreamPosition, OrderRecord]]) -> list[int]:
    return [r.order_id for _, r in batch]


async def test_subscribers_get_every_group_published_after_they_joined_in_order() -> None:
    hub = EventHub(StreamPosition(0, 3))
    hub.publish(records(4, 2))  # before anyone listens: only moves the end of the log
    early, late = hub.subscribe(), None
    hub.publish(records(6, 3))
    late = hub.subscribe()
    hub.publish(records(9, 1))
    first, second = await early.next(1), await early.next(1)
    only = await late.next(1)
    assert first is not None
    assert second is not None
    assert only is not None
    assert (ids(first.rows), ids(second.rows), ids(only.rows)) == ([6, 7, 8], [9], [9])
    assert only is second, "one shared batch per group, whatever the number of subscribers"
    assert hub.position == StreamPosition(0, 9)
    assert await late.next(0.01) is None  # nothing more: time for a heartbeat


async def test_a_batch_is_encoded_once_for_all_subscribers() -> None:
    hub = EventHub()
    subscribers = [hub.subscribe() for _ in range(5)]
    hub.publish(records(1, 3))
    calls: list[int] = []

    def encode(group: Sequence[tuple[StreamPosition, OrderRecord]]) -> bytes:
        calls.append(len(group))
        return b"x"

    for subscriber in subscribers:
        batch = await subscriber.next(1)
        assert batch is not None
        assert batch.wire(encode) == b"x"
    assert calls == [3]


async def test_a_subscriber_past_its_buffer_limit_is_dropped_and_its_buffer_freed() -> None:
    hub = EventHub(buffer_limit=10)
    slow, fast = hub.subscribe(), hub.subscribe()
    for first in range(1, 13, 4):  # 12 orders in groups of 4, the fast one keeps up
        hub.publish(records(first, 4))
        assert await fast.next(1) is not None
    assert (slow.dropped, slow.pending, hub.clients, hub.dropped_total) == (True, 0, 1, 1)
    with pytest.raises(SubscriberDropped):
        await slow.next(1)
    hub.publish(records(13, 1))
    assert not fast.dropped
    assert (await fast.next(1)) is not None


async def test_publishing_never_waits_even_for_a_subscriber_that_never_reads() -> None:
    assert not inspect.iscoroutinefunction(EventHub.publish)  # a plain call: it cannot wait for a reader
    hub = EventHub(buffer_limit=100)
    hub.subscribe()
    for first in range(1, 100_001, 1000):
        hub.publish(records(first, 1000))
    assert hub.clients == 0  # the reader that never read was dropped, not waited for or buffered without end


async def test_closing_the_hub_ends_readers_after_what_they_already_have() -> None:
    hub = EventHub()
    subscriber = hub.subscribe()
    hub.publish(records(1, 2))
    hub.close()
    batch = await subscriber.next(1)
    assert batch is not None
    assert ids(batch.rows) == [1, 2]
    with pytest.raises(HubClosed):
        await subscriber.next(1)
    with pytest.raises(HubClosed):
        await hub.subscribe().next(1)


async def test_a_waiting_reader_wakes_as_soon_as_a_group_arrives() -> None:
    hub = EventHub()
    subscriber = hub.subscribe()
    waiting = asyncio.create_task(subscriber.next(5))
    await asyncio.sleep(0)
    hub.publish(records(1, 1))
    batch = await asyncio.wait_for(waiting, 1)
    assert batch is not None
    assert ids(batch.rows) == [1]
    subscriber.close()
    assert hub.clients == 0
