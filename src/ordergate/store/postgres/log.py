"""Read-only access to the whole order log of a PostgreSQL store: ``ordergate verify --db``, ``export --db``.

The reader is a :class:`~ordergate.store.base.LogReader` whose chain policy is one hash chain per
instrument (see :mod:`ordergate.store.postgres.store`); each order keeps its trading controls, how it
came in and its risk policy (schema version 8: a store from before it reads as origin ``strategy``, no
actor, no risk policy) and the door it came through (version 9: none before it).
"""

from __future__ import annotations

from collections.abc import Iterator

import psycopg

from ordergate.domain.book import Position
from ordergate.domain.chain import chain_per_instrument
from ordergate.domain.controls import ControlChange
from ordergate.domain.model import Scope
from ordergate.domain.record import OrderRecord, Trade
from ordergate.errors import StartupError
from ordergate.store.base import Durability, TamperedRow
from ordergate.store.codec import decode_logged
from ordergate.store.postgres.connection import conninfo, display_url, problem_of
from ordergate.store.postgres.schema import CHAIN_VERSION, CONTROLS_VERSION, DOOR_VERSION, ENTRY_VERSION
from ordergate.store.postgres.store import ENTRY_COLUMNS, LOG_COLUMNS, RECORD_COLUMNS

assert RECORD_COLUMNS.endswith(", controls_fingerprint")
_NO_ENTRY = ", NULL" * len(ENTRY_COLUMNS.split(","))
"""What a store from before version 8 gives for the entry columns: origin ``strategy``, no actor."""
assert LOG_COLUMNS.endswith(", door")
_BEFORE_DOOR = LOG_COLUMNS.removesuffix(", door") + ", NULL"
"""What a store of version 8 gives: every column but the door (version 9)."""


class PostgresLogReader:
    """Read-only access to the whole log of a PostgreSQL store, for ``verify``: one consistent snapshot.

    It reads in a ``REPEATABLE READ`` transaction (so orders and positions describe one instant even
    while gateways write) and streams the orders through a server-side cursor. ``audit`` (``verify``)
    refuses a store from before the hash chain; exports read a store of any version.
    """

    def __init__(self, url: str, *, audit: bool = True) -> None:
        where = display_url(url)
        try:
            self._conn = psycopg.connect(conninfo(url, Durability.FULL))
        except psycopg.Error as exc:
            raise StartupError(f"cannot connect to PostgreSQL at {where}: {problem_of(exc)}") from None
        self._conn.isolation_level = psycopg.IsolationLevel.REPEATABLE_READ
        self._conn.read_only = True
        row = self._conn.execute("SELECT to_regclass('schema_migrations') IS NOT NULL").fetchone()
        if row is None or not row[0]:
            self._conn.close()
            raise StartupError(f"no ordergate store in {where}: start a gateway with --db on it once")
        row = self._conn.execute("SELECT coalesce(max(version), 0) FROM schema_migrations").fetchone()
        version = self._version = int(row[0]) if row is not None else 0
        if audit and version < CHAIN_VERSION:
            self._conn.close()
            raise StartupError(
                f"the store {where} has schema version {version}, from before the hash chain: start a gateway "
                "on it once (it upgrades the store and links every order), then verify"
            )
        # a store of an earlier version (before the chain: read by exports only): the columns it does not
        # have yet are NULL
        if version >= DOOR_VERSION:
            self._order_columns = LOG_COLUMNS
        elif version >= ENTRY_VERSION:
            self._order_columns = _BEFORE_DOOR
        elif version >= CHAIN_VERSION:
            self._order_columns = f"{RECORD_COLUMNS}, chain_hash{_NO_ENTRY}"
        elif version >= CONTROLS_VERSION:
            self._order_columns = f"{RECORD_COLUMNS}, NULL{_NO_ENTRY}"
        else:
            self._order_columns = RECORD_COLUMNS.removesuffix(", controls_fingerprint") + f", NULL, NULL{_NO_ENTRY}"

    def iter_orders(self) -> Iterator[OrderRecord | TamperedRow]:
        with self._conn.cursor(name="ordergate_log") as cursor:
            cursor.itersize = 5000
            cursor.execute(f"SELECT {self._order_columns} FROM orders ORDER BY order_id")
            for row in cursor:
                yield decode_logged(row)

    def iter_positions(self) -> Iterator[Position]:
        with self._conn.cursor(name="ordergate_positions") as cursor:
            cursor.itersize = 5000
            cursor.execute(
                "SELECT user_name, strategy, instrument, opened_order_id, opened_at FROM positions ORDER BY position_id"
            )
            for row in cursor:
                yield Position(*row)

    def iter_trades(self) -> Iterator[Trade]:
        with self._conn.cursor(name="ordergate_trades") as cursor:
            cursor.itersize = 5000
            cursor.execute(
                "SELECT trade_id, user_name, strategy, instrument, opened_order_id, opened_at, closed_order_id,"
                " closed_at, closing_strategy FROM trades ORDER BY trade_id"
            )
            for row in cursor:
                yield Trade(*row)

    def open_positions(self) -> list[Position]:
        return list(self.iter_positions())

    def scope(self) -> Scope | None:
        row = self._conn.execute("SELECT value FROM meta WHERE key = 'scope'").fetchone()
        return Scope(row[0]) if row else None

    def profiles(self, fingerprint: str) -> str | None:
        row = self._conn.execute("SELECT document FROM profiles WHERE fingerprint = %s", (fingerprint,)).fetchone()
        return None if row is None else str(row[0])

    def controls(self, fingerprint: str) -> str | None:
        row = self._conn.execute("SELECT document FROM controls_sets WHERE fingerprint = %s", (fingerprint,)).fetchone()
        return None if row is None else str(row[0])

    def risk(self, fingerprint: str) -> str | None:
        if self._version < ENTRY_VERSION:  # no risk policy was ever set on a store from before it
            return None
        row = self._conn.execute("SELECT document FROM risk_sets WHERE fingerprint = %s", (fingerprint,)).fetchone()
        return None if row is None else str(row[0])

    def caused_changes(self) -> dict[int, ControlChange]:
        if self._version < ENTRY_VERSION:  # no order caused a control change before the breaker existed
            return {}
        rows = self._conn.execute(
            "SELECT at, level, target, state, changed_by, fingerprint, reason, order_id FROM control_changes"
            " WHERE order_id IS NOT NULL ORDER BY change_id"
        ).fetchall()
        return {int(row[7]): ControlChange.from_row(*row) for row in rows}

    chain_key = staticmethod(chain_per_instrument)
    """Each instrument is its own chain."""

    def close(self) -> None:
        self._conn.close()
