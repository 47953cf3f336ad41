"""The book of open positions, keyed by the position scope, with undo for uncommitted changes.

In ``account`` scope a position is keyed by (user, instrument); in ``strategy`` scope by (user,
strategy, instrument). The book records which strategy opened each position and by which order,
and indexes the holders of the positions each strategy opened in each instrument: a SELL of that
strategy reaches them even after they left it (SPEC section 9).
Every change returns an :class:`Undo` so that the sequencer can take back decisions whose commit
failed: nothing uncommitted may survive in memory (ENGINEERING convention 3).

Two ways in: :meth:`Book.apply` walks a decision's effects (what ``verify`` replays), and
:meth:`Book.open_positions` / :meth:`Book.close_positions` change many positions of one order at
once, with the loops in C (``map``, ``zip``, ``dict.update``): what ``decide_and_apply()`` uses, so
that an order for 100,000 subscribers is not walked a second time in Python. Both give the same
:class:`Undo` for the same change.

A store gives the book back at start as :class:`Opened` groups, one per order whose positions are still
open (they share everything but the user), and :meth:`Book.restore` builds the book from them in one
pass, with the per-position work done by C-level ``map``/``zip`` instead of a Python loop: a million
positions are then about a second less of start-up than a list of positions indexed afterwards.
"""

from __future__ import annotations

import functools
from collections import deque
from collections.abc import Callable, Iterable, Iterator, Sequence, Set
from itertools import repeat
from operator import itemgetter
from typing import NamedTuple

from ordergate.domain.model import Action, Effect, Order, Scope

_NOBODY: frozenset[str] = frozenset()

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


class Opened(NamedTuple):
    """The open positions one order opened: they share strategy, instrument, order and time, not the user.

    How a store reads the book back (one row per group instead of one per position).
    """

    strategy: str
    instrument: str
    opened_order_id: int
    opened_at: str
    users: Sequence[str]


def opened_groups(positions: Iterable[Position]) -> list[Opened]:
    """``positions`` in the form a store reads them back (for stores that hold positions as objects)."""
    groups: dict[tuple[str, str, int, str], list[str]] = {}
    for user, strategy, instrument, order_id, at in positions:
        groups.setdefault((strategy, instrument, order_id, at), []).append(user)
    return [Opened(*key, users) for key, users in groups.items()]


_new_position = functools.partial(tuple.__new__, Position)
"""``Position`` from one tuple, in C (``Position._make`` is a Python function)."""


Change = tuple[PositionKey, Position | None, Position | None]
"""One key, its position before an order changed it and after (``None``: not open)."""

Undo = tuple[Change, ...]

_USER, _OPENER = itemgetter(0), itemgetter(1, 2)
_ACCOUNT_KEY, _STRATEGY_KEY = itemgetter(0, 2), itemgetter(0, 1, 2)
"""The key of a position, a plain tuple as :func:`_account_key` and :func:`_strategy_key` build it."""
_new = tuple.__new__
"""``_new(Position, fields)``: a named tuple without the Python-level ``__new__`` (a frame per position)."""


class Book:
    """Open positions by key. The key function is chosen once per scope: this is the innermost loop."""

    __slots__ = ("_holders", "_positions", "key", "scope")

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
        holders: dict[tuple[str, str], set[str]] = {}
        for position in listed:
            opener = (position[1], position[2])
            users = holders.get(opener)
            if users is None:
                holders[opener] = {position[0]}
            else:
                users.add(position[0])
        self._holders = holders

    @classmethod
    def restore(cls, scope: Scope, opened: Iterable[Opened]) -> Book:
        """The book of the positions a store holds, built in one pass over its :class:`Opened` groups.

        Raises ``ValueError`` if two positions share a key, like the constructor. The book keeps the
        strings it is given: a store shares one string per name (a million positions repeat a hundred
        thousand users), or the book needs several times the memory.
        """
        book = cls(scope)
        positions, holders = book._positions, book._holders
        scoped = scope is Scope.STRATEGY
        for strategy, instrument, order_id, at, users in opened:
            keys = zip(users, repeat(strategy), repeat(instrument)) if scoped else zip(users, repeat(instrument))
            rows = zip(users, repeat(strategy), repeat(instrument), repeat(order_id), repeat(at))
            before = len(positions)
            positions.update(zip(keys, map(_new_position, rows), strict=True))
            if len(positions) - before != len(users):
                raise ValueError("two open positions share a key")
            held = holders.get((strategy, instrument))
            if held is None:
                holders[(strategy, instrument)] = set(users)
            else:
                held.update(users)
        return book

    def position(self, user: str, strategy: str, instrument: str) -> Position | None:
        """The open position ``user`` holds in ``instrument`` as seen by an order of ``strategy``."""
        return self._positions.get(self.key(user, strategy, instrument))

    def holders(self, strategy: str, instrument: str) -> Set[str]:
        """The users holding a position in ``instrument`` that ``strategy`` opened (do not change it)."""
        return self._holders.get((strategy, instrument), _NOBODY)

    def holdings(self, strategy: str, instrument: str) -> Callable[[str], Position | None]:
        """``user -> open position`` for one order: what ``decide()`` asks once per subscriber."""
        get = self._positions.get
        if self.scope is Scope.STRATEGY:
            return lambda user: get((user, strategy, instrument))
        return lambda user: get((user, instrument))

    def apply(self, order: Order, effects: Iterable[Effect], order_id: int, at: str) -> Undo:
        """Apply a decision's effects; raises ``ValueError`` if an effect contradicts the book."""
        changes: list[Change] = []
        positions, key_of, holders = self._positions, self.key, self._holders
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
                    opened = holders.get((strategy, instrument))
                    if opened is None:
                        holders[(strategy, instrument)] = {user}
                    else:
                        opened.add(user)
                else:
                    if before is None:
                        raise ValueError(f"{user} holds no {instrument} to close")
                    del positions[key]
                    changes.append((key, before, None))
                    holders[(before.strategy, instrument)].discard(user)
        except ValueError:
            self.undo(tuple(changes))
            raise
        return tuple(changes)

    def keys_of(self, users: Sequence[str], strategy: str, instrument: str) -> list[PositionKey]:
        """The key of each of ``users``' positions in ``instrument`` as seen by an order of ``strategy``."""
        if self.scope is Scope.STRATEGY:
            return list(zip(users, repeat(strategy), repeat(instrument)))
        return list(zip(users, repeat(instrument)))

    def positions_at(self, keys: Sequence[PositionKey]) -> list[Position | None]:
        """The open position at each key (``None``: none), looked up in C."""
        return list(map(self._positions.get, keys))

    def open_positions(
        self,
        strategy: str,
        instrument: str,
        users: Sequence[str],
        order_id: int,
        at: str,
        keys: list[PositionKey] | None = None,
    ) -> Undo:
        """Open ``users``' positions in ``instrument`` for an order of ``strategy``, in that order.

        The same change, and the same :class:`Undo`, as :meth:`apply` with an OPENED effect per user;
        raises ``ValueError`` (and changes nothing) if one of them already holds the position. ``keys``
        is :meth:`keys_of` those users, when the caller has it already.
        """
        if not users:
            return ()
        positions = self._positions
        if keys is None:
            keys = self.keys_of(users, strategy, instrument)
        if not positions.keys().isdisjoint(keys):
            held = next(k for k in keys if k in positions)
            raise ValueError(f"{held[0]} already holds {instrument}")
        opened: list[Position] = list(
            map(_new, repeat(Position), zip(users, repeat(strategy), repeat(instrument), repeat(order_id), repeat(at)))
        )
        count = len(positions)
        positions.update(zip(keys, opened, strict=True))
        if len(positions) != count + len(keys):  # a user named twice
            deque(map(positions.pop, keys, repeat(None)), maxlen=0)
            raise ValueError(f"a user is named twice among those opening {instrument}")
        holders = self._holders.get((strategy, instrument))
        if holders is None:
            self._holders[(strategy, instrument)] = set(users)
        else:
            holders.update(users)
        return tuple(zip(keys, repeat(None), opened))

    def close_positions(self, closing: Sequence[Position]) -> Undo:
        """Close the open positions ``closing`` (as the book holds them), in that order.

        The same change, and the same :class:`Undo`, as :meth:`apply` with a CLOSED effect per
        position; raises ``ValueError`` (and changes nothing) if one of them is not open as given.
        """
        if not closing:
            return ()
        positions = self._positions
        keys: list[PositionKey] = list(map(_STRATEGY_KEY if self.scope is Scope.STRATEGY else _ACCOUNT_KEY, closing))
        closed = list(map(positions.pop, keys, repeat(None)))
        if closed != (closing if isinstance(closing, list) else list(closing)):  # the same objects: no field compared
            for key, found in zip(keys, closed, strict=True):
                if found is not None:
                    positions[key] = found
            missing = next(p for p, found in zip(closing, closed, strict=True) if found != p)
            raise ValueError(f"{missing.user} holds no {missing.instrument} to close")
        holders = self._holders
        openers = set(map(_OPENER, closing))
        if len(openers) == 1:
            holders[openers.pop()].difference_update(map(_USER, closing))
        else:
            for position in closing:
                holders[(position.strategy, position.instrument)].discard(position.user)
        return tuple(zip(keys, closing, repeat(None)))

    def undo(self, changes: Undo) -> None:
        holders = self._holders
        for key, before, after in reversed(changes):
            if before is None:
                self._positions.pop(key, None)
                if after is not None:
                    holders[(after.strategy, after.instrument)].discard(after.user)
            else:
                self._positions[key] = before
                holders.setdefault((before.strategy, before.instrument), set()).add(before.user)

    def __len__(self) -> int:
        return len(self._positions)

    def __iter__(self) -> Iterator[Position]:
        return iter(self._positions.values())
