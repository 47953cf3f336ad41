"""The store interface: what the service needs from durable storage, and nothing more.

A store persists groups of :class:`~ordergate.domain.record.OrderRecord` atomically and durably,
restores the committed state at start, and answers the read queries of the API and the CLI. It
never decides anything. Each engine (SQLite, PostgreSQL) implements :class:`Store`; the rules and
the HTTP layer only see this protocol. Every failure to commit or to read is raised as
:class:`~ordergate.errors.StoreUnavailable`, after rolling back whatever was not committed.

A store that several gateway processes share (PostgreSQL) also implements :class:`SharedStore`: there
the book in one process's memory is not authoritative, so each group of orders is decided inside a
transaction that holds the locks of its instruments (:meth:`SharedStore.lock_group`).
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Iterator, Sequence
from contextlib import AbstractAsyncContextManager
from dataclasses import dataclass
from enum import StrEnum
from typing import Generic, NamedTuple, Protocol, TypeAlias, TypeVar

from ordergate.domain.book import Opened, Position
from ordergate.domain.controls import ControlChange as ControlChange
from ordergate.domain.model import Scope, Side, Status
from ordergate.domain.record import OrderRecord, Trade
from ordergate.domain.risk import RiskChange
from ordergate.errors import StoreUnavailable

MAX_PAGE = 1000


class Durability(StrEnum):
    """``full``: every commit is fsync'ed (survives power loss); ``fast``: survives a killed process."""

    FULL = "full"
    FAST = "fast"


T = TypeVar("T")


class StreamPosition(NamedTuple):
    """Where an order stands in the log's commit-ordered stream (``GET /v1/events``).

    Order ids do not follow commit order when several processes share a database: an order with a
    lower id may commit after one with a higher id. The stream is ordered by ``(commit, order_id)``
    instead, where ``commit`` is a number the store gives each committing transaction such that,
    below the store's *watermark*, no transaction can ever commit again (PostgreSQL: the
    transaction id, and the oldest transaction still running). An embedded store commits in order_id
    order: its ``commit`` is always 0. Every order at or below a position is final.
    """

    commit: int
    order_id: int

    def token(self) -> str:
        """The wire form: ``ORDER_ID`` when ``commit`` is 0, ``COMMIT-ORDER_ID`` otherwise."""
        return f"{self.commit}-{self.order_id}" if self.commit else str(self.order_id)


START = StreamPosition(0, 0)
"""Before the first order."""


@dataclass(frozen=True, slots=True)
class Snapshot:
    """The committed state a gateway starts from."""

    opened: list[Opened]
    """The open positions, one group per order that opened them: what
    :meth:`~ordergate.domain.book.Book.restore` builds the book from in one pass (a store reads a
    million positions as a few rows, and no list of a million positions is ever built)."""
    last_order_id: int
    origin: StreamPosition
    """Where the gateway's event hub and counters start in the stream (the watermark at start)."""
    open_at_origin: int
    """Open positions counting only the orders at or below ``origin`` (the stream delivers the others)."""
    profiles: frozenset[str]
    """The fingerprints of the profiles the store keeps a document for: a gateway whose profiles are
    among them need not encode and record its document again."""

    def iter_positions(self) -> Iterator[Position]:
        """Every open position, one by one (for the views that want them so; the book uses :attr:`opened`)."""
        for strategy, instrument, order_id, at, users in self.opened:
            for user in users:
                yield Position(user, strategy, instrument, order_id, at)


@dataclass(frozen=True, slots=True)
class StreamPage:
    """Committed orders after a position, in stream order, and how far the stream is complete."""

    rows: list[tuple[StreamPosition, OrderRecord]]
    until: StreamPosition
    """Every order at or below this position is in ``rows`` or before the position asked for: the
    last stored row's position when the page is full, the store's watermark when it is not."""
    more: bool = False
    """The page is full: more orders may follow right after ``until``."""


@dataclass(frozen=True, slots=True)
class OrderQuery:
    strategy: str | None = None
    instrument: str | None = None
    user: str | None = None
    status: Status | None = None
    side: Side | None = None
    after: int = 0
    limit: int = 100


@dataclass(frozen=True, slots=True)
class BookQuery:
    """Filters and paging of open positions and of closed trades (the same for both)."""

    user: str | None = None
    strategy: str | None = None
    instrument: str | None = None
    after: int = 0
    limit: int = 100


PositionQuery: TypeAlias = BookQuery
TradeQuery: TypeAlias = BookQuery


@dataclass(frozen=True, slots=True)
class Page(Generic[T]):
    items: list[T]
    next: int | None
    """Cursor to pass as ``after`` for the next page; ``None`` on the last page."""


@dataclass(frozen=True, slots=True)
class TamperedRow:
    """A stored order row that does not decode: a value no ordergate writes, so it was altered.

    Log readers yield it in the row's place, so that ``verify`` reports it as a difference naming the
    order and the column, and an export stops with that message, instead of a traceback.
    """

    order_id: object
    """The row's order id as stored (an ``int`` unless that column itself was altered)."""
    column: str
    problem: str
    """What is wrong with the column, e.g. ``holds 'HOLD', not one of BUY, SELL``."""

    def describe(self) -> str:
        return f"order {self.order_id}: column {self.column} {self.problem}"


class Store(Protocol):
    @property
    def location(self) -> str:
        """Where the store lives, for messages (a file, or a database URL without its password)."""
        ...

    async def open(self, scope: Scope) -> Snapshot:
        """Migrate the schema if needed and return the committed state.

        Raises :class:`~ordergate.errors.StartupError` when the store cannot serve ``scope``
        (for example it holds open positions keyed by the other scope).
        """
        ...

    async def record_profiles(self, fingerprint: str, document: str) -> None:
        """Keep the profiles a fingerprint stands for (idempotent), so the log can be re-decided."""
        ...

    async def commit(self, records: Sequence[OrderRecord]) -> None:
        """Persist the records and their effects in one transaction, durably, or nothing of them.

        A record's ``control_change`` (a breaker trip) is stored in that same transaction, with the
        controls document it puts in force.
        """
        ...

    async def get_order(self, order_id: int) -> OrderRecord | None: ...

    async def find_client_order(self, client_order_id: str) -> OrderRecord | None: ...

    async def find_client_orders(self, client_order_ids: Sequence[str]) -> dict[str, OrderRecord]:
        """The stored orders among ``client_order_ids``, by client order id (one round trip)."""
        ...

    async def list_orders(self, query: OrderQuery) -> Page[OrderRecord]: ...

    async def list_positions(self, query: PositionQuery) -> Page[Position]: ...

    async def list_trades(self, query: TradeQuery) -> Page[Trade]: ...

    async def ping(self) -> None:
        """Raise :class:`~ordergate.errors.StoreUnavailable` unless the store answers now."""
        ...

    async def order_totals(self, until: StreamPosition) -> list[tuple[str, str, str | None, int]]:
        """``(status, side, reason, count)`` rows over the orders at or below ``until`` in the stream."""
        ...

    async def stream_page(self, after: StreamPosition, limit: int) -> StreamPage:
        """At most ``limit`` committed orders after ``after`` in stream order, below the watermark."""
        ...

    async def stream_head(self) -> StreamPosition:
        """The watermark now: every order at or below it is committed and final."""
        ...

    async def stream_position(self, order_id: int) -> StreamPosition | None:
        """The stream position of a committed order (``None``: no such order)."""
        ...

    async def record_control_change(self, change: ControlChange, document: str) -> str:
        """Store ``change`` and the controls document it puts in force, in one transaction.

        Returns the document now in force, which is ``document`` unless the store applied the change
        to controls another process changed meanwhile (a shared store): callers use that one.
        """
        ...

    async def current_controls(self) -> str | None:
        """The document of the controls in force, or ``None`` when no control was ever set."""
        ...

    async def control_changes(self, limit: int) -> list[ControlChange]:
        """The last ``limit`` changes, oldest first."""
        ...

    async def record_risk_change(self, change: RiskChange, document: str) -> str:
        """Store ``change`` and the risk policy document it puts in force (kept by ``change.fingerprint``,
        idempotent), in one transaction; returns the document now in force (``document``)."""
        ...

    async def current_risk(self) -> str | None:
        """The document of the risk policy in force, or ``None`` when none was ever set."""
        ...

    async def risk_changes(self, limit: int, kind: str | None = None) -> list[RiskChange]:
        """The last ``limit`` changes of the risk policy (of one ``kind``, or all), oldest first."""
        ...

    async def recent_orders(self, since: str) -> list[OrderRecord]:
        """Every committed order received at or after ``since`` (the log's timestamp form), in order_id
        order: what the risk state is rebuilt from (:mod:`ordergate.domain.risk`)."""
        ...

    async def close(self) -> None: ...


class LogReader(Protocol):
    """Synchronous, read-only access to one consistent snapshot of the whole log: ``verify``, exports.

    Every order carries its hash-chain link (``chain_hash``) and the fingerprints of the profiles and
    controls it was decided under; :meth:`chain_key` is the store's chain policy
    (:mod:`ordergate.domain.chain`).
    """

    def iter_orders(self) -> Iterator[OrderRecord | TamperedRow]:
        """Every order in order_id order, streamed; a row that does not decode comes as a :class:`TamperedRow`."""
        ...

    def iter_positions(self) -> Iterator[Position]:
        """Every open position, streamed."""
        ...

    def iter_trades(self) -> Iterator[Trade]:
        """Every closed round trip, streamed."""
        ...

    def open_positions(self) -> list[Position]: ...

    def profiles(self, fingerprint: str) -> str | None:
        """The profiles document a fingerprint stands for."""
        ...

    def controls(self, fingerprint: str) -> str | None:
        """The controls document a fingerprint stands for."""
        ...

    def risk(self, fingerprint: str) -> str | None:
        """The risk policy document a fingerprint stands for."""
        ...

    def caused_changes(self) -> dict[int, ControlChange]:
        """The control changes orders caused (breaker trips), by the order id that caused each."""
        ...

    def chain_key(self, record: OrderRecord) -> str:
        """The hash chain ``record`` belongs to."""
        ...

    def close(self) -> None: ...


class CommitInDoubt(StoreUnavailable):
    """The connection broke while ``COMMIT`` was on its way: the group may or may not be stored.

    :meth:`outcome` finds out, once the database answers again (and the session that was
    committing is gone): ``True`` committed, ``False`` not, ``None`` still unknown after waiting.
    Nobody may be answered before that.
    """

    def __init__(self, message: str, outcome: Callable[[], Awaitable[bool | None]]) -> None:
        super().__init__(message)
        self._outcome = outcome

    async def outcome(self) -> bool | None:
        return await self._outcome()


@dataclass(frozen=True, slots=True)
class LockedGroup:
    """What a shared store read for a group of orders once it held the group's locks."""

    scope: Scope | None
    """The scope the database is kept in now (``None``: not recorded yet)."""
    positions: list[Position]
    """Every open position in the group's instruments: authoritative until the transaction ends."""
    stored: dict[str, OrderRecord]
    """Orders already stored under the group's client order ids, by client order id."""
    order_ids: list[int]
    """Fresh order ids, ascending, drawn after the locks were taken (one per order of the group)."""
    controls_read: bool = False
    """Whether the store read the trading controls in force under its controls lock (a store that
    cannot keep controls leaves this ``False``, and the sequencer's own controls hold)."""
    controls: str | None = None
    """The document of the trading controls in force (``None``: no control was ever set)."""
    busy_instruments: frozenset[str] = frozenset()
    """Instruments whose lock another transaction held too long to wait for: not locked, not read."""
    busy_client_order_ids: frozenset[str] = frozenset()
    """Client order ids whose lock another transaction held too long to wait for: not locked, not read."""
    risk_read: bool = False
    """Whether the store read the risk policy in force under its risk lock (a store that cannot keep
    risk policies leaves this ``False``, and the group is decided without limits)."""
    risk: str | None = None
    """The document of the risk policy in force (``None``: none was ever set)."""
    risk_orders: Sequence[OrderRecord] = ()
    """Asked for with a :class:`RiskRead` (the exclusive risk lock): the committed orders it names, in
    order_id order."""
    risk_counts: dict[tuple[str, str], int] | None = None
    """Asked for with a :class:`RiskRead` that rebuilds: the open positions per (user, strategy that opened
    them); ``None`` when it catches up."""


class RiskRead(NamedTuple):
    """What a group transaction reads of the log under the *exclusive* risk lock, to bring its process's
    risk state (:class:`~ordergate.domain.risk.RiskState`) up to date before deciding under limits.

    Under that lock no other group runs anywhere, and order ids are drawn inside it, so "the orders
    with a greater order_id than the last one this process saw" is exactly what other processes
    committed since (:mod:`ordergate.service.shared_sequencer`).
    """

    after: int | None
    """Catch up: every committed order with a greater order_id. ``None``: rebuild instead."""
    since: str
    """Rebuild: every committed order received at or after this (the log's timestamp form; the risk
    horizon), and the open positions counted per (user, strategy)."""


class OrderGroup(Protocol):
    """One open transaction of a :class:`SharedStore` that holds the locks of a group of orders."""

    @property
    def locked(self) -> LockedGroup: ...

    async def commit(self, records: Sequence[OrderRecord]) -> None:
        """Write the records and their effects and commit; on failure nothing of them is stored.

        Raises :class:`CommitInDoubt` when the outcome cannot be known at once.
        """
        ...


class ClusterGroup(OrderGroup, Protocol):
    """A transaction of a :class:`SharedStore` that holds every process still: the controls and the risk
    lock exclusively, so no group of any process decides (or holds an instrument lock) until it ends.

    Its :attr:`~OrderGroup.locked` holds *every* open position and no order id: the caller learns from
    the positions which orders it makes, then draws their ids with :meth:`reserve`. A flatten and the
    session's square-off are such transactions (:mod:`ordergate.service.shared_sequencer`).
    """

    @property
    def squared_off(self) -> str | None:
        """The day (``YYYY-MM-DD``) of the last square-off stored, read under the lock (``None``: never)."""
        ...

    async def reserve(self, instruments: Sequence[str], count: int) -> list[int]:
        """Draw ``count`` fresh order ids (ascending) and read the hash-chain heads of ``instruments``."""
        ...

    async def commit(self, records: Sequence[OrderRecord], mark: tuple[RiskChange, str] | None = None) -> None:
        """As :meth:`OrderGroup.commit`, storing ``mark`` (a ``square_off`` risk change, with the document of
        the policy it names) in the same transaction."""
        ...


class SharedStore(Store, Protocol):
    def lock_cluster(self, *, risk: RiskRead | None = None) -> AbstractAsyncContextManager[ClusterGroup]:
        """Open a :class:`ClusterGroup`: wait (up to the lock timeout) for every group deciding now, then
        read the scope, the controls, the risk policy (and what ``risk`` names) and every open position.
        Raises :class:`~ordergate.errors.StoreUnavailable` when the store cannot be reached or the wait
        timed out."""
        ...

    def lock_group(
        self,
        instruments: Sequence[str],
        client_order_ids: Sequence[str],
        reserve: int,
        *,
        patient: bool = False,
        risk: RiskRead | None = None,
    ) -> AbstractAsyncContextManager[OrderGroup]:
        """Open a transaction holding the locks of ``instruments`` and ``client_order_ids`` and read them.

        While it is open no other process can change a position in those instruments or store an
        order under those client order ids. Leaving it without :meth:`OrderGroup.commit` rolls back.
        An impatient call waits only briefly for each lock and reports what it could not lock in
        :attr:`LockedGroup.busy_instruments` and :attr:`LockedGroup.busy_client_order_ids` (holding
        the rest); a ``patient`` one waits up to the store's lock timeout and then raises.
        ``reserve`` is how many fresh order ids to draw at most. Raises
        :class:`~ordergate.errors.StoreUnavailable` when the store cannot be reached or a patient wait
        timed out.

        Before any instrument lock it takes the risk lock: shared without ``risk``, exclusive with it
        (then it also reads what ``risk`` names). Either way it reads the risk policy in force under it.
        """
        ...
