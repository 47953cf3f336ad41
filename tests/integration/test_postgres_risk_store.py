"""Pre-trade risk in the PostgreSQL store (SPEC section 10): what each order says of how it came in, the
risk policies with their history, the orders the risk state is rebuilt from, and schema version 8.

An order's ``origin``, ``actor``, ``risk_fingerprint`` and ``signal_time`` come back from every read of
the order (by id, by client order id, inside a locked group, the listings, the event stream, the log
reader), and its hash-chain link covers them exactly as the canonical form says; an order without them
keeps the form every hash stored before them has. The records here are built by hand: the store never
decides, it keeps what it is given.
"""

from __future__ import annotations

import asyncio
import hashlib
from collections.abc import AsyncIterator, Iterator, Sequence
from datetime import timedelta
from typing import Any

import orjson
import psycopg
import pytest

from ordergate.domain.book import Position
from ordergate.domain.chain import GENESIS_HASH, Chains, chain_per_instrument
from ordergate.domain.model import Action, Decision, Effect, Order, Origin, Reason, Refusal, Scope, Side, Status
from ordergate.domain.record import OrderRecord
from ordergate.domain.risk import NO_RISK, RiskChange, RiskLevel, RiskPolicy, TradingSession
from ordergate.errors import StoreUnavailable
from ordergate.store.base import OrderQuery, SharedStore, StreamPosition
from ordergate.store.horizon import orders_since_sql, search_floor
from ordergate.store.postgres import PostgresLogReader, PostgresStore
from ordergate.store.postgres.schema import ENTRY_VERSION, LATEST_VERSION
from tests.postgres import fresh_database

pytestmark = pytest.mark.anyio

AT = "2026-03-02T09:15:00.000000Z"
SIGNAL = "2026-03-02T09:14:59.250Z"


@pytest.fixture
def database() -> Iterator[str]:
    with fresh_database() as url:
        yield url


@pytest.fixture
async def store(database: str) -> AsyncIterator[PostgresStore]:
    opened = PostgresStore(database)
    await opened.open(Scope.ACCOUNT)
    try:
        yield opened
    finally:
        await opened.close()


def rows(url: str, sql: str) -> list[tuple[Any, ...]]:
    with psycopg.connect(url, autocommit=True) as conn:
        cursor = conn.execute(sql)
        return cursor.fetchall() if cursor.description is not None else []


def buy(
    order_id: int,
    instrument: str = "ACC",
    *,
    received_at: str = AT,
    client_order_id: str | None = None,
    origin: Origin = Origin.STRATEGY,
    actor: str | None = None,
    risk_fingerprint: str | None = None,
    signal_time: str | None = None,
) -> OrderRecord:
    """Ann's BUY of ``instrument`` through S1, opening her position (Bob is refused)."""
    return OrderRecord(
        order_id=order_id,
        received_at=received_at,
        order=Order("S1", instrument, Side.BUY),
        decision=Decision(
            Status.ACCEPTED,
            None,
            (Effect("Ann", Action.OPENED, "S1"),),
            (Refusal("Bob", Reason.POSITION_LIMIT),),
        ),
        scope=Scope.ACCOUNT,
        profile_fingerprint="profiles-1",
        client_order_id=client_order_id,
        opened=(Position("Ann", "S1", instrument, order_id, received_at),),
        controls_fingerprint="controls-1",
        origin=origin,
        actor=actor,
        risk_fingerprint=risk_fingerprint,
        signal_time=signal_time,
    )


def sell(order_id: int, opened: OrderRecord, *, received_at: str = AT, origin: Origin = Origin.FLATTEN) -> OrderRecord:
    """The flatten of Ann's position that ``opened`` opened, sent by the gateway itself."""
    return OrderRecord(
        order_id=order_id,
        received_at=received_at,
        order=Order("S1", opened.order.instrument, Side.SELL),
        decision=Decision(Status.ACCEPTED, None, (Effect("Ann", Action.CLOSED, "S1"),), ()),
        scope=Scope.ACCOUNT,
        profile_fingerprint="profiles-1",
        client_order_id=None,
        closed=opened.opened,
        origin=origin,
        actor="risk",
        risk_fingerprint="risk-2",
    )


def as_read(record: OrderRecord, chain_hash: str | None = None) -> OrderRecord:
    """What a read gives back of a committed record: no positions (the row does not keep them)."""
    return record._replace(opened=(), closed=(), chain_hash=chain_hash)


def spelled_out_link(previous: str, record: OrderRecord) -> str:
    """The chain link of SPEC section 9, written out here rather than taken from the domain: SHA-256 over
    the previous hash, a newline and the order's compact JSON array, with the four entry fields after
    ``client_order_id`` only when the order has any of them."""
    d = record.decision
    entry = (
        [record.origin.value, record.actor, record.risk_fingerprint, record.signal_time]
        if (record.origin, record.actor, record.risk_fingerprint, record.signal_time)
        != (Origin.STRATEGY, None, None, None)
        else []
    )
    content = [
        record.order_id,
        record.received_at,
        record.order.strategy,
        record.order.instrument,
        record.order.side.value,
        d.status.value,
        None if d.reason is None else d.reason.value,
        record.scope.value,
        record.profile_fingerprint,
        record.controls_fingerprint,
        record.client_order_id,
        *entry,
        [[e.user, e.action.value, e.position_strategy] for e in d.applied],
        [[r.user, r.reason.value] for r in d.rejected_for],
    ]
    return hashlib.sha256(previous.encode() + b"\n" + orjson.dumps(content)).hexdigest()


async def commit(store: PostgresStore, make: Sequence[Any]) -> list[OrderRecord]:
    """Commit one group: ``make`` holds a function of the order id it is given for each order."""
    instruments = sorted({f(0).order.instrument for f in make})
    async with store.lock_group(instruments, [], len(make)) as group:
        records = [f(order_id) for f, order_id in zip(make, group.locked.order_ids, strict=True)]
        await group.commit(records)
    return records


def read_log(url: str) -> list[OrderRecord]:
    reader = PostgresLogReader(url)
    try:
        logged = list(reader.iter_orders())
    finally:
        reader.close()
    assert all(isinstance(item, OrderRecord) for item in logged), logged
    return [item for item in logged if isinstance(item, OrderRecord)]


def links_by_instrument(records: Sequence[OrderRecord]) -> list[str]:
    """Each order's link on its instrument's chain, in order_id order, by the spelled-out form."""
    heads: dict[str, str] = {}
    links = []
    for record in sorted(records, key=lambda r: r.order_id):
        instrument = record.order.instrument
        heads[instrument] = spelled_out_link(heads.get(instrument, GENESIS_HASH), record)
        links.append(heads[instrument])
    return links


async def test_the_postgresql_store_is_a_shared_store_with_the_risk_methods(store: PostgresStore) -> None:
    shared: SharedStore = store  # mypy checks the protocol, the call checks the methods answer
    assert await shared.current_risk() is None
    assert await shared.risk_changes(10) == []
    assert await shared.recent_orders(AT) == []


async def test_an_order_says_how_it_came_in_through_every_read_and_its_link_covers_it(
    store: PostgresStore, database: str
) -> None:
    [first, plain] = await commit(
        store,
        [
            lambda i: buy(
                i,
                client_order_id="c-1",
                actor="desk-1",
                risk_fingerprint="risk-1",
                signal_time=SIGNAL,
            ),
            lambda i: buy(i, "TCS"),
        ],
    )
    [flatten] = await commit(store, [lambda i: sell(i, first)])
    written = [first, plain, flatten]
    assert [r.has_entry_fields for r in written] == [True, False, True]
    assert rows(database, "SELECT order_id, origin, actor, risk_fingerprint, signal_time FROM orders ORDER BY 1") == [
        (1, "strategy", "desk-1", "risk-1", SIGNAL),
        (2, "strategy", None, None, None),
        (3, "flatten", "risk", "risk-2", None),
    ]

    for record in written:
        assert await store.get_order(record.order_id) == as_read(record)
    assert await store.find_client_order("c-1") == as_read(first)
    assert await store.find_client_orders(["c-1", "c-none"]) == {"c-1": as_read(first)}
    async with store.lock_group(["ACC"], ["c-1"], 1) as group:
        assert group.locked.stored == {"c-1": as_read(first)}
    for query, expected in [
        (OrderQuery(), written),
        (OrderQuery(instrument="ACC"), [first, flatten]),
        (OrderQuery(strategy="S1", side=Side.SELL), [flatten]),
        (OrderQuery(user="Ann"), written),
        (OrderQuery(after=1, limit=1), [plain]),
    ]:
        page = await store.list_orders(query)
        assert page.items == [as_read(r) for r in expected], query

    links = links_by_instrument(written)
    logged = read_log(database)
    assert logged == [as_read(r, link) for r, link in zip(written, links, strict=True)]
    checked = Chains(chain_per_instrument)  # the log reader's chain policy checks every stored link
    for record in logged:
        assert record.chain_hash == checked.expected(record)
        checked.advance(record, record.chain_hash)
    # the entry fields are in what the link covers: the same order without them links otherwise ...
    without = first._replace(origin=Origin.STRATEGY, actor=None, risk_fingerprint=None, signal_time=None)
    assert spelled_out_link(GENESIS_HASH, without) != links[0]
    # ... and the order without any hashes in the form of every hash stored before they existed
    assert links[1] == spelled_out_link(GENESIS_HASH, plain)

    assert [record for _, record in await streamed(store, len(logged))] == logged


async def streamed(store: PostgresStore, count: int) -> list[Any]:
    """The stream's first ``count`` rows, once its watermark has passed them: the watermark is the oldest
    transaction running anywhere in the cluster, so another database's writer (another test) may hold it
    back for a moment."""
    for _ in range(200):
        rows = (await store.stream_page(StreamPosition(0, 0), 100)).rows
        if len(rows) >= count:
            return list(rows)
        await asyncio.sleep(0.05)
    raise AssertionError(f"the stream gave {len(rows)} of {count} rows in 10 s")


def limits_change(base: RiskPolicy, level: str, target: str | None, patch: dict[str, Any]) -> RiskChange:
    """The change an admin makes through a process that believes ``base`` in force (as ``Operations`` builds it)."""
    built = base.with_limits(RiskLevel(level), target, patch)
    return RiskChange(AT, "limits", level, target, orjson.dumps(patch).decode(), "admin", built.fingerprint)


def session_change(base: RiskPolicy, session: dict[str, Any] | None) -> RiskChange:
    built = base.with_session(TradingSession.from_document(session) if session is not None else None)
    return RiskChange(AT, "session", None, None, orjson.dumps(session).decode(), "ops", built.fingerprint)


def policy_of(document: str | None) -> RiskPolicy:
    return RiskPolicy.from_document(orjson.loads(document)) if document is not None else NO_RISK


async def test_risk_changes_are_kept_in_order_and_the_last_ones_policy_is_in_force(
    store: PostgresStore, database: str
) -> None:
    session = {"timezone": "Asia/Kolkata", "open": "09:15", "close": "15:30"}
    policy = NO_RISK
    made: list[RiskChange] = []
    for build in (
        lambda p: limits_change(p, "global", None, {"max_open_positions": 3}),
        lambda p: limits_change(p, "strategy", "S1", {"cooldown_seconds": 60}),
        lambda p: session_change(p, session),
        lambda p: session_change(p, None),  # back to the policy of the second change
    ):
        change = build(policy)
        stored = await store.record_risk_change(change, "ignored: the store applies the change itself")
        policy = policy_of(stored)
        assert policy.fingerprint == change.fingerprint  # built on what was in force: the same policy
        assert await store.current_risk() == stored
        made.append(change)
    assert await store.risk_changes(10) == made
    assert await store.risk_changes(2) == made[2:]
    assert policy.strategies["S1"].cooldown_seconds == 60
    assert policy.session is None
    assert len(rows(database, "SELECT fingerprint FROM risk_sets")) == 3

    reader = PostgresLogReader(database)
    try:
        assert reader.risk(made[2].fingerprint) is not None
        assert policy_of(reader.risk(made[2].fingerprint)).session is not None
        assert reader.risk("fp-unknown") is None
    finally:
        reader.close()

    with pytest.raises(StoreUnavailable):  # what no ordergate writes is refused, and nothing is kept
        await store.record_risk_change(RiskChange(AT, "margin", None, None, "{}", None, "fp-4"), "{}")
    assert len(await store.risk_changes(10)) == len(made)


async def test_a_change_built_on_a_stale_policy_is_applied_to_the_policy_in_force(store: PostgresStore) -> None:
    """Two admins, two processes, each believing no policy in force: the second change keeps the first."""
    await store.record_risk_change(limits_change(NO_RISK, "global", None, {"max_open_positions": 3}), "")
    stale = limits_change(NO_RISK, "strategy", "S1", {"cooldown_seconds": 60})
    stored = policy_of(await store.record_risk_change(stale, ""))
    assert stored.gateway.max_open_positions == 3  # not undone
    assert stored.strategies["S1"].cooldown_seconds == 60
    (first, second) = await store.risk_changes(10)
    assert second.fingerprint == stored.fingerprint != stale.fingerprint  # the history names what is in force
    assert first.fingerprint != second.fingerprint


async def test_risk_changes_from_two_processes_at_once_are_all_kept(store: PostgresStore, database: str) -> None:
    other = PostgresStore(database)
    await other.open(Scope.ACCOUNT)
    try:
        made = [limits_change(NO_RISK, "user", f"U{n}", {"max_opens_per_day": 1}) for n in range(20)]
        await asyncio.gather(*((store if n % 2 else other).record_risk_change(c, "") for n, c in enumerate(made)))
    finally:
        await other.close()
    kept = await store.risk_changes(100)
    assert sorted(c.target or "" for c in kept) == sorted(c.target or "" for c in made)
    in_force = policy_of(await store.current_risk())
    assert sorted(in_force.users) == sorted(f"U{n}" for n in range(20))  # every change holds: none undid another
    assert kept[-1].fingerprint == in_force.fingerprint


async def test_recent_orders_are_exactly_the_committed_orders_received_at_or_after_the_time(
    store: PostgresStore,
) -> None:
    times = ["2026-03-02T09:14:59.999999Z", "2026-03-02T09:15:00.000000Z", "2026-03-01T15:30:00.000000Z"]
    made = [
        lambda i, n=n, t=t: buy(i, f"I{n}", received_at=t, actor="desk" if n else None) for n, t in enumerate(times * 2)
    ]
    records = await commit(store, made)
    assert await store.recent_orders(AT) == [as_read(r) for r in records if r.received_at >= AT]
    assert [r.order_id for r in await store.recent_orders(AT)] == [2, 5]
    assert await store.recent_orders("2026-03-01T00:00:00.000000Z") == [as_read(r) for r in records]
    assert await store.recent_orders("2026-03-02T09:15:00.000001Z") == []


async def test_a_store_at_the_previous_version_migrates_and_its_orders_read_as_sent_by_a_strategy(
    database: str,
) -> None:
    store = PostgresStore(database)
    await store.open(Scope.ACCOUNT)
    try:
        old = await commit(store, [lambda i: buy(i), lambda i: buy(i, "TCS")])
    finally:
        await store.close()
    # back to version 7 as its release left it: none of the columns and tables version 8 added
    rows(database, "ALTER TABLE orders DROP COLUMN origin, DROP COLUMN actor, DROP COLUMN risk_fingerprint,"
         " DROP COLUMN signal_time")  # fmt: skip
    rows(database, "DROP TABLE risk_changes, risk_sets")
    rows(database, f"DELETE FROM schema_migrations WHERE version >= {ENTRY_VERSION}")
    chain = rows(database, "SELECT order_id, chain_hash FROM orders ORDER BY order_id")
    links = links_by_instrument(old)
    assert [h for _, h in chain] == links

    # the log reader reads a version-7 store as well: every order as sent by a strategy, no risk policy
    assert read_log(database) == [as_read(r, link) for r, link in zip(old, links, strict=True)]
    reader = PostgresLogReader(database)
    try:
        assert reader.risk("fp-1") is None
    finally:
        reader.close()

    store = PostgresStore(database)
    await store.open(Scope.ACCOUNT)  # migrates
    try:
        assert rows(database, "SELECT max(version) FROM schema_migrations") == [(LATEST_VERSION,)]
        for record in old:
            read = await store.get_order(record.order_id)
            assert read is not None
            assert (read.origin, read.actor, read.risk_fingerprint, read.signal_time) == (
                Origin.STRATEGY,
                None,
                None,
                None,
            )
            assert read == as_read(record)
        assert rows(database, "SELECT count(*) FROM orders WHERE origin IS NOT NULL") == [(0,)]
        [flatten] = await commit(store, [lambda i: sell(i, old[0])])  # links on to the old order's head
        change = limits_change(NO_RISK, "global", None, {"max_open_positions": 1})
        await store.record_risk_change(change, "")
        assert await store.risk_changes(5) == [change]
    finally:
        await store.close()
    assert rows(database, "SELECT order_id, chain_hash FROM orders WHERE order_id <= 2 ORDER BY 1") == chain
    written = [*old, flatten]
    assert read_log(database) == [
        as_read(r, link) for r, link in zip(written, links_by_instrument(written), strict=True)
    ]


def test_the_horizon_read_is_exact_and_searches_by_the_primary_key_on_postgresql(database: str) -> None:
    """The statement of :mod:`ordergate.store.horizon` as PostgreSQL runs it (on a table of its own)."""
    from tests.unit.test_horizon import START, log_of, stamp

    rows_in = log_of([(1 + n % 3, (n * 37) % 900, (n * 53) % 3599) for n in range(400)])
    with psycopg.connect(database, autocommit=True) as conn:
        conn.execute("CREATE TEMP TABLE orders (order_id bigint PRIMARY KEY, received_at text NOT NULL)")
        with conn.cursor() as cursor:
            cursor.executemany("INSERT INTO orders VALUES (%s, %s)", rows_in)
        conn.execute("ANALYZE orders")
        for offset in (-60, 0, 3_600, 50_000, 90_000, 200_000):
            since = stamp(START + timedelta(seconds=offset))
            floor = search_floor(since)
            read = conn.execute(orders_since_sql("order_id, received_at", "%s"), (floor, floor, since)).fetchall()
            assert read == [row for row in rows_in if row[1] >= since]
        conn.execute("SET enable_seqscan = off")  # (a table this small could be scanned just as well)
        plan = conn.execute(
            f"EXPLAIN {orders_since_sql('order_id, received_at', '%s')}", (floor, floor, since)
        ).fetchall()
    assert any("Index" in line for (line,) in plan), plan
