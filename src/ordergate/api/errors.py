"""Exception handlers: every failure leaves as a clear 4xx, or a 503 with Retry-After, never a trace.

ClientError            -> its own 4xx (413 too large, 422 invalid, 409 conflict, 404 not found)
RequestValidationError -> 422 (query and path parameters validated by FastAPI)
StoreUnavailable       -> 503 with Retry-After: nothing of the order was stored
anything else          -> 500 with a generic message; the trace goes to the log only
"""

from __future__ import annotations

import logging

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import Response

from ordergate.api.http import ClientError, describe, json_response
from ordergate.errors import ClientOrderIdConflict, StoreUnavailable

log = logging.getLogger(__name__)

LEGACY_PATH = "/create_order"


def _is_legacy(request: Request) -> bool:
    return request.url.path == LEGACY_PATH


async def _client_error(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, ClientError)
    if _is_legacy(request) and exc.status == 422:
        return json_response({"RESPONSE": "REJECTED", "REASON": "INVALID_ORDER", "DETAIL": exc.message}, 422)
    body: dict[str, object] = {"detail": exc.errors if exc.errors is not None else exc.message}
    if exc.errors is not None:
        body["message"] = exc.message
    return json_response(body, exc.status)


async def _validation_error(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, RequestValidationError)
    errors = [
        {"loc": list(e.get("loc", ())), "msg": str(e.get("msg", "")), "type": str(e.get("type", ""))}
        for e in exc.errors()
    ]
    return json_response({"detail": errors, "message": describe(errors)}, 422)


async def _conflict(request: Request, exc: Exception) -> Response:
    return json_response({"detail": str(exc)}, 409)


async def _unavailable(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, StoreUnavailable)
    return json_response(
        {"detail": f"the order was not stored, retry later: {exc}"},
        503,
        headers={"Retry-After": str(exc.retry_after)},
    )


async def _unexpected(request: Request, exc: Exception) -> Response:
    log.exception("unexpected error on %s %s", request.method, request.url.path, exc_info=exc)
    return json_response({"detail": "internal error; the server log has the details"}, 500)


def install_error_handlers(app: FastAPI) -> None:
    app.add_exception_handler(ClientError, _client_error)
    app.add_exception_handler(RequestValidationError, _validation_error)
    app.add_exception_handler(ClientOrderIdConflict, _conflict)
    app.add_exception_handler(StoreUnavailable, _unavailable)
    app.add_exception_handler(Exception, _unexpected)
