"""The door each order came through (SPEC section 11), as stored and audited, on both engines.

The door is stored with the order and covered by its hash, so ``ordergate verify`` names an order
whose door was changed, cleared or set to what no ordergate writes. A store written before doors
existed (SQLite schema version 6, PostgreSQL version 8) is made by a real gateway and put back to that
schema as its release left it (no ``door`` column, every order linked without one); it reads and
verifies as it is, and a gateway that opens it migrates it without touching a stored link: the old
orders show no door, the new ones theirs, and ``verify`` passes over both.
"""

from __future__ import annotations

import contextlib
import sqlite3
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import psycopg
import pytest
from typer.testing import CliRunner

from ordergate.bootstrap import sqlite_path
from ordergate.cli import app
from ordergate.config import Settings
from ordergate.domain.chain import Chains, chain_per_instrument, single_chain
from ordergate.store.codec import decode_record
from tests.conftest import write_home
from tests.integration.conftest import running_gateway
from tests.postgres import fresh_database

pytestmark = pytest.mark.anyio

PROFILES = {"Ann": {"S1": ["ACC", "TCS"]}, "Bob": {"S1": ["ACC"], "S2": ["INFY"]}}
PREVIOUS = {"sqlite": 6, "postgresql": 8}
"""The schema version before doors, per engine."""
COLUMNS_BEFORE_DOORS = (
    "order_id, received_at, strategy, instrument, side, status, reason, scope, profile_fingerprint, client_order_id,"
    " applied, rejected_for, controls_fingerprint, NULL, origin, actor, risk_fingerprint, signal_time"
)


class Database:
    """Plain SQL on the store of one engine, as an operator with access to it would run it."""

    def __init__(self, home: Path, url: str | None) -> None:
        self.home, self.url = home, url
        self.engine = "sqlite" if url is None else "postgresql"
        self.settings: dict[str, Any] = {} if url is None else {"db": url}

    def rows(self, sql: str, *params: object) -> list[tuple[Any, ...]]:
        if self.url is None:
            with contextlib.closing(sqlite3.connect(sqlite_path(Settings(home=self.home)))) as conn, conn:
                return conn.execute(sql, params).fetchall()
        with psycopg.connect(self.url, autocommit=True) as pg:
            cursor = pg.execute(sql.replace("?", "%s"), params or None)
            return cursor.fetchall() if cursor.description is not None else []

    def verify(self) -> tuple[int, str]:
        where = ["--home", str(self.home)] if self.url is None else ["--db", self.url]
        result = CliRunner().invoke(app, ["verify", *where])
        assert result.exception is None or isinstance(result.exception, SystemExit), result.exception
        return result.exit_code, " ".join((result.stdout + result.stderr).split())

    def back_to_the_schema_before_doors(self) -> None:
        """No ``door`` column, the previous version, and every order linked as that release linked it (and
        none of the later versions: on SQLite the FIX journal's tables of version 8 go too)."""
        self.rows("ALTER TABLE orders DROP COLUMN door")
        if self.url is None:
            self.rows("DROP TABLE fix_messages")
            self.rows("DROP TABLE fix_sessions")
            self.rows(f"PRAGMA user_version = {PREVIOUS['sqlite']}")
        else:
            self.rows(f"DELETE FROM schema_migrations WHERE version > {PREVIOUS['postgresql']}")
        chains = Chains(single_chain if self.url is None else chain_per_instrument)
        records = [
            decode_record(*row) for row in self.rows(f"SELECT {COLUMNS_BEFORE_DOORS} FROM orders ORDER BY order_id")
        ]
        for record in records:
            self.rows("UPDATE orders SET chain_hash = ? WHERE order_id = ?", chains.link(record), record.order_id)

    def version(self) -> int:
        if self.url is None:
            return int(self.rows("PRAGMA user_version")[0][0])
        return int(self.rows("SELECT max(version) FROM schema_migrations")[0][0])


@pytest.fixture(params=["sqlite", "postgresql"])
def store(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Database]:
    home = write_home(tmp_path / "home", PROFILES)
    with contextlib.nullcontext(None) if request.param == "sqlite" else fresh_database() as url:
        yield Database(home, url)


async def fill(db: Database) -> None:
    """Order 1 through ``/v1/orders``, 2 through ``/create_order``, 3 through the batch."""
    async with running_gateway(db.home, **db.settings) as (client, _):
        v1 = await client.post("/v1/orders", json={"strategy": "S1", "instrument": "ACC", "side": "BUY"})
        legacy = await client.post("/create_order", json={"STRATEGY": "S1", "INSTRUMENT": "TCS", "POSITION": "BUY"})
        batch = await client.post("/v1/orders/batch", json={"orders": [{"strategy": "S2", "instrument": "INFY",
                                                                        "side": "BUY"}]})  # fmt: skip
        assert (v1.status_code, legacy.status_code, batch.status_code) == (201, 200, 200)


async def test_the_stored_doors_are_those_the_orders_came_through_and_verify_passes(store: Database) -> None:
    await fill(store)
    assert store.rows("SELECT order_id, door FROM orders ORDER BY order_id") == [(1, "api"), (2, "legacy"), (3, "api")]
    code, output = store.verify()
    assert code == 0, output


@pytest.mark.parametrize(
    ("assignment", "problem"),
    [
        ("door = 'hook'", "the hash chain"),  # "of <instrument>" on PostgreSQL, which keeps one per instrument
        ("door = NULL", "the hash chain"),
        ("door = 'telegram'", "the stored row was altered: column door holds 'telegram', not one of api, legacy"),
    ],
    ids=["another-door", "no-door", "unknown-door"],
)
async def test_verify_names_the_order_whose_door_was_altered(store: Database, assignment: str, problem: str) -> None:
    await fill(store)
    store.rows(f"UPDATE orders SET {assignment} WHERE order_id = 2")
    code, output = store.verify()
    assert code == 1, output
    assert f"verify failed: order 2: {problem}" in output
    assert "breaks here" in output or "altered" in output


async def test_a_store_from_before_doors_verifies_migrates_in_place_and_keeps_every_link(store: Database) -> None:
    await fill(store)
    store.back_to_the_schema_before_doors()
    assert store.version() == PREVIOUS[store.engine]
    chain = store.rows("SELECT order_id, chain_hash FROM orders ORDER BY order_id")
    code, output = store.verify()  # the log reader reads the older schema as it is
    assert code == 0, output

    async with running_gateway(store.home, **store.settings) as (client, _):  # opening it migrates it
        assert store.version() > PREVIOUS[store.engine]
        old = (await client.get("/v1/orders")).json()["items"]
        assert [(o["order_id"], o["door"], o["actor"]) for o in old] == [
            (1, None, "anonymous"),
            (2, None, "anonymous"),
            (3, None, "anonymous"),
        ]
        new = await client.post("/v1/orders", json={"strategy": "S1", "instrument": "ACC", "side": "SELL"})
        assert (new.status_code, new.json()["door"]) == (201, "api")
    assert store.rows("SELECT order_id, chain_hash FROM orders WHERE order_id <= 3 ORDER BY order_id") == chain
    code, output = store.verify()
    assert code == 0, output
