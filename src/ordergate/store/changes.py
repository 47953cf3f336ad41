"""Turn a group of records into the row changes of the positions and trades tables.

A group may open, close and re-open the same position; writing only the net change keeps one
statement per table per group while the unique key on positions stays a real second line of
defence: a key is deleted only when the group's first touch of it is a close (so it must exist
before the group), and inserted only when it ends the group open.

An order may open or close 100,000 positions, so the rows of a big group are built with the loops in
C (``map``, ``zip``, ``dict.update``): the keys of each record's positions once, its trades once, and the net
change by dictionary updates. A group of one order that only opens or only closes (every big order)
has no net change to work out: its keys and positions are the rows.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from itertools import repeat
from operator import add, itemgetter
from typing import cast

from ordergate.domain.book import Position
from ordergate.domain.model import Scope
from ordergate.domain.record import OrderRecord

StoredKey = tuple[str, str, str]
"""(user, scope_strategy, instrument) as stored: scope_strategy is ``""`` in account scope."""

TradeRow = tuple[str, str, str, int, str, int, str, str]
"""(user, strategy, instrument, opened_order_id, opened_at, closed_order_id, closed_at, closing_strategy)"""

_USER, _INSTRUMENT = itemgetter(0), itemgetter(2)
_STRATEGY_SCOPED_KEY = itemgetter(0, 1, 2)


@dataclass(slots=True)
class GroupChanges:
    deletes: list[StoredKey] = field(default_factory=list)
    inserts: list[Position] = field(default_factory=list)
    trades: list[TradeRow] = field(default_factory=list)
    """(user, strategy, instrument, opened_order_id, opened_at, closed_order_id, closed_at, closing_strategy)"""


def stored_key(scope: Scope, position: Position) -> StoredKey:
    return (position.user, position.strategy if scope is Scope.STRATEGY else "", position.instrument)


def stored_keys(scope: Scope, positions: Sequence[Position]) -> list[StoredKey]:
    """:func:`stored_key` of each position, in order."""
    if scope is Scope.STRATEGY:
        return list(map(_STRATEGY_SCOPED_KEY, positions))
    return list(zip(map(_USER, positions), repeat(""), map(_INSTRUMENT, positions)))


def trade_rows(record: OrderRecord) -> list[TradeRow]:
    """The closed round trips of one order: each position it closed, as opened, then the closing order."""
    closing = (record.order_id, record.received_at, record.order.strategy)
    # a Position is the first five columns of its trade row; tuple + tuple is a plain tuple
    return cast(list[TradeRow], list(map(add, record.closed, repeat(closing))))


BULK_POSITIONS = 256
"""From this many positions in a group on, its rows are built in bulk (a group of small orders is
walked position by position: setting up the bulk steps would cost it three times as much)."""


def group_changes(scope: Scope, records: Sequence[OrderRecord]) -> GroupChanges:
    if sum(len(r.opened) + len(r.closed) for r in records) < BULK_POSITIONS:
        return _walked(scope, records)
    changes = GroupChanges()
    for record in records:
        if record.closed:
            changes.trades += trade_rows(record)
    if len(records) == 1 and not (records[0].opened and records[0].closed):
        (record,) = records
        changes.deletes = stored_keys(scope, record.closed)
        changes.inserts = list(record.opened)
        return changes
    # per key: does the group's first touch close it, and how does the group leave it (None: closed)
    first_touch_closes: dict[StoredKey, bool] = {}
    final: dict[StoredKey, Position | None] = {}
    touched: list[tuple[list[StoredKey], list[StoredKey]]] = []
    for record in records:
        closed, opened = stored_keys(scope, record.closed), stored_keys(scope, record.opened)
        touched.append((closed, opened))
        final.update(zip(closed, repeat(None)))  # within one order, its closes come before its opens
        final.update(zip(opened, record.opened, strict=True))
    for closed, opened in reversed(touched):  # the earliest write is the one that stays: the first touch
        first_touch_closes.update(zip(opened, repeat(False)))
        first_touch_closes.update(zip(closed, repeat(True)))
    changes.deletes = [key for key in final if first_touch_closes[key]]
    changes.inserts = [position for position in final.values() if position is not None]
    return changes


def _walked(scope: Scope, records: Sequence[OrderRecord]) -> GroupChanges:
    """:func:`group_changes`, one position at a time."""
    changes = GroupChanges()
    first_touch_closes: dict[StoredKey, bool] = {}
    final: dict[StoredKey, Position | None] = {}
    scoped = scope is Scope.STRATEGY
    for record in records:
        for position in record.closed:
            key = (position.user, position.strategy if scoped else "", position.instrument)
            first_touch_closes.setdefault(key, True)
            final[key] = None
            changes.trades.append((*position, record.order_id, record.received_at, record.order.strategy))
        for position in record.opened:
            key = (position.user, position.strategy if scoped else "", position.instrument)
            first_touch_closes.setdefault(key, False)
            final[key] = position
    changes.deletes = [key for key, closes in first_touch_closes.items() if closes]
    changes.inserts = [position for position in final.values() if position is not None]
    return changes
