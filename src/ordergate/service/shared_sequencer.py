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
own group transactions. Every stored decision is taken under the locks, never from that view.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Iterable, Sequence

import orjson

from ordergate.domain.book import Book, Opened, Position
from ordergate.domain.controls import NO_CONTROLS, ControlLevel, Controls, ControlState
from ordergate.domain.model import Decision, Order, Origin, Scope
from ordergate.domain.record import DIRECT, Entry, OrderRecord, decided_record
from ordergate.domain.registry import Registry
from ordergate.domain.risk import NO_RISK, RiskPolicy
from ordergate.domain.rules import decide, decide_and_apply
from ordergate.errors import ClientOrderIdConflict, OrdergateError, StoreUnavailable
from ordergate.service.clock import Clock, utc_now
from ordergate.service.committer import Committer, Result
from ordergate.service.idempotency import IdempotencyWindow, outcome_after
from ordergate.service.sequencing import MAX_GROUP, CommitListener, FlattenRefused, Outcome, Ticket
from ordergate.store.base import CommitInDoubt, SharedStore

log = logging.getLogger(__name__)

CONTROLS_REFRESH = 1.0
"""Seconds between two reads of the controls in force while this process has no order to decide."""


class SharedSequencer:
    """The :class:`~ordergate.service.sequencing.Sequencing` of a store shared by several processes."""

    cascade_failures = False
    decides_risk = False

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
            self, self._window, max_group=max_group, when_idle=self._refresh_controls, idle_every=controls_refresh
        )
        self._lanes: dict[str, list[Ticket]] = {}  # busy instrument -> tickets waiting for its lock, in order
        self._controls = NO_CONTROLS
        self._restricting: Controls | None = None  # the controls when they restrict anything, else None
        self._controls_document: str | None = None  # the document ``_controls`` was last read from
        self._controls_epoch = 0  # counts changes of ``_controls``, so that a slow idle read never wins

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
        return NO_RISK

    async def use_risk(self, policy: RiskPolicy) -> None:
        """Nothing: limits are not decided across processes in this release (:attr:`decides_risk`), and the
        operations never put a policy in force here."""

    async def flatten(
        self,
        level: ControlLevel,
        target: str | None,
        then: ControlState | None,
        by: str | None,
        origin: Origin = Origin.FLATTEN,
    ) -> tuple[list[OrderRecord], Controls]:
        """Refused: the positions of a scope span instruments whose locks other processes take one by one."""
        raise FlattenRefused(
            "flatten needs the embedded SQLite store in this release; on a shared PostgreSQL store halt with "
            "PUT /v1/controls and close positions with SELL orders"
        )

    def check(self, order: Order, entry: Entry = DIRECT) -> Decision:
        """The decision ``order`` would get against this process's view of the book; nothing is stored."""
        book = self._view.get(order.instrument) or Book(self._scope)
        return decide(order, self._registry, book, self._restricting)

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
        """
        instruments = sorted({t.order.instrument for t in tickets})
        client_order_ids = sorted({t.client_order_id for t in tickets if t.client_order_id is not None})
        results: list[Result] = [None] * len(tickets)
        busy: list[Ticket] = []
        records: list[OrderRecord] = []
        async with self._shared.lock_group(instruments, client_order_ids, len(tickets), patient=patient) as tx:
            locked = tx.locked
            if locked.scope is not None and locked.scope is not self._scope:
                raise StoreUnavailable(
                    f"the database is now kept in scope '{locked.scope}' by another process; restart this "
                    f"gateway with --scope {locked.scope}",
                    retry_after=30,
                )
            if locked.controls_read:
                self._adopt_controls(locked.controls)
            held: dict[str, list[Position]] = {i: [] for i in instruments if i not in locked.busy_instruments}
            for position in locked.positions:
                held[position.instrument].append(position)
            books = {instrument: Book(self._scope, positions) for instrument, positions in held.items()}
            fresh_ids = iter(locked.order_ids)
            registry, controls = self._registry, self._restricting
            for index, ticket in enumerate(tickets):
                order, client_order_id = ticket.order, ticket.client_order_id
                book = books.get(order.instrument)
                if book is None or client_order_id in locked.busy_client_order_ids:
                    busy.append(ticket)
                    continue
                stored = locked.stored.get(client_order_id) if client_order_id is not None else None
                if stored is not None:
                    results[index] = (
                        Outcome(stored, True) if stored.order == order else ClientOrderIdConflict.of(stored)
                    )
                    continue
                order_id = next(fresh_ids)
                at = self._clock()
                decision, undo = decide_and_apply(order, registry, book, controls, order_id, at)
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
                )
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

    # -- controls -------------------------------------------------------------------------------

    def _adopt_controls(self, document: str | None) -> None:
        """Use the controls of ``document`` as read from the store (``None``: none were ever set)."""
        if document is None:
            if self._controls != NO_CONTROLS:
                self.use_controls(NO_CONTROLS)
            return
        if document != self._controls_document:
            self.use_controls(Controls.from_document(orjson.loads(document)))
            self._controls_document = document

    async def _refresh_controls(self) -> None:
        """Read the controls in force while idle (they only feed ``check()`` and ``controls``)."""
        epoch = self._controls_epoch
        try:
            document = await self._shared.current_controls()
        except StoreUnavailable as exc:
            log.debug("could not read the controls in force: %s", exc)
            return
        if epoch == self._controls_epoch:  # nothing newer was put in force while it was read
            self._adopt_controls(document)
