"""Exception handlers: every failure leaves as a clear 4xx, or a 503 with Retry-After, never a trace.

ClientError            -> its own 4xx (413 too large, 422 invalid, 409 conflict, 404 not found)
StoredRowError         -> 409: the stored order was altered and cannot be shown (listings leave it out)
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
from ordergate.api.ordering import error_reply
from ordergate.errors import ClientOrderIdConflict, StoredRowError, StoreUnavailable

log = logging.getLogger(__name__)

LEGACY_PATH = "/create_order"


async def _known_error(request: Request, exc: Exception) -> Response:
    reply = error_reply(exc, legacy=request.url.path == LEGACY_PATH)
    return Response(reply.body, status_code=reply.status, headers=dict(reply.headers))


async def _validation_error(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, RequestValidationError)
    errors = [
        {
            "loc": list(e.get("loc", ())),
            "msg": str(e.get("msg", "")).removeprefix("Value error, "),
            "type": str(e.get("type", "")),
        }
        for e in exc.errors()
    ]
    return json_response({"detail": errors, "message": describe(errors)}, 422)


async def _unexpected(request: Request, exc: Exception) -> Response:
    log.exception("unexpected error on %s %s", request.method, request.url.path, exc_info=exc)
    return json_response({"detail": "internal error; the server log has the details"}, 500)


def install_error_handlers(app: FastAPI) -> None:
    app.add_exception_handler(RequestValidationError, _validation_error)
    for known in (ClientError, ClientOrderIdConflict, StoredRowError, StoreUnavailable):
        app.add_exception_handler(known, _known_error)
    app.add_exception_handler(Exception, _unexpected)
