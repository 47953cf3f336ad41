"""The event stream (``GET /v1/events``) as an iterator that resumes by itself, without a gap or a repeat.

Every ``order`` event carries a resume token as its ``id:``; the stream remembers the last one it
handed out (:attr:`EventStream.token`) and, when the connection is lost, the read times out or the
gateway ends the stream (it does when it stops), connects again with ``Last-Event-ID`` set to it. The
gateway then sends every order committed after that token exactly once, whichever process served
it before (SPEC section 4), so the caller sees each order once, in commit order, across restarts.

``event: resync`` with reason ``slow_client`` (the client fell too far behind and was dropped) is
followed the same way, from the token it carries. With reason ``ahead_of_log`` the token is not of
this gateway's log (another database, or one replaced): no reconnect can fill that, so the
iterator raises :class:`~ordergate.client.errors.StreamResync` with the token to follow from after
reloading. ``event: revoked`` raises :class:`~ordergate.client.errors.StreamRevoked`.

Without ``resume_from`` the stream starts "from now": the token of now is the ``position`` of
``GET /v1/stats`` (the token the gateway's counters are complete up to), asked before the first
connection, so even a connection lost before the first order resumes without a gap. A viewer bound
to one user may not read the stats; its stream has no token until its first order, and a connection
lost before that reconnects from now again. Pass ``resume_from`` (an event's token, an order id, or 0
for the whole log) to start from a known point.
"""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass

import httpx
import orjson

from ordergate.client.errors import GatewayUnreachable, RequestRefused, StreamResync, StreamRevoked
from ordergate.client.models import OrderEvent, OrderResult
from ordergate.client.retry import RetryBudget, RetryPolicy
from ordergate.client.transport import AsyncTransport, Call, Outcome, SyncTransport

RECONNECT = RetryPolicy(attempts=10_000, base_seconds=0.1, cap_seconds=2.0, total_seconds=120.0)
"""How long a stream keeps trying to reconnect in one outage (a gateway restart takes seconds)."""
READ_TIMEOUT = 60.0
"""A connection silent for this long is taken as lost (the gateway sends a keep-alive every 15 s)."""
_CALL = Call("GET", "/v1/events")
_NOW = Call("GET", "/v1/stats")


def position_of(stats: object) -> str | None:
    """The resume token of "now" in a ``GET /v1/stats`` answer."""
    position = stats.get("position") if isinstance(stats, dict) else None
    return position if isinstance(position, str) and position else None


@dataclass(frozen=True, slots=True)
class Frame:
    """One server-sent event: its type (``message`` when unnamed), ``id`` and data."""

    event: str
    id: str | None
    data: str


class FrameReader:
    """Server-sent events from lines, as the HTML standard parses them (comments and ``retry`` skipped)."""

    __slots__ = ("_data", "_event", "_id")

    def __init__(self) -> None:
        self._event: str | None = None
        self._id: str | None = None
        self._data: list[str] = []

    def line(self, line: str) -> Frame | None:
        """Feed one line (without its end); a complete event on the blank line that ends it."""
        if not line:
            frame = Frame(self._event or "message", self._id, "\n".join(self._data)) if self._data else None
            self._event, self._id, self._data = None, None, []
            return frame
        if line.startswith(":"):
            return None
        name, _, value = line.partition(":")
        value = value.removeprefix(" ")
        if name == "event":
            self._event = value
        elif name == "data":
            self._data.append(value)
        elif name == "id" and "\0" not in value:
            self._id = value
        return None


@dataclass(frozen=True, slots=True)
class _Follow:
    """Reconnect at once from ``token`` (a ``slow_client`` resync)."""

    token: str


def interpret(frame: Frame) -> OrderEvent | _Follow | None:
    """What an event means to the iterator: an order to hand out, a point to reconnect from, or nothing."""
    if frame.event == "order" and frame.id is not None:
        return OrderEvent(frame.id, OrderResult.model_validate_json(frame.data))
    if frame.event == "resync":
        document = orjson.loads(frame.data)
        reason, token = str(document.get("reason")), str(document.get("token"))
        if reason == "ahead_of_log":
            raise StreamResync(reason, token)
        return _Follow(token)
    if frame.event == "revoked":
        said = orjson.loads(frame.data).get("reason") if frame.data else None
        raise StreamRevoked(str(said or "the API key of this stream is not valid any more"))
    return None


class _Stream:
    """The state both streams share: the token, the policy, and what to do after an outcome."""

    def __init__(
        self,
        transport: SyncTransport | AsyncTransport,
        resume_from: str | int | None,
        reconnect: RetryPolicy | None,
        read_timeout: float,
    ) -> None:
        self._transport = transport
        self.token: str | None = None if resume_from is None else str(resume_from)
        """The token of the last order handed out (or the starting point): where a reconnect resumes."""
        self.reconnects = 0
        """How many times the stream set out to connect again (after a lost, ended or refused connection)."""
        self._policy = reconnect if reconnect is not None else RECONNECT
        self._timeout = httpx.Timeout(transport.http.timeout.connect, read=read_timeout)
        self._budget: RetryBudget | None = None

    def _request(self) -> tuple[str, dict[str, object]]:
        headers = {**self._transport.headers, "Accept": "text/event-stream", "Cache-Control": "no-cache"}
        if self.token is not None:
            headers["Last-Event-ID"] = self.token
        return f"{self._transport.base_url}{_CALL.path}", {"headers": headers, "timeout": self._timeout}

    def _connected(self) -> None:
        """A 200: a later outage starts with a fresh budget."""
        self._budget = None

    def _delay(self, outcome: Outcome | None) -> float:
        """The wait before reconnecting after ``outcome`` (``None``: the gateway ended the stream), or the
        exception to raise when the stream must not reconnect (a 4xx, or the budget is spent)."""
        if isinstance(outcome, httpx.Response) and outcome.status_code not in (429, 502, 503, 504):
            url, _ = self._request()
            self._transport.finish(_CALL, url, outcome, 1)  # raises the 4xx (or 5xx) as its exception
        if self._budget is None:
            self._budget = self._policy.start(clock=self._transport.clock)
        self._budget.attempted()
        retry_after = outcome.headers.get("Retry-After") if isinstance(outcome, httpx.Response) else None
        delay = self._budget.next_delay(retry_after)
        if delay is None:
            if isinstance(outcome, httpx.Response):
                url, _ = self._request()
                self._transport.finish(_CALL, url, outcome, self._budget.attempts)
            cause = type(outcome).__name__ if outcome is not None else "the stream kept ending"
            raise GatewayUnreachable(self._transport.base_url, cause, self._budget.attempts)
        self.reconnects += 1
        return delay


class EventStream(_Stream):
    """Committed orders as they come, for ``for event in client.events(): ...`` (see the module)."""

    _transport: SyncTransport

    def __iter__(self) -> Iterator[OrderEvent]:
        transport = self._transport
        if self.token is None:
            with contextlib.suppress(RequestRefused):  # a bound viewer: no token until the first order
                self.token = position_of(transport.run(_NOW))
        while True:
            outcome: Outcome | None = None
            url, options = self._request()
            try:
                with transport.http.stream("GET", url, **options) as response:  # type: ignore[arg-type]
                    if response.status_code != 200:
                        response.read()
                        outcome = response
                    else:
                        self._connected()
                        reader = FrameReader()
                        for line in response.iter_lines():
                            frame = reader.line(line)
                            item = interpret(frame) if frame is not None else None
                            if isinstance(item, OrderEvent):
                                self.token = item.token
                                yield item
                            elif isinstance(item, _Follow):
                                self.token = item.token
                                break
            except httpx.TransportError as exc:
                outcome = exc
            transport.sleep(self._delay(outcome))


class AsyncEventStream(_Stream):
    """:class:`EventStream` for ``async for``; close it with :meth:`aclose` (or ``contextlib.aclosing``)
    when leaving the loop early."""

    _transport: AsyncTransport

    def __init__(
        self,
        transport: AsyncTransport,
        resume_from: str | int | None,
        reconnect: RetryPolicy | None,
        read_timeout: float,
    ) -> None:
        super().__init__(transport, resume_from, reconnect, read_timeout)
        self._events: AsyncIterator[OrderEvent] | None = None

    def __aiter__(self) -> AsyncIterator[OrderEvent]:
        if self._events is None:
            self._events = self._follow()
        return self._events

    async def aclose(self) -> None:
        if self._events is not None:
            await self._events.aclose()  # type: ignore[attr-defined]

    async def _follow(self) -> AsyncIterator[OrderEvent]:
        transport = self._transport
        if self.token is None:
            with contextlib.suppress(RequestRefused):  # a bound viewer: no token until the first order
                self.token = position_of(await transport.run(_NOW))
        while True:
            outcome: Outcome | None = None
            url, options = self._request()
            try:
                async with transport.http.stream("GET", url, **options) as response:  # type: ignore[arg-type]
                    if response.status_code != 200:
                        await response.aread()
                        outcome = response
                    else:
                        self._connected()
                        reader = FrameReader()
                        async for line in response.aiter_lines():
                            frame = reader.line(line)
                            item = interpret(frame) if frame is not None else None
                            if isinstance(item, OrderEvent):
                                self.token = item.token
                                yield item
                            elif isinstance(item, _Follow):
                                self.token = item.token
                                break
            except httpx.TransportError as exc:
                outcome = exc
            await transport.sleep(self._delay(outcome))
