"""One metering wrapper for any store: every failed operation is counted, then re-raised unchanged.

:class:`MeteredStore` stands in front of whichever engine the composition root built (the embedded
or the shared one), so the sequencer, the API and the operator routes all go through it and the
``ordergate_store_errors_total`` counter (:class:`StoreErrors`) sees every failure, of commits and
group transactions (``commit``) as of reads (``read``). It adds nothing else: rollback and the 503
answers are the sequencer's, untouched.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Awaitable, Sequence
from contextlib import asynccontextmanager
from typing import TypeVar

from ordergate.domain.book import Position
from ordergate.domain.model import Scope
from ordergate.domain.record import OrderRecord, Trade
from ordergate.domain.risk import RiskChange
from ordergate.errors import ReadsBusy, StoreUnavailable
from ordergate.store.base import (
    ClusterGroup,
    ControlChange,
    OrderGroup,
    OrderQuery,
    Page,
    PositionQuery,
    RiskRead,
    SharedStore,
    Snapshot,
    Store,
    StreamPage,
    StreamPosition,
    TradeQuery,
)

T = TypeVar("T")


class StoreErrors:
    """Failed store operations by kind (``commit``, ``read``), since start."""

    KINDS = ("commit", "read")

    def __init__(self) -> None:
        self.counts = dict.fromkeys(self.KINDS, 0)

    def record(self, kind: str) -> None:
        self.counts[kind] = self.counts.get(kind, 0) + 1


class MeteredStore:
    """Any :class:`~ordergate.store.base.Store`, metered."""

    def __init__(self, inner: Store, errors: StoreErrors) -> None:
        self.inner = inner
        self.errors = errors

    @property
    def location(self) -> str:
        return self.inner.location

    async def _counted(self, kind: str, work: Awaitable[T]) -> T:
        try:
            return await work
        except ReadsBusy:
            raise  # refused by admission control before it reached the store: not a store failure
        except StoreUnavailable:
            self.errors.record(kind)
            raise

    # -- the store interface -----------------------------------------------------------------------

    async def open(self, scope: Scope) -> Snapshot:
        return await self.inner.open(scope)

    async def close(self) -> None:
        await self.inner.close()

    async def record_profiles(self, fingerprint: str, document: str) -> None:
        await self._counted("commit", self.inner.record_profiles(fingerprint, document))

    async def commit(self, records: Sequence[OrderRecord]) -> None:
        await self._counted("commit", self.inner.commit(records))

    async def get_order(self, order_id: int) -> OrderRecord | None:
        return await self._counted("read", self.inner.get_order(order_id))

    async def find_client_order(self, client_order_id: str) -> OrderRecord | None:
        return await self._counted("read", self.inner.find_client_order(client_order_id))

    async def find_client_orders(self, client_order_ids: Sequence[str]) -> dict[str, OrderRecord]:
        return await self._counted("read", self.inner.find_client_orders(client_order_ids))

    async def list_orders(self, query: OrderQuery) -> Page[OrderRecord]:
        return await self._counted("read", self.inner.list_orders(query))

    async def list_positions(self, query: PositionQuery) -> Page[Position]:
        return await self._counted("read", self.inner.list_positions(query))

    async def list_trades(self, query: TradeQuery) -> Page[Trade]:
        return await self._counted("read", self.inner.list_trades(query))

    async def order_totals(self, until: StreamPosition) -> list[tuple[str, str, str | None, int]]:
        return await self._counted("read", self.inner.order_totals(until))

    async def stream_page(self, after: StreamPosition, limit: int) -> StreamPage:
        return await self._counted("read", self.inner.stream_page(after, limit))

    async def stream_head(self) -> StreamPosition:
        return await self._counted("read", self.inner.stream_head())

    async def stream_position(self, order_id: int) -> StreamPosition | None:
        return await self._counted("read", self.inner.stream_position(order_id))

    async def ping(self) -> None:
        await self._counted("read", self.inner.ping())

    # -- trading controls --------------------------------------------------------------------------

    async def record_control_change(self, change: ControlChange, document: str) -> str:
        return await self._counted("commit", self.inner.record_control_change(change, document))

    async def current_controls(self) -> str | None:
        return await self._counted("read", self.inner.current_controls())

    async def control_changes(self, limit: int) -> list[ControlChange]:
        return await self._counted("read", self.inner.control_changes(limit))

    # -- pre-trade risk ----------------------------------------------------------------------------

    async def record_risk_change(self, change: RiskChange, document: str) -> str:
        return await self._counted("commit", self.inner.record_risk_change(change, document))

    async def current_risk(self) -> str | None:
        return await self._counted("read", self.inner.current_risk())

    async def risk_changes(self, limit: int, kind: str | None = None) -> list[RiskChange]:
        return await self._counted("read", self.inner.risk_changes(limit, kind))

    async def recent_orders(self, since: str) -> list[OrderRecord]:
        return await self._counted("read", self.inner.recent_orders(since))


class MeteredSharedStore(MeteredStore):
    """A metered :class:`~ordergate.store.base.SharedStore`: its group transactions are counted too."""

    def __init__(self, inner: SharedStore, errors: StoreErrors) -> None:
        super().__init__(inner, errors)
        self.shared = inner

    @asynccontextmanager
    async def lock_group(
        self,
        instruments: Sequence[str],
        client_order_ids: Sequence[str],
        reserve: int,
        *,
        patient: bool = False,
        risk: RiskRead | None = None,
    ) -> AsyncIterator[OrderGroup]:
        try:
            async with self.shared.lock_group(
                instruments, client_order_ids, reserve, patient=patient, risk=risk
            ) as group:
                yield group
        except StoreUnavailable:
            self.errors.record("commit")
            raise

    @asynccontextmanager
    async def lock_cluster(self, *, risk: RiskRead | None = None) -> AsyncIterator[ClusterGroup]:
        try:
            async with self.shared.lock_cluster(risk=risk) as group:
                yield group
        except StoreUnavailable:
            self.errors.record("commit")
            raise
