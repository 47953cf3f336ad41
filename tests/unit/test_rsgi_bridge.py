"""The RSGI door of ``serve --server granian`` without a network: a fake RSGI protocol object.

:class:`~ordergate.server.rsgi.RsgiGateway` is called as granian calls it, with a scope and a
protocol object that records what was answered; the ASGI side is a tiny app or the real header
and origin checks. Timeouts are shortened to fractions of a second.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass, field
from types import SimpleNamespace
from typing import Any

import orjson
import pytest

from ordergate.config import Settings
from ordergate.server.accesslog import ACCESS_LOGGER, install_access_log_redaction
from ordergate.server.granian_runner import buffer_size
from ordergate.server.limits import ServerLimits
from ordergate.server.rsgi import RsgiGateway

pytestmark = pytest.mark.anyio

App = Callable[[Any, Any, Any], Awaitable[None]]


class Headers:
    def __init__(self, pairs: list[tuple[str, str]]) -> None:
        self.pairs = pairs

    def items(self) -> list[tuple[str, str]]:
        return list(self.pairs)

    def get(self, key: str, default: Any = None) -> Any:
        return next((v for k, v in self.pairs if k == key), default)


@dataclass
class Scope:
    method: str = "GET"
    path: str = "/"
    query_string: str = ""
    header_pairs: list[tuple[str, str]] = field(default_factory=list)
    proto: str = "http"
    http_version: str = "1.1"
    server: str = "127.0.0.1:8080"
    client: str = "127.0.0.1:50000"
    scheme: str = "http"

    @property
    def headers(self) -> Headers:
        return Headers([("host", "gateway"), *self.header_pairs])


class Stream:
    def __init__(self, owner: Proto) -> None:
        self.owner = owner

    async def send_bytes(self, data: bytes) -> None:
        if self.owner.gone.is_set():
            raise RuntimeError("closed")  # as granian's ProtocolClosed
        self.owner.parts.append(data)


class Proto:
    """Records the answer; the body arrives in ``chunks`` (``None``: never, the client stalls)."""

    def __init__(self, chunks: list[bytes] | None = None) -> None:
        self.chunks = chunks
        self.status: int | None = None
        self.headers: list[tuple[str, str]] = []
        self.body = b""
        self.parts: list[bytes] = []
        self.streamed = False
        self.gone = asyncio.Event()

    async def __call__(self) -> bytes:
        if self.chunks is None:
            await asyncio.Event().wait()
        return b"".join(self.chunks or [])

    def __aiter__(self) -> AsyncIterator[bytes]:
        return self._iterate()

    async def _iterate(self) -> AsyncIterator[bytes]:
        if self.chunks is None:
            await asyncio.Event().wait()
        for chunk in self.chunks or []:
            yield chunk

    async def client_disconnect(self) -> None:
        await self.gone.wait()

    def _answer(self, status: int, headers: list[tuple[str, str]]) -> None:
        assert self.status is None, "answered twice"
        self.status = status
        self.headers = headers

    def response_bytes(self, status: int, headers: list[tuple[str, str]], body: bytes) -> None:
        self._answer(status, headers)
        self.body = body

    def response_stream(self, status: int, headers: list[tuple[str, str]]) -> Stream:
        self._answer(status, headers)
        self.streamed = True
        return Stream(self)

    def detail(self) -> str:
        detail: str = orjson.loads(self.body)["detail"]
        return detail


def gateway_door(app: App, *, body_timeout: float = 5.0, state: Any = None, **settings: Any) -> RsgiGateway:
    config = Settings(**settings)
    limits = ServerLimits(body_timeout=body_timeout)
    state = state if state is not None else SimpleNamespace(gateway=SimpleNamespace(sequencer=None))
    return RsgiGateway(app, state, config, limits, access=True)


async def never_called(scope: Any, receive: Any, send: Any) -> None:
    raise AssertionError("order entry went to the ASGI app")


async def echo(scope: Any, receive: Any, send: Any) -> None:
    """Answers the body it read, with the scope's path and query."""
    body = b""
    while True:
        message = await receive()
        body += message.get("body", b"")
        if not message.get("more_body", False):
            break
    answer = orjson.dumps({"path": scope["path"], "query": scope["query_string"].decode(), "body": body.decode()})
    await send({"type": "http.response.start", "status": 200, "headers": [(b"content-type", b"application/json")]})
    await send({"type": "http.response.body", "body": answer})


async def test_a_bridged_request_gets_the_asgi_answer_in_one_response_call() -> None:
    proto = Proto([b'{"a":', b"1}"])
    scope = Scope("PUT", "/v1/controls", "x=1", [("content-length", "7")])
    await gateway_door(echo).__rsgi__(scope, proto)

    assert proto.status == 200
    assert not proto.streamed
    assert orjson.loads(proto.body) == {"path": "/v1/controls", "query": "x=1", "body": '{"a":1}'}


async def test_a_chunked_body_is_read_in_chunks() -> None:
    proto = Proto([b"ab", b"cd", b"ef"])
    await gateway_door(echo).__rsgi__(Scope("POST", "/v1/controls"), proto)

    assert orjson.loads(proto.body)["body"] == "abcdef"


async def test_a_response_in_parts_is_streamed_and_a_gone_client_ends_it() -> None:
    sent: list[int] = []
    ended: list[str] = []

    async def events(scope: Any, receive: Any, send: Any) -> None:
        await receive()
        await send({"type": "http.response.start", "status": 200, "headers": []})
        try:
            for n in range(100):
                await send({"type": "http.response.body", "body": b"event %d\n" % n, "more_body": True})
                sent.append(n)
                if n == 2:
                    proto.gone.set()
                    assert (await receive())["type"] == "http.disconnect"
        except OSError:
            ended.append("client gone")
            raise

    proto = Proto([])
    await gateway_door(events).__rsgi__(Scope(path="/v1/events"), proto)

    assert proto.streamed
    assert proto.status == 200
    assert proto.parts == [b"event 0\n", b"event 1\n", b"event 2\n"]
    assert ended == ["client gone"]


async def test_a_body_not_complete_in_time_gets_408_on_both_doors() -> None:
    for path, app in (("/v1/controls", echo), ("/v1/orders", never_called)):
        proto = Proto(None)
        door = gateway_door(app, body_timeout=0.1)
        async with asyncio.timeout(5):
            await door.__rsgi__(Scope("PUT" if path == "/v1/controls" else "POST", path), proto)
        assert proto.status == 408, path
        assert ("connection", "close") in proto.headers
        assert "not complete in time" in proto.detail()


async def test_order_entry_is_served_without_the_asgi_app_with_the_same_checks() -> None:
    door = gateway_door(never_called)
    order = b'{"strategy":"S","instrument":"I","side":"buy"}'

    starting = Proto([order])
    await door.__rsgi__(Scope("POST", "/v1/orders", header_pairs=[("content-length", str(len(order)))]), starting)
    assert starting.status == 503  # the stub gateway has no sequencer: still starting

    foreign = Proto([order])
    await door.__rsgi__(Scope("POST", "/v1/orders", header_pairs=[("origin", "https://evil.example")]), foreign)
    assert foreign.status == 403
    assert "https://evil.example" in foreign.detail()

    crowded = Proto([order])
    many = [(f"x-h{n}", "v") for n in range(101)]
    await door.__rsgi__(Scope("POST", "/create_order", header_pairs=many), crowded)
    assert crowded.status == 431
    assert crowded.detail() == "a request may carry at most 100 header fields"

    oversized = Proto([b" " * 70_000])
    await door.__rsgi__(Scope("POST", "/v1/orders", header_pairs=[("content-length", "70000")]), oversized)
    assert oversized.status == 413


async def test_with_keys_on_order_entry_goes_through_the_asgi_layers() -> None:
    seen: list[str] = []

    async def layers(scope: Any, receive: Any, send: Any) -> None:
        seen.append(scope["path"])
        await echo(scope, receive, send)

    door = gateway_door(layers, rate_limit=10.0)
    proto = Proto([b"{}"])
    await door.__rsgi__(Scope("POST", "/v1/orders"), proto)

    assert seen == ["/v1/orders"]
    assert proto.status == 200


async def test_an_app_that_fails_before_answering_gives_a_500_without_details() -> None:
    async def broken(scope: Any, receive: Any, send: Any) -> None:
        raise ValueError("secret internals")

    proto = Proto([])
    await gateway_door(broken).__rsgi__(Scope(path="/v1/stats"), proto)

    assert proto.status == 500
    assert "secret" not in proto.detail()


async def test_requests_in_flight_are_counted_and_waited_for() -> None:
    release = asyncio.Event()

    async def slow(scope: Any, receive: Any, send: Any) -> None:
        await release.wait()
        await echo(scope, receive, send)

    door = gateway_door(slow)
    proto = Proto([])
    task = asyncio.create_task(door.__rsgi__(Scope(path="/v1/stats"), proto))
    await asyncio.sleep(0.01)
    assert door.in_flight == 1
    assert not await door.drained(0.05)
    release.set()
    assert await door.drained(1.0)
    await task
    assert door.in_flight == 0
    assert proto.status == 200


async def test_the_access_log_line_has_the_api_key_redacted(caplog: pytest.LogCaptureFixture) -> None:
    install_access_log_redaction()
    with caplog.at_level(logging.INFO, logger=ACCESS_LOGGER):
        await gateway_door(echo).__rsgi__(Scope(path="/v1/events", query_string="after=0&api_key=SECRET"), Proto([]))

    lines = [record.getMessage() for record in caplog.records if record.name == ACCESS_LOGGER]
    assert lines == ['127.0.0.1:50000 - "GET /v1/events?after=0&api_key=[redacted] HTTP/1.1" 200']


def test_hypers_buffer_leaves_room_above_the_header_limit() -> None:
    assert buffer_size(ServerLimits()) == 16 * 1024 + 4096
    assert buffer_size(ServerLimits(max_header_bytes=1024)) == 8192  # hyper's minimum


async def test_headers_and_paths_beyond_latin_1_reach_the_app_as_the_client_sent_them() -> None:
    seen: list[Any] = []

    async def looking(scope: Any, receive: Any, send: Any) -> None:
        seen.append((scope["headers"], scope["path"], scope["raw_path"]))
        await echo(scope, receive, send)

    proto = Proto([])
    await gateway_door(looking).__rsgi__(Scope(path="/v1/users/a b", header_pairs=[("x-note", "€ café")]), proto)

    assert proto.status == 200
    headers, path, raw_path = seen[0]
    assert (b"x-note", "€ café".encode()) in headers
    assert path == "/v1/users/a b"
    assert raw_path == b"/v1/users/a%20b"
