"""Read side: one order, the order log with filters and cursor paging, positions, trades, profiles.

The profiles (users, strategies) are paged by name and built off the event loop
(:mod:`ordergate.api.profile_pages`).

Everything here reads committed state from the store, never the sequencer's in-flight book, so a
reader can never see an order that a crash could still take back.

A viewer key bound to one user (:func:`~ordergate.api.access.viewed_user`) sees only that user: its
positions and trades, the orders applied for it with the other users' outcomes left out, and its
own profile; asking for another user's data is a 403.

The listings page by cursor: ``next`` is the ``after`` of the following page and only ``next: null``
ends a listing, because the store bounds the work of each page (:mod:`ordergate.store.queries`) and
may answer fewer than ``limit`` items, even none, with more to come. Big pages are turned into JSON
on a worker thread, so that orders arriving meanwhile do not wait for it on the event loop.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Sequence
from typing import Annotated, Any, TypeVar

from fastapi import APIRouter, Path, Query, Request
from fastapi.responses import Response
from pydantic import AfterValidator

from ordergate.api.access import viewed_user
from ordergate.api.answers import applied_for, order_answer, position_answer, trade_answer
from ordergate.api.deps import SequencerDep, StoreDep
from ordergate.api.http import ClientError, json_response
from ordergate.api.profile_pages import ProfileIndexesDep, strategies_page, users_page
from ordergate.api.schemas import (
    NAME_DESCRIPTION,
    OrderOut,
    OrderPage,
    PositionPage,
    Problem,
    StrategyPage,
    TradePage,
    UserPage,
    valid_name,
)
from ordergate.domain.model import Side, Status
from ordergate.domain.names import MAX_NAME_LENGTH
from ordergate.store.base import MAX_PAGE, OrderQuery, Page, PositionQuery, TradeQuery

router = APIRouter()
T = TypeVar("T")

OFF_LOOP_ITEMS = 50
"""Pages with more items are turned into JSON on a worker thread: a page of a thousand orders is several
milliseconds of Python that every order arriving meanwhile would wait for on the event loop."""


def _valid_filter(value: str | None) -> str | None:
    return valid_name(value) if value is not None else None


NameFilter = Annotated[
    str | None,
    Query(min_length=1, max_length=MAX_NAME_LENGTH, description=NAME_DESCRIPTION),
    AfterValidator(_valid_filter),
]
"""A name to filter on: refused (422) as an order's name would be, so a look-alike never reaches the store."""
MAX_ID = 2**63 - 1
"""Ids and cursors are 64-bit integers in every store; a larger number is a 422, not a store error."""
After = Annotated[int, Query(ge=0, le=MAX_ID, description="Cursor: the `next` of the previous page.")]
Limit = Annotated[int, Query(ge=1, le=MAX_PAGE)]


@router.get(
    "/v1/orders/{order_id}",
    tags=["orders"],
    response_model=OrderOut,
    responses={
        404: {"model": Problem, "description": "No such order."},
        409: {
            "model": Problem,
            "description": "The stored order was altered and cannot be shown (`ordergate verify`).",
        },
    },
)
async def get_order(order_id: Annotated[int, Path(ge=1, le=MAX_ID)], store: StoreDep, request: Request) -> Response:
    record = await store.get_order(order_id)
    only = viewed_user(request)
    if record is None or (only is not None and not applied_for(record, only)):
        raise ClientError(404, f"order {order_id} does not exist")
    return json_response(order_answer(record, only_user=only))


async def page_response(page: Page[T], answer: Callable[[T], dict[str, Any]]) -> Response:
    """The ``{"items", "next"}`` answer of a listing page (``next`` may be set on a short or empty page)."""

    def encode() -> Response:
        return json_response({"items": [answer(item) for item in page.items], "next": page.next})

    return encode() if len(page.items) <= OFF_LOOP_ITEMS else await asyncio.to_thread(encode)


def _bound_user(request: Request, user: str | None) -> str | None:
    """The user filter to apply: the bound viewer's own user, or the one asked for (403 for another)."""
    only = viewed_user(request)
    if only is None:
        return user
    if user is not None and user != only:
        raise ClientError(403, f"this key may see {only}'s data only, not {user}'s")
    return only


@router.get("/v1/orders", tags=["orders"], response_model=OrderPage, summary="The order log, ascending")
async def list_orders(
    store: StoreDep,
    request: Request,
    strategy: NameFilter = None,
    instrument: NameFilter = None,
    user: Annotated[
        str | None,
        Query(min_length=1, max_length=MAX_NAME_LENGTH, description="Orders applied for this user."),
        AfterValidator(_valid_filter),
    ] = None,
    status: Status | None = None,
    side: Side | None = None,
    after: After = 0,
    limit: Limit = 100,
) -> Response:
    page = await store.list_orders(
        OrderQuery(
            strategy=strategy,
            instrument=instrument,
            user=_bound_user(request, user),
            status=status,
            side=side,
            after=after,
            limit=limit,
        )
    )
    only = viewed_user(request)
    return await page_response(page, lambda r: order_answer(r, only_user=only))


@router.get("/v1/positions", tags=["book"], response_model=PositionPage, summary="Open positions")
async def list_positions(
    store: StoreDep,
    request: Request,
    user: NameFilter = None,
    strategy: NameFilter = None,
    instrument: NameFilter = None,
    after: After = 0,
    limit: Limit = 100,
) -> Response:
    page = await store.list_positions(
        PositionQuery(
            user=_bound_user(request, user), strategy=strategy, instrument=instrument, after=after, limit=limit
        )
    )
    return await page_response(page, position_answer)


@router.get("/v1/trades", tags=["book"], response_model=TradePage, summary="Closed round trips")
async def list_trades(
    store: StoreDep,
    request: Request,
    user: NameFilter = None,
    strategy: NameFilter = None,
    instrument: NameFilter = None,
    after: After = 0,
    limit: Limit = 100,
) -> Response:
    page = await store.list_trades(
        TradeQuery(user=_bound_user(request, user), strategy=strategy, instrument=instrument, after=after, limit=limit)
    )
    return await page_response(page, trade_answer)


NameCursor = Annotated[
    str | None,
    Query(
        min_length=1,
        max_length=MAX_NAME_LENGTH,
        description="Cursor: the `next` of the previous page, a name; the page holds the names after it "
        "in code point order.",
    ),
]


@router.get("/v1/users", tags=["profiles"], response_model=UserPage, summary="Users and their subscriptions, by name")
async def list_users(
    sequencer: SequencerDep, indexes: ProfileIndexesDep, request: Request, after: NameCursor = None, limit: Limit = 100
) -> Response:
    registry = sequencer.registry
    only = viewed_user(request)
    if only is not None:
        names: Sequence[str] = (only,) if only in registry.profiles() else ()
    else:
        names = (await indexes.of(registry)).users
    body = await asyncio.to_thread(users_page, registry, names, after, limit)
    return Response(body, media_type="application/json")


@router.get(
    "/v1/strategies",
    tags=["profiles"],
    response_model=StrategyPage,
    summary="Strategies with their subscribers and instruments, by name",
)
async def list_strategies(
    sequencer: SequencerDep, indexes: ProfileIndexesDep, request: Request, after: NameCursor = None, limit: Limit = 100
) -> Response:
    registry = sequencer.registry
    only = viewed_user(request)
    if only is not None:
        names: Sequence[str] = sorted(registry.profiles().get(only, {}))
    else:
        names = (await indexes.of(registry)).strategies
    body = await asyncio.to_thread(strategies_page, registry, names, after, limit, only)
    return Response(body, media_type="application/json")
