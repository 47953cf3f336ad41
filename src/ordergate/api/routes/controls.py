"""Operator routes: trading controls (``GET``/``PUT /v1/controls``), ``POST /v1/controls/flatten`` and
``POST /v1/admin/reload-profiles``.

The work is done by :class:`~ordergate.service.operations.Operations`; these routes parse, check and
answer. A viewer bound to one user sees the gateway's state and only the controls that can hold that
user back (its own, and those of the strategies it subscribes to).
"""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Depends, Request
from fastapi.responses import Response

from ordergate.api.access import principal_of, viewed_user
from ordergate.api.answers import order_answer
from ordergate.api.http import ClientError, json_response, parse, read_body
from ordergate.api.schemas import (
    FLATTEN_BODY,
    ControlIn,
    ControlsOut,
    FlattenIn,
    FlattenOut,
    InvalidOut,
    Problem,
    ReloadOut,
)
from ordergate.domain.controls import ControlChange, ControlError, Controls, ControlSetting
from ordergate.service.operations import Operations, ProfilesRefused

router = APIRouter(tags=["controls"])


def operations(request: Request) -> Operations:
    ops: Operations = request.app.state.operations
    return ops


OperationsDep = Annotated[Operations, Depends(operations)]


def controls_answer(controls: Controls, changes: list[ControlChange], only_user: str | None = None) -> dict[str, Any]:
    document = controls.to_document()
    if only_user is not None:
        document["users"] = {u: s for u, s in document["users"].items() if u == only_user}
        changes = [c for c in changes if c.setting.level == "global" or c.setting.target == only_user]
    return {
        **document,
        "fingerprint": controls.fingerprint,
        "changes": [
            {
                "at": c.at,
                "level": c.setting.level,
                "target": c.setting.target,
                "state": c.setting.state,
                "by": c.by,
                "reason": c.reason,
                "order_id": c.order_id,
            }
            for c in changes
        ],
    }


@router.get("/v1/controls", response_model=ControlsOut, summary="The trading controls in force")
async def get_controls(ops: OperationsDep, request: Request) -> Response:
    only = viewed_user(request)
    controls = ops.controls
    if only is not None:
        subscribed = set(request.app.state.gateway.registry.profiles().get(only, {}))
        controls = Controls(
            controls.gateway,
            {s: v for s, v in controls.strategies.items() if s in subscribed},
            {u: v for u, v in controls.users.items() if u == only},
        )
    return json_response(controls_answer(controls, await ops.recent_changes(), only))


@router.put(
    "/v1/controls",
    response_model=ControlsOut,
    summary="Halt, reduce-only or reactivate the gateway, a strategy or a user",
    responses={
        413: {"model": Problem, "description": "Body over the size limit."},
        422: {"model": InvalidOut, "description": "Not a valid control; `detail` says what is wrong."},
    },
    openapi_extra={
        "requestBody": {
            "required": True,
            "content": {"application/json": {"schema": {"$ref": "#/components/schemas/ControlIn"}}},
        }
    },
)
async def put_controls(ops: OperationsDep, request: Request) -> Response:
    body = await read_body(request, request.app.state.gateway.settings.max_body_bytes)
    wanted = parse(ControlIn, body)
    principal = principal_of(request)
    try:
        controls = await ops.set_control(
            ControlSetting(wanted.level, wanted.target, wanted.state), principal.name if principal else None
        )
    except ControlError as exc:
        raise ClientError(422, str(exc)) from None
    return json_response(controls_answer(controls, await ops.recent_changes()))


@router.post(
    "/v1/controls/flatten",
    response_model=FlattenOut,
    summary="Close every open position of the gateway, a strategy or a user at once (a kill switch with then=HALTED)",
    responses={
        413: {"model": Problem, "description": "Body over the size limit."},
        422: {"model": InvalidOut, "description": "Not a valid scope; `detail` says what is wrong."},
        503: {"model": Problem, "description": "Not stored: nothing was closed, retry."},
    },
    openapi_extra={"requestBody": {"required": True, "content": {"application/json": {"schema": FLATTEN_BODY}}}},
)
async def flatten(ops: OperationsDep, request: Request) -> Response:
    body = await read_body(request, request.app.state.gateway.settings.max_body_bytes)
    wanted = parse(FlattenIn, body)
    principal = principal_of(request)
    try:
        records, controls = await ops.flatten(
            wanted.level, wanted.target, wanted.then, principal.name if principal else None
        )
    except ControlError as exc:
        raise ClientError(422, str(exc)) from None
    answer = {
        "orders": [order_answer(r) for r in records],
        "controls": controls_answer(controls, await ops.recent_changes()),
    }
    return json_response(answer)


@router.get("/v1/whoami", tags=["admin"], summary="The key this request was made with: its name, role and bounds")
async def whoami(request: Request) -> Response:
    """What the dashboard asks to know which buttons to offer (a producer key, which may not read, gets 403)."""
    principal = principal_of(request)
    if principal is None:
        return json_response({"auth": False, "name": None, "role": None, "strategies": None, "user": None})
    strategies = sorted(principal.strategies) if principal.strategies is not None else None
    return json_response(
        {
            "auth": True,
            "name": principal.name,
            "role": principal.role.value,
            "strategies": strategies,
            "user": principal.user,
        }
    )


@router.post(
    "/v1/admin/reload-profiles",
    tags=["admin"],
    response_model=ReloadOut,
    summary="Load the profile file again, without a restart (as SIGHUP does)",
    responses={422: {"model": Problem, "description": "The file is refused; the profiles in force stay."}},
)
async def reload_profiles(ops: OperationsDep, request: Request) -> Response:
    principal = principal_of(request)
    try:
        result = await ops.reload_profiles(principal.name if principal else "an API call")
    except ProfilesRefused as exc:
        raise ClientError(422, f"profiles not reloaded, the profiles in force stay: {exc}") from None
    return json_response(
        {
            "fingerprint": result.fingerprint,
            "previous_fingerprint": result.previous_fingerprint,
            "changed": result.changed,
            "users": result.users,
            "strategies": result.strategies,
        }
    )
