"""A store written under the previous listing indexes migrates in place and lists exactly what it did.

SQLite's schema version 5 and PostgreSQL's version 7 find a user's orders through ``order_users``
instead of three indexes over positions and trades, and SQLite's finds the orders by strategy and
instrument, and the trades by user, strategy and instrument, through a side index instead of indexes of
those tables (``store/sqlite/schema.py``). The store of the previous schema is made by a real gateway,
then put back to that schema the way its release left it (the order, position and trade rows did not
change between the versions; only the tables and indexes named above did, and the test checks the result
has exactly the previous schema's tables and indexes). Every listing and every combination of its
filters is read from the old store, a user's orders by the previous definition (the order ids of the
user's positions and trades), then again through the API of a gateway that migrated the store; they must
be the same, the hash chain must be untouched and ``verify`` must pass.
"""

from __future__ import annotations

import contextlib
import itertools
import sqlite3
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import psycopg
import pytest
from typer.testing import CliRunner

from ordergate.bootstrap import sqlite_path
from ordergate.cli import app
from ordergate.config import Settings
from ordergate.domain.chain import Chains, chain_per_instrument, single_chain
from ordergate.store.codec import decode_record
from ordergate.store.postgres.schema import MIGRATIONS as PG_MIGRATIONS
from ordergate.store.sqlite.schema import MIGRATIONS as SQLITE_MIGRATIONS
from ordergate.tools.produce import OrderDrawer
from tests.conftest import write_home
from tests.integration.conftest import running_gateway
from tests.postgres import fresh_database

pytestmark = pytest.mark.anyio

PROFILES = {
    "Ann": {"S1": ["ACC", "INFY", "TCS"], "S2": ["SBIN"]},
    "Bob Lee": {"S1": ["ACC", "INFY", "TCS"], "S3": ["ACC", "WIPRO"]},
    "Cid": {"S2": ["SBIN", "ACC"]},
    "Dee & Co": {"S3": ["WIPRO", "ACC"], "S1": ["TCS"]},
}
ORDER_FILTERS = {"strategy": "S1", "instrument": "ACC", "user": "Bob Lee", "status": "ACCEPTED", "side": "SELL"}
BOOK_FILTERS = {"user": "Bob Lee", "strategy": "S3", "instrument": "ACC"}
USERS = [*PROFILES, "Nobody"]

PREVIOUS = {"sqlite": 4, "postgresql": 6}
"""The schema version before the current listing indexes, per engine."""
USER_ORDER_INDEXES = {
    "positions_by_user_order": ("positions", "opened_order_id"),
    "trades_by_user_opened": ("trades", "opened_order_id"),
    "trades_by_user_closed": ("trades", "closed_order_id"),
}


SIDE_INDEXED = {
    "order_strategies": ("orders", "strategy", "order_id"),
    "order_instruments": ("orders", "instrument", "order_id"),
    "trade_users": ("trades", "user", "trade_id"),
    "trade_strategies": ("trades", "strategy", "trade_id"),
    "trade_instruments": ("trades", "instrument", "trade_id"),
}
"""SQLite: the side index of each filter of orders and trades that moved there (table, column, key)."""
LATER_SQLITE = [
    "DROP TABLE fix_messages",  # version 8: the FIX journal
    "DROP TABLE fix_sessions",
    "ALTER TABLE orders DROP COLUMN door",  # version 7: doors
    "DROP TABLE risk_changes",
    "DROP TABLE risk_sets",
    *(f"ALTER TABLE orders DROP COLUMN {column}" for column in ("origin", "actor", "risk_fingerprint", "signal_time")),
    "ALTER TABLE control_changes DROP COLUMN reason",
    "ALTER TABLE control_changes DROP COLUMN order_id",
]
"""SQLite: what the versions after the current listing indexes added (version 6, pre-trade risk; 7, doors;
8, the FIX journal), undone first."""


ENTRY_FIELDS = {"origin": "strategy", "actor": None, "risk_fingerprint": None, "signal_time": None, "door": None}


def _without_entry(item: dict[str, Any]) -> dict[str, Any]:
    return {**item, **ENTRY_FIELDS} if "origin" in item else item


def combinations(filters: dict[str, str]) -> Iterator[dict[str, str]]:
    for n in range(len(filters) + 1):
        for names in itertools.combinations(filters, n):
            yield {name: filters[name] for name in names}


class Database:
    """Plain SQL on the store of one engine, as an operator with access to it would run it."""

    def __init__(self, home: Path, url: str | None) -> None:
        self.home, self.url = home, url
        self.engine = "sqlite" if url is None else "postgresql"
        self.user_column = "user" if url is None else "user_name"

    def rows(self, sql: str, *params: object) -> list[tuple[Any, ...]]:
        if self.url is None:
            with contextlib.closing(sqlite3.connect(sqlite_path(Settings(home=self.home)))) as conn, conn:
                return conn.execute(sql, params).fetchall()
        with psycopg.connect(self.url, autocommit=True) as pg:
            cursor = pg.execute(sql.replace("?", "%s"), params or None)
            return cursor.fetchall() if cursor.description is not None else []

    def back_to_the_previous_schema(self) -> None:
        """Undo what the current version added: ``order_users`` goes, the three indexes come back (and,
        first, whatever the later versions added)."""
        user = self.user_column
        statements = ["DROP TABLE order_users"]
        statements += [
            f"CREATE INDEX {name} ON {table} ({user}, {key})" for name, (table, key) in USER_ORDER_INDEXES.items()
        ]
        if self.url is None:  # and the orders by strategy and instrument, back on the order log itself
            statements += LATER_SQLITE
            for side, (table, column, key) in SIDE_INDEXED.items():
                statements += [f"DROP TABLE {side}", f"CREATE INDEX {table}_by_{column} ON {table} ({column}, {key})"]
            statements.append("DELETE FROM meta WHERE key IN ('indexed_order_id', 'indexed_trade_id')")
            statements.append(f"PRAGMA user_version = {PREVIOUS['sqlite']}")
        else:  # and what the versions after it added: the order entry columns and the risk tables (8), doors (9)
            statements.append("DROP TABLE fix_messages, fix_sessions")  # version 10: the FIX journal
            statements.append("DROP TABLE risk_changes, risk_sets")
            statements.append(
                "ALTER TABLE orders DROP COLUMN origin, DROP COLUMN actor, DROP COLUMN risk_fingerprint,"
                " DROP COLUMN signal_time, DROP COLUMN door"
            )
            statements.append("ALTER TABLE control_changes DROP COLUMN reason, DROP COLUMN order_id")
            statements.append(f"DELETE FROM schema_migrations WHERE version > {PREVIOUS['postgresql']}")
        for statement in statements:
            self.rows(statement)
        self.relink()

    def relink(self) -> None:
        """Link every order again as the previous release did: without the order entry fields (actor,
        origin...), which it did not have, so the downgraded store is one it could have written."""
        columns = (
            "order_id, received_at, strategy, instrument, side, status, reason, scope, "
            "profile_fingerprint, client_order_id, applied, rejected_for, controls_fingerprint"
        )
        chains = Chains(single_chain if self.url is None else chain_per_instrument)
        linked = [
            (chains.link(record), record.order_id)
            for record in (decode_record(*row) for row in self.rows(f"SELECT {columns} FROM orders ORDER BY order_id"))
        ]
        for chain_hash, order_id in linked:
            self.rows("UPDATE orders SET chain_hash = ? WHERE order_id = ?", chain_hash, order_id)

    def schema(self) -> set[tuple[str, str]]:
        """The tables and indexes of the store (``(kind, name)``), without the engine's own."""
        if self.url is None:
            found = self.rows("SELECT type, name FROM sqlite_master WHERE name NOT LIKE 'sqlite_%'")
        else:
            found = self.rows(
                "SELECT CASE WHEN c.relkind = 'i' THEN 'index' ELSE 'table' END, c.relname FROM pg_class c"
                " JOIN pg_namespace n ON n.oid = c.relnamespace WHERE n.nspname = 'public' AND c.relkind IN ('r', 'i')"
                " AND c.relname NOT LIKE '%_pkey' AND c.relname NOT LIKE '%_key'"
            )
        return {(str(kind), str(name)) for kind, name in found}

    def version(self) -> int:
        if self.url is None:
            return int(self.rows("PRAGMA user_version")[0][0])
        return int(self.rows("SELECT max(version) FROM schema_migrations")[0][0])

    def old_user_orders(self, user: str) -> list[int]:
        """A user's orders by the previous schema's definition: those its positions and trades name."""
        u = self.user_column
        found = self.rows(
            f"SELECT opened_order_id FROM positions WHERE {u} = ? UNION SELECT opened_order_id FROM trades"
            f" WHERE {u} = ? UNION SELECT closed_order_id FROM trades WHERE {u} = ?",
            user,
            user,
            user,
        )
        return sorted(int(order_id) for (order_id,) in found)


def previous_schema(engine: str) -> set[tuple[str, str]]:
    """What the previous release's migrations create on an empty store of ``engine``."""
    if engine == "sqlite":
        with contextlib.closing(sqlite3.connect(":memory:")) as conn:
            for version, script in SQLITE_MIGRATIONS:
                if version <= PREVIOUS["sqlite"]:
                    conn.executescript(script)
            rows = conn.execute("SELECT type, name FROM sqlite_master WHERE name NOT LIKE 'sqlite_%'").fetchall()
        return {(str(kind), str(name)) for kind, name in rows}
    with fresh_database() as url, psycopg.connect(url, autocommit=True) as conn:
        for version, script in PG_MIGRATIONS:
            if version <= PREVIOUS["postgresql"]:
                for statement in script.split(";"):
                    if statement.strip():
                        conn.execute(statement)
        return Database(Path(), url).schema() | {("table", "schema_migrations")}


async def every_item(client: httpx.AsyncClient, path: str, filters: dict[str, str], limit: int = 1000) -> list[Any]:
    items: list[Any] = []
    after = 0
    while True:
        page = (await client.get(path, params={**filters, "after": after, "limit": limit})).json()
        items += page["items"]
        if page["next"] is None:
            return items
        after = page["next"]


async def listings(client: httpx.AsyncClient) -> dict[str, list[Any]]:
    """Every listing under every combination of its filters (and each user), as the API answers them."""
    found: dict[str, list[Any]] = {}
    order_filters = [*combinations(ORDER_FILTERS), *({"user": user} for user in USERS)]
    for filters in order_filters:
        found[f"orders {sorted(filters.items())}"] = await every_item(client, "/v1/orders", filters, limit=7)
    book_filters = [*combinations(BOOK_FILTERS), *({"user": user} for user in USERS)]
    for path in ("/v1/positions", "/v1/trades"):
        for filters in book_filters:
            found[f"{path} {sorted(filters.items())}"] = await every_item(client, path, filters, limit=5)
    return found


def verify(db: Database) -> tuple[int, str]:
    where = ["--home", str(db.home)] if db.url is None else ["--db", db.url]
    result = CliRunner().invoke(app, ["verify", *where])
    return result.exit_code, result.stdout + result.stderr


@pytest.fixture(params=["sqlite", "postgresql"])
def store(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Database]:
    home = write_home(tmp_path / "home", PROFILES)
    with contextlib.nullcontext(None) if request.param == "sqlite" else fresh_database() as url:
        yield Database(home, url)


async def test_a_store_of_the_previous_schema_migrates_in_place_and_lists_every_filter_the_same(
    store: Database,
) -> None:
    settings = {} if store.url is None else {"db": store.url}
    async with running_gateway(store.home, **settings) as (client, _):
        drawer = OrderDrawer(dict.fromkeys(("S1", "S2", "S3"), ("ACC", "INFY", "TCS", "SBIN", "WIPRO")), seed=11)
        for _ in range(4):
            orders = [
                {"strategy": o.strategy, "instrument": o.instrument, "side": o.side}
                for o in (drawer.draw() for _ in range(100))
            ]
            assert (await client.post("/v1/orders/batch", json={"orders": orders})).status_code == 200
        before = await listings(client)
    store.back_to_the_previous_schema()
    assert store.version() == PREVIOUS[store.engine]
    assert store.schema() == previous_schema(store.engine)
    chain = store.rows("SELECT order_id, chain_hash FROM orders ORDER BY order_id")
    for user in USERS:  # the store answers a user's orders as the previous schema defined them
        listed = [item["order_id"] for item in before[f"orders {[('user', user)]}"]]
        assert listed == store.old_user_orders(user), user
    assert sum(len(before[f"orders {[('user', user)]}"]) for user in USERS) > 100
    assert before["/v1/trades []"], "the log closes positions: the trades listings prove something"

    async with running_gateway(store.home, **settings) as (client, _):  # opening it migrates it
        assert store.version() > PREVIOUS[store.engine]
        after = await listings(client)
    assert after.keys() == before.keys()
    for name, items in before.items():  # the previous schema kept no order entry fields: they read as never set
        assert after[name] == [_without_entry(item) for item in items], name
    assert store.rows("SELECT order_id, chain_hash FROM orders ORDER BY order_id") == chain
    migrated = {name for _, name in store.schema()}
    assert not migrated & USER_ORDER_INDEXES.keys()
    if store.url is None:
        assert not migrated & {f"{table}_by_{column}" for table, column, _ in SIDE_INDEXED.values()}
    code, output = verify(store)
    assert code == 0, output
