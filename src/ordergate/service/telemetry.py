"""What the gateway has decided, counted for people and for Prometheus: ``GET /v1/stats`` and ``/metrics``.

:class:`Telemetry` counts committed orders only, from two feeds: the log's committed orders
(:meth:`Telemetry.on_logged`: every process's on a shared PostgreSQL store, from the log's tail, so
the counters and open positions are the cluster's, never per-process deltas over a shared book) and
this process's own commit groups (:meth:`Telemetry.on_commit`: how long its orders waited for their
commit, how big its groups were). It starts from the log's own totals at the stream position it
starts from (read once at start-up), so the counters describe the whole order log and never go
back on a restart. Per group it does plain integer arithmetic on the event loop (no locks, no
allocation per order beyond a dict lookup); the Prometheus families are built only when ``/metrics``
is scraped (:meth:`Telemetry.collect`, the prometheus-client custom collector protocol).

The decision latency is the time from an order's decision until its group was durably committed,
which is what the sequencer adds to a request (a caller is answered right after). The throughput
window keeps accepted and rejected orders per second of commit for the last five minutes, keyed by
the monotonic clock (seconds since the process started, read once per group), so a step of the wall
clock in either direction neither blanks nor mixes it; only ``until`` is a wall-clock second, for display.

Store failures are counted by the metering wrapper every store is used through
(:class:`~ordergate.store.metered.MeteredStore`); the telemetry shows its :class:`StoreErrors`.
"""

from __future__ import annotations

import asyncio
import bisect
import logging
import time
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, HistogramMetricFamily, Metric

from ordergate.domain.model import Action, Reason, Side, Status
from ordergate.domain.record import OrderRecord
from ordergate.errors import StoreUnavailable
from ordergate.store.base import START, StreamPosition
from ordergate.store.metered import StoreErrors

log = logging.getLogger(__name__)

WINDOW_SECONDS = 300
_NEVER = -(2**62)
"""The second a throughput slot holds before it ever counted one."""
LATENCY_BUCKETS = (0.0005, 0.001, 0.002, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0)
GROUP_SIZE_BUCKETS = (1, 2, 5, 10, 20, 50, 100, 200, 500, 1000)

OPENED = Action.OPENED

CountKey = tuple[Status, Side, Reason | None]
"""(status, side, reason): the labels of ``ordergate_orders_total``."""


@dataclass(slots=True)
class LogTotals:
    """Totals of an order log: orders by (status, side, reason), and its last order id."""

    counts: dict[CountKey, int] = field(default_factory=dict)
    until: StreamPosition = START
    """The stream position the totals count every order up to."""


class _Histogram:
    """Cumulative-at-scrape histogram: one ``bisect`` and two additions per observation."""

    __slots__ = ("bounds", "buckets", "count", "total")

    def __init__(self, bounds: Sequence[float]) -> None:
        self.bounds = tuple(bounds)
        self.buckets = [0] * (len(self.bounds) + 1)
        self.count = 0
        self.total = 0.0

    def observe(self, value: float, times: int = 1) -> None:
        self.buckets[bisect.bisect_left(self.bounds, value)] += times
        self.count += times
        self.total += value * times

    def family(self, name: str, documentation: str) -> HistogramMetricFamily:
        cumulative: list[tuple[str, float]] = []
        running = 0
        for bound, count in zip((*self.bounds, float("inf")), self.buckets, strict=True):
            running += count
            cumulative.append(("+Inf" if bound == float("inf") else _number(bound), running))
        family = HistogramMetricFamily(name, documentation)
        family.add_metric([], cumulative, self.total)
        return family


class Telemetry:
    """Counters of the committed log; a prometheus-client collector (:meth:`collect`)."""

    def __init__(
        self,
        last_order_id: int,
        open_positions: int,
        *,
        wall_clock: Callable[[], float] = time.time,
        monotonic: Callable[[], float] = time.monotonic,
        window: int = WINDOW_SECONDS,
        store_errors: StoreErrors | None = None,
        origin: StreamPosition | None = None,
    ) -> None:
        self._counts: dict[CountKey, int] = {}
        """Orders the log committed since the start (every process's on a shared store)."""
        self._history: dict[CountKey, int] | None = None
        """Orders of the log up to ``_history_until``, once read."""
        self._history_until = origin if origin is not None else StreamPosition(0, last_order_id)
        self._history_problem: str | None = None
        self._history_read = asyncio.Event()
        self.last_order_id = last_order_id
        self.open_positions = open_positions
        self._clock = wall_clock
        self._monotonic = monotonic
        self._started = monotonic()
        self._window = window
        self._accepted = [0] * window
        self._rejected = [0] * window
        self._slot_second = [_NEVER] * window
        self._latency = _Histogram(LATENCY_BUCKETS)
        self._group_size = _Histogram(GROUP_SIZE_BUCKETS)
        self._store_errors = store_errors if store_errors is not None else StoreErrors()
        self._seconds: dict[str, int] = {}
        self.started_at = datetime.fromtimestamp(wall_clock(), UTC).isoformat(timespec="seconds").replace("+00:00", "Z")

    # -- the listeners ----------------------------------------------------------------------------

    def on_commit(self, records: Sequence[OrderRecord]) -> None:
        """This process committed ``records`` (one group): how long they waited, how big the group was."""
        if not records:
            return
        now = self._clock()
        latency = self._latency
        bounds, buckets = latency.bounds, latency.buckets
        self._group_size.observe(len(records))
        last_head = ""
        second = -1
        for record in records:
            stamp = record.received_at
            head = stamp[:19]
            if head != last_head:  # a group's orders mostly share their second
                known = self._second_of(head)
                if known is None:
                    continue
                last_head, second = head, known
            try:
                decided = second + int(stamp[20:26]) * 1e-6
            except ValueError:
                decided = float(second)
            waited = now - decided if now > decided else 0.0
            buckets[bisect.bisect_left(bounds, waited)] += 1
            latency.count += 1
            latency.total += waited

    def on_logged(self, records: Sequence[OrderRecord]) -> None:
        """The log committed ``records`` (any process's, in stream order): the counters of ``/v1/stats``."""
        if not records:
            return
        counts = self._counts
        net = accepted = 0
        last = self.last_order_id
        for record in records:
            decision = record.decision
            key = (decision.status, record.order.side, decision.reason)
            counts[key] = counts.get(key, 0) + 1
            if decision.status is Status.ACCEPTED:
                accepted += 1
                for effect in decision.applied:
                    net += 1 if effect.action is OPENED else -1
            if record.order_id > last:
                last = record.order_id
        slot = self._slot(int(self._monotonic() - self._started))
        self._accepted[slot] += accepted
        self._rejected[slot] += len(records) - accepted
        self.open_positions += net
        self.last_order_id = last

    def _slot(self, second: int) -> int:
        """The window slot counting monotonic ``second``, reset if it held an older second."""
        slot = second % self._window
        if self._slot_second[slot] != second:  # the monotonic clock never goes back: it held an older one
            self._slot_second[slot] = second
            self._accepted[slot] = self._rejected[slot] = 0
        return slot

    def set_history(self, totals: LogTotals) -> None:
        """The log's totals before this process started (up to the last order id it started from)."""
        if totals.until != self._history_until:
            raise ValueError(f"history up to {totals.until}, expected {self._history_until}")
        self._history = dict(totals.counts)
        self._history_read.set()

    def history_failed(self, problem: str) -> None:
        self._history_problem = problem
        self._history_read.set()

    async def wait_for_history(self, timeout: float = 30.0) -> None:
        """Return once :meth:`totals` is exact; raise :class:`StoreUnavailable` if it cannot be."""
        try:
            await asyncio.wait_for(self._history_read.wait(), timeout)
        except TimeoutError:
            raise StoreUnavailable("still reading the order log's totals", retry_after=5) from None
        if self._history_problem is not None:
            raise StoreUnavailable(f"could not read the order log's totals: {self._history_problem}")

    def _second_of(self, head: str) -> int | None:
        """Unix second of a ``2026-01-02T03:04:05`` (UTC) stamp head; ``None`` if it is not one."""
        second = self._seconds.get(head)
        if second is None:
            try:
                second = int(datetime.fromisoformat(head).replace(tzinfo=UTC).timestamp())
            except ValueError:
                return None
            if len(self._seconds) > 4 * self._window:
                self._seconds.clear()
            self._seconds[head] = second
        return second

    # -- reading ----------------------------------------------------------------------------------

    def totals(self) -> dict[str, Any]:
        """The counters of ``GET /v1/stats`` over the whole log (after :meth:`wait_for_history`)."""
        accepted = rejected = 0
        by_reason = {reason.value: 0 for reason in Reason}
        by_side = {side.value: 0 for side in Side}
        combined = dict(self._history or {})
        for key, count in self._counts.items():
            combined[key] = combined.get(key, 0) + count
        for (status, side, reason), count in combined.items():
            by_side[side] += count
            if status is Status.ACCEPTED:
                accepted += count
            else:
                rejected += count
                if reason is not None:
                    by_reason[reason] += count
        return {
            "orders": accepted + rejected,
            "accepted": accepted,
            "rejected": rejected,
            "rejected_by_reason": by_reason,
            "by_side": by_side,
            "open_positions": self.open_positions,
            "last_order_id": self.last_order_id,
        }

    def throughput(self) -> dict[str, Any]:
        """Accepted and rejected orders per second of commit, oldest first; the last entry is now.

        The seconds are counted on the monotonic clock; ``until`` is the wall-clock second of now, so
        a display can label the entries (entry ``k`` is ``until - seconds + 1 + k``).
        """
        now = int(self._monotonic() - self._started)
        accepted: list[int] = []
        rejected: list[int] = []
        for second in range(now - self._window + 1, now + 1):
            slot = second % self._window
            held = self._slot_second[slot] == second
            accepted.append(self._accepted[slot] if held else 0)
            rejected.append(self._rejected[slot] if held else 0)
        return {"until": int(self._clock()), "seconds": self._window, "accepted": accepted, "rejected": rejected}

    def collect(self) -> Iterable[Metric]:
        orders = CounterMetricFamily(
            "ordergate_orders",
            "Orders the log committed since this process started (every process's on a shared store), "
            "by status, side and reason.",
            labels=("status", "side", "reason"),
        )
        for (status, side, reason), count in sorted(self._counts.items(), key=lambda item: str(item[0])):
            orders.add_metric([status.value, side.value, reason.value if reason is not None else ""], count)
        yield orders
        yield self._latency.family(
            "ordergate_decision_latency_seconds",
            "Seconds from an order's decision until it was durably committed and its caller answered.",
        )
        yield self._group_size.family(
            "ordergate_commit_group_size", "Orders per committed group (one transaction and one fsync per group)."
        )
        yield GaugeMetricFamily("ordergate_open_positions", "Open positions, committed.", value=self.open_positions)
        yield GaugeMetricFamily(
            "ordergate_last_order_id", "The last committed order id.", value=float(self.last_order_id)
        )
        errors = CounterMetricFamily(
            "ordergate_store_errors",
            "Store operations that failed (each failed commit answers its orders 503).",
            labels=("operation",),
        )
        for operation, count in self._store_errors.counts.items():
            errors.add_metric([operation], count)
        yield errors


def _number(value: float) -> str:
    return repr(float(value))


def totals_from_rows(rows: Iterable[tuple[str, str, str | None, int]], until: StreamPosition) -> LogTotals:
    """Build :class:`LogTotals` from ``(status, side, reason, count)`` rows of a store.

    Orders whose stored values were altered into ones no ordergate writes are left out and logged
    (``ordergate verify`` names them): the counters must not fail for them.
    """
    counts: dict[CountKey, int] = {}
    for status, side, reason, count in rows:
        try:
            key = (Status(status), Side(side), Reason(reason) if reason is not None else None)
        except ValueError:
            log.error(
                "%d orders left out of the totals: altered values %r (ordergate verify)", count, (status, side, reason)
            )
            continue
        counts[key] = counts.get(key, 0) + count
    return LogTotals(counts, until)
