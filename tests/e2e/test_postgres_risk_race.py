"""A limit holds across real gateway processes on one PostgreSQL database, whatever the interleaving.

``max_open_positions`` is 1 for everyone; one user subscribes to a strategy on 64 instruments; 64 BUYs,
one per instrument, are released at the same moment, split over two processes. No two of them touch
the same instrument, so only the risk lock orders them: exactly one may open a position, and every
other one is refused ``POSITION_LIMIT``. The round is run again after the position is closed (the
processes then bring their risk state up to date from each other's orders), and ``verify --db``
decides every stored order again from the log.

The circuit breaker and the square-off run under the same lock: 64 SELLs of nothing, split over the
two processes, trip the strategy's breaker exactly once, at the rejection that reaches its count in
order_id order, and halt it in both; a square-off that both processes find due (each looks every
second) closes every position once, with one mark.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from tests.e2e.conftest import StartGateway, fetch_all, write_profile
from tests.e2e.test_postgres_cluster import REQUEST_TIMEOUT, assert_verified, decisions, send_at_once
from tests.postgres import fresh_database

pytestmark = pytest.mark.e2e

USER, STRATEGY = "Ann Lee", "MOMENTUM"
INSTRUMENTS = [f"STOCK{n:02d}" for n in range(64)]
PROFILE = {USER: {STRATEGY: INSTRUMENTS}}
ROUNDS = 3


@pytest.fixture
def database() -> Iterator[str]:
    with fresh_database() as url:
        yield url


def buys() -> list[tuple[str, dict[str, str]]]:
    """One BUY per instrument: to ``/v1/orders`` for even ones, to the legacy ``/create_order`` for odd ones."""
    return [
        ("/v1/orders", {"strategy": STRATEGY, "instrument": instrument, "side": "BUY"})
        if n % 2 == 0
        else ("/create_order", {"STRATEGY": STRATEGY, "INSTRUMENT": instrument, "POSITION": "BUY"})
        for n, instrument in enumerate(INSTRUMENTS)
    ]


def test_concurrent_buys_of_64_instruments_over_two_processes_open_exactly_one_position_under_a_limit_of_one(
    tmp_path: Path, start_gateway: StartGateway, database: str
) -> None:
    gateways = [start_gateway(write_profile(tmp_path / f"home{n}", PROFILE), "--db", database) for n in range(2)]
    urls = [g.url for g in gateways]
    limits = {"level": "global", "target": None, "limits": {"max_open_positions": 1}}
    answer = httpx.put(f"{urls[0]}/v1/risk/limits", json=limits, timeout=REQUEST_TIMEOUT)
    assert answer.status_code == 200, answer.text

    opened: list[int] = []
    for _ in range(ROUNDS):
        answers = decisions(asyncio.run(send_at_once(urls, buys())))
        assert len({order_id for order_id, *_ in answers}) == len(INSTRUMENTS), "two answers share an order id"
        accepted = [a for a in answers if a[1] == "ACCEPTED"]
        assert len(accepted) == 1, f"{len(accepted)} of {len(INSTRUMENTS)} BUYs opened a position: {accepted}"
        assert accepted[0][3] == (USER,)
        assert {(status, reason) for _, status, reason, _ in answers if status != "ACCEPTED"} == {
            ("REJECTED", "POSITION_LIMIT")
        }
        for url in urls:  # every process reads the same single position
            with httpx.Client(base_url=url, timeout=REQUEST_TIMEOUT) as client:
                positions = fetch_all(client, "/v1/positions")
            assert [(p["user"], p["opened_order_id"]) for p in positions] == [(USER, accepted[0][0])]
        instrument = positions[0]["instrument"]
        sell = {"strategy": STRATEGY, "instrument": instrument, "side": "SELL"}
        closed = httpx.post(f"{urls[len(opened) % 2]}/v1/orders", json=sell, timeout=REQUEST_TIMEOUT)
        assert closed.json()["status"] == "ACCEPTED", closed.text
        opened.append(accepted[0][0])

    with httpx.Client(base_url=urls[1], timeout=REQUEST_TIMEOUT) as client:
        log = fetch_all(client, "/v1/orders")
        assert len(log) == ROUNDS * (len(INSTRUMENTS) + 1)
        fingerprint = answer.json()["fingerprint"]
        assert {o["risk_fingerprint"] for o in log} == {fingerprint}  # every order was decided under the limit
        assert fetch_all(client, "/v1/positions") == []
    assert f"{ROUNDS * (len(INSTRUMENTS) + 1)} orders" in assert_verified(database)


def sells() -> list[tuple[str, dict[str, str]]]:
    return [
        ("/v1/orders", {"strategy": STRATEGY, "instrument": instrument, "side": "SELL"}) for instrument in INSTRUMENTS
    ]


def test_64_rejections_over_two_processes_trip_the_breaker_once_and_halt_the_strategy_in_both(
    tmp_path: Path, start_gateway: StartGateway, database: str
) -> None:
    gateways = [start_gateway(write_profile(tmp_path / f"home{n}", PROFILE), "--db", database) for n in range(2)]
    urls = [g.url for g in gateways]
    breaker = {
        "level": "strategy",
        "target": STRATEGY,
        "limits": {"breaker": {"max_rejects": 40, "window_seconds": 600}},
    }
    answer = httpx.put(f"{urls[1]}/v1/risk/limits", json=breaker, timeout=REQUEST_TIMEOUT)
    assert answer.status_code == 200, answer.text

    answers = decisions(asyncio.run(send_at_once(urls, sells())))
    assert {(status, reason) for _, status, reason, _ in answers} == {("REJECTED", "NO_OPEN_POSITION")}
    fortieth = sorted(order_id for order_id, *_ in answers)[39]
    for url in urls:
        deadline = time.monotonic() + 5
        while True:  # the process that did not trip it reads the halt with its next group or idle read
            controls = httpx.get(f"{url}/v1/controls", timeout=REQUEST_TIMEOUT).json()
            if controls["strategies"] or time.monotonic() > deadline:
                break
            time.sleep(0.1)
        assert controls["strategies"] == {STRATEGY: "HALTED"}
        trips = [(c["reason"], c["by"], c["order_id"]) for c in controls["changes"]]
        assert trips == [("BREAKER", "risk", fortieth)], trips
        buy = {"strategy": STRATEGY, "instrument": INSTRUMENTS[0], "side": "BUY"}
        halted = httpx.post(f"{url}/v1/orders", json=buy, timeout=REQUEST_TIMEOUT).json()
        assert (halted["status"], halted["reason"]) == ("REJECTED", "HALTED")
    assert f"{len(INSTRUMENTS) + 2} orders" in assert_verified(database)


@pytest.mark.heavy
def test_a_square_off_both_processes_find_due_closes_every_position_once(
    tmp_path: Path, start_gateway: StartGateway, database: str
) -> None:
    gateways = [start_gateway(write_profile(tmp_path / f"home{n}", PROFILE), "--db", database) for n in range(2)]
    urls = [g.url for g in gateways]
    for n, instrument in enumerate(INSTRUMENTS[:8]):  # positions opened through both processes
        buy = {"strategy": STRATEGY, "instrument": instrument, "side": "BUY"}
        assert httpx.post(f"{urls[n % 2]}/v1/orders", json=buy, timeout=REQUEST_TIMEOUT).json()["status"] == "ACCEPTED"
    session = {"timezone": "UTC", "open": "00:00", "close": "00:00", "square_off": "00:00"}  # due at once, both
    answer = httpx.put(f"{urls[0]}/v1/risk/session", json=session, timeout=REQUEST_TIMEOUT)
    assert answer.status_code == 200, answer.text
    deadline = time.monotonic() + 10
    while httpx.get(f"{urls[1]}/v1/positions", timeout=REQUEST_TIMEOUT).json()["items"]:
        assert time.monotonic() < deadline, "the square-off did not run"
        time.sleep(0.1)
    time.sleep(2.5)  # both processes have looked again since
    with httpx.Client(base_url=urls[1], timeout=REQUEST_TIMEOUT) as client:
        squared = [o for o in fetch_all(client, "/v1/orders") if o["origin"] == "square_off"]
        marks = [c for c in client.get("/v1/risk/limits").json()["changes"] if c["kind"] == "square_off"]
    assert sorted(o["instrument"] for o in squared) == INSTRUMENTS[:8]  # one order each: closed once
    (mark,) = marks
    assert mark["change"]["orders"] == [o["order_id"] for o in squared]
    assert "16 orders" in assert_verified(database)
