"""``GET /v1/events``: server-sent events, one per committed order, resumable from the log.

Each event is ``event: order``, ``id: <order_id>`` and, as data, the same JSON as the order's answer
on ``POST /v1/orders``. Only committed orders are sent (the hub is a commit listener), in order_id
order. A client that reconnects with ``Last-Event-ID`` (browsers do it by themselves), or connects
with ``?after=N``, first gets every order after that id from the store's log, then the live ones,
without gap or duplicate. A client that falls too far behind is sent ``event: resync`` and the
stream ends: it reconnects with its ``Last-Event-ID`` and catches up from the log, while order
handling never waited for it. A ``resync`` is also sent at once when the client's id is past the
log's end (the store was replaced): reload, then follow the live events.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable, Sequence
from typing import Annotated

import orjson
from fastapi import APIRouter, Header, Query, Request
from fastapi.responses import Response, StreamingResponse

from ordergate.api.access import viewed_user
from ordergate.api.answers import applied_for, order_answer
from ordergate.api.deps import GatewayDep
from ordergate.api.http import ClientError
from ordergate.api.routes.queries import MAX_ID
from ordergate.domain.record import OrderRecord
from ordergate.errors import StoreUnavailable
from ordergate.service.events import EventHub, HubClosed, Subscriber, SubscriberDropped
from ordergate.store.base import MAX_PAGE, OrderQuery, Store

router = APIRouter(tags=["events"])

RETRY_MILLISECONDS = 1000
"""How soon a browser's EventSource reconnects after the stream ends or breaks."""


def encode_events(records: Sequence[OrderRecord]) -> bytes:
    """The SSE frames of committed orders: ``id``, ``event: order`` and the order answer as data."""
    return b"".join(
        b"id: %d\nevent: order\ndata: %b\n\n" % (record.order_id, orjson.dumps(order_answer(record)))
        for record in records
    )


def encode_events_for(user: str) -> Callable[[Sequence[OrderRecord]], bytes]:
    """The SSE frames a viewer bound to ``user`` may see: orders applied for it, its own outcome only."""

    def encode(records: Sequence[OrderRecord]) -> bytes:
        return b"".join(
            b"id: %d\nevent: order\ndata: %b\n\n" % (r.order_id, orjson.dumps(order_answer(r, only_user=user)))
            for r in records
            if applied_for(r, user)
        )

    return encode


def resync_event(reason: str, last_order_id: int) -> bytes:
    data = orjson.dumps({"reason": reason, "last_order_id": last_order_id})
    return b"event: resync\ndata: %b\n\n" % data


def _resume_point(last_event_id: str | None, after: int | None) -> int | None:
    if last_event_id is None:
        return after
    value = last_event_id.strip()
    if not (value.isascii() and value.isdigit() and int(value) <= MAX_ID):
        raise ClientError(
            422,
            f"Last-Event-ID header: must be an order id (a whole number), not {last_event_id[:40]!r}",
            [{"loc": ["header", "last-event-id"], "msg": "must be a whole number", "type": "int_parsing"}],
        )
    return int(value)


@router.get(
    "/v1/events",
    summary="Committed orders as server-sent events",
    response_class=StreamingResponse,
    responses={
        200: {
            "content": {"text/event-stream": {}},
            "description": "`event: order` (id = order_id, data = the order answer) per committed order; "
            "`event: resync` when the client must reload; `: keep-alive` comments in silence.",
        },
        422: {"description": "Last-Event-ID is not an order id."},
    },
)
async def stream_events(
    gateway: GatewayDep,
    request: Request,
    after: Annotated[
        int | None,
        Query(ge=0, le=MAX_ID, description="Send the orders after this id first (from the log), then live ones."),
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
    start = _resume_point(last_event_id, after)
    live: tuple[Subscriber, int] | None = None
    if start is None:
        live = (hub.subscribe(), hub.last_order_id)  # before the headers go out: nothing committed later is missed
    return StreamingResponse(
        _stream(gateway.store, hub, start, live, gateway.settings.event_heartbeat, _encoder(request)),
        media_type="text/event-stream",
        headers={"Cache-Control": "no-cache", "X-Accel-Buffering": "no"},
    )


def _encoder(request: Request) -> Callable[[Sequence[OrderRecord]], bytes] | None:
    """``None`` (every order, shared encoding) or the encoder of a viewer bound to one user."""
    only = viewed_user(request)
    return encode_events_for(only) if only is not None else None


async def _stream(
    store: Store,
    hub: EventHub,
    start: int | None,
    live: tuple[Subscriber, int] | None,
    heartbeat: float,
    encode: Callable[[Sequence[OrderRecord]], bytes] | None = None,
) -> AsyncIterator[bytes]:
    subscriber = live[0] if live is not None else None
    cursor = live[1] if live is not None else 0
    try:
        yield b"retry: %d\n\n" % RETRY_MILLISECONDS
        if subscriber is None:
            assert start is not None
            cursor = start
            if cursor > hub.last_order_id:
                yield resync_event("ahead_of_log", hub.last_order_id)
                cursor = hub.last_order_id
            async for frames, last in _from_log(store, hub, cursor, encode):  # the bulk of a catch-up, unbuffered
                yield frames
                cursor = last
            subscriber = hub.subscribe()
            async for frames, last in _from_log(store, hub, cursor, encode):  # what committed while we subscribed
                yield frames
                cursor = last
        while True:
            batch = await subscriber.next(heartbeat)
            if batch is None:
                yield b": keep-alive\n\n"
                continue
            if batch.last_id <= cursor:
                continue
            if encode is not None:
                frames = encode([r for r in batch.records if r.order_id > cursor])
                if frames:
                    yield frames
            elif batch.records[0].order_id > cursor:
                yield batch.wire(encode_events)
            else:
                yield encode_events([r for r in batch.records if r.order_id > cursor])
            cursor = batch.last_id
    except SubscriberDropped:
        yield resync_event("slow_client", cursor)
    except HubClosed:
        return
    finally:
        if subscriber is not None:
            subscriber.close()


async def _from_log(
    store: Store, hub: EventHub, after: int, encode: Callable[[Sequence[OrderRecord]], bytes] | None = None
) -> AsyncIterator[tuple[bytes, int]]:
    """Committed orders after ``after`` from the store, a page at a time, with the new cursor."""
    while not hub.is_closed:
        page = await store.list_orders(OrderQuery(after=after, limit=MAX_PAGE))
        if not page.items:
            return
        after = page.items[-1].order_id
        yield (encode or encode_events)(page.items), after
        if page.next is None:
            return
