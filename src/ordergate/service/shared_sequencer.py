"""The shared sequencer: linearizable decisions when several gateway processes share one PostgreSQL database.

With one process, the in-memory book is the truth and :class:`~ordergate.service.sequencer.LocalSequencer`
decides against it. With several, another process may have opened or closed any position a moment
ago, so no process's memory is authoritative: the database is. This sequencer therefore decides
*inside* the transaction that stores the decisions. Orders queue as they arrive; the committer core
(:mod:`ordergate.service.committer`) takes whatever has queued (a *group*) and this engine, in one
transaction:

1. takes a transaction-scoped advisory lock per instrument of the group and per client order id,
   all in one global sorted order (so two processes can never wait for each other in a cycle);
2. reads the open positions of those instruments and the orders already stored under those client
   order ids, and draws fresh order ids from the ``order_ids`` sequence;
3. decides each order in arrival order with the same rules as ``decide()`` against a
   :class:`~ordergate.domain.book.Book` built from those rows, applying each decision to it as it is
   made (``decide_and_apply()``) so that the next order of the group sees it, and numbers the orders
   in that order;
4. writes the orders, positions and trades, and commits. Only then is anyone answered.

Why this is linearizable: positions in different instruments never interact (in either scope a
position is keyed by its instrument), and every order on an instrument is decided while its
transaction holds that instrument's lock, against rows no other transaction can change until it
commits. So for each instrument the transactions form a serial order, and because order ids are
drawn from the sequence *inside* the locked section, order_id follows that order: replaying the log
by order_id reproduces every decision (``ordergate verify --db URL`` checks exactly that). Ids are
unique and increase in decision order; a failed transaction leaves a gap (a sequence never goes back).

A busy instrument never holds up the others. The group transaction waits only briefly for its
locks; an instrument whose lock another process keeps longer (a stuck or slow transaction) is
reported busy by the store, the group goes on without its orders, and those orders move to a *lane*
of their own for that instrument, which waits patiently (up to the lock timeout) and is answered
503 alone if the lock never comes. Orders arriving for an instrument while its lane is open join
the lane, so each instrument's orders keep their arrival order.

Pre-trade risk (SPEC section 10): the risk policy in force lives in the database too, and a limit is
never exceeded whatever the interleaving of the processes. Every group transaction takes the *risk
lock* before any instrument lock (:mod:`ordergate.store.postgres.store`): shared while this process
believes no policy restricts anything, exclusive while it believes one does; under it the group
reads the policy in force. A group that holds the lock only shared but reads a restricting policy is
rolled back and done again with the lock exclusive (and the belief changed). A change of the policy
takes the lock exclusively too, so it waits for every group deciding under the old one. Hence, once
a restricting policy is in force, the groups of every process run one at a time, and since order
ids are drawn inside the lock, they increase in that serial order: folding the log by order_id (as
``verify`` does) gives exactly the risk state each group decided against.

Each process keeps that state (:class:`~ordergate.domain.risk.RiskState`) in memory, with the last
order id it accounts for. Under the exclusive lock the group brings it up to date: it reads the
orders committed since with a greater order_id (every order committed after this process's last
group has one), folds them in, decides its own orders against it (folding each in as it is decided,
as the local sequencer does), and remembers the greatest order id it drew. The first time, after a
commit failed or is in doubt, after this process saw no policy in force, or when the state is older
than the risk horizon, the group rebuilds it instead: the open positions counted per (user, strategy)
plus the orders of the last :data:`~ordergate.domain.risk.HORIZON` seconds (from the first of them,
found by a binary search on order ids: :mod:`ordergate.store.horizon`), under the lock. Within the
process, groups that decide under limits also take turns (a lane and the main group could otherwise both
use the state), which costs nothing more: the lock would serialise them anyway.

The cost: with a restricting policy in force, the groups of *all* processes are serialised on one
lock, so throughput is that of one group transaction at a time across the cluster (group commit
still batches the orders each process has queued), and a rebuild (a process's first group under a
policy) holds every process up for as long as it reads the horizon. Without a policy nothing of this
is paid but one shared lock and one indexed read per group. A process also rebuilds its state outside
any group, under the same lock, when limits come into force (through it, or as its idle refresh
reads them), so that ``check()`` counts at once and its first group under them need not.

The circuit breaker: a group deciding under a policy with a breaker holds the risk lock exclusively
(and the controls lock shared, as every group), so when an order's rejection trips its strategy's
breaker, the halt is built on the controls the group read under those locks (no one can change them
before it commits: an admin's change waits for the controls lock exclusively, another group's trip for
the risk lock), stored in the order's transaction, and decided under by the group's later orders; every
group of every process that locks after it reads it. Folding a tripping order read back from the log
(with the control change it caused) empties the strategy's window, as it did where it was decided.

Flatten and the square-off: the positions of a scope span instruments whose locks groups take one by
one, so a flatten is a transaction of its own (:meth:`~ordergate.store.base.SharedStore.lock_cluster`)
that takes the controls and risk locks exclusively. Every group takes the risk lock before any
instrument lock, so once it holds it no group anywhere is deciding: it reads every open position,
draws the flatten's order ids, brings the risk state up to date as a group would, and commits the
orders with ``then`` set by the last of them. The square-off is such a flatten that first reads the
day's mark under those locks and writes it in the same transaction: once a day in the whole cluster.

Trading controls: the controls in force live in the database, not in any one process. Each group
transaction reads them in step 2, after taking a shared lock on them (a change of controls takes it
exclusively, see :mod:`ordergate.store.postgres.store`), and decides every order of the group under
them, recording their fingerprint with each order. Between groups, an idle process re-reads them
every :data:`CONTROLS_REFRESH` seconds, which only keeps ``check()`` and ``GET /v1/controls`` current.

Client order ids: the lock on the id serialises two processes that receive the same id at once; the
second one finds the first one's order in step 2 and answers it as a replay (same order) or a 409
(another order). Within one process, a repeat joins the queued order, and another order under the
same id waits for that order's outcome (a 409 only once it is committed). A unique index on
``client_order_id`` backs this up.

Failure: if any step fails (database down, connection killed, commit refused), the transaction is
rolled back and the orders of the group are answered 503; nothing of them exists anywhere, since
the only state is the database's. If the connection breaks while ``COMMIT`` is on its way, nobody can
know at once whether it committed: the group's callers wait until the database says so
(:class:`~ordergate.store.base.CommitInDoubt`), while later groups go on, which is safe because they
read whatever happened under the same locks.

``check()`` cannot wait for the database (the API calls it synchronously), so it decides against
this process's view of the book: the positions read from the database at start and in each of its
own group transactions, and under limits this process's last risk state. Every stored decision is
taken under the locks, never from that view.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncIterator, Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import date

import orjson

from ordergate.collector import held_for
from ordergate.domain.book import Book, Opened, Position
from ordergate.domain.controls import (
    FLATTEN,
    NO_CONTROLS,
    RISK_ACTOR,
    ControlChange,
    ControlLevel,
    Controls,
    ControlSetting,
    ControlState,
)
from ordergate.domain.flatten import flatten_orders, positions_in_scope
from ordergate.domain.model import Decision, Order, Origin, Scope
from ordergate.domain.record import ANONYMOUS, DIRECT, Entry, OrderRecord, decided_record
from ordergate.domain.registry import Registry
from ordergate.domain.risk import (
    HORIZON,
    NO_RISK,
    RiskContext,
    RiskPolicy,
    RiskState,
    epoch_of,
    fold,
    horizon_start,
    square_off_mark,
    tripped,
)
from ordergate.domain.rules import decide, decide_and_apply
from ordergate.errors import ClientOrderIdConflict, OrdergateError, StoreUnavailable
from ordergate.service.clock import Clock, utc_now
from ordergate.service.committer import Committer, Result
from ordergate.service.idempotency import IdempotencyWindow, outcome_after
from ordergate.service.sequencing import MAX_GROUP, CommitListener, Outcome, Ticket
from ordergate.store.base import ClusterGroup, CommitInDoubt, LockedGroup, OrderGroup, RiskRead, SharedStore

log = logging.getLogger(__name__)

CONTROLS_REFRESH = 1.0
"""Seconds between two reads of the controls and the risk policy in force while this process has no order
to decide."""


@dataclass(slots=True)
class _Counted:
    """This process's risk state and how far into the log it accounts for."""

    state: RiskState
    through: int
    """Every committed order with an order_id up to this one is folded in, and no other."""
    at: float
    """When (the clock, seconds since the epoch) it was last brought up to date."""


class _Retry:
    """A group that read a restricting policy under the shared risk lock: to be done again exclusively."""


_RETRY = _Retry()


class SharedSequencer:
    """The :class:`~ordergate.service.sequencing.Sequencing` of a store shared by several processes."""

    cascade_failures = False
    decides_risk = True

    def __init__(
        self,
        store: SharedStore,
        registry: Registry,
        scope: Scope,
        opened: Iterable[Opened] = (),
        *,
        clock: Clock = utc_now,
        max_group: int = MAX_GROUP,
        controls_refresh: float = CONTROLS_REFRESH,
    ) -> None:
        self._shared = store
        self._registry = registry
        self._scope = scope
        self._clock = clock
        by_instrument: dict[str, list[Opened]] = {}
        for group in opened:
            by_instrument.setdefault(group.instrument, []).append(group)
        self._view = {instrument: Book.restore(scope, held) for instrument, held in by_instrument.items()}
        self._window = IdempotencyWindow()
        self._core = Committer(
            self, self._window, max_group=max_group, when_idle=self._refresh_in_force, idle_every=controls_refresh
        )
        self._lanes: dict[str, list[Ticket]] = {}  # busy instrument -> tickets waiting for its lock, in order
        self._controls = NO_CONTROLS
        self._restricting: Controls | None = None  # the controls when they restrict anything, else None
        self._controls_document: str | None = None  # the document ``_controls`` was last read from
        self._controls_epoch = 0  # counts changes of ``_controls``, so that a slow idle read never wins
        self._risk = NO_RISK
        self._limits: RiskPolicy | None = None  # the policy believed in force when it restricts anything
        self._risk_document: str | None = None  # the document ``_risk`` was last read from
        self._risk_epoch = 0  # counts changes of ``_risk``, as ``_controls_epoch``
        self._counted: _Counted | None = None  # the risk state, kept while limits are believed in force
        self._risk_turn = asyncio.Lock()  # held by the group deciding under limits (the state is its alone)

    @property
    def registry(self) -> Registry:
        return self._registry

    @property
    def controls(self) -> Controls:
        return self._controls

    @property
    def book(self) -> Book:
        """This process's view of the open positions (see the module docstring), as one book."""
        return Book(self._scope, (p for view in self._view.values() for p in view))

    @property
    def tracked_client_order_ids(self) -> int:
        return len(self._window)

    def failing(self, within: float = 5.0) -> bool:
        return self._core.failing(within)

    def use_controls(self, controls: Controls) -> None:
        """Show ``controls`` as this process's controls (stored durably by the caller).

        Orders are decided under the controls each group transaction reads from the database; this
        only sets what ``check()`` and ``controls`` use until the next read.
        """
        self._controls = controls
        self._restricting = controls if controls.restricts_anything else None
        self._controls_document = None
        self._controls_epoch += 1

    @contextlib.asynccontextmanager
    async def quiesced(self) -> AsyncIterator[None]:
        """Nothing to wait for: this sequencer changes no control by itself, and the store applies a
        change to the controls in force under its lock."""
        yield

    def use_registry(self, registry: Registry) -> None:
        self._registry = registry

    def on_commit(self, listener: CommitListener) -> None:
        self._core.on_commit(listener)

    def start(self) -> None:
        self._core.start()

    async def stop(self) -> None:
        await self._core.stop()

    # -- deciding -------------------------------------------------------------------------------

    @property
    def risk(self) -> RiskPolicy:
        return self._risk

    async def use_risk(self, policy: RiskPolicy) -> None:
        """Believe ``policy`` in force (stored durably by the caller): the next group takes the risk lock
        exclusively if it restricts anything, shared if not. Limits coming into force where this process
        had no risk state rebuild it now (:meth:`_rebuild`), so that ``check()`` counts at once; should
        that fail, the next group rebuilds it (every group brings it up to date under the lock anyway)."""
        self._believe(policy)
        await self._rebuild(quiet=False)

    def _believe(self, policy: RiskPolicy) -> None:
        """Believe ``policy`` in force. Letting go of limits lets go of the risk state (a later policy
        rebuilds it, as the local sequencer does)."""
        self._risk = policy
        self._limits = policy if policy.restricts_anything else None
        if self._limits is None:
            self._counted = None
        self._risk_document = None
        self._risk_epoch += 1

    async def flatten(
        self,
        level: ControlLevel,
        target: str | None,
        then: ControlState | None,
        by: str | None,
        origin: Origin = Origin.FLATTEN,
    ) -> tuple[list[OrderRecord], Controls]:
        """Close every open position in the scope in one transaction that holds every process still (see the
        module docstring), setting ``then`` in it."""
        done = await self._flatten(level, target, then, Entry(by or ANONYMOUS, None, origin), None)
        assert done is not None  # (only a square-off finds its work done)
        return done

    async def square_off(self, day: date) -> list[OrderRecord] | None:
        """As the protocol says: the day's mark is read and written inside the flatten's transaction, under
        the locks every process takes, so the square-off runs once a day in the whole cluster."""
        done = await self._flatten(ControlLevel.GLOBAL, None, None, Entry(RISK_ACTOR, None, Origin.SQUARE_OFF), day)
        return done[0] if done is not None else None

    async def _flatten(
        self, level: ControlLevel, target: str | None, then: ControlState | None, entry: Entry, day: date | None
    ) -> tuple[list[OrderRecord], Controls] | None:
        async with self._risk_turn:  # the risk state is this transaction's alone meanwhile
            read, counted = self._risk_read() if self._limits is not None else (None, None)
            try:
                async with self._shared.lock_cluster(risk=read) as tx:
                    done = await self._flatten_in(tx, level, target, then, entry, day, counted)
            except BaseException:  # failed or cancelled: the state may count orders that do not exist
                self._forget(counted)
                raise
        if done is None:
            return None
        records, controls, books = done
        self._view.update(books)
        if controls is not self._controls:
            self.use_controls(controls)
        self._core.publish(list(records))
        return records, self._controls

    async def _flatten_in(
        self,
        tx: ClusterGroup,
        level: ControlLevel,
        target: str | None,
        then: ControlState | None,
        entry: Entry,
        day: date | None,
        counted: _Counted | None,
    ) -> tuple[list[OrderRecord], Controls, dict[str, Book]] | None:
        """Decide the flatten against every open position read under the locks, and commit it (with the
        square-off's mark for ``day``); ``None`` when that day's square-off is stored already."""
        locked = tx.locked
        self._adopt_in_force(locked)
        if day is not None and tx.squared_off is not None and date.fromisoformat(tx.squared_off) >= day:
            return None
        book = Book(self._scope, locked.positions)
        flattened = flatten_orders(positions_in_scope(book, level, target))
        controls = self._controls
        if not flattened and day is None:
            return [], controls, {}  # nothing to close (the caller sets ``then`` on its own)
        instruments = sorted({order.instrument for order, _ in flattened})
        order_ids = await tx.reserve(instruments, len(flattened))
        limits = self._limits
        state = None
        if limits is not None and order_ids:
            state = self._brought_up_to_date(locked, counted, through=order_ids[-1]).state
        at = self._clock()
        restricting = self._restricting
        records: list[OrderRecord] = []
        for (order, decision), order_id in zip(flattened, order_ids, strict=True):
            changes = book.apply(order, decision.applied, order_id, at)
            records.append(
                decided_record(
                    order_id,
                    at,
                    order,
                    decision,
                    self._scope,
                    self._registry.fingerprint,
                    None,
                    changes,
                    restricting.fingerprint if restricting is not None else None,
                    entry,
                    limits.fingerprint if limits is not None else None,
                )
            )
            if state is not None:
                state.record(order, decision.status, None, decision.applied, epoch_of(at), entry.origin)
        if then is not None and records:  # set in the transaction of the orders, by the last of them
            setting = ControlSetting(level, target, then)
            controls = controls.with_setting(setting)
            change = ControlChange(at, setting, entry.actor, controls.fingerprint, FLATTEN, records[-1].order_id)
            records[-1] = records[-1]._replace(control_change=(change, orjson.dumps(controls.to_document()).decode()))
        mark = None
        if day is not None:
            policy = self._risk
            mark = (
                square_off_mark(at, day, order_ids, policy.fingerprint),
                orjson.dumps(policy.to_document()).decode(),
            )
        try:
            await tx.commit(records, mark)
        except CommitInDoubt as doubt:
            self._core.note_failure()
            committed = await doubt.outcome()
            if committed is None:
                raise StoreUnavailable(
                    f"{doubt}; the database stayed unreachable, so whether the flatten was stored is unknown: "
                    "GET /v1/positions shows what is open, and flattening again closes only that",
                    retry_after=5,
                ) from None
            if not committed:
                raise StoreUnavailable(f"{doubt}; nothing of the flatten was stored", retry_after=5) from None
        books = {i: Book(self._scope, (p for p in book if p.instrument == i)) for i in instruments}
        return records, controls, books

    def check(self, order: Order, entry: Entry = DIRECT) -> Decision:
        """The decision ``order`` would get against this process's view of the book and its last risk
        state; nothing is stored."""
        book = self._view.get(order.instrument) or Book(self._scope)
        counted, limits = self._counted, self._limits
        risk = None
        if limits is not None and counted is not None:
            risk = _context(limits, counted.state, self._clock(), entry)
        return decide(order, self._registry, book, self._restricting, risk)

    async def submit(self, order: Order, client_order_id: str | None = None, entry: Entry = DIRECT) -> Outcome:
        while True:
            known = self._window.get(client_order_id) if client_order_id is not None else None
            if known is None:
                return await asyncio.shield(self._enqueue(order, client_order_id, entry).future)
            outcome = await outcome_after(known, order)
            if outcome is not None:
                return outcome

    async def submit_many(
        self, items: Sequence[tuple[Order, str | None]], entries: Sequence[Entry] | None = None
    ) -> list[Outcome | OrdergateError]:
        """Queue a batch in its order (without yielding, so it lands in as few groups as possible)."""
        how = entries if entries is not None else [DIRECT] * len(items)
        waits: list[tuple[Ticket, bool] | tuple[Order, str, Entry]] = []
        for (order, client_order_id), entry in zip(items, how, strict=True):
            known = self._window.get(client_order_id) if client_order_id is not None else None
            if known is None:
                waits.append((self._enqueue(order, client_order_id, entry), False))
            elif known.order == order:
                waits.append((known, True))
            else:
                assert client_order_id is not None
                waits.append((order, client_order_id, entry))  # waits for that id's outcome, as submit does
        results: list[Outcome | OrdergateError] = []
        for wait in waits:
            try:
                if isinstance(wait[0], Ticket):
                    ticket, joined = wait
                    outcome = await asyncio.shield(ticket.future)
                    results.append(Outcome(outcome.record, True) if joined else outcome)
                else:
                    order, client_order_id, entry = wait
                    results.append(await self.submit(order, client_order_id, entry))
            except (StoreUnavailable, ClientOrderIdConflict) as exc:
                results.append(exc)
        return results

    def _enqueue(self, order: Order, client_order_id: str | None, entry: Entry) -> Ticket:
        ticket = Ticket(order, client_order_id, entry=entry)
        if client_order_id is not None:
            self._window.hold(ticket)
        self._core.enqueue(ticket)
        return ticket

    # -- the group engine ------------------------------------------------------------------------

    async def commit(self, group: list[Ticket]) -> Sequence[Result]:
        """Decide and store the group in one transaction; orders on busy instruments go to their lanes."""
        results: list[Result] = [None] * len(group)
        now: list[int] = []
        for index, ticket in enumerate(group):
            lane = self._lanes.get(ticket.order.instrument)
            if lane is None:
                now.append(index)
            else:
                lane.append(ticket)  # its instrument's lane is open: keep the instrument's arrival order
        if not now:
            return results
        tickets = [group[i] for i in now]
        try:
            decided, busy = await self._decide_and_commit(tickets, patient=False)
        except StoreUnavailable as exc:  # fail this transaction's tickets only: the lanes keep theirs
            log.error("a group of %d orders was not stored: %s", len(tickets), exc)
            self._core.fail(tickets, exc)
            return results
        for ticket in busy:
            self._open_lane(ticket)
        if decided is not None:  # else in doubt: answered once the store knows
            for index, result in zip(now, decided, strict=True):
                results[index] = result
        return results

    def discard(self, victims: Sequence[Ticket]) -> None:
        """Nothing to take back: the shared engine keeps no uncommitted state."""

    def _open_lane(self, ticket: Ticket) -> None:
        instrument = ticket.order.instrument
        lane = self._lanes.get(instrument)
        if lane is not None:
            lane.append(ticket)
            return
        self._lanes[instrument] = [ticket]
        self._core.track(self._drain_lane(instrument), name=f"lane-{instrument}")

    async def _drain_lane(self, instrument: str) -> None:
        """Decide the lane's orders, waiting for the instrument's lock as long as the store allows."""
        lane = self._lanes[instrument]
        try:
            while lane:
                tickets = lane[:]
                del lane[:]
                try:
                    decided, busy = await self._decide_and_commit(tickets, patient=True)
                except StoreUnavailable as exc:
                    log.error("%d orders on %s were not stored: %s", len(tickets), instrument, exc)
                    self._core.fail(tickets, exc)
                    continue
                except Exception as exc:  # a bug: still never leave a caller without an answer
                    log.exception("a lane transaction failed unexpectedly")
                    self._core.fail(tickets, StoreUnavailable(f"commit failed: {type(exc).__name__}"))
                    continue
                if decided is not None:
                    self._core.answer(tickets, decided)
                lane[:0] = busy  # a patient store reports nothing busy; keep them first if one does
        finally:
            del self._lanes[instrument]

    async def _decide_and_commit(
        self, tickets: list[Ticket], *, patient: bool
    ) -> tuple[list[Result] | None, list[Ticket]]:
        """One transaction: lock, read, decide in arrival order, write, commit (module docstring).

        Returns one result per ticket (``None`` for those left for a lane) and the tickets whose
        instrument or client order id was busy; ``None`` instead of results when the commit is in
        doubt (its tickets are then answered by a background task, once the store knows).

        Under the shared risk lock first, unless limits are believed in force; a group that finds
        limits in force that way is done again under the exclusive lock (after its rollback, so this
        process never holds the risk lock while it waits for its turn).
        """
        while True:
            if self._limits is None:
                done = await self._transaction(tickets, patient=patient, exclusive=False)
            else:
                async with self._risk_turn:
                    done = await self._transaction(tickets, patient=patient, exclusive=True)
            if not isinstance(done, _Retry):
                return done

    def _risk_read(self) -> tuple[RiskRead, _Counted | None]:
        """What the next exclusive group reads to bring the risk state up to date, and the state it brings:
        the orders since, or a rebuild when there is no state or it is older than the horizon (then a
        rebuild reads less)."""
        now = self._clock()
        counted = self._counted
        if counted is not None and epoch_of(now) - counted.at > HORIZON:
            counted = self._counted = None
        return RiskRead(counted.through if counted is not None else None, horizon_start(now)), counted

    async def _transaction(
        self, tickets: list[Ticket], *, patient: bool, exclusive: bool
    ) -> tuple[list[Result] | None, list[Ticket]] | _Retry:
        instruments = sorted({t.order.instrument for t in tickets})
        client_order_ids = sorted({t.client_order_id for t in tickets if t.client_order_id is not None})
        read, counted = self._risk_read() if exclusive else (None, None)
        async with self._shared.lock_group(
            instruments, client_order_ids, len(tickets), patient=patient, risk=read
        ) as tx:
            locked = tx.locked
            self._adopt_in_force(locked)
            limits = self._limits if locked.risk_read else None
            if limits is not None and not exclusive:
                return _RETRY  # leaving the transaction rolls it back: nothing was decided
            if limits is None:
                return await self._decide_in(tx, tickets, instruments, None)
            try:
                counted = self._brought_up_to_date(locked, counted, through=max(locked.order_ids))
                done = await self._decide_in(tx, tickets, instruments, (limits, counted))
            except BaseException:  # failed or cancelled: the state may count orders that do not exist
                self._forget(counted)
                raise
            if done[0] is None:  # in doubt: likewise
                self._forget(counted)
            return done

    def _adopt_in_force(self, locked: LockedGroup) -> None:
        """Refuse a database kept in the other scope; believe the controls and risk policy read under the locks."""
        if locked.scope is not None and locked.scope is not self._scope:
            raise StoreUnavailable(
                f"the database is now kept in scope '{locked.scope}' by another process; restart this "
                f"gateway with --scope {locked.scope}",
                retry_after=30,
            )
        if locked.controls_read:
            self._adopt_controls(locked.controls)
        if locked.risk_read:
            self._adopt_risk(locked.risk)

    async def _rebuild(self, *, quiet: bool) -> None:
        """Rebuild the risk state, if limits are believed in force and there is none, outside any group.

        A transaction of no order: it takes the exclusive risk lock, reads what a rebuild reads, draws one
        order id (the state accounts for every order up to it: later ones all have greater ids) and
        rolls back, leaving that id unused, as a failed group does. ``quiet``: a failure is logged at
        debug level only (the idle refresh tries again every second).
        """
        if not self._lacks_state() or self._risk_turn.locked():  # a group is deciding under limits: it rebuilds
            return
        async with self._risk_turn:
            if not self._lacks_state():
                return
            read, counted = self._risk_read()
            try:
                async with self._shared.lock_group([], [], 1, risk=read) as tx:
                    locked = tx.locked
                    if locked.risk_read:
                        self._adopt_risk(locked.risk)
                        if self._limits is not None:
                            self._brought_up_to_date(locked, counted, through=max(locked.order_ids))
            except StoreUnavailable as exc:
                log.log(
                    logging.DEBUG if quiet else logging.WARNING,
                    "could not rebuild the risk state now (the next group will): %s",
                    exc,
                )

    def _lacks_state(self) -> bool:
        """Whether limits are believed in force but this process has no risk state to count with."""
        return self._limits is not None and self._counted is None

    def _forget(self, counted: _Counted | None) -> None:
        """Drop the risk state (unless already replaced): the next exclusive group rebuilds it."""
        if counted is not None and self._counted is counted:
            self._counted = None

    def _brought_up_to_date(self, locked: LockedGroup, counted: _Counted | None, *, through: int) -> _Counted:
        """The risk state ``counted`` (the one the group's :class:`RiskRead` was asked for, even if
        dropped meanwhile: it still accounts for the log up to its ``through``), with what the group read
        under the exclusive lock folded in; or rebuilt from what it read. ``through``: an order id drawn
        under that lock (every order committed after this group will have a greater one)."""
        epoch = epoch_of(self._clock())
        if counted is None:
            if locked.risk_counts is None:
                raise StoreUnavailable("the store did not read the open positions the risk state is rebuilt from")
            counted = _Counted(_rebuilt(locked.risk_counts, locked.risk_orders), through, epoch)
        else:
            for record in locked.risk_orders:
                fold(counted.state, record)
            counted.through, counted.at = through, epoch
        self._counted = counted
        return counted

    async def _decide_in(
        self,
        tx: OrderGroup,
        tickets: list[Ticket],
        instruments: list[str],
        risk: tuple[RiskPolicy, _Counted] | None,
    ) -> tuple[list[Result] | None, list[Ticket]]:
        """Decide the group in arrival order against what ``tx`` read, and commit it."""
        locked = tx.locked
        results: list[Result] = [None] * len(tickets)
        busy: list[Ticket] = []
        records: list[OrderRecord] = []
        held: dict[str, list[Position]] = {i: [] for i in instruments if i not in locked.busy_instruments}
        for position in locked.positions:
            held[position.instrument].append(position)
        books = {instrument: Book(self._scope, positions) for instrument, positions in held.items()}
        fresh_ids = iter(locked.order_ids)
        registry, controls, in_force = self._registry, self._restricting, self._controls
        for index, ticket in enumerate(tickets):
            order, client_order_id = ticket.order, ticket.client_order_id
            book = books.get(order.instrument)
            if book is None or client_order_id in locked.busy_client_order_ids:
                busy.append(ticket)
                continue
            stored = locked.stored.get(client_order_id) if client_order_id is not None else None
            if stored is not None:
                results[index] = Outcome(stored, True) if stored.order == order else ClientOrderIdConflict.of(stored)
                continue
            order_id = next(fresh_ids)
            at = self._clock()
            context = _context(risk[0], risk[1].state, at, ticket.entry) if risk is not None else None
            with held_for(len(registry.subscribers(order.strategy))):
                decision, undo = decide_and_apply(order, registry, book, controls, order_id, at, context)
                record = decided_record(
                    order_id,
                    at,
                    order,
                    decision,
                    self._scope,
                    registry.fingerprint,
                    client_order_id,
                    undo,
                    controls.fingerprint if controls is not None else None,
                    ticket.entry,
                    context.policy.fingerprint if context is not None else None,
                )
            if context is not None:
                folded = context.state.record(
                    order, decision.status, decision.reason, decision.applied, context.at, ticket.entry.origin
                )
                trip = tripped(record, context, in_force, folded)
                if trip is not None:  # the strategy halts in this transaction: the next order sees it
                    in_force, change = trip
                    controls = in_force
                    record = record._replace(control_change=(change, orjson.dumps(in_force.to_document()).decode()))
            records.append(record)
            results[index] = Outcome(record, False)
        if records:
            try:
                await tx.commit(records)
            except CommitInDoubt as doubt:
                seen = {instrument: self._view.get(instrument) for instrument in books}
                self._core.note_failure()
                answerable = [(t, r) for t, r in zip(tickets, results, strict=True) if r is not None]
                self._core.track(self._settle(doubt, answerable, books, seen), name="settle-in-doubt")
                return None, busy
        self._view.update(books)  # committed: this is now what the database holds for these instruments
        if in_force is not self._controls:
            self.use_controls(in_force)  # a breaker tripped (every process reads it under its next locks)
        return results, busy

    async def _settle(
        self,
        doubt: CommitInDoubt,
        answerable: Sequence[tuple[Ticket, Result]],
        books: dict[str, Book],
        seen: dict[str, Book | None],
    ) -> None:
        """Answer a group whose ``COMMIT`` was interrupted, once the store knows whether it committed."""
        tickets = [ticket for ticket, _ in answerable]
        committed = await doubt.outcome()
        if committed:
            for instrument, book in books.items():
                if self._view.get(instrument) is seen.get(instrument):  # no later group refreshed it
                    self._view[instrument] = book
            self._core.answer(tickets, [result for _, result in answerable])
        elif committed is None:
            self._core.fail(
                tickets,
                StoreUnavailable(
                    f"{doubt}; the database stayed unreachable, so whether the order was stored is unknown: "
                    "retry with the same client_order_id to learn it",
                    retry_after=5,
                ),
            )
        else:
            self._core.fail(tickets, doubt)

    # -- controls and risk ------------------------------------------------------------------------

    def _adopt_risk(self, document: str | None) -> None:
        """Believe the risk policy of ``document`` in force as read from the store (``None``: none was ever set)."""
        if document is None:
            if self._risk != NO_RISK:
                self._believe(NO_RISK)
            return
        if document != self._risk_document:
            self._believe(RiskPolicy.from_document(orjson.loads(document)))
            self._risk_document = document

    def _adopt_controls(self, document: str | None) -> None:
        """Use the controls of ``document`` as read from the store (``None``: none were ever set)."""
        if document is None:
            if self._controls != NO_CONTROLS:
                self.use_controls(NO_CONTROLS)
            return
        if document != self._controls_document:
            self.use_controls(Controls.from_document(orjson.loads(document)))
            self._controls_document = document

    async def _refresh_in_force(self) -> None:
        """Read the controls and the risk policy in force while idle (they feed ``check()``, ``controls`` and
        ``risk``, and which risk lock the next group takes; every group reads them again under its locks)."""
        epoch = self._controls_epoch
        try:
            document = await self._shared.current_controls()
        except StoreUnavailable as exc:
            log.debug("could not read the controls in force: %s", exc)
            return
        if epoch == self._controls_epoch:  # nothing newer was put in force while it was read
            self._adopt_controls(document)
        epoch = self._risk_epoch
        try:
            document = await self._shared.current_risk()
        except StoreUnavailable as exc:
            log.debug("could not read the risk policy in force: %s", exc)
            return
        if epoch == self._risk_epoch:
            self._adopt_risk(document)
        await self._rebuild(quiet=True)  # limits another process put in force: ``check()`` counts at once


def _context(policy: RiskPolicy, state: RiskState, at: str, entry: Entry) -> RiskContext:
    """The risk step's input for an order received ``at`` as ``entry`` says (as the local sequencer builds it)."""
    signal_at = epoch_of(entry.signal_time) if entry.signal_time is not None else None
    return RiskContext(policy, state, epoch_of(at), signal_at, entry.origin)


def _rebuilt(counts: Mapping[tuple[str, str], int], recent: Iterable[OrderRecord]) -> RiskState:
    """:func:`~ordergate.domain.risk.rebuilt` from the open positions counted per (user, strategy that
    opened them) instead of a book: no process holds the whole book here."""
    state = RiskState()
    for (user, strategy), count in counts.items():
        state.open_by_user_strategy[(user, strategy)] = count
        state.open_by_user[user] = state.open_by_user.get(user, 0) + count
    for record in recent:
        fold(state, record, count_positions=False)
    return state
