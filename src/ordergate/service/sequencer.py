"""The sequencer: linearizable decisions, gapless order ids, group commit, and exact rollback.

Every order is decided synchronously on the event loop against the in-memory book, which makes the
decisions a serial order by construction: nothing can interleave between reading the book and
changing it. The decision is applied to the book at once (so the next order sees it) and queued;
one committer task writes whatever has queued as a single transaction while new orders keep
queuing behind it. A caller learns its decision only once its group is committed.

If a commit fails, the failed group *and every order decided after it* (they were decided against
effects that will never exist) are undone in the book in reverse order, their order ids are handed
out again, and their callers get :class:`~ordergate.errors.StoreUnavailable` (HTTP 503). Nothing of
them remains, in memory or on disk.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections import deque
from collections.abc import Callable, Sequence
from dataclasses import dataclass

from ordergate.domain.book import Book, Undo
from ordergate.domain.controls import NO_CONTROLS, Controls
from ordergate.domain.model import Decision, Order
from ordergate.domain.record import OrderRecord
from ordergate.domain.registry import Registry
from ordergate.domain.rules import decide
from ordergate.errors import ClientOrderIdConflict, OrdergateError, StoreUnavailable
from ordergate.service.clock import Clock, utc_now
from ordergate.store.base import Store

log = logging.getLogger(__name__)

MAX_GROUP = 1000
"""Orders per transaction at most: bounds the latency one commit adds to the orders behind it."""

CommitListener = Callable[[Sequence[OrderRecord]], None]


@dataclass(frozen=True, slots=True)
class Outcome:
    record: OrderRecord
    replayed: bool


@dataclass(slots=True)
class _Pending:
    record: OrderRecord
    undo: Undo
    future: asyncio.Future[OrderRecord]


class Sequencer:
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
        self._max_group = max_group
        self._queue: list[_Pending] = []
        self._by_client_id: dict[str, _Pending] = {}
        # Client order ids stay in _by_client_id while undecided, and after their commit only as long
        # as a store lookup that began before that commit is still running (it may not see it).
        self._commits = 0
        self._lookups: dict[int, int] = {}  # commit count when a lookup began -> lookups running
        self._committed_ids: deque[tuple[int, str]] = deque()
        self._wake = asyncio.Event()
        self._idle = asyncio.Event()
        self._idle.set()
        self._committer: asyncio.Task[None] | None = None
        self._listeners: list[CommitListener] = []
        self._failed_at: float | None = None
        self._controls = NO_CONTROLS
        self._restricting: Controls | None = None  # the controls when they restrict anything, else None

    def failing(self, within: float = 5.0) -> bool:
        """Whether the last commit failed less than ``within`` seconds ago (readiness turns 503).

        It clears on the next successful commit, and by itself after ``within`` seconds so that a
        load balancer that stopped sending traffic lets the gateway try again.
        """
        return self._failed_at is not None and time.monotonic() - self._failed_at < within

    @property
    def tracked_client_order_ids(self) -> int:
        """Client order ids held in memory (undecided, or committed during a running lookup)."""
        return len(self._by_client_id)

    @property
    def registry(self) -> Registry:
        return self._registry

    @property
    def book(self) -> Book:
        return self._book

    @property
    def controls(self) -> Controls:
        return self._controls

    def use_controls(self, controls: Controls) -> None:
        """Decide every later order under ``controls`` (already stored durably by the caller)."""
        self._controls = controls
        self._restricting = controls if controls.restricts_anything else None

    def use_registry(self, registry: Registry) -> None:
        """Decide every later order against ``registry`` (profiles reloaded; already recorded in the store).

        Orders decided before keep the profiles they were decided with, and positions stay open:
        ``decide()`` lets a SELL of the strategy that opened a position reach its holder.
        """
        self._registry = registry

    def on_commit(self, listener: CommitListener) -> None:
        """Call ``listener`` with each committed group, in order_id order (decision log, events)."""
        self._listeners.append(listener)

    def start(self) -> None:
        self._committer = asyncio.get_running_loop().create_task(self._commit_forever(), name="committer")

    async def stop(self) -> None:
        """Commit what is already decided, then stop; callers in flight get their answers."""
        await self._idle.wait()
        if self._committer is not None:
            self._committer.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._committer
            self._committer = None

    # -- deciding -------------------------------------------------------------------------------

    def check(self, order: Order) -> Decision:
        """The decision ``order`` would get now; nothing is stored or changed."""
        return decide(order, self._registry, self._book, self._restricting)

    async def submit(self, order: Order, client_order_id: str | None = None) -> Outcome:
        """Decide ``order``, wait until it is committed, and return the stored record.

        With a ``client_order_id`` already used, returns the stored decision (``replayed``) when the
        order is the same and raises :class:`ClientOrderIdConflict` when it is not.
        """
        if client_order_id is not None:
            known = self._by_client_id.get(client_order_id)
            if known is None:
                began = self._begin_lookup()
                try:
                    stored = await self._store.find_client_order(client_order_id)
                finally:
                    self._end_lookup(began)
                if stored is not None:
                    return _replay(stored, order)
                known = self._by_client_id.get(client_order_id)  # decided while we looked
            if known is not None:
                if known.record.order != order:
                    raise _conflict(known.record)
                return _replay(await asyncio.shield(known.future), order)
        pending = self._decide(order, client_order_id)
        return Outcome(await asyncio.shield(pending.future), replayed=False)

    async def submit_many(self, items: Sequence[tuple[Order, str | None]]) -> list[Outcome | OrdergateError]:
        """Decide a batch in its order, each order atomic on its own; one result per item.

        An item's result is its :class:`Outcome`, or the error that item alone got
        (:class:`ClientOrderIdConflict`, or :class:`StoreUnavailable` if its group failed to commit).
        Client order ids are looked up in one store query, then every fresh order is decided without
        yielding the event loop, so a batch lands in as few commit groups as possible.
        """
        ids = [c for _, c in items if c is not None]
        stored: dict[str, OrderRecord] = {}
        if ids:
            began = self._begin_lookup()
            try:
                stored = await self._store.find_client_orders(ids)
            finally:
                self._end_lookup(began)
        waits: list[tuple[_Pending, bool] | Outcome | OrdergateError] = []
        for order, client_order_id in items:
            if client_order_id is not None:
                known = self._by_client_id.get(client_order_id)
                if known is not None:
                    waits.append((known, True) if known.record.order == order else _conflict(known.record))
                    continue
                record = stored.get(client_order_id)
                if record is not None:
                    waits.append(Outcome(record, True) if record.order == order else _conflict(record))
                    continue
            waits.append((self._decide(order, client_order_id), False))
        results: list[Outcome | OrdergateError] = []
        for wait in waits:
            if isinstance(wait, tuple):
                pending, replayed = wait
                try:
                    results.append(Outcome(await asyncio.shield(pending.future), replayed))
                except StoreUnavailable as exc:
                    results.append(exc)
            else:
                results.append(wait)
        return results

    def _decide(self, order: Order, client_order_id: str | None) -> _Pending:
        controls = self._restricting
        decision = decide(order, self._registry, self._book, controls)
        order_id = self._next_id
        at = self._clock()
        undo = self._book.apply(order, decision.applied, order_id, at)
        record = OrderRecord(
            order_id=order_id,
            received_at=at,
            order=order,
            decision=decision,
            scope=self._book.scope,
            profile_fingerprint=self._registry.fingerprint,
            client_order_id=client_order_id,
            opened=tuple(after for _, _, after in undo if after is not None),
            closed=tuple(before for _, before, _ in undo if before is not None),
            controls_fingerprint=controls.fingerprint if controls is not None else None,
        )
        self._next_id += 1
        pending = _Pending(record, undo, asyncio.get_running_loop().create_future())
        self._queue.append(pending)
        if client_order_id is not None:
            self._by_client_id[client_order_id] = pending
        self._idle.clear()
        self._wake.set()
        return pending

    # -- committing -----------------------------------------------------------------------------

    async def _commit_forever(self) -> None:
        while True:
            if not self._queue:
                self._idle.set()
                self._wake.clear()
                await self._wake.wait()
                continue
            group = self._queue[: self._max_group]
            del self._queue[: len(group)]
            try:
                await self._store.commit([p.record for p in group])
            except StoreUnavailable as exc:
                log.error(
                    "commit of orders %d..%d failed: %s",
                    group[0].record.order_id,
                    group[-1].record.order_id,
                    exc,
                )
                self._roll_back(group, exc)
                continue
            except Exception as exc:  # a bug: still never leave half-decided orders behind
                log.exception("commit failed unexpectedly")
                self._roll_back(group, StoreUnavailable(f"commit failed: {type(exc).__name__}"))
                continue
            self._failed_at = None
            records = [p.record for p in group]
            for p in group:
                if not p.future.done():
                    p.future.set_result(p.record)
                if p.record.client_order_id is not None:
                    self._committed_ids.append((self._commits, p.record.client_order_id))
            self._commits += 1
            self._forget_committed_ids()
            for listener in self._listeners:
                try:
                    listener(records)
                except Exception:
                    log.exception("a commit listener failed")

    # -- client order ids ----------------------------------------------------------------------

    def _begin_lookup(self) -> int:
        began = self._commits
        self._lookups[began] = self._lookups.get(began, 0) + 1
        return began

    def _end_lookup(self, began: int) -> None:
        left = self._lookups[began] - 1
        if left:
            self._lookups[began] = left
        else:
            del self._lookups[began]
            self._forget_committed_ids()

    def _forget_committed_ids(self) -> None:
        """Drop committed ids every running lookup will find in the store: memory stays bounded."""
        oldest = min(self._lookups) if self._lookups else self._commits
        committed = self._committed_ids
        while committed and committed[0][0] < oldest:
            _, client_order_id = committed.popleft()
            self._by_client_id.pop(client_order_id, None)

    def _roll_back(self, group: list[_Pending], exc: StoreUnavailable) -> None:
        self._failed_at = time.monotonic()
        victims = group + self._queue
        self._queue = []
        for pending in reversed(victims):
            self._book.undo(pending.undo)
            if pending.record.client_order_id is not None:
                self._by_client_id.pop(pending.record.client_order_id, None)
        self._next_id = group[0].record.order_id
        for pending in victims:
            if not pending.future.done():
                pending.future.set_exception(exc)
            # a caller that went away will never read it; mark it retrieved to keep the log quiet
            pending.future.exception()


def _replay(record: OrderRecord, order: Order) -> Outcome:
    if record.order != order:
        raise _conflict(record)
    return Outcome(record, replayed=True)


def _conflict(record: OrderRecord) -> ClientOrderIdConflict:
    o = record.order
    return ClientOrderIdConflict(
        f"client_order_id {record.client_order_id!r} was already used by order {record.order_id} "
        f"({o.strategy} {o.instrument} {o.side.value}); use a new id for a different order"
    )
