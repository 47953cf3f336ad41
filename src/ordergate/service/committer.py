"""The committer core shared by both sequencers: queue, group, commit, answer, fan out.

Orders queue as :class:`~ordergate.service.sequencing.Ticket` objects; one committer task takes
whatever has queued (a *group*, at most ``max_group`` tickets) and hands it to the sequencer's
:class:`GroupEngine`, which stores it (the local engine) or decides and stores it (the shared one) in
one transaction. Only then are the group's callers answered and the commit listeners (decision log,
telemetry, events) called, in order_id order. New orders keep queuing while a group commits, which
is what makes one fsync serve many orders.

How failures are answered is the engine's choice, stated once: an engine that decides orders on
arrival against effects of orders not yet committed (``cascade_failures``) must fail every order
queued behind a failed group too, because they were decided against effects that will never exist;
the engine then takes their effects back (:meth:`GroupEngine.discard`) before anyone is answered.
Every failed caller gets :class:`~ordergate.errors.StoreUnavailable`; an engine may also keep some
tickets of a group to answer later itself (a commit in doubt, an instrument whose lock is busy),
through :meth:`Committer.answer` and :meth:`Committer.fail`, running that work in
:meth:`Committer.track` so that :meth:`Committer.stop` waits for it.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Awaitable, Callable, Coroutine, Sequence
from typing import Any, Protocol

from ordergate.domain.record import OrderRecord
from ordergate.errors import ClientOrderIdConflict, StoreUnavailable
from ordergate.service.idempotency import IdempotencyWindow
from ordergate.service.sequencing import MAX_GROUP, CommitListener, Outcome, Ticket

log = logging.getLogger(__name__)

Result = Outcome | ClientOrderIdConflict | None
"""What a group commit says of one ticket: its outcome, a conflict, or ``None``: answered later."""


class GroupEngine(Protocol):
    cascade_failures: bool
    """Whether a failed group also fails every ticket queued after it (see the module docstring)."""

    async def commit(self, group: list[Ticket]) -> Sequence[Result]:
        """Store the group in one transaction (deciding it first if need be); one result per ticket.

        Raises :class:`StoreUnavailable` when nothing of the group was stored.
        """
        ...

    def discard(self, victims: Sequence[Ticket]) -> None:
        """Take back whatever the failed tickets changed in memory, newest first."""
        ...


class Committer:
    def __init__(
        self,
        engine: GroupEngine,
        window: IdempotencyWindow,
        *,
        max_group: int = MAX_GROUP,
        when_idle: Callable[[], Awaitable[None]] | None = None,
        idle_every: float = 1.0,
    ) -> None:
        self._engine = engine
        self._window = window
        self._max_group = max_group
        self._when_idle = when_idle
        self._idle_every = idle_every
        self._queue: list[Ticket] = []
        self._wake = asyncio.Event()
        self._idle = asyncio.Event()
        self._idle.set()
        self._task: asyncio.Task[None] | None = None
        self._background: dict[asyncio.Task[Any], None] = {}  # a set in creation order: runs replay exactly
        self._listeners: list[CommitListener] = []
        self._failed_at: float | None = None

    # -- life cycle -------------------------------------------------------------------------------

    def start(self) -> None:
        self._task = asyncio.get_running_loop().create_task(self._run(), name="committer")

    async def stop(self) -> None:
        """Commit what is queued and settle what is in the background, then stop."""
        await self._idle.wait()
        while self._background:
            await asyncio.gather(*self._background, return_exceptions=True)
        await self._idle.wait()
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
            self._task = None

    def on_commit(self, listener: CommitListener) -> None:
        self._listeners.append(listener)

    async def drained(self) -> None:
        """Return once every queued ticket is committed or failed (the queue may fill again at once)."""
        await self._idle.wait()

    def failing(self, within: float = 5.0) -> bool:
        """Whether a commit failed less than ``within`` seconds ago.

        It clears on the next successful commit, and by itself after ``within`` seconds so that a
        load balancer that stopped sending traffic lets the gateway try again.
        """
        return self._failed_at is not None and time.monotonic() - self._failed_at < within

    # -- queuing ----------------------------------------------------------------------------------

    def enqueue(self, ticket: Ticket) -> None:
        self._queue.append(ticket)
        self._idle.clear()
        self._wake.set()

    def track(self, work: Coroutine[Any, Any, None], name: str) -> None:
        """Run ``work`` (which answers some tickets later) so that :meth:`stop` waits for it."""
        task = asyncio.get_running_loop().create_task(work, name=name)
        self._background[task] = None
        task.add_done_callback(self._forget_background)

    def _forget_background(self, task: asyncio.Task[Any]) -> None:
        self._background.pop(task, None)

    # -- answering --------------------------------------------------------------------------------

    def answer(self, tickets: Sequence[Ticket], results: Sequence[Result]) -> None:
        """Answer committed tickets and hand the orders decided now to the listeners, in order_id order."""
        self._failed_at = None
        records: list[OrderRecord] = []
        answered: list[Ticket] = []
        for ticket, result in zip(tickets, results, strict=True):
            if result is None:
                continue
            answered.append(ticket)
            if isinstance(result, Outcome):
                if not result.replayed:
                    records.append(result.record)
                    records.extend(result.also)
                if not ticket.future.done():
                    ticket.future.set_result(result)
            elif not ticket.future.done():
                ticket.future.set_exception(result)
                ticket.future.exception()  # retrieved even if its caller went away
        self._window.committed(answered)
        self.publish(records)

    def publish(self, records: list[OrderRecord]) -> None:
        """Hand orders committed now to the listeners, in order_id order (also those committed outside the
        loop: the shared sequencer's flatten)."""
        if records:
            records.sort(key=lambda record: record.order_id)
            for listener in self._listeners:
                try:
                    listener(records)
                except Exception:
                    log.exception("a commit listener failed")

    def note_failure(self) -> None:
        """A commit went wrong in a way answered later (in doubt): readiness turns 503 meanwhile."""
        self._failed_at = time.monotonic()

    def fail(self, tickets: Sequence[Ticket], exc: StoreUnavailable) -> None:
        """Answer ``tickets`` with ``exc``: nothing of them is stored."""
        self._failed_at = time.monotonic()
        for ticket in tickets:
            self._window.release(ticket)
        for ticket in tickets:
            if not ticket.future.done():
                ticket.future.set_exception(exc)
            ticket.future.exception()  # a caller that went away will never read it; keep the log quiet

    # -- the loop ---------------------------------------------------------------------------------

    async def _run(self) -> None:
        while True:
            if not self._queue:
                self._idle.set()
                self._wake.clear()
                if self._when_idle is None:
                    await self._wake.wait()
                else:
                    try:
                        await asyncio.wait_for(self._wake.wait(), self._idle_every)
                    except TimeoutError:
                        await self._when_idle()
                continue
            group = self._queue[: self._max_group]
            del self._queue[: len(group)]
            try:
                results = await self._engine.commit(group)
            except StoreUnavailable as exc:
                self._roll_back(group, exc)
                continue
            except Exception as exc:  # a bug: still never leave a caller without an answer
                log.exception("a group commit failed unexpectedly")
                self._roll_back(group, StoreUnavailable(f"commit failed: {type(exc).__name__}"))
                continue
            self.answer(group, results)

    def _roll_back(self, group: list[Ticket], exc: StoreUnavailable) -> None:
        first, last = group[0], group[-1]
        if first.record is not None and last.record is not None:
            log.error("commit of orders %d..%d failed: %s", first.record.order_id, last.record.order_id, exc)
        else:
            log.error("a group of %d orders was not stored: %s", len(group), exc)
        victims = group
        if self._engine.cascade_failures:
            victims = group + self._queue
            self._queue = []
        self._engine.discard(victims)
        self.fail(victims, exc)
