"""Small HTTP helpers shared by the routes: body reading, validation, JSON responses.

Order bodies are read with a hard size limit (:mod:`ordergate.api.body`) and validated by
pydantic-core straight from bytes; answers are serialised with orjson. Errors a client causes are
raised as :class:`ClientError` and turned into a 4xx naming the problem by the handlers in
:mod:`ordergate.api.errors`.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, TypeVar

import orjson
from fastapi import Request
from fastapi.responses import Response
from pydantic import BaseModel, ValidationError

M = TypeVar("M", bound=BaseModel)


class ClientError(Exception):
    """A request the client must fix; ``errors`` are FastAPI-style ``{loc, msg, type}`` items."""

    def __init__(self, status: int, message: str, errors: list[dict[str, Any]] | None = None) -> None:
        super().__init__(message)
        self.status = status
        self.message = message
        self.errors = errors


def json_response(content: Any, status: int = 200, headers: Mapping[str, str] | None = None) -> Response:
    return Response(orjson.dumps(content), status_code=status, headers=headers, media_type="application/json")


async def read_body(request: Request, limit: int) -> bytes:
    """The request body, refusing (413) anything over ``limit`` bytes: :func:`ordergate.api.body.read_body`."""
    from ordergate.api.body import read_body as read  # body.py raises this module's ClientError

    return await read(request.receive, request.headers.raw, limit)


def parse(model: type[M], body: bytes) -> M:
    """Validate ``body`` as JSON for ``model``, or raise a 422 :class:`ClientError` saying what is wrong."""
    if not body.strip():
        raise ClientError(
            422,
            "body: the request body is empty; send a JSON object",
            [{"loc": ["body"], "msg": "empty body", "type": "missing"}],
        )
    try:
        return model.model_validate_json(body)
    except ValidationError as exc:
        errors: list[dict[str, Any]] = [
            {
                "loc": ["body", *error["loc"]],
                "msg": error["msg"].removeprefix("Value error, "),
                "type": error["type"],
            }
            for error in exc.errors(include_url=False, include_input=False, include_context=False)
        ]
        raise ClientError(422, describe(errors), errors) from None


def describe(errors: list[dict[str, Any]]) -> str:
    """One line for people: ``strategy: String should have at most 64 characters; side: ...``."""
    parts = []
    for error in errors:
        loc = [str(part) for part in error["loc"] if part != "body"]
        parts.append(f"{'.'.join(loc) or 'body'}: {error['msg']}")
    return "; ".join(parts)
