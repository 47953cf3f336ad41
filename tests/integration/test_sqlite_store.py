"""The SQLite store on a real file: exclusive ownership, scope guard, schema version, second line of defence."""

from __future__ import annotations

import sqlite3
from pathlib import Path

import pytest

from ordergate.domain.book import Position
from ordergate.domain.model import Action, Decision, Effect, Order, Scope, Side, Status
from ordergate.domain.record import OrderRecord
from ordergate.errors import StartupError, StoreLocked, StoreUnavailable
from ordergate.store.base import PositionQuery
from ordergate.store.sqlite import SQLiteStore
from ordergate.store.sqlite.schema import LATEST_VERSION

pytestmark = pytest.mark.anyio


def opening(order_id: int, user: str = "Ann", instrument: str = "ACC") -> OrderRecord:
    at = f"2026-01-01T00:00:{order_id:02d}Z"
    return OrderRecord(
        order_id=order_id,
        received_at=at,
        order=Order("S1", instrument, Side.BUY),
        decision=Decision(Status.ACCEPTED, None, (Effect(user, Action.OPENED, "S1"),), ()),
        scope=Scope.ACCOUNT,
        profile_fingerprint="f",
        client_order_id=None,
        opened=(Position(user, "S1", instrument, order_id, at),),
    )


async def test_second_store_on_the_same_file_is_refused_pointing_to_postgresql(tmp_path: Path) -> None:
    first = SQLiteStore(tmp_path / "db.sqlite3")
    await first.open(Scope.ACCOUNT)
    try:
        with pytest.raises(StoreLocked, match="PostgreSQL"):
            SQLiteStore(tmp_path / "db.sqlite3").lock()
    finally:
        await first.close()
    again = SQLiteStore(tmp_path / "db.sqlite3")
    await again.open(Scope.ACCOUNT)  # released on close
    await again.close()


async def test_store_with_open_positions_refuses_the_other_scope(tmp_path: Path) -> None:
    store = SQLiteStore(tmp_path / "db.sqlite3")
    await store.open(Scope.ACCOUNT)
    await store.commit([opening(1)])
    await store.close()
    with pytest.raises(StartupError, match="--scope account"):
        await SQLiteStore(tmp_path / "db.sqlite3").open(Scope.STRATEGY)


async def test_schema_is_versioned_and_reopening_keeps_the_state(tmp_path: Path) -> None:
    store = SQLiteStore(tmp_path / "db.sqlite3")
    await store.open(Scope.ACCOUNT)
    await store.commit([opening(1), opening(2, instrument="INFY")])
    await store.close()
    with sqlite3.connect(tmp_path / "db.sqlite3") as db:
        assert db.execute("PRAGMA user_version").fetchone()[0] == LATEST_VERSION
        assert db.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
    store = SQLiteStore(tmp_path / "db.sqlite3")
    snapshot = await store.open(Scope.ACCOUNT)
    await store.close()
    assert snapshot.last_order_id == 2
    assert sorted(p.instrument for p in snapshot.iter_positions()) == ["ACC", "INFY"]


async def test_opening_an_already_open_position_is_refused_by_the_unique_key(tmp_path: Path) -> None:
    store = SQLiteStore(tmp_path / "db.sqlite3")
    await store.open(Scope.ACCOUNT)
    await store.commit([opening(1)])
    with pytest.raises(StoreUnavailable, match="UNIQUE"):
        await store.commit([opening(2, instrument="INFY"), opening(3)])
    page = await store.list_positions(PositionQuery())
    assert [(p.instrument, p.opened_order_id) for p in page.items] == [("ACC", 1)]
    assert await store.get_order(2) is None  # the whole group rolled back
    await store.close()


async def test_a_newer_schema_than_known_is_refused(tmp_path: Path) -> None:
    with sqlite3.connect(tmp_path / "db.sqlite3") as db:
        db.execute(f"PRAGMA user_version = {LATEST_VERSION + 1}")
    with pytest.raises(StartupError, match="upgrade ordergate"):
        await SQLiteStore(tmp_path / "db.sqlite3").open(Scope.ACCOUNT)
