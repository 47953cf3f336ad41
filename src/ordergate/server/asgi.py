"""The header limits at the ASGI door, for servers that do not enforce them while reading.

Under ``ordergate serve`` (or ``uvicorn --http ordergate.server:BoundedHttpProtocol``) the protocol
refuses oversized headers as they arrive, before parsing them. Under plain uvicorn the headers are
parsed first, whatever their size; :class:`HeaderLimits`, the application's outermost layer, then at
least answers the same 431 instead of serving the request. It estimates the header size from the
parsed request (never above what the protocol counts, so it never refuses what the protocol let in).
"""

from __future__ import annotations

import orjson
from starlette.types import ASGIApp, Receive, Scope, Send

REQUEST_LINE_OVERHEAD = len(b"  HTTP/1.1\r\n")
HEADER_OVERHEAD = len(b":\r\n")
END_OF_HEADERS = len(b"\r\n")


def header_problem(scope: Scope, max_header_bytes: int, max_headers: int) -> str | None:
    """Why the request's headers are over the limits, or ``None``."""
    headers = scope["headers"]
    if len(headers) > max_headers:
        return f"a request may carry at most {max_headers} header fields"
    query = scope.get("query_string", b"")
    size = len(scope["method"]) + len(scope.get("raw_path") or scope["path"]) + REQUEST_LINE_OVERHEAD + END_OF_HEADERS
    if query:
        size += 1 + len(query)
    for name, value in headers:
        size += len(name) + len(value) + HEADER_OVERHEAD
    if size > max_header_bytes:
        return (
            f"request headers are larger than the limit of {max_header_bytes} bytes"
            " (request line and header fields in all)"
        )
    return None


class HeaderLimits:
    """ASGI middleware: 431 ``{"detail": ...}`` and ``connection: close`` for headers over the limits."""

    def __init__(self, app: ASGIApp, *, max_header_bytes: int, max_headers: int) -> None:
        self.app = app
        self.max_header_bytes = max_header_bytes
        self.max_headers = max_headers

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http":
            problem = header_problem(scope, self.max_header_bytes, self.max_headers)
            if problem is not None:
                body = orjson.dumps({"detail": problem})
                headers = [
                    (b"content-type", b"application/json"),
                    (b"content-length", str(len(body)).encode()),
                    (b"x-content-type-options", b"nosniff"),
                    (b"connection", b"close"),
                ]
                await send({"type": "http.response.start", "status": 431, "headers": headers})
                await send({"type": "http.response.body", "body": body})
                return
        await self.app(scope, receive, send)
