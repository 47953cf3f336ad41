"""Turn stored records into the JSON answers of the API (plain dicts, serialised with orjson)."""

from __future__ import annotations

from typing import Any

from ordergate.domain.book import Position
from ordergate.domain.controls import ControlChange
from ordergate.domain.model import Decision, Order
from ordergate.domain.record import OrderRecord, Trade


def decision_fields(order: Order, decision: Decision, only_user: str | None = None) -> dict[str, Any]:
    """The decision as JSON; with ``only_user``, the per-user lists keep that user's entries only."""
    if only_user is not None:
        decision = decision._replace(
            applied=tuple(e for e in decision.applied if e.user == only_user),
            rejected_for=tuple(r for r in decision.rejected_for if r.user == only_user),
        )
    return {
        "status": decision.status,
        "reason": decision.reason,
        "strategy": order.strategy,
        "instrument": order.instrument,
        "side": order.side,
        "applied": [
            {"user": e.user, "action": e.action, "position_strategy": e.position_strategy} for e in decision.applied
        ],
        "rejected_for": [{"user": r.user, "reason": r.reason} for r in decision.rejected_for],
    }


def order_answer(record: OrderRecord, *, replayed: bool = False, only_user: str | None = None) -> dict[str, Any]:
    answer = {"order_id": record.order_id, **decision_fields(record.order, record.decision, only_user)}
    answer["client_order_id"] = record.client_order_id
    answer["received_at"] = record.received_at
    answer["replayed"] = replayed
    answer["origin"] = record.origin
    answer["actor"] = record.actor
    answer["risk_fingerprint"] = record.risk_fingerprint
    answer["signal_time"] = record.signal_time
    answer["door"] = record.door
    return answer


def control_change_answer(change: ControlChange) -> dict[str, Any]:
    """One control change as ``GET /v1/controls`` lists it (and the event stream's ``control`` event)."""
    return {
        "at": change.at,
        "level": change.setting.level,
        "target": change.setting.target,
        "state": change.setting.state,
        "by": change.by,
        "reason": change.reason,
        "order_id": change.order_id,
    }


def legacy_answer(record: OrderRecord) -> dict[str, Any]:
    return {
        "RESPONSE": record.decision.status,
        "ORDER_ID": record.order_id,
        "REASON": record.decision.reason,
        "USERS": [e.user for e in record.decision.applied],
    }


def position_answer(position: Position) -> dict[str, Any]:
    return {
        "user": position.user,
        "strategy": position.strategy,
        "instrument": position.instrument,
        "opened_order_id": position.opened_order_id,
        "opened_at": position.opened_at,
    }


def trade_answer(trade: Trade) -> dict[str, Any]:
    return {
        "trade_id": trade.trade_id,
        "user": trade.user,
        "strategy": trade.strategy,
        "instrument": trade.instrument,
        "opened_order_id": trade.opened_order_id,
        "opened_at": trade.opened_at,
        "closed_order_id": trade.closed_order_id,
        "closed_at": trade.closed_at,
        "closing_strategy": trade.closing_strategy,
    }


def applied_for(record: OrderRecord, user: str) -> bool:
    """Whether ``record`` opened or closed a position of ``user`` (what a viewer bound to them may see)."""
    return any(e.user == user for e in record.decision.applied)
