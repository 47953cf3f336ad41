"""What the order log keeps for each decided order, and the closed round trips it produces.

A :class:`OrderRecord` is everything a store needs to persist one decision exactly: the order, its
decision, when and under which scope, profiles and trading controls it was made, and the positions it
opened or closed. Stores persist records; they never decide. :func:`chain_hash` links each stored
order to the one before it, so that altering any stored order breaks the chain from there on.
"""

from __future__ import annotations

import hashlib
from typing import NamedTuple

import orjson

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
    controls_fingerprint: str | None = None
    """The trading controls the order was decided under (``None``: none restricted anything)."""
    chain_hash: str | None = None
    """As stored: the hash over this order's content and the previous order's hash (tamper evidence)."""


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


GENESIS_HASH = "0" * 64
"""The "previous hash" of the first order of a log."""


def canonical_content(record: OrderRecord) -> bytes:
    """The canonical JSON of what a stored order says (not its positions, which the log re-derives)."""
    decision = record.decision
    return orjson.dumps(
        [
            record.order_id,
            record.received_at,
            record.order.strategy,
            record.order.instrument,
            record.order.side.value,
            decision.status.value,
            decision.reason.value if decision.reason is not None else None,
            record.scope.value,
            record.profile_fingerprint,
            record.controls_fingerprint,
            record.client_order_id,
            [[e.user, e.action.value, e.position_strategy] for e in decision.applied],
            [[r.user, r.reason.value] for r in decision.rejected_for],
        ]
    )


def chain_hash(previous: str, record: OrderRecord) -> str:
    """SHA-256 (hex) over the previous order's hash and this order's canonical content."""
    return hashlib.sha256(previous.encode("ascii") + b"\n" + canonical_content(record)).hexdigest()
