"""Fake stores for the simulation: the committed state of a real store, and its faults, on purpose.

:class:`Database` is what a real store holds on disk: the order log, the open positions, the client
order id index, the profiles, controls and risk policy documents (and the risk changes), and (for the
shared engine) the order id sequence and the advisory locks. It enforces what the real stores'
constraints enforce (one order per client order id, one open position per key, a close of an open
position only); a group that breaks one is refused as the real engine would refuse it, and the refusal
is recorded as an *integrity violation*: the service must never send one, so the simulation fails on it.

:class:`FakeEmbeddedStore` is the embedded engine as the :class:`~ordergate.service.sequencer.LocalSequencer`
sees it; :class:`FakeSharedStore` is one process's connection to the shared engine, as the
:class:`~ordergate.service.shared_sequencer.SharedSequencer` sees it. Every call takes a seeded
random delay (sometimes a long stall), and may fail by the :class:`Faults` in force: a commit refused,
a lookup that reads a snapshot taken when it began, a lost connection, a ``COMMIT`` in doubt (the
shared engine), a lock another process keeps for seconds. A simulated crash cancels whatever a
process was doing; what was committed stays committed.

The shared engine's controls and risk locks are reader-writer locks, as PostgreSQL's advisory locks in
their shared and exclusive modes: every group takes the controls lock shared and then the risk lock
before its other locks (shared, or exclusive with a :class:`~ordergate.store.base.RiskRead`); a control
change takes the controls lock exclusively (and applies its setting to the controls in force, as the
PostgreSQL store does), a risk change the risk lock; a flatten (:meth:`FakeSharedStore.lock_cluster`)
takes both exclusively.
"""

from __future__ import annotations

import asyncio
import contextlib
import random
from collections.abc import AsyncIterator, Callable, Sequence
from contextlib import asynccontextmanager
from dataclasses import dataclass, field

import orjson

from ordergate.domain.book import Position, opened_groups
from ordergate.domain.controls import NO_CONTROLS, Controls
from ordergate.domain.model import Scope
from ordergate.domain.record import OrderRecord
from ordergate.domain.risk import SQUARE_OFF, RiskChange
from ordergate.errors import StoreUnavailable
from ordergate.store.base import (
    CommitInDoubt,
    ControlChange,
    LockedGroup,
    RiskRead,
    Snapshot,
    StreamPage,
    StreamPosition,
)
from ordergate.store.changes import stored_key
from ordergate.store.sqlite.writer import CommitPath, WriterLink, WriterLost, WriterRefused

GROUP_LOCK_WAIT = 0.2
"""Seconds an impatient group waits for its locks (as the PostgreSQL store's ``GROUP_LOCK_WAIT``)."""
LOCK_TIMEOUT = 5.0
"""Seconds a patient group waits before its lock wait times out (the PostgreSQL ``lock_timeout``)."""


@dataclass
class Faults:
    """The faults in force, drawn from the run's seeded random generator."""

    rng: random.Random
    fail_rate: float = 0.0
    """Chance that a commit is refused (disk full, database down)."""
    doubt_rate: float = 0.0
    """Chance that a shared ``COMMIT`` is interrupted with its outcome unknown for a while."""
    stall_rate: float = 0.0
    """Chance that a call stalls for seconds instead of milliseconds."""
    writer_death_rate: float = 0.0
    """Chance that the embedded engine's writer process dies with a group in hand (before or after committing it)."""
    outage: bool = False
    """While set, every commit and lookup fails."""
    injected: int = 0
    """Faults injected so far."""

    def delay(self) -> float:
        if self.rng.random() < self.stall_rate:
            return self.rng.uniform(0.5, 8.0)
        return self.rng.uniform(0.0005, 0.004)

    def refuses(self) -> bool:
        if self.outage or self.rng.random() < self.fail_rate:
            self.injected += 1
            return True
        return False


@dataclass
class Database:
    scope: Scope
    orders: dict[int, OrderRecord] = field(default_factory=dict)
    by_client_order_id: dict[str, int] = field(default_factory=dict)
    positions: dict[tuple[str, str, str], Position] = field(default_factory=dict)
    profiles: dict[str, str] = field(default_factory=dict)
    controls_sets: dict[str, str] = field(default_factory=dict)
    controls: str | None = None
    control_changes: list[ControlChange] = field(default_factory=list)
    """Every control change, in the order stored: an admin's, and those orders caused (a breaker trip, a
    flatten's ``then``), stored in the transaction of their order."""
    risk_sets: dict[str, str] = field(default_factory=dict)
    risk_changes: list[RiskChange] = field(default_factory=list)
    next_order_id: int = 1
    violations: list[str] = field(default_factory=list)
    commit_of: dict[int, int] = field(default_factory=dict)
    """The transaction id each order was stored by (0 on the embedded engine): its stream position's first half."""
    running: dict[int, None] = field(default_factory=dict)
    next_xid: int = 1
    locks: dict[tuple[str, str], object] = field(default_factory=dict)
    readers: dict[str, dict[object, None]] = field(default_factory=lambda: {"controls": {}, "risk": {}})
    """The transactions holding the controls and the risk lock shared."""
    writers: dict[str, object | None] = field(default_factory=lambda: {"controls": None, "risk": None})
    """The transaction holding each of them exclusively."""
    released: asyncio.Event = field(default_factory=asyncio.Event)

    @property
    def last_order_id(self) -> int:
        return max(self.orders, default=0)

    def snapshot(self) -> Snapshot:
        last = self.last_order_id
        opened = opened_groups(self.positions.values())
        return Snapshot(opened, last, StreamPosition(0, last), len(self.positions), frozenset(self.profiles))

    def begin(self) -> int:
        xid = self.next_xid
        self.next_xid += 1
        self.running[xid] = None
        return xid

    def end(self, xid: int) -> None:
        self.running.pop(xid, None)

    @property
    def watermark(self) -> int:
        """No transaction can store an order below it any more (PostgreSQL's ``pg_snapshot_xmin``)."""
        return min(self.running, default=self.next_xid)

    def stream(self, after: StreamPosition, limit: int, shared: bool) -> StreamPage:
        below = self.watermark if shared else None
        rows = sorted(
            (StreamPosition(self.commit_of[order_id], order_id), record)
            for order_id, record in self.orders.items()
            if (below is None or self.commit_of[order_id] < below)
            and StreamPosition(self.commit_of[order_id], order_id) > after
        )[:limit]
        if len(rows) == limit:
            return StreamPage(rows, rows[-1][0], more=True)
        if below is None:
            return StreamPage(rows, rows[-1][0] if rows else after)
        return StreamPage(rows, max(after, StreamPosition(below, 0)))

    def apply(self, records: Sequence[OrderRecord], xid: int = 0) -> None:
        """Store a group atomically, or refuse all of it (recording the violation) as a constraint would."""
        positions = dict(self.positions)
        ids = dict(self.by_client_order_id)
        problem = None
        for record in records:
            if record.order_id in self.orders:
                problem = f"order id {record.order_id} is stored twice"
            elif record.client_order_id is not None and record.client_order_id in ids:
                used, earlier = record.client_order_id, ids[record.client_order_id]
                problem = f"client_order_id {used!r} is stored twice (orders {earlier} and {record.order_id})"
            if problem is not None:
                break
            if record.client_order_id is not None:
                ids[record.client_order_id] = record.order_id
            for closed in record.closed:
                key = stored_key(self.scope, closed)
                if positions.get(key) != closed:
                    problem = f"order {record.order_id} closes {key}, which is not open as {closed}"
                    break
                del positions[key]
            for opened in record.opened:
                key = stored_key(self.scope, opened)
                if key in positions:
                    problem = f"order {record.order_id} opens {key}, which is open"
                    break
                positions[key] = opened
            if problem is not None:
                break
        if problem is not None:
            self.violations.append(problem)
            raise StoreUnavailable(f"the store refused the group: {problem}")
        for record in records:
            self.orders[record.order_id] = record
            self.commit_of[record.order_id] = xid
            if record.control_change is not None:  # in the order's transaction, as the SQLite store writes it
                change, document = record.control_change
                self.controls_sets.setdefault(change.fingerprint, document)
                self.controls = document
                self.control_changes.append(change)
        self.positions, self.by_client_order_id = positions, ids
        self.next_order_id = max(self.next_order_id, self.last_order_id + 1)

    def find(self, client_order_id: str) -> OrderRecord | None:
        order_id = self.by_client_order_id.get(client_order_id)
        return self.orders[order_id] if order_id is not None else None

    # -- advisory locks (shared engine) -------------------------------------------------------------

    def try_lock(self, key: tuple[str, str], owner: object) -> bool:
        holder = self.locks.get(key)
        if holder is None or holder is owner:
            self.locks[key] = owner
            return True
        return False

    def unlock_all(self, owner: object) -> None:
        for key in [k for k, holder in self.locks.items() if holder is owner]:
            del self.locks[key]
        for name, readers in self.readers.items():
            readers.pop(owner, None)
            if self.writers[name] is owner:
                self.writers[name] = None
        self.released.set()
        self.released = asyncio.Event()

    def try_lock_rw(self, name: str, owner: object, exclusive: bool) -> bool:
        writer, readers = self.writers[name], self.readers[name]
        if writer is not None and writer is not owner:
            return False
        if exclusive:
            if any(reader is not owner for reader in readers):
                return False
            self.writers[name] = owner
        else:
            readers[owner] = None
        return True

    async def lock_risk(self, owner: object, exclusive: bool, wait: float, name: str = "risk") -> bool:
        """Take the risk lock (or the ``controls`` lock; shared or exclusive), waiting up to ``wait`` seconds;
        whether it was taken."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + wait
        while not self.try_lock_rw(name, owner, exclusive):
            left = deadline - loop.time()
            if left <= 1e-9:
                return False
            released = self.released
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(released.wait(), left)
        return True

    def risk_document(self) -> str | None:
        return self.risk_sets[self.risk_changes[-1].fingerprint] if self.risk_changes else None

    async def lock(self, keys: Sequence[tuple[str, str]], owner: object, wait: float) -> list[tuple[str, str]]:
        """Take ``keys`` in order, waiting up to ``wait`` seconds in all; the keys still busy after it."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + wait
        for key in keys:
            while not self.try_lock(key, owner):
                left = deadline - loop.time()
                if left <= 1e-9:
                    return [k for k in keys if self.locks.get(k) is not owner]
                released = self.released
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(released.wait(), left)
        return []

    async def hold_foreign(self, keys: Sequence[tuple[str, str]], seconds: float) -> None:
        """Another process's transaction keeps these locks for ``seconds`` (a stuck or slow transaction)."""
        owner = object()
        await self.lock(sorted(keys), owner, 3600.0)
        try:
            await asyncio.sleep(seconds)
        finally:
            self.unlock_all(owner)


class _Stored:
    """What both fakes share: profiles, controls, risk policies, and lookups that read a snapshot taken when
    they begin."""

    def __init__(self, db: Database, faults: Faults) -> None:
        self.db = db
        self.faults = faults

    @property
    def location(self) -> str:
        return "simulated store"

    async def _pause(self) -> None:
        await asyncio.sleep(self.faults.delay())

    async def open(self, scope: Scope) -> Snapshot:
        return self.db.snapshot()

    async def close(self) -> None:
        return None

    async def record_profiles(self, fingerprint: str, document: str) -> None:
        await self._pause()
        self.db.profiles.setdefault(fingerprint, document)

    async def record_control_change(self, change: ControlChange, document: str) -> str:
        await self._pause()
        self.db.controls_sets.setdefault(change.fingerprint, document)
        self.db.controls = document
        self.db.control_changes.append(change)
        return document

    async def current_controls(self) -> str | None:
        await self._pause()
        return self.db.controls

    async def control_changes(self, limit: int) -> list[ControlChange]:
        await self._pause()
        return self.db.control_changes[-limit:] if limit > 0 else []

    async def record_risk_change(self, change: RiskChange, document: str) -> str:
        await self._pause()
        owner = object()  # under the exclusive risk lock: after every group deciding under the old policy
        if not await self.db.lock_risk(owner, True, LOCK_TIMEOUT):
            raise StoreUnavailable("simulated: lock timeout waiting for the risk lock")
        try:
            self.db.risk_sets.setdefault(change.fingerprint, document)
            self.db.risk_changes.append(change)
        finally:
            self.db.unlock_all(owner)
        return document

    async def current_risk(self) -> str | None:
        await self._pause()
        return self.db.risk_document()

    async def risk_changes(self, limit: int, kind: str | None = None) -> list[RiskChange]:
        await self._pause()
        changes = [c for c in self.db.risk_changes if kind is None or c.kind == kind]
        return changes[-limit:] if limit > 0 else []

    async def recent_orders(self, since: str) -> list[OrderRecord]:
        if self.faults.outage:
            raise StoreUnavailable("simulated outage")
        seen = [self.db.orders[i] for i in sorted(self.db.orders) if self.db.orders[i].received_at >= since]
        await self._pause()
        return seen

    async def find_client_order(self, client_order_id: str) -> OrderRecord | None:
        if self.faults.outage:
            raise StoreUnavailable("simulated outage")
        seen = self.db.find(client_order_id)  # the read transaction's snapshot is taken now
        await self._pause()
        return seen

    async def find_client_orders(self, client_order_ids: Sequence[str]) -> dict[str, OrderRecord]:
        if self.faults.outage:
            raise StoreUnavailable("simulated outage")
        seen = {c: r for c in client_order_ids if (r := self.db.find(c)) is not None}
        await self._pause()
        return seen

    async def ping(self) -> None:
        if self.faults.outage:
            raise StoreUnavailable("simulated outage")

    shared = False

    async def stream_page(self, after: StreamPosition, limit: int) -> StreamPage:
        if self.faults.outage:
            raise StoreUnavailable("simulated outage")
        page = self.db.stream(after, limit, self.shared)  # the read's snapshot is taken now
        await self._pause()
        return page

    async def stream_head(self) -> StreamPosition:
        db = self.db
        if self.shared:
            return StreamPosition(db.watermark, 0)
        return StreamPosition(0, db.last_order_id)

    async def stream_position(self, order_id: int) -> StreamPosition | None:
        xid = self.db.commit_of.get(order_id)
        return StreamPosition(xid, order_id) if xid is not None else None


class FakeWriter:
    """The embedded engine's writer process, as :class:`~ordergate.store.sqlite.writer.CommitPath` sees it.

    It may refuse a group (disk full), or die with one in hand: before its commit point (nothing
    stored) or after it (all stored, never answered); it may also die while idle. Reading the store
    (``through``) fails while the store is down.
    """

    def __init__(self, store: FakeEmbeddedStore) -> None:
        self._store = store
        self.alive = True

    async def request(self, kind: str, payload: object) -> object:
        store, faults = self._store, self._store.faults
        if not self.alive:
            raise WriterLost("simulated: the writer is gone")
        await store._pause()
        if not self.alive:  # it died idle while the request was on its way
            raise WriterLost("simulated: the writer died")
        if kind == "fence":
            if faults.outage:
                raise WriterRefused("simulated outage")
            return None
        if kind == "through":
            if faults.outage:
                raise WriterRefused("simulated outage")
            return store.db.last_order_id
        assert kind == "tx"
        records: Sequence[OrderRecord] = payload  # type: ignore[assignment]
        dies = faults.rng.random() < faults.writer_death_rate
        after = dies and faults.rng.random() < 0.5
        if dies and not after:
            self._die(f"before storing orders {records[0].order_id}..{records[-1].order_id}")
        if faults.refuses():
            raise WriterRefused("simulated: the disk is full")
        try:
            store.db.apply(records)  # the commit point: from here on a crash loses nothing
        except StoreUnavailable as exc:
            raise WriterRefused(str(exc)) from None
        if after:
            self._die(f"after storing orders {records[0].order_id}..{records[-1].order_id}")
        await store._pause()  # the fsync returning
        if not self.alive:
            raise WriterLost("simulated: the writer died before it answered")
        return None

    def _die(self, when: str) -> None:
        self._store.faults.injected += 1
        self._store.note(f"the writer process dies {when}")
        self.alive = False
        raise WriterLost(f"simulated: the writer died {when}")

    async def close(self) -> None:
        self.alive = False


class FakeEmbeddedStore(_Stored):
    """Commits through the real :class:`~ordergate.store.sqlite.writer.CommitPath`, to a :class:`FakeWriter`."""

    def __init__(self, db: Database, faults: Faults, note: Callable[[str], None] = lambda line: None) -> None:
        super().__init__(db, faults)
        self.note = note
        self.writer: FakeWriter | None = None
        self.commits = CommitPath(self._spawn, _fence, _through, self.location)

    async def _spawn(self) -> WriterLink:
        await self._pause()
        if self.faults.outage:
            raise StoreUnavailable("simulated: the writer process cannot start")
        if self.writer is not None and self.faults.rng.random() < self.faults.writer_death_rate:
            self.writer.alive = False  # the old one may also die idle, unnoticed until used
        self.writer = FakeWriter(self)
        return self.writer

    async def commit(self, records: Sequence[OrderRecord]) -> None:
        await self.commits.commit(records, records[0].order_id, records[-1].order_id)

    async def ping(self) -> None:
        if self.commits.in_doubt is not None:
            raise StoreUnavailable(self.commits.in_doubt)
        await super().ping()


async def _fence(writer: WriterLink) -> None:
    await writer.request("fence", None)


async def _through(writer: WriterLink) -> int:
    through: int = await writer.request("through", None)
    return through


class _FakeGroup:
    def __init__(self, store: FakeSharedStore, locked: LockedGroup, xid: int, squared_off: str | None = None) -> None:
        self._store = store
        self.locked = locked
        self._xid = xid
        self.squared_off = squared_off

    async def reserve(self, instruments: Sequence[str], count: int) -> list[int]:
        """A flatten's order ids, drawn under its locks (:meth:`FakeSharedStore.lock_cluster`)."""
        await self._store._pause()
        if self._store.faults.refuses():
            raise StoreUnavailable("simulated: the connection was lost")
        db = self._store.db
        first = db.next_order_id
        db.next_order_id += count
        return list(range(first, first + count))

    async def commit(self, records: Sequence[OrderRecord], mark: tuple[RiskChange, str] | None = None) -> None:
        store, faults, db = self._store, self._store.faults, self._store.db
        await store._pause()
        if faults.refuses():
            raise StoreUnavailable("simulated: the connection was lost")

        def apply() -> None:
            db.apply(records, self._xid)
            if mark is not None:  # in the same transaction, as the PostgreSQL store writes it
                db.risk_sets.setdefault(mark[0].fingerprint, mark[1])
                db.risk_changes.append(mark[0])

        if faults.rng.random() < faults.doubt_rate:
            faults.injected += 1
            committed = faults.rng.random() < 0.5
            if committed:
                apply()
            known: bool | None = committed if faults.rng.random() < 0.9 else None
            wait = faults.rng.uniform(0.01, 3.0)

            async def outcome() -> bool | None:
                await asyncio.sleep(wait)
                return known

            raise CommitInDoubt("simulated: the connection broke during COMMIT", outcome)
        apply()
        await store._pause()


class FakeSharedStore(_Stored):
    """One process's view of the shared engine: group transactions under advisory locks."""

    shared = True

    async def commit(self, records: Sequence[OrderRecord]) -> None:
        raise StoreUnavailable("the shared store commits only inside a locked group transaction")

    async def record_control_change(self, change: ControlChange, document: str) -> str:
        """As the PostgreSQL store: under the exclusive controls lock (after every group deciding under the
        old controls), applied to the controls in force in the database, not to the caller's document."""
        await self._pause()
        db, owner = self.db, object()
        if not await db.lock_risk(owner, True, LOCK_TIMEOUT, name="controls"):
            raise StoreUnavailable("simulated: lock timeout waiting for the controls lock")
        try:
            base = Controls.from_document(orjson.loads(db.controls)) if db.controls else NO_CONTROLS
            controls = base.with_setting(change.setting)
            document = orjson.dumps(controls.to_document()).decode()
            db.controls_sets.setdefault(controls.fingerprint, document)
            db.controls = document
            db.control_changes.append(change._replace(fingerprint=controls.fingerprint))
        finally:
            db.unlock_all(owner)
        return document

    @asynccontextmanager
    async def lock_cluster(self, *, risk: RiskRead | None = None) -> AsyncIterator[_FakeGroup]:
        """Every process held still: the controls and the risk lock exclusively; every open position read."""
        db, owner = self.db, object()
        xid = db.begin()
        try:
            await self._pause()
            if self.faults.outage:
                raise StoreUnavailable("simulated outage")
            for name in ("controls", "risk"):
                if not await db.lock_risk(owner, True, LOCK_TIMEOUT, name=name):
                    raise StoreUnavailable(f"simulated: lock timeout waiting for the {name} lock")
            risk_orders, risk_counts = self._risk_reads(risk)
            marks = [c for c in db.risk_changes if c.kind == SQUARE_OFF]
            locked = LockedGroup(
                scope=db.scope,
                positions=list(db.positions.values()),
                stored={},
                order_ids=[],
                controls_read=True,
                controls=db.controls,
                risk_read=True,
                risk=db.risk_document(),
                risk_orders=risk_orders,
                risk_counts=risk_counts,
            )
            await self._pause()
            yield _FakeGroup(self, locked, xid, orjson.loads(marks[-1].change)["day"] if marks else None)
        finally:
            db.unlock_all(owner)
            db.end(xid)

    def _risk_reads(self, risk: RiskRead | None) -> tuple[list[OrderRecord], dict[tuple[str, str], int] | None]:
        """What a :class:`RiskRead` names: the orders after an id, or (to rebuild) those of the horizon and
        the open positions counted per (user, strategy)."""
        db = self.db
        if risk is None:
            return [], None
        if risk.after is not None:
            return [db.orders[i] for i in sorted(db.orders) if i > risk.after], None
        counts: dict[tuple[str, str], int] = {}
        for position in db.positions.values():
            pair = (position.user, position.strategy)
            counts[pair] = counts.get(pair, 0) + 1
        return [db.orders[i] for i in sorted(db.orders) if db.orders[i].received_at >= risk.since], counts

    @asynccontextmanager
    async def lock_group(
        self,
        instruments: Sequence[str],
        client_order_ids: Sequence[str],
        reserve: int,
        *,
        patient: bool = False,
        risk: RiskRead | None = None,
    ) -> AsyncIterator[_FakeGroup]:
        db, owner = self.db, object()
        xid = db.begin()
        # the risk lock, then instruments, then client order ids: the PostgreSQL store's global lock order
        keys = sorted({("1", i) for i in instruments} | {("2", c) for c in client_order_ids})
        try:
            await self._pause()
            if self.faults.outage:
                raise StoreUnavailable("simulated outage")
            if not await db.lock_risk(owner, False, LOCK_TIMEOUT, name="controls"):
                raise StoreUnavailable("simulated: lock timeout waiting for the controls lock")
            if not await db.lock_risk(owner, risk is not None, LOCK_TIMEOUT):
                raise StoreUnavailable("simulated: lock timeout waiting for the risk lock")
            busy = await db.lock(keys, owner, LOCK_TIMEOUT if patient else GROUP_LOCK_WAIT)
            if busy and patient:
                kind = "instrument" if busy[0][0] == "1" else "client_order_id"
                raise StoreUnavailable(f"simulated: lock timeout waiting for {kind} {busy[0][1]}")
            if busy:  # as the real store: begin again and take at once whatever is free
                db.unlock_all(owner)
                if not await db.lock_risk(owner, False, LOCK_TIMEOUT, name="controls"):
                    raise StoreUnavailable("simulated: lock timeout waiting for the controls lock")
                if not await db.lock_risk(owner, risk is not None, LOCK_TIMEOUT):
                    raise StoreUnavailable("simulated: lock timeout waiting for the risk lock")
                busy = [k for k in keys if not db.try_lock(k, owner)]
            busy_instruments = frozenset(name for kind, name in busy if kind == "1")
            busy_ids = frozenset(name for kind, name in busy if kind == "2")
            held = [i for i in instruments if i not in busy_instruments]
            stored = {c: r for c in client_order_ids if c not in busy_ids and (r := db.find(c)) is not None}
            risk_orders, risk_counts = self._risk_reads(risk)
            first = db.next_order_id
            db.next_order_id += reserve
            locked = LockedGroup(
                scope=db.scope,
                positions=[p for p in db.positions.values() if p.instrument in held],
                stored=stored,
                order_ids=list(range(first, first + reserve)),
                controls_read=True,
                controls=db.controls,
                busy_instruments=busy_instruments,
                busy_client_order_ids=busy_ids,
                risk_read=True,
                risk=db.risk_document(),
                risk_orders=risk_orders,
                risk_counts=risk_counts,
            )
            await self._pause()
            yield _FakeGroup(self, locked, xid)
        finally:
            db.unlock_all(owner)
            db.end(xid)
