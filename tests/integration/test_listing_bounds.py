"""Every filter of the listings is served by an index, and no page walks further than its budget.

On both engines. The plans are read with EXPLAIN: no combination of filters of ``/v1/orders``,
``/v1/positions`` or ``/v1/trades`` scans the order log, the book or the trades. Paging a real log
with a tiny budget shows what a client sees: pages may come back short, even empty, with a ``next``
cursor, and following ``next`` until it is null gives exactly what the filter matches, in order.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import json
import re
from collections.abc import AsyncIterator, Callable, Iterator
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any, TypeVar

import psycopg
import pytest

from ordergate.bootstrap import sqlite_path
from ordergate.config import Settings
from ordergate.domain.model import Scope, Side, Status
from ordergate.domain.record import OrderRecord
from ordergate.store.base import BookQuery, OrderQuery, Page, Store
from ordergate.store.postgres import PostgresStore
from ordergate.store.postgres.store import ORDER_COLUMNS as PG_ORDER_COLUMNS
from ordergate.store.queries import POSTGRES, SQLITE, PagePlan, book_page, order_page
from ordergate.store.sqlite import SQLiteStore
from ordergate.store.sqlite.connection import ORDER_COLUMNS, connect, migrate
from ordergate.tools.produce import OrderDrawer
from tests.conftest import write_home
from tests.integration.conftest import running_gateway
from tests.postgres import fresh_database

pytestmark = pytest.mark.anyio

T = TypeVar("T")

PROFILES = {
    "Ann": {"S1": ["ACC", "INFY", "TCS"], "S2": ["SBIN"]},
    "Bob": {"S1": ["ACC", "INFY", "TCS"], "S3": ["ACC", "WIPRO"]},
    "Cid": {"S2": ["SBIN", "ACC"]},
    "Dee": {"S3": ["WIPRO", "ACC"]},
}
ORDER_FILTERS: dict[str, object] = {
    "strategy": "S1",
    "instrument": "ACC",
    "user": "Bob",
    "status": Status.REJECTED,
    "side": Side.SELL,
}
BOOK_FILTERS = {"user": "Bob", "strategy": "S3", "instrument": "ACC"}
TINY_BUDGET = 7


def combinations(filters: dict[str, T]) -> Iterator[dict[str, T]]:
    for n in range(len(filters) + 1):
        for names in itertools.combinations(filters, n):
            yield {name: filters[name] for name in names}


def every_order_plan(columns: str, dialect: Any, budget: int) -> Iterator[tuple[str, PagePlan]]:
    nope = {**ORDER_FILTERS, "instrument": "NOPE"}
    for filters in (*combinations(ORDER_FILTERS), *combinations(nope)):
        yield f"orders {sorted(filters)}", order_page(OrderQuery(after=3, **filters), columns, dialect, budget)  # type: ignore[arg-type]
    for table, key in (("positions", "position_id"), ("trades", "trade_id")):
        for filters in combinations(BOOK_FILTERS):
            yield (
                f"{table} {sorted(filters)}",
                book_page(table, key, BookQuery(after=3, **filters), "*", dialect, budget),
            )


# -- the plans ------------------------------------------------------------------------------------

FULL_SCAN = re.compile(r"^SCAN (orders|positions|trades)\b")
OPEN_ENDED_WALK = re.compile(r"^SEARCH (orders|positions|trades) USING INTEGER PRIMARY KEY \(rowid>\?\)$")


def statements(plan: PagePlan) -> Iterator[tuple[str, str, list[object]]]:
    """What a page runs: its probe, if it needs one, then the page (bounded by the probe's id)."""
    probe = plan.probe()
    if probe is None:
        yield "page", *plan.page(None)
    else:
        yield "probe", *probe
        yield "bounded page", *plan.page(2000)


def test_every_filter_of_every_listing_searches_an_index_on_sqlite(tmp_path: Path) -> None:
    conn = connect(tmp_path / "db.sqlite3", durability=Settings().durability)
    migrate(conn)
    checked = 0
    for name, plan in every_order_plan(ORDER_COLUMNS, SQLITE, 1000):
        for kind, sql, params in statements(plan):
            steps = [row[3] for row in conn.execute("EXPLAIN QUERY PLAN " + sql, params)]
            where = f"{name}, {kind}: {steps}\n{sql}"
            assert not [s for s in steps if FULL_SCAN.match(s)], f"a full scan: {where}"
            assert not [s for s in steps if "TEMP B-TREE" in s], f"a sort instead of an index walk: {where}"
            assert any(s.startswith("SEARCH") for s in steps), where
            if kind != "probe" and "[]" not in name:  # a filtered page walks its index, or a closed range
                assert not [s for s in steps if OPEN_ENDED_WALK.match(s)], f"a walk of the whole table: {where}"
            checked += 1
    assert checked > 100


def test_every_filter_of_every_listing_uses_an_index_on_postgresql() -> None:
    with fresh_database() as url:
        asyncio.run(_migrated(url))
        with psycopg.connect(url, autocommit=True) as conn:
            _fill_synthetic_log(conn)
            checked = 0
            for name, plan in every_order_plan(PG_ORDER_COLUMNS, POSTGRES, 1000):
                for kind, sql, params in statements(plan):
                    row = conn.execute("EXPLAIN (FORMAT JSON) " + sql, params).fetchone()
                    assert row is not None
                    document = row[0] if not isinstance(row[0], str) else json.loads(row[0])
                    for node in _plan_nodes(document[0]["Plan"]):
                        where = f"{name}, {kind}: {node['Node Type']} {node.get('Index Name', '')}\n{sql}"
                        relation = node.get("Relation Name")
                        assert node["Node Type"] != "Seq Scan" or relation not in ("orders", "positions", "trades"), (
                            f"a full scan: {where}"
                        )
                        if node["Node Type"] in ("Index Scan", "Index Only Scan", "Bitmap Index Scan"):
                            condition = node.get("Index Cond", "")
                            assert condition, f"a walk of a whole index: {where}"
                            if kind == "bounded page":
                                assert "<=" in condition, f"a walk past the probe's bound: {where}"
                    checked += 1
    assert checked > 100


async def _migrated(url: str) -> None:
    store = PostgresStore(url)
    await store.open(Scope.ACCOUNT)
    await store.close()


def _fill_synthetic_log(conn: psycopg.Connection[Any]) -> None:
    """A log big enough that PostgreSQL's planner weighs its choices as on a real one (then ANALYZE)."""
    conn.execute(
        "INSERT INTO orders (order_id, received_at, strategy, instrument, side, status, scope, profile_fingerprint,"
        " applied, rejected_for) SELECT g, 't', 'S' || (g % 3), 'I' || (g % 40),"
        " CASE WHEN g % 2 = 0 THEN 'BUY' ELSE 'SELL' END, CASE WHEN g % 3 = 0 THEN 'REJECTED' ELSE 'ACCEPTED' END,"
        " 'account', 'f', '[]', '[]' FROM generate_series(1, 60000) g"
    )
    conn.execute(
        "INSERT INTO trades (user_name, strategy, instrument, opened_order_id, opened_at, closed_order_id, closed_at,"
        " closing_strategy) SELECT 'U' || (g % 200), 'S' || (g % 3), 'I' || (g % 40), g, 't', g + 7, 't', 'S1'"
        " FROM generate_series(1, 60000) g"
    )
    conn.execute(
        "INSERT INTO positions (user_name, scope_strategy, instrument, strategy, opened_order_id, opened_at)"
        " SELECT 'U' || (g % 200), '', 'I' || (g / 200), 'S' || (g % 3), g, 't' FROM generate_series(1, 8000) g"
    )
    conn.execute("ANALYZE")


def _plan_nodes(node: dict[str, Any]) -> Iterator[dict[str, Any]]:
    yield node
    for child in node.get("Plans", ()):
        yield from _plan_nodes(child)


# -- paging a real log with a tiny budget ------------------------------------------------------------


@dataclass
class Log:
    """A log decided by a real gateway, and a store over it that may walk only ``TINY_BUDGET`` candidates."""

    store: Store
    orders: list[OrderRecord]


@pytest.fixture(params=["sqlite", "postgresql"])
async def log(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[Log]:
    home = write_home(tmp_path / "home", PROFILES)
    database = contextlib.nullcontext(None) if request.param == "sqlite" else fresh_database()
    with database as url:
        settings = {} if url is None else {"db": url}
        async with running_gateway(home, **settings) as (client, _):
            instruments = ["ACC", "INFY", "TCS", "SBIN", "WIPRO", "ZZZ"]
            drawer = OrderDrawer(dict.fromkeys(("S1", "S2", "S3"), instruments), seed=5)
            for _ in range(4):
                drawn = [drawer.draw() for _ in range(100)]
                orders = [{"strategy": o.strategy, "instrument": o.instrument, "side": o.side} for o in drawn]
                answer = await client.post("/v1/orders/batch", json={"orders": orders})
                assert answer.status_code == 200
        store: Store = (
            SQLiteStore(sqlite_path(Settings(home=home)), read_budget=TINY_BUDGET)
            if url is None
            else PostgresStore(url, read_budget=TINY_BUDGET)
        )
        await store.open(Scope.ACCOUNT)
        try:
            everything = await _all(lambda after: store.list_orders(OrderQuery(after=after, limit=1000)))
            yield Log(store, [record for record, _ in everything])
        finally:
            await store.close()


async def _all(fetch: Callable[[int], Any], limit: int | None = None) -> list[tuple[Any, Page[Any]]]:
    """Every item of a listing, following ``next`` from 0 until it is null; with the page each came in."""
    items: list[tuple[Any, Page[Any]]] = []
    after, pages = 0, 0
    while True:
        page: Page[Any] = await fetch(after)
        pages += 1
        assert pages < 10_000
        if limit is not None:
            assert len(page.items) <= limit
        items += [(item, page) for item in page.items]
        if page.next is None:
            return items
        assert page.next > after, "the cursor must move forward"
        after = page.next


async def test_paging_with_a_tiny_budget_finds_exactly_what_each_order_filter_matches(log: Log) -> None:
    assert len(log.orders) == 400
    short_pages = 0
    for filters in combinations(ORDER_FILTERS):
        query = OrderQuery(limit=3, **filters)  # type: ignore[arg-type]
        found = await _all(lambda after, q=query: log.store.list_orders(replace(q, after=after)), limit=3)  # type: ignore[misc]
        expected = [r for r in log.orders if order_matches(r, filters)]
        assert [r.order_id for r, _ in found] == [r.order_id for r in expected], filters
        pages = {id(page): page for _, page in found}.values()
        short_pages += sum(1 for page in pages if len(page.items) < 3 and page.next is not None)
    assert short_pages > 0, "the budget never ran out: the test proves nothing"


async def test_a_filter_that_matches_nothing_answers_empty_pages_that_lead_to_the_end(log: Log) -> None:
    after, pages = 0, 0
    while True:
        page = await log.store.list_orders(OrderQuery(strategy="S1", instrument="NOPE", after=after, limit=100))
        pages += 1
        assert page.items == []
        if page.next is None:
            break
        after = page.next
    assert pages == 1, "one index walk finds that NOPE has no orders at all"
    nobody = await log.store.list_orders(OrderQuery(user="Nobody", status=Status.ACCEPTED, limit=5))
    assert nobody == Page([], None)
    last = 2**63 - 1  # the largest cursor the API takes: the bound after it stays a 64-bit id
    assert await log.store.list_orders(OrderQuery(status=Status.REJECTED, after=last)) == Page([], None)


async def test_paging_with_a_tiny_budget_finds_exactly_what_each_book_filter_matches(log: Log) -> None:
    positions = [p for p, _ in await _all(lambda after: log.store.list_positions(BookQuery(after=after, limit=1000)))]
    trades = [t for t, _ in await _all(lambda after: log.store.list_trades(BookQuery(after=after, limit=1000)))]
    assert positions
    assert len(trades) > 20
    for filters in combinations(BOOK_FILTERS):
        query = BookQuery(limit=2, **filters)
        found_positions = await _all(lambda a, q=query: log.store.list_positions(replace(q, after=a)), limit=2)  # type: ignore[misc]
        assert [p for p, _ in found_positions] == [p for p in positions if _book_matches(p, filters)], filters
        found_trades = await _all(lambda a, q=query: log.store.list_trades(replace(q, after=a)), limit=2)  # type: ignore[misc]
        assert [t for t, _ in found_trades] == [t for t in trades if _book_matches(t, filters)], filters


def order_matches(record: OrderRecord, filters: dict[str, object]) -> bool:
    o, d = record.order, record.decision
    return all(
        (name != "strategy" or o.strategy == value)
        and (name != "instrument" or o.instrument == value)
        and (name != "status" or d.status == value)
        and (name != "side" or o.side == value)
        and (name != "user" or any(e.user == value for e in d.applied))
        for name, value in filters.items()
    )


def _book_matches(item: Any, filters: dict[str, str]) -> bool:
    return all(getattr(item, name) == value for name, value in filters.items())


async def test_big_pages_encoded_off_the_event_loop_answer_like_small_ones(seed_home: Path) -> None:
    async with running_gateway(seed_home) as (client, _):
        sides = ["BUY", "SELL"] * 60
        orders = [{"strategy": "STRATEGY_B", "instrument": "MINDA", "side": side} for side in sides]
        assert (await client.post("/v1/orders/batch", json={"orders": orders})).status_code == 200
        big = (await client.get("/v1/orders", params={"limit": 100})).json()
        small = [(await client.get("/v1/orders", params={"limit": 10, "after": a})).json() for a in range(0, 100, 10)]
        assert big["next"] == 100
        assert big["items"] == [item for page in small for item in page["items"]]
        trades = (await client.get("/v1/trades", params={"limit": 1000, "user": "Holland Proctor"})).json()
        assert (len(trades["items"]), trades["next"]) == (60, None)
