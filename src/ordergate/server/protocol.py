"""A bounded HTTP/1.1 protocol: uvicorn's httptools protocol with header limits, timeouts and a cap.

uvicorn's httptools protocol accepts headers of any size and number (httptools joins the pieces of a
header value by repeated concatenation, so one 64 MB header stalls the event loop for seconds), has
no header or body timeout, no connection cap, closes an idle keep-alive connection when its timer
fires even if the loop was stalled and a request is waiting in the socket, and closes a
``Connection: close`` request's connection right after answering even while the client is still
sending its body (the client sees a reset instead of the 413). :class:`BoundedHttpProtocol` keeps
uvicorn's parsing and request cycle and adds, per connection:

- **header limits**, enforced as bytes arrive: the request line and headers may hold
  ``max_header_bytes`` in all and ``max_headers`` fields (trailers count as well), else 431 and close;
  the bytes are counted before they reach the parser, so oversized headers cost one read;
- **timeouts**: a connection silent for the keep-alive timeout while waiting for a request is
  closed; one whose request headers are not complete ``header_timeout`` seconds after it connected
  (or after its previous response) gets 408 and is closed; so does one whose body is not complete
  ``body_timeout`` seconds after its headers. A timer that fires late (the loop was busy) or finds
  the socket readable first gives the pending reads a short grace, so a request that arrived during
  a stall is answered, never reset;
- **a connection cap**: past ``max_connections`` open connections a new one takes the place of the
  oldest connection that has waited more than a second without completing its first request's
  headers (a slowloris connection), or, if there is none, is answered 503 with ``Retry-After`` and
  closed at once, without reading;
- **lingering after an early answer**: when the answer went out before the whole request arrived
  (413 from the app, 431, 408), up to 16 MiB or 5 seconds of the rest is read and discarded before
  the connection is closed, so clients that send everything before reading still get the answer.

uvicorn internals relied upon (uvicorn 0.54; checked by ``tests/unit/test_server_limits.py``): the
attributes ``parser``, ``cycle``, ``pipeline``, ``flow``, ``transport``, ``connections``, ``loop``,
``logger``, ``headers``, ``timeout_keep_alive`` and ``server_state`` (``default_headers``,
``total_requests``); the parser callbacks ``on_message_begin``, ``on_headers_complete``, ``on_body``,
``on_message_complete``; ``_start_asgi_task``, ``handle_websocket_upgrade``, ``_should_upgrade``,
``_unsupported_upgrade_warning``; and of
``RequestResponseCycle`` the attributes ``transport`` (replaced per cycle, see :class:`_CycleTransport`),
``response_started``, ``response_complete``, ``keep_alive``, ``disconnected`` and ``message_event``.
:meth:`BoundedHttpProtocol.data_received` replaces uvicorn's (with the same parser error handling),
and :meth:`~BoundedHttpProtocol.on_response_complete` too (without uvicorn's keep-alive timer).
"""

from __future__ import annotations

import asyncio
import http
import logging
import select
import time
import weakref
from collections import Counter
from collections.abc import Callable
from typing import Any, ClassVar

import httptools
import orjson
from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol

from ordergate.server.limits import DRAIN_BYTES, DRAIN_SECONDS, ServerLimits

log = logging.getLogger("ordergate.server")

STALL_SECONDS = 0.25
"""A timer that fires this much after its deadline means the event loop was held up."""
GRACE_SECONDS = 0.5
"""How long a late timer (or one that finds data waiting) waits for the pending reads."""
EVICT_AFTER_SECONDS = 1.0
"""At the cap, a connection that waited this long without completing its first headers gives way."""
REFUSAL_LOG_SECONDS = 10.0
"""At most one warning about refusals per this many seconds."""
RETRY_AFTER_SECONDS = 1


class _Refusals:
    """Counts refusals and logs them in one line at most every :data:`REFUSAL_LOG_SECONDS` (floods stay quiet)."""

    def __init__(self) -> None:
        self.counts: Counter[str] = Counter()
        self.logged_at = -REFUSAL_LOG_SECONDS

    def note(self, what: str) -> None:
        self.counts[what] += 1
        now = time.monotonic()
        if now - self.logged_at >= REFUSAL_LOG_SECONDS:
            summary = ", ".join(f"{count} x {reason}" for reason, count in sorted(self.counts.items()))
            log.warning("refused since the last report: %s", summary)
            self.counts.clear()
            self.logged_at = now


REFUSALS = _Refusals()
_WAITING: weakref.WeakKeyDictionary[Any, dict[BoundedHttpProtocol, None]] = weakref.WeakKeyDictionary()
"""Per uvicorn server state: its connections that have not completed a first request's headers, oldest first."""


class _HeaderLimitExceeded(Exception):
    """Raised from a parser callback to stop parsing; ``feed_data`` re-raises it as the error's context."""


def http_answer(status: int, detail: str, default_headers: list[tuple[bytes, bytes]], *extra: bytes) -> bytes:
    """A complete ``connection: close`` response with a JSON ``{"detail": ...}`` body, as raw bytes."""
    body = orjson.dumps({"detail": detail})
    lines = [f"HTTP/1.1 {status} {http.HTTPStatus(status).phrase}".encode()]
    lines += [name + b": " + value for name, value in default_headers]
    lines += [
        b"content-type: application/json",
        b"content-length: " + str(len(body)).encode(),
        b"x-content-type-options: nosniff",
        b"connection: close",
        *extra,
    ]
    return b"\r\n".join(lines) + b"\r\n\r\n" + body


def _header_end(data: bytes) -> int | None:
    """Offset just past the blank line ending the headers in ``data``, if it is there."""
    ends = [i + len(mark) for mark in (b"\r\n\r\n", b"\n\n") if (i := data.find(mark)) >= 0]
    return min(ends) if ends else None


class _CycleTransport:
    """The transport uvicorn's request cycle writes to, whose ``close()`` lingers while the body arrives.

    uvicorn's ``RequestResponseCycle.send`` closes the transport right after the last body message of a
    response to a ``Connection: close`` request; if the client is still sending its body, the kernel
    then resets the connection and the client never reads the answer. Here that close waits until the
    rest of the body has been read and discarded (within the drain bounds).
    """

    __slots__ = ("_loop", "_pending", "_protocol", "_transport")

    def __init__(self, protocol: BoundedHttpProtocol, transport: asyncio.Transport) -> None:
        self._protocol = protocol
        self._transport = transport
        self._loop = protocol.loop
        self._pending: bytes | None = None

    def write(self, data: bytes) -> None:
        """uvicorn writes a response's status line and headers, then its body, in two writes: two
        system calls and two wake-ups of the client per answer. The head is held until the body comes
        (the same turn of the loop, for an answer made at once) or until the loop's next turn (a stream
        whose first chunk is late), so an ordinary answer leaves in one ``send``."""
        pending = self._pending
        if pending is not None:
            self._pending = None
            self._transport.write(pending + data)
        elif data.startswith(b"HTTP/"):
            self._pending = data
            self._loop.call_soon(self.flush)
        else:
            self._transport.write(data)

    def flush(self) -> None:
        pending = self._pending
        if pending is not None:
            self._pending = None
            self._transport.write(pending)

    def is_closing(self) -> bool:
        return self._transport.is_closing()

    def close(self) -> None:
        self.flush()
        if not self._protocol._close_after_body():
            self._transport.close()

    def __getattr__(self, name: str) -> Any:
        return getattr(self._transport, name)


class BoundedHttpProtocol(HttpToolsProtocol):
    """uvicorn's httptools protocol with the bounds of :class:`~ordergate.server.limits.ServerLimits`.

    ``ordergate serve`` uses a subclass made by :func:`bounded_protocol` with the settings' limits;
    ``uvicorn ... --http ordergate.server:BoundedHttpProtocol`` uses this class, which takes its limits
    from the ``ORDERGATE_*`` variables when its first connection is made.
    """

    limits: ClassVar[ServerLimits | None] = None
    _cap: ClassVar[int | None] = None

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        cls = type(self)
        if cls.limits is None:
            from ordergate.config import Settings

            cls.limits = ServerLimits.from_settings(Settings())
        if cls._cap is None:
            cls._cap = cls.limits.connection_cap
        self._limits: ServerLimits = cls.limits
        self._timer: asyncio.TimerHandle | None = None
        self._graced: float | None = None
        self._fd = -1
        self._start = 0.0  # when the wait for the current request began: connected, or last response sent
        self._request_begun = False  # bytes of a request arrived and its message is not complete
        self._in_body = False  # its headers are complete and its body is not
        self._headers_at = 0.0
        self._answered_at = 0.0  # when the answer went out while the body was still arriving
        self._close_when_body_ends = False
        self._header_bytes = 0
        self._tail = b""
        self._quiet_bytes = 0  # body-phase bytes since the parser last reported progress
        self._lingering = False  # an answer was sent; the rest is read and discarded, then closed
        self._linger_until = 0.0
        self._drained = 0
        self._finished = False
        self._waiting: dict[BoundedHttpProtocol, None] = _WAITING.setdefault(self.server_state, {})

    # -- connection ------------------------------------------------------------------------------

    def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
        super().connection_made(transport)
        now = self.loop.time()
        self._start = now
        self._cycle_transport = _CycleTransport(self, transport)
        sock = transport.get_extra_info("socket")
        self._fd = sock.fileno() if sock is not None else -1
        waiting = self._waiting
        cap = type(self)._cap
        assert cap is not None
        if len(self.connections) > cap and not self._evict_one(waiting, now):
            self._refuse_connection(cap)
            return
        waiting[self] = None
        self._ensure_timer()

    def connection_lost(self, exc: Exception | None) -> None:
        self._finish()
        super().connection_lost(exc)

    def handle_websocket_upgrade(self) -> None:
        self._finish()
        super().handle_websocket_upgrade()

    def _finish(self) -> None:
        self._finished = True
        self._waiting.pop(self, None)
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None

    def _evict_one(self, waiting: dict[BoundedHttpProtocol, None], now: float) -> bool:
        oldest = next(iter(waiting), None)
        if oldest is None or now - oldest._start < EVICT_AFTER_SECONDS:
            return False
        oldest._cut_off("headers", immediately=True)
        return True

    def _refuse_connection(self, cap: int) -> None:
        self._finished = True
        detail = f"the gateway has too many open connections (the cap is {cap}); retry later"
        retry = b"retry-after: " + str(RETRY_AFTER_SECONDS).encode()
        self.transport.write(http_answer(503, detail, self.server_state.default_headers, retry))
        self.transport.close()
        REFUSALS.note(f"503 connection over the cap of {cap} (--max-connections)")

    # -- bytes in ---------------------------------------------------------------------------------

    def data_received(self, data: bytes) -> None:
        if self._finished or self._lingering:
            if self._lingering:
                self._drained += len(data)
                if self._drained > DRAIN_BYTES:
                    self.transport.close()
            return
        if not self._in_body:
            total = self._header_bytes + len(data)
            if total <= self._limits.max_header_bytes:  # the common case, inline
                self._header_bytes = total
                self._tail = data[-3:]
            elif not self._admit_header_bytes(data):
                return
        else:
            if self.cycle is not None and self.cycle.response_complete:
                self._drained += len(data)
                if self._drained > DRAIN_BYTES:
                    self.transport.close()
                    return
            if self._quiet_bytes > self._limits.max_header_bytes:
                self._refuse_request(431, self._too_large())
                return
            self._quiet_bytes += len(data)
        try:
            self.parser.feed_data(data)
        except httptools.HttpParserCallbackError as exc:
            if isinstance(exc.__context__, _HeaderLimitExceeded):
                self._refuse_request(431, str(exc.__context__))
                return
            self._invalid_request()
            return
        except httptools.HttpParserUpgrade:
            if self._should_upgrade():
                self.handle_websocket_upgrade()
            else:
                self._unsupported_upgrade_warning()
            return
        except httptools.HttpParserError:
            self._invalid_request()
            return
        self._ensure_timer()

    def _invalid_request(self) -> None:
        msg = "Invalid HTTP request received."
        self.logger.warning(msg)
        self._finish()
        self.send_400_response(msg)

    def _admit_header_bytes(self, data: bytes) -> bool:
        """Count ``data`` as header bytes of the request in progress; refuse it (431) past the limit."""
        limit = self._limits.max_header_bytes
        total = self._header_bytes + len(data)
        if total > limit:
            # Over the limit only if the headers do not end within it (the rest may be body).
            window = self._tail + data
            end = _header_end(window)
            if end is None or self._header_bytes - len(self._tail) + end > limit:
                self._refuse_request(431, self._too_large())
                return False
        self._header_bytes = total
        self._tail = data[-3:]
        return True

    def _too_large(self) -> str:
        return (
            f"request headers are larger than the limit of {self._limits.max_header_bytes} bytes"
            " (request line and header fields in all)"
        )

    # -- parser callbacks -------------------------------------------------------------------------

    def on_message_begin(self) -> None:
        super().on_message_begin()
        self._request_begun = True

    def on_headers_complete(self) -> None:
        if len(self.headers) > self._limits.max_headers:  # (their bytes are bounded already)
            raise _HeaderLimitExceeded(f"a request may carry at most {self._limits.max_headers} header fields")
        previous = self.cycle
        super().on_headers_complete()
        self._waiting.pop(self, None)
        self._in_body = True
        self._headers_at = self.loop.time()
        self._quiet_bytes = 0
        self._drained = 0
        if self.cycle is not previous:
            self.cycle.transport = self._cycle_transport  # type: ignore[assignment]  # duck-typed

    def on_body(self, body: bytes) -> None:
        self._quiet_bytes = 0
        super().on_body(body)

    def on_chunk_header(self) -> None:
        self._quiet_bytes = 0

    def on_chunk_complete(self) -> None:
        self._quiet_bytes = 0

    def on_message_complete(self) -> None:
        answered = self.cycle is not None and self.cycle.response_complete
        self._request_begun = self._in_body = False
        self._header_bytes = self._quiet_bytes = 0
        self._tail = b""
        super().on_message_complete()
        if answered:  # the rest of an answered request's body has been read
            if self._close_when_body_ends:
                self.transport.close()
                return
            self._start = self.loop.time()
            self._ensure_timer()

    def on_response_complete(self) -> None:
        # uvicorn's own version, without arming its keep-alive timer (the deadline timer replaces it).
        self.server_state.total_requests += 1
        if self.transport.is_closing() or self._finished:
            return
        self.flow.resume_reading()
        now = self.loop.time()
        if self.pipeline:
            cycle, app = self.pipeline.pop()
            self._start_asgi_task(cycle, app)
            self._headers_at = now  # a pipelined request starts now: so does its body clock
        elif self._in_body:  # answered before its whole body arrived
            self._answered_at = now
        else:
            self._start = now
        self._ensure_timer()

    def _close_after_body(self) -> bool:
        """For :class:`_CycleTransport`: whether closing waits for the rest of an answered body."""
        if self._in_body and self.cycle is not None and self.cycle.response_complete and not self._finished:
            self._close_when_body_ends = True
            return True
        return False

    # -- deadlines --------------------------------------------------------------------------------

    def _deadline(self) -> tuple[float, Callable[[], None]] | None:
        """When the current phase of the connection ends, and what happens then; ``None``: no deadline."""
        limits = self._limits
        if self._lingering:
            return self._linger_until, self.transport.close
        if self.pipeline:
            return None  # the server is behind, not the client
        cycle = self.cycle
        if self._in_body:
            if cycle.response_complete:
                return self._answered_at + DRAIN_SECONDS, self.transport.close
            return self._headers_at + limits.body_timeout, self._body_timed_out
        if cycle is not None and not cycle.response_complete:
            return None  # an answer is being prepared; the next request waits for it
        if self._request_begun:
            return self._start + limits.header_timeout, self._headers_timed_out
        return self._start + min(float(self.timeout_keep_alive), limits.header_timeout), self.transport.close

    def _ensure_timer(self) -> None:
        """Have the timer fire at the current deadline or before (it re-checks the deadline when it fires)."""
        if self._finished:
            return
        deadline = self._deadline()
        if deadline is None:
            return
        if self._timer is not None:
            if self._timer.when() <= deadline[0]:
                return
            self._timer.cancel()
        self._timer = self.loop.call_at(deadline[0], self._on_timer)

    def _on_timer(self) -> None:
        self._timer = None
        deadline = self._deadline()
        if deadline is None or self._finished:
            return
        when, expire = deadline
        now = self.loop.time()
        if now < when:
            self._timer = self.loop.call_at(when, self._on_timer)
            return
        if self._graced != when and (now - when > STALL_SECONDS or self._readable()):
            # The loop was held up, or bytes are waiting: let the pending reads run before judging.
            self._graced = when
            self._timer = self.loop.call_at(now + GRACE_SECONDS, self._on_timer)
            return
        if self._in_body and not self.cycle.response_complete and self.flow.read_paused:
            # The application is not reading the body: that is not the client's delay.
            self._timer = self.loop.call_at(now + 1.0, self._on_timer)
            return
        expire()

    def _readable(self) -> bool:
        if self._fd < 0 or not hasattr(select, "poll"):
            return False
        poller = select.poll()
        poller.register(self._fd, select.POLLIN)
        try:
            return bool(poller.poll(0))
        except OSError:
            return False

    def _headers_timed_out(self) -> None:
        self._cut_off("headers", immediately=False)

    def _body_timed_out(self) -> None:
        self._cut_off("body", immediately=False)

    def _cut_off(self, part: str, *, immediately: bool) -> None:
        """408 if a request had begun and nothing answers it yet, else a plain close."""
        timeout = self._limits.header_timeout if part == "headers" else self._limits.body_timeout
        if part == "headers" and not self._request_begun:
            self._finish()
            self.transport.close()
            return
        self._refuse_request(408, f"the request {part} did not arrive within {timeout:g} seconds", immediately)

    # -- refusing a request -----------------------------------------------------------------------

    def _refuse_request(self, status: int, detail: str, immediately: bool = False) -> None:
        """Answer ``status`` and close, after lingering (unless ``immediately``) to let the client read it."""
        self._waiting.pop(self, None)
        cycle = self.cycle
        own = self._in_body  # the cycle is this request's (its headers were complete)
        if cycle is not None and not cycle.response_complete and (cycle.response_started or not own):
            # An answer is being written (this request's, or a pipelined predecessor's): none can go in between.
            self._finish()
            self.transport.close()
            return
        if cycle is not None and own:
            if cycle.response_complete:  # already answered: only the rest of the body is left
                self._finish()
                self.transport.close()
                return
            cycle.disconnected = True  # the application's answer, if any, is dropped
            cycle.message_event.set()
        REFUSALS.note(f"{status} {detail}")
        self.transport.write(http_answer(status, detail, self.server_state.default_headers))
        if immediately:
            self._finish()
            self.transport.close()
            return
        if self.transport.can_write_eof():
            self.transport.write_eof()  # the answer is all: clients reading to the end see it end now
        self._lingering = True
        self._drained = 0
        self._linger_until = self.loop.time() + DRAIN_SECONDS
        self.flow.resume_reading()
        self._ensure_timer()


def bounded_protocol(limits: ServerLimits) -> type[BoundedHttpProtocol]:
    """A :class:`BoundedHttpProtocol` subclass enforcing ``limits``, for ``uvicorn.run(http=...)``."""
    return type("BoundedHttpProtocol", (BoundedHttpProtocol,), {"limits": limits, "_cap": limits.connection_cap})
