"""A group's SQLite statements store the same rows whether an order's rows go as runs (users as one JSON
array unpacked by ``json_each``) or as multi-row ``VALUES``: the same orders, positions and trades, with
the same ids, in a real SQLite file with the real schema; and the side index's catch-up then finds every
user each order applied to (``order_users``), from the stored ``applied`` column alone."""

from __future__ import annotations

import itertools
import sqlite3
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from ordergate.domain.book import Book
from ordergate.domain.chain import Chains, single_chain
from ordergate.domain.model import Order, Scope, Side
from ordergate.domain.record import OrderRecord, decided_record
from ordergate.domain.registry import Registry
from ordergate.domain.rules import decide_and_apply
from ordergate.store.base import Durability
from ordergate.store.codec import encode_and_link
from ordergate.store.sqlite import statements as statements_module
from ordergate.store.sqlite.connection import connect, migrate
from ordergate.store.sqlite.schema import CATCH_UP
from ordergate.store.sqlite.statements import group_statements
from ordergate.store.sqlite.writer_process import run_transaction

USERS = ["Ann", 'Bob "the" Builder', "C\\id", "Dörte", "Émile 🚀", "Fay"]
"""Names that JSON must escape or that are not ASCII, beside plain ones."""
STRATEGIES = ["S1", "S2"]
INSTRUMENTS = ["ACC", "L&T"]
TABLES = ("orders", "order_users", "positions", "trades")


def decided(
    scope: Scope, profiles: dict[str, dict[str, list[str]]], orders: list[tuple[str, str, Side]]
) -> list[OrderRecord]:
    registry, book = Registry.from_document(profiles), Book(scope)
    records: list[OrderRecord] = []
    for order_id, (strategy, instrument, side) in enumerate(orders, start=1):
        order = Order(strategy, instrument, side)
        at = f"2026-12-06T00:00:{order_id:02d}.000000Z"
        decision, undo = decide_and_apply(order, registry, book, None, order_id, at)
        records.append(decided_record(order_id, at, order, decision, scope, registry.fingerprint, None, undo, None))
    return records


def stored(path: Path, scope: Scope, groups: Sequence[Sequence[OrderRecord]], run_rows: int) -> dict[str, list[Any]]:
    """Store ``groups`` one transaction each, with runs from ``run_rows`` rows of one order on; the tables."""
    conn = connect(path, Durability.FAST)
    migrate(conn)
    chains = Chains(single_chain)
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(statements_module, "RUN_ROWS", run_rows)
        for group in groups:
            run_transaction(conn, group_statements(scope, group, encode_and_link(group, chains)))
    run_transaction(conn, [(sql, [], None) for sql in CATCH_UP])
    tables = {table: conn.execute(f"SELECT * FROM {table} ORDER BY 1, 2").fetchall() for table in TABLES}
    conn.close()
    return tables


def groups_of(records: list[OrderRecord], cuts: list[int]) -> list[list[OrderRecord]]:
    bounds = sorted({0, len(records), *(c for c in cuts if c < len(records))})
    return [records[start:end] for start, end in itertools.pairwise(bounds)]


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(
    profiles=st.dictionaries(
        st.sampled_from(USERS),
        st.dictionaries(
            st.sampled_from(STRATEGIES), st.lists(st.sampled_from(INSTRUMENTS), unique=True, min_size=1), max_size=2
        ),
        min_size=1,
    ),
    orders=st.lists(
        st.tuples(st.sampled_from(STRATEGIES), st.sampled_from(INSTRUMENTS), st.sampled_from(list(Side))), max_size=30
    ),
    cuts=st.lists(st.integers(0, 30), max_size=8),
    scope=st.sampled_from(list(Scope)),
)
def test_runs_store_the_same_rows_as_values(
    tmp_path_factory: pytest.TempPathFactory,
    profiles: dict[str, dict[str, list[str]]],
    orders: list[tuple[str, str, Side]],
    cuts: list[int],
    scope: Scope,
) -> None:
    records = decided(scope, profiles, orders)
    groups = groups_of(records, cuts)
    work = tmp_path_factory.mktemp("runs")
    as_runs = stored(work / "runs.db", scope, groups, run_rows=1)
    as_values = stored(work / "values.db", scope, groups, run_rows=10**9)
    assert as_runs == as_values
    applied_to = {(effect.user, r.order_id) for r in records for effect in r.decision.applied}
    assert set(as_runs["order_users"]) == applied_to


@pytest.mark.parametrize("scope", list(Scope))
def test_a_fan_out_goes_as_runs_and_a_sell_of_positions_opened_apart_still_stores_every_trade(
    tmp_path: Path, scope: Scope
) -> None:
    """A big BUY's rows are runs; a SELL of positions two BUYs opened deletes as one run and stores its
    trades as VALUES (their opening orders differ), with the same rows either way."""
    early = {f"user {n:04d}": {"S1": ["ACC"]} for n in range(0, 600, 2)}
    late = {f"user {n:04d}": {"S1": ["ACC"]} for n in range(1, 600, 2)}
    first = decided(scope, early, [("S1", "ACC", Side.BUY)])
    registry, book = Registry.from_document({**early, **late}), Book(scope)
    records: list[OrderRecord] = []
    for order_id, record in enumerate(first, start=1):
        book.apply(record.order, record.decision.applied, order_id, record.received_at)
        records.append(record)
    for order_id, side in ((2, Side.BUY), (3, Side.SELL)):
        order, at = Order("S1", "ACC", side), f"2026-12-06T00:00:0{order_id}.000000Z"
        decision, undo = decide_and_apply(order, registry, book, None, order_id, at)
        records.append(decided_record(order_id, at, order, decision, scope, registry.fingerprint, None, undo, None))
    assert [len(r.opened) for r in records] == [300, 300, 0]
    assert len(records[2].closed) == 600
    sell = group_statements(scope, [records[2]], encode_and_link([records[2]], Chains(single_chain)))
    assert sum("json_each" in sql for sql, _, _ in sell) == 1  # its deletes; not its trades
    groups = [[r] for r in records]
    as_runs = stored(tmp_path / "runs.db", scope, groups, run_rows=statements_module.RUN_ROWS)
    assert as_runs == stored(tmp_path / "values.db", scope, groups, run_rows=10**9)
    assert len(as_runs["trades"]) == 600
    assert not as_runs["positions"]


def test_a_run_that_deletes_fewer_positions_than_it_names_fails_its_transaction(tmp_path: Path) -> None:
    """The run keeps the ``VALUES`` delete's second line of defence: it must delete exactly its users."""
    profiles = {f"user {n:04d}": {"S1": ["ACC"]} for n in range(300)}
    buy, sell = decided(Scope.ACCOUNT, profiles, [("S1", "ACC", Side.BUY), ("S1", "ACC", Side.SELL)])
    conn = connect(tmp_path / "store.db", Durability.FAST)
    migrate(conn)
    chains = Chains(single_chain)
    run_transaction(conn, group_statements(Scope.ACCOUNT, [buy], encode_and_link([buy], chains)))
    conn.execute("DELETE FROM positions WHERE user = 'user 0007'")
    with pytest.raises(sqlite3.IntegrityError, match="closed 299 open positions where the group closes 300"):
        run_transaction(conn, group_statements(Scope.ACCOUNT, [sell], encode_and_link([sell], chains)))
    assert conn.execute("SELECT count(*) FROM orders").fetchone() == (1,)
