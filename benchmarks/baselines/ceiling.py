"""Baseline 1, the HTTP ceiling: a raw ASGI app that reads the body and returns a constant JSON.

Served by the same stack as ordergate (uvicorn with httptools and uvloop), nothing written in Python
over HTTP can answer faster than this.
"""

from __future__ import annotations

from typing import Any

ANSWER = b'{"RESPONSE":"ACCEPTED","ORDER_ID":1,"REASON":null,"USERS":["Holland Proctor"]}'
HEADERS = [(b"content-type", b"application/json"), (b"content-length", str(len(ANSWER)).encode())]


async def app(scope: dict[str, Any], receive: Any, send: Any) -> None:
    if scope["type"] != "http":
        return
    more = True
    while more:
        message = await receive()
        more = message.get("more_body", False)
    await send({"type": "http.response.start", "status": 200, "headers": HEADERS})
    await send({"type": "http.response.body", "body": ANSWER})
