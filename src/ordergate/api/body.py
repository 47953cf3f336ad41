"""The one reader of request bodies, for the order-entry fast path and the FastAPI routes alike.

A body is read with a hard size limit: a declared ``Content-Length`` over it is refused (413) before
anything is read, a longer stream as soon as it passes the limit. Before the 413 is raised, a bounded
rest of the body (up to :data:`DRAIN_BYTES`, for at most :data:`DRAIN_SECONDS`) is read and
discarded: a server that answers while the client is still sending and then closes makes the kernel
reset the connection, and clients that send the whole body before reading (Python's ``urllib`` and
``requests``) see ``ECONNRESET`` instead of the 413. Under ``ordergate serve`` the protocol lingers
after the answer as well; this drain is what makes plain uvicorn answer readably too. A client that
asked ``Expect: 100-continue`` has not sent its body, so nothing is drained and none is invited.
"""

from __future__ import annotations

import asyncio
from collections.abc import Sequence

from starlette.types import Receive

from ordergate.api.http import ClientError

DRAIN_BYTES = 16 * 1024 * 1024
DRAIN_SECONDS = 5.0


def _header(headers: Sequence[tuple[bytes, bytes]], name: bytes) -> bytes | None:
    for key, value in headers:
        if key.lower() == name:
            return value
    return None


def _too_large(limit: int) -> ClientError:
    return ClientError(413, f"request body is larger than the limit of {limit} bytes")


async def read_body(receive: Receive, headers: Sequence[tuple[bytes, bytes]], limit: int) -> bytes:
    """The request body from ASGI ``receive``; 413 over ``limit`` bytes, 400 if the client went away."""
    raw_length = _header(headers, b"content-length")
    declared = int(raw_length) if raw_length is not None and raw_length.isdigit() else None
    if declared is not None and declared > limit:
        expects = (_header(headers, b"expect") or b"").lower() == b"100-continue"
        if not expects and declared <= DRAIN_BYTES:
            await _drain(receive, DRAIN_BYTES)
        raise _too_large(limit)
    chunks: list[bytes] = []
    size = 0
    while True:
        message = await receive()
        if message["type"] == "http.disconnect":
            raise ClientError(400, "the client disconnected before sending the whole body")
        chunk = message.get("body", b"")
        size += len(chunk)
        more = message.get("more_body", False)
        if size > limit:
            if more and (declared is None or declared <= DRAIN_BYTES):
                await _drain(receive, DRAIN_BYTES - size)
            raise _too_large(limit)
        chunks.append(chunk)
        if not more:
            return chunks[0] if len(chunks) == 1 else b"".join(chunks)


async def _drain(receive: Receive, budget: int) -> None:
    """Read and discard the rest of the body, up to ``budget`` bytes and :data:`DRAIN_SECONDS`."""
    try:
        async with asyncio.timeout(DRAIN_SECONDS):
            while budget > 0:
                message = await receive()
                if message["type"] != "http.request" or not message.get("more_body", False):
                    return
                budget -= len(message.get("body", b""))
    except TimeoutError:
        return
