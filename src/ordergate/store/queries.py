"""The SQL of one listing page, shared by every engine: the index that drives it and how far it may walk.

Every filter of ``GET /v1/orders``, ``/v1/positions`` and ``/v1/trades`` is served by an index that
yields its rows in id order, the listing's order: the page's *driver* (see :func:`order_page` and
:func:`book_page` for which one each filter gets). A page with no condition beyond its driver stops
after ``limit + 1`` rows of it. Any other condition (``status``, ``side``, a second name) is checked
on the rows the driver yields and may reject every one of them: ``strategy=S&instrument=NOPE`` would
walk all of S's history. So such a page first *probes* the driver for the id of its ``budget``-th
candidate after the cursor (an index-only walk) and reads no further than that id. If the page is not
full by then it ends there, with that id as ``next``: a page may hold fewer than ``limit`` items, even
none, while ``next`` is not null. Clients page until ``next`` is null, as they always did. Whatever the
filters, one request examines at most about twice ``budget`` index entries: the probe, then the
candidates it bounds.

A user's orders are the ones that opened or closed one of the user's positions, that is the orders
whose ``applied`` names the user: the table ``order_users`` keeps one ``(user, order_id)`` row for each,
and its primary key is the walk that drives ``user=`` (schema version 5 on SQLite, 7 on PostgreSQL;
before, the union of three walks over positions and trades, each an index every open and close had to
maintain). PostgreSQL writes its rows with each order; on SQLite it is part of the side index below,
filled from ``applied`` in SQL (:data:`APPLIED_EFFECTS`), and a page's tail keeps the orders whose
``applied`` names the user. A page of a user with a long history is bounded like any other.

On SQLite a user's orders, the orders by strategy and by instrument, and the trades by user, strategy
and instrument, have a *side index* (``order_users``, ``order_strategies``, ``order_instruments``,
``trade_users``, ``trade_strategies``, ``trade_instruments``) that the store fills in bulk, up to the id
:func:`indexed_up_to` reads; the rows after it, a few hundred at most as a rule, are the *tail*. Such a
page is the merge of two disjoint arms, the side index's walk up to that id and the tail by primary key,
read in one snapshot, so it holds exactly what an index of the order log would give. It always probes: the walk for its
``budget``-th candidate, and the tail for an order more than ``budget`` ids past where it starts
(:func:`_tail_probe`), so a tail of any length is bounded as well.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from ordergate.store.base import BookQuery, OrderQuery

READ_BUDGET = 20_000
"""Candidates one page may examine (beyond the ``limit + 1`` rows of a page with no other condition)."""

MAX_ID = 2**63 - 1
"""Ids are 64-bit in every store: a bound past it would not bind."""

Statement = tuple[str, list[object]]

ORDER_USERS_KEY = "sqlite_autoindex_order_users_1"
"""SQLite's name for the primary key of the ``WITHOUT ROWID`` table ``order_users``: the B-tree of the table
itself, ``(user, order_id)``, which drives a user's orders."""


@dataclass(frozen=True, slots=True)
class Dialect:
    """How an engine spells a listing: its parameter mark, its user column, whether it names indexes."""

    mark: str
    user_column: str
    hints: bool
    """SQLite: name the driving index (``INDEXED BY``, which fails loudly if it cannot be used). PostgreSQL
    chooses by statistics; the id range every bounded page carries makes the driver its cheapest plan."""
    side_index: bool = False
    """Whether the filters of the order log and the trades (but a user's orders) are served by a side
    index (SQLite, :data:`SIDE_INDEX`) rather than by indexes of ``orders`` and ``trades`` themselves."""


APPLIED_EFFECTS = (
    "json_each(CASE WHEN typeof(orders.applied) = 'text' AND json_valid(orders.applied)"
    " THEN orders.applied ELSE '[]' END) AS effect"
)
"""SQLite: the effects of an order's ``applied`` column, one row each (``effect.value ->> 0`` is its user);
a column that is not the JSON array ordergate writes has none (``verify`` reports it). How the side index
fills ``order_users`` and how a page finds a user's orders in its tail."""


def indexed_up_to(key: str) -> str:
    """SQLite (schema version 5): SQL for the last ``key`` (``order_id``, ``trade_id``) the side index of its
    table covers. Every row up to it is in the side index, none after it (0 when the mark in ``meta`` is
    missing: the whole table is then read as the tail). :data:`ordergate.store.sqlite.schema.CATCH_UP`
    moves it forward."""
    return f"coalesce((SELECT CAST(value AS INTEGER) FROM meta WHERE key = 'indexed_{key}'), 0)"


SQLITE = Dialect("?", "user", hints=True, side_index=True)
POSTGRES = Dialect("%s", "user_name", hints=False)

SIDE_INDEX = {
    ("orders", "user"): "order_users",
    ("orders", "strategy"): "order_strategies",
    ("orders", "instrument"): "order_instruments",
    ("trades", "user"): "trade_users",
    ("trades", "strategy"): "trade_strategies",
    ("trades", "instrument"): "trade_instruments",
}
"""SQLite: the side index of each ``(table, filter)`` it serves, a ``WITHOUT ROWID`` table ``(name, id)``."""


@dataclass(frozen=True, slots=True)
class Walk:
    """The rows of ``table`` whose ``column`` is ``value``, in ``key`` order, through ``index``."""

    table: str
    key: str
    column: str
    value: object
    index: str

    def probe(self, dialect: Dialect, after: int, quota: int) -> Statement:
        """The id of the walk's ``quota``-th candidate after ``after`` (no row: it ends sooner)."""
        m = dialect.mark
        return (
            f"SELECT {self.key} FROM {self.table}{_hint(dialect, self.index)}"
            f" WHERE {self.column} = {m} AND {self.key} > {m} ORDER BY {self.key} LIMIT 1 OFFSET {m}",
            [self.value, after, quota - 1],
        )

    def ids(self, dialect: Dialect, after: int, bound: int | None) -> Statement:
        """The walk's ids after ``after``, up to ``bound``."""
        m = dialect.mark
        sql = (
            f"SELECT {self.key} FROM {self.table}{_hint(dialect, self.index)}"
            f" WHERE {self.column} = {m} AND {self.key} > {m}"
        )
        params: list[object] = [self.value, after]
        if bound is not None:
            sql += f" AND {self.key} <= {m}"
            params.append(bound)
        return sql, params


@dataclass(frozen=True, slots=True)
class PagePlan:
    """The statements of one page: the probe, then the page itself bounded by what it found."""

    probes: tuple[Statement, ...]
    _select: str
    _table_hint: str
    _key: str
    _conditions: tuple[Statement, ...]
    _walks: tuple[Walk, ...]
    _dialect: Dialect
    _after: int
    _limit: int
    _indexed: str | None = None
    """SQL for the last id of the side index the page walks; the page then also reads the rows after it
    (the tail, by primary key): see the module docstring."""
    _tail_conditions: tuple[Statement, ...] = ()
    """What the tail's rows must also meet, where the side index held a filter the table has no column for
    (a user's orders: the user among the effects of ``applied``)."""

    def probe(self) -> Statement | None:
        """One statement whose one row holds each probe's id (``NULL``: that walk ends within budget);
        ``None`` when the page needs no probe (nothing beyond its driver can reject a row)."""
        if not self.probes:
            return None
        params: list[object] = []
        for _, values in self.probes:
            params += values
        return "SELECT " + ", ".join(f"({sql})" for sql, _ in self.probes), params

    def _after_and_filters(self, after: str, bound: int | None, params: list[object]) -> list[str]:
        """The conditions of one arm of a page: ``after`` (the cursor), the bound, the filters; their
        parameters are appended to ``params``."""
        m = self._dialect.mark
        where = [after]
        params.append(self._after)
        if bound is not None:
            where.append(f"{self._key} <= {m}")
            params.append(bound)
        for sql, values in self._conditions:
            where.append(sql)
            params += values
        return where

    def page(self, bound: int | None) -> Statement:
        """``SELECT`` at most ``limit + 1`` rows after the cursor, no further than ``bound``."""
        m = self._dialect.mark
        params: list[object] = []
        where = self._after_and_filters(f"{self._key} > {m}", bound, params)
        if self._walks:
            parts = [walk.ids(self._dialect, self._after, bound) for walk in self._walks]
            where.append(f"{self._key} IN ({' UNION ALL '.join(sql for sql, _ in parts)})")
            for _, values in parts:
                params += values
        select = f"{self._select}{self._table_hint} WHERE {' AND '.join(where)}"
        indexed = self._indexed
        if indexed is not None:
            # the side index up to its last id, then the rows after it, each in id order: the two arms
            # are disjoint and consecutive, so their merge is the page in id order
            select += f" AND {self._key} <= {indexed}"
            tail = self._after_and_filters(f"{self._key} > max({m}, {indexed})", bound, params)
            for sql, values in self._tail_conditions:
                tail.append(sql)
                params += values
            select += f" UNION ALL {self._select}{self._table_hint} WHERE {' AND '.join(tail)}"
        return f"{select} ORDER BY {self._key} LIMIT {m}", [*params, self._limit + 1]


def order_page(query: OrderQuery, columns: str, dialect: Dialect, budget: int = READ_BUDGET) -> PagePlan:
    """The page of the order log that ``query`` asks for.

    Drivers, the most selective first: ``user`` (``order_users``), ``instrument``
    (``orders_by_instrument``), ``strategy`` (``orders_by_strategy``), else the primary key. The
    primary key needs no walk to find its bound: ids are integers, so ``(after, after + budget]`` holds
    at most ``budget`` orders (exactly that many where ids have no gaps, as on SQLite); the probe only
    asks whether any order lies beyond it.
    """
    m, user = dialect.mark, dialect.user_column
    filters = {"strategy": query.strategy, "instrument": query.instrument, "status": query.status, "side": query.side}
    conditions = {column: str(value) for column, value in filters.items() if value is not None}
    walks: tuple[Walk, ...] = ()
    probes: tuple[Statement, ...] = ()
    indexed: str | None = None
    table_hint = _not_indexed(dialect)
    tail_conditions: tuple[Statement, ...] = ()
    if query.user is not None and dialect.side_index:
        walks, probes, indexed = _side_walk("orders", "order_id", user, query.user, dialect, query, budget)
        applied_to = f"effect.type = 'array' AND effect.value ->> 0 = {m}"
        tail_conditions = ((f"EXISTS (SELECT 1 FROM {APPLIED_EFFECTS} WHERE {applied_to})", [query.user]),)
    elif query.user is not None:
        walks = (Walk("order_users", "order_id", user, query.user, ORDER_USERS_KEY),)
        probes = tuple(walk.probe(dialect, query.after, budget) for walk in walks)
    else:
        driver = next((column for column in ("instrument", "strategy") if column in conditions), None)
        if driver is not None and dialect.side_index:
            walks, probes, indexed = _side_walk(
                "orders", "order_id", driver, conditions[driver], dialect, query, budget
            )
        elif driver is not None:
            walk = Walk("orders", "order_id", driver, conditions[driver], f"orders_by_{driver}")
            table_hint = _hint(dialect, walk.index)
            if len(conditions) > 1:  # something beyond the driver may reject its rows: bound the walk
                probes = (walk.probe(dialect, query.after, budget),)
        elif conditions:
            beyond = min(query.after + budget, MAX_ID)
            probes = (
                (
                    f"SELECT CAST({m} AS BIGINT) FROM (SELECT order_id FROM orders{table_hint}"
                    f" WHERE order_id > {m} ORDER BY order_id LIMIT 1) AS beyond",
                    [beyond, beyond],
                ),
            )
    return PagePlan(
        probes=probes,
        _select=f"SELECT {columns} FROM orders",
        _table_hint=table_hint,
        _key="order_id",
        _conditions=tuple((f"{column} = {m}", [value]) for column, value in conditions.items()),
        _walks=walks,
        _dialect=dialect,
        _after=query.after,
        _limit=query.limit,
        _indexed=indexed,
        _tail_conditions=tail_conditions,
    )


def _side_walk(
    table: str, key: str, column: str, value: object, dialect: Dialect, query: BookQuery | OrderQuery, budget: int
) -> tuple[tuple[Walk, ...], tuple[Statement, ...], str]:
    """The walk of the side index of ``table`` by ``column``, the page's two probes (the walk's and the
    tail's), and the SQL of the side index's last id."""
    side = SIDE_INDEX[table, "user" if column == dialect.user_column else column]
    walk = Walk(side, key, column, value, f"sqlite_autoindex_{side}_1")
    indexed = indexed_up_to(key)
    return (
        (walk,),
        (walk.probe(dialect, query.after, budget), _tail_probe(dialect, table, key, indexed, query.after, budget)),
        indexed,
    )


def _tail_probe(dialect: Dialect, table: str, key: str, indexed: str, after: int, budget: int) -> Statement:
    """How far a page may read the rows after the side index: ``budget`` ids past where it starts, when a
    row lies beyond that (``NULL``: the tail ends sooner). Ids are integers, so the range holds at most
    ``budget`` rows; the tail is normally a few hundred (the store indexes it that often)."""
    m = dialect.mark
    start = f"min(max({m}, {indexed}), {MAX_ID - budget}) + {budget}"
    return (
        f"SELECT CAST({start} AS BIGINT) FROM (SELECT {key} FROM {table}{_not_indexed(dialect)}"
        f" WHERE {key} > {start} ORDER BY {key} LIMIT 1) AS beyond",
        [after, after],
    )


def book_page(
    table: str, key: str, query: BookQuery, columns: str, dialect: Dialect, budget: int = READ_BUDGET
) -> PagePlan:
    """The page of open positions (``table`` ``positions``, ``key`` ``position_id``) or of trades
    (``trades``, ``trade_id``) that ``query`` asks for.

    Drivers, the most selective first: ``user`` (``<table>_by_user``), ``instrument``, ``strategy``
    (``<table>_by_instrument``, ``<table>_by_strategy``); with no filter, the primary key. On SQLite the
    trades' drivers are their side index (``trade_users``, ``trade_instruments``, ``trade_strategies``)
    and its tail.
    """
    m = dialect.mark
    filters: dict[str, str | None] = {
        dialect.user_column: query.user,
        "instrument": query.instrument,
        "strategy": query.strategy,
    }
    conditions = {column: value for column, value in filters.items() if value is not None}
    probes: tuple[Statement, ...] = ()
    walks: tuple[Walk, ...] = ()
    indexed: str | None = None
    table_hint = ""
    if conditions and dialect.side_index and table == "trades":
        driver = next(iter(conditions))
        walks, probes, indexed = _side_walk(table, key, driver, conditions[driver], dialect, query, budget)
        table_hint = _not_indexed(dialect)
    elif conditions:
        driver = next(iter(conditions))
        index = f"{table}_by_{'user' if driver == dialect.user_column else driver}"
        table_hint = _hint(dialect, index)
        if len(conditions) > 1:
            probes = (Walk(table, key, driver, conditions[driver], index).probe(dialect, query.after, budget),)
    return PagePlan(
        probes=probes,
        _select=f"SELECT {columns} FROM {table}",
        _table_hint=table_hint,
        _key=key,
        _conditions=tuple((f"{column} = {m}", [value]) for column, value in conditions.items()),
        _walks=walks,
        _dialect=dialect,
        _after=query.after,
        _limit=query.limit,
        _indexed=indexed,
    )


def bound_of(found: Sequence[Any]) -> int | None:
    """The page's bound from the row :meth:`PagePlan.probe` returned: the smallest id found, or ``None``
    when every walk ends within its budget."""
    ids = [int(value) for value in found if value is not None]
    return min(ids) if ids else None


def _hint(dialect: Dialect, index: str) -> str:
    return f" INDEXED BY {index}" if dialect.hints else ""


def _not_indexed(dialect: Dialect) -> str:
    """SQLite: walk the table by its primary key (``rowid``), never by a secondary index."""
    return " NOT INDEXED" if dialect.hints else ""
