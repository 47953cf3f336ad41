"""The local sequencer: linearizable decisions, gapless order ids, group commit and exact rollback.

Used with the embedded store, which one process owns: its in-memory book is the truth. Every order
is decided synchronously on the event loop against that book, which makes the decisions a serial
order by construction: nothing can interleave between reading the book and changing it. The
decision is applied to the book as it is made (``decide_and_apply()``, so the next order sees it)
and queued; the committer core
(:mod:`ordergate.service.committer`) writes whatever has queued as one transaction while new orders
keep queuing behind it. A caller learns its decision only once its group is committed.

If a commit fails, the failed group *and every order decided after it* (they were decided against
effects that will never exist) are undone in the book in reverse order, their order ids are handed
out again, and their callers get :class:`~ordergate.errors.StoreUnavailable` (HTTP 503). Nothing of
them remains, in memory or on disk.

Under a risk policy (SPEC section 10) each order is also decided against the risk state
(:class:`~ordergate.domain.risk.RiskState`) at its ``received_at``, and folded into it with the book;
a rolled-back order is taken out of it again exactly. The state is rebuilt from the log when the
gateway starts under a policy and when limits come into force where none were (order entry waits for
the queued groups to commit and the log to be read): the limits count what happened before them. An
order whose rejection trips its strategy's breaker halts the strategy at once (the next order sees it)
and carries the control change into its own transaction; if that transaction fails, the halt is lifted
with the rest. A flatten is one ticket of several orders (:attr:`Ticket.also`), so they commit, or
fail, together.

Client order ids go through the idempotency window (:mod:`ordergate.service.idempotency`): a
repeat joins the pending order or gets the stored one; an order with a used id but other content
waits for that id's outcome and gets 409 only once it is committed.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Sequence
from contextlib import asynccontextmanager
from datetime import date

import orjson

from ordergate.collector import held_for
from ordergate.domain.book import Book, Change
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
from ordergate.domain.model import Decision, Order, Origin
from ordergate.domain.record import ANONYMOUS, DIRECT, Entry, OrderRecord, decided_record
from ordergate.domain.registry import Registry
from ordergate.domain.risk import (
    NO_RISK,
    SQUARE_OFF,
    Folded,
    RiskContext,
    RiskPolicy,
    RiskState,
    epoch_of,
    horizon_start,
    rebuilt,
    square_off_mark,
    squared_off_day,
    tripped,
)
from ordergate.domain.rules import decide, decide_and_apply
from ordergate.errors import ClientOrderIdConflict, OrdergateError, StoreUnavailable
from ordergate.service.clock import Clock, utc_now
from ordergate.service.committer import Committer, Result
from ordergate.service.idempotency import IdempotencyWindow, outcome_after
from ordergate.service.sequencing import MAX_GROUP, CommitListener, Outcome, Ticket
from ordergate.store.base import Store


class LocalSequencer:
    """The :class:`~ordergate.service.sequencing.Sequencing` of a store owned by this process alone."""

    cascade_failures = True
    decides_risk = True

    def __init__(
        self,
        store: Store,
        registry: Registry,
        book: Book,
        last_order_id: int,
        *,
        clock: Clock = utc_now,
        max_group: int = MAX_GROUP,
    ) -> None:
        self._store = store
        self._registry = registry
        self._book = book
        self._next_id = last_order_id + 1
        self._clock = clock
        self._window = IdempotencyWindow()
        self._core = Committer(self, self._window, max_group=max_group)
        self._controls = NO_CONTROLS
        self._restricting: Controls | None = None  # the controls when they restrict anything, else None
        self._risk = NO_RISK
        self._limits: RiskPolicy | None = None  # the risk policy when it restricts anything, else None
        self._risk_state: RiskState | None = None  # kept exactly while a policy restricts anything
        self._gate: asyncio.Event | None = None  # set while order entry waits for the risk state's rebuild

    @property
    def registry(self) -> Registry:
        return self._registry

    @property
    def controls(self) -> Controls:
        return self._controls

    @property
    def risk(self) -> RiskPolicy:
        return self._risk

    @property
    def book(self) -> Book:
        return self._book

    @property
    def tracked_client_order_ids(self) -> int:
        return len(self._window)

    def failing(self, within: float = 5.0) -> bool:
        return self._core.failing(within)

    def use_controls(self, controls: Controls) -> None:
        self._controls = controls
        self._restricting = controls if controls.restricts_anything else None

    async def use_risk(self, policy: RiskPolicy) -> None:
        if not policy.restricts_anything:
            self._risk, self._limits, self._risk_state = policy, None, None
            return
        if self._risk_state is not None:
            self._risk = self._limits = policy
            return
        async with self.quiesced():
            state = rebuilt(self._book, await self._store.recent_orders(horizon_start(self._clock())))
            self._risk, self._limits, self._risk_state = policy, policy, state

    @asynccontextmanager
    async def quiesced(self) -> AsyncIterator[None]:
        while self._gate is not None:
            await self._gate.wait()
        gate = self._gate = asyncio.Event()
        try:
            await self._core.drained()  # every order decided so far is in the log, or was never decided
            yield
        finally:
            self._gate = None
            gate.set()

    def use_registry(self, registry: Registry) -> None:
        """Orders decided before keep their profiles, and positions stay open: ``decide()`` lets a SELL
        of the strategy that opened a position reach its holder."""
        self._registry = registry

    def on_commit(self, listener: CommitListener) -> None:
        self._core.on_commit(listener)

    def start(self) -> None:
        self._core.start()

    async def stop(self) -> None:
        await self._core.stop()

    # -- deciding -------------------------------------------------------------------------------

    def check(self, order: Order, entry: Entry = DIRECT) -> Decision:
        return decide(order, self._registry, self._book, self._restricting, self._risk_context(self._clock(), entry))

    def _risk_context(self, at: str, entry: Entry) -> RiskContext | None:
        if self._limits is None or self._risk_state is None:
            return None
        signal_at = epoch_of(entry.signal_time) if entry.signal_time is not None else None
        return RiskContext(self._limits, self._risk_state, epoch_of(at), signal_at, entry.origin)

    async def submit(self, order: Order, client_order_id: str | None = None, entry: Entry = DIRECT) -> Outcome:
        if self._gate is not None:
            await self._gate.wait()
        if client_order_id is None:
            return await asyncio.shield(self._decide(order, None, entry).future)
        while True:
            known = self._window.get(client_order_id)
            if known is None:
                found = await self._window.find(client_order_id, self._store.find_client_order)
                if isinstance(found, OrderRecord):
                    return _replay(found, order)
                known = found
            if known is None:
                if self._gate is not None:  # the risk state is being rebuilt: then look at the id again,
                    await self._gate.wait()  # another request may have decided it meanwhile
                    continue
                return await asyncio.shield(self._decide(order, client_order_id, entry).future)
            outcome = await outcome_after(known, order)
            if outcome is not None:
                return outcome
            # the id's order was not stored: it was never used, so this order is decided (loop again)

    async def submit_many(
        self, items: Sequence[tuple[Order, str | None]], entries: Sequence[Entry] | None = None
    ) -> list[Outcome | OrdergateError]:
        """Client order ids are looked up in one store query, then every fresh order is decided without
        yielding the event loop, so a batch lands in as few commit groups as possible.

        Only an id held by another, uncommitted order makes the batch wait (for that outcome); the
        rest of the batch is then decided one order at a time, each id looked up again.
        """
        # every id is looked up, even one the window holds now: the window may let it go while the
        # store is read, and only the lookup's own re-check is sure to see it then
        ids = list(dict.fromkeys(c for _, c in items if c is not None))
        found: dict[str, Ticket | OrderRecord] = {}
        while True:  # the ids are looked up after any rebuild of the risk state: a wait lets the window move
            if self._gate is not None:
                await self._gate.wait()
            if ids:
                found = await self._window.find_many(ids, self._store.find_client_orders)
            if self._gate is None:
                break
        how = entries if entries is not None else [DIRECT] * len(items)
        waits: list[tuple[Ticket, bool] | Outcome | OrdergateError] = []
        rest: Sequence[tuple[int, Order, str | None]] = ()
        for index, (order, client_order_id) in enumerate(items):
            if client_order_id is None:
                waits.append((self._decide(order, None, how[index]), False))
                continue
            known = self._window.get(client_order_id) or found.get(client_order_id)
            if known is None:
                waits.append((self._decide(order, client_order_id, how[index]), False))
            elif isinstance(known, OrderRecord):
                waits.append(_replay_or_conflict(known, order))
            elif known.order == order:
                waits.append((known, True))
            else:
                rest = [(i, o, c) for i, (o, c) in enumerate(items) if i >= index]
                break
        results: list[Outcome | OrdergateError] = []
        for wait in waits:
            if isinstance(wait, Outcome | OrdergateError):  # (an Outcome is a tuple too: test it first)
                results.append(wait)
                continue
            ticket, joined = wait
            try:
                outcome = await asyncio.shield(ticket.future)
            except (StoreUnavailable, ClientOrderIdConflict) as exc:
                results.append(exc)
            else:
                results.append(Outcome(outcome.record, True) if joined else outcome)
        for index, order, client_order_id in rest:
            try:
                results.append(await self.submit(order, client_order_id, how[index]))
            except (StoreUnavailable, ClientOrderIdConflict) as exc:
                results.append(exc)
        return results

    def _decide(self, order: Order, client_order_id: str | None, entry: Entry) -> Ticket:
        controls = self._restricting
        order_id = self._next_id
        at = self._clock()
        risk = self._risk_context(at, entry)
        with held_for(len(self._registry.subscribers(order.strategy))):
            decision, undo = decide_and_apply(order, self._registry, self._book, controls, order_id, at, risk)
            record = decided_record(
                order_id,
                at,
                order,
                decision,
                self._book.scope,
                self._registry.fingerprint,
                client_order_id,
                undo,
                controls.fingerprint if controls is not None else None,
                entry,
                risk.policy.fingerprint if risk is not None else None,
            )
        self._next_id += 1
        ticket = Ticket(order, client_order_id, record=record, undo=undo, entry=entry)
        if risk is not None:
            folded = risk.state.record(order, decision.status, decision.reason, decision.applied, risk.at, entry.origin)
            ticket.folded = (folded,)
            trip = tripped(record, risk, self._controls, folded)
            if trip is not None:  # the strategy halts now: the next order already sees it
                halted, change = trip
                ticket.record = record._replace(control_change=(change, orjson.dumps(halted.to_document()).decode()))
                ticket.controls_before = self._controls
                self.use_controls(halted)
        if client_order_id is not None:
            self._window.hold(ticket)
        self._core.enqueue(ticket)
        return ticket

    # -- the group engine ------------------------------------------------------------------------

    async def flatten(
        self,
        level: ControlLevel,
        target: str | None,
        then: ControlState | None,
        by: str | None,
        origin: Origin = Origin.FLATTEN,
    ) -> tuple[list[OrderRecord], Controls]:
        if self._gate is not None:
            await self._gate.wait()
        at = self._clock()
        entry = Entry(by or ANONYMOUS, None, origin)
        controls, limits, state = self._restricting, self._limits, self._risk_state
        records: list[OrderRecord] = []
        undo: list[Change] = []
        folds: list[Folded] = []
        for order, decision in flatten_orders(positions_in_scope(self._book, level, target)):
            order_id = self._next_id
            changes = self._book.apply(order, decision.applied, order_id, at)
            record = decided_record(
                order_id,
                at,
                order,
                decision,
                self._book.scope,
                self._registry.fingerprint,
                None,
                changes,
                controls.fingerprint if controls is not None else None,
                entry,
                limits.fingerprint if limits is not None else None,
            )
            if state is not None and limits is not None:
                folds.append(state.record(order, decision.status, None, decision.applied, epoch_of(at), Origin.FLATTEN))
            self._next_id += 1
            records.append(record)
            undo.extend(changes)
        before = self._controls
        if not records:
            return [], before
        if then is not None:  # set in the transaction of the orders, by the last of them
            setting = ControlSetting(level, target, then)
            after = before.with_setting(setting)
            change = ControlChange(at, setting, by, after.fingerprint, FLATTEN, records[-1].order_id)
            records[-1] = records[-1]._replace(control_change=(change, orjson.dumps(after.to_document()).decode()))
            self.use_controls(after)
        ticket = Ticket(
            records[0].order,
            None,
            record=records[0],
            undo=tuple(undo),
            entry=entry,
            also=tuple(records[1:]),
            folded=tuple(folds),
            controls_before=before if then is not None else None,
        )
        self._core.enqueue(ticket)
        await asyncio.shield(ticket.future)
        return records, self._controls

    async def square_off(self, day: date) -> list[OrderRecord] | None:
        """As the protocol says; the mark is stored after the orders (the store commits orders alone), so a
        crash in between squares off again on start, which closes only what was opened since."""
        marks = await self._store.risk_changes(1, SQUARE_OFF)
        if squared_off_day(marks[0] if marks else None) >= day:
            return None
        records, _ = await self.flatten(ControlLevel.GLOBAL, None, None, RISK_ACTOR, origin=Origin.SQUARE_OFF)
        policy = self._risk
        mark = square_off_mark(self._clock(), day, [r.order_id for r in records], policy.fingerprint)
        await self._store.record_risk_change(mark, orjson.dumps(policy.to_document()).decode())
        return records

    async def commit(self, group: list[Ticket]) -> Sequence[Result]:
        records = [record for ticket in group for record in (_decided(ticket), *ticket.also)]
        await self._store.commit(records)
        return [Outcome(_decided(ticket), False, ticket.also) for ticket in group]

    def discard(self, victims: Sequence[Ticket]) -> None:
        for ticket in reversed(victims):
            self._book.undo(ticket.undo)
            if self._risk_state is not None:
                for folded in reversed(ticket.folded):
                    self._risk_state.revert(folded)
            if ticket.controls_before is not None and self._controls.fingerprint == _halted_by(ticket):
                # the breaker's halt was never stored: lift it, unless an admin changed the controls since
                # (their change is stored, with the halt in it, and stays in force)
                self.use_controls(ticket.controls_before)
        self._next_id = _decided(victims[0]).order_id


def _replay(record: OrderRecord, order: Order) -> Outcome:
    if record.order != order:
        raise ClientOrderIdConflict.of(record)
    return Outcome(record, replayed=True)


def _replay_or_conflict(record: OrderRecord, order: Order) -> Outcome | ClientOrderIdConflict:
    return Outcome(record, True) if record.order == order else ClientOrderIdConflict.of(record)


def _halted_by(ticket: Ticket) -> str | None:
    """The fingerprint of the controls a ticket's breaker trip or flatten put in force (``None``: none)."""
    last = ticket.also[-1] if ticket.also else ticket.record
    change = last.control_change if last is not None else None
    return change[0].fingerprint if change is not None else None


def _decided(ticket: Ticket) -> OrderRecord:
    """The record of a ticket this sequencer decided on arrival (every one of its tickets has one)."""
    assert ticket.record is not None
    return ticket.record
