"""Order entry, independent of the web framework: body bytes in, a complete HTTP reply out.

Both doors into order entry call these functions: the FastAPI routes of
:mod:`ordergate.api.routes.orders` (which also document the endpoints in OpenAPI) and the raw ASGI
fast path of :mod:`ordergate.api.fastpath` that serves the same URLs without FastAPI's per-request
routing, dependency injection and serialisation. One implementation means the two cannot disagree.
Alert webhooks place their orders here too (:func:`place_alert`), through :func:`place_order`.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import orjson

from ordergate.api.alerts import alert_order
from ordergate.api.answers import decision_fields, legacy_answer, order_answer
from ordergate.api.http import ClientError, parse
from ordergate.api.schemas import BatchIn, LegacyOrderIn, OrderIn, client_order_id_problem
from ordergate.api.validation import legacy_order, v1_order
from ordergate.domain.model import Door, Order
from ordergate.domain.record import ANONYMOUS, Entry
from ordergate.errors import ClientOrderIdConflict, OrdergateError, ReadsBusy, StoredRowError, StoreUnavailable
from ordergate.security.hooks import Hook
from ordergate.security.keys import Principal
from ordergate.service.sequencing import Outcome, Sequencing

JSON = (("content-type", "application/json"),)
MAX_BATCH = 1000


@dataclass(frozen=True, slots=True)
class Reply:
    status: int
    body: bytes
    headers: tuple[tuple[str, str], ...] = JSON


def reply(content: Any, status: int = 200, extra_headers: tuple[tuple[str, str], ...] = ()) -> Reply:
    return Reply(status, orjson.dumps(content), JSON + extra_headers)


def error_reply(exc: Exception, *, legacy: bool = False, principal: Principal | None = None) -> Reply:
    """The reply for an error a request can meet; anything else is a bug and re-raised.

    A 409 names the order that holds the client order id only to a key that may send orders of its
    strategy: a producer limited to other strategies learns that the id is taken, nothing more.
    """
    if isinstance(exc, ClientError):
        if legacy and exc.status == 422:
            return reply({"RESPONSE": "REJECTED", "REASON": "INVALID_ORDER", "DETAIL": exc.message}, 422)
        body: dict[str, object] = {"detail": exc.errors if exc.errors is not None else exc.message}
        if exc.errors is not None:
            body["message"] = exc.message
        return reply(body, exc.status)
    if isinstance(exc, ClientOrderIdConflict):
        holder = exc.record
        if principal is not None and holder is not None and not principal.may_order(holder.order.strategy):
            return reply(
                {"detail": f"client_order_id {holder.client_order_id!r} is already used by another order; "
                 "use a new id for a different order"},
                409,
            )  # fmt: skip
        return reply({"detail": str(exc)}, 409)
    if isinstance(exc, StoredRowError):  # not an outage (a retry changes nothing): a conflict with what is stored
        detail = f"{exc}: the stored order was altered and cannot be shown; ordergate verify reports it"
        return reply({"detail": detail}, 409)
    if isinstance(exc, ReadsBusy):
        return reply({"detail": f"{exc}"}, 503, (("retry-after", str(exc.retry_after)),))
    if isinstance(exc, StoreUnavailable):
        return reply(
            {"detail": f"the order was not stored, retry later: {exc}"},
            503,
            (("retry-after", str(exc.retry_after)),),
        )
    raise exc


def _decode(body: bytes) -> object:
    try:
        return orjson.loads(body)
    except orjson.JSONDecodeError:
        return None  # the model's parser produces the message


def _checked_key(key: str | None) -> str | None:
    if key is not None:
        problem = client_order_id_problem(key)
        if problem is not None:
            raise ClientError(
                422,
                f"Idempotency-Key header: {problem}",
                [{"loc": ["header", "idempotency-key"], "msg": problem, "type": "value_error"}],
            )
    return key


def _authorise(principal: Principal | None, orders: Sequence[Order]) -> None:
    """403 unless the key may send orders for every strategy among ``orders`` (auth off: anyone may)."""
    if principal is None:
        return
    for order in orders:
        if not principal.may_order(order.strategy):
            allowed = ", ".join(sorted(principal.strategies or ()))
            raise ClientError(
                403, f"this key ({principal.name}) may send orders for {allowed} only, not for {order.strategy}"
            )


async def place_legacy(
    sequencer: Sequencing, body: bytes, idempotency_key: str | None, principal: Principal | None = None
) -> Reply:
    try:
        order = legacy_order(_decode(body))
        if order is None:
            model = parse(LegacyOrderIn, body)
            order = Order(model.STRATEGY, model.INSTRUMENT, model.POSITION)
        _authorise(principal, (order,))
        outcome = await sequencer.submit(order, _checked_key(idempotency_key), _entry(principal, door=Door.LEGACY))
    except OrdergateError as exc:
        return error_reply(exc, legacy=True, principal=principal)
    except ClientError as exc:
        return error_reply(exc, legacy=True, principal=principal)
    return reply(legacy_answer(outcome.record))


def _entry(principal: Principal | None, signal_time: str | None = None, door: Door = Door.API) -> Entry:
    """How an order came in: the key that sent it (``anonymous`` with auth off), its signal's time and
    the door it came through."""
    return Entry(principal.name if principal is not None else ANONYMOUS, signal_time, door=door)


def _v1(document: object, body: bytes) -> tuple[Order, str | None, str | None]:
    """The order, client order id and ``signal_time`` (the log's form) of a ``/v1/orders`` body."""
    parsed = v1_order(document)
    if parsed is not None:
        return parsed[0], parsed[1], None
    model = parse(OrderIn, body)
    return Order(model.strategy, model.instrument, model.side), model.client_order_id, model.signal_time


async def place_order(
    sequencer: Sequencing,
    body: bytes,
    idempotency_key: str | None,
    principal: Principal | None = None,
    door: Door = Door.API,
) -> Reply:
    try:
        order, client_order_id, signal_time = _v1(_decode(body), body)
        _authorise(principal, (order,))
        key = _checked_key(idempotency_key)
        if key is not None and client_order_id is not None and key != client_order_id:
            raise ClientError(
                422, "Idempotency-Key header and client_order_id differ; send one of them, or equal values"
            )
        outcome = await sequencer.submit(order, key or client_order_id, _entry(principal, signal_time, door))
    except (OrdergateError, ClientError) as exc:
        return error_reply(exc, principal=principal)
    return reply(order_answer(outcome.record, replayed=outcome.replayed), 200 if outcome.replayed else 201)


async def place_alert(sequencer: Sequencing, hook: Hook, body: bytes) -> Reply:
    """An alert posted to ``hook`` (SPEC section 11): read as the order it asks for
    (:func:`~ordergate.api.alerts.alert_order`), then placed as ``POST /v1/orders`` places it, by a
    producer of the hook's one strategy named as the hook, through the door ``hook``. Its client order
    id is the alert's own (alerting platforms cannot send headers: an ``Idempotency-Key`` is not read)."""
    try:
        order_body = alert_order(body, hook.strategy)
    except ClientError as exc:
        return error_reply(exc)
    return await place_order(sequencer, order_body, None, hook.principal(), Door.HOOK)


async def place_batch(sequencer: Sequencing, body: bytes, principal: Principal | None = None) -> Reply:
    """Up to 1000 orders, decided in their order, each atomic on its own (SPEC section 4).

    A batch holding an order the key may not send is refused whole (403), before anything is decided.
    """
    try:
        items = _batch_items(_decode(body))
        if items is None:
            model = parse(BatchIn, body)
            items = [(Order(o.strategy, o.instrument, o.side), o.client_order_id) for o in model.orders]
            entries = [_entry(principal, o.signal_time) for o in model.orders]
        else:
            entries = [_entry(principal)] * len(items)
        _authorise(principal, [order for order, _ in items])
        results = await sequencer.submit_many(items, entries)
    except (OrdergateError, ClientError) as exc:
        return error_reply(exc, principal=principal)
    return reply({"results": [_batch_item(result, principal) for result in results]})


def _batch_items(document: object) -> list[tuple[Order, str | None]] | None:
    if type(document) is not dict or document.keys() != {"orders"}:
        return None
    orders = document["orders"]
    if type(orders) is not list or not 0 < len(orders) <= MAX_BATCH:
        return None
    items = []
    for order in orders:
        item = v1_order(order)
        if item is None:
            return None
        items.append(item)
    return items


def _batch_item(result: Outcome | OrdergateError, principal: Principal | None) -> dict[str, Any]:
    if isinstance(result, Outcome):
        return order_answer(result.record, replayed=result.replayed)
    failed = error_reply(result, principal=principal)
    return {"error": {"status": failed.status, "detail": orjson.loads(failed.body)["detail"]}}


def check_order(sequencer: Sequencing, body: bytes, principal: Principal | None = None) -> Reply:
    try:
        order, _, signal_time = _v1(_decode(body), body)
        _authorise(principal, (order,))
    except ClientError as exc:
        return error_reply(exc)
    return reply(decision_fields(order, sequencer.check(order, _entry(principal, signal_time))))


def header(headers: Sequence[tuple[bytes, bytes]], name: bytes) -> str | None:
    """A request header from raw ASGI headers (``name`` in lower case), decoded as Latin-1."""
    for key, value in headers:
        if key == name:
            return value.decode("latin-1")
    return None
