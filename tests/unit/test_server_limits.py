"""The bounded protocol without a network: bytes fed to a protocol instance over a fake transport.

Each test builds one :class:`~ordergate.server.protocol.BoundedHttpProtocol` (uvicorn's httptools
protocol and request cycle, for real) around a tiny ASGI app, feeds it request bytes as the event
loop would, and looks at what it wrote and whether it closed. Timeouts are shortened to fractions of
a second; the stall test holds the event loop with ``time.sleep`` as a stopped process would.
"""

from __future__ import annotations

import asyncio
import logging
import resource
import time
from collections.abc import Awaitable, Callable
from typing import Any

import orjson
import pytest
import uvicorn
from uvicorn.server import ServerState

from ordergate.config import Settings
from ordergate.server import BoundedHttpProtocol, ServerLimits, bounded_protocol, derived_max_connections
from ordergate.server import limits as limits_module
from ordergate.server.accesslog import RedactApiKeys, redact
from ordergate.server.asgi import HeaderLimits

pytestmark = pytest.mark.anyio

App = Callable[[Any, Any, Any], Awaitable[None]]
WAIT = 3.0


class FakeTransport:
    """What the protocol writes, whether it closed, and flow control, as an asyncio transport reports them."""

    def __init__(self, loop: asyncio.AbstractEventLoop) -> None:
        self.loop = loop
        self.written = bytearray()
        self.closed = False
        self.eof_written = False
        self.protocol: BoundedHttpProtocol | None = None
        self.writes = 0

    def write(self, data: bytes) -> None:
        if not self.closed:
            self.written += data
            self.writes += 1

    def close(self) -> None:
        if not self.closed:
            self.closed = True
            assert self.protocol is not None
            self.loop.call_soon(self.protocol.connection_lost, None)

    def is_closing(self) -> bool:
        return self.closed

    def get_extra_info(self, name: str, default: Any = None) -> Any:
        return {"peername": ("127.0.0.1", 40000), "sockname": ("127.0.0.1", 8080)}.get(name, default)

    def pause_reading(self) -> None:
        pass

    def resume_reading(self) -> None:
        pass

    def can_write_eof(self) -> bool:
        return True

    def write_eof(self) -> None:
        self.eof_written = True

    @property
    def status(self) -> int | None:
        if not self.written.startswith(b"HTTP/1.1 "):
            return None
        return int(self.written[9:12])

    def detail(self) -> str:
        detail: str = orjson.loads(bytes(self.written).rsplit(b"\r\n\r\n", 1)[1])["detail"]
        return detail


class Recorder:
    """A tiny ASGI app: reads the whole body (or not) and answers 200 with its length (or 413 at once)."""

    def __init__(self, *, answer_early: bool = False) -> None:
        self.answer_early = answer_early
        self.calls = 0
        self.disconnected = False

    async def __call__(self, scope: Any, receive: Any, send: Any) -> None:
        self.calls += 1
        status, size = 413, 0
        if not self.answer_early:
            status = 200
            while True:
                message = await receive()
                if message["type"] == "http.disconnect":
                    self.disconnected = True
                    return
                size += len(message.get("body", b""))
                if not message.get("more_body", False):
                    break
        body = str(size).encode()
        headers = [(b"content-length", str(len(body)).encode())]
        await send({"type": "http.response.start", "status": status, "headers": headers})
        await send({"type": "http.response.body", "body": body})


def connect(
    app: App,
    limits: ServerLimits | None = None,
    *,
    keep_alive: float = 5.0,
    state: ServerState | None = None,
) -> tuple[BoundedHttpProtocol, FakeTransport]:
    loop = asyncio.get_running_loop()
    config = uvicorn.Config(app, log_config=None, lifespan="off", proxy_headers=False)
    config.timeout_keep_alive = keep_alive  # type: ignore[assignment]  # fractions of a second for tests
    config.load()
    cls = bounded_protocol(limits if limits is not None else ServerLimits(max_connections=100))
    protocol = cls(config=config, server_state=state if state is not None else ServerState(), app_state={}, _loop=loop)
    transport = FakeTransport(loop)
    transport.protocol = protocol
    protocol.connection_made(transport)  # type: ignore[arg-type]
    return protocol, transport


async def until(condition: Callable[[], bool], timeout: float = WAIT) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, "the condition did not come true in time"
        await asyncio.sleep(0.01)


async def no_change_for(seconds: float) -> None:
    await asyncio.sleep(seconds)


def get(extra: bytes = b"", *, close: bool = False) -> bytes:
    connection = b"Connection: close\r\n" if close else b""
    return b"GET /x HTTP/1.1\r\nHost: gateway\r\n" + connection + extra + b"\r\n"


class SpyParser:
    """Counts the bytes that reach httptools."""

    def __init__(self, parser: Any) -> None:
        self.parser = parser
        self.fed = 0

    def feed_data(self, data: bytes) -> None:
        self.fed += len(data)
        self.parser.feed_data(data)

    def __getattr__(self, name: str) -> Any:
        return getattr(self.parser, name)


# -- header limits --------------------------------------------------------------------------------


async def test_headers_over_the_byte_limit_get_431_before_the_parser_sees_the_excess() -> None:
    app = Recorder()
    protocol, transport = connect(app)
    spy = SpyParser(protocol.parser)
    protocol.parser = spy
    protocol.data_received(b"GET /x HTTP/1.1\r\nHost: gateway\r\nX-Big: ")
    for _ in range(1000):  # 1,000 KiB of one header value, a KiB at a time
        protocol.data_received(b"a" * 1024)
        if transport.closed or transport.eof_written:
            break

    assert transport.status == 431
    assert "16384 bytes" in transport.detail()
    assert b"connection: close" in transport.written
    assert spy.fed <= 16 * 1024
    assert app.calls == 0


async def test_headers_of_exactly_the_byte_limit_in_many_reads_are_served() -> None:
    app = Recorder()
    protocol, transport = connect(app)
    head = get(close=True)
    padding = 16 * 1024 - len(head) - len(b"X-Pad: \r\n")
    request = head[:-2] + b"X-Pad: " + b"p" * padding + b"\r\n\r\n"
    assert len(request) == 16 * 1024
    for start in range(0, len(request), 1000):
        protocol.data_received(request[start : start + 1000])

    await until(lambda: transport.status is not None)
    assert transport.status == 200


async def test_a_body_arriving_with_the_headers_is_not_counted_as_headers() -> None:
    app = Recorder()
    protocol, transport = connect(app)
    body = b"b" * 60_000
    protocol.data_received(b"POST /x HTTP/1.1\r\nHost: gateway\r\nContent-Length: 60000\r\n\r\n" + body)

    await until(lambda: transport.status is not None)
    assert transport.status == 200
    assert transport.written.endswith(b"60000")


async def test_more_header_fields_than_the_limit_get_431_naming_it() -> None:
    app = Recorder()
    protocol, transport = connect(app, ServerLimits(max_headers=100, max_connections=100))
    fields = b"".join(b"X-%d: v\r\n" % n for n in range(100))  # with Host: 101
    protocol.data_received(get(fields))

    assert transport.status == 431
    assert "at most 100 header fields" in transport.detail()
    assert app.calls == 0


async def test_one_hundred_header_fields_are_served() -> None:
    app = Recorder()
    protocol, transport = connect(app, ServerLimits(max_headers=100, max_connections=100))
    protocol.data_received(get(b"".join(b"X-%d: v\r\n" % n for n in range(99))))

    await until(lambda: transport.status is not None)
    assert transport.status == 200


async def test_an_endless_trailer_is_refused_instead_of_being_accumulated() -> None:
    app = Recorder()
    protocol, transport = connect(app)
    protocol.data_received(b"POST /x HTTP/1.1\r\nHost: g\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhello\r\n0\r\nX-T: ")
    for _ in range(100):
        protocol.data_received(b"t" * 4096)
        if transport.status is not None:
            break

    assert transport.status == 431
    await until(lambda: app.disconnected)


async def test_after_a_431_the_rest_is_read_and_discarded_then_the_connection_closes() -> None:
    protocol, transport = connect(Recorder())
    protocol.data_received(get(b"X: " + b"a" * 20_000 + b"\r\n"))
    assert transport.status == 431
    assert transport.eof_written
    assert not transport.closed

    protocol.data_received(b"more of the same" * 1000)
    assert not transport.closed
    protocol.data_received(b"x" * (16 * 1024 * 1024 + 1))
    assert transport.closed


# -- timeouts -------------------------------------------------------------------------------------


async def test_a_connection_silent_for_the_keep_alive_timeout_is_closed_without_an_answer() -> None:
    _, transport = connect(Recorder(), keep_alive=0.2)
    await until(lambda: transport.closed, timeout=2.0)
    assert transport.written == b""


async def test_headers_not_complete_within_the_header_timeout_get_408() -> None:
    limits = ServerLimits(header_timeout=0.3, max_connections=100)
    protocol, transport = connect(Recorder(), limits, keep_alive=0.2)
    started = time.monotonic()
    protocol.data_received(b"GET /x HTTP/1.1\r\nHost: ")
    await asyncio.sleep(0.1)
    protocol.data_received(b"gatew")

    await until(lambda: transport.status is not None, timeout=2.0)
    assert transport.status == 408
    assert "headers did not arrive within 0.3 seconds" in transport.detail()
    assert 0.25 <= time.monotonic() - started < 1.5


async def test_a_body_not_complete_within_the_body_timeout_gets_408_and_the_app_a_disconnect() -> None:
    app = Recorder()
    protocol, transport = connect(app, ServerLimits(body_timeout=0.3, max_connections=100))
    protocol.data_received(b"POST /x HTTP/1.1\r\nHost: gateway\r\nContent-Length: 100\r\n\r\nonly some")

    await until(lambda: transport.status is not None, timeout=2.0)
    assert transport.status == 408
    assert "body did not arrive" in transport.detail()
    await until(lambda: app.disconnected)


async def test_a_request_that_arrived_during_a_stall_longer_than_the_keep_alive_timeout_is_answered() -> None:
    app = Recorder()
    protocol, transport = connect(app, keep_alive=0.3)
    protocol.data_received(get())
    await until(lambda: transport.status == 200)
    answered = len(transport.written)
    loop = asyncio.get_running_loop()

    def stall_then_deliver() -> None:
        time.sleep(0.6)  # the loop is held past the keep-alive deadline; the next request waits in the socket
        loop.call_later(0.01, protocol.data_received, get())  # the late timer runs before the read, as in uvloop

    loop.call_later(0.05, stall_then_deliver)

    await until(lambda: len(transport.written) > answered or transport.closed, timeout=3.0)
    assert not transport.closed
    assert transport.written[answered:].startswith(b"HTTP/1.1 200 ")
    assert app.calls == 2


async def test_an_idle_keep_alive_connection_is_still_closed_after_its_timeout() -> None:
    protocol, transport = connect(Recorder(), keep_alive=0.2)
    protocol.data_received(get())
    await until(lambda: transport.status == 200)
    await until(lambda: transport.closed, timeout=2.0)


# -- connection cap -------------------------------------------------------------------------------


async def test_a_connection_past_the_cap_gets_503_with_retry_after_and_is_closed_unread() -> None:
    state = ServerState()
    limits = ServerLimits(max_connections=2)
    first = [connect(Recorder(), limits, state=state) for _ in range(2)]
    protocol, transport = connect(Recorder(), limits, state=state)

    assert transport.status == 503
    assert b"retry-after: 1" in transport.written
    assert "the cap is 2" in transport.detail()
    assert transport.closed
    protocol.data_received(get())  # a request that was already on its way is not read
    assert transport.written.count(b"HTTP/1.1") == 1
    assert not any(other.closed for _, other in first)


async def test_at_the_cap_a_connection_that_waited_over_a_second_for_its_headers_gives_way() -> None:
    state = ServerState()
    limits = ServerLimits(max_connections=2)
    slow, slow_transport = connect(Recorder(), limits, state=state)
    slow.data_received(b"GET /x HTTP/1.1\r\nHost: ")
    slow._start -= 2.0  # it connected two seconds ago
    busy, busy_transport = connect(Recorder(), limits, state=state)
    busy.data_received(get())
    await until(lambda: busy_transport.status == 200)

    newcomer, transport = connect(Recorder(), limits, state=state)
    newcomer.data_received(get())

    await until(lambda: transport.status is not None)
    assert transport.status == 200
    assert slow_transport.closed
    assert slow_transport.status == 408
    assert not busy_transport.closed


def test_the_default_cap_leaves_a_quarter_of_the_descriptors(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(limits_module.resource, "getrlimit", lambda _which: (1024, 4096))
    assert derived_max_connections() == 768
    monkeypatch.setattr(limits_module.resource, "getrlimit", lambda _which: (200, 4096))
    assert derived_max_connections() == 72
    monkeypatch.setattr(limits_module.resource, "getrlimit", lambda _which: (resource.RLIM_INFINITY,) * 2)
    assert derived_max_connections() == limits_module.CAP_WITHOUT_LIMIT


# -- answering before the body arrived -------------------------------------------------------------


async def test_an_early_answer_to_a_close_request_waits_for_the_rest_of_the_body_before_closing() -> None:
    protocol, transport = connect(Recorder(answer_early=True))
    protocol.data_received(b"POST /x HTTP/1.1\r\nHost: g\r\nConnection: close\r\nContent-Length: 300000\r\n\r\n")
    await until(lambda: transport.status == 413)
    await no_change_for(0.05)
    assert not transport.closed  # uvicorn alone closes here, and the client still sending sees a reset

    for _ in range(3):
        protocol.data_received(b"x" * 100_000)

    await until(lambda: transport.closed)


async def test_an_early_answer_closes_once_the_drain_bound_is_reached() -> None:
    protocol, transport = connect(Recorder(answer_early=True))
    declared = 64 * 1024 * 1024
    protocol.data_received(b"POST /x HTTP/1.1\r\nHost: g\r\nContent-Length: %d\r\n\r\n" % declared)
    await until(lambda: transport.status == 413)
    sent = 0
    while not transport.closed and sent < declared:
        protocol.data_received(b"x" * 65536)
        sent += 65536

    assert transport.closed
    assert 16 * 1024 * 1024 <= sent <= 17 * 1024 * 1024


async def test_after_an_early_answer_a_keep_alive_connection_serves_the_next_request() -> None:
    app = Recorder(answer_early=True)
    protocol, transport = connect(app)
    protocol.data_received(b"POST /x HTTP/1.1\r\nHost: g\r\nContent-Length: 10\r\n\r\n")
    await until(lambda: transport.status == 413)
    protocol.data_received(b"0123456789" + get())

    await until(lambda: transport.written.count(b"HTTP/1.1 413") == 2)
    assert not transport.closed
    assert app.calls == 2


# -- the ASGI check for plain uvicorn ----------------------------------------------------------------


async def call_asgi(app: Any, headers: list[tuple[bytes, bytes]], path: str = "/x") -> list[dict[str, Any]]:
    sent: list[dict[str, Any]] = []

    async def receive() -> dict[str, Any]:
        return {"type": "http.request", "body": b"", "more_body": False}

    async def send(message: dict[str, Any]) -> None:
        sent.append(message)

    scope = {"type": "http", "method": "GET", "path": path, "raw_path": path.encode(), "query_string": b""}
    await app({**scope, "headers": headers}, receive, send)
    return sent


async def asgi_ok(scope: Any, receive: Any, send: Any) -> None:
    await send({"type": "http.response.start", "status": 200, "headers": []})
    await send({"type": "http.response.body", "body": b""})


async def test_the_asgi_check_answers_431_for_too_many_or_too_large_headers_and_passes_the_rest() -> None:
    app = HeaderLimits(asgi_ok, max_header_bytes=16 * 1024, max_headers=100)

    many = await call_asgi(app, [(b"x-%d" % n, b"v") for n in range(101)])
    large = await call_asgi(app, [(b"host", b"g"), (b"x", b"a" * 16_400)])
    fine = await call_asgi(app, [(b"host", b"g"), (b"x", b"a" * 16_000)])

    assert many[0]["status"] == 431
    assert orjson.loads(many[1]["body"]) == {"detail": "a request may carry at most 100 header fields"}
    assert large[0]["status"] == 431
    assert (b"connection", b"close") in large[0]["headers"]
    assert "16384 bytes" in orjson.loads(large[1]["body"])["detail"]
    assert fine[0]["status"] == 200


async def test_the_asgi_check_never_refuses_what_the_protocol_served() -> None:
    """Headers of exactly the limit written without optional spaces pass both."""
    app = HeaderLimits(asgi_ok, max_header_bytes=16 * 1024, max_headers=100)
    request_line = len(b"GET /x HTTP/1.1\r\n")
    value = 16 * 1024 - request_line - len(b"host:g\r\n") - len(b"x:\r\n") - len(b"\r\n")

    sent = await call_asgi(app, [(b"host", b"g"), (b"x", b"a" * value)])

    assert sent[0]["status"] == 200


# -- settings and the access log -----------------------------------------------------------------------


def test_limit_settings_come_from_ordergate_variables_and_are_validated(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("ORDERGATE_MAX_HEADERS", "50")
    monkeypatch.setenv("ORDERGATE_HEADER_TIMEOUT", "2.5")
    monkeypatch.setenv("ORDERGATE_MAX_CONNECTIONS", "300")
    limits = ServerLimits.from_settings(Settings())
    assert (limits.max_headers, limits.header_timeout, limits.connection_cap) == (50, 2.5, 300)
    assert limits.max_header_bytes == 16 * 1024
    for name, bad in [("MAX_HEADER_BYTES", "10"), ("BODY_TIMEOUT", "0"), ("MAX_CONNECTIONS", "0")]:
        monkeypatch.setenv(f"ORDERGATE_{name}", bad)
        with pytest.raises(ValueError, match=name.lower()):
            Settings()
        monkeypatch.delenv(f"ORDERGATE_{name}")


@pytest.mark.parametrize(
    ("path", "shown"),
    [
        ("/v1/events?api_key=og_secret", "/v1/events?api_key=[redacted]"),
        ("/v1/events?after=3&api_key=og_secret&x=1", "/v1/events?after=3&api_key=[redacted]&x=1"),
        ("/v1/events?api%5Fkey=og_secret", "/v1/events?api%5Fkey=[redacted]"),
        ("/v1/events?API_KEY=og_secret", "/v1/events?API_KEY=[redacted]"),
        ("/v1/orders?after=3", "/v1/orders?after=3"),
        ("/v1/hooks/wh_ab12_og_secret", "/v1/hooks/[redacted]"),  # a webhook's path is its credential
        ("/v1/hooks/wh_ab12_og_secret?x=1", "/v1/hooks/[redacted]?x=1"),
    ],
)
def test_the_access_log_never_shows_an_api_key_from_the_query(path: str, shown: str) -> None:
    args = ("1.2.3.4:5", "GET", path, "1.1", 200)  # as uvicorn's protocols log a request
    record = logging.LogRecord("uvicorn.access", logging.INFO, __file__, 1, '%s - "%s %s HTTP/%s" %d', args, None)

    assert RedactApiKeys().filter(record)

    assert record.getMessage() == f'1.2.3.4:5 - "GET {shown} HTTP/1.1" 200'
    assert "og_secret" not in redact(record.getMessage())


# -- writes ---------------------------------------------------------------------------------------


async def test_an_answer_made_at_once_leaves_in_one_write() -> None:
    protocol, transport = connect(Recorder())
    protocol.data_received(get())
    await until(lambda: transport.status is not None)
    assert transport.writes == 1, "the head and the body of one answer are one send"
    assert transport.written.endswith(b"\r\n\r\n0")


async def test_a_stream_whose_first_chunk_is_late_sends_its_head_at_once() -> None:
    release = asyncio.Event()

    async def stream(scope: Any, receive: Any, send: Any) -> None:
        await send({"type": "http.response.start", "status": 200, "headers": [(b"content-type", b"text/plain")]})
        await release.wait()
        await send({"type": "http.response.body", "body": b"late", "more_body": False})

    protocol, transport = connect(stream)
    protocol.data_received(get())
    await until(lambda: transport.status == 200)  # before the body exists
    assert b"late" not in transport.written
    release.set()
    await until(lambda: b"late" in transport.written)
