"""``ordergate orders | positions | trades``: one page of a running gateway's listings, as a table or JSON.

These commands are clients of the HTTP API (``GET /v1/orders``, ``/v1/positions``, ``/v1/trades``):
the filters and the paging are the API's own, answered by the process that owns the store, so they
show exactly what the gateway serves (committed state only) and will follow it wherever the API
goes (another host, a shared database, access keys). Bulk copies of a whole log are the job of
``ordergate export``, which reads the store directly.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, Literal

import httpx
import orjson
from rich.table import Table

Listing = Literal["orders", "positions", "trades"]


class ListingError(Exception):
    """The listing could not be fetched; the message says why, for the user."""


def fetch_page(
    url: str,
    listing: Listing,
    filters: Mapping[str, object | None],
    *,
    timeout: float = 10.0,
    api_key: str | None = None,
) -> dict[str, Any]:
    """``GET /v1/<listing>`` with the given filters (``None`` values left out): ``{"items", "next"}``."""
    params = {name: str(value) for name, value in filters.items() if value is not None}
    endpoint = f"{url.rstrip('/')}/v1/{listing}"
    headers = {"Authorization": f"Bearer {api_key}"} if api_key else {}
    try:
        response = httpx.get(endpoint, params=params, timeout=timeout, headers=headers)
    except httpx.TransportError as exc:
        raise ListingError(
            f"no gateway answers at {url} ({type(exc).__name__}); start one with 'ordergate serve' or pass --url"
        ) from None
    try:
        body = orjson.loads(response.content)
    except orjson.JSONDecodeError:
        body = None
    if response.status_code != 200 or not isinstance(body, dict) or "items" not in body:
        raise ListingError(f"GET {endpoint} answered HTTP {response.status_code}: {_problem(body, response.text)}")
    return body


def render(listing: Listing, page: Mapping[str, Any]) -> Table:
    items: list[dict[str, Any]] = page["items"]
    table = {"orders": _orders, "positions": _positions, "trades": _trades}[listing](items)
    more = f"; more with --after {page['next']}" if page.get("next") is not None else ""
    table.caption = f"{len(items)} {listing if len(items) != 1 else listing[:-1]}{more}"
    return table


def _orders(items: list[dict[str, Any]]) -> Table:
    """The order log; client order ids and per-user refusals are in ``--json``."""
    table = Table(title="orders")
    table.add_column("order", justify="right", no_wrap=True)
    table.add_column("received (UTC)", overflow="fold")
    for column in ("strategy", "instrument", "side", "status"):
        table.add_column(column, no_wrap=True)
    table.add_column("users or reason", overflow="fold", ratio=1)
    for order in items:
        if order["status"] == "ACCEPTED":
            by_action: dict[str, list[str]] = {}
            for effect in order["applied"]:
                by_action.setdefault(effect["action"], []).append(effect["user"])
            outcome = "; ".join(f"{action}: {', '.join(users)}" for action, users in by_action.items())
            status = "[green]ACCEPTED[/]"
        else:
            outcome = str(order["reason"])
            status = "[red]REJECTED[/]"
        table.add_row(
            str(order["order_id"]),
            _when(order["received_at"]),
            order["strategy"],
            order["instrument"],
            order["side"],
            status,
            outcome,
        )
    return table


def _positions(items: list[dict[str, Any]]) -> Table:
    table = Table(title="open positions")
    for column in ("user", "instrument", "opened by", "order", "opened (UTC)"):
        table.add_column(column, justify="right" if column == "order" else "left", overflow="fold")
    for p in items:
        table.add_row(p["user"], p["instrument"], p["strategy"], str(p["opened_order_id"]), _when(p["opened_at"]))
    return table


def _trades(items: list[dict[str, Any]]) -> Table:
    table = Table(title="closed trades")
    for column in ("trade", "user", "instrument", "opened by", "opened (UTC)", "closed by", "closed (UTC)"):
        table.add_column(column, justify="right" if column == "trade" else "left", overflow="fold")
    for t in items:
        table.add_row(
            str(t["trade_id"]),
            t["user"],
            t["instrument"],
            t["strategy"],
            f"#{t['opened_order_id']} {_when(t['opened_at'])}",
            t["closing_strategy"],
            f"#{t['closed_order_id']} {_when(t['closed_at'])}",
        )
    return table


def _when(stamp: str) -> str:
    """``2026-01-02 03:04:05`` from a stored ``2026-01-02T03:04:05.123456Z`` (the JSON keeps it whole)."""
    return stamp[:19].replace("T", " ")


def _problem(body: object, text: str) -> str:
    if isinstance(body, dict):
        for key in ("message", "detail"):
            value = body.get(key)
            if isinstance(value, str):
                return value
    return " ".join(text.split())[:200] or "(empty body)"
