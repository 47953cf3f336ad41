"""The SQLite store keeps what pre-trade risk needs (SPEC section 10), on a real file.

Every order says how it came in (origin, actor, signal time) and the risk policy it was decided
under, and the hash chain covers those fields once an order has any, so an order stored before they
existed still hashes as it did. The risk policies are kept by fingerprint with every change made, and
the recent orders, from which the risk state is rebuilt, read back exactly. A store of schema version
5 opens, migrates to version 6 and keeps its orders and its chain.
"""

from __future__ import annotations

import contextlib
import hashlib
import sqlite3
from pathlib import Path

import orjson
import pytest

from ordergate.domain.chain import GENESIS_HASH, Chains, canonical_effects, single_chain
from ordergate.domain.model import Origin, Scope
from ordergate.domain.record import OrderRecord
from ordergate.domain.risk import RiskChange
from ordergate.errors import StoreUnavailable
from ordergate.store.sqlite import SQLiteLogReader, SQLiteStore
from ordergate.store.sqlite.schema import LATEST_VERSION, MIGRATIONS
from tests.integration.test_sqlite_store import opening

pytestmark = pytest.mark.anyio

INSTRUMENTS = ("ACC", "INFY", "TCS", "SBIN", "WIPRO", "MINDA")


def plain(order_id: int) -> OrderRecord:
    """An order of a strategy with no entry field, received at second ``order_id`` in the log's timestamp form
    (fixed width, so that timestamps compare as text in time order)."""
    record = opening(order_id, instrument=INSTRUMENTS[order_id % len(INSTRUMENTS)])
    at = f"2026-01-01T00:00:{order_id:02d}.000000Z"
    return record._replace(received_at=at, opened=tuple(p._replace(opened_at=at) for p in record.opened))


def flattened(order_id: int) -> OrderRecord:
    """An order with every entry field of SPEC section 10 set (a flatten, sent by the gateway itself)."""
    return plain(order_id)._replace(
        origin=Origin.FLATTEN,
        actor="risk",
        risk_fingerprint="r" * 64,
        signal_time="2026-01-01T00:00:00.250Z",
    )


def as_stored(record: OrderRecord, chain_hash: str) -> OrderRecord:
    """What a store reads back: no opened or closed positions (not kept in the row), the stored link."""
    return record._replace(opened=(), closed=(), chain_hash=chain_hash)


def linked(records: list[OrderRecord]) -> list[str]:
    """The links the store must have written, computed apart from it."""
    chains = Chains(single_chain)
    return [chains.link(record) for record in records]


async def opened_store(path: Path) -> SQLiteStore:
    store = SQLiteStore(path)
    await store.open(Scope.ACCOUNT)
    return store


async def test_an_order_with_entry_fields_round_trips_through_the_store_and_the_log_reader(tmp_path: Path) -> None:
    records = [plain(1), flattened(2), plain(3)._replace(actor="desk-key"), plain(4)]
    store = await opened_store(tmp_path / "db.sqlite3")
    try:
        await store.commit(records[:2])
        await store.commit(records[2:])
        got = [await store.get_order(r.order_id) for r in records]
    finally:
        await store.close()
    hashes = linked(records)
    assert got == [as_stored(r, h) for r, h in zip(records, hashes, strict=True)]
    assert got[1] is not None
    assert (got[1].origin, got[1].actor, got[1].signal_time) == (Origin.FLATTEN, "risk", "2026-01-01T00:00:00.250Z")
    with SQLiteLogReader(tmp_path / "db.sqlite3") as log:
        logged = list(log.iter_orders())
    assert logged == got


def content_hash(previous: str, content: list[object]) -> str:
    """The link over ``content`` as the chain defines it: SHA-256 of the previous hash, a newline, the JSON."""
    return hashlib.sha256(previous.encode("ascii") + b"\n" + orjson.dumps(content)).hexdigest()


async def test_an_order_without_entry_fields_hashes_as_before_they_existed(tmp_path: Path) -> None:
    old, new = plain(1), flattened(2)
    assert not old.has_entry_fields
    assert new.has_entry_fields
    store = await opened_store(tmp_path / "db.sqlite3")
    try:
        await store.commit([old, new])
        got_old, got_new = await store.get_order(1), await store.get_order(2)
    finally:
        await store.close()
    assert got_old is not None
    assert got_new is not None
    assert (got_old.origin, got_old.actor, got_old.risk_fingerprint, got_old.signal_time) == (
        Origin.STRATEGY,
        None,
        None,
        None,
    )
    # the version-5 content: eleven fields, then the effects; the entry fields only when an order has one
    effects: tuple[list[list[str]], list[list[str]]] = ([["Ann", "OPENED", "S1"]], [])  # applied, rejected_for
    head = ["S1", "BUY", "ACCEPTED", None, "account", "f", None, None]
    old_content: list[object] = [1, old.received_at, *head[:1], old.order.instrument, *head[1:], *effects]
    assert got_old.chain_hash == content_hash(GENESIS_HASH, old_content)
    entry = ["flatten", "risk", "r" * 64, "2026-01-01T00:00:00.250Z"]
    new_content: list[object] = [2, new.received_at, *head[:1], new.order.instrument, *head[1:], *entry, *effects]
    assert got_new.chain_hash == content_hash(got_old.chain_hash, new_content)
    with sqlite3.connect(tmp_path / "db.sqlite3") as db:
        origins = db.execute("SELECT origin, actor FROM orders ORDER BY order_id").fetchall()
    assert origins == [("strategy", None), ("flatten", "risk")]  # written as they are, read back the same


async def test_risk_changes_are_kept_in_order_with_the_policies_they_put_in_force(tmp_path: Path) -> None:
    limits = RiskChange("2026-01-01T09:00:00.000000Z", "limits", "global", None, '{"max_open_positions":3}', "ops", "a")
    session = RiskChange(
        "2026-01-01T09:01:00.000000Z", "session", None, None, '{"timezone":"Asia/Kolkata","open":"09:15"}', None, "b"
    )
    strategy = RiskChange(
        "2026-01-01T09:02:00.000000Z", "limits", "strategy", "S1", '{"cooldown_seconds":60}', "ops", "c"
    )
    back = RiskChange(
        "2026-01-01T09:03:00.000000Z", "limits", "strategy", "S1", '{"cooldown_seconds":null}', "ops", "b"
    )
    documents = {"a": '{"limits":1}', "b": '{"limits":1,"session":1}', "c": '{"limits":2,"session":1}'}
    store = await opened_store(tmp_path / "db.sqlite3")
    try:
        assert await store.current_risk() is None
        assert await store.risk_changes(10) == []
        for change in (limits, session, strategy, back):  # the last one puts policy "b" in force again
            assert (
                await store.record_risk_change(change, documents[change.fingerprint]) == documents[change.fingerprint]
            )
            assert await store.current_risk() == documents[change.fingerprint]
        assert await store.risk_changes(10) == [limits, session, strategy, back]
        assert await store.risk_changes(2) == [strategy, back]
        with pytest.raises(StoreUnavailable, match="CHECK"):
            await store.record_risk_change(limits._replace(kind="margin", fingerprint="d"), "{}")
        assert await store.risk_changes(10) == [limits, session, strategy, back]  # nothing of it stored
    finally:
        await store.close()
    store = await opened_store(tmp_path / "db.sqlite3")  # durable: a new process reads the same
    try:
        assert await store.current_risk() == documents["b"]
        assert await store.risk_changes(1) == [back]
    finally:
        await store.close()
    with SQLiteLogReader(tmp_path / "db.sqlite3") as log:
        assert {fp: log.risk(fp) for fp in (*documents, "d")} == {**documents, "d": None}


async def test_recent_orders_are_exactly_those_received_at_or_after_the_instant(tmp_path: Path) -> None:
    records = [plain(1), flattened(2), plain(3), flattened(4), plain(5)]
    store = await opened_store(tmp_path / "db.sqlite3")
    try:
        await store.commit(records[:3])
        await store.commit(records[3:])
        hashes = linked(records)
        stored = [as_stored(r, h) for r, h in zip(records, hashes, strict=True)]
        assert await store.recent_orders(records[2].received_at) == stored[2:]
        assert await store.recent_orders("2026-01-01T00:00:02.500000Z") == stored[2:]
        assert await store.recent_orders("2026-01-01T00:00:00Z") == stored
        assert await store.recent_orders("2026-01-02T00:00:00Z") == []
    finally:
        await store.close()


def version_5_store(path: Path, records: list[OrderRecord]) -> list[str]:
    """A store as the release of schema version 5 left it, holding ``records`` linked as it linked them."""
    hashes = linked(records)
    with contextlib.closing(sqlite3.connect(path)) as db, db:
        for version, script in MIGRATIONS:
            if version <= 5:
                db.executescript(script)
                db.execute(f"PRAGMA user_version = {version}")
        for record, link in zip(records, hashes, strict=True):
            applied, rejected_for = canonical_effects(record.decision)
            db.execute(
                "INSERT INTO orders (order_id, received_at, strategy, instrument, side, status, reason, scope,"
                " profile_fingerprint, client_order_id, applied, rejected_for, controls_fingerprint, chain_hash)"
                " VALUES (?, ?, ?, ?, ?, ?, NULL, ?, ?, NULL, ?, ?, NULL, ?)",
                (
                    record.order_id,
                    record.received_at,
                    record.order.strategy,
                    record.order.instrument,
                    record.order.side.value,
                    record.decision.status.value,
                    record.scope.value,
                    record.profile_fingerprint,
                    applied.decode(),
                    rejected_for.decode(),
                    link,
                ),
            )
    return hashes


async def test_a_version_5_store_migrates_and_its_orders_read_as_strategy_orders_with_their_chain(
    tmp_path: Path,
) -> None:
    path = tmp_path / "db.sqlite3"
    old = [plain(1), plain(2), plain(3)]
    hashes = version_5_store(path, old)
    with SQLiteLogReader(path) as log:  # read as it is, before a gateway upgrades it
        assert list(log.iter_orders()) == [as_stored(r, h) for r, h in zip(old, hashes, strict=True)]
        assert log.risk("a") is None

    store = await opened_store(path)
    try:
        with sqlite3.connect(path) as db:
            assert db.execute("PRAGMA user_version").fetchone()[0] == LATEST_VERSION
        got = [await store.get_order(r.order_id) for r in old]
        assert got == [as_stored(r, h) for r, h in zip(old, hashes, strict=True)]
        assert all(r is not None and r.origin is Origin.STRATEGY and r.actor is None for r in got)
        assert await store.recent_orders(old[1].received_at) == got[1:]
        new = flattened(4)
        await store.commit([new])  # the chain goes on from the old head
    finally:
        await store.close()

    chains = Chains(single_chain)
    with SQLiteLogReader(path) as log:
        for record in log.iter_orders():
            assert isinstance(record, OrderRecord)
            assert record.chain_hash == chains.expected(record), record.order_id
            chains.advance(record, record.chain_hash)
    assert chains.heads[""] == linked([*old, new])[-1]
    with sqlite3.connect(path) as db:
        assert [row[0] for row in db.execute("SELECT origin FROM orders ORDER BY order_id")] == [
            None,
            None,
            None,
            "flatten",
        ]
