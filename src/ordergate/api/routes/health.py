"""Probes: ``/healthz`` says the process is up; ``/readyz`` that it recovered and can commit."""

from __future__ import annotations

from fastapi import APIRouter
from fastapi.responses import Response

from ordergate.api.deps import GatewayDep
from ordergate.api.http import json_response
from ordergate.errors import StoreUnavailable

router = APIRouter(tags=["probes"])


@router.get("/healthz")
async def healthz() -> Response:
    return json_response({"status": "ok"})


@router.get("/readyz", responses={503: {"description": "Not recovered yet, or the store cannot commit."}})
async def readyz(gateway: GatewayDep) -> Response:
    sequencer = gateway.sequencer
    if not gateway.ready or sequencer is None:
        return json_response({"status": "starting"}, 503, {"Retry-After": "1"})
    if sequencer.failing():
        return json_response({"status": "store failing: recent commits failed"}, 503, {"Retry-After": "1"})
    try:
        await gateway.store.ping()
    except StoreUnavailable as exc:
        return json_response({"status": f"store unreachable: {exc}"}, 503, {"Retry-After": "1"})
    return json_response({"status": "ready"})
