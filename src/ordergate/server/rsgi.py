"""The gateway behind granian's RSGI interface: order entry served straight from RSGI, the rest bridged to ASGI.

granian parses HTTP in Rust (hyper) and calls the application once per request on our event loop,
with one wake-up per request. :class:`RsgiGateway` is the RSGI application of one gateway process:

- ``POST`` to the order-entry paths (:data:`~ordergate.api.fastpath.ROUTES`) is served here when the
  fast path is on and no guard (keys, rate limit) is configured: the same header limits (431), the
  same origin check (403), the same body reader (413, :func:`~ordergate.api.body.read_body`) and the
  same :mod:`~ordergate.api.ordering` functions as :class:`~ordergate.api.fastpath.OrderEntry`, with
  the answer written by one ``response_bytes`` call;
- everything else (and order entry when a guard is on) goes to the ASGI application, unchanged,
  through a small RSGI-to-ASGI bridge: the scope is built from the RSGI scope, ``receive`` reads the
  body in chunks (or whole, in one await, when a small ``Content-Length`` is declared) and then waits
  for the client to go away (``http.disconnect``, which event streams rely on), ``send`` answers
  with one ``response_bytes`` call or, for a response in several parts (the event stream), a stream.

What hyper does not enforce, this layer does: the body timeout (408 and ``connection: close`` when the
body is not complete ``body_timeout`` seconds after the headers), the exact header limits with the
JSON 431 (hyper's own buffer limit answers a bare 431 only for headers beyond it), the access log
(one line per request on the ``uvicorn.access`` logger, so :mod:`~ordergate.server.accesslog`
redacts it as under uvicorn), and a count of requests in flight so that a graceful stop answers them
before the gateway is stopped (:mod:`ordergate.server.granian_runner`).
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Sequence
from typing import Any, Protocol
from urllib.parse import quote

import orjson
from starlette.types import ASGIApp, Message

from ordergate.api import ordering
from ordergate.api.body import read_body
from ordergate.api.fastpath import ROUTES, Handler
from ordergate.api.http import ClientError
from ordergate.api.origins import OriginCheck
from ordergate.config import Settings
from ordergate.errors import StoreUnavailable
from ordergate.server.accesslog import ACCESS_LOGGER
from ordergate.server.asgi import header_problem
from ordergate.server.limits import ServerLimits

log = logging.getLogger("ordergate.server")
access_log = logging.getLogger(ACCESS_LOGGER)

WHOLE_BODY_BYTES = 256 * 1024
"""A declared ``Content-Length`` up to this (and within the route's limit) is read in one await."""

_NOSNIFF = ("x-content-type-options", "nosniff")
_CLOSE = ("connection", "close")


class RsgiHeaders(Protocol):
    def items(self) -> list[tuple[str, str]]: ...
    def get(self, key: str, default: Any = None) -> Any: ...


class RsgiScope(Protocol):
    proto: str
    http_version: str
    server: str
    client: str
    scheme: str
    method: str
    path: str
    query_string: str

    @property
    def headers(self) -> RsgiHeaders: ...


class RsgiStream(Protocol):
    async def send_bytes(self, data: bytes) -> None: ...


class RsgiHttp(Protocol):
    """The part of granian's ``RSGIHTTPProtocol`` used here."""

    async def __call__(self) -> bytes: ...
    def __aiter__(self) -> Any: ...
    async def client_disconnect(self) -> None: ...
    def response_bytes(self, status: int, headers: list[tuple[str, str]], body: bytes) -> None: ...
    def response_stream(self, status: int, headers: list[tuple[str, str]]) -> RsgiStream: ...


def _address(text: str) -> tuple[str, int] | None:
    host, _, port = text.rpartition(":")
    if not host or not port.isdigit():
        return None
    return host.strip("[]"), int(port)


def _json_answer(status: int, detail: str) -> bytes:
    return orjson.dumps({"detail": detail})


class _Receiver:
    """ASGI ``receive`` over an RSGI request: the body (bounded by the body timeout), then disconnect."""

    __slots__ = ("_chunks", "_deadline", "_declared", "_done", "_proto", "timed_out")

    def __init__(self, proto: RsgiHttp, declared: int | None, deadline: float) -> None:
        self._proto = proto
        self._declared = declared
        self._deadline = deadline
        self._chunks: Any = None
        self._done = False
        self.timed_out = False

    async def __call__(self) -> Message:
        if self._done:
            try:
                await self._proto.client_disconnect()
            except Exception:  # the protocol is gone: so is the client
                log.debug("client_disconnect failed", exc_info=True)
            return {"type": "http.disconnect"}
        try:
            async with asyncio.timeout_at(self._deadline):
                if self._chunks is None and self._declared is not None and self._declared <= WHOLE_BODY_BYTES:
                    body = await self._proto()
                    self._done = True
                    return {"type": "http.request", "body": body, "more_body": False}
                if self._chunks is None:
                    self._chunks = self._proto.__aiter__()
                try:
                    chunk = await self._chunks.__anext__()
                except StopAsyncIteration:
                    self._done = True
                    return {"type": "http.request", "body": b"", "more_body": False}
                return {"type": "http.request", "body": bytes(chunk), "more_body": True}
        except TimeoutError:
            self.timed_out = True
        except Exception:  # the connection broke while the body was read
            log.debug("reading a request body failed", exc_info=True)
        self._done = True
        return {"type": "http.disconnect"}


class _Sender:
    """ASGI ``send`` over an RSGI request: one ``response_bytes`` call, or a stream for a response in parts."""

    __slots__ = ("_headers", "_proto", "_receiver", "_status", "_stream", "finished", "started", "status")

    def __init__(self, proto: RsgiHttp, receiver: _Receiver) -> None:
        self._proto = proto
        self._receiver = receiver
        self._status = 500
        self._headers: list[tuple[str, str]] = []
        self._stream: RsgiStream | None = None
        self.started = False
        self.finished = False
        self.status = 500

    async def __call__(self, message: Message) -> None:
        kind = message["type"]
        if kind == "http.response.start":
            self._status = self.status = message["status"]
            self._headers = [(k.decode("latin-1"), v.decode("latin-1")) for k, v in message.get("headers", ())]
            self.started = True
            return
        if kind != "http.response.body" or self.finished:
            return
        body = message.get("body", b"")
        more = message.get("more_body", False)
        if self._stream is None:
            if not more:
                self.finished = True
                if self._receiver.timed_out:
                    _timed_out(self._proto)
                    self.status = 408
                    return
                self._proto.response_bytes(self._status, self._headers, body)
                return
            self._stream = self._proto.response_stream(self._status, self._headers)
        try:
            if body:
                await self._stream.send_bytes(body)
        except Exception as exc:  # granian's ProtocolClosed: the client went away
            self.finished = True
            raise OSError("the client disconnected") from exc
        if not more:
            self.finished = True


def _timed_out(proto: RsgiHttp) -> None:
    body = _json_answer(408, "the request body was not complete in time")
    headers = [("content-type", "application/json"), ("content-length", str(len(body))), _NOSNIFF, _CLOSE]
    proto.response_bytes(408, headers, body)


class RsgiGateway:
    """The RSGI application (``__rsgi__``) of one gateway process; see the module docstring.

    ``app`` is the ASGI application (:func:`~ordergate.api.app.create_app`) whose lifespan the runner
    has entered; ``state`` is where that lifespan leaves the running gateway. ``in_flight`` counts
    requests being served, and :meth:`drained` waits until none is left.
    """

    def __init__(self, app: ASGIApp, state: Any, settings: Settings, limits: ServerLimits, *, access: bool) -> None:
        self.app = app
        self.state = state
        self.limits = limits
        self.access = access
        self.direct = settings.fast_path and settings.auth is None and settings.rate_limit is None
        self.origins = OriginCheck(app, allowed_origins=settings.allowed_origins)
        self.max_body = settings.max_body_bytes
        self.max_batch_body = settings.max_batch_body_bytes
        self.in_flight = 0
        self._idle = asyncio.Event()
        self._idle.set()

    async def __rsgi__(self, scope: RsgiScope, proto: RsgiHttp) -> None:
        if scope.proto != "http":
            return
        self.in_flight += 1
        self._idle.clear()
        status = 500
        try:
            status = await self._serve(scope, proto)
        finally:
            self.in_flight -= 1
            if not self.in_flight:
                self._idle.set()
            if self.access:
                query = f"?{scope.query_string}" if scope.query_string else ""
                access_log.info(
                    '%s - "%s %s HTTP/%s" %d',
                    scope.client,
                    scope.method,
                    scope.path + query,
                    scope.http_version,
                    status,
                )

    def __rsgi_init__(self, loop: asyncio.AbstractEventLoop) -> None:
        """granian's start hook: nothing to do (the runner entered the application's lifespan first)."""

    def __rsgi_del__(self, loop: asyncio.AbstractEventLoop) -> None:
        """granian's stop hook: nothing to do (the runner drains requests, then leaves the lifespan)."""

    async def drained(self, timeout: float) -> bool:
        """Wait until no request is in flight (at most ``timeout`` seconds); whether none is left."""
        try:
            async with asyncio.timeout(timeout):
                await self._idle.wait()
        except TimeoutError:
            return False
        return True

    async def _serve(self, scope: RsgiScope, proto: RsgiHttp) -> int:
        # granian decodes header values as UTF-8 (and leaves out values that are not): encoding them
        # back gives the bytes the client sent, which never fails
        headers = [(k.lower().encode(), v.encode()) for k, v in scope.headers.items()]
        method = scope.method
        path = scope.path
        raw_length = scope.headers.get("content-length")
        declared = int(raw_length) if isinstance(raw_length, str) and raw_length.isdigit() else None
        deadline = asyncio.get_running_loop().time() + self.limits.body_timeout
        receiver = _Receiver(proto, declared, deadline)
        asgi_scope: dict[str, Any] = {
            "type": "http",
            "asgi": {"version": "3.0", "spec_version": "2.3"},
            "http_version": scope.http_version if scope.http_version != "1" else "1.0",
            "method": method,
            "scheme": scope.scheme,
            "path": path,
            "raw_path": quote(path).encode(),  # granian's path is decoded: percent-encoded again
            "query_string": scope.query_string.encode(),
            "root_path": "",
            "headers": headers,
            "client": _address(scope.client),
            "server": _address(scope.server),
        }
        if self.direct and method == "POST":
            route = ROUTES.get(path)
            if route is not None:
                return await self._order_entry(asgi_scope, route, receiver, proto)
        sender = _Sender(proto, receiver)
        try:
            await self.app(asgi_scope, receiver, sender)
        except OSError:
            return sender.status  # the client went away mid-answer
        except Exception:
            log.exception("unexpected error on %s %s", method, path)
        if not sender.finished:
            if sender.started and sender._stream is not None:
                return sender.status  # a stream the application gave up on: it ends here
            body = _json_answer(500, "internal error; the server log has the details")
            proto.response_bytes(
                500, [("content-type", "application/json"), ("content-length", str(len(body))), _NOSNIFF], body
            )
            return 500
        return sender.status

    async def _order_entry(
        self,
        scope: dict[str, Any],
        route: tuple[Handler, bool, bool],
        receiver: _Receiver,
        proto: RsgiHttp,
    ) -> int:
        """Order entry as :func:`~ordergate.api.fastpath.serve`, behind the same header limits and origin check."""
        problem = header_problem(scope, self.limits.max_header_bytes, self.limits.max_headers)
        if problem is not None:
            body = _json_answer(431, problem)
            proto.response_bytes(
                431,
                [("content-type", "application/json"), ("content-length", str(len(body))), _NOSNIFF, _CLOSE],
                body,
            )
            return 431
        denial = self.origins.refusal(scope)
        if denial is not None:
            status, raw_headers, body = denial.response_parts()
            proto.response_bytes(status, [(k.decode("latin-1"), v.decode("latin-1")) for k, v in raw_headers], body)
            return status
        handler, legacy, batch = route
        limit = self.max_batch_body if batch else self.max_body
        request_headers: Sequence[tuple[bytes, bytes]] = scope["headers"]
        try:
            body = await read_body(receiver, request_headers, limit)
            sequencer = self.state.gateway.sequencer
            if sequencer is None:
                raise StoreUnavailable("the gateway is still starting")
            key = ordering.header(request_headers, b"idempotency-key")
            reply = await handler(sequencer, body, key, None)
        except (ClientError, StoreUnavailable) as exc:
            if receiver.timed_out:
                _timed_out(proto)
                return 408
            reply = ordering.error_reply(exc, legacy=legacy)
        except Exception:
            log.exception("unexpected error on POST %s", scope["path"])
            reply = ordering.reply({"detail": "internal error; the server log has the details"}, 500)
        answer_headers = [*reply.headers, ("content-length", str(len(reply.body))), _NOSNIFF]
        proto.response_bytes(reply.status, answer_headers, reply.body)
        return reply.status
