"""``GET /v1/events``: server-sent events, one per committed order, resumable with a token, bounded.

Each event is ``event: order``, ``id: <token>`` and, as data, the same JSON as the order's answer
on ``POST /v1/orders``. The token is the order's position in the log's commit-ordered stream
(:class:`~ordergate.store.base.StreamPosition`): a client that reconnects with ``Last-Event-ID``
(browsers do it by themselves), or connects with ``?after=TOKEN``, receives every order committed
after it exactly once, whichever gateway process it was connected to before or is now (on
PostgreSQL the stream is the whole cluster's). ``?after=N`` with a plain order id starts after that
order. The protocol itself is :func:`ordergate.service.stream.follow`; this module parses, refuses
and writes frames.

An order that changed the trading controls in its own transaction (a circuit breaker's trip, a
flatten's ``then``) is followed by ``event: control`` with the change as ``GET /v1/controls`` lists it
(no ``id``: a client resuming after the order has both). A viewer bound to a user sees those of the
gateway and of its user, as in ``GET /v1/controls``.

``event: resync`` (data ``{"reason", "token"}``) means: reload, then follow from ``token``; it is
sent when the client falls too far behind (``slow_client``) or its token is not of this log
(``ahead_of_log``). ``event: revoked`` ends the stream of a key revoked while it was open (within a
second). Past ``--max-event-clients`` open streams a new one is refused with 503 and ``Retry-After``.
"""

from __future__ import annotations

import re
from collections.abc import AsyncIterator, Callable, Sequence
from typing import Annotated

import orjson
from fastapi import APIRouter, Header, Query, Request
from fastapi.responses import Response, StreamingResponse
from starlette.types import Receive, Scope, Send

from ordergate.api.access import ADMITTED, viewed_user
from ordergate.api.answers import applied_for, control_change_answer, order_answer
from ordergate.api.deps import GatewayDep
from ordergate.api.http import ClientError
from ordergate.api.routes.queries import MAX_ID
from ordergate.domain.controls import ControlChange
from ordergate.errors import StoreUnavailable
from ordergate.service.events import EventHub, Row
from ordergate.service.stream import Orders, Quiet, Resync, Revoked, follow
from ordergate.store.base import START, Store, StreamPosition

router = APIRouter(tags=["events"])

RETRY_MILLISECONDS = 1000
"""How soon a browser's EventSource reconnects after the stream ends or breaks."""
TOKEN = re.compile(r"(?:(\d{1,19})-)?(\d{1,19})")

Encoder = Callable[[Sequence[Row]], bytes]


def encode_events(rows: Sequence[Row]) -> bytes:
    """The SSE frames of committed orders: their token as ``id``, ``event: order``, the answer as data;
    then the control change the order made, if any."""
    frames: list[bytes] = []
    for position, record in rows:
        frames.append(
            b"id: %b\nevent: order\ndata: %b\n\n" % (position.token().encode(), orjson.dumps(order_answer(record)))
        )
        if record.control_change is not None:
            frames.append(_control_event(record.control_change[0]))
    return b"".join(frames)


def encode_events_for(user: str) -> Encoder:
    """The SSE frames a viewer bound to ``user`` may see: orders applied for it, its own outcome only, and
    the control changes of the gateway and of that user."""

    def encode(rows: Sequence[Row]) -> bytes:
        frames: list[bytes] = []
        for position, record in rows:
            if applied_for(record, user):
                frames.append(
                    b"id: %b\nevent: order\ndata: %b\n\n"
                    % (position.token().encode(), orjson.dumps(order_answer(record, only_user=user)))
                )
            change = record.control_change[0] if record.control_change is not None else None
            if change is not None and (change.setting.level == "global" or change.setting.target == user):
                frames.append(_control_event(change))
        return b"".join(frames)

    return encode


def _control_event(change: ControlChange) -> bytes:
    return b"event: control\ndata: %b\n\n" % orjson.dumps(control_change_answer(change))


def resync_event(reason: str, position: StreamPosition) -> bytes:
    return b"event: resync\ndata: %b\n\n" % orjson.dumps({"reason": reason, "token": position.token()})


REVOKED_EVENT = b'event: revoked\ndata: {"reason":"the API key of this stream is not valid any more"}\n\n'


async def resume_point(store: Store, token: str | None, source: str) -> StreamPosition | None:
    """The position a client resumes after, or ``None`` (from now on); 422 for what is not a token."""
    if token is None:
        return None
    found = TOKEN.fullmatch(token.strip())
    if found is None or max(int(found.group(1) or 0), int(found.group(2))) > MAX_ID:
        raise ClientError(
            422,
            f"{source}: not a resume token (the id: of an event, or an order id), not {token[:40]!r}",
            [{"loc": _location(source), "msg": "not a resume token", "type": "value_error"}],
        )
    commit, order_id = found.group(1), int(found.group(2))
    if commit is not None:
        return StreamPosition(int(commit), order_id)
    if order_id == 0:
        return START
    position = await store.stream_position(order_id)
    if position is None:
        raise ClientError(
            422,
            f"{source}: there is no order {order_id} to resume after; use the id: of an event, or 0 for the whole log",
            [{"loc": _location(source), "msg": "no such order", "type": "value_error"}],
        )
    return position


def _location(source: str) -> list[str]:
    return ["header", "last-event-id"] if source == "Last-Event-ID header" else ["query", "after"]


class EventStreamResponse(StreamingResponse):
    """The stream, counted among the hub's open streams while it is served (refused past the cap).

    The frames are produced only once the response is being sent, and closed whatever happens, so a
    client that goes away before its first byte leaves no subscriber behind.
    """

    def __init__(self, hub: EventHub, cap: int, frames: AsyncIterator[bytes]) -> None:
        super().__init__(
            frames, media_type="text/event-stream", headers={"Cache-Control": "no-cache", "X-Accel-Buffering": "no"}
        )
        self._hub = hub
        self._cap = cap
        self._frames = frames

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        hub = self._hub
        try:
            if hub.streams >= self._cap:
                body = orjson.dumps({"detail": f"too many event streams are open ({self._cap}); retry later"})
                refused = Response(body, 503, {"Retry-After": "5"}, media_type="application/json")
                await refused(scope, receive, send)
                return
            hub.streams += 1
            try:
                await super().__call__(scope, receive, send)
            finally:
                hub.streams -= 1
        finally:
            await self._frames.aclose()  # type: ignore[attr-defined]


@router.get(
    "/v1/events",
    summary="Committed orders as server-sent events",
    response_class=StreamingResponse,
    responses={
        200: {
            "content": {"text/event-stream": {}},
            "description": "`event: order` (id = the order's resume token, data = the order answer) per committed "
            "order; `event: resync` when the client must reload; `event: revoked` when its key was revoked; "
            "`: keep-alive` comments in silence.",
        },
        422: {"description": "Last-Event-ID or after is not a resume token."},
        503: {"description": "Too many event streams are open; see Retry-After."},
    },
)
async def stream_events(
    gateway: GatewayDep,
    request: Request,
    after: Annotated[
        str | None,
        Query(
            max_length=40,
            description="Send the orders committed after this resume token (an event's id:, or an order id) first, "
            "then live ones.",
        ),
    ] = None,
    last_event_id: Annotated[
        str | None, Header(description="Set by a reconnecting EventSource; takes precedence over `after`.")
    ] = None,
    api_key: Annotated[
        str | None,
        Query(description="The API key, for clients that cannot send headers (a browser's EventSource)."),
    ] = None,
) -> Response:
    hub = gateway.events
    if hub is None or hub.is_closed:
        raise StoreUnavailable("the gateway is starting or stopping")
    if last_event_id is not None:
        start = await resume_point(gateway.store, last_event_id, "Last-Event-ID header")
    else:
        start = await resume_point(gateway.store, after, "after")
    only = viewed_user(request)
    encode = encode_events_for(only) if only is not None else None
    frames = _frames(
        gateway.store,
        hub,
        start if start is not None else hub.position,
        gateway.settings.event_heartbeat,
        encode,
        request.scope.get(ADMITTED),
    )
    return EventStreamResponse(hub, gateway.settings.max_event_clients, frames)


async def _frames(
    store: Store,
    hub: EventHub,
    start: StreamPosition,
    heartbeat: float,
    encode: Encoder | None,
    admitted: Callable[[], bool] | None,
) -> AsyncIterator[bytes]:
    yield b"retry: %d\n\n" % RETRY_MILLISECONDS
    try:
        async for item in follow(store, hub, start, heartbeat=heartbeat, admitted=admitted):
            frames, last = _frames_of(item, encode)
            if frames:
                yield frames
            if last:
                return
    except StoreUnavailable:
        return  # the store is down, closing, or its read lane full: the client resumes with Last-Event-ID


def _frames_of(item: Orders | Quiet | Resync | Revoked, encode: Encoder | None) -> tuple[bytes, bool]:
    """The wire form of one item of the stream, and whether the stream ends after it."""
    if isinstance(item, Orders):
        if encode is not None:
            return encode(item.rows), False
        if item.batch is not None:
            return item.batch.wire(encode_events), False  # the hub's batch: encoded once for every client
        return encode_events(item.rows), False
    if isinstance(item, Quiet):
        return b": keep-alive\n\n", False
    if isinstance(item, Resync):
        return resync_event(item.reason, item.position), item.reason != "ahead_of_log"
    return REVOKED_EVENT, True
