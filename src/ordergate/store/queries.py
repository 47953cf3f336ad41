"""SQL that every engine shares: the conditions of an order-log query, in either parameter style."""

from __future__ import annotations

from ordergate.store.base import OrderQuery


def order_conditions(query: OrderQuery, mark: str, user_column: str) -> tuple[str, list[object]]:
    """The WHERE clause and its parameters for ``query`` (``mark``: ``?`` or ``%s``).

    Every effect applied for a user opened a position (still open, or closed since: a trade) or
    closed one (a trade), so those two tables index a user's orders without a third table.
    """
    where = [f"order_id > {mark}"]
    params: list[object] = [query.after]
    if query.user is not None:
        where.append(
            f"order_id IN (SELECT opened_order_id FROM positions WHERE {user_column} = {mark}"
            f" UNION SELECT opened_order_id FROM trades WHERE {user_column} = {mark}"
            f" UNION SELECT closed_order_id FROM trades WHERE {user_column} = {mark})"
        )
        params += [query.user] * 3
    for column, value in (
        ("strategy", query.strategy),
        ("instrument", query.instrument),
        ("status", query.status),
        ("side", query.side),
    ):
        if value is not None:
            where.append(f"{column} = {mark}")
            params.append(str(value))
    return " AND ".join(where), params
