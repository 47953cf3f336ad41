"""Telemetry: counts of the committed log, the throughput window, and the Prometheus families."""

from __future__ import annotations

from collections.abc import Sequence

import pytest
from prometheus_client import CollectorRegistry, generate_latest
from prometheus_client.parser import text_string_to_metric_families

from ordergate.domain.book import Position
from ordergate.domain.model import Action, Decision, Effect, Order, Reason, Scope, Side, Status
from ordergate.domain.record import OrderRecord
from ordergate.errors import StoreUnavailable
from ordergate.service.telemetry import LogTotals, Telemetry, totals_from_rows
from ordergate.store.base import StreamPosition
from ordergate.store.metered import MeteredStore, StoreErrors

NOW = 1_800_000_000.0  # 2027-01-15T08:00:00Z
STAMP = "2027-01-15T08:00:00"


class Clock:
    def __init__(self, now: float) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now


def record(
    order_id: int, side: Side, status: Status, reason: Reason | None, effects: Sequence[Effect], at: str
) -> OrderRecord:
    return OrderRecord(
        order_id=order_id,
        received_at=at,
        order=Order("S1", "ACC", side),
        decision=Decision(status, reason, tuple(effects), ()),
        scope=Scope.ACCOUNT,
        profile_fingerprint="f",
        client_order_id=None,
        opened=tuple(Position(e.user, "S1", "ACC", order_id, at) for e in effects if e.action is Action.OPENED),
        closed=tuple(Position(e.user, "S1", "ACC", 1, at) for e in effects if e.action is Action.CLOSED),
    )


def committed(telemetry: Telemetry, records: Sequence[OrderRecord]) -> None:
    """As the embedded store's feed tells it: this process's commit is also the log's."""
    telemetry.on_commit(records)
    telemetry.on_logged(records)


def opened(user: str) -> Effect:
    return Effect(user, Action.OPENED, "S1")


def closed(user: str) -> Effect:
    return Effect(user, Action.CLOSED, "S1")


def samples(telemetry: Telemetry) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    registry = CollectorRegistry()
    registry.register(telemetry)
    text = generate_latest(registry).decode()
    return {
        (s.name, tuple(sorted(s.labels.items()))): s.value
        for family in text_string_to_metric_families(text)
        for s in family.samples
    }


@pytest.mark.anyio
async def test_stats_add_the_log_before_the_start_and_prometheus_counts_this_process() -> None:
    clock = Clock(NOW)
    telemetry = Telemetry(last_order_id=7, open_positions=5, wall_clock=clock)
    clock.now = NOW + 0.25
    committed(
        telemetry,
        [
            record(8, Side.BUY, Status.ACCEPTED, None, [opened("a"), opened("b")], f"{STAMP}.100000Z"),
            record(9, Side.SELL, Status.ACCEPTED, None, [closed("a")], f"{STAMP}.200000Z"),
            record(10, Side.BUY, Status.REJECTED, Reason.ALREADY_HOLDING, [], f"{STAMP}.200000Z"),
        ],
    )
    with pytest.raises(StoreUnavailable, match="still reading"):
        await telemetry.wait_for_history(timeout=0.01)  # the log's totals are read in the background
    history = [("ACCEPTED", "BUY", None, 5), ("REJECTED", "SELL", "NO_OPEN_POSITION", 2)]
    telemetry.set_history(totals_from_rows(history, StreamPosition(0, 7)))
    await telemetry.wait_for_history(timeout=0.01)
    totals = telemetry.totals()
    assert totals == {
        "orders": 10,
        "accepted": 7,
        "rejected": 3,
        "rejected_by_reason": {**{reason.value: 0 for reason in Reason}, "ALREADY_HOLDING": 1, "NO_OPEN_POSITION": 2},
        "by_side": {"BUY": 7, "SELL": 3},
        "open_positions": 6,
        "last_order_id": 10,
    }
    values = samples(telemetry)
    assert values[("ordergate_orders_total", (("reason", ""), ("side", "BUY"), ("status", "ACCEPTED")))] == 1
    assert (
        values[("ordergate_orders_total", (("reason", "ALREADY_HOLDING"), ("side", "BUY"), ("status", "REJECTED")))]
        == 1
    )
    assert values[("ordergate_decision_latency_seconds_count", ())] == 3
    assert values[("ordergate_decision_latency_seconds_sum", ())] == pytest.approx(0.15 + 0.05 + 0.05)
    assert values[("ordergate_decision_latency_seconds_bucket", (("le", "0.1"),))] == 2
    assert values[("ordergate_commit_group_size_count", ())] == 1
    assert values[("ordergate_commit_group_size_bucket", (("le", "2.0"),))] == 0
    assert values[("ordergate_commit_group_size_bucket", (("le", "5.0"),))] == 1
    assert values[("ordergate_open_positions", ())] == 6
    assert values[("ordergate_last_order_id", ())] == 10


def test_throughput_counts_accepted_and_rejected_per_second_of_commit_for_five_minutes() -> None:
    wall, monotonic = Clock(NOW), Clock(50.0)
    telemetry = Telemetry(0, 0, wall_clock=wall, monotonic=monotonic)
    monotonic.now = 50.5
    committed(telemetry, [record(1, Side.BUY, Status.ACCEPTED, None, [opened("a")], f"{STAMP}.5Z")])
    monotonic.now = 52.2
    committed(
        telemetry,
        [
            record(2, Side.SELL, Status.REJECTED, Reason.NO_OPEN_POSITION, [], "2027-01-15T08:00:02.000000Z"),
            record(3, Side.SELL, Status.REJECTED, Reason.NO_OPEN_POSITION, [], "2027-01-15T08:00:02.100000Z"),
        ],
    )
    wall.now, monotonic.now = NOW + 2, 52.9
    window = telemetry.throughput()
    assert (window["until"], window["seconds"], len(window["accepted"])) == (int(NOW) + 2, 300, 300)
    assert window["accepted"][-3:] == [1, 0, 0]
    assert window["rejected"][-3:] == [0, 0, 2]
    monotonic.now = 351.0  # the first second has left the window, the last one not yet
    window = telemetry.throughput()
    assert sum(window["accepted"]) == 0
    assert sum(window["rejected"]) == 2
    monotonic.now = 450.0
    assert sum(telemetry.throughput()["rejected"]) == 0


def test_a_wall_clock_step_back_or_forward_neither_blanks_nor_corrupts_the_throughput() -> None:
    wall, monotonic = Clock(NOW), Clock(1000.0)
    telemetry = Telemetry(0, 0, wall_clock=wall, monotonic=monotonic)
    committed(telemetry, [record(1, Side.BUY, Status.ACCEPTED, None, [opened("a")], f"{STAMP}.000000Z")])

    wall.now, monotonic.now = NOW - 3600 + 1, 1001.0  # NTP steps the clock an hour back
    committed(
        telemetry, [record(2, Side.SELL, Status.REJECTED, Reason.NO_OPEN_POSITION, [], "2027-01-15T07:00:01.000000Z")]
    )
    window = telemetry.throughput()
    assert window["until"] == int(NOW) - 3600 + 1  # shown against the clock as it now reads
    assert (window["accepted"][-2:], window["rejected"][-2:]) == ([1, 0], [0, 1])

    wall.now, monotonic.now = NOW + 7200 + 2, 1002.0  # and two hours forward
    committed(
        telemetry,
        [
            record(3, Side.BUY, Status.ACCEPTED, None, [opened("a")], "2027-01-15T10:00:02.000000Z"),
            record(4, Side.BUY, Status.ACCEPTED, None, [opened("b")], "2027-01-15T10:00:02.000000Z"),
        ],
    )
    window = telemetry.throughput()
    assert window["until"] == int(NOW) + 7200 + 2
    assert (window["accepted"][-3:], window["rejected"][-3:]) == ([1, 0, 2], [0, 1, 0])
    assert (sum(window["accepted"]), sum(window["rejected"])) == (3, 1)

    wall.now = NOW - 86400  # a step alone, with no order, moves nothing either
    window = telemetry.throughput()
    assert (window["accepted"][-3:], window["rejected"][-3:]) == ([1, 0, 2], [0, 1, 0])


def test_a_timestamp_it_cannot_read_still_counts_the_order() -> None:
    telemetry = Telemetry(0, 0, wall_clock=Clock(NOW))
    committed(telemetry, [record(1, Side.BUY, Status.ACCEPTED, None, [opened("a")], "not a time")])
    telemetry.set_history(LogTotals())
    assert telemetry.totals()["orders"] == 1
    assert samples(telemetry)[("ordergate_decision_latency_seconds_count", ())] == 0


class FailingStore:
    async def commit(self, records: Sequence[OrderRecord]) -> None:
        raise StoreUnavailable("disk full")

    async def ping(self) -> None:
        raise StoreUnavailable("gone")


@pytest.mark.anyio
async def test_the_metered_store_counts_failures_and_passes_them_on() -> None:
    errors = StoreErrors()
    telemetry = Telemetry(0, 0, wall_clock=Clock(NOW), store_errors=errors)
    store = MeteredStore(FailingStore(), errors)  # type: ignore[arg-type]
    for _ in range(2):
        with pytest.raises(StoreUnavailable, match="disk full"):
            await store.commit([])
    with pytest.raises(StoreUnavailable):
        await store.ping()
    values = samples(telemetry)
    assert values[("ordergate_store_errors_total", (("operation", "commit"),))] == 2
    assert values[("ordergate_store_errors_total", (("operation", "read"),))] == 1


def test_orders_other_processes_committed_count_in_the_totals_and_positions_without_a_latency() -> None:
    """On a shared store the log's tail tells the counters every process's orders (no opened/closed
    positions in what it reads back: the effects say it), and only this process's commits have a latency."""
    telemetry = Telemetry(0, 3, wall_clock=Clock(NOW))
    elsewhere = [
        record(1, Side.SELL, Status.ACCEPTED, None, [closed("a"), closed("b")], f"{STAMP}.1Z")._replace(closed=()),
        record(2, Side.BUY, Status.ACCEPTED, None, [opened("c")], f"{STAMP}.2Z")._replace(opened=()),
    ]
    telemetry.on_logged(elsewhere)
    telemetry.set_history(LogTotals())
    totals = telemetry.totals()
    assert (totals["orders"], totals["open_positions"], totals["last_order_id"]) == (2, 2, 2)
    assert samples(telemetry)[("ordergate_decision_latency_seconds_count", ())] == 0
