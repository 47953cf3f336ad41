"""The statements that store one group of orders in SQLite: a few per table, whatever the group's size.

The event loop builds them while the writer process (:mod:`ordergate.store.sqlite.writer_process`)
runs the previous group, and every value in them is pickled to that process, so what they cost is the
Python of building and pickling their parameters. Two shapes keep that small:

- *Multi-row* ``VALUES`` statements, for rows that differ in several columns (a group of small orders:
  a few users each, one row per order, position and trade), as few as SQLite's parameter limit allows.
- *Runs*, for rows that differ only by user: every position a fan-out opens (made by that one order),
  and, as a rule, every one it closes (opened by one earlier order) and the round trips it ends. A
  run is one statement whose users come as one JSON
  array that SQLite unpacks with ``json_each``, the other columns as parameters once: no Python tuple
  per row, one string to pickle, and no parameters for SQLite to bind per row. A 100,000-user order's
  rows cost the loop a few milliseconds this way instead of about 200, and the writer less too (a
  delete of 100,000 positions by run takes about 160 ms against 200 by ``VALUES`` keys, measured in
  memory). A run is taken only when it holds: the columns that are not the user are checked to be the
  same in every row (a C-level pass per column), otherwise the rows go as ``VALUES``.

Both shapes store the same rows in the same order (so the same ``position_id`` and ``trade_id``): the
tests store groups both ways and compare the tables.
"""

from __future__ import annotations

import functools
import itertools
from collections.abc import Sequence
from operator import itemgetter
from typing import Any

import orjson

from ordergate.domain.book import Position
from ordergate.domain.model import Scope
from ordergate.domain.record import OrderRecord
from ordergate.store.changes import group_changes, trade_rows
from ordergate.store.codec import EncodedOrder
from ordergate.store.sqlite.connection import ORDER_COLUMNS

Statement = tuple[str, list[Any], int | None]
"""SQL, its parameters, and how many rows it must change (``None``: any number)."""

ORDER_FIELDS = tuple(column.strip() for column in ORDER_COLUMNS.split(","))
POSITION_FIELDS = ("user", "scope_strategy", "instrument", "strategy", "opened_order_id", "opened_at")
TRADE_FIELDS = (
    "user", "strategy", "instrument", "opened_order_id", "opened_at", "closed_order_id", "closed_at", "closing_strategy"
)  # fmt: skip

RUN_ROWS = 256
"""From this many rows of one order on, rows that differ only by user go as a run (below it a run's
statement, its JSON and its checks cost more than the rows they replace)."""

MAX_PARAMETERS = 32_000
"""Bound parameters per statement; SQLite (3.32 and later) allows 32,766."""

_USER = itemgetter(0)
_POSITIONS_RUN = f"INSERT INTO positions ({', '.join(POSITION_FIELDS)}) SELECT value, ?, ?, ?, ?, ?"
_TRADES_RUN = f"INSERT INTO trades ({', '.join(TRADE_FIELDS)}) SELECT value, ?, ?, ?, ?, ?, ?, ?"
_DELETES_RUN = "DELETE FROM positions WHERE scope_strategy = ? AND instrument = ? AND user IN (SELECT value"


def group_statements(scope: Scope, records: Sequence[OrderRecord], encoded: Sequence[EncodedOrder]) -> list[Statement]:
    """The orders and the changes of positions and trades of ``records`` (without the control changes,
    which the store adds, and without ``order_users`` and the rest of the side index, which the writer
    fills from the orders between groups: :data:`~ordergate.store.sqlite.schema.CATCH_UP`)."""
    statements = inserts("orders", ORDER_FIELDS, [_order_row(r, e) for r, e in zip(records, encoded, strict=True)])
    run = _book_runs(scope, records[0]) if len(records) == 1 else None
    if run is not None:
        return statements + run
    changes = group_changes(scope, records)
    scoped = scope is Scope.STRATEGY
    statements += position_deletes(changes.deletes)
    statements += inserts(
        "positions",
        POSITION_FIELDS,
        [(p.user, p.strategy if scoped else "", p.instrument, p.strategy, p.opened_order_id, p.opened_at)
         for p in changes.inserts],
    )  # fmt: skip
    return statements + inserts("trades", TRADE_FIELDS, changes.trades)


def _order_row(r: OrderRecord, e: EncodedOrder) -> tuple[Any, ...]:
    return (
        r.order_id,
        r.received_at,
        r.order.strategy,
        r.order.instrument,
        r.order.side.value,  # plain values: the writer process unpickles nothing else
        r.decision.status.value,
        r.decision.reason.value if r.decision.reason is not None else None,
        r.scope.value,
        r.profile_fingerprint,
        r.client_order_id,
        e.applied,
        e.rejected_for,
        r.controls_fingerprint,
        e.chain_hash,
        r.origin.value,
        r.actor,
        r.risk_fingerprint,
        r.signal_time,
        r.door.value if r.door is not None else None,
    )


def _book_runs(scope: Scope, record: OrderRecord) -> list[Statement] | None:
    """The position and trade changes of one big order as runs, or ``None`` where they are not runs."""
    opened, closed = record.opened, record.closed
    if len(opened) + len(closed) < RUN_ROWS or (opened and closed):
        return None
    scoped = scope is Scope.STRATEGY
    if opened:
        if not _same(opened, 1, 2, 3, 4):
            return None
        _, strategy, instrument, order_id, at = opened[0]
        scope_strategy = strategy if scoped else ""
        return [_run(_POSITIONS_RUN, [scope_strategy, instrument, strategy, order_id, at], list(map(_USER, opened)))]
    if not _same(closed, *((1, 2) if scoped else (2,))):
        return None
    _, strategy, instrument, opened_id, opened_at = closed[0]
    users = list(map(_USER, closed))
    delete = _run(_DELETES_RUN, [strategy if scoped else "", instrument], users, ")", must_change=len(users))
    if not _same(closed, 1, 2, 3, 4):
        return [delete, *inserts("trades", TRADE_FIELDS, trade_rows(record))]
    closing = [record.order_id, record.received_at, record.order.strategy]
    return [delete, _run(_TRADES_RUN, [strategy, instrument, opened_id, opened_at, *closing], users)]


def _same(positions: Sequence[Position], *columns: int) -> bool:
    """Whether every position holds the same value in each of ``columns``."""
    return all(len(set(map(itemgetter(column), positions))) == 1 for column in columns)


def _run(
    head: str, params: list[Any], users: list[str], tail: str = "", *, must_change: int | None = None
) -> Statement:
    """``head`` selects its columns from ``value``, one row per user of ``users``; ``params`` fill its marks."""
    return (f"{head} FROM json_each(?){tail}", [*params, orjson.dumps(users).decode()], must_change)


@functools.lru_cache(maxsize=256)
def _rows_sql(prefix: str, width: int, count: int) -> str:
    row = "(" + ", ".join("?" * width) + ")"
    return prefix + ", ".join([row] * count)


def inserts(table: str, columns: tuple[str, ...], rows: Sequence[tuple[Any, ...]]) -> list[Statement]:
    """Statements inserting ``rows``, as few as the parameter limit allows."""
    prefix = f"INSERT INTO {table} ({', '.join(columns)}) VALUES "
    step = MAX_PARAMETERS // len(columns)
    return [
        (_rows_sql(prefix, len(columns), len(chunk)), list(itertools.chain.from_iterable(chunk)), None)
        for chunk in (rows[start : start + step] for start in range(0, len(rows), step))
    ]


def position_deletes(keys: Sequence[tuple[str, str, str]]) -> list[Statement]:
    """Statements closing open positions by key; each must delete exactly its keys."""
    step = MAX_PARAMETERS // 3
    # "IN (SELECT ... FROM (VALUES ...))" searches the unique index; a bare "IN (VALUES ...)" scans the table
    prefix = "DELETE FROM positions WHERE (user, scope_strategy, instrument) IN (SELECT * FROM (VALUES "
    return [
        (_rows_sql(prefix, 3, len(chunk)) + "))", list(itertools.chain.from_iterable(chunk)), len(chunk))
        for chunk in (keys[start : start + step] for start in range(0, len(keys), step))
    ]
