"""Read-only, streaming reads of one consistent snapshot of an SQLite store: ``verify``, exports, totals.

:class:`SQLiteLogReader` opens the file read-only (no lock: it works while a gateway writes, or with
no gateway at all) and holds one read transaction, so orders, positions and trades all describe the
same instant. Every ``iter_*`` method walks a cursor row by row, so a log of any size needs constant
memory. The whole log is one hash chain (:func:`~ordergate.domain.chain.single_chain`). ``verify``
needs the chain (``audit``); exports read a store of any version, as an earlier release left it.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

from ordergate.domain.book import Position
from ordergate.domain.chain import single_chain
from ordergate.domain.controls import ControlChange
from ordergate.domain.model import Scope
from ordergate.domain.record import OrderRecord, Trade
from ordergate.errors import StartupError
from ordergate.store.base import Durability, TamperedRow
from ordergate.store.codec import decode_logged
from ordergate.store.sqlite.connection import CHAIN_VERSION, DOOR_VERSION, ENTRY_VERSION, ORDER_COLUMNS, connect

_DOOR_COLUMNS = ", door"
_ENTRY_COLUMNS = ", origin, actor, risk_fingerprint, signal_time"
_CHAIN_COLUMNS = ", controls_fingerprint, chain_hash"
assert ORDER_COLUMNS.endswith(_CHAIN_COLUMNS + _ENTRY_COLUMNS + _DOOR_COLUMNS)
_BEFORE_DOOR_COLUMNS = ORDER_COLUMNS.removesuffix(_DOOR_COLUMNS) + ", NULL"
"""The order columns of a store from before schema version 7 (no door)."""
_BEFORE_ENTRY_COLUMNS = ORDER_COLUMNS.removesuffix(_ENTRY_COLUMNS + _DOOR_COLUMNS) + ", NULL" * 5
"""The order columns of a store from before schema version 6 (no origin, actor, risk policy, signal time)."""
_BEFORE_CHAIN_COLUMNS = ORDER_COLUMNS.removesuffix(_CHAIN_COLUMNS + _ENTRY_COLUMNS + _DOOR_COLUMNS) + ", NULL" * 7
"""The order columns of a store from before schema version 3 (no controls, no hash chain, nor the later ones)."""
_POSITIONS = "SELECT user, strategy, instrument, opened_order_id, opened_at FROM positions ORDER BY position_id"
_TRADES = (
    "SELECT trade_id, user, strategy, instrument, opened_order_id, opened_at, closed_order_id, closed_at, "
    "closing_strategy FROM trades ORDER BY trade_id"
)


class SQLiteLogReader:
    """One read transaction over an SQLite store; ``audit`` refuses a store from before the hash chain."""

    chain_key = staticmethod(single_chain)

    def __init__(self, path: Path, *, audit: bool = True) -> None:
        if not path.exists():
            raise StartupError(f"no store at {path}: start the gateway once, or pass the right --home/--db")
        self._conn = connect(path, Durability.FULL, read_only=True)
        self._conn.execute("BEGIN")
        version: int = self._conn.execute("PRAGMA user_version").fetchone()[0]
        if audit and version < CHAIN_VERSION:
            self._conn.close()
            raise StartupError(
                f"the store {path} has schema version {version}, from before the hash chain: start the gateway "
                "on it once (it upgrades the store and links every order), then verify"
            )
        # a store from before the chain (read by exports only) has neither controls nor links yet, one
        # from before version 6 no entry fields, one from before 7 no door: a gateway that opens any adds
        # the columns
        self._order_columns = (
            ORDER_COLUMNS
            if version >= DOOR_VERSION
            else _BEFORE_DOOR_COLUMNS
            if version >= ENTRY_VERSION
            else _BEFORE_ENTRY_COLUMNS
            if version >= CHAIN_VERSION
            else _BEFORE_CHAIN_COLUMNS
        )
        self._risk = version >= ENTRY_VERSION

    def __enter__(self) -> SQLiteLogReader:
        return self

    def __exit__(self, *_: object) -> None:
        self.close()

    def iter_orders(self) -> Iterator[OrderRecord | TamperedRow]:
        for row in self._conn.execute(f"SELECT {self._order_columns} FROM orders ORDER BY order_id"):
            yield decode_logged(row)

    def iter_positions(self) -> Iterator[Position]:
        for row in self._conn.execute(_POSITIONS):
            yield Position(*row)

    def iter_trades(self) -> Iterator[Trade]:
        for row in self._conn.execute(_TRADES):
            yield Trade(*row)

    def open_positions(self) -> list[Position]:
        return list(self.iter_positions())

    def order_totals(self, until: int) -> list[tuple[str, str, str | None, int]]:
        """``(status, side, reason, count)`` rows over the orders up to order id ``until``."""
        rows = self._conn.execute(
            "SELECT status, side, reason, count(*) FROM orders WHERE order_id <= ? GROUP BY status, side, reason",
            (until,),
        ).fetchall()
        return [(str(s), str(side), None if r is None else str(r), int(n)) for s, side, r, n in rows]

    def scope(self) -> Scope | None:
        row = self._conn.execute("SELECT value FROM meta WHERE key = 'scope'").fetchone()
        return Scope(row[0]) if row else None

    def profiles(self, fingerprint: str) -> str | None:
        row = self._conn.execute("SELECT document FROM profiles WHERE fingerprint = ?", (fingerprint,)).fetchone()
        return None if row is None else str(row[0])

    def controls(self, fingerprint: str) -> str | None:
        row = self._conn.execute("SELECT document FROM controls_sets WHERE fingerprint = ?", (fingerprint,)).fetchone()
        return None if row is None else str(row[0])

    def risk(self, fingerprint: str) -> str | None:
        if not self._risk:  # a store from before risk policies has none to name
            return None
        row = self._conn.execute("SELECT document FROM risk_sets WHERE fingerprint = ?", (fingerprint,)).fetchone()
        return None if row is None else str(row[0])

    def caused_changes(self) -> dict[int, ControlChange]:
        if not self._risk:  # no order caused a control change before the breaker existed
            return {}
        rows = self._conn.execute(
            "SELECT at, level, target, state, changed_by, fingerprint, reason, order_id FROM control_changes"
            " WHERE order_id IS NOT NULL ORDER BY change_id"
        ).fetchall()
        return {int(row[7]): ControlChange.from_row(*row) for row in rows}

    def close(self) -> None:
        self._conn.close()
