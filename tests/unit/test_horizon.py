"""The horizon read (:mod:`ordergate.store.horizon`): exactly the orders received since a time, found by a
binary search on order ids, never by scanning the log. Run on SQLite in memory here (the statement is
portable; ``tests/integration/test_postgres_risk_store.py`` runs it on PostgreSQL)."""

from __future__ import annotations

import sqlite3
from datetime import UTC, datetime, timedelta

from hypothesis import given, settings
from hypothesis import strategies as st

from ordergate.store.horizon import orders_since_sql, search_floor

START = datetime(2026, 12, 2, 3, 45, tzinfo=UTC)
STAMP = "%Y-%m-%dT%H:%M:%S.%fZ"


def stamp(moment: datetime) -> str:
    return moment.strftime(STAMP)


def log_of(steps: list[tuple[int, int, int]]) -> list[tuple[int, str]]:
    """Orders whose ids grow with gaps and whose times grow but go back by less than the slack (an hour)."""
    rows, order_id, clock = [], 0, START
    for gap, advance, back in steps:
        order_id += gap
        clock += timedelta(seconds=advance)
        rows.append((order_id, stamp(clock - timedelta(seconds=back))))
    return rows


def read_since(rows: list[tuple[int, str]], since: str) -> list[tuple[int, str]]:
    with sqlite3.connect(":memory:") as db:
        db.execute("CREATE TABLE orders (order_id INTEGER PRIMARY KEY, received_at TEXT NOT NULL)")
        db.executemany("INSERT INTO orders VALUES (?, ?)", rows)
        floor = search_floor(since)
        return db.execute(orders_since_sql("order_id, received_at", "?"), (floor, floor, since)).fetchall()


steps = st.lists(st.tuples(st.integers(1, 3), st.integers(0, 4000), st.integers(0, 3599)), max_size=60)


@settings(max_examples=300, deadline=None, derandomize=True)
@given(steps, st.integers(-100, 200_000))
def test_the_horizon_read_is_exactly_the_orders_received_since_the_time(
    steps: list[tuple[int, int, int]], offset: int
) -> None:
    rows = log_of(steps)
    since = stamp(START + timedelta(seconds=offset))
    assert read_since(rows, since) == [row for row in rows if row[1] >= since]


def test_the_horizon_read_finds_its_start_by_the_primary_key_not_by_scanning_the_log() -> None:
    with sqlite3.connect(":memory:") as db:
        db.execute("CREATE TABLE orders (order_id INTEGER PRIMARY KEY, received_at TEXT NOT NULL)")
        floor = search_floor(stamp(START))
        plan = db.execute(
            f"EXPLAIN QUERY PLAN {orders_since_sql('order_id, received_at', '?')}", (floor, floor, stamp(START))
        ).fetchall()
    details = [row[-1] for row in plan]
    assert not any(detail.startswith("SCAN orders") for detail in details), details
    assert any("SEARCH orders USING INTEGER PRIMARY KEY (rowid>?)" in detail for detail in details), details


def test_an_empty_log_and_a_time_after_every_order_read_nothing() -> None:
    assert read_since([], stamp(START)) == []
    assert read_since([(1, stamp(START))], stamp(START + timedelta(seconds=1))) == []
    assert read_since([(1, stamp(START))], stamp(START)) == [(1, stamp(START))]
