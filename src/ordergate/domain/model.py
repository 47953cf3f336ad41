"""The values of the trading domain: sides, scopes, reasons, orders, effects and decisions.

Enums carry the exact wire values of the spec, so they can be serialised as they are. A rejection
is a value (a :class:`Reason`), never an exception.
"""

from __future__ import annotations

from enum import StrEnum
from typing import NamedTuple


class Side(StrEnum):
    BUY = "BUY"
    SELL = "SELL"


class Scope(StrEnum):
    """Who owns a position: the user alone (``account``) or the user under one strategy (``strategy``)."""

    ACCOUNT = "account"
    STRATEGY = "strategy"


class Status(StrEnum):
    ACCEPTED = "ACCEPTED"
    REJECTED = "REJECTED"


class Reason(StrEnum):
    """Why an order, or one subscriber's share of it, was not applied."""

    UNKNOWN_STRATEGY = "UNKNOWN_STRATEGY"
    INSTRUMENT_NOT_TRADED = "INSTRUMENT_NOT_TRADED"
    ALREADY_HOLDING = "ALREADY_HOLDING"
    NO_OPEN_POSITION = "NO_OPEN_POSITION"
    HALTED = "HALTED"
    """A trading control halts the gateway, the strategy or the user (SPEC section 9)."""
    REDUCE_ONLY = "REDUCE_ONLY"
    """A trading control lets only SELLs apply to the gateway, the strategy or the user."""
    POSITION_LIMIT = "POSITION_LIMIT"
    """The BUY would give the user more open positions than ``max_open_positions`` (SPEC section 10)."""
    DAILY_LIMIT = "DAILY_LIMIT"
    """The user opened ``max_opens_per_day`` positions this trading day already."""
    RATE_LIMIT = "RATE_LIMIT"
    """More than ``max_orders_per_minute`` orders arrived within the last 60 s (the whole order)."""
    COOLDOWN = "COOLDOWN"
    """The user closed this instrument less than ``cooldown_seconds`` ago."""
    STALE_SIGNAL = "STALE_SIGNAL"
    """The order's ``signal_time`` is older than ``max_signal_age_seconds``, or too far in the future."""
    MARKET_CLOSED = "MARKET_CLOSED"
    """The order arrived outside the trading session."""


class Origin(StrEnum):
    """What sent an order: a strategy (through any door), an admin's flatten, or the session's square-off."""

    STRATEGY = "strategy"
    FLATTEN = "flatten"
    SQUARE_OFF = "square_off"


class Door(StrEnum):
    """Which entrypoint an order came through (SPEC section 11), so the audit shows the door beside the actor.

    Each door calls the same decision; the door changes nothing in it. The values are stored with every
    order and covered by its hash, so they never change.
    """

    API = "api"
    """The v1 JSON endpoints (``/v1/orders``, the batch, the dashboard's order form), an admin's flatten."""
    LEGACY = "legacy"
    """The original kit's ``POST /create_order``."""
    HOOK = "hook"
    """An alert webhook (``POST /v1/hooks/<token>``)."""
    FIX = "fix"
    """The FIX 4.4 acceptor."""
    GATEWAY = "gateway"
    """The gateway's own orders: the session's square-off."""


class Action(StrEnum):
    OPENED = "OPENED"
    CLOSED = "CLOSED"


class Order(NamedTuple):
    """What a strategy asks for. Names are already validated by the entrypoint."""

    strategy: str
    instrument: str
    side: Side


class Effect(NamedTuple):
    """One subscriber's applied share of an order.

    ``position_strategy`` is the strategy that opened the position: for an OPENED effect the order's
    own strategy, for a CLOSED effect the strategy that opened the position being closed (which in
    ``account`` scope may differ from the order's strategy).
    """

    user: str
    action: Action
    position_strategy: str


class Refusal(NamedTuple):
    """One subscriber for whom the order was not valid, and why."""

    user: str
    reason: Reason


class Decision(NamedTuple):
    """The outcome of one order: applied for exactly ``applied``, refused for ``rejected_for``.

    ``reason`` is set exactly when ``status`` is REJECTED.
    """

    status: Status
    reason: Reason | None
    applied: tuple[Effect, ...]
    rejected_for: tuple[Refusal, ...]

    @property
    def is_accepted(self) -> bool:
        return self.status is Status.ACCEPTED
