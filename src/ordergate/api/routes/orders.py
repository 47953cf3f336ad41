"""Order entry routes: ``POST /create_order`` (the original kit's contract) and ``/v1/orders[...]``.

These routes document the endpoints in OpenAPI and serve them when the fast path is off; the work is
done by :mod:`ordergate.api.ordering`, which the fast path of :mod:`ordergate.api.fastpath` calls too.
"""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Header, Request
from fastapi.responses import Response

from ordergate.api import ordering
from ordergate.api.access import principal_of
from ordergate.api.deps import GatewayDep, SequencerDep
from ordergate.api.http import read_body
from ordergate.api.schemas import (
    CLIENT_ORDER_ID_PATTERN,
    BatchIn,
    BatchOut,
    CheckOut,
    InvalidOut,
    LegacyInvalidOut,
    LegacyOrderIn,
    LegacyOrderOut,
    OrderIn,
    OrderOut,
    Problem,
)

router = APIRouter()

IdempotencyKey = Annotated[
    str | None,
    Header(
        description="1 to 128 printable ASCII characters without spaces; same role as client_order_id.",
        json_schema_extra={"pattern": CLIENT_ORDER_ID_PATTERN},
    ),
]


def request_body(model: type[Any]) -> dict[str, Any]:
    """``openapi_extra`` documenting a JSON body validated by :mod:`ordergate.api.ordering`."""
    ref = {"$ref": f"#/components/schemas/{model.__name__}"}
    return {"requestBody": {"required": True, "content": {"application/json": {"schema": ref}}}}


def _response(reply: ordering.Reply) -> Response:
    return Response(reply.body, status_code=reply.status, headers=dict(reply.headers))


_ERRORS: dict[int | str, dict[str, Any]] = {
    413: {"model": Problem, "description": "Body over the size limit."},
    422: {"model": InvalidOut, "description": "The body (or a header) is not a valid order; `message` says why."},
    503: {"model": Problem, "description": "The store could not commit; nothing was stored. See Retry-After."},
}
_CONFLICT: dict[int | str, dict[str, Any]] = {
    409: {"model": Problem, "description": "client_order_id (or Idempotency-Key) already used for a different order."}
}


@router.post(
    "/create_order",
    tags=["legacy"],
    summary="Place an order (original kit's contract)",
    response_model=LegacyOrderOut,
    responses={**_ERRORS, **_CONFLICT, 422: {"model": LegacyInvalidOut, "description": "Malformed order."}},
    openapi_extra=request_body(LegacyOrderIn),
)
async def create_order_legacy(
    request: Request, gateway: GatewayDep, sequencer: SequencerDep, idempotency_key: IdempotencyKey = None
) -> Response:
    body = await read_body(request, gateway.settings.max_body_bytes)
    return _response(await ordering.place_legacy(sequencer, body, idempotency_key, principal_of(request)))


@router.post(
    "/v1/orders",
    tags=["orders"],
    summary="Place an order",
    status_code=201,
    response_model=OrderOut,
    responses={
        200: {"model": OrderOut, "description": "Replay: this client_order_id was already decided."},
        409: {"model": Problem, "description": "client_order_id already used for a different order."},
        **_ERRORS,
    },
    openapi_extra=request_body(OrderIn),
)
async def create_order(
    request: Request, gateway: GatewayDep, sequencer: SequencerDep, idempotency_key: IdempotencyKey = None
) -> Response:
    body = await read_body(request, gateway.settings.max_body_bytes)
    return _response(await ordering.place_order(sequencer, body, idempotency_key, principal_of(request)))


@router.post(
    "/v1/orders/batch",
    tags=["orders"],
    summary="Place up to 1000 orders, in order, each atomic on its own",
    response_model=BatchOut,
    responses=_ERRORS,
    openapi_extra=request_body(BatchIn),
)
async def create_orders(request: Request, gateway: GatewayDep, sequencer: SequencerDep) -> Response:
    body = await read_body(request, gateway.settings.max_batch_body_bytes)
    return _response(await ordering.place_batch(sequencer, body, principal_of(request)))


@router.post(
    "/v1/orders/check",
    tags=["orders"],
    summary="The decision an order would get now; nothing is stored",
    response_model=CheckOut,
    responses=_ERRORS,
    openapi_extra=request_body(OrderIn),
)
async def check_order(request: Request, gateway: GatewayDep, sequencer: SequencerDep) -> Response:
    body = await read_body(request, gateway.settings.max_body_bytes)
    return _response(ordering.check_order(sequencer, body, principal_of(request)))
