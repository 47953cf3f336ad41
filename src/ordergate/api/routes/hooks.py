"""``POST /v1/hooks/<token>``: alert webhooks for platforms that cannot set headers (SPEC section 11).

This route documents the endpoint in OpenAPI and serves it when the fast path is off; the door itself
(the token check, the misses held back per address) is :class:`~ordergate.api.webhooks.HookDoor`, and
the order is placed by :func:`ordergate.api.ordering.place_alert`, which the fast path calls too.
"""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Request
from fastapi.responses import Response

from ordergate.api import ordering
from ordergate.api.deps import GatewayDep, SequencerDep
from ordergate.api.http import read_body
from ordergate.api.schemas import InvalidOut, OrderIn, OrderOut, Problem
from ordergate.api.webhooks import HookDoor

router = APIRouter()


ALERT_SCHEMA_NAME = "AlertIn"


def alert_schema() -> dict[str, Any]:
    """The JSON form of an alert, from the v1 order's own schemas (names, signal time), so the two
    cannot drift apart: an instrument may carry an exchange prefix (up to 32 characters more).

    Built when the API document is (``create_app``'s ``openapi``, under ``components``), not at import:
    the name pattern scans the Unicode database, which a gateway's start-up need not wait for."""
    v1 = OrderIn.model_json_schema()["properties"]
    name = {key: v1["strategy"][key] for key in ("pattern", "minLength", "maxLength")}
    instrument = {"type": "string", **name, "maxLength": name["maxLength"] + 32}
    side = {"type": "string", "pattern": "^([Bb][Uu][Yy]|[Ss][Ee][Ll][Ll])$"}
    client_order_id = {"anyOf": [{"type": "string", "pattern": "^[\\x20-\\x7e]{1,128}$"}, {"type": "integer"}]}
    return {
        "type": "object",
        "description": "Other members are ignored.",
        "properties": {
            "instrument": {**instrument, "description": "Or `ticker`, or `symbol`; `NSE:` and such are dropped."},
            "ticker": instrument,
            "symbol": instrument,
            "side": {**side, "description": "buy or sell, any case; or `action`."},
            "action": side,
            "client_order_id": {**client_order_id, "description": "Or `id`; spaces become `_`."},
            "id": client_order_id,
            "strategy": {"anyOf": [{"type": "string"}, {"type": "null"}], "description": "Must be the hook's."},
            "signal_time": {key: v1["signal_time"][key] for key in ("anyOf", "description")},
        },
        "allOf": [  # each in one spelling
            {"oneOf": [{"required": [field]} for field in ("instrument", "ticker", "symbol")]},
            {"oneOf": [{"required": [field]} for field in ("side", "action")]},
            {"not": {"required": ["client_order_id", "id"]}},
        ],
    }


ALERT_BODY: dict[str, Any] = {
    "requestBody": {
        "required": True,
        "description": "The alert message: JSON (whatever the content type, as TradingView sends it as text/plain) "
        "or the text form `BUY GRASIM`, `sell NSE:GRASIM id=abc` (options `id=`, `strategy=`, `signal_time=`).",
        "content": {
            "application/json": {
                "schema": {"$ref": f"#/components/schemas/{ALERT_SCHEMA_NAME}"},
                "example": {"ticker": "NSE:GRASIM", "action": "buy", "id": "Long-2026-12-03T09:15:00Z"},
            },
            "text/plain": {"schema": {"type": "string"}, "example": "sell NSE:GRASIM id=abc"},
        },
    }
}


def _response(reply: ordering.Reply) -> Response:
    return Response(reply.body, status_code=reply.status, headers=dict(reply.headers))


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
async def post_alert(token: str, request: Request, gateway: GatewayDep, sequencer: SequencerDep) -> Response:
    door: HookDoor = request.app.state.hooks
    found = door.admit(token, request.client.host if request.client is not None else "unknown")
    if isinstance(found, ordering.Reply):
        return _response(found)
    body = await read_body(request, gateway.settings.max_body_bytes)
    return _response(await ordering.place_alert(sequencer, found, body))
