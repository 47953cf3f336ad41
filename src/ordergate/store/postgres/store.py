"""The shared store: one PostgreSQL database behind any number of gateway processes (SPEC section 6).

psycopg 3 in async mode, with two :class:`psycopg_pool.AsyncConnectionPool` per process; nothing here
blocks the event loop. The main pool (:data:`POOL_SIZE`) serves what order entry waits for: the group
transactions, idempotency lookups, the controls, the readiness probe. The API's reads (orders by id,
listings, control changes) have a small pool of their own behind admission control
(:mod:`ordergate.store.admission`), read-only and with a statement timeout, so however many viewers
ask at once they can never take a connection the committer or a lookup needs; each listing page is
bounded (:mod:`ordergate.store.queries`). PostgreSQL is the point of consistency: each group of orders is decided in
one transaction that holds its locks (:meth:`PostgresStore.lock_group`, used by
:mod:`ordergate.service.shared_sequencer`, whose docstring explains the protocol).

The locks are transaction-scoped advisory locks in three spaces of the two-key form, so they never
meet another application's single-key advisory locks:

- the *schema lock* (``LOCK_SPACE_SCHEMA``, 0): exclusive while migrating or changing the recorded
  scope, shared by every group transaction, so no process can switch the scope under another's feet;
- one lock per instrument (``LOCK_SPACE_INSTRUMENT``, 32-bit hash of the name): orders on different
  instruments never interact, in either scope, so they never wait for each other (a hash collision
  only makes two instruments share a lock);
- one lock per client order id (``LOCK_SPACE_CLIENT_ORDER``): the same id sent to two processes at
  once is stored once, and the other process answers from the stored order;
- the *controls lock* (the schema space, key 1): shared by every group transaction, which reads the
  trading controls in force once it holds it; exclusive while a control change is written. So a
  change waits for the groups deciding under the old controls to commit, and every group that
  takes its locks after the change committed decides under the new ones, in every process;
- the *risk lock* (the schema space, key 2, :data:`RISK_KEY`): exclusive while a change of the risk
  policy is written, so such changes commit one at a time; taken by every group transaction after
  the controls lock and before every instrument, *shared* while its process believes no policy is in
  force and *exclusive* while it believes one is (a :class:`~ordergate.store.base.RiskRead`). Under
  it the group reads the risk policy in force, and, exclusively, the orders its process's risk state
  lacks. So a change waits for the groups deciding under the old policy, and while a policy is in
  force the groups of every process run one at a time (see the shared sequencer);
- a flatten's transaction (:meth:`PostgresStore.lock_cluster`) takes the controls and risk locks
  exclusively, after the schema lock shared: no group of any process runs until it ends, so every
  position and chain head it reads stays as read, and it writes its orders (and the square-off's
  mark) as a group does.

Every transaction takes its locks in one global order (space, then key), so lock waits cannot form a
cycle. Sessions set ``lock_timeout`` and ``idle_in_transaction_session_timeout``, so a stuck process
cannot hold a lock for long; a killed process's locks vanish with its connection.

The order log is tamper-evident with **one hash chain per instrument**: each order's ``chain_hash``
covers its canonical content and the hash of the previous order *on the same instrument* (in
order_id order; the first order of an instrument follows :data:`~ordergate.domain.record.GENESIS_HASH`).
The group transaction reads each instrument's head under that instrument's lock and links the
group's orders in order_id order, so the chain costs one indexed read per instrument in the round
trip the group makes anyway, and orders on different instruments still never wait for each other.
A single chain over all orders would make every group of every process wait for the one before it.

A commit whose outcome the client could not learn (the connection broke during ``COMMIT``) is
resolved before anyone is answered: once that session is gone, the order rows say whether it
committed. ``full`` durability is ``synchronous_commit = on``; ``fast`` is ``off``, which survives
a killed gateway (and a killed PostgreSQL backend) but may lose the last commits if the database
server itself crashes.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import logging
import sys
import time
from collections.abc import AsyncIterator, Sequence
from contextlib import asynccontextmanager
from typing import Any, TypeVar

import orjson
import psycopg
from psycopg_pool import AsyncConnectionPool

from ordergate.domain.book import Opened, Position
from ordergate.domain.chain import Chains, chain_per_instrument
from ordergate.domain.controls import NO_CONTROLS, Controls
from ordergate.domain.model import Action, Scope
from ordergate.domain.record import OrderRecord, Trade
from ordergate.domain.risk import SQUARE_OFF, RiskChange
from ordergate.errors import StartupError, StoreUnavailable
from ordergate.store.admission import READ_CONNECTIONS, READ_QUEUE, Admission
from ordergate.store.base import (
    CommitInDoubt,
    ControlChange,
    Durability,
    LockedGroup,
    OrderQuery,
    Page,
    PositionQuery,
    RiskRead,
    Snapshot,
    StreamPage,
    StreamPosition,
    TradeQuery,
)
from ordergate.store.changes import group_changes
from ordergate.store.codec import decode_page, decode_record, encode_and_link, stream_rows
from ordergate.store.paging import page_of
from ordergate.store.postgres.connection import (
    CONNECT_TIMEOUT,
    LOCK_TIMEOUT,
    conninfo,
    display_url,
    lock_key,
    problem_of,
)
from ordergate.store.postgres.schema import BOOTSTRAP, CHAIN_VERSION, LATEST_VERSION, MIGRATIONS, ORDER_USERS_VERSION
from ordergate.store.queries import POSTGRES, READ_BUDGET, PagePlan, book_page, bound_of, order_page

log = logging.getLogger(__name__)
R = TypeVar("R")

LOCK_SPACE_SCHEMA = 0x4F470000
LOCK_SPACE_INSTRUMENT = LOCK_SPACE_SCHEMA + 1
LOCK_SPACE_CLIENT_ORDER = LOCK_SPACE_SCHEMA + 2
CONTROLS_KEY = 1
"""Key of the controls lock in the schema space: after the schema lock, before every instrument."""
RISK_KEY = 2
"""Key of the risk lock in the schema space (the schema lock is key 0, the controls lock key 1; the
instrument and client order id locks live in spaces of their own): exclusive while a risk change is
written, so changes from several processes commit one at a time, in the order of their ``change_id``."""

POOL_SIZE = 8
"""Connections per gateway process at most for order entry: the committer's group transactions, lookups,
the controls and the probes (the API's reads have their own :data:`~ordergate.store.admission.READ_CONNECTIONS`)."""
READ_STATEMENT_TIMEOUT = "10s"
"""A backstop for the API's reads, each bounded anyway: none may hold a read connection longer."""
GROUP_LOCK_WAIT = "200ms"
"""How long a group waits for its locks before it decides without the busy ones (their orders wait alone)."""
RESOLVE_SECONDS = 30.0
"""How long an interrupted ``COMMIT`` is looked into before its orders are answered 503 as unknown."""

RECORD_COLUMNS = (
    "order_id, received_at, strategy, instrument, side, status, reason, scope, "
    "profile_fingerprint, client_order_id, applied, rejected_for, controls_fingerprint"
)
"""The order columns up to its trading controls: what every schema version since the controls has."""
ENTRY_COLUMNS = "origin, actor, risk_fingerprint, signal_time"
"""How an order came in and the risk policy it was decided under (schema version 8), in the place
:func:`~ordergate.store.codec.decode_record` takes them: after ``chain_hash``."""
ORDER_COLUMNS = f"{RECORD_COLUMNS}, NULL, {ENTRY_COLUMNS}"
"""What order entry and the API read of an order: every column :func:`~ordergate.store.codec.decode_record`
takes, in its order, with NULL for the hash-chain link, which only the log's readers need."""
_CURRENT_CONTROLS = (
    "SELECT s.document FROM control_changes c JOIN controls_sets s USING (fingerprint)"
    " ORDER BY c.change_id DESC LIMIT 1"
)
_CURRENT_RISK = (
    "SELECT s.document FROM risk_changes c JOIN risk_sets s USING (fingerprint) ORDER BY c.change_id DESC LIMIT 1"
)
_POSITION_COLUMNS = "position_id, user_name, strategy, instrument, opened_order_id, opened_at"
_TRADE_COLUMNS = (
    "trade_id, user_name, strategy, instrument, opened_order_id, opened_at, closed_order_id, closed_at, "
    "closing_strategy"
)
LOG_COLUMNS = f"{RECORD_COLUMNS}, chain_hash, {ENTRY_COLUMNS}"
"""Every column of an order with its hash-chain link (what ``verify`` reads, and what a group writes)."""
_INSERT_ORDERS = f"""
INSERT INTO orders ({LOG_COLUMNS})
SELECT * FROM unnest(
    %s::bigint[], %s::text[], %s::text[], %s::text[], %s::text[], %s::text[],
    %s::text[], %s::text[], %s::text[], %s::text[], %s::text[], %s::text[], %s::text[], %s::text[],
    %s::text[], %s::text[], %s::text[], %s::text[])
"""
_WATERMARK = "SELECT pg_snapshot_xmin(pg_current_snapshot())::text::bigint"
"""The oldest transaction id still running in the cluster: no order can ever commit below it."""
_SHARED_LOCKS = "SELECT pg_advisory_xact_lock_shared(%s, 0), pg_advisory_xact_lock_shared(%s, %s)"
_RISK_SHARED = "SELECT pg_advisory_xact_lock_shared(%s, %s)"
_RISK_EXCLUSIVE = "SELECT pg_advisory_xact_lock(%s, %s)"
_EXCLUSIVE = _RISK_EXCLUSIVE
_OPEN_COUNTS = "SELECT user_name, strategy, count(*) FROM positions GROUP BY user_name, strategy"
_CAUSED = (
    "SELECT c.at, c.level, c.target, c.state, c.changed_by, c.fingerprint, c.reason, c.order_id, s.document"
    " FROM control_changes c JOIN controls_sets s USING (fingerprint)"
)
"""The control changes orders caused (a breaker trip, a flatten's ``then``), with the controls they put in
force: :func:`~ordergate.domain.risk.fold` needs a breaker trip with its order."""
_CAUSED_AFTER = f"{_CAUSED} WHERE c.order_id > %s"
_CAUSED_SINCE = f"{_CAUSED} WHERE c.order_id IS NOT NULL AND c.at >= %s"
_LAST_SQUARE_OFF = "SELECT change FROM risk_changes WHERE kind = %s ORDER BY change_id DESC LIMIT 1"
_INSERT_CONTROLS_SET = "INSERT INTO controls_sets (fingerprint, document) VALUES (%s, %s) ON CONFLICT DO NOTHING"
_INSERT_CAUSED = (
    "INSERT INTO control_changes (at, level, target, state, changed_by, fingerprint, reason, order_id)"
    " VALUES (%s, %s, %s, %s, %s, %s, %s, %s)"
)
_INSERT_RISK_SET = "INSERT INTO risk_sets (fingerprint, document) VALUES (%s, %s) ON CONFLICT DO NOTHING"
_INSERT_RISK_CHANGE = (
    "INSERT INTO risk_changes (at, kind, level, target, change, changed_by, fingerprint)"
    " VALUES (%s, %s, %s, %s, %s, %s, %s)"
)
_ALL_POSITIONS = "SELECT user_name, strategy, instrument, opened_order_id, opened_at FROM positions"
_CHAIN_HEADS = """
SELECT i, (SELECT chain_hash FROM orders WHERE instrument = i ORDER BY order_id DESC LIMIT 1)
FROM unnest(%s::text[]) AS i
"""
_INSERT_ORDER_USERS = "INSERT INTO order_users (user_name, order_id) SELECT * FROM unnest(%s::text[], %s::bigint[])"
_DELETE_POSITIONS = """
DELETE FROM positions WHERE (user_name, scope_strategy, instrument) IN (
    SELECT * FROM unnest(%s::text[], %s::text[], %s::text[]))
"""
_INSERT_POSITIONS = """
INSERT INTO positions (user_name, scope_strategy, instrument, strategy, opened_order_id, opened_at)
SELECT * FROM unnest(%s::text[], %s::text[], %s::text[], %s::text[], %s::bigint[], %s::text[])
"""
_INSERT_TRADES = """
INSERT INTO trades (user_name, strategy, instrument, opened_order_id, opened_at, closed_order_id, closed_at,
                    closing_strategy)
SELECT * FROM unnest(%s::text[], %s::text[], %s::text[], %s::bigint[], %s::text[], %s::bigint[], %s::text[],
                     %s::text[])
"""


class PostgresStore:
    """The :class:`~ordergate.store.base.SharedStore` of one gateway process over one PostgreSQL database."""

    def __init__(
        self,
        url: str,
        durability: Durability = Durability.FULL,
        *,
        pool_size: int = POOL_SIZE,
        read_connections: int = READ_CONNECTIONS,
        read_queue: int = READ_QUEUE,
        read_budget: int = READ_BUDGET,
    ) -> None:
        self.url = url
        self.durability = durability
        self._conninfo = conninfo(url, durability)
        self._pool_size = pool_size
        self._pool: AsyncConnectionPool | None = None
        self._read_connections = read_connections
        self._read_pool: AsyncConnectionPool | None = None
        self._admission = Admission(read_connections, read_queue)
        self._read_budget = read_budget
        self._scope = Scope.ACCOUNT

    @property
    def location(self) -> str:
        """Where the store lives, for messages: the database URL without its password."""
        return display_url(self.url)

    # -- life cycle ---------------------------------------------------------------------------

    def probe(self, scope: Scope) -> None:
        """Before any server starts: the database answers and can serve ``scope``, or :class:`StartupError`."""
        try:
            with psycopg.connect(self._conninfo, autocommit=True) as conn:
                row = conn.execute("SELECT to_regclass('meta') IS NOT NULL").fetchone()
                if row is None or not row[0]:
                    return  # a new database: open() creates the schema
                held = conn.execute("SELECT value FROM meta WHERE key = 'scope'").fetchone()
                if held is None or held[0] == scope.value:
                    return
                count_row = conn.execute("SELECT count(*) FROM positions").fetchone()
                _refuse_other_scope(str(held[0]), int(count_row[0]) if count_row else 0, scope, self.location)
        except psycopg.Error as exc:
            raise StartupError(f"cannot connect to PostgreSQL at {self.location}: {problem_of(exc)}") from None

    async def open(self, scope: Scope) -> Snapshot:
        """Connect, migrate (once, whichever process comes first), record the scope, read the book."""
        self._scope = scope
        try:
            first = await psycopg.AsyncConnection.connect(self._conninfo, autocommit=True)
        except psycopg.Error as exc:
            raise StartupError(f"cannot connect to PostgreSQL at {self.location}: {problem_of(exc)}") from None
        try:
            async with first:
                await _migrate(first, self.location)
                await _record_scope(first, scope, self.location)
                async with first.transaction():  # one snapshot: the book, the last id, the watermark
                    await first.execute("SET TRANSACTION ISOLATION LEVEL REPEATABLE READ, READ ONLY")
                    # one row per order whose positions are still open (Book.restore builds the book)
                    cursor = await first.execute(
                        "SELECT strategy, instrument, opened_order_id, opened_at, array_agg(user_name) FROM positions"
                        " GROUP BY opened_order_id, strategy, instrument, opened_at"
                    )
                    share = sys.intern  # one string per name, not one per position
                    opened = [
                        Opened(share(s), share(i), order_id, share(at), list(map(share, users)))
                        for s, i, order_id, at, users in await cursor.fetchall()
                    ]
                    cursor = await first.execute("SELECT fingerprint FROM profiles")
                    profiles = frozenset(str(row[0]) for row in await cursor.fetchall())
                    last_row = await (await first.execute("SELECT coalesce(max(order_id), 0) FROM orders")).fetchone()
                    watermark_row = await (await first.execute(_WATERMARK)).fetchone()
                    watermark = int(watermark_row[0]) if watermark_row is not None else 0
                    above = await first.execute(
                        f"SELECT {LOG_COLUMNS} FROM orders WHERE commit_xid >= %s", (watermark,)
                    )
                    later = [record for _, record in stream_rows((0, row) for row in await above.fetchall())]
        except psycopg.Error as exc:
            raise StartupError(f"cannot open the store at {self.location}: {problem_of(exc)}") from None
        self._pool = AsyncConnectionPool(
            self._conninfo,
            kwargs={"autocommit": True},
            min_size=1,
            max_size=self._pool_size,
            open=False,
            check=AsyncConnectionPool.check_connection,
            timeout=CONNECT_TIMEOUT,
            name="ordergate",
        )
        await self._pool.open(wait=False)
        self._read_pool = AsyncConnectionPool(
            self._conninfo,
            kwargs={"autocommit": True},
            min_size=1,
            max_size=self._read_connections,
            open=False,
            configure=_configure_reader,
            check=AsyncConnectionPool.check_connection,
            timeout=CONNECT_TIMEOUT,
            name="ordergate-api-reads",
        )
        await self._read_pool.open(wait=False)
        # the hub starts at the watermark; the orders already committed above it are streamed later,
        # so the counters start without their effects
        net = sum(1 if e.action is Action.OPENED else -1 for record in later for e in record.decision.applied)
        count = sum(len(group.users) for group in opened)
        return Snapshot(
            opened, int(last_row[0]) if last_row else 0, StreamPosition(watermark, 0), count - net, profiles
        )

    async def close(self) -> None:
        for attr in ("_read_pool", "_pool"):
            pool = getattr(self, attr)
            if pool is not None:
                setattr(self, attr, None)
                await pool.close(timeout=5.0)

    # -- the shared group transaction ------------------------------------------------------------

    @asynccontextmanager
    async def lock_group(
        self,
        instruments: Sequence[str],
        client_order_ids: Sequence[str],
        reserve: int,
        *,
        patient: bool = False,
        risk: RiskRead | None = None,
    ) -> AsyncIterator[_Group]:
        try:
            async with self._pooled().connection() as conn:
                group = _Group(self, conn, risk)
                try:
                    await group.lock(instruments, client_order_ids, reserve, patient=patient)
                    yield group
                finally:
                    if not group.finished:
                        with contextlib.suppress(psycopg.Error):
                            await conn.execute("ROLLBACK")
        except psycopg.Error as exc:
            raise StoreUnavailable(f"PostgreSQL {self.location}: {problem_of(exc)}") from exc

    @asynccontextmanager
    async def lock_cluster(self, *, risk: RiskRead | None = None) -> AsyncIterator[_Group]:
        try:
            async with self._pooled().connection() as conn:
                group = _Group(self, conn, risk)
                try:
                    await group.lock_all()
                    yield group
                finally:
                    if not group.finished:
                        with contextlib.suppress(psycopg.Error):
                            await conn.execute("ROLLBACK")
        except psycopg.Error as exc:
            raise StoreUnavailable(f"PostgreSQL {self.location}: {problem_of(exc)}") from exc

    async def _resolve(self, backend_pid: int, order_id: int) -> bool | None:
        """Whether the group holding ``order_id`` committed, once its session ``backend_pid`` is gone.

        ``None`` when that could not be learned within :data:`RESOLVE_SECONDS` (database unreachable).
        """
        deadline = time.monotonic() + RESOLVE_SECONDS
        problem = "no answer"
        while time.monotonic() < deadline:
            try:
                async with self._pooled().connection() as conn:
                    cursor = await conn.execute(
                        "SELECT EXISTS (SELECT 1 FROM pg_stat_activity WHERE pid = %s),"
                        " EXISTS (SELECT 1 FROM orders WHERE order_id = %s)",
                        (backend_pid, order_id),
                    )
                    row = await cursor.fetchone()
                if row is not None and not row[0]:
                    log.warning("order %d %s", order_id, "did commit" if row[1] else "did not commit")
                    return bool(row[1])
                problem = f"its session {backend_pid} is still running"
            except (psycopg.Error, StoreUnavailable) as exc:
                problem = problem_of(exc)
            await asyncio.sleep(0.2)
        log.error("could not learn whether order %d committed within %.0f s: %s", order_id, RESOLVE_SECONDS, problem)
        return None

    # -- writes outside the group transaction ------------------------------------------------------

    async def record_profiles(self, fingerprint: str, document: str) -> None:
        await self._run(
            "INSERT INTO profiles (fingerprint, document) VALUES (%s, %s) ON CONFLICT DO NOTHING",
            (fingerprint, document),
        )

    # -- trading controls ---------------------------------------------------------------------

    async def record_control_change(self, change: ControlChange, document: str) -> str:
        """Store ``change`` and the controls it puts in force, under the exclusive controls lock.

        Another process may have changed the controls since this one last read them, so the change is
        applied to the controls in force *in the database* (read under the lock), not to ``document``
        as the caller built it: a change never undoes another process's. The recorded fingerprint is
        that of the result. The lock waits for every group deciding under the old controls.
        """
        try:
            async with self._pooled().connection() as conn, conn.transaction():
                await conn.execute("SELECT pg_advisory_xact_lock(%s, %s)", (LOCK_SPACE_SCHEMA, CONTROLS_KEY))
                row = await (await conn.execute(_CURRENT_CONTROLS)).fetchone()
                base = NO_CONTROLS if row is None else Controls.from_document(orjson.loads(row[0]))
                controls = base.with_setting(change.setting)
                if controls.fingerprint != change.fingerprint:
                    log.warning("control change applied to controls another process changed: %s", controls)
                    document = orjson.dumps(controls.to_document()).decode()
                await conn.execute(
                    "INSERT INTO controls_sets (fingerprint, document) VALUES (%s, %s) ON CONFLICT DO NOTHING",
                    (controls.fingerprint, document),
                )
                await conn.execute(
                    "INSERT INTO control_changes (at, level, target, state, changed_by, fingerprint)"
                    " VALUES (%s, %s, %s, %s, %s, %s)",
                    (change.at, change.setting.level.value, change.setting.target, change.setting.state.value,
                     change.by, controls.fingerprint),
                )  # fmt: skip
        except psycopg.Error as exc:
            raise StoreUnavailable(f"PostgreSQL {self.location}: {problem_of(exc)}") from exc
        return document

    async def current_controls(self) -> str | None:
        """The document of the controls in force (those of the last change), or ``None``: never set."""
        rows = await self._run(_CURRENT_CONTROLS, ())
        return str(rows[0][0]) if rows else None

    async def control_changes(self, limit: int) -> list[ControlChange]:
        """The last ``limit`` control changes, oldest first."""
        rows = await self._api_read(
            "SELECT at, level, target, state, changed_by, fingerprint, reason, order_id FROM control_changes"
            " ORDER BY change_id DESC LIMIT %s",
            (limit,),
        )
        return [ControlChange.from_row(*row) for row in reversed(rows)]

    # -- pre-trade risk -------------------------------------------------------------------------

    async def record_risk_change(self, change: RiskChange, document: str) -> str:
        """Store ``change`` and the risk policy ``document`` it puts in force, under the exclusive risk lock.

        Unlike a control change, the document is stored as the caller built it: the lock only makes
        changes from several processes commit one at a time, so the last change committed is the
        policy in force (:meth:`current_risk`). Every group transaction takes the same lock (shared, or
        exclusive while a policy is believed in force), so a change waits for the groups deciding
        under the old policy, and every group that locks after it commits reads the new one.
        """
        try:
            async with self._pooled().connection() as conn, conn.transaction():
                await conn.execute("SELECT pg_advisory_xact_lock(%s, %s)", (LOCK_SPACE_SCHEMA, RISK_KEY))
                await conn.execute(_INSERT_RISK_SET, (change.fingerprint, document))
                await conn.execute(_INSERT_RISK_CHANGE, _risk_change_row(change))
        except psycopg.Error as exc:
            raise StoreUnavailable(f"PostgreSQL {self.location}: {problem_of(exc)}") from exc
        return document

    async def current_risk(self) -> str | None:
        """The document of the risk policy in force (that of the last change), or ``None``: never set."""
        rows = await self._run(_CURRENT_RISK, ())
        return str(rows[0][0]) if rows else None

    async def risk_changes(self, limit: int, kind: str | None = None) -> list[RiskChange]:
        """The last ``limit`` risk changes (of one ``kind``, or all), oldest first."""
        rows = await self._api_read(
            "SELECT at, kind, level, target, change, changed_by, fingerprint FROM risk_changes"
            " WHERE %s::text IS NULL OR kind = %s ORDER BY change_id DESC LIMIT %s",
            (kind, kind, limit),
        )
        return [RiskChange(*row) for row in reversed(rows)]

    async def recent_orders(self, since: str) -> list[OrderRecord]:
        """Every committed order received at or after ``since``, in order_id order.

        A full scan of the orders: ``received_at`` has no index (nothing else reads by it), and this read
        serves rebuilding the risk state (:mod:`ordergate.domain.risk`), not each order's decision. The
        timestamps are all of one fixed-width UTC form, so comparing the text compares the times.
        """
        async with self._pooled().connection() as conn, conn.transaction():  # one snapshot for both reads
            orders = await conn.execute(
                f"SELECT {ORDER_COLUMNS} FROM orders WHERE received_at >= %s ORDER BY order_id", (since,)
            )
            rows = await orders.fetchall()
            caused = await (await conn.execute(_CAUSED_SINCE, (since,))).fetchall()
        return _with_caused([decode_record(*row) for row in rows], caused)

    async def commit(self, records: Sequence[OrderRecord]) -> None:
        """Not used with several processes: orders are committed inside :meth:`lock_group`."""
        raise StoreUnavailable("the PostgreSQL store commits orders only inside a locked group transaction")

    # -- reads --------------------------------------------------------------------------------

    async def get_order(self, order_id: int) -> OrderRecord | None:
        rows = await self._api_read(f"SELECT {ORDER_COLUMNS} FROM orders WHERE order_id = %s", (order_id,))
        return decode_record(*rows[0]) if rows else None

    async def find_client_order(self, client_order_id: str) -> OrderRecord | None:
        rows = await self._run(f"SELECT {ORDER_COLUMNS} FROM orders WHERE client_order_id = %s", (client_order_id,))
        return decode_record(*rows[0]) if rows else None

    async def find_client_orders(self, client_order_ids: Sequence[str]) -> dict[str, OrderRecord]:
        if not client_order_ids:
            return {}
        rows = await self._run(
            f"SELECT {ORDER_COLUMNS} FROM orders WHERE client_order_id = ANY(%s)", (list(client_order_ids),)
        )
        return _by_client_order_id(rows)

    async def list_orders(self, query: OrderQuery) -> Page[OrderRecord]:
        rows, bound = await self._page(order_page(query, ORDER_COLUMNS, POSTGRES, self._read_budget))
        return decode_page(rows, query.limit, bound)

    async def list_positions(self, query: PositionQuery) -> Page[Position]:
        plan = book_page("positions", "position_id", query, _POSITION_COLUMNS, POSTGRES, self._read_budget)
        rows, bound = await self._page(plan)
        page = page_of(rows, query.limit, lambda row: int(row[0]), bound)
        return Page([Position(*row[1:]) for row in page.items], page.next)

    async def list_trades(self, query: TradeQuery) -> Page[Trade]:
        plan = book_page("trades", "trade_id", query, _TRADE_COLUMNS, POSTGRES, self._read_budget)
        rows, bound = await self._page(plan)
        return page_of([Trade(*row) for row in rows], query.limit, lambda t: t.trade_id, bound)

    async def order_totals(self, until: StreamPosition) -> list[tuple[str, str, str | None, int]]:
        rows = await self._run(
            "SELECT status, side, reason, count(*) FROM orders WHERE (commit_xid, order_id) <= (%s, %s)"
            " GROUP BY status, side, reason",
            (until.commit, until.order_id),
        )
        return [(str(s), str(side), None if r is None else str(r), int(n)) for s, side, r, n in rows]

    # -- the cluster-wide event stream ------------------------------------------------------------

    async def stream_page(self, after: StreamPosition, limit: int) -> StreamPage:
        """Committed orders after ``after`` in ``(commit_xid, order_id)`` order, below the watermark.

        The watermark is the oldest transaction id still running anywhere in the cluster
        (``pg_snapshot_xmin``): every transaction with a lower id has ended, committed or not, and
        no new one can ever get a lower id. So once a reader has delivered every order below it,
        nothing can commit there later: a position is a resume token that holds across processes,
        whichever process the reader was or is connected to. Both reads share one snapshot.
        """
        try:
            async with self._api_connection() as conn, conn.transaction():
                await conn.execute("SET TRANSACTION ISOLATION LEVEL REPEATABLE READ, READ ONLY")
                row = await (await conn.execute(_WATERMARK)).fetchone()
                watermark = int(row[0]) if row is not None else 0
                cursor = await conn.execute(
                    f"SELECT commit_xid, {LOG_COLUMNS} FROM orders WHERE (commit_xid, order_id) > (%s, %s)"
                    " AND commit_xid < %s ORDER BY commit_xid, order_id LIMIT %s",
                    (after.commit, after.order_id, watermark, limit),
                )
                rows = await cursor.fetchall()
        except psycopg.Error as exc:
            raise StoreUnavailable(f"PostgreSQL {self.location}: {problem_of(exc)}") from exc
        stream = stream_rows((int(row[0]), row[1:]) for row in rows)
        if len(rows) == limit:
            return StreamPage(stream, StreamPosition(int(rows[-1][0]), int(rows[-1][1])), more=True)
        return StreamPage(stream, max(after, StreamPosition(watermark, 0)))

    async def stream_head(self) -> StreamPosition:
        rows = await self._run(_WATERMARK, ())
        return StreamPosition(int(rows[0][0]), 0)

    async def stream_position(self, order_id: int) -> StreamPosition | None:
        rows = await self._run("SELECT commit_xid FROM orders WHERE order_id = %s", (order_id,))
        return StreamPosition(int(rows[0][0]), order_id) if rows else None

    async def ping(self) -> None:
        await self._run("SELECT 1", ())

    # -- plumbing -----------------------------------------------------------------------------

    def _pooled(self) -> AsyncConnectionPool:
        if self._pool is None:
            raise StoreUnavailable(f"PostgreSQL store {self.location} is not open")
        return self._pool

    async def _run(self, sql: str, params: Sequence[object]) -> list[tuple[Any, ...]]:
        """One statement on a connection of the main pool (autocommit); its rows, or [] when it returns none."""
        try:
            async with self._pooled().connection() as conn:
                cursor = await conn.execute(sql, params)
                return await cursor.fetchall() if cursor.description is not None else []
        except psycopg.Error as exc:
            raise StoreUnavailable(f"PostgreSQL {self.location}: {problem_of(exc)}") from exc

    async def _api_read(self, sql: str, params: Sequence[object]) -> list[tuple[Any, ...]]:
        """One statement of the API's reads, on their own pool."""
        async with self._api_connection() as conn:
            cursor = await conn.execute(sql, params)
            return await cursor.fetchall()

    async def _page(self, plan: PagePlan) -> tuple[list[tuple[Any, ...]], int | None]:
        """The rows of a listing page and the bound its probe found (two statements, one connection)."""
        probe = plan.probe()
        async with self._api_connection() as conn:
            bound = None
            if probe is not None:
                row = await (await conn.execute(*probe)).fetchone()
                bound = bound_of(row or ())
            cursor = await conn.execute(*plan.page(bound))
            return await cursor.fetchall(), bound

    @asynccontextmanager
    async def _api_connection(self) -> AsyncIterator[psycopg.AsyncConnection[Any]]:
        """A connection of the API's read pool, once admitted (:class:`~ordergate.errors.ReadsBusy` if not)."""
        pool = self._read_pool
        if pool is None:
            raise StoreUnavailable(f"PostgreSQL store {self.location} is not open")
        self._admission.admit()
        try:
            async with pool.connection() as conn:
                yield conn
        except psycopg.Error as exc:
            raise StoreUnavailable(f"PostgreSQL {self.location}: {problem_of(exc)}") from exc
        finally:
            self._admission.release()


async def _configure_reader(conn: psycopg.AsyncConnection[Any]) -> None:
    """The API's read connections write nothing and give up on a statement past the backstop."""
    await conn.execute("SET default_transaction_read_only = on")
    await conn.execute(f"SET statement_timeout = '{READ_STATEMENT_TIMEOUT}'")


class _Group:
    """The :class:`~ordergate.store.base.OrderGroup` of :meth:`PostgresStore.lock_group`."""

    def __init__(self, store: PostgresStore, conn: psycopg.AsyncConnection[Any], risk: RiskRead | None) -> None:
        self._store = store
        self._conn = conn
        self._risk = risk
        self._locked: LockedGroup | None = None
        self._heads: dict[str, str] = {}  # the hash of the last stored order of each instrument locked
        self.squared_off: str | None = None  # read by :meth:`lock_all` only
        self.finished = False

    @property
    def locked(self) -> LockedGroup:
        assert self._locked is not None
        return self._locked

    async def lock(
        self, instruments: Sequence[str], client_order_ids: Sequence[str], reserve: int, *, patient: bool
    ) -> None:
        """Begin, take the locks in the global order, then read what the group is decided against.

        One round trip: the statements go out as a pipeline and run in order on the server, so
        every read below happens after every lock is held. The schema, controls and risk locks are
        waited for up to the session's ``lock_timeout`` (the risk lock is held exclusively by every
        group while a policy is in force: waiting for it is the serial order, not a stuck instrument).
        An impatient group waits at most :data:`GROUP_LOCK_WAIT` for its instrument and client order
        id locks; if that runs out, it begins again, takes at once whichever of those are free, and
        reports the others busy (see the shared sequencer's lanes).
        """
        conn = self._conn
        wanted = _lock_keys(instruments, client_order_ids)
        if patient:
            await self._lock_and_read(wanted, instruments, client_order_ids, reserve, wait=LOCK_TIMEOUT)
            return
        try:
            await self._lock_and_read(wanted, instruments, client_order_ids, reserve, wait=GROUP_LOCK_WAIT)
            return
        except psycopg.errors.LockNotAvailable:
            await conn.execute("ROLLBACK")
        async with conn.pipeline():
            await conn.execute("BEGIN")
            await self._send_schema_locks()
            refused = await conn.execute(
                "SELECT s, k FROM unnest(%s::int4[], %s::int4[]) AS l(s, k) WHERE NOT pg_try_advisory_xact_lock(s, k)",
                ([s for s, _ in wanted], [k for _, k in wanted]),
            )
        busy_keys = {(int(space), int(key)) for space, key in await refused.fetchall()}
        free_instruments = [i for i in instruments if (LOCK_SPACE_INSTRUMENT, lock_key(i)) not in busy_keys]
        free_ids = [c for c in client_order_ids if (LOCK_SPACE_CLIENT_ORDER, lock_key(c)) not in busy_keys]
        log.warning(
            "locks busy for %d of %d keys after %s; deciding the other orders now",
            len(busy_keys),
            len(wanted),
            GROUP_LOCK_WAIT,
        )
        async with conn.pipeline():
            reads = await self._send_reads(free_instruments, free_ids, reserve)
        self._locked = await self._take_reads(
            reads,
            busy_instruments=frozenset(instruments) - frozenset(free_instruments),
            busy_client_order_ids=frozenset(client_order_ids) - frozenset(free_ids),
        )

    async def lock_all(self) -> None:
        """Begin and hold every process still (:class:`~ordergate.store.base.ClusterGroup`): the schema lock
        shared, the controls and risk locks exclusively, in the global order. Every group takes the risk
        lock before any instrument lock and keeps it to its end, so once this holds it no group anywhere
        holds an instrument lock: every position and chain head stays as read until this ends."""
        conn = self._conn
        async with conn.pipeline():
            await conn.execute("BEGIN")
            await conn.execute("SELECT pg_advisory_xact_lock_shared(%s, 0)", (LOCK_SPACE_SCHEMA,))
            await conn.execute(_EXCLUSIVE, (LOCK_SPACE_SCHEMA, CONTROLS_KEY))
            await conn.execute(_EXCLUSIVE, (LOCK_SPACE_SCHEMA, RISK_KEY))
            reads = await self._send_reads(None, (), 0)
            mark = await conn.execute(_LAST_SQUARE_OFF, (SQUARE_OFF,))
        self._locked = await self._take_reads(reads)
        row = await mark.fetchone()
        if row is not None:
            day = orjson.loads(row[0]).get("day")
            self.squared_off = day if isinstance(day, str) else None

    async def reserve(self, instruments: Sequence[str], count: int) -> list[int]:
        conn = self._conn
        async with conn.pipeline():
            heads = await conn.execute(_CHAIN_HEADS, (list(instruments),))
            ids = await conn.execute("SELECT nextval('order_ids') FROM generate_series(1, %s)", (count,))
        self._heads = {str(i): str(h) for i, h in await heads.fetchall() if h is not None}
        return sorted(int(row[0]) for row in await ids.fetchall())

    async def _lock_and_read(
        self,
        keys: list[tuple[int, int]],
        instruments: Sequence[str],
        client_order_ids: Sequence[str],
        reserve: int,
        *,
        wait: str,
    ) -> None:
        conn = self._conn
        async with conn.pipeline():
            await conn.execute("BEGIN")
            await self._send_schema_locks()
            await conn.execute(f"SET LOCAL lock_timeout = '{wait}'")
            await conn.execute(
                "SELECT count(pg_advisory_xact_lock(s, k)) FROM unnest(%s::int4[], %s::int4[]) AS l(s, k)",
                ([s for s, _ in keys], [k for _, k in keys]),
            )
            await conn.execute(f"SET LOCAL lock_timeout = '{LOCK_TIMEOUT}'")
            reads = await self._send_reads(instruments, client_order_ids, reserve)
        self._locked = await self._take_reads(reads)

    async def _send_schema_locks(self) -> None:
        """Queue (inside a pipeline) the schema and controls locks (shared), then the risk lock."""
        conn = self._conn
        await conn.execute(_SHARED_LOCKS, (LOCK_SPACE_SCHEMA, LOCK_SPACE_SCHEMA, CONTROLS_KEY))
        await conn.execute(_RISK_SHARED if self._risk is None else _RISK_EXCLUSIVE, (LOCK_SPACE_SCHEMA, RISK_KEY))

    async def _send_reads(
        self, instruments: Sequence[str] | None, client_order_ids: Sequence[str], reserve: int
    ) -> list[psycopg.AsyncCursor[Any]]:
        """Queue (inside a pipeline) the reads a group is decided against; :meth:`_take_reads` collects them.

        Under the exclusive risk lock also the orders its :class:`~ordergate.store.base.RiskRead` names:
        those after an order id (index scan), or, to rebuild, the open positions counted per (user,
        strategy) and the orders of the horizon (a scan of the orders: ``received_at`` has no index), each
        with the control change it caused. ``instruments`` ``None``: every open position (:meth:`lock_all`).
        """
        conn = self._conn
        risk = self._risk
        risk_reads: list[psycopg.AsyncCursor[Any]] = [await conn.execute(_CURRENT_RISK)]
        if risk is not None and risk.after is not None:
            risk_reads.append(
                await conn.execute(
                    f"SELECT {ORDER_COLUMNS} FROM orders WHERE order_id > %s ORDER BY order_id", (risk.after,)
                )
            )
            risk_reads.append(await conn.execute(_CAUSED_AFTER, (risk.after,)))
        elif risk is not None:
            risk_reads.append(
                await conn.execute(
                    f"SELECT {ORDER_COLUMNS} FROM orders WHERE received_at >= %s ORDER BY order_id", (risk.since,)
                )
            )
            risk_reads.append(await conn.execute(_CAUSED_SINCE, (risk.since,)))
            risk_reads.append(await conn.execute(_OPEN_COUNTS))
        positions = (
            await conn.execute(_ALL_POSITIONS)
            if instruments is None
            else await conn.execute(f"{_ALL_POSITIONS} WHERE instrument = ANY(%s)", (list(instruments),))
        )
        return [
            *risk_reads,
            await conn.execute("SELECT value FROM meta WHERE key = 'scope'"),
            await conn.execute(_CURRENT_CONTROLS),
            positions,
            await conn.execute(
                f"SELECT {ORDER_COLUMNS} FROM orders WHERE client_order_id = ANY(%s)", (list(client_order_ids),)
            ),
            await conn.execute(_CHAIN_HEADS, (list(instruments or ()),)),
            await conn.execute("SELECT nextval('order_ids') FROM generate_series(1, %s)", (reserve,)),
        ]

    async def _take_reads(
        self,
        reads: list[psycopg.AsyncCursor[Any]],
        *,
        busy_instruments: frozenset[str] = frozenset(),
        busy_client_order_ids: frozenset[str] = frozenset(),
    ) -> LockedGroup:
        risk_document = await reads[0].fetchone()
        risk_orders: list[OrderRecord] = []
        risk_counts: dict[tuple[str, str], int] | None = None
        if self._risk is not None:
            rows, caused = await reads[1].fetchall(), await reads[2].fetchall()
            risk_orders = _with_caused([decode_record(*row) for row in rows], caused)
            if self._risk.after is None:
                risk_counts = {(str(u), str(s)): int(n) for u, s, n in await reads[3].fetchall()}
        scope, controls, positions, stored, heads, ids = reads[len(reads) - 6 :]
        scope_row = await scope.fetchone()
        controls_row = await controls.fetchone()
        self._heads = {str(i): str(h) for i, h in await heads.fetchall() if h is not None}
        return LockedGroup(
            scope=Scope(scope_row[0]) if scope_row is not None else None,
            positions=[Position(*row) for row in await positions.fetchall()],
            stored=_by_client_order_id(await stored.fetchall()),
            order_ids=sorted(int(row[0]) for row in await ids.fetchall()),
            controls_read=True,
            controls=str(controls_row[0]) if controls_row is not None else None,
            busy_instruments=busy_instruments,
            busy_client_order_ids=busy_client_order_ids,
            risk_read=True,
            risk=str(risk_document[0]) if risk_document is not None else None,
            risk_orders=risk_orders,
            risk_counts=risk_counts,
        )

    async def commit(self, records: Sequence[OrderRecord], mark: tuple[RiskChange, str] | None = None) -> None:
        """Write the group (one statement per table), check it, and commit; see the module docstring.

        The control change an order caused (a breaker trip, a flatten's ``then``) is written with it, and
        ``mark`` (a square-off's, :meth:`lock_all` only) too: all of it commits, or none."""
        store, conn = self._store, self._conn
        changes = group_changes(store._scope, records)
        scoped = store._scope is Scope.STRATEGY
        chains = Chains(chain_per_instrument, self._heads)
        encoded = encode_and_link(records, chains)  # in order_id order: each chain grows in decision order
        try:
            async with conn.pipeline():
                await conn.execute(
                    _INSERT_ORDERS,
                    (
                        [r.order_id for r in records],
                        [r.received_at for r in records],
                        [r.order.strategy for r in records],
                        [r.order.instrument for r in records],
                        [r.order.side.value for r in records],
                        [r.decision.status.value for r in records],
                        [r.decision.reason.value if r.decision.reason is not None else None for r in records],
                        [r.scope.value for r in records],
                        [r.profile_fingerprint for r in records],
                        [r.client_order_id for r in records],
                        [e.applied for e in encoded],
                        [e.rejected_for for e in encoded],
                        [r.controls_fingerprint for r in records],
                        [e.chain_hash for e in encoded],
                        [r.origin.value for r in records],
                        [r.actor for r in records],
                        [r.risk_fingerprint for r in records],
                        [r.signal_time for r in records],
                    ),
                )
                users = [
                    (user, r.order_id) for r in records for user in dict.fromkeys(e.user for e in r.decision.applied)
                ]
                if users:
                    await conn.execute(_INSERT_ORDER_USERS, ([u for u, _ in users], [o for _, o in users]))
                deleted = (
                    await conn.execute(
                        _DELETE_POSITIONS,
                        (
                            [k[0] for k in changes.deletes],
                            [k[1] for k in changes.deletes],
                            [k[2] for k in changes.deletes],
                        ),
                    )
                    if changes.deletes
                    else None
                )
                if changes.inserts:
                    await conn.execute(
                        _INSERT_POSITIONS,
                        (
                            [p.user for p in changes.inserts],
                            [p.strategy if scoped else "" for p in changes.inserts],
                            [p.instrument for p in changes.inserts],
                            [p.strategy for p in changes.inserts],
                            [p.opened_order_id for p in changes.inserts],
                            [p.opened_at for p in changes.inserts],
                        ),
                    )
                if changes.trades:
                    await conn.execute(
                        _INSERT_TRADES, tuple(list(column) for column in zip(*changes.trades, strict=True))
                    )
                for record in records:
                    if record.control_change is not None:
                        change, document = record.control_change
                        await conn.execute(_INSERT_CONTROLS_SET, (change.fingerprint, document))
                        await conn.execute(_INSERT_CAUSED, _control_change_row(change))
                if mark is not None:
                    marked, policy = mark
                    await conn.execute(_INSERT_RISK_SET, (marked.fingerprint, policy))
                    await conn.execute(_INSERT_RISK_CHANGE, _risk_change_row(marked))
            if deleted is not None and deleted.rowcount != len(changes.deletes):
                raise StoreUnavailable(
                    f"PostgreSQL {store.location}: closed {deleted.rowcount} positions where the group closes "
                    f"{len(changes.deletes)}; nothing was stored"
                )
        except psycopg.Error as exc:
            raise StoreUnavailable(f"PostgreSQL {store.location}: {problem_of(exc)}") from exc
        backend_pid = conn.info.backend_pid
        try:
            await conn.execute("COMMIT")
        except psycopg.Error as exc:
            if not conn.broken:  # the server answered: it refused the commit, and rolled back
                raise StoreUnavailable(f"PostgreSQL {store.location}: {problem_of(exc)}") from exc
            self.finished = True
            first, last = records[0].order_id, records[-1].order_id
            log.error(
                "the connection broke during COMMIT of orders %d..%d; finding out whether it committed", first, last
            )
            raise CommitInDoubt(
                f"PostgreSQL {store.location}: the connection broke during COMMIT ({problem_of(exc)})",
                functools.partial(store._resolve, backend_pid, first),
            ) from exc
        self.finished = True


async def _migrate(conn: psycopg.AsyncConnection[Any], where: str) -> None:
    """Bring the schema to the latest version in one transaction under the exclusive schema lock."""
    async with conn.transaction():
        await conn.execute("SELECT pg_advisory_xact_lock(%s, 0)", (LOCK_SPACE_SCHEMA,))
        await conn.execute(BOOTSTRAP)
        row = await (await conn.execute("SELECT coalesce(max(version), 0) FROM schema_migrations")).fetchone()
        version = int(row[0]) if row else 0
        if version > LATEST_VERSION:
            raise StartupError(
                f"the store {where} has schema version {version}, newer than this ordergate knows "
                f"({LATEST_VERSION}); upgrade ordergate"
            )
        for target, script in MIGRATIONS:
            if target <= version:
                continue
            for statement in script.split(";"):
                if statement.strip():
                    await conn.execute(statement)
            await conn.execute("INSERT INTO schema_migrations (version) VALUES (%s)", (target,))
        if version < CHAIN_VERSION:
            linked = await _link_unchained_orders(conn)
            if linked:
                log.warning("linked %d orders stored before the hash chain existed", linked)
        if 0 < version < ORDER_USERS_VERSION:
            entered = await _enter_order_users(conn)
            if entered:
                log.warning("entered %d (user, order) rows of orders stored before order_users existed", entered)


async def _link_unchained_orders(conn: psycopg.AsyncConnection[Any]) -> int:
    """Give the orders stored before the chain existed their links (per instrument, in order_id order).

    Runs once, inside the migration's transaction (every gateway waits on the schema lock meanwhile).
    """
    chains = Chains(chain_per_instrument)
    ids: list[int] = []
    hashes: list[str] = []
    cursor = await conn.execute(f"SELECT {LOG_COLUMNS} FROM orders ORDER BY order_id")
    for row in await cursor.fetchall():
        record = decode_record(*row)
        if record.chain_hash is None:
            ids.append(record.order_id)
            hashes.append(chains.link(record))
        else:
            chains.advance(record, record.chain_hash)
    if ids:
        await conn.execute(
            "UPDATE orders SET chain_hash = u.h FROM unnest(%s::bigint[], %s::text[]) AS u(id, h)"
            " WHERE orders.order_id = u.id",
            (ids, hashes),
        )
    return len(ids)


async def _enter_order_users(conn: psycopg.AsyncConnection[Any], batch: int = 5000) -> int:
    """Give the orders stored before ``order_users`` existed their rows, read from their ``applied``.

    Runs once, inside the migration's transaction, in batches of orders so that a log of any size
    needs bounded memory. It decodes ``applied`` here rather than in SQL: a row altered into text that
    is not JSON would make a ``::jsonb`` cast fail the whole migration, while here it adds nothing
    (``verify`` reports it).
    """
    entered, after = 0, 0
    while True:
        cursor = await conn.execute(
            "SELECT order_id, applied FROM orders WHERE order_id > %s ORDER BY order_id LIMIT %s", (after, batch)
        )
        rows = await cursor.fetchall()
        if not rows:
            return entered
        users: list[str] = []
        ids: list[int] = []
        for order_id, applied in rows:
            for user in _users_of(applied):
                users.append(user)
                ids.append(int(order_id))
        if users:
            await conn.execute(
                "INSERT INTO order_users (user_name, order_id) SELECT * FROM unnest(%s::text[], %s::bigint[])"
                " ON CONFLICT DO NOTHING",
                (users, ids),
            )
        entered += len(users)
        after = int(rows[-1][0])


def _users_of(applied: object) -> dict[str, None]:
    """The users a stored ``applied`` column names (``[[user, action, position_strategy], ...]``), each
    once; nothing for a value that is not such an array."""
    try:
        items = orjson.loads(applied) if isinstance(applied, str | bytes) else None
    except orjson.JSONDecodeError:
        return {}
    if type(items) is not list:
        return {}
    return dict.fromkeys(item[0] for item in items if type(item) is list and item and type(item[0]) is str)


async def _record_scope(conn: psycopg.AsyncConnection[Any], scope: Scope, where: str) -> None:
    """Record ``scope``, refusing it while positions keyed by the other scope are open.

    The exclusive schema lock waits for every group transaction in flight, and the shared lock each
    of them takes makes them re-read the scope: no process decides with a stale one.
    """
    async with conn.transaction():
        await conn.execute("SELECT pg_advisory_xact_lock(%s, 0)", (LOCK_SPACE_SCHEMA,))
        held = await (await conn.execute("SELECT value FROM meta WHERE key = 'scope'")).fetchone()
        if held is not None and held[0] == scope.value:
            return
        if held is not None:
            count_row = await (await conn.execute("SELECT count(*) FROM positions")).fetchone()
            _refuse_other_scope(str(held[0]), int(count_row[0]) if count_row else 0, scope, where)
        await conn.execute(
            "INSERT INTO meta (key, value) VALUES ('scope', %s) ON CONFLICT (key) DO UPDATE SET value = excluded.value",
            (scope.value,),
        )


def _lock_keys(instruments: Sequence[str], client_order_ids: Sequence[str]) -> list[tuple[int, int]]:
    """The advisory locks of a group, in the one global order every transaction takes them in."""
    return sorted(
        {(LOCK_SPACE_INSTRUMENT, lock_key(i)) for i in instruments}
        | {(LOCK_SPACE_CLIENT_ORDER, lock_key(c)) for c in client_order_ids}
    )


def _refuse_other_scope(held: str, open_positions: int, scope: Scope, where: str) -> None:
    if open_positions:
        raise StartupError(
            f"the store {where} holds {open_positions} open positions keyed by scope '{held}'; "
            f"start with --scope {held} (or use another database for scope '{scope.value}')"
        )


def _control_change_row(change: ControlChange) -> tuple[object, ...]:
    setting = change.setting
    return (
        change.at,
        setting.level.value,
        setting.target,
        setting.state.value,
        change.by,
        change.fingerprint,
        change.reason,
        change.order_id,
    )


def _risk_change_row(change: RiskChange) -> tuple[object, ...]:
    return (change.at, change.kind, change.level, change.target, change.change, change.by, change.fingerprint)


def _with_caused(records: list[OrderRecord], caused: Sequence[tuple[Any, ...]]) -> list[OrderRecord]:
    """``records`` with the control change each caused attached (as :func:`~ordergate.domain.risk.fold` reads
    a breaker trip), from rows of :data:`_CAUSED`."""
    if not caused:
        return records
    by_order = {int(row[7]): (ControlChange.from_row(*row[:8]), str(row[8])) for row in caused}
    return [r._replace(control_change=by_order[r.order_id]) if r.order_id in by_order else r for r in records]


def _by_client_order_id(rows: Sequence[tuple[Any, ...]]) -> dict[str, OrderRecord]:
    found: dict[str, OrderRecord] = {}
    for row in rows:
        record = decode_record(*row)
        assert record.client_order_id is not None
        found[record.client_order_id] = record
    return found
