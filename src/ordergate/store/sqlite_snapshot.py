"""Read-only, streaming reads of one consistent snapshot of an SQLite store: exports and log totals.

:class:`SQLiteSnapshot` opens the file read-only (no lock: it works while a gateway writes, or with
no gateway at all) and holds one read transaction, so orders, positions and trades all describe the
same instant. Every ``iter_*`` method walks a cursor row by row, so an export of any size needs
constant memory. :meth:`SQLiteSnapshot.order_totals` gives the counts the gateway's telemetry
starts from.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

from ordergate.domain.book import Position
from ordergate.domain.record import OrderRecord, Trade
from ordergate.errors import StartupError
from ordergate.store.base import Durability
from ordergate.store.codec import decode_record
from ordergate.store.sqlite import connect

_ORDERS = (
    "SELECT order_id, received_at, strategy, instrument, side, status, reason, scope, profile_fingerprint, "
    "client_order_id, applied, rejected_for FROM orders ORDER BY order_id"
)
_POSITIONS = "SELECT user, strategy, instrument, opened_order_id, opened_at FROM positions ORDER BY position_id"
_TRADES = (
    "SELECT trade_id, user, strategy, instrument, opened_order_id, opened_at, closed_order_id, closed_at, "
    "closing_strategy FROM trades ORDER BY trade_id"
)


class SQLiteSnapshot:
    def __init__(self, path: Path) -> None:
        if not path.exists():
            raise StartupError(f"no store at {path}: start the gateway once, or pass the right --home/--db")
        self._conn = connect(path, Durability.FULL, read_only=True)
        self._conn.execute("BEGIN")

    def __enter__(self) -> SQLiteSnapshot:
        return self

    def __exit__(self, *_: object) -> None:
        self.close()

    def iter_orders(self) -> Iterator[OrderRecord]:
        for row in self._conn.execute(_ORDERS):
            yield decode_record(*row)

    def iter_positions(self) -> Iterator[Position]:
        for row in self._conn.execute(_POSITIONS):
            yield Position(*row)

    def iter_trades(self) -> Iterator[Trade]:
        for row in self._conn.execute(_TRADES):
            yield Trade(*row)

    def order_totals(self, until: int) -> list[tuple[str, str, str | None, int]]:
        """``(status, side, reason, count)`` rows over the orders up to order id ``until``."""
        rows = self._conn.execute(
            "SELECT status, side, reason, count(*) FROM orders WHERE order_id <= ? GROUP BY status, side, reason",
            (until,),
        ).fetchall()
        return [(str(s), str(side), None if r is None else str(r), int(n)) for s, side, r, n in rows]

    def close(self) -> None:
        self._conn.close()
