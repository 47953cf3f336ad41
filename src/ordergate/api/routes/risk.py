"""Risk routes (SPEC section 10): ``GET``/``PUT /v1/risk/limits`` and ``GET``/``PUT``/``DELETE /v1/risk/session``.

The work is done by :class:`~ordergate.service.operations.Operations`; these routes parse, check and
answer. Every answer is the whole policy in force (limits by level and target, the session) with the
latest changes, so a client sees at once what its change amounts to.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any

import orjson
from fastapi import APIRouter, Request
from fastapi.responses import Response

from ordergate.api.access import principal_of, viewed_user
from ordergate.api.http import ClientError, json_response, parse, read_body
from ordergate.api.routes.controls import OperationsDep
from ordergate.api.schemas import LIMITS_BODY, InvalidOut, Problem, RiskLimitsIn, RiskOut
from ordergate.domain.risk import RiskChange, RiskError, RiskPolicy, TradingSession
from ordergate.service.operations import RiskRefused

router = APIRouter(tags=["risk"])

_REFUSALS: dict[int | str, dict[str, Any]] = {
    409: {
        "model": Problem,
        "description": "This gateway cannot put the change in force (a breaker or a square-off on a shared store).",
    },
    413: {"model": Problem, "description": "Body over the size limit."},
    422: {"model": InvalidOut, "description": "Not a valid change; `detail` names the field."},
}


def risk_answer(policy: RiskPolicy, changes: list[RiskChange], only_user: str | None = None) -> dict[str, Any]:
    """The policy and its latest changes; with ``only_user`` (a viewer bound to one user), other users'
    limits and changes are left out."""
    document = policy.to_document()
    if only_user is not None:
        document["users"] = {u: v for u, v in document["users"].items() if u == only_user}
        changes = [c for c in changes if c.level != "user" or c.target == only_user]
    return {
        **document,
        "fingerprint": policy.fingerprint,
        "changes": [
            {
                "at": c.at,
                "kind": c.kind,
                "level": c.level,
                "target": c.target,
                "change": orjson.loads(c.change),
                "by": c.by,
            }
            for c in changes
        ],
    }


async def _answer(ops: OperationsDep, policy: RiskPolicy | None = None, only_user: str | None = None) -> Response:
    return json_response(risk_answer(policy or ops.risk, await ops.recent_risk_changes(), only_user))


async def _changed(ops: OperationsDep, change: Callable[[], Awaitable[RiskPolicy]]) -> Response:
    """Make a change and answer the policy it put in force: 422 naming the field, 409 where refused."""
    try:
        policy = await change()
    except RiskError as exc:
        raise ClientError(422, str(exc)) from None
    except RiskRefused as exc:
        raise ClientError(409, str(exc)) from None
    return await _answer(ops, policy)


def _by(request: Request) -> str | None:
    principal = principal_of(request)
    return principal.name if principal is not None else None


@router.get("/v1/risk/limits", response_model=RiskOut, summary="The risk limits and trading session in force")
async def get_limits(ops: OperationsDep, request: Request) -> Response:
    return await _answer(ops, only_user=viewed_user(request))


@router.put(
    "/v1/risk/limits",
    response_model=RiskOut,
    summary="Set or clear limits at the global, a strategy's or a user's level",
    responses=_REFUSALS,
    openapi_extra={"requestBody": {"required": True, "content": {"application/json": {"schema": LIMITS_BODY}}}},
)
async def put_limits(ops: OperationsDep, request: Request) -> Response:
    body = await read_body(request, request.app.state.gateway.settings.max_body_bytes)
    wanted = parse(RiskLimitsIn, body)
    return await _changed(ops, lambda: ops.set_limits(wanted.level, wanted.target, wanted.limits, _by(request)))


@router.get("/v1/risk/session", response_model=RiskOut, summary="The trading session in force (and the limits)")
async def get_session(ops: OperationsDep, request: Request) -> Response:
    return await _answer(ops, only_user=viewed_user(request))


@router.put(
    "/v1/risk/session",
    response_model=RiskOut,
    summary="Set the trading session: orders outside it are REJECTED MARKET_CLOSED",
    responses=_REFUSALS,
    openapi_extra={
        "requestBody": {
            "required": True,
            "content": {
                "application/json": {
                    "schema": {
                        "type": "object",
                        "required": ["open", "close"],
                        "properties": {
                            "timezone": {"type": "string", "default": "Asia/Kolkata"},
                            "open": {"type": "string", "pattern": "^[0-2][0-9]:[0-5][0-9]$"},
                            "close": {"type": "string", "pattern": "^[0-2][0-9]:[0-5][0-9]$"},
                            "days": {
                                "type": "array",
                                "items": {"enum": ["MON", "TUE", "WED", "THU", "FRI", "SAT", "SUN"]},
                            },
                            "square_off": {"type": ["string", "null"]},
                        },
                        "additionalProperties": False,
                    }
                }
            },
        }
    },
)
async def put_session(ops: OperationsDep, request: Request) -> Response:
    body = await read_body(request, request.app.state.gateway.settings.max_body_bytes)
    try:
        document = orjson.loads(body)
    except orjson.JSONDecodeError:
        raise ClientError(422, "body: not JSON; send a session object") from None
    try:
        session = TradingSession.from_document(document)
    except RiskError as exc:
        raise ClientError(422, str(exc)) from None
    return await _changed(ops, lambda: ops.set_session(session, _by(request)))


@router.delete(
    "/v1/risk/session", response_model=RiskOut, summary="Remove the trading session: orders are taken at any time"
)
async def delete_session(ops: OperationsDep, request: Request) -> Response:
    return await _changed(ops, lambda: ops.set_session(None, _by(request)))
