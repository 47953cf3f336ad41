"""Reading the orders of the risk horizon without scanning the log: a binary search over order ids.

Rebuilding the risk state (:mod:`ordergate.domain.risk`) reads every order received in the last
:data:`~ordergate.domain.risk.HORIZON`. No index serves ``received_at`` (none is worth its cost on every
order for a read made when a gateway starts or limits come into force), but the log's ``received_at``
follows its ``order_id``: the embedded store decides in order_id order and stamps each order as it is
decided; on PostgreSQL a group draws its ids when it takes its locks and stamps its orders a moment
later, so an order may carry an earlier time than one with a smaller id, by at most as long as a
transaction can last (seconds: the lock and idle-in-transaction timeouts) plus the clock difference
of two gateway machines. So the first order id worth reading is found by a binary search on the
primary key for the first order received at or after the horizon's start *less* :data:`SLACK`, in one
statement (a recursive query of about 2 log2(n) index lookups), and only the orders from there on are
read, each still checked against the horizon's start exactly. An order received more than
:data:`SLACK` before one with a smaller id (a clock stepped back by over an hour) could be missed.
"""

from __future__ import annotations

from datetime import datetime, timedelta

SLACK = timedelta(hours=1)
"""How far ``received_at`` may go back from one order to a later one (by order id) and still be read."""


def search_floor(since: str) -> str:
    """The time the binary search looks for: ``since`` (the log's timestamp form) less :data:`SLACK`."""
    return (datetime.fromisoformat(since) - SLACK).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def orders_since_sql(columns: str, placeholder: str) -> str:
    """The statement that reads ``columns`` of every order received at or after a time, in order_id order.

    Its parameters, in order: :func:`search_floor` of the time twice, then the time itself.
    ``placeholder`` is the driver's (``?`` for sqlite3, ``%s`` for psycopg). Portable SQL: both engines
    run the recursive search the same way.
    """
    p = placeholder
    probe = "(SELECT received_at FROM orders WHERE order_id >= (lo + hi) / 2 ORDER BY order_id LIMIT 1)"
    reached = f"coalesce({probe} >= {p}, 1 = 1)"  # past the last order: as if reached
    return (
        "WITH RECURSIVE search(lo, hi) AS ("
        " SELECT CAST(1 AS BIGINT), (SELECT coalesce(max(order_id), 0) + 1 FROM orders)"
        f" UNION ALL SELECT CASE WHEN {reached} THEN lo ELSE (lo + hi) / 2 + 1 END,"
        f" CASE WHEN {reached} THEN (lo + hi) / 2 ELSE hi END FROM search WHERE lo < hi)"
        f" SELECT {columns} FROM orders WHERE order_id >= (SELECT lo FROM search WHERE lo >= hi)"
        f" AND received_at >= {p} ORDER BY order_id"
    )
