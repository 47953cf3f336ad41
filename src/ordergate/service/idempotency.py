"""The idempotency window: client order ids whose decision the store cannot be relied on to show yet.

A client order id is decided at most once, ever (SPEC section 3). The store keeps every committed
id; this window covers the two moments the store cannot answer for:

- while an order is queued or being committed (its ticket is *pending*): a repeat joins it, and an
  order with the same id but different content waits for its outcome (only a committed decision may
  make a 409; if the commit fails, the id was never used);
- after its commit, for as long as a store lookup that *began before* that commit is still running:
  that lookup may have read the store before the commit, so the window must still know the id when
  the lookup returns.

:meth:`IdempotencyWindow.find` runs a store lookup and the re-check of the window as one step, so no
caller can end a lookup (and let the window forget committed ids) before re-checking. Memory stays
bounded: a committed id is dropped as soon as every lookup running at its commit has ended.
"""

from __future__ import annotations

import asyncio
from collections import deque
from collections.abc import Awaitable, Callable, Sequence

from ordergate.domain.model import Order
from ordergate.domain.record import OrderRecord
from ordergate.errors import ClientOrderIdConflict, StoreUnavailable
from ordergate.service.sequencing import Outcome, Ticket


class IdempotencyWindow:
    def __init__(self) -> None:
        self._held: dict[str, Ticket] = {}
        self._commits = 0
        self._lookups: dict[int, int] = {}  # commit count when a lookup began -> lookups running
        self._committed: deque[tuple[int, str, Ticket]] = deque()

    def __len__(self) -> int:
        return len(self._held)

    def get(self, client_order_id: str) -> Ticket | None:
        """The ticket holding ``client_order_id`` (pending, or committed during a running lookup)."""
        return self._held.get(client_order_id)

    def hold(self, ticket: Ticket) -> None:
        """``ticket`` was decided or queued under its client order id: repeats must find it."""
        assert ticket.client_order_id is not None
        self._held[ticket.client_order_id] = ticket

    def release(self, ticket: Ticket) -> None:
        """``ticket`` failed: its id was never used (unless another ticket holds it now)."""
        key = ticket.client_order_id
        if key is not None and self._held.get(key) is ticket:
            del self._held[key]

    def committed(self, tickets: Sequence[Ticket]) -> None:
        """A group committed: the store shows these ids to every lookup that begins from now on."""
        for ticket in tickets:
            key = ticket.client_order_id
            if key is not None and self._held.get(key) is ticket:
                self._committed.append((self._commits, key, ticket))
        self._commits += 1
        self._forget()

    async def find(
        self, client_order_id: str, lookup: Callable[[str], Awaitable[OrderRecord | None]]
    ) -> Ticket | OrderRecord | None:
        """The ticket or stored order of ``client_order_id``, or ``None`` when it was never used.

        The store is asked first; whatever it says, the window is checked again before the lookup
        counts as ended, so an id committed while the store was being read is never missed.
        """
        began = self._begin()
        try:
            stored = await lookup(client_order_id)
            return stored if stored is not None else self._held.get(client_order_id)
        finally:
            self._end(began)

    async def find_many(
        self,
        client_order_ids: Sequence[str],
        lookup: Callable[[Sequence[str]], Awaitable[dict[str, OrderRecord]]],
    ) -> dict[str, Ticket | OrderRecord]:
        """:meth:`find` for many ids in one store round trip; ids never used are left out."""
        began = self._begin()
        try:
            found: dict[str, Ticket | OrderRecord] = dict(await lookup(client_order_ids))
            for key in client_order_ids:
                if key not in found:
                    held = self._held.get(key)
                    if held is not None:
                        found[key] = held
            return found
        finally:
            self._end(began)

    def _begin(self) -> int:
        began = self._commits
        self._lookups[began] = self._lookups.get(began, 0) + 1
        return began

    def _end(self, began: int) -> None:
        left = self._lookups[began] - 1
        if left:
            self._lookups[began] = left
        else:
            del self._lookups[began]
            self._forget()

    def _forget(self) -> None:
        """Drop committed ids that every running lookup will find in the store."""
        oldest = min(self._lookups) if self._lookups else self._commits
        committed = self._committed
        while committed and committed[0][0] < oldest:
            _, key, ticket = committed.popleft()
            if self._held.get(key) is ticket:
                del self._held[key]


async def outcome_after(known: Ticket, order: Order) -> Outcome | None:
    """The answer for ``order`` whose client order id ``known`` holds, once ``known`` is answered.

    The same order joins ``known`` (a replay, or its failure). Another order waits for ``known``'s
    outcome: a committed order under the id makes the 409 (or a replay, if it is the same order
    after all); a failed commit means the id was never used: ``None``, decide ``order`` itself.
    """
    if known.order == order:
        outcome = await asyncio.shield(known.future)
        return Outcome(outcome.record, True)
    try:
        outcome = await asyncio.shield(known.future)
    except StoreUnavailable:
        return None
    except ClientOrderIdConflict as conflict:
        if conflict.record is None:
            return None
        record = conflict.record
    else:
        record = outcome.record
    if record.order == order:
        return Outcome(record, True)
    raise ClientOrderIdConflict.of(record)
