"""``ordergate orders | positions | trades``: one page of a running gateway's listings, as a table or JSON.

These commands are clients of the HTTP API (``GET /v1/orders``, ``/v1/positions``, ``/v1/trades``)
through the Python client (:mod:`ordergate.client`): the filters and the paging are the API's own,
answered by the process that owns the store, so they
show exactly what the gateway serves (committed state only) and will follow it wherever the API
goes (another host, a shared database, access keys). Bulk copies of a whole log are the job of
``ordergate export``, which reads the store directly.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any, Literal

from rich.table import Table

from ordergate.client import Client, Page

Listing = Literal["orders", "positions", "trades"]


def fetch_page(client: Client, listing: Listing, filters: Mapping[str, Any]) -> dict[str, Any]:
    """One page of ``GET /v1/<listing>`` with the given filters (``None`` ones left out), as the API's
    JSON ``{"items", "next"}``; raises the client's :class:`~ordergate.client.OrdergateError`."""
    fetch: Callable[..., Page[Any, int]]
    if listing == "orders":
        fetch = client.orders
    elif listing == "positions":
        fetch = client.positions
    else:
        fetch = client.trades
    page: dict[str, Any] = fetch(**filters).model_dump(mode="json", by_alias=True)
    return page


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
