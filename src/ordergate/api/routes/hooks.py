"""``POST /v1/hooks/<token>``: alert webhooks for platforms that cannot set headers (SPEC section 11).

The secret path is the credential, with auth on or off (the guard lets ``/v1/hooks/*`` through without
a key). A token that is no active hook of the home's hooks file, revoked or never made alike, is
answered exactly as a path that does not exist (404 ``{"detail": "Not Found"}``), and costs its client
address one of :data:`MISS_BURST` misses, refilled one every ``1 / MISS_RATE`` seconds: past them every
hook request from that address is 429 until one refills, so guessing 256-bit tokens cannot even be
tried at speed, and a valid token cannot be told apart while an address is held back. A known hook's
body is read as an alert and placed through :func:`ordergate.api.ordering.place_alert`, the same path
as ``POST /v1/orders``, so the answer is the v1 answer.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Annotated, Any

from fastapi import APIRouter, Header, Request
from fastapi.responses import Response

from ordergate.api import ordering
from ordergate.api.deps import GatewayDep, SequencerDep
from ordergate.api.http import read_body
from ordergate.api.schemas import CLIENT_ORDER_ID_PATTERN, InvalidOut, OrderOut, Problem
from ordergate.security.hooks import HookRing
from ordergate.security.ratelimit import RateLimiter

router = APIRouter()

MISS_BURST = 10
"""Unknown tokens a client address may present before its hook requests are refused (429)."""
MISS_RATE = 0.2
"""Misses given back per second (one every 5 s)."""
NOT_FOUND = b'{"detail":"Not Found"}'
"""The answer to an unknown or revoked token: the very body of a path that does not exist."""


@dataclass(slots=True)
class HookDoor:
    """The hooks of a running gateway (in memory, reloaded on change) and the misses of each address."""

    ring: HookRing
    misses: RateLimiter = field(default_factory=lambda: RateLimiter(MISS_RATE, MISS_BURST))


def _address(request: Request) -> str:
    return request.client.host if request.client is not None else "unknown"


ALERT_BODY: dict[str, Any] = {
    "requestBody": {
        "required": True,
        "description": "The alert message: JSON (whatever the content type, as TradingView sends it as text/plain) "
        "or the text form `BUY GRASIM`, `sell NSE:GRASIM id=abc`. An exchange prefix such as `NSE:` is dropped.",
        "content": {
            "application/json": {
                "schema": {
                    "type": "object",
                    "properties": {
                        "instrument": {"type": "string", "description": "Or `ticker`, or `symbol`."},
                        "ticker": {"type": "string"},
                        "symbol": {"type": "string"},
                        "side": {"type": "string", "description": "buy or sell, any case; or `action`."},
                        "action": {"type": "string"},
                        "client_order_id": {"type": "string", "description": "Or `id`; whitespace becomes `_`."},
                        "id": {"type": "string"},
                        "strategy": {"type": "string", "description": "Optional; must be the hook's strategy."},
                        "signal_time": {"anyOf": [{"type": "string", "format": "date-time"}, {"type": "integer"}]},
                    },
                },
                "example": {"ticker": "NSE:GRASIM", "action": "buy", "id": "Long-2026-12-03T09:15:00Z"},
            },
            "text/plain": {"schema": {"type": "string"}, "example": "sell NSE:GRASIM id=abc"},
        },
    }
}


@router.post(
    "/v1/hooks/{token}",
    tags=["hooks"],
    summary="Place an order from an alert (TradingView, ChartInk, Amibroker); the secret path is the credential",
    status_code=201,
    response_model=OrderOut,
    responses={
        200: {"model": OrderOut, "description": "Replay: this id was already decided."},
        403: {"model": Problem, "description": "The alert names another strategy than the hook's."},
        404: {"model": Problem, "description": "No such hook (unknown or revoked: the same answer)."},
        409: {"model": Problem, "description": "The id is already used for a different order."},
        413: {"model": Problem, "description": "Body over the size limit."},
        422: {"model": InvalidOut, "description": "The alert is not an order; `detail` says why."},
        429: {"model": Problem, "description": "Too many unknown tokens from this address; see Retry-After."},
        503: {"model": Problem, "description": "The store could not commit; nothing was stored. See Retry-After."},
    },
    openapi_extra=ALERT_BODY,
)
async def post_alert(
    token: str,
    request: Request,
    gateway: GatewayDep,
    sequencer: SequencerDep,
    idempotency_key: Annotated[
        str | None,
        Header(description="Optional, for senders that can set headers; same role as `id`.",
               json_schema_extra={"pattern": CLIENT_ORDER_ID_PATTERN}),
    ] = None,
) -> Response:  # fmt: skip
    door: HookDoor = request.app.state.hooks
    address = _address(request)
    wait = door.misses.wait(address)
    if wait > 0.0:
        return Response(
            b'{"detail":"too many requests for unknown hooks from this address; retry later"}',
            status_code=429,
            media_type="application/json",
            headers={"retry-after": str(max(1, math.ceil(wait)))},
        )
    hook = door.ring.find(token)
    if hook is None:
        door.misses.take(address)
        return Response(NOT_FOUND, status_code=404, media_type="application/json")
    body = await read_body(request, gateway.settings.max_body_bytes)
    reply = await ordering.place_alert(sequencer, hook, body, idempotency_key)
    return Response(reply.body, status_code=reply.status, headers=dict(reply.headers))
