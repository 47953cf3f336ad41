"""Helpers for the operator-facing integration tests: an in-process gateway that exposes its app, and a
client of ``GET /v1/events`` that talks ASGI directly, as a server would.

httpx's ASGI transport collects a whole response before returning it, which an endless event stream
never finishes; :class:`EventStreamClient` instead receives the body chunk by chunk, and can stop
reading (``pause``) to play a client whose socket is full, the way a server's ``send`` blocks.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import orjson

from ordergate.api.app import create_app
from ordergate.bootstrap import prepare_gateway
from ordergate.config import Settings
from ordergate.service.gateway import Gateway

WAIT = 10.0


@dataclass(frozen=True)
class Event:
    event: str
    id: str | None
    data: str

    def json(self) -> Any:
        return orjson.loads(self.data)


@dataclass
class Running:
    app: Any
    client: httpx.AsyncClient
    gateway: Gateway


@asynccontextmanager
async def running(home: Path, **settings: object) -> AsyncIterator[Running]:
    config = Settings(home=home, **settings)  # type: ignore[arg-type]
    gateway = prepare_gateway(config)
    app = create_app(config, gateway)
    async with app.router.lifespan_context(app):
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://gateway") as client:
            yield Running(app, client, gateway)


class EventStreamClient:
    def __init__(self, app: Any, *, query: str = "", headers: dict[str, str] | None = None) -> None:
        self._app = app
        self._query = query
        self._headers = [(k.lower().encode(), v.encode()) for k, v in (headers or {}).items()]
        self._buffer = b""
        self._arrived = asyncio.Event()
        self._writable = asyncio.Event()
        self._writable.set()
        self._gone = asyncio.Event()
        self._request_sent = False
        self.status: int | None = None
        self.headers: dict[str, str] = {}
        self.ended = False
        self._task: asyncio.Task[None] | None = None

    async def __aenter__(self) -> EventStreamClient:
        self._task = asyncio.create_task(self._app(self._scope(), self._receive, self._send))
        async with asyncio.timeout(WAIT):
            while self.status is None and not self._task.done():
                await self._wait_for_bytes()
        return self

    async def __aexit__(self, *_: object) -> None:
        self._gone.set()
        self._writable.set()
        assert self._task is not None
        async with asyncio.timeout(WAIT):
            await self._task

    def _scope(self) -> dict[str, Any]:
        return {
            "type": "http",
            "asgi": {"version": "3.0", "spec_version": "2.3"},
            "http_version": "1.1",
            "method": "GET",
            "scheme": "http",
            "path": "/v1/events",
            "raw_path": b"/v1/events",
            "root_path": "",
            "query_string": self._query.encode(),
            "headers": [(b"host", b"gateway"), (b"accept", b"text/event-stream"), *self._headers],
            "client": ("127.0.0.1", 40000),
            "server": ("gateway", 80),
            "state": {},
        }

    async def _receive(self) -> dict[str, Any]:
        if not self._request_sent:
            self._request_sent = True
            return {"type": "http.request", "body": b"", "more_body": False}
        await self._gone.wait()
        return {"type": "http.disconnect"}

    async def _send(self, message: dict[str, Any]) -> None:
        await self._writable.wait()
        if message["type"] == "http.response.start":
            self.status = message["status"]
            self.headers = {k.decode(): v.decode() for k, v in message.get("headers", [])}
        elif message["type"] == "http.response.body":
            self._buffer += message.get("body", b"")
            if not message.get("more_body", False):
                self.ended = True
        self._arrived.set()

    async def _wait_for_bytes(self) -> None:
        self._arrived.clear()
        assert self._task is not None
        waiter = asyncio.ensure_future(self._arrived.wait())
        await asyncio.wait({waiter, self._task}, return_when=asyncio.FIRST_COMPLETED)
        waiter.cancel()

    def pause(self) -> None:
        """Stop reading: the server's next ``send`` blocks, as with a client whose socket is full."""
        self._writable.clear()

    def resume(self) -> None:
        self._writable.set()

    def body(self) -> bytes:
        return self._buffer

    def _frames(self) -> list[Event]:
        events = []
        while b"\n\n" in self._buffer:
            raw, self._buffer = self._buffer.split(b"\n\n", 1)
            fields: dict[str, str] = {}
            for line in raw.decode().split("\n"):
                if not line or line.startswith(":"):
                    continue
                name, _, value = line.partition(": ")
                fields[name] = value
            if "data" in fields:
                events.append(Event(fields.get("event", "message"), fields.get("id"), fields["data"]))
        return events

    async def events(self, count: int, timeout: float = WAIT) -> list[Event]:
        """The next ``count`` events (comments and the retry hint are skipped)."""
        got: list[Event] = []
        async with asyncio.timeout(timeout):
            while True:
                got.extend(self._frames())
                if len(got) >= count:
                    assert len(got) == count, f"expected {count} events, got {len(got)}: {got}"
                    return got
                if self.ended:
                    raise AssertionError(f"the stream ended after {len(got)} of {count} events: {got}")
                await self._wait_for_bytes()

    async def until_end(self, timeout: float = WAIT) -> list[Event]:
        """Every event until the server ends the stream."""
        got: list[Event] = []
        async with asyncio.timeout(timeout):
            while not self.ended:
                got.extend(self._frames())
                await self._wait_for_bytes()
        return got + self._frames()

    async def nothing_more(self, wait: float = 0.3) -> list[Event]:
        """Events that arrive within ``wait`` seconds (expected: none)."""
        await asyncio.sleep(wait)
        return self._frames()
