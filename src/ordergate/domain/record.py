"""What the order log keeps for each decided order, and the closed round trips it produces.

A :class:`OrderRecord` is everything a store needs to persist one decision exactly: the order, its
decision, when and under which scope and profiles it was made, and the positions it opened or
closed. Stores persist records; they never decide.
"""

from __future__ import annotations

from typing import NamedTuple

from ordergate.domain.book import Position
from ordergate.domain.model import Decision, Order, Scope


class OrderRecord(NamedTuple):
    order_id: int
    received_at: str
    order: Order
    decision: Decision
    scope: Scope
    profile_fingerprint: str
    client_order_id: str | None
    opened: tuple[Position, ...] = ()
    """Positions this order opened (BUY)."""
    closed: tuple[Position, ...] = ()
    """Positions this order closed (SELL), as they were just before it."""


class Trade(NamedTuple):
    """A closed round trip: the position as opened, and the order that closed it."""

    trade_id: int
    user: str
    strategy: str
    instrument: str
    opened_order_id: int
    opened_at: str
    closed_order_id: int
    closed_at: str
    closing_strategy: str
