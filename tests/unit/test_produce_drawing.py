"""The producer without a server: order drawing, answer reading, retry timing, summary maths, and retries."""

from __future__ import annotations

import asyncio
import io
import json
import random
from collections import Counter
from collections.abc import Callable

import httpx
import pytest
from rich.console import Console

from ordergate.domain.model import Order, Side
from ordergate.tools.catalogue import Catalogue
from ordergate.tools.produce import (
    Answer,
    Failure,
    OrderDrawer,
    ProducerConfig,
    ProducerSummary,
    order_request,
    read_answer,
    render_summary,
    retry_delay,
    run_producer,
    strategy_universe,
)

CATALOGUE = Catalogue(
    users=("Holland Proctor", "Oaklee Wagner"),
    strategies=("STRATEGY_A", "STRATEGY_B", "STRATEGY_C", "STRATEGY_D"),
    instruments=("BIRLASOFT", "GRASIM", "EICHER", "MINDA", "ACC", "INFY", "L&T"),
)
PROFILES = {
    "Holland Proctor": {"STRATEGY_A": ["BIRLASOFT", "GRASIM", "EICHER"], "STRATEGY_B": ["MINDA"]},
    "Oaklee Wagner": {"STRATEGY_D": ["ACC"], "STRATEGY_A": ["L&T"]},
}


def _draws(drawer: OrderDrawer, count: int = 500) -> list[Order]:
    return [drawer.draw() for _ in range(count)]


def test_uniform_draw_uses_only_catalogue_names_and_covers_them() -> None:
    orders = _draws(OrderDrawer.uniform(CATALOGUE, seed=1), 2_000)

    assert {order.strategy for order in orders} == set(CATALOGUE.strategies)
    assert {order.instrument for order in orders} == set(CATALOGUE.instruments)
    assert {order.side for order in orders} == {Side.BUY, Side.SELL}


def test_uniform_draw_is_reproducible_with_a_seed_and_varies_without_one() -> None:
    assert _draws(OrderDrawer.uniform(CATALOGUE, seed=5)) == _draws(OrderDrawer.uniform(CATALOGUE, seed=5))
    assert _draws(OrderDrawer.uniform(CATALOGUE, seed=5)) != _draws(OrderDrawer.uniform(CATALOGUE, seed=6))


def test_universe_draws_only_subscribed_strategies_with_their_subscribers_instruments() -> None:
    orders = _draws(OrderDrawer.universe(PROFILES, seed=2), 2_000)

    allowed = {("STRATEGY_A", instrument) for instrument in ("BIRLASOFT", "GRASIM", "EICHER", "L&T")} | {
        ("STRATEGY_B", "MINDA"),
        ("STRATEGY_D", "ACC"),
    }
    assert {(order.strategy, order.instrument) for order in orders} == allowed


def test_universe_is_the_union_of_each_strategys_subscriber_lists() -> None:
    assert strategy_universe(PROFILES) == {
        "STRATEGY_A": ("BIRLASOFT", "EICHER", "GRASIM", "L&T"),
        "STRATEGY_B": ("MINDA",),
        "STRATEGY_D": ("ACC",),
    }


def test_universe_draw_does_not_depend_on_input_order_or_container() -> None:
    reordered = {
        user: {strategy: frozenset(reversed(instruments)) for strategy, instruments in reversed(strategies.items())}
        for user, strategies in reversed(PROFILES.items())
    }

    assert _draws(OrderDrawer.universe(reordered, seed=3)) == _draws(OrderDrawer.universe(PROFILES, seed=3))


def test_universe_skips_strategies_nobody_trades_anything_under() -> None:
    profiles = {"Ann": {"STRATEGY_A": ["ACC"], "STRATEGY_Z": []}}

    assert {order.strategy for order in _draws(OrderDrawer.universe(profiles, seed=4))} == {"STRATEGY_A"}


def test_universe_needs_profiles_with_something_to_trade() -> None:
    with pytest.raises(ValueError, match="universe mode draws from the profiles"):
        OrderDrawer.for_mode("universe", CATALOGUE, None, seed=1)
    with pytest.raises(ValueError, match="no strategy with instruments"):
        OrderDrawer.universe({"Ann": {}}, seed=1)


@pytest.mark.parametrize(
    ("changes", "message"),
    [
        ({"url": "127.0.0.1:8080"}, "url must start with http:// or https://"),
        ({"count": 0}, "count must be at least 1"),
        ({"interval": -1.0}, "interval must be 0 or more seconds"),
        ({"rate": 0.0}, "rate must be more than 0 orders per second"),
        ({"concurrency": 0}, "concurrency must be at least 1"),
        ({"mode": "random"}, "mode must be 'uniform' or 'universe'"),
        ({"timeout": 0.0}, "timeout must be more than 0 seconds"),
        ({"retries": -1}, "retries must be 0 or more"),
    ],
)
def test_invalid_producer_settings_are_refused_with_what_to_fix(changes: dict[str, object], message: str) -> None:
    with pytest.raises(ValueError, match=message):
        ProducerConfig(**changes)  # type: ignore[arg-type]


def test_defaults_are_the_seed_producer() -> None:
    config = ProducerConfig()

    assert (config.count, config.interval, config.concurrency, config.mode, config.api) == (
        300,
        1.0,
        1,
        "uniform",
        "legacy",
    )


def test_legacy_request_carries_the_seed_body_and_the_client_order_id_as_idempotency_key() -> None:
    request = order_request(ProducerConfig(url="http://gw:8080/"), Order("STRATEGY_A", "L&T", Side.BUY), "prod-1-1")

    assert request.url == "http://gw:8080/create_order"
    assert json.loads(request.body) == {"STRATEGY": "STRATEGY_A", "INSTRUMENT": "L&T", "POSITION": "BUY"}
    assert request.headers["Idempotency-Key"] == "prod-1-1"
    assert "Authorization" not in request.headers


def test_v1_request_carries_the_client_order_id_in_the_body_and_the_key_as_bearer_token() -> None:
    config = ProducerConfig(api="v1", api_key="secret")

    request = order_request(config, Order("STRATEGY_D", "ACC", Side.SELL), "prod-1-2")

    assert request.url == "http://127.0.0.1:8080/v1/orders"
    assert json.loads(request.body) == {
        "strategy": "STRATEGY_D",
        "instrument": "ACC",
        "side": "SELL",
        "client_order_id": "prod-1-2",
    }
    assert request.headers["Authorization"] == "Bearer secret"


@pytest.mark.parametrize(
    ("api", "status", "body", "expected"),
    [
        (
            "legacy",
            200,
            {"RESPONSE": "ACCEPTED", "ORDER_ID": 2, "REASON": None, "USERS": ["A"]},
            Answer(True, None),
        ),
        (
            "legacy",
            200,
            {"RESPONSE": "REJECTED", "ORDER_ID": 1, "REASON": "NO_OPEN_POSITION", "USERS": []},
            Answer(False, "NO_OPEN_POSITION"),
        ),
        ("v1", 201, {"order_id": 3, "status": "ACCEPTED", "reason": None}, Answer(True, None)),
        (
            "v1",
            200,
            {"order_id": 3, "status": "REJECTED", "reason": "ALREADY_HOLDING", "replayed": True},
            Answer(False, "ALREADY_HOLDING"),
        ),
        (
            "legacy",
            422,
            {"RESPONSE": "REJECTED", "REASON": "INVALID_ORDER", "DETAIL": "POSITION must be BUY or SELL"},
            Failure("HTTP 422: POSITION must be BUY or SELL"),
        ),
        ("v1", 401, {"detail": "missing API key"}, Failure("HTTP 401: missing API key")),
        ("v1", 200, {"hello": "world"}, Failure('HTTP 200 without a decision: {"hello":"world"}')),
    ],
)
def test_answers_are_read_as_decisions_or_failures_with_the_servers_words(
    api: str, status: int, body: object, expected: Answer | Failure
) -> None:
    assert read_answer(api, status, json.dumps(body, separators=(",", ":")).encode()) == expected  # type: ignore[arg-type]


def test_non_json_error_body_is_reported_as_text() -> None:
    assert read_answer("legacy", 500, b"Internal Server Error") == Failure("HTTP 500: Internal Server Error")


def test_retry_waits_what_the_server_asks_within_a_cap() -> None:
    jitter = random.Random(0)

    assert retry_delay(0, "2", jitter) == 2.0
    assert retry_delay(0, "86400", jitter) == 60.0
    assert retry_delay(0, "Wed, 21 Oct 2015 07:28:00 GMT", jitter) == 0.0


def test_retry_backoff_grows_and_stays_capped() -> None:
    jitter = random.Random(0)

    first = [retry_delay(0, None, jitter) for _ in range(50)]
    late = [retry_delay(30, "soon", jitter) for _ in range(50)]

    assert all(0.05 <= delay <= 0.1 for delay in first)
    assert all(2.5 <= delay <= 5.0 for delay in late)


def _summary_with_latencies(latencies: list[float], elapsed: float = 0.0) -> ProducerSummary:
    summary = ProducerSummary(elapsed=elapsed)
    for latency in latencies:
        summary.record(Answer(accepted=True, reason=None), latency)
    return summary


def test_percentiles_use_nearest_rank_over_unsorted_latencies() -> None:
    latencies = [n / 1000 for n in range(100, 0, -1)]

    summary = _summary_with_latencies(latencies)

    assert summary.p50 == 0.050
    assert summary.p99 == 0.099
    assert summary.latency_percentile(100) == 0.100
    assert summary.latency_percentile(0) == 0.001


def test_percentiles_of_few_samples_are_observed_values() -> None:
    assert _summary_with_latencies([0.3]).p99 == 0.3
    assert _summary_with_latencies([0.1, 0.2, 0.3]).p50 == 0.2
    assert _summary_with_latencies([0.1, 0.2, 0.3]).p99 == 0.3
    assert _summary_with_latencies(list(range(1, 1001))).latency_percentile(99.9) == 999


def test_percentiles_and_rate_are_empty_before_any_answer() -> None:
    summary = ProducerSummary()

    assert (summary.p50, summary.p99, summary.rate) == (None, None, 0.0)


def test_rate_counts_answered_orders_per_second_and_not_errors() -> None:
    summary = _summary_with_latencies([0.01] * 30, elapsed=2.0)
    summary.record(Answer(accepted=False, reason="NO_OPEN_POSITION"), 0.01)
    summary.record(Failure("HTTP 401: no key"), 0.0)

    assert summary.answered == 31
    assert summary.rate == 15.5


def test_summary_counts_rejections_by_reason_and_keeps_a_few_distinct_error_samples() -> None:
    summary = ProducerSummary(sent=12)
    summary.record(Answer(False, "NO_OPEN_POSITION"), 0.01)
    summary.record(Answer(False, "NO_OPEN_POSITION"), 0.01)
    summary.record(Answer(False, "ALREADY_HOLDING"), 0.01)
    for n in range(8):
        summary.record(Failure(f"HTTP 400: bad {n % 7}"), 0.0)
    summary.record(Failure("HTTP 400: bad 0"), 0.0)

    assert summary.rejected_by_reason == {"NO_OPEN_POSITION": 2, "ALREADY_HOLDING": 1}
    assert summary.rejected == 3
    assert summary.errors == 9
    assert summary.error_samples == [f"HTTP 400: bad {n}" for n in range(5)]
    assert len(summary.latencies) == 3


def _rendered(summary: ProducerSummary) -> str:
    console = Console(record=True, width=120, file=io.StringIO())
    console.print(render_summary(summary))
    return console.export_text()


def test_summary_table_shows_every_figure_of_the_run() -> None:
    summary = ProducerSummary(sent=4, accepted=1, rejected_by_reason={"NO_OPEN_POSITION": 2}, errors=1)
    summary.latencies.extend([0.004, 0.012, 0.020])
    summary.error_samples.append("HTTP 401: missing API key")
    summary.elapsed = 1.5

    text = _rendered(summary)

    for label, value in [
        ("sent", "4"),
        ("accepted", "1"),
        ("rejected", "2"),
        ("NO_OPEN_POSITION", "2"),
        ("errors", "1"),
        ("latency p50 (ms)", "12.0"),
        ("latency p99 (ms)", "20.0"),
        ("rate (orders/s)", "2.00"),
    ]:
        assert any(label in line and line.rstrip(" │").endswith(value) for line in text.splitlines()), label
    assert "e.g. HTTP 401: missing API key" in text
    assert "unanswered" not in text


def test_summary_table_shows_orders_left_in_flight_by_an_interruption() -> None:
    assert "unanswered (interrupted)" in _rendered(ProducerSummary(sent=3, accepted=1))


Handler = Callable[[httpx.Request], httpx.Response]


def _run(config: ProducerConfig, handler: Handler) -> ProducerSummary:
    transport = httpx.MockTransport(handler)
    return asyncio.run(run_producer(config, CATALOGUE, PROFILES, progress=False, transport=transport))


def _accept(request: httpx.Request) -> httpx.Response:
    return httpx.Response(200, json={"RESPONSE": "ACCEPTED", "ORDER_ID": 1, "REASON": None, "USERS": []})


def test_run_sends_the_seeded_draw_with_a_distinct_client_order_id_per_order() -> None:
    received: list[tuple[Order, str]] = []

    def handler(request: httpx.Request) -> httpx.Response:
        body = json.loads(request.content)
        received.append(
            (
                Order(body["STRATEGY"], body["INSTRUMENT"], Side(body["POSITION"])),
                request.headers["Idempotency-Key"],
            )
        )
        return _accept(request)

    summary = _run(ProducerConfig(count=20, interval=0, seed=9, concurrency=3), handler)

    assert [order for order, _ in received] == _draws(OrderDrawer.uniform(CATALOGUE, seed=9), 20)
    assert len({key for _, key in received}) == 20
    assert (summary.sent, summary.accepted, summary.errors, len(summary.latencies)) == (20, 20, 0, 20)
    assert summary.elapsed > 0


def test_retries_after_lost_connections_and_503_resend_the_same_client_order_id() -> None:
    attempts: Counter[str] = Counter()

    def handler(request: httpx.Request) -> httpx.Response:
        key = request.headers["Idempotency-Key"]
        attempts[key] += 1
        if attempts[key] == 1:
            raise httpx.ConnectError("connection refused", request=request)
        if attempts[key] == 2:
            return httpx.Response(503, headers={"Retry-After": "0"}, json={"detail": "store unavailable"})
        return _accept(request)

    summary = _run(ProducerConfig(count=3, interval=0), handler)

    assert sorted(attempts.values()) == [3, 3, 3]
    assert (summary.sent, summary.accepted, summary.errors) == (3, 3, 0)


def test_client_errors_are_not_retried_and_are_reported() -> None:
    attempts: list[str] = []

    def handler(request: httpx.Request) -> httpx.Response:
        attempts.append(request.headers["Idempotency-Key"])
        return httpx.Response(422, json={"RESPONSE": "REJECTED", "REASON": "INVALID_ORDER", "DETAIL": "bad side"})

    summary = _run(ProducerConfig(count=2, interval=0), handler)

    assert len(attempts) == 2
    assert (summary.errors, summary.error_samples, summary.latencies) == (2, ["HTTP 422: bad side"], [])


def test_giving_up_after_the_retries_counts_one_error_with_the_last_problem() -> None:
    def handler(request: httpx.Request) -> httpx.Response:
        return httpx.Response(503, headers={"Retry-After": "0"}, json={"detail": "disk full"})

    summary = _run(ProducerConfig(count=1, interval=0, retries=2), handler)

    assert summary.errors == 1
    assert summary.error_samples == ["HTTP 503: disk full (gave up after 3 attempts)"]


def test_universe_run_against_v1_counts_rejections_by_reason() -> None:
    def handler(request: httpx.Request) -> httpx.Response:
        body = json.loads(request.content)
        assert (body["strategy"], body["instrument"]) in {
            (strategy, instrument)
            for strategy, instruments in strategy_universe(PROFILES).items()
            for instrument in instruments
        }
        return httpx.Response(201, json={"order_id": 1, "status": "REJECTED", "reason": "NO_OPEN_POSITION"})

    summary = _run(ProducerConfig(count=5, interval=0, mode="universe", api="v1", seed=1), handler)

    assert summary.rejected_by_reason == {"NO_OPEN_POSITION": 5}
