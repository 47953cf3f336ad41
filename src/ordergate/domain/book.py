"""The book of open positions, keyed by the position scope, with undo for uncommitted changes.

In ``account`` scope a position is keyed by (user, instrument); in ``strategy`` scope by (user,
strategy, instrument). The book records which strategy opened each position and by which order.
Every change returns an :class:`Undo` so that the sequencer can take back decisions whose commit
failed: nothing uncommitted may survive in memory (ENGINEERING convention 3).
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator
from typing import NamedTuple

from ordergate.domain.model import Action, Effect, Order, Scope

PositionKey = tuple[str, ...]
"""(user, instrument) in ``account`` scope, (user, strategy, instrument) in ``strategy`` scope."""


_OPENED = Action.OPENED


def _account_key(user: str, strategy: str, instrument: str) -> PositionKey:
    return (user, instrument)


def _strategy_key(user: str, strategy: str, instrument: str) -> PositionKey:
    return (user, strategy, instrument)


class Position(NamedTuple):
    user: str
    strategy: str
    instrument: str
    opened_order_id: int
    opened_at: str


Change = tuple[PositionKey, Position | None, Position | None]
"""One key, its position before an order changed it and after (``None``: not open)."""

Undo = tuple[Change, ...]


class Book:
    """Open positions by key. The key function is chosen once per scope: this is the innermost loop."""

    __slots__ = ("_positions", "key", "scope")

    def __init__(self, scope: Scope, positions: Iterable[Position] = ()) -> None:
        self.scope = scope
        self.key: Callable[[str, str, str], PositionKey] = _strategy_key if scope is Scope.STRATEGY else _account_key
        listed = positions if isinstance(positions, list) else list(positions)
        if scope is Scope.STRATEGY:
            self._positions: dict[PositionKey, Position] = {(p[0], p[1], p[2]): p for p in listed}
        else:
            self._positions = {(p[0], p[2]): p for p in listed}
        if len(self._positions) != len(listed):
            raise ValueError("two open positions share a key")

    def position(self, user: str, strategy: str, instrument: str) -> Position | None:
        """The open position ``user`` holds in ``instrument`` as seen by an order of ``strategy``."""
        return self._positions.get(self.key(user, strategy, instrument))

    def holdings(self, strategy: str, instrument: str) -> Callable[[str], Position | None]:
        """``user -> open position`` for one order: what ``decide()`` asks once per subscriber."""
        get = self._positions.get
        if self.scope is Scope.STRATEGY:
            return lambda user: get((user, strategy, instrument))
        return lambda user: get((user, instrument))

    def apply(self, order: Order, effects: Iterable[Effect], order_id: int, at: str) -> Undo:
        """Apply a decision's effects; raises ``ValueError`` if an effect contradicts the book."""
        changes: list[Change] = []
        positions, key_of = self._positions, self.key
        strategy, instrument = order.strategy, order.instrument
        try:
            for user, action, _ in effects:
                key = key_of(user, strategy, instrument)
                before = positions.get(key)
                if action is _OPENED:
                    if before is not None:
                        raise ValueError(f"{user} already holds {instrument}")
                    after = positions[key] = Position(user, strategy, instrument, order_id, at)
                    changes.append((key, None, after))
                else:
                    if before is None:
                        raise ValueError(f"{user} holds no {instrument} to close")
                    del positions[key]
                    changes.append((key, before, None))
        except ValueError:
            self.undo(tuple(changes))
            raise
        return tuple(changes)

    def undo(self, changes: Undo) -> None:
        for key, before, _ in reversed(changes):
            if before is None:
                self._positions.pop(key, None)
            else:
                self._positions[key] = before

    def __len__(self) -> int:
        return len(self._positions)

    def __iter__(self) -> Iterator[Position]:
        return iter(self._positions.values())
