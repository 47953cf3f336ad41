"""The sequencing protocol: what order entry needs from a sequencer, whatever the store behind it.

A sequencer turns orders into committed decisions: it decides each order (linearizably), has it
stored durably, and only then answers. Two implementations exist, sharing one committer core
(:mod:`ordergate.service.committer`) and one idempotency window
(:mod:`ordergate.service.idempotency`):

- :class:`~ordergate.service.sequencer.LocalSequencer` (the embedded store, one process): decides on
  the event loop against the in-memory book as orders arrive, and commits them in groups;
- :class:`~ordergate.service.shared_sequencer.SharedSequencer` (PostgreSQL, several processes):
  decides each group inside the database transaction that holds its locks.

The API, the operator routes and the CLI type against :class:`Sequencing` only.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Sequence
from contextlib import AbstractAsyncContextManager
from dataclasses import dataclass, field
from datetime import date
from typing import NamedTuple, Protocol

from ordergate.domain.book import Undo
from ordergate.domain.controls import ControlLevel, Controls, ControlState
from ordergate.domain.model import Decision, Order, Origin
from ordergate.domain.record import DIRECT, Entry, OrderRecord
from ordergate.domain.registry import Registry
from ordergate.domain.risk import Folded, RiskPolicy
from ordergate.errors import OrdergateError

MAX_GROUP = 1000
"""Orders per transaction at most: bounds the latency one commit adds to the orders behind it."""

CommitListener = Callable[[Sequence[OrderRecord]], None]
"""Called with each group of orders this process committed (decided now, not replays), in order_id order."""


class Outcome(NamedTuple):
    record: OrderRecord
    replayed: bool
    """The stored decision of an earlier request with the same client order id (nothing was decided now)."""
    also: tuple[OrderRecord, ...] = ()
    """The other orders committed with ``record`` as one (a flatten), in order_id order."""


@dataclass(slots=True, eq=False)
class Ticket:
    """One order waiting for its answer: its future resolves once the group it is in has committed.

    The local sequencer fills ``record`` and ``undo`` when it decides the order on arrival; the shared
    one decides inside the group transaction and leaves them empty.
    """

    order: Order
    client_order_id: str | None
    future: asyncio.Future[Outcome] = field(default_factory=lambda: asyncio.get_running_loop().create_future())
    record: OrderRecord | None = None
    undo: Undo = ()
    entry: Entry = DIRECT
    also: tuple[OrderRecord, ...] = ()
    """More orders decided with ``record`` and committed with it, all or none (a flatten)."""
    folded: tuple[Folded, ...] = ()
    """What deciding the orders changed in the risk state (the local sequencer, under a risk policy)."""
    controls_before: Controls | None = None
    """The controls before the order tripped its strategy's breaker (to lift the halt if it is rolled back)."""


class Sequencing(Protocol):
    decides_risk: bool
    """Whether it decides under a risk policy (SPEC section 10); one that does not never gets one."""

    @property
    def registry(self) -> Registry: ...

    @property
    def controls(self) -> Controls: ...

    @property
    def risk(self) -> RiskPolicy:
        """The risk policy later orders are decided under (:data:`~ordergate.domain.risk.NO_RISK`: none)."""
        ...

    @property
    def tracked_client_order_ids(self) -> int:
        """Client order ids held in memory (undecided, or committed while a lookup may not see them)."""
        ...

    def failing(self, within: float = 5.0) -> bool:
        """Whether a commit failed less than ``within`` seconds ago (readiness turns 503)."""
        ...

    def check(self, order: Order, entry: Entry = DIRECT) -> Decision:
        """The decision ``order`` would get now, limits included; nothing is stored or changed."""
        ...

    async def submit(self, order: Order, client_order_id: str | None = None, entry: Entry = DIRECT) -> Outcome:
        """Decide ``order``, wait until it is committed, and return the stored record.

        A ``client_order_id`` already used returns the stored decision (``replayed``) for the same order
        and raises :class:`~ordergate.errors.ClientOrderIdConflict` once that id's order is committed
        for another order; :class:`~ordergate.errors.StoreUnavailable` when the commit failed.
        """
        ...

    async def submit_many(
        self, items: Sequence[tuple[Order, str | None]], entries: Sequence[Entry] | None = None
    ) -> list[Outcome | OrdergateError]:
        """Decide a batch in its order, each order atomic on its own; one result (or error) per item.

        ``entries``, when given, says how each item came in (one per item).
        """
        ...

    def use_controls(self, controls: Controls) -> None:
        """Decide later orders under ``controls`` (already stored durably by the caller)."""
        ...

    def quiesced(self) -> AbstractAsyncContextManager[None]:
        """While inside, no order is decided and every order decided before is committed (or failed).

        An operator change that the sequencer also makes on its own (the controls, which a breaker trip
        changes inside an order's transaction) is stored inside it, so the store keeps the changes in
        the order the decisions saw them.
        """
        ...

    async def flatten(
        self,
        level: ControlLevel,
        target: str | None,
        then: ControlState | None,
        by: str | None,
        origin: Origin = Origin.FLATTEN,
    ) -> tuple[list[OrderRecord], Controls]:
        """Close every open position in the scope by orders of ``origin`` (flatten, square-off), committed as one
        transaction with the control ``then`` (if any) set in it; returns the orders and the controls
        now in force. Raises :class:`~ordergate.errors.StoreUnavailable` when nothing could be stored."""
        ...

    async def square_off(self, day: date) -> list[OrderRecord] | None:
        """The trading session's square-off of ``day``: flatten everything (orders of origin ``square_off``
        by ``risk``) and store the day's mark (:func:`~ordergate.domain.risk.square_off_mark`), unless the
        store already holds a mark of that day or a later one (then ``None``: nothing was done)."""
        ...

    def use_registry(self, registry: Registry) -> None:
        """Decide later orders against ``registry`` (already recorded in the store by the caller)."""
        ...

    async def use_risk(self, policy: RiskPolicy) -> None:
        """Decide later orders under ``policy`` (already stored durably by the caller).

        When limits come into force where none were, the risk state is first rebuilt from the log
        (order entry waits meanwhile): every limit counts what happened before it was set.
        """
        ...

    def on_commit(self, listener: CommitListener) -> None: ...

    def start(self) -> None: ...

    async def stop(self) -> None:
        """Commit what is already queued, then stop; callers in flight get their answers."""
        ...
