"""``decide()``: SPEC section 2 as one pure function, shared by every store and entrypoint.

The order is evaluated for each subscriber of its strategy independently; it is ACCEPTED when valid
for at least one of them (and then applied for exactly those), otherwise REJECTED with one
order-level reason chosen in the spec's order: nobody subscribes (UNKNOWN_STRATEGY); for a BUY, no
subscriber trades the instrument there (INSTRUMENT_NOT_TRADED) or all who do already hold it
(ALREADY_HOLDING); for a SELL, no subscriber holds the position (NO_OPEN_POSITION).
"""

from __future__ import annotations

from ordergate.domain.book import Book
from ordergate.domain.model import Action, Decision, Effect, Order, Reason, Refusal, Side, Status
from ordergate.domain.registry import Registry

# module-level names: this is the innermost loop of the gateway, and enum attribute lookups add up
INSTRUMENT_NOT_TRADED, ALREADY_HOLDING, NO_OPEN_POSITION = (
    Reason.INSTRUMENT_NOT_TRADED,
    Reason.ALREADY_HOLDING,
    Reason.NO_OPEN_POSITION,
)
OPENED, CLOSED = Action.OPENED, Action.CLOSED


def decide(order: Order, registry: Registry, book: Book) -> Decision:
    """Decide ``order`` against the registry and the book (whose scope keys the positions).

    Pure: it reads the book but changes nothing; the caller applies ``Decision.applied``.
    """
    subscribers = registry.subscribers(order.strategy)
    if not subscribers:
        return Decision(Status.REJECTED, Reason.UNKNOWN_STRATEGY, (), ())

    applied: list[Effect] = []
    refused: list[Refusal] = []
    strategy, instrument = order.strategy, order.instrument
    held_by = book.holdings(strategy, instrument)
    if order.side is Side.BUY:
        trades_it = False
        for user, instruments in subscribers:
            if instrument not in instruments:
                refused.append(Refusal(user, INSTRUMENT_NOT_TRADED))
            elif held_by(user) is not None:
                trades_it = True
                refused.append(Refusal(user, ALREADY_HOLDING))
            else:
                trades_it = True
                applied.append(Effect(user, OPENED, strategy))
        empty_reason = Reason.ALREADY_HOLDING if trades_it else Reason.INSTRUMENT_NOT_TRADED
    else:
        for user, _ in subscribers:
            held = held_by(user)
            if held is None:
                refused.append(Refusal(user, NO_OPEN_POSITION))
            else:
                applied.append(Effect(user, CLOSED, held.strategy))
        empty_reason = Reason.NO_OPEN_POSITION

    if applied:
        return Decision(Status.ACCEPTED, None, tuple(applied), tuple(refused))
    return Decision(Status.REJECTED, empty_reason, (), tuple(refused))
