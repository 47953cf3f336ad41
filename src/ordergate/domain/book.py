"""The book of open positions, keyed by the position scope, with undo for uncommitted changes.

In ``account`` scope a position is keyed by (user, instrument); in ``strategy`` scope by (user,
strategy, instrument). The book records which strategy opened each position and by which order.
Every change returns an :class:`Undo` so that the sequencer can take back decisions whose commit
failed: nothing uncommitted may survive in memory (ENGINEERING convention 3).
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from dataclasses import dataclass

from ordergate.domain.model import Action, Effect, Order, Scope

PositionKey = tuple[str, str, str]
"""(user, strategy-or-empty, instrument): the strategy part is ``""`` in ``account`` scope."""


@dataclass(frozen=True, slots=True)
class Position:
    user: str
    strategy: str
    instrument: str
    opened_order_id: int
    opened_at: str


@dataclass(frozen=True, slots=True)
class Change:
    """One key's value before an order changed it (``None``: it was not open)."""

    key: PositionKey
    before: Position | None


Undo = tuple[Change, ...]


class Book:
    __slots__ = ("_positions", "scope")

    def __init__(self, scope: Scope, positions: Iterable[Position] = ()) -> None:
        self.scope = scope
        self._positions: dict[PositionKey, Position] = {}
        for position in positions:
            key = self.key(position.user, position.strategy, position.instrument)
            if key in self._positions:
                raise ValueError(f"two open positions share the key {key!r}")
            self._positions[key] = position

    def key(self, user: str, strategy: str, instrument: str) -> PositionKey:
        return (user, strategy if self.scope is Scope.STRATEGY else "", instrument)

    def position(self, user: str, strategy: str, instrument: str) -> Position | None:
        """The open position ``user`` holds in ``instrument`` as seen by an order of ``strategy``."""
        return self._positions.get(self.key(user, strategy, instrument))

    def apply(self, order: Order, effects: Iterable[Effect], order_id: int, at: str) -> Undo:
        """Apply a decision's effects; raises ``ValueError`` if an effect contradicts the book."""
        changes: list[Change] = []
        try:
            for effect in effects:
                key = self.key(effect.user, order.strategy, order.instrument)
                before = self._positions.get(key)
                if effect.action is Action.OPENED:
                    if before is not None:
                        raise ValueError(f"{effect.user} already holds {order.instrument}")
                    self._positions[key] = Position(effect.user, order.strategy, order.instrument, order_id, at)
                else:
                    if before is None:
                        raise ValueError(f"{effect.user} holds no {order.instrument} to close")
                    del self._positions[key]
                changes.append(Change(key, before))
        except ValueError:
            self.undo(tuple(changes))
            raise
        return tuple(changes)

    def undo(self, changes: Undo) -> None:
        for change in reversed(changes):
            if change.before is None:
                self._positions.pop(change.key, None)
            else:
                self._positions[change.key] = change.before

    def __len__(self) -> int:
        return len(self._positions)

    def __iter__(self) -> Iterator[Position]:
        return iter(self._positions.values())
