"""The embedded store: one SQLite file in WAL mode, owned by exactly one gateway process.

Writes run in a writer process of their own (:mod:`ordergate.store.sqlite.writer`: one transaction and
one fsync per group of orders, with a GIL that the event loop never holds up). Reads run on
lanes of their own (:mod:`ordergate.store.sqlite.lanes`), each thread with its own connection, which
WAL lets read beside the writer and beside each other: order entry's idempotency lookups, the
controls in force and the readiness probe on one thread, the API's reads on a small pool behind
admission control (:mod:`ordergate.store.admission`), so no listing, however slow, can hold up an
order or ``/readyz``. Every listing page is bounded (:mod:`ordergate.store.queries`): it walks an
index of its filters in id order and examines at most a fixed budget of rows. ``synchronous=FULL``
makes every commit survive power loss; ``fast`` durability uses ``NORMAL``, which in WAL mode still
survives a killed process. An exclusive ``flock`` on a lock file beside the database refuses a
second process (the writer process holds it too, so a gateway killed with ``kill -9`` keeps the file
locked until its writer has finished the transaction in hand): scaling out is PostgreSQL's job (SPEC
section 6).
"""

from __future__ import annotations

import asyncio
import fcntl
import os
import sqlite3
import sys
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any, TypeVar

import orjson

from ordergate.collector import held_for
from ordergate.domain.book import Opened, Position
from ordergate.domain.chain import Chains, single_chain
from ordergate.domain.model import Scope
from ordergate.domain.record import OrderRecord, Trade
from ordergate.domain.risk import RiskChange
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
from ordergate.store.codec import (
    EncodedOrder,
    caused_by_order,
    control_change_row,
    decode_logged,
    decode_record,
    encode_and_link,
    logged_page,
    stream_rows,
    with_caused,
)
from ordergate.store.horizon import orders_since_sql, search_floor
from ordergate.store.paging import page_of
from ordergate.store.queries import READ_BUDGET, SQLITE, PagePlan, book_page, bound_of, order_page
from ordergate.store.sqlite.connection import (
    CHAIN_VERSION,
    ORDER_COLUMNS,
    catch_up,
    chain_head,
    connect,
    link_unchained_orders,
    migrate,
)
from ordergate.store.sqlite.lanes import LaneClosed, ReadLane
from ordergate.store.sqlite.log import SQLiteLogReader
from ordergate.store.sqlite.schema import CATCH_UP_ORDERS, CATCH_UP_TRADES
from ordergate.store.sqlite.statements import Statement, group_statements
from ordergate.store.sqlite.writer import (
    WRITER_COMMAND,
    CommitPath,
    WriterLink,
    WriterLost,
    WriterProcess,
    WriterRefused,
)

R = TypeVar("R")
T = TypeVar("T")

_POSITION_COLUMNS = "position_id, user, strategy, instrument, opened_order_id, opened_at"
_TRADE_COLUMNS = (
    "trade_id, user, strategy, instrument, opened_order_id, opened_at, closed_order_id, closed_at, closing_strategy"
)
_CHANGE_COLUMNS = "at, level, target, state, changed_by, fingerprint, reason, order_id"
_RISK_CHANGE_COLUMNS = "at, kind, level, target, change, changed_by, fingerprint"
"""A risk change's columns, in :class:`~ordergate.domain.risk.RiskChange`'s order."""


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
        writer_command: Sequence[str] = WRITER_COMMAND,
    ) -> None:
        self.path = path
        self.durability = durability
        self._scope = Scope.ACCOUNT
        self._lock_fd: int | None = None
        self._chains = Chains(single_chain)
        self._read_budget = read_budget
        self._writer_command = writer_command
        self._writers: list[WriterProcess] = []
        self._commits = CommitPath(self._spawn_writer, _fence, _committed_through, str(path))
        self._unindexed = self._unindexed_rows = 0
        """Orders, and their trades and users, stored since the side index last caught up (as far as this
        process knows: a failed group may leave them a little off, which only moves the next catch-up)."""
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
        if not _take_lock(fd):
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
            snapshot = await self._in_thread(self._open_sync, scope)
            await self._commits.start()
            return snapshot
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
        catch_up(writer)
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
        writer.close()  # from here on the writer process writes
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
        await self._commits.close()
        if self._lock_fd is not None:
            os.close(self._lock_fd)
            self._lock_fd = None

    # -- the writer process ---------------------------------------------------------------------

    async def _spawn_writer(self) -> WriterLink:
        for dead in self._writers:  # a writer is replaced only once it ended: its pipes are closed now
            await dead.close(timeout=1.0)
        writer = await WriterProcess.spawn(
            self.path,
            fsync_every_commit=self.durability is Durability.FULL,
            keep_fds=[self._lock_fd] if self._lock_fd is not None else [],
            command=self._writer_command,
        )
        self._writers = [writer]
        return writer

    @property
    def writer_pid(self) -> int | None:
        """The process id of the writer now running (``None`` before the first)."""
        return self._writers[0].pid if self._writers else None

    async def run_on_writer(self, sql: str, params: Sequence[object] = ()) -> list[tuple[Any, ...]]:
        """One statement on the writer's own connection, outside any transaction (pragmas, diagnostics)."""
        try:
            rows: list[tuple[Any, ...]] = await self._commits.request("sql", (sql, list(params)))
        except (WriterLost, WriterRefused) as exc:
            raise StoreUnavailable(f"SQLite store {self.path}: {exc}") from None
        return rows

    async def _write(self, statements: list[Statement]) -> None:
        """An idempotent write: after a lost writer it is sent again, to a new one."""
        try:
            await self._commits.request("tx", statements)
        except WriterRefused as exc:
            raise StoreUnavailable(f"SQLite store {self.path}: {exc}") from None
        except WriterLost:

            async def again(link: WriterLink) -> None:
                await link.request("tx", statements)

            await self._commits.settle(again, "a write")

    # -- writes -------------------------------------------------------------------------------

    async def record_profiles(self, fingerprint: str, document: str) -> None:
        await self._write(
            [
                (
                    "INSERT INTO profiles (fingerprint, document) VALUES (?, ?) ON CONFLICT DO NOTHING",
                    [fingerprint, document],
                    None,
                )
            ]
        )

    async def commit(self, records: Sequence[OrderRecord]) -> None:
        # The statements are built here, on the event loop, which has time while it waits for the
        # previous commit; the writer thread then only runs SQLite, which releases the GIL.
        # Commits come one at a time (the sequencer's committer), so the chain head is this group's base.
        # The group's links are computed on a copy of the heads, taken as the new heads once committed.
        chains = Chains(single_chain, self._chains.heads)
        with held_for(sum(len(record.decision.applied) for record in records)):
            statements = self._statements(records, encode_and_link(records, chains))
        await self._commits.commit(statements, records[0].order_id, records[-1].order_id)
        self._chains = chains
        self._unindexed += len(records)
        self._unindexed_rows += sum(len(r.closed) + len(r.decision.applied) for r in records)
        due = self._unindexed >= INDEX_EVERY or self._unindexed_rows >= INDEX_EVERY_ROWS
        # the side index, by the writer once no group waits: not in the way of an answer
        if due and all(self._commits.post("later", [(sql, [], None) for sql in half]) for half in CATCH_UP_HALVES):
            self._unindexed = self._unindexed_rows = 0

    def _statements(self, records: Sequence[OrderRecord], encoded: Sequence[EncodedOrder]) -> list[Statement]:
        """The group's statements (:func:`~ordergate.store.sqlite.statements.group_statements`) and its
        breaker trips, in the group's transaction. The side index (:data:`~ordergate.store.sqlite.schema.CATCH_UP`)
        catches up in a transaction of its own, which :meth:`commit` leaves to the writer every
        :data:`INDEX_EVERY` orders or :data:`INDEX_EVERY_ROWS` trades and users."""
        statements = group_statements(self._scope, records, encoded)
        for record in records:
            if record.control_change is not None:  # a breaker trip: in the order's transaction
                statements += _control_change_statements(*record.control_change)
        return statements

    # -- trading controls ---------------------------------------------------------------------

    async def record_control_change(self, change: ControlChange, document: str) -> str:
        """Store a control change and the controls it puts in force (named by ``change.fingerprint``).

        One process owns the store, so the controls it built are the ones in force: ``document``. A
        change whose writer died before it answered is looked for in the store by a new writer.
        """
        statements = _control_change_statements(change, document)
        try:
            await self._commits.request("tx", statements)
        except WriterRefused as exc:
            raise StoreUnavailable(f"SQLite store {self.path}: {exc}") from None
        except WriterLost:

            async def last_change(link: WriterLink) -> ControlChange | None:
                rows = await link.request("sql", (f"SELECT {_CHANGE_COLUMNS} FROM control_changes"
                                                  " ORDER BY change_id DESC LIMIT 1", []))  # fmt: skip
                return ControlChange.from_row(*rows[0]) if rows else None

            if await self._commits.settle(last_change, "a control change") != change:
                raise StoreUnavailable(
                    f"SQLite store {self.path}: the writer process ended before the control change was stored"
                ) from None
        return document

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
            f"SELECT {_CHANGE_COLUMNS} FROM control_changes ORDER BY change_id DESC LIMIT ?",
            (limit,),
        )
        return [ControlChange.from_row(*row) for row in reversed(rows)]

    # -- pre-trade risk -----------------------------------------------------------------------

    async def record_risk_change(self, change: RiskChange, document: str) -> str:
        """Store a change of the risk policy and the policy it puts in force (named by ``change.fingerprint``).

        As :meth:`record_control_change`: one process owns the store, so the policy it built is the one
        in force (``document``), and a change whose writer died before it answered is looked for in the
        store by a new writer.
        """
        statements: list[Statement] = [
            (
                "INSERT INTO risk_sets (fingerprint, document) VALUES (?, ?) ON CONFLICT DO NOTHING",
                [change.fingerprint, document],
                None,
            ),
            (
                f"INSERT INTO risk_changes ({_RISK_CHANGE_COLUMNS}) VALUES (?, ?, ?, ?, ?, ?, ?)",
                list(change),  # plain strings and None: the writer process unpickles nothing else
                None,
            ),
        ]
        try:
            await self._commits.request("tx", statements)
        except WriterRefused as exc:
            raise StoreUnavailable(f"SQLite store {self.path}: {exc}") from None
        except WriterLost:

            async def last_change(link: WriterLink) -> RiskChange | None:
                rows = await link.request("sql", (f"SELECT {_RISK_CHANGE_COLUMNS} FROM risk_changes"
                                                  " ORDER BY change_id DESC LIMIT 1", []))  # fmt: skip
                return RiskChange(*rows[0]) if rows else None

            if await self._commits.settle(last_change, "a risk change") != change:
                raise StoreUnavailable(
                    f"SQLite store {self.path}: the writer process ended before the risk change was stored"
                ) from None
        return document

    async def current_risk(self) -> str | None:
        """The document of the risk policy in force (that of the last change), or ``None``: never set."""
        rows = await self._lookup(
            "SELECT s.document FROM risk_changes c JOIN risk_sets s USING (fingerprint)"
            " ORDER BY c.change_id DESC LIMIT 1",
            (),
        )
        return str(rows[0][0]) if rows else None

    async def risk_changes(self, limit: int, kind: str | None = None) -> list[RiskChange]:
        """The last ``limit`` changes of the risk policy (of one ``kind``, or all), oldest first."""
        rows = await self._api_read(
            f"SELECT {_RISK_CHANGE_COLUMNS} FROM risk_changes WHERE ? IS NULL OR kind = ?"
            " ORDER BY change_id DESC LIMIT ?",
            (kind, kind, limit),
        )
        return [RiskChange(*row) for row in reversed(rows)]

    async def recent_orders(self, since: str) -> list[OrderRecord]:
        """Every committed order received at or after ``since``, in order_id order, each with the control
        change it caused (a breaker trip), if any.

        ``received_at`` compares as text, which is time order for the log's fixed-width timestamp form
        (``since`` must be in it too).

        No index covers ``received_at``: the first order worth reading is found by a binary search on the
        primary key (:mod:`ordergate.store.horizon`), so this reads the horizon's orders, not the log. It
        runs only when the gateway starts and when limits are first turned on, never per order, on the
        API's lane, where a slow read holds up no order entry, and decodes there too (as a listing page
        does), sparing the event loop.
        """
        sql = orders_since_sql(ORDER_COLUMNS, "?")
        floor = search_floor(since)
        caused_sql = (
            f"SELECT {_CHANGE_COLUMNS}, s.document FROM control_changes c JOIN controls_sets s USING (fingerprint)"
            " WHERE c.order_id IS NOT NULL AND c.at >= ?"
        )

        def run(conn: sqlite3.Connection) -> list[OrderRecord]:
            conn.execute("BEGIN")  # one snapshot for the orders and the changes they caused
            try:
                records = [decode_record(*row) for row in conn.execute(sql, (floor, floor, since))]
                caused = caused_by_order(conn.execute(caused_sql, (since,)))
            finally:
                conn.execute("COMMIT")
            return [r._replace(control_change=caused[r.order_id]) if r.order_id in caused else r for r in records]

        return await self._on(self._api_reads, run)

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
        if (doubt := self._commits.in_doubt) is not None:
            raise StoreUnavailable(doubt)
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
        if rows:  # (an order's control change commits with it: once the order is read, so is the change)
            caused = await self._api_read(
                f"SELECT {_CHANGE_COLUMNS}, s.document FROM control_changes c JOIN controls_sets s USING (fingerprint)"
                " WHERE c.order_id > ? AND c.order_id <= ?",
                (after.order_id, int(rows[-1][0])),
            )
            stream = with_caused(stream, caused_by_order(caused))
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

    async def _in_thread(self, fn: Callable[..., R], *args: Any) -> R:
        try:
            return await asyncio.to_thread(fn, *args)
        except sqlite3.Error as exc:
            raise StoreUnavailable(f"SQLite store {self.path}: {exc}") from exc


async def _fence(writer: WriterLink) -> None:
    """A new writer's first write: whatever a dead writer left unpublished in the WAL is now gone or adopted."""
    await writer.request(
        "tx",
        [
            (
                "INSERT INTO meta (key, value) VALUES ('writer', ?)"
                " ON CONFLICT (key) DO UPDATE SET value = excluded.value",
                [f"{os.getpid()} {time.time_ns()}"],
                None,
            )
        ],
    )


async def _committed_through(writer: WriterLink) -> int:
    rows = await writer.request("sql", ("SELECT coalesce(max(order_id), 0) FROM orders", []))
    return int(rows[0][0])


ORPHAN_WAIT = 10.0
"""Seconds a new gateway waits for the writer of a killed one to finish and release the store."""


def _take_lock(fd: int) -> bool:
    """Take the store's exclusive lock, or ``False`` when a live gateway holds it.

    A gateway killed with ``kill -9`` leaves its writer process finishing the transaction in hand,
    holding the lock a moment longer: when the process named in the lock file is gone, wait for it.
    """
    deadline = time.monotonic() + ORPHAN_WAIT
    while True:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            return True
        except BlockingIOError:
            if _holder_alive(fd) or time.monotonic() >= deadline:
                return False
            time.sleep(0.02)


def _holder_alive(fd: int) -> bool:
    try:
        pid = int(os.pread(fd, 32, 0).split()[0])
        os.kill(pid, 0)
    except (ValueError, IndexError, ProcessLookupError):
        return False
    except (PermissionError, OSError):
        return True
    return True


INDEX_EVERY = 256
"""Orders between two catch-ups of the side index (:mod:`ordergate.store.sqlite.schema`, version 5): the
bulk that makes its pages cheap, and about the most of the order log a listing reads as its tail."""
CATCH_UP_HALVES = (CATCH_UP_ORDERS, CATCH_UP_TRADES)
"""The side index's catch-up as the writer runs it between groups: two transactions, so that a group that
arrives meanwhile waits for one half at most."""

INDEX_EVERY_ROWS = 4096
"""Trades and users applied to that make the side index catch up sooner: a big fan-out's trades and users
are indexed right after its group (in the writer's next pause), so the tail stays short whatever one
order opens or closes."""


def _control_change_statements(change: ControlChange, document: str) -> list[Statement]:
    """Store a control change and the controls document it puts in force (kept once per fingerprint)."""
    row = list(control_change_row(change))
    return [
        (
            "INSERT INTO controls_sets (fingerprint, document) VALUES (?, ?) ON CONFLICT DO NOTHING",
            [change.fingerprint, document],
            None,
        ),
        (f"INSERT INTO control_changes ({_CHANGE_COLUMNS}) VALUES (?, ?, ?, ?, ?, ?, ?, ?)", row, None),
    ]
