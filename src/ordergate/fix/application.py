"""The FIX application layer: a NewOrderSingle (``35=D``) decided by the sequencer, answered in FIX.

:class:`OrderDesk` reads an order out of a NewOrderSingle (SPEC section 11: ``ClOrdID (11)`` the
client order id, ``Symbol (55)`` the instrument, ``Side (54)`` 1 BUY or 2 SELL, ``Account (1)`` the
strategy, optional when the session's key allows one strategy), has it decided by the same
:meth:`~ordergate.service.sequencing.Sequencing.submit` the HTTP API calls (so the idempotency, the
keys' rights, the limits and the durable answer are the same), and answers with one ExecutionReport
(``35=8``) per decision. A report is built from the stored order record alone, so the report of a
repeated ``ClOrdID`` (the sequencer's replay) is the stored report again, with ``PossResend (97)=Y``.
What cannot be an order (a missing or bad field) is a session Reject naming the tag; what the
gateway cannot do now (the store is down) is a BusinessMessageReject, after which the same
``ClOrdID`` may be sent again safely.
"""

from __future__ import annotations

import logging
import uuid
from collections.abc import Sequence
from typing import NamedTuple

from ordergate.api.schemas import client_order_id_problem
from ordergate.domain.model import Door, Order, Reason, Side
from ordergate.domain.names import name_problem
from ordergate.domain.record import ANONYMOUS, Entry, OrderRecord
from ordergate.errors import ClientOrderIdConflict, OrdergateError, StoreUnavailable
from ordergate.fix.codec import Field, Message, Tag
from ordergate.fix.session import Reject
from ordergate.security.keys import Principal
from ordergate.service.sequencing import Sequencing

log = logging.getLogger(__name__)

SIDES = {"1": Side.BUY, "2": Side.SELL}
FIX_SIDE = {Side.BUY: "1", Side.SELL: "2"}
ORD_REJ_REASON: dict[Reason | None, str] = {
    Reason.INSTRUMENT_NOT_TRADED: "1",
    Reason.HALTED: "2",
    Reason.MARKET_CLOSED: "2",
    Reason.POSITION_LIMIT: "3",
    Reason.DAILY_LIMIT: "3",
    Reason.RATE_LIMIT: "3",
    Reason.COOLDOWN: "3",
    Reason.STALE_SIGNAL: "8",
}
"""``OrdRejReason (103)`` of each rejection reason (SPEC section 11); any other is 99 (Other)."""
DUPLICATE_ORDER = "6"
OTHER = "99"


class Answer(NamedTuple):
    """What the application sends back for one message: its type, extra header fields and body."""

    msg_type: str
    body: Sequence[Field]
    header: Sequence[Field] = ()


class OrderDesk:
    """Turns NewOrderSingle messages into decisions and decisions into ExecutionReports."""

    def __init__(self, sequencer: Sequencing) -> None:
        self._sequencer = sequencer

    async def answer(self, message: Message, principal: Principal | None) -> Answer:
        parsed = read_order(message, principal)
        if isinstance(parsed, Answer):
            return parsed
        order, client_order_id = parsed
        if principal is not None and not principal.may_order(order.strategy):
            allowed = ", ".join(sorted(principal.strategies or ()))
            text = f"this key ({principal.name}) may send orders for {allowed} only, not for {order.strategy}"
            return business_reject(message, "6", text)
        entry = Entry(principal.name if principal is not None else ANONYMOUS, door=Door.FIX)
        try:
            outcome = await self._sequencer.submit(order, client_order_id, entry)
        except ClientOrderIdConflict as exc:
            return conflict_report(message, order, client_order_id, exc, principal)
        except StoreUnavailable as exc:
            text = f"the order was not stored, send it again with the same ClOrdID (11) later: {exc}"
            return business_reject(message, "4", text)
        except OrdergateError as exc:
            return business_reject(message, "0", str(exc))
        return execution_report(message, outcome.record, replayed=outcome.replayed)


def read_order(message: Message, principal: Principal | None) -> tuple[Order, str] | Answer:
    """The order and client order id of a NewOrderSingle, or the Reject naming the tag at fault."""
    client_order_id = message.get(Tag.CL_ORD_ID)
    if client_order_id is None:
        return session_reject(message, Tag.CL_ORD_ID, Reject.REQUIRED_TAG_MISSING, "ClOrdID (11) is missing")
    problem = client_order_id_problem(client_order_id)
    if problem is not None:
        return session_reject(message, Tag.CL_ORD_ID, Reject.VALUE_INCORRECT, f"ClOrdID (11) {problem}")
    symbol = message.get(Tag.SYMBOL)
    if symbol is None:
        return session_reject(message, Tag.SYMBOL, Reject.REQUIRED_TAG_MISSING, "Symbol (55) is missing")
    if (problem := name_problem(symbol)) is not None:
        return session_reject(message, Tag.SYMBOL, Reject.VALUE_INCORRECT, f"Symbol (55) {problem}")
    side_code = message.get(Tag.SIDE)
    if side_code is None:
        return session_reject(message, Tag.SIDE, Reject.REQUIRED_TAG_MISSING, "Side (54) is missing")
    side = SIDES.get(side_code)
    if side is None:
        text = f"Side (54) must be 1 (Buy) or 2 (Sell), not {side_code!r}"
        return session_reject(message, Tag.SIDE, Reject.VALUE_INCORRECT, text)
    strategy = message.get(Tag.ACCOUNT)
    if strategy is None:
        only = principal.strategies if principal is not None else None
        if only is None or len(only) != 1:
            text = "Account (1) is missing: it names the strategy (optional only when the key allows one strategy)"
            return session_reject(message, Tag.ACCOUNT, Reject.REQUIRED_TAG_MISSING, text)
        [strategy] = only
    elif (problem := name_problem(strategy)) is not None:
        return session_reject(message, Tag.ACCOUNT, Reject.VALUE_INCORRECT, f"Account (1) {problem}")
    quantity = message.get(Tag.ORDER_QTY)
    if quantity is not None and not _is_quantity(quantity):
        text = f"OrderQty (38) must be a positive number, not {quantity!r}"
        return session_reject(message, Tag.ORDER_QTY, Reject.INCORRECT_DATA_FORMAT, text)
    return Order(strategy, symbol, side), client_order_id


def _is_quantity(value: str) -> bool:
    try:
        number = float(value)
    except ValueError:
        return False
    return value.isascii() and number > 0 and number != float("inf")


def execution_report(message: Message, record: OrderRecord, *, replayed: bool = False) -> Answer:
    """The ExecutionReport of a stored decision; the same record always gives the same report."""
    decision = record.decision
    accepted = decision.is_accepted
    status = "0" if accepted else "8"
    body: list[Field] = [
        (Tag.ORDER_ID, str(record.order_id)),
        (Tag.CL_ORD_ID, record.client_order_id or message.get(Tag.CL_ORD_ID) or ""),
        (Tag.EXEC_ID, str(record.order_id)),
        (Tag.EXEC_TYPE, status),
        (Tag.ORD_STATUS, status),
    ]
    if not accepted:
        body.append((Tag.ORD_REJ_REASON, ORD_REJ_REASON.get(decision.reason, OTHER)))
    body += _order_fields(message, record.order, accepted)
    body.append((Tag.TRANSACT_TIME, transact_time(record.received_at)))
    if accepted:
        users = ", ".join(effect.user for effect in decision.applied)
        body.append((Tag.TEXT, f"ACCEPTED for {users}" if users else "ACCEPTED"))
    else:
        body.append((Tag.TEXT, str(decision.reason)))
    return Answer("8", body, ((Tag.POSS_RESEND, "Y"),) if replayed else ())


def conflict_report(
    message: Message, order: Order, client_order_id: str, exc: ClientOrderIdConflict, principal: Principal | None
) -> Answer:
    """A rejected report with ``OrdRejReason (103)`` 6: the ClOrdID belongs to another order.

    Whether the text names that order follows the HTTP API's 409: only to a key that may send orders
    of its strategy.
    """
    holder = exc.record
    text = str(exc)
    if principal is not None and holder is not None and not principal.may_order(holder.order.strategy):
        text = f"ClOrdID (11) {client_order_id!r} is already used by another order; use a new id for a different order"
    body: list[Field] = [
        (Tag.ORDER_ID, "NONE"),
        (Tag.CL_ORD_ID, client_order_id),
        (Tag.EXEC_ID, f"dup-{uuid.uuid4().hex}"),
        (Tag.EXEC_TYPE, "8"),
        (Tag.ORD_STATUS, "8"),
        (Tag.ORD_REJ_REASON, DUPLICATE_ORDER),
        *_order_fields(message, order, accepted=False),
        (Tag.TEXT, text),
    ]
    return Answer("8", body)


def _order_fields(message: Message, order: Order, accepted: bool) -> list[Field]:
    """The order's own fields, with OrderQty and OrdType echoed as sent, and the (zero) fills."""
    quantity = message.get(Tag.ORDER_QTY)
    fields: list[Field] = [
        (Tag.ACCOUNT, order.strategy),
        (Tag.SYMBOL, order.instrument),
        (Tag.SIDE, FIX_SIDE[order.side]),
    ]
    if quantity is not None:
        fields.append((Tag.ORDER_QTY, quantity))
    if (order_type := message.get(Tag.ORD_TYPE)) is not None:
        fields.append((Tag.ORD_TYPE, order_type))
    leaves = quantity if accepted and quantity is not None else "0"
    fields += [(Tag.LEAVES_QTY, leaves), (Tag.CUM_QTY, "0"), (Tag.AVG_PX, "0")]
    return fields


def transact_time(received_at: str) -> str:
    """``2026-12-03T10:00:00.123456Z`` (the log's form) as a FIX UTCTimestamp with milliseconds."""
    date, _, time = received_at.rstrip("Z").partition("T")
    return f"{date.replace('-', '')}-{time[:12]}"


def session_reject(message: Message, tag: int, reason: int, text: str) -> Answer:
    """A session-level Reject (``35=3``) of an application message, naming the tag at fault."""
    body: list[Field] = [
        (Tag.REF_SEQ_NUM, str(message.seq_num or 0)),
        (Tag.REF_TAG_ID, str(tag)),
        (Tag.REF_MSG_TYPE, message.msg_type or ""),
        (Tag.SESSION_REJECT_REASON, str(int(reason))),
        (Tag.TEXT, text),
    ]
    return Answer("3", body)


def business_reject(message: Message, reason: str, text: str) -> Answer:
    """A BusinessMessageReject (``35=j``): 0 other, 4 application not available, 6 not authorised."""
    body: list[Field] = [
        (Tag.REF_SEQ_NUM, str(message.seq_num or 0)),
        (Tag.REF_MSG_TYPE, message.msg_type or ""),
    ]
    if (client_order_id := message.get(Tag.CL_ORD_ID)) is not None:
        body.append((Tag.BUSINESS_REJECT_REF_ID, client_order_id))
    body += [(Tag.BUSINESS_REJECT_REASON, reason), (Tag.TEXT, text)]
    return Answer("j", body)
