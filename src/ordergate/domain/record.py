"""What the order log keeps for each decided order, and the closed round trips it produces.

A :class:`OrderRecord` is everything a store needs to persist one decision exactly: the order, its
decision, when and under which scope, profiles and trading controls it was made, and the positions it
opened or closed. Stores persist records; they never decide. :func:`decided_record` is the one place
a record is built from a decision and the book changes it made (both sequencers use it).
"""

from __future__ import annotations

from operator import itemgetter
from typing import NamedTuple

from ordergate.domain.book import Position, Undo
from ordergate.domain.controls import ControlChange
from ordergate.domain.model import Decision, Door, Order, Origin, Scope

_BEFORE, _AFTER = itemgetter(1), itemgetter(2)


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
    origin: Origin = Origin.STRATEGY
    """What sent the order (SPEC section 10); orders stored before origins existed read as ``strategy``."""
    actor: str | None = None
    """The API key name that sent it, ``anonymous`` with auth off, ``risk`` for the gateway itself;
    ``None`` for orders stored before actors were recorded."""
    risk_fingerprint: str | None = None
    """The risk policy (limits, session) the order was decided under (``None``: none restricted anything)."""
    signal_time: str | None = None
    """When the strategy's signal fired, as the order said (UTC, ISO 8601, milliseconds), if it said."""
    control_change: tuple[ControlChange, str] | None = None
    """A control change the order caused (its rejection tripped the breaker), and the controls document
    it put in force: stored in the order's transaction. Not part of the order's row (nor its hash); the
    stores read it back from the control changes, by order id, for ``verify``."""
    door: Door | None = None
    """The entrypoint the order came through (SPEC section 11); ``None`` for orders stored before doors
    were recorded. The hash chain covers it only when set (:func:`~ordergate.domain.chain.canonical_content`)."""

    @property
    def has_entry_fields(self) -> bool:
        """Whether the record carries any field of SPEC section 10 (the hash chain covers them only then,
        so every hash stored before they existed stays valid)."""
        return (
            self.origin is not Origin.STRATEGY
            or self.actor is not None
            or self.risk_fingerprint is not None
            or self.signal_time is not None
            or self.door is not None
        )


class Entry(NamedTuple):
    """How an order came in, beside the order itself: who sent it, through what, and when its signal fired."""

    actor: str | None = None
    signal_time: str | None = None
    origin: Origin = Origin.STRATEGY
    door: Door | None = None


ANONYMOUS = "anonymous"
"""The actor of an order or a flatten sent with auth off."""

DIRECT = Entry()
"""An order with nothing said about its entry (tests, tools that call the sequencer directly)."""


GATEWAY_DOORS: dict[Origin, Door] = {Origin.FLATTEN: Door.API, Origin.SQUARE_OFF: Door.GATEWAY}
"""The door of the orders no strategy sent, by their origin: an admin's flatten comes through the API
(HTTP, or the CLI over it), the square-off from the gateway itself."""


def door_of(entry: Entry) -> Door | None:
    """The door an order is stored with: the entry's, else that of its origin (:data:`GATEWAY_DOORS`), so
    every sequencer's flatten and square-off orders get theirs; ``None`` for a strategy order that did
    not say (tools and tests that call a sequencer directly)."""
    return entry.door if entry.door is not None else GATEWAY_DOORS.get(entry.origin)


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


def decided_record(
    order_id: int,
    received_at: str,
    order: Order,
    decision: Decision,
    scope: Scope,
    profile_fingerprint: str,
    client_order_id: str | None,
    undo: Undo,
    controls_fingerprint: str | None,
    entry: Entry = DIRECT,
    risk_fingerprint: str | None = None,
    control_change: tuple[ControlChange, str] | None = None,
) -> OrderRecord:
    """The record of a decision just applied to a book; ``undo`` is what :meth:`Book.apply` returned.

    A change is ``(key, None, opened)`` or ``(key, closed, None)``: the positions are picked out of the
    undo in C (``map``, ``filter``), not walked in Python, as an order may change 100,000 of them.
    """
    return OrderRecord(
        order_id=order_id,
        received_at=received_at,
        order=order,
        decision=decision,
        scope=scope,
        profile_fingerprint=profile_fingerprint,
        client_order_id=client_order_id,
        opened=tuple(filter(None, map(_AFTER, undo))),
        closed=tuple(filter(None, map(_BEFORE, undo))),
        controls_fingerprint=controls_fingerprint,
        origin=entry.origin,
        actor=entry.actor,
        risk_fingerprint=risk_fingerprint,
        signal_time=entry.signal_time,
        control_change=control_change,
        door=door_of(entry),
    )
