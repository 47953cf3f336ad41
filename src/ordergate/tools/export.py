"""``ordergate export``: the order log, the open positions or the closed trades, streamed to a file.

Rows come one at a time from a read-only snapshot of the store, SQLite or PostgreSQL
(:class:`~ordergate.store.base.LogReader`), and are written as they come, so memory stays flat
whatever the size of the log, and the gateways may be running or not. Each row is the
object the HTTP API answers for it (an order as ``GET /v1/orders/{id}`` shows it, without the
request-only ``replayed`` flag). Formats:

- ``jsonl``: one JSON object per line;
- ``json``: one JSON array, written element by element;
- ``csv``: a header line, then one line per row; list fields (an order's ``applied`` and
  ``rejected_for``) are JSON text in their cell, empty cells stand for null.
"""

from __future__ import annotations

import csv
from collections.abc import Iterable, Iterator
from enum import StrEnum
from typing import Any, TextIO

import orjson

from ordergate.api.answers import order_answer, position_answer, trade_answer
from ordergate.errors import StoredRowError
from ordergate.store.base import LogReader, TamperedRow


class ExportWhat(StrEnum):
    ORDERS = "orders"
    POSITIONS = "positions"
    TRADES = "trades"


class ExportFormat(StrEnum):
    JSONL = "jsonl"
    CSV = "csv"
    JSON = "json"


COLUMNS: dict[ExportWhat, tuple[str, ...]] = {
    ExportWhat.ORDERS: (
        "order_id",
        "received_at",
        "strategy",
        "instrument",
        "side",
        "status",
        "reason",
        "client_order_id",
        "applied",
        "rejected_for",
        "origin",
        "actor",
        "risk_fingerprint",
        "signal_time",
        "door",
    ),
    ExportWhat.POSITIONS: ("user", "strategy", "instrument", "opened_order_id", "opened_at"),
    ExportWhat.TRADES: (
        "trade_id",
        "user",
        "strategy",
        "instrument",
        "opened_order_id",
        "opened_at",
        "closed_order_id",
        "closed_at",
        "closing_strategy",
    ),
}


def rows(snapshot: LogReader, what: ExportWhat) -> Iterator[dict[str, Any]]:
    """The API objects of ``what``, streamed from the snapshot in id order.

    Raises :class:`~ordergate.errors.StoredRowError` at an order row that does not decode (it was
    altered; an export cannot show it as the API would, and must not leave it out silently).
    """
    if what is ExportWhat.ORDERS:
        for record in snapshot.iter_orders():
            if isinstance(record, TamperedRow):
                raise StoredRowError(record)
            answer = order_answer(record)
            del answer["replayed"]
            yield answer
    elif what is ExportWhat.POSITIONS:
        yield from map(position_answer, snapshot.iter_positions())
    else:
        yield from map(trade_answer, snapshot.iter_trades())


def write(items: Iterable[dict[str, Any]], columns: tuple[str, ...], fmt: ExportFormat, out: TextIO) -> int:
    """Write ``items`` to ``out`` in ``fmt`` as they come; return how many were written."""
    count = 0
    if fmt is ExportFormat.JSONL:
        for item in items:
            out.write(orjson.dumps(item, option=orjson.OPT_APPEND_NEWLINE).decode())
            count += 1
    elif fmt is ExportFormat.JSON:
        out.write("[")
        for item in items:
            out.write(("\n" if count == 0 else ",\n") + orjson.dumps(item).decode())
            count += 1
        out.write("\n]\n" if count else "]\n")
    else:
        writer = csv.writer(out, lineterminator="\n")
        writer.writerow(columns)
        for item in items:
            writer.writerow([_cell(item[column]) for column in columns])
            count += 1
    return count


def _cell(value: object) -> object:
    if value is None:
        return ""
    if isinstance(value, list | dict):
        return orjson.dumps(value).decode()
    return value
