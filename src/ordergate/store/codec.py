"""How a decision's effects are written into a single column and read back, shared by every engine.

Effects are stored compactly as JSON arrays (``[[user, action, position_strategy], ...]`` and
``[[user, reason], ...]``) so that one order is one row, whatever its fan-out.
"""

from __future__ import annotations

import orjson

from ordergate.domain.model import Action, Decision, Effect, Order, Reason, Refusal, Scope, Side, Status
from ordergate.domain.record import OrderRecord


def encode_applied(decision: Decision) -> str:
    return orjson.dumps([[e.user, e.action, e.position_strategy] for e in decision.applied]).decode()


def encode_rejected_for(decision: Decision) -> str:
    return orjson.dumps([[r.user, r.reason] for r in decision.rejected_for]).decode()


def decode_record(
    order_id: int,
    received_at: str,
    strategy: str,
    instrument: str,
    side: str,
    status: str,
    reason: str | None,
    scope: str,
    fingerprint: str,
    client_order_id: str | None,
    applied: str | bytes,
    rejected_for: str | bytes,
    controls_fingerprint: str | None = None,
    chain_hash: str | None = None,
) -> OrderRecord:
    """Rebuild a record from its stored columns (opened/closed positions are not kept in the row)."""
    decision = Decision(
        Status(status),
        Reason(reason) if reason is not None else None,
        tuple(Effect(user, Action(action), pos) for user, action, pos in orjson.loads(applied)),
        tuple(Refusal(user, Reason(why)) for user, why in orjson.loads(rejected_for)),
    )
    return OrderRecord(
        order_id=order_id,
        received_at=received_at,
        order=Order(strategy, instrument, Side(side)),
        decision=decision,
        scope=Scope(scope),
        profile_fingerprint=fingerprint,
        client_order_id=client_order_id,
        controls_fingerprint=controls_fingerprint,
        chain_hash=chain_hash,
    )
