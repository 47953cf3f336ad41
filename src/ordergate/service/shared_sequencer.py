"""The shared sequencer: linearizable decisions when several gateway processes share one PostgreSQL database.

With one process, the in-memory book is the truth and :class:`~ordergate.service.sequencer.Sequencer`
decides against it. With several, another process may have opened or closed any position a moment
ago, so no process's memory is authoritative: the database is. This sequencer therefore decides
*inside* the transaction that stores the decisions. Orders queue as they arrive; one committer task
takes whatever has queued (a *group*, as with SQLite) and, in one transaction:

1. takes a transaction-scoped advisory lock per instrument of the group and per client order id,
   all in one global sorted order (so two processes can never wait for each other in a cycle);
2. reads the open positions of those instruments and the orders already stored under those client
   order ids, and draws fresh order ids from the ``order_ids`` sequence;
3. decides each order in arrival order with the same pure ``decide()`` against a
   :class:`~ordergate.domain.book.Book` built from those rows, applying each decision to it so that
   the next order of the group sees it, and numbers the orders in that order;
4. writes the orders, positions and trades, and commits. Only then is anyone answered.

Why this is linearizable: positions in different instruments never interact (in either scope a
position is keyed by its instrument), and every order on an instrument is decided while its
transaction holds that instrument's lock, against rows no other transaction can change until it
commits. So for each instrument the transactions form a serial order, and because order ids are
drawn from the sequence *inside* the locked section, order_id follows that order: replaying the log
by order_id reproduces every decision (``ordergate verify --db URL`` checks exactly that). Ids are
unique and increase in decision order; a failed transaction leaves a gap (a sequence never goes back).

Trading controls: the controls in force live in the database, not in any one process. Each group
transaction reads them in step 2, after taking a shared lock on them (a change of controls takes it
exclusively, see :mod:`ordergate.store.postgres`), and decides every order of the group under them,
recording their fingerprint with each order. So a halt set through any process holds for every
order, sent to any process, decided after the halt was answered. Between groups, an idle
process re-reads them every :data:`CONTROLS_REFRESH` seconds, which only keeps ``check()`` and
``GET /v1/controls`` current; no stored decision depends on that view.

Client order ids: the lock on the id serialises two processes that receive the same id at once; the
second one finds the first one's order in step 2 and answers it as a replay (same order) or a 409
(another order). A unique index on ``client_order_id`` backs this up.

Failure: if any step fails (database down, connection killed, commit refused), the transaction is
rolled back and every order of the group is answered 503; nothing of them exists anywhere, since
the only state is the database's. The pool reconnects by itself when the database is back. If the
connection breaks while ``COMMIT`` is on its way, nobody can know at once whether it committed: the
group's callers wait until the database says so (:class:`~ordergate.store.base.CommitInDoubt`),
while later groups go on, which is safe because they read whatever happened under the same locks.

``check()`` cannot wait for the database (the API calls it synchronously), so it decides against
this process's view of the book: the positions read from the database at start and in each of its
own group transactions. With one process that view is exact; with several it may lag what the
other processes did since this one last traded the instrument. Every stored decision is taken
under the locks, never from that view.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass

import orjson

from ordergate.domain.book import Book, Position
from ordergate.domain.controls import NO_CONTROLS, Controls
from ordergate.domain.model import Decision, Order, Scope
from ordergate.domain.record import OrderRecord
from ordergate.domain.registry import Registry
from ordergate.domain.rules import decide
from ordergate.errors import ClientOrderIdConflict, OrdergateError, StoreUnavailable
from ordergate.service.clock import Clock, utc_now
from ordergate.service.sequencer import MAX_GROUP, CommitListener, Outcome, Sequencer
from ordergate.store.base import CommitInDoubt, ControlStore, SharedStore

log = logging.getLogger(__name__)

StoreErrorListener = Callable[[str], None]

CONTROLS_REFRESH = 1.0
"""Seconds between two reads of the controls in force while this process has no order to decide."""


@dataclass(slots=True)
class _Waiting:
    order: Order
    client_order_id: str | None
    future: asyncio.Future[Outcome]


class SharedSequencer(Sequencer):
    """A :class:`Sequencer` whose decisions are taken inside locked database transactions.

    It subclasses :class:`Sequencer` only so that the entrypoints, typed against it, take either
    one; it shares no state and no code with its base and overrides every public method.
    """

    def __init__(
        self,
        store: SharedStore,
        registry: Registry,
        scope: Scope,
        positions: Iterable[Position] = (),
        *,
        clock: Clock = utc_now,
        max_group: int = MAX_GROUP,
        on_store_error: StoreErrorListener | None = None,
    ) -> None:
        self._shared = store
        self._registry = registry
        self._scope = scope
        self._clock = clock
        self._max_group = max_group
        self._on_store_error = on_store_error
        by_instrument: dict[str, list[Position]] = {}
        for position in positions:
            by_instrument.setdefault(position.instrument, []).append(position)
        self._view = {instrument: Book(scope, held) for instrument, held in by_instrument.items()}
        self._arrivals: list[_Waiting] = []
        self._in_flight: dict[str, _Waiting] = {}
        self._wake = asyncio.Event()
        self._idle = asyncio.Event()
        self._idle.set()
        self._committer: asyncio.Task[None] | None = None
        self._settling: set[asyncio.Task[None]] = set()
        self._listeners: list[CommitListener] = []
        self._failed_at: float | None = None
        self._controls = NO_CONTROLS
        self._restricting: Controls | None = None  # the controls when they restrict anything, else None
        self._controls_document: str | None = None  # the document ``_controls`` was last read from
        self._controls_epoch = 0  # counts changes of ``_controls``, so that a slow idle read never wins

    def failing(self, within: float = 5.0) -> bool:
        """Whether the last group failed less than ``within`` seconds ago (readiness turns 503)."""
        return self._failed_at is not None and time.monotonic() - self._failed_at < within

    @property
    def registry(self) -> Registry:
        return self._registry

    @property
    def book(self) -> Book:
        """This process's view of the open positions (see the module docstring), as one book."""
        return Book(self._scope, (p for view in self._view.values() for p in view))

    @property
    def tracked_client_order_ids(self) -> int:
        """Client order ids held in memory: those of orders queued or in a group transaction."""
        return len(self._in_flight)

    @property
    def controls(self) -> Controls:
        return self._controls

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
        """Decide every later order of this process against ``registry`` (profiles reloaded and recorded)."""
        self._registry = registry

    def on_commit(self, listener: CommitListener) -> None:
        """Call ``listener`` with each group this process committed, in order_id order."""
        self._listeners.append(listener)

    def start(self) -> None:
        self._committer = asyncio.get_running_loop().create_task(self._commit_forever(), name="shared-committer")

    async def stop(self) -> None:
        """Commit what is queued, then stop; callers in flight get their answers."""
        await self._idle.wait()
        if self._settling:
            await asyncio.gather(*self._settling, return_exceptions=True)
        if self._committer is not None:
            self._committer.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._committer
            self._committer = None

    # -- deciding -------------------------------------------------------------------------------

    def check(self, order: Order) -> Decision:
        """The decision ``order`` would get against this process's view of the book; nothing is stored."""
        book = self._view.get(order.instrument) or Book(self._scope)
        return decide(order, self._registry, book, self._restricting)

    async def submit(self, order: Order, client_order_id: str | None = None) -> Outcome:
        """Decide ``order`` in the next group transaction and return the stored record once committed.

        A ``client_order_id`` already stored (by any process) returns the stored decision
        (``replayed``) for the same order and raises :class:`ClientOrderIdConflict` for another.
        """
        waiting, replayed = self._enqueue(order, client_order_id)
        outcome = await asyncio.shield(waiting.future)
        return Outcome(outcome.record, True) if replayed else outcome

    async def submit_many(self, items: Sequence[tuple[Order, str | None]]) -> list[Outcome | OrdergateError]:
        """Queue a batch in its order (without yielding, so it lands in as few groups as possible)."""
        queued = [self._enqueue(order, client_order_id) for order, client_order_id in items]
        results: list[Outcome | OrdergateError] = []
        for waiting, replayed in queued:
            try:
                outcome = await asyncio.shield(waiting.future)
            except (StoreUnavailable, ClientOrderIdConflict) as exc:
                results.append(exc)
            else:
                results.append(Outcome(outcome.record, True) if replayed else outcome)
        return results

    def _enqueue(self, order: Order, client_order_id: str | None) -> tuple[_Waiting, bool]:
        """Queue ``order``, or join the queued order with the same client order id (``True``: a replay)."""
        if client_order_id is not None:
            known = self._in_flight.get(client_order_id)
            if known is not None:
                if known.order != order:
                    future: asyncio.Future[Outcome] = asyncio.get_running_loop().create_future()
                    future.set_exception(_in_flight_conflict(client_order_id, known.order))
                    return _Waiting(order, client_order_id, future), False
                return known, True
        waiting = _Waiting(order, client_order_id, asyncio.get_running_loop().create_future())
        self._arrivals.append(waiting)
        if client_order_id is not None:
            self._in_flight[client_order_id] = waiting
        self._idle.clear()
        self._wake.set()
        return waiting, False

    # -- committing -----------------------------------------------------------------------------

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
        if not isinstance(self._shared, ControlStore):
            return
        epoch = self._controls_epoch
        try:
            document = await self._shared.current_controls()
        except StoreUnavailable as exc:
            log.debug("could not read the controls in force: %s", exc)
            return
        if epoch == self._controls_epoch:  # nothing newer was put in force while it was read
            self._adopt_controls(document)

    async def _commit_forever(self) -> None:
        while True:
            if not self._arrivals:
                self._idle.set()
                self._wake.clear()
                try:
                    await asyncio.wait_for(self._wake.wait(), CONTROLS_REFRESH)
                except TimeoutError:
                    await self._refresh_controls()
                continue
            group = self._arrivals[: self._max_group]
            del self._arrivals[: len(group)]
            try:
                decided = await self._decide_and_commit(group)
            except _InDoubt as doubt:
                # Its callers wait for the outcome; the next groups need not: whatever it was, they
                # read it from the database under the same locks.
                self._failed_at = time.monotonic()
                task = asyncio.get_running_loop().create_task(self._settle(group, doubt), name="settle-in-doubt")
                self._settling.add(task)
                task.add_done_callback(self._settling.discard)
                continue
            except StoreUnavailable as exc:
                log.error("a group of %d orders was not stored: %s", len(group), exc)
                self._fail(group, exc)
                continue
            except Exception as exc:  # a bug: still never leave a caller without an answer
                log.exception("a group transaction failed unexpectedly")
                self._fail(group, StoreUnavailable(f"commit failed: {type(exc).__name__}"))
                continue
            self._answer(group, *decided)

    async def _settle(self, group: list[_Waiting], doubt: _InDoubt) -> None:
        committed = await doubt.cause.outcome()
        if committed:
            for instrument, book in doubt.books.items():
                if self._view.get(instrument) is doubt.seen.get(instrument):  # no later group refreshed it
                    self._view[instrument] = book
            self._answer(group, doubt.results, doubt.records)
        elif committed is None:
            self._fail(
                group,
                StoreUnavailable(
                    f"{doubt.cause}; the database stayed unreachable, so whether the order was stored is unknown: "
                    "retry with the same client_order_id to learn it",
                    retry_after=5,
                ),
            )
        else:
            self._fail(group, doubt.cause)

    def _answer(
        self, group: list[_Waiting], results: list[Outcome | ClientOrderIdConflict], records: list[OrderRecord]
    ) -> None:
        """Answer a committed group and hand its records to the commit listeners."""
        self._failed_at = None
        self._forget(group)
        for waiting, result in zip(group, results, strict=True):
            if waiting.future.done():
                continue
            if isinstance(result, Outcome):
                waiting.future.set_result(result)
            else:
                waiting.future.set_exception(result)
                waiting.future.exception()  # retrieved even if its caller went away
        if records:
            for listener in self._listeners:
                try:
                    listener(records)
                except Exception:
                    log.exception("a commit listener failed")

    async def _decide_and_commit(
        self, group: list[_Waiting]
    ) -> tuple[list[Outcome | ClientOrderIdConflict], list[OrderRecord]]:
        """One transaction: lock, read, decide in arrival order, write, commit (module docstring)."""
        instruments = sorted({w.order.instrument for w in group})
        client_order_ids = [w.client_order_id for w in group if w.client_order_id is not None]
        results: list[Outcome | ClientOrderIdConflict] = []
        records: list[OrderRecord] = []
        async with self._shared.lock_group(instruments, client_order_ids, len(group)) as transaction:
            locked = transaction.locked
            if locked.scope is not None and locked.scope is not self._scope:
                raise StoreUnavailable(
                    f"the database is now kept in scope '{locked.scope}' by another process; restart this "
                    f"gateway with --scope {locked.scope}",
                    retry_after=30,
                )
            if locked.controls_read:
                self._adopt_controls(locked.controls)
            held: dict[str, list[Position]] = {instrument: [] for instrument in instruments}
            for position in locked.positions:
                held[position.instrument].append(position)
            books = {instrument: Book(self._scope, positions) for instrument, positions in held.items()}
            fresh_ids = iter(locked.order_ids)
            registry, controls = self._registry, self._restricting
            for waiting in group:
                order, client_order_id = waiting.order, waiting.client_order_id
                stored = locked.stored.get(client_order_id) if client_order_id is not None else None
                if stored is not None:
                    results.append(Outcome(stored, True) if stored.order == order else _stored_conflict(stored))
                    continue
                book = books[order.instrument]
                decision = decide(order, registry, book, controls)
                order_id = next(fresh_ids)
                at = self._clock()
                undo = book.apply(order, decision.applied, order_id, at)
                record = OrderRecord(
                    order_id=order_id,
                    received_at=at,
                    order=order,
                    decision=decision,
                    scope=self._scope,
                    profile_fingerprint=registry.fingerprint,
                    client_order_id=client_order_id,
                    controls_fingerprint=controls.fingerprint if controls is not None else None,
                    opened=tuple(after for _, _, after in undo if after is not None),
                    closed=tuple(before for _, before, _ in undo if before is not None),
                )
                records.append(record)
                results.append(Outcome(record, False))
            if records:
                try:
                    await transaction.commit(records)
                except CommitInDoubt as exc:
                    seen = {instrument: self._view.get(instrument) for instrument in books}
                    raise _InDoubt(exc, books, seen, results, records) from exc
        self._view.update(books)  # committed: this is now what the database holds for these instruments
        return results, records

    def _fail(self, group: list[_Waiting], exc: StoreUnavailable) -> None:
        self._failed_at = time.monotonic()
        if self._on_store_error is not None:
            self._on_store_error("commit")
        self._forget(group)
        for waiting in group:
            if not waiting.future.done():
                waiting.future.set_exception(exc)
            waiting.future.exception()  # a caller that went away will never read it

    def _forget(self, group: list[_Waiting]) -> None:
        for waiting in group:
            key = waiting.client_order_id
            if key is not None and self._in_flight.get(key) is waiting:
                del self._in_flight[key]


class _InDoubt(Exception):
    """A group whose ``COMMIT`` may or may not have happened, with what it would have answered."""

    def __init__(
        self,
        cause: CommitInDoubt,
        books: dict[str, Book],
        seen: dict[str, Book | None],
        results: list[Outcome | ClientOrderIdConflict],
        records: list[OrderRecord],
    ) -> None:
        super().__init__(str(cause))
        self.cause, self.books, self.seen, self.results, self.records = cause, books, seen, results, records


def _stored_conflict(record: OrderRecord) -> ClientOrderIdConflict:
    o = record.order
    return ClientOrderIdConflict(
        f"client_order_id {record.client_order_id!r} was already used by order {record.order_id} "
        f"({o.strategy} {o.instrument} {o.side.value}); use a new id for a different order"
    )


def _in_flight_conflict(client_order_id: str, order: Order) -> ClientOrderIdConflict:
    return ClientOrderIdConflict(
        f"client_order_id {client_order_id!r} is already in use by an order being decided "
        f"({order.strategy} {order.instrument} {order.side.value}); use a new id for a different order"
    )
