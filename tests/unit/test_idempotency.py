"""The idempotency window on its own, and the local sequencer over a store whose lookups read stale snapshots."""

from __future__ import annotations

import asyncio
from collections.abc import Sequence

import pytest

from ordergate.domain.book import Book
from ordergate.domain.model import Decision, Order, Scope, Side, Status
from ordergate.domain.record import OrderRecord
from ordergate.domain.registry import Registry
from ordergate.errors import ClientOrderIdConflict, StoreUnavailable
from ordergate.service.idempotency import IdempotencyWindow, outcome_after
from ordergate.service.sequencer import LocalSequencer
from ordergate.service.sequencing import Outcome, Ticket

pytestmark = pytest.mark.anyio

BUY = Order("S1", "ACC", Side.BUY)
SELL = Order("S1", "ACC", Side.SELL)


def record(order_id: int, order: Order, client_order_id: str) -> OrderRecord:
    decision = Decision(Status.REJECTED, None, (), ())
    return OrderRecord(order_id, "2026-12-01T00:00:00.000000Z", order, decision, Scope.ACCOUNT, "f", client_order_id)


async def test_an_id_committed_while_the_store_was_read_is_found_by_the_lookup_that_missed_it() -> None:
    window = IdempotencyWindow()
    ticket = Ticket(BUY, "x")
    window.hold(ticket)
    read_started = asyncio.Event()
    release = asyncio.Event()

    async def stale_lookup(_: str) -> OrderRecord | None:
        read_started.set()
        await release.wait()
        return None  # its snapshot was taken before the commit below

    looking = asyncio.create_task(window.find("x", stale_lookup))
    await read_started.wait()
    window.committed([ticket])  # the order commits while the store is being read
    release.set()
    assert await looking is ticket
    assert len(window) == 0  # and once no lookup from before its commit runs, it is forgotten


async def test_a_committed_id_stays_known_until_every_lookup_begun_before_its_commit_has_ended() -> None:
    window = IdempotencyWindow()
    first, second = asyncio.Event(), asyncio.Event()

    async def lookup_until(event: asyncio.Event) -> OrderRecord | None:
        await event.wait()
        return None

    early = asyncio.create_task(window.find("y", lambda _: lookup_until(first)))
    await asyncio.sleep(0)
    ticket = Ticket(BUY, "x")
    window.hold(ticket)
    window.committed([ticket])
    late = asyncio.create_task(window.find("z", lambda _: lookup_until(second)))
    await asyncio.sleep(0)
    second.set()
    assert await late is None
    assert window.get("x") is ticket  # the early lookup may not have seen the commit
    first.set()
    await early
    assert window.get("x") is None


async def test_releasing_a_failed_ticket_leaves_a_newer_ticket_of_the_same_id() -> None:
    window = IdempotencyWindow()
    old, new = Ticket(BUY, "x"), Ticket(BUY, "x")
    window.hold(old)
    window.hold(new)
    window.release(old)
    assert window.get("x") is new


async def test_another_order_under_a_pending_id_waits_and_is_refused_only_once_that_id_is_committed() -> None:
    pending = Ticket(BUY, "x")
    waiting = asyncio.create_task(outcome_after(pending, SELL))
    await asyncio.sleep(0)
    assert not waiting.done()  # no 409 while the id's order is not committed
    pending.future.set_result(Outcome(record(1, BUY, "x"), False))
    with pytest.raises(ClientOrderIdConflict, match="order 1"):
        await waiting


async def test_another_order_under_an_id_whose_commit_failed_is_free_to_use_it() -> None:
    pending = Ticket(BUY, "x")
    waiting = asyncio.create_task(outcome_after(pending, SELL))
    await asyncio.sleep(0)
    pending.future.set_exception(StoreUnavailable("disk full"))
    assert await waiting is None


async def test_the_same_order_under_a_pending_id_gets_its_decision_as_a_replay() -> None:
    pending = Ticket(BUY, "x")
    waiting = asyncio.create_task(outcome_after(pending, BUY))
    pending.future.set_result(Outcome(record(1, BUY, "x"), False))
    assert await waiting == Outcome(record(1, BUY, "x"), True)


class StaleStore:
    """Lookups read a snapshot taken when they begin; the second one waits until the first order committed."""

    def __init__(self) -> None:
        self.stored: dict[str, OrderRecord] = {}
        self.lookups = 0
        self.committed = asyncio.Event()

    async def find_client_order(self, client_order_id: str) -> OrderRecord | None:
        seen = self.stored.get(client_order_id)
        self.lookups += 1
        if self.lookups == 2:
            await self.committed.wait()
        await asyncio.sleep(0)
        return seen

    async def commit(self, records: Sequence[OrderRecord]) -> None:
        for r in records:
            assert r.client_order_id not in self.stored, f"{r.client_order_id} stored twice"
            if r.client_order_id is not None:
                self.stored[r.client_order_id] = r
        self.committed.set()


async def test_a_repeat_whose_lookup_missed_the_first_commit_is_a_replay_not_a_second_decision() -> None:
    store = StaleStore()
    registry = Registry.from_document({"Ann": {"S1": ["ACC"]}})
    sequencer = LocalSequencer(store, registry, Book(Scope.ACCOUNT), 0)  # type: ignore[arg-type]
    sequencer.start()
    first = asyncio.create_task(sequencer.submit(BUY, "x"))
    second = asyncio.create_task(sequencer.submit(BUY, "x"))
    one, two = await asyncio.gather(first, second)
    await sequencer.stop()
    assert (one.replayed, two.replayed) == (False, True)
    assert one.record == two.record
    assert len(store.stored) == 1
