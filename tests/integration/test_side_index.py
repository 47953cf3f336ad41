"""SQLite's side index of orders and trades by their filters, and the tail a listing reads after it.

The store fills ``order_strategies``, ``order_instruments`` and the trades' ``trade_users``,
``trade_strategies`` and ``trade_instruments`` in bulk every
:data:`~ordergate.store.sqlite.store.INDEX_EVERY` orders (and when it opens); a listing by those filters
walks the side index up to its last id and reads the rows after it by primary key. Whatever the
tail holds, and with a budget far smaller than it, paging finds exactly the orders and trades each filter
matches, in order, as the same store answers once the tail is indexed.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import sqlite3
from collections.abc import Iterator
from dataclasses import replace
from pathlib import Path

import pytest

from ordergate.domain.book import Position
from ordergate.domain.model import Action, Decision, Effect, Order, Reason, Scope, Side, Status
from ordergate.domain.record import OrderRecord, Trade
from ordergate.store.base import OrderQuery, TradeQuery
from ordergate.store.sqlite import SQLiteStore
from ordergate.store.sqlite.store import INDEX_EVERY
from tests.integration.test_listing_bounds import order_matches

pytestmark = pytest.mark.anyio

STRATEGIES = ("S1", "S2", "S3")
INSTRUMENTS = ("ACC", "INFY", "TCS", "SBIN", "WIPRO")
FILTERS: dict[str, object] = {
    "strategy": "S2",
    "instrument": "TCS",
    "status": Status.ACCEPTED,
    "side": Side.BUY,
    "user": "U3",
}
TINY_BUDGET = 7


def records(count: int) -> Iterator[OrderRecord]:
    """Orders over every strategy and instrument. Every third one opens a position (on an instrument of its
    own, so that no two open the same one), and every sixth one closes the position opened just before."""
    opened: dict[int, Position] = {}
    for order_id in range(1, count + 1):
        strategy = STRATEGIES[order_id % len(STRATEGIES)]
        instrument = INSTRUMENTS[(order_id // 2) % len(INSTRUMENTS)]
        at = f"2026-01-01T00:00:00.{order_id:06d}Z"
        if order_id % 3 == 0:
            user = f"U{order_id % 7}"
            position = Position(user, strategy, f"{instrument}{order_id}", order_id, at)
            opened[order_id] = position
            decision = Decision(Status.ACCEPTED, None, (Effect(user, Action.OPENED, strategy),), ())
            order = Order(strategy, position.instrument, Side.BUY)
            yield OrderRecord(order_id, at, order, decision, Scope.ACCOUNT, "f", None, opened=(position,))
        elif order_id % 6 == 1 and order_id - 1 in opened:
            position = opened.pop(order_id - 1)
            decision = Decision(Status.ACCEPTED, None, (Effect(position.user, Action.CLOSED, position.strategy),), ())
            order = Order(strategy, position.instrument, Side.SELL)
            yield OrderRecord(order_id, at, order, decision, Scope.ACCOUNT, "f", None, closed=(position,))
        else:
            decision = Decision(Status.REJECTED, Reason.INSTRUMENT_NOT_TRADED, (), ())
            side = Side.BUY if order_id % 2 else Side.SELL
            yield OrderRecord(order_id, at, Order(strategy, instrument, side), decision, Scope.ACCOUNT, "f", None)


def every_filter() -> Iterator[dict[str, object]]:
    for n in range(len(FILTERS) + 1):
        for names in itertools.combinations(FILTERS, n):
            yield {name: FILTERS[name] for name in names}


async def paged(store: SQLiteStore, query: OrderQuery) -> list[int]:
    found: list[int] = []
    after = 0
    while True:
        page = await store.list_orders(replace(query, after=after))
        assert len(page.items) <= query.limit
        found += [record.order_id for record in page.items]
        if page.next is None:
            return found
        assert page.next > after
        after = page.next


def indexed_up_to(path: Path, key: str = "order_id") -> int | None:
    with contextlib.closing(sqlite3.connect(path)) as conn:
        row = conn.execute("SELECT value FROM meta WHERE key = ?", (f"indexed_{key}",)).fetchone()
    return None if row is None else int(row[0])


async def caught_up(path: Path) -> None:
    """Wait for the writer process to run the side index's catch-up the store left it (once no group waits)."""
    for _ in range(500):
        if indexed_up_to(path) and indexed_up_to(path, "trade_id"):
            return
        await asyncio.sleep(0.01)
    raise AssertionError("the writer never caught the side index up")


async def check_every_filter(store: SQLiteStore, log: list[OrderRecord]) -> None:
    for filters in every_filter():
        query = OrderQuery(limit=3, **filters)  # type: ignore[arg-type]
        expected = [r.order_id for r in log if order_matches(r, filters)]
        assert await paged(store, query) == expected, filters
    trades = await every_trade(store, TradeQuery(limit=1000))  # no filter: the primary key alone
    assert len(trades) == sum(len(r.closed) for r in log)
    book = {"user": "U3", "strategy": "S1", "instrument": trades[-1].instrument}
    for n in range(len(book) + 1):
        for names in itertools.combinations(book, n):
            filters = {name: book[name] for name in names}
            found = await every_trade(store, TradeQuery(limit=2, **filters))
            assert found == [t for t in trades if all(getattr(t, k) == v for k, v in filters.items())], filters


async def every_trade(store: SQLiteStore, query: TradeQuery) -> list[Trade]:
    found: list[Trade] = []
    after = 0
    while True:
        page = await store.list_trades(replace(query, after=after))
        assert len(page.items) <= query.limit
        found += page.items
        if page.next is None:
            return found
        assert page.next > after
        after = page.next


async def test_listings_find_every_order_in_the_side_index_and_in_the_tail_after_it(tmp_path: Path) -> None:
    path = tmp_path / "db.sqlite3"
    log = list(records(INDEX_EVERY + 60))
    store = SQLiteStore(path, read_budget=TINY_BUDGET)
    await store.open(Scope.ACCOUNT)
    try:
        for start in range(0, len(log), 10):
            await store.commit(log[start : start + 10])
            if start + 10 >= INDEX_EVERY and not indexed_up_to(path):
                await caught_up(path)  # the writer's catch-up, between groups: the rest is the tail
        indexed = indexed_up_to(path)
        assert indexed is not None
        assert indexed > 0, "the store indexes the log while it grows"
        assert len(log) - indexed > TINY_BUDGET, "the log must end in a tail longer than the budget"
        trades_indexed = indexed_up_to(path, "trade_id")
        assert trades_indexed is not None
        assert sum(len(r.closed) for r in log) - trades_indexed > TINY_BUDGET, "so must the trades"
        await check_every_filter(store, log)
    finally:
        await store.close()

    again = SQLiteStore(path, read_budget=TINY_BUDGET)  # opening catches the side index up: no tail
    await again.open(Scope.ACCOUNT)
    try:
        assert indexed_up_to(path) == len(log)
        await check_every_filter(again, log)
    finally:
        await again.close()


async def test_a_lost_side_index_mark_reads_the_whole_log_as_its_tail_and_opening_makes_it_again(
    tmp_path: Path,
) -> None:
    path = tmp_path / "db.sqlite3"
    log = list(records(40))
    store = SQLiteStore(path, read_budget=TINY_BUDGET)
    await store.open(Scope.ACCOUNT)
    try:
        await store.commit(log[:30])
        with contextlib.closing(sqlite3.connect(path)) as conn, conn:  # altered beside the running store
            conn.execute("DELETE FROM meta WHERE key = 'indexed_order_id'")
        await check_every_filter(store, log[:30])
    finally:
        await store.close()
    store = SQLiteStore(path, read_budget=TINY_BUDGET)
    await store.open(Scope.ACCOUNT)
    try:
        assert indexed_up_to(path) == 30
        await store.commit(log[30:])
        await check_every_filter(store, log)
    finally:
        await store.close()
