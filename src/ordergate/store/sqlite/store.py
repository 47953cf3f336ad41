"""The embedded store: one SQLite file in WAL mode, owned by exactly one gateway process.

Writes run on one dedicated thread (one transaction and one fsync per group of orders). Reads run on
lanes of their own (:mod:`ordergate.store.sqlite.lanes`), each thread with its own connection, which
WAL lets read beside the writer and beside each other: order entry's idempotency lookups, the
controls in force and the readiness probe on one thread, the API's reads on a small pool behind
admission control (:mod:`ordergate.store.admission`), so no listing, however slow, can hold up an
order or ``/readyz``. Every listing page is bounded (:mod:`ordergate.store.queries`): it walks an
index of its filters in id order and examines at most a fixed budget of rows. ``synchronous=FULL``
makes every commit survive power loss; ``fast`` durability uses ``NORMAL``, which in WAL mode still
survives a killed process. An exclusive ``flock`` on a lock file beside the database refuses a
second process: scaling out is PostgreSQL's job (SPEC section 6).
"""

from __future__ import annotations

import asyncio
import fcntl
import functools
import itertools
import os
import sqlite3
import sys
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any, TypeVar

import orjson

from ordergate.domain.book import Opened, Position
from ordergate.domain.chain import Chains, single_chain
from ordergate.domain.model import Scope
from ordergate.domain.record import OrderRecord, Trade
from ordergate.errors import StartupError, StoreLocked, StoreUnavailable
from ordergate.store.admission import READ_CONNECTIONS, READ_QUEUE, Admission
from ordergate.store.base import (
    ControlChange,
    Durability,
    OrderQuery,
    Page,
    PositionQuery,
    Snapshot,
    StreamPage,
    StreamPosition,
    TradeQuery,
)
from ordergate.store.changes import group_changes
from ordergate.store.codec import (
    decode_logged,
    decode_record,
    encode_applied,
    encode_rejected_for,
    logged_page,
    stream_rows,
)
from ordergate.store.paging import page_of
from ordergate.store.queries import READ_BUDGET, SQLITE, PagePlan, book_page, bound_of, order_page
from ordergate.store.sqlite.connection import (
    CHAIN_VERSION,
    ORDER_COLUMNS,
    chain_head,
    connect,
    link_unchained_orders,
    migrate,
)
from ordergate.store.sqlite.lanes import LaneClosed, ReadLane
from ordergate.store.sqlite.log import SQLiteLogReader

R = TypeVar("R")
T = TypeVar("T")

_ORDER_FIELDS = tuple(column.strip() for column in ORDER_COLUMNS.split(","))
_POSITION_COLUMNS = "position_id, user, strategy, instrument, opened_order_id, opened_at"
_TRADE_COLUMNS = (
    "trade_id, user, strategy, instrument, opened_order_id, opened_at, closed_order_id, closed_at, closing_strategy"
)
_TRADE_FIELDS = tuple(column.strip() for column in _TRADE_COLUMNS.split(","))[1:]


class SQLiteStore:
    """The :class:`~ordergate.store.base.Store` of one process over one SQLite file."""

    def __init__(
        self,
        path: Path,
        durability: Durability = Durability.FULL,
        *,
        read_connections: int = READ_CONNECTIONS,
        read_queue: int = READ_QUEUE,
        read_budget: int = READ_BUDGET,
    ) -> None:
        self.path = path
        self.durability = durability
        self._scope = Scope.ACCOUNT
        self._lock_fd: int | None = None
        self._writer: sqlite3.Connection | None = None
        self._chains = Chains(single_chain)
        self._read_budget = read_budget
        self._write_thread = ThreadPoolExecutor(1, thread_name_prefix="ordergate-sqlite-write")
        self._lookups = ReadLane("ordergate-sqlite-lookup", 1, self._read_connection)
        """Order entry's lane: idempotency lookups, the controls in force, the readiness probe."""
        self._api_reads = ReadLane(
            "ordergate-sqlite-api-read",
            read_connections,
            self._read_connection,
            Admission(read_connections, read_queue),
        )
        """The API's lane: orders by id, listings, control changes."""

    @property
    def location(self) -> str:
        """Where the store lives, for messages."""
        return str(self.path)

    # -- life cycle ---------------------------------------------------------------------------

    def lock(self) -> None:
        """Take the exclusive process lock now (idempotent); raises :class:`StoreLocked`."""
        if self._lock_fd is not None:
            return
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            fd = os.open(self.path.with_name(self.path.name + ".lock"), os.O_RDWR | os.O_CREAT, 0o644)
        except OSError as exc:
            raise StartupError(f"cannot open the store at {self.path}: {exc.strerror}") from None
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            os.close(fd)
            raise StoreLocked(
                f"the store {self.path} is already in use by another ordergate process; stop it, or run "
                "several processes on one PostgreSQL database with --db postgresql://..."
            ) from None
        os.ftruncate(fd, 0)
        os.write(fd, f"{os.getpid()}\n".encode())
        self._lock_fd = fd

    async def open(self, scope: Scope) -> Snapshot:
        self.lock()
        self._scope = scope
        try:
            return await self._in(self._write_thread, self._open_sync, scope)
        except StoreUnavailable as exc:
            await self.close()
            raise StartupError(f"cannot open the store at {self.path}: {exc.__cause__ or exc}") from None
        except BaseException:
            await self.close()
            raise

    def _open_sync(self, scope: Scope) -> Snapshot:
        writer = connect(self.path, self.durability)
        if migrate(writer) < CHAIN_VERSION:
            link_unchained_orders(writer)
        head = chain_head(writer)
        self._chains = Chains(single_chain, {"": head} if head is not None else None)
        held = writer.execute("SELECT value FROM meta WHERE key = 'scope'").fetchone()
        count: int = writer.execute("SELECT count(*) FROM positions").fetchone()[0]
        if held is not None and held[0] != scope.value and count:
            writer.close()
            raise StartupError(
                f"the store {self.path} holds {count} open positions keyed by scope '{held[0]}'; "
                f"start with --scope {held[0]} (or use a new home for scope '{scope.value}')"
            )
        writer.execute(
            "INSERT INTO meta (key, value) VALUES ('scope', ?) ON CONFLICT (key) DO UPDATE SET value = excluded.value",
            (scope.value,),
        )
        # One row per order whose positions are still open, its users as a JSON array: SQLite groups a
        # million positions without the GIL, and the book is built from a few rows (Book.restore).
        # A book of a million positions repeats a few thousand names and timestamps: share one string
        # per value (sys.intern) instead of one per row, or the book needs several times the memory.
        share = sys.intern
        opened = [
            Opened(share(strategy), share(instrument), order_id, share(at), list(map(share, orjson.loads(users))))
            for strategy, instrument, order_id, at, users in writer.execute(
                "SELECT strategy, instrument, opened_order_id, opened_at, json_group_array(user) FROM positions"
                " GROUP BY opened_order_id, strategy, instrument, opened_at"
            )
        ]
        profiles = frozenset(row[0] for row in writer.execute("SELECT fingerprint FROM profiles"))
        last: int = writer.execute("SELECT coalesce(max(order_id), 0) FROM orders").fetchone()[0]
        self._writer = writer
        # one writer commits in order_id order: the stream is complete up to the last order now
        return Snapshot(opened, last, StreamPosition(0, last), sum(len(o.users) for o in opened), profiles)

    def _read_connection(self) -> sqlite3.Connection:
        """A connection for one read thread (opened in that thread, on its first read)."""
        conn = connect(self.path, self.durability)
        conn.execute("PRAGMA query_only = ON")
        return conn

    async def close(self) -> None:
        for lane in (self._api_reads, self._lookups):
            await asyncio.to_thread(lane.close)
        if self._writer is not None:
            await asyncio.get_running_loop().run_in_executor(self._write_thread, self._writer.close)
            self._writer = None
        self._write_thread.shutdown(wait=True)
        if self._lock_fd is not None:
            os.close(self._lock_fd)
            self._lock_fd = None

    # -- writes -------------------------------------------------------------------------------

    async def record_profiles(self, fingerprint: str, document: str) -> None:
        await self._in(self._write_thread, self._write_profiles, fingerprint, document)

    def _write_profiles(self, fingerprint: str, document: str) -> None:
        self._writing().execute(
            "INSERT INTO profiles (fingerprint, document) VALUES (?, ?) ON CONFLICT DO NOTHING",
            (fingerprint, document),
        )

    async def commit(self, records: Sequence[OrderRecord]) -> None:
        # The statements are built here, on the event loop, which has time while it waits for the
        # previous commit; the writer thread then only runs SQLite, which releases the GIL.
        # Commits come one at a time (the sequencer's committer), so the chain head is this group's base.
        # The group's links are computed on a copy of the heads, taken as the new heads once committed.
        chains = Chains(single_chain, self._chains.heads)
        hashes = [chains.link(record) for record in records]
        statements = self._statements(records, hashes)
        await self._in(self._write_thread, self._execute, statements)
        self._chains = chains

    def _statements(self, records: Sequence[OrderRecord], hashes: Sequence[str]) -> list[Statement]:
        """One multi-row statement per table (and parameter-limit chunk) for the whole group.

        Each SQLite step releases the GIL and must win it back from a busy event loop, so a
        statement per row would make a commit wait on the loop hundreds of times.
        """
        changes = group_changes(self._scope, records)
        scoped = self._scope is Scope.STRATEGY
        statements = _inserts(
            "orders",
            _ORDER_FIELDS,
            [
                (
                    r.order_id,
                    r.received_at,
                    r.order.strategy,
                    r.order.instrument,
                    r.order.side,  # str enums bind as their text
                    r.decision.status,
                    r.decision.reason,
                    r.scope,
                    r.profile_fingerprint,
                    r.client_order_id,
                    encode_applied(r.decision),
                    encode_rejected_for(r.decision),
                    r.controls_fingerprint,
                    link,
                )
                for r, link in zip(records, hashes, strict=True)
            ],
        )
        statements += _position_deletes(changes.deletes)
        statements += _inserts(
            "positions",
            ("user", "scope_strategy", "instrument", "strategy", "opened_order_id", "opened_at"),
            [
                (p.user, p.strategy if scoped else "", p.instrument, p.strategy, p.opened_order_id, p.opened_at)
                for p in changes.inserts
            ],
        )
        statements += _inserts("trades", _TRADE_FIELDS, changes.trades)
        return statements

    def _execute(self, statements: Sequence[Statement]) -> None:
        """Run a group's statements as one transaction; a delete that misses a position aborts it."""
        conn = self._writing()
        conn.execute("BEGIN IMMEDIATE")
        try:
            for sql, params, must_change in statements:
                changed = conn.execute(sql, params).rowcount
                if must_change is not None and changed != must_change:
                    raise sqlite3.IntegrityError(
                        f"closed {changed} open positions where the group closes {must_change}"
                    )
            conn.execute("COMMIT")
        except BaseException:
            if conn.in_transaction:
                conn.execute("ROLLBACK")
            raise

    # -- trading controls ---------------------------------------------------------------------

    async def record_control_change(self, change: ControlChange, document: str) -> str:
        """Store a control change and the controls it puts in force (named by ``change.fingerprint``).

        One process owns the store, so the controls it built are the ones in force: ``document``."""
        await self._in(self._write_thread, self._write_control_change, change, document)
        return document

    def _write_control_change(self, change: ControlChange, document: str) -> None:
        conn = self._writing()
        conn.execute("BEGIN IMMEDIATE")
        try:
            conn.execute(
                "INSERT INTO controls_sets (fingerprint, document) VALUES (?, ?) ON CONFLICT DO NOTHING",
                (change.fingerprint, document),
            )
            conn.execute(
                "INSERT INTO control_changes (at, level, target, state, changed_by, fingerprint)"
                " VALUES (?, ?, ?, ?, ?, ?)",
                (change.at, change.setting.level, change.setting.target, change.setting.state, change.by,
                 change.fingerprint),
            )  # fmt: skip
            conn.execute("COMMIT")
        except BaseException:
            if conn.in_transaction:
                conn.execute("ROLLBACK")
            raise

    async def current_controls(self) -> str | None:
        """The document of the controls in force (those of the last change), or ``None``: never set."""
        rows = await self._lookup(
            "SELECT s.document FROM control_changes c JOIN controls_sets s USING (fingerprint)"
            " ORDER BY c.change_id DESC LIMIT 1",
            (),
        )
        return str(rows[0][0]) if rows else None

    async def control_changes(self, limit: int) -> list[ControlChange]:
        """The last ``limit`` control changes, oldest first."""
        rows = await self._api_read(
            "SELECT at, level, target, state, changed_by, fingerprint FROM control_changes"
            " ORDER BY change_id DESC LIMIT ?",
            (limit,),
        )
        return [ControlChange.from_row(*row) for row in reversed(rows)]

    # -- reads --------------------------------------------------------------------------------

    async def get_order(self, order_id: int) -> OrderRecord | None:
        rows = await self._api_read(f"SELECT {ORDER_COLUMNS} FROM orders WHERE order_id = ?", (order_id,))
        return decode_record(*rows[0]) if rows else None

    async def find_client_order(self, client_order_id: str) -> OrderRecord | None:
        rows = await self._lookup(f"SELECT {ORDER_COLUMNS} FROM orders WHERE client_order_id = ?", (client_order_id,))
        return decode_record(*rows[0]) if rows else None

    async def find_client_orders(self, client_order_ids: Sequence[str]) -> dict[str, OrderRecord]:
        found: dict[str, OrderRecord] = {}
        for start in range(0, len(client_order_ids), 500):  # stay under SQLite's bound-parameter limit
            chunk = client_order_ids[start : start + 500]
            rows = await self._lookup(
                f"SELECT {ORDER_COLUMNS} FROM orders WHERE client_order_id IN ({', '.join('?' * len(chunk))})",
                chunk,
            )
            for row in rows:
                record = decode_record(*row)
                assert record.client_order_id is not None
                found[record.client_order_id] = record
        return found

    async def list_orders(self, query: OrderQuery) -> Page[OrderRecord]:
        plan = order_page(query, ORDER_COLUMNS, SQLITE, self._read_budget)
        items, bound = await self._page(plan, decode_logged)
        return logged_page(items, query.limit, bound)

    async def list_positions(self, query: PositionQuery) -> Page[Position]:
        plan = book_page("positions", "position_id", query, _POSITION_COLUMNS, SQLITE, self._read_budget)
        rows, bound = await self._page(plan, tuple)
        page = page_of(rows, query.limit, lambda row: int(row[0]), bound)
        return Page([Position(*row[1:]) for row in page.items], page.next)

    async def list_trades(self, query: TradeQuery) -> Page[Trade]:
        plan = book_page("trades", "trade_id", query, _TRADE_COLUMNS, SQLITE, self._read_budget)
        items, bound = await self._page(plan, lambda row: Trade(*row))
        return page_of(items, query.limit, lambda t: t.trade_id, bound)

    async def ping(self) -> None:
        await self._lookup("SELECT 1", ())

    async def order_totals(self, until: StreamPosition) -> list[tuple[str, str, str | None, int]]:
        """``(status, side, reason, count)`` rows over the orders up to ``until`` (here: an order id).

        A scan of the whole log: it runs on a connection and thread of its own, never queued with
        the reads the API or order entry wait for.
        """

        def count() -> list[tuple[str, str, str | None, int]]:
            with SQLiteLogReader(self.path, audit=False) as log:
                return log.order_totals(until.order_id)

        try:
            return await asyncio.to_thread(count)
        except sqlite3.Error as exc:
            raise StoreUnavailable(f"SQLite store {self.path}: {exc}") from exc

    # -- the event stream: one writer commits in order_id order, so positions are order ids ---------

    async def stream_page(self, after: StreamPosition, limit: int) -> StreamPage:
        rows = await self._api_read(
            f"SELECT {ORDER_COLUMNS} FROM orders WHERE order_id > ? ORDER BY order_id LIMIT ?", (after.order_id, limit)
        )
        stream = stream_rows((0, row) for row in rows)
        return StreamPage(stream, StreamPosition(0, int(rows[-1][0])) if rows else after, len(rows) == limit)

    async def stream_head(self) -> StreamPosition:
        rows = await self._api_read("SELECT coalesce(max(order_id), 0) FROM orders", ())
        return StreamPosition(0, int(rows[0][0]))

    async def stream_position(self, order_id: int) -> StreamPosition | None:
        """Every order id is a position here, committed or not (ids follow commit order)."""
        return StreamPosition(0, order_id)

    async def _page(self, plan: PagePlan, decode: Callable[[tuple[Any, ...]], T]) -> tuple[list[T], int | None]:
        """The items of a listing page and the bound its probe found, read in one snapshot and decoded
        on the lane's thread (a page of a thousand orders is milliseconds of Python the loop is spared)."""
        probe = plan.probe()

        def run(conn: sqlite3.Connection) -> tuple[list[T], int | None]:
            bound = None
            if probe is None:
                rows = conn.execute(*plan.page(None)).fetchall()
            else:
                conn.execute("BEGIN")  # the probe and the page read one snapshot
                try:
                    bound = bound_of(conn.execute(*probe).fetchone())
                    rows = conn.execute(*plan.page(bound)).fetchall()
                finally:
                    if conn.in_transaction:  # a read transaction: nothing to keep, nothing to undo
                        conn.execute("COMMIT")
            return [decode(row) for row in rows], bound

        return await self._on(self._api_reads, run)

    async def _lookup(self, sql: str, params: Sequence[object]) -> list[tuple[Any, ...]]:
        return await self._on(self._lookups, lambda conn: conn.execute(sql, params).fetchall())

    async def _api_read(self, sql: str, params: Sequence[object]) -> list[tuple[Any, ...]]:
        return await self._on(self._api_reads, lambda conn: conn.execute(sql, params).fetchall())

    async def _on(self, lane: ReadLane, work: Callable[[sqlite3.Connection], R]) -> R:
        try:
            return await lane.run(work)
        except sqlite3.Error as exc:
            raise StoreUnavailable(f"SQLite store {self.path}: {exc}") from exc
        except LaneClosed:
            raise StoreUnavailable(f"SQLite store {self.path} is closed") from None

    # -- plumbing -----------------------------------------------------------------------------

    def _writing(self) -> sqlite3.Connection:
        if self._writer is None:
            raise sqlite3.OperationalError("the store is not open")
        return self._writer

    async def _in(self, pool: ThreadPoolExecutor, fn: Callable[..., R], *args: Any) -> R:
        try:
            return await asyncio.get_running_loop().run_in_executor(pool, fn, *args)
        except sqlite3.Error as exc:
            raise StoreUnavailable(f"SQLite store {self.path}: {exc}") from exc
        except RuntimeError as exc:  # executor shut down
            raise StoreUnavailable(f"SQLite store {self.path} is closed") from exc


_MAX_PARAMETERS = 32_000
"""Bound parameters per statement; SQLite (3.32 and later) allows 32,766."""


@functools.lru_cache(maxsize=256)
def _rows_sql(prefix: str, width: int, count: int) -> str:
    row = "(" + ", ".join("?" * width) + ")"
    return prefix + ", ".join([row] * count)


Statement = tuple[str, list[Any], int | None]
"""SQL, its parameters, and how many rows it must change (``None``: any number)."""


def _inserts(table: str, columns: tuple[str, ...], rows: Sequence[tuple[Any, ...]]) -> list[Statement]:
    """Statements inserting ``rows``, as few as the parameter limit allows."""
    prefix = f"INSERT INTO {table} ({', '.join(columns)}) VALUES "
    step = _MAX_PARAMETERS // len(columns)
    return [
        (_rows_sql(prefix, len(columns), len(chunk)), list(itertools.chain.from_iterable(chunk)), None)
        for chunk in (rows[start : start + step] for start in range(0, len(rows), step))
    ]


def _position_deletes(keys: Sequence[tuple[str, str, str]]) -> list[Statement]:
    """Statements closing open positions by key; each must delete exactly its keys."""
    step = _MAX_PARAMETERS // 3
    # "IN (SELECT ... FROM (VALUES ...))" searches the unique index; a bare "IN (VALUES ...)" scans the table
    prefix = "DELETE FROM positions WHERE (user, scope_strategy, instrument) IN (SELECT * FROM (VALUES "
    return [
        (_rows_sql(prefix, 3, len(chunk)) + "))", list(itertools.chain.from_iterable(chunk)), len(chunk))
        for chunk in (keys[start : start + step] for start in range(0, len(keys), step))
    ]
