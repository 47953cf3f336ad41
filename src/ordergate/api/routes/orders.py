"""Order entry: ``POST /create_order`` (the original kit's contract) and ``POST /v1/orders``.

Bodies are read with a size limit and validated from raw bytes against the schemas that the OpenAPI
document shows (see :func:`ordergate.api.app.create_app`); the decision comes from the sequencer,
which answers only once the order is committed.
"""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Header, Request
from fastapi.responses import Response

from ordergate.api.answers import decision_fields, legacy_answer, order_answer
from ordergate.api.deps import GatewayDep, SequencerDep
from ordergate.api.http import ClientError, json_response, parse, read_body
from ordergate.api.schemas import (
    CheckOut,
    LegacyInvalidOut,
    LegacyOrderIn,
    LegacyOrderOut,
    OrderIn,
    OrderOut,
    Problem,
    client_order_id_problem,
)
from ordergate.domain.model import Order

router = APIRouter()

IdempotencyKey = Annotated[
    str | None,
    Header(description="1 to 128 printable ASCII characters without spaces; same role as client_order_id."),
]


def request_body(model: type[Any]) -> dict[str, Any]:
    """``openapi_extra`` documenting a JSON body validated by the route itself."""
    ref = {"$ref": f"#/components/schemas/{model.__name__}"}
    return {"requestBody": {"required": True, "content": {"application/json": {"schema": ref}}}}


_ERRORS: dict[int | str, dict[str, Any]] = {
    413: {"model": Problem, "description": "Body over the size limit."},
    503: {
        "model": Problem,
        "description": "The store could not commit; nothing was stored. See Retry-After.",
    },
}


def _checked_key(key: str | None, legacy: bool) -> str | None:
    if key is None:
        return None
    problem = client_order_id_problem(key)
    if problem is not None:
        where = "Idempotency-Key header"
        raise ClientError(
            422,
            f"{where}: {problem}",
            None if legacy else [{"loc": ["header", "idempotency-key"], "msg": problem, "type": "value_error"}],
        )
    return key


@router.post(
    "/create_order",
    tags=["legacy"],
    summary="Place an order (original kit's contract)",
    response_model=LegacyOrderOut,
    responses={422: {"model": LegacyInvalidOut, "description": "Malformed order."}, **_ERRORS},
    openapi_extra=request_body(LegacyOrderIn),
)
async def create_order_legacy(
    request: Request, gateway: GatewayDep, sequencer: SequencerDep, idempotency_key: IdempotencyKey = None
) -> Response:
    body = parse(LegacyOrderIn, await read_body(request, gateway.settings.max_body_bytes))
    key = _checked_key(idempotency_key, legacy=True)
    outcome = await sequencer.submit(Order(body.STRATEGY, body.INSTRUMENT, body.POSITION), key)
    return json_response(legacy_answer(outcome.record))


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
    body = parse(OrderIn, await read_body(request, gateway.settings.max_body_bytes))
    key = _checked_key(idempotency_key, legacy=False)
    if key is not None and body.client_order_id is not None and key != body.client_order_id:
        raise ClientError(422, "Idempotency-Key header and client_order_id differ; send one of them, or equal values")
    outcome = await sequencer.submit(Order(body.strategy, body.instrument, body.side), key or body.client_order_id)
    return json_response(order_answer(outcome.record, replayed=outcome.replayed), 200 if outcome.replayed else 201)


@router.post(
    "/v1/orders/check",
    tags=["orders"],
    summary="The decision an order would get now; nothing is stored",
    response_model=CheckOut,
    responses=_ERRORS,
    openapi_extra=request_body(OrderIn),
)
async def check_order(request: Request, gateway: GatewayDep, sequencer: SequencerDep) -> Response:
    body = parse(OrderIn, await read_body(request, gateway.settings.max_body_bytes))
    order = Order(body.strategy, body.instrument, body.side)
    return json_response(decision_fields(order, sequencer.check(order)))
