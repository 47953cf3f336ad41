"""Turn a group of records into the row changes of the positions and trades tables.

A group may open, close and re-open the same position; writing only the net change keeps one
statement per table per group while the unique key on positions stays a real second line of
defence: a key is deleted only when the group's first touch of it is a close (so it must exist
before the group), and inserted only when it ends the group open.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

from ordergate.domain.book import Position
from ordergate.domain.model import Scope
from ordergate.domain.record import OrderRecord

StoredKey = tuple[str, str, str]
"""(user, scope_strategy, instrument) as stored: scope_strategy is ``""`` in account scope."""


@dataclass(slots=True)
class GroupChanges:
    deletes: list[StoredKey] = field(default_factory=list)
    inserts: list[Position] = field(default_factory=list)
    trades: list[tuple[str, str, str, int, str, int, str, str]] = field(default_factory=list)
    """(user, strategy, instrument, opened_order_id, opened_at, closed_order_id, closed_at, closing_strategy)"""


def stored_key(scope: Scope, position: Position) -> StoredKey:
    return (position.user, position.strategy if scope is Scope.STRATEGY else "", position.instrument)


def group_changes(scope: Scope, records: Sequence[OrderRecord]) -> GroupChanges:
    changes = GroupChanges()
    first_touch_closes: dict[StoredKey, bool] = {}
    final: dict[StoredKey, Position | None] = {}
    for record in records:
        for position in record.closed:
            key = stored_key(scope, position)
            first_touch_closes.setdefault(key, True)
            final[key] = None
            changes.trades.append(
                (
                    position.user,
                    position.strategy,
                    position.instrument,
                    position.opened_order_id,
                    position.opened_at,
                    record.order_id,
                    record.received_at,
                    record.order.strategy,
                )
            )
        for position in record.opened:
            key = stored_key(scope, position)
            first_touch_closes.setdefault(key, False)
            final[key] = position
    changes.deletes = [key for key, closes in first_touch_closes.items() if closes]
    changes.inserts = [position for position in final.values() if position is not None]
    return changes
