"""64 identical orders in flight at once through real HTTP open, then close, each position exactly once."""

from __future__ import annotations

import asyncio
import contextlib
import ssl
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest

from tests.e2e.conftest import Profile, StartGateway, assert_verified, book_of, fetch_all, replay

PROFILE: Profile = {
    "Holland Proctor": {"STRATEGY_A": ["BIRLASOFT", "GRASIM", "EICHER"], "STRATEGY_B": ["MINDA"]},
    "Oaklee Wagner": {"STRATEGY_A": ["GRASIM", "EICHER"], "STRATEGY_D": ["ACC"]},
    "Ann Lee": {"STRATEGY_A": ["GRASIM"], "STRATEGY_C": ["INFY"]},
    "Raj Patel": {"STRATEGY_D": ["ACC", "GRASIM"]},
}
STRATEGY = "STRATEGY_A"
INSTRUMENT = "GRASIM"
SUBSCRIBERS = ["Ann Lee", "Holland Proctor", "Oaklee Wagner"]
COPIES = 64
REQUEST_TIMEOUT = 30.0


@pytest.fixture
def profile() -> Profile:
    return PROFILE


@dataclass(frozen=True, slots=True)
class Answer:
    order_id: int
    status: str
    reason: str | None
    users: tuple[str, ...]


async def send_all_at_once(url: str, side: str, tag: str) -> list[Answer]:
    """Send ``COPIES`` identical orders released together by a barrier: even to /v1, odd to /create_order.

    Each order has its own client and connection, opened beforehand: one shared httpx pool of 64
    connections serialises its requests enough that the server would see them one after another.
    The clients share one (unused) TLS context: building 64 of them would cost seconds.
    """
    tls = ssl.create_default_context()
    async with contextlib.AsyncExitStack() as stack:
        clients = [
            await stack.enter_async_context(httpx.AsyncClient(base_url=url, timeout=REQUEST_TIMEOUT, verify=tls))
            for _ in range(COPIES)
        ]
        await asyncio.gather(*(client.get("/healthz") for client in clients))  # connect before the race
        barrier = asyncio.Barrier(COPIES)

        async def send(n: int, client: httpx.AsyncClient) -> Answer:
            await barrier.wait()
            if n % 2:
                body = {"STRATEGY": STRATEGY, "INSTRUMENT": INSTRUMENT, "POSITION": side}
                response = await client.post("/create_order", json=body)
                assert response.status_code == 200, response.text
                legacy = response.json()
                return Answer(legacy["ORDER_ID"], legacy["RESPONSE"], legacy["REASON"], tuple(sorted(legacy["USERS"])))
            body = {
                "strategy": STRATEGY,
                "instrument": INSTRUMENT,
                "side": side,
                "client_order_id": f"{tag}-{n}",
            }
            response = await client.post("/v1/orders", json=body)
            assert response.status_code == 201, response.text
            order = response.json()
            users = tuple(sorted(effect["user"] for effect in order["applied"]))
            return Answer(order["order_id"], order["status"], order["reason"], users)

        return await asyncio.gather(*(send(n, client) for n, client in enumerate(clients)))


def assert_decided_exactly_once(answers: list[Answer], losing_reason: str) -> Answer:
    """One ACCEPTED for all subscribers, decided first, the rest REJECTED, ids consecutive; returns it."""
    ids = sorted(answer.order_id for answer in answers)
    assert ids == list(range(ids[0], ids[0] + COPIES)), f"order ids are not {COPIES} consecutive integers: {ids}"
    accepted = [answer for answer in answers if answer.status == "ACCEPTED"]
    assert len(accepted) == 1, f"{len(accepted)} of {COPIES} identical orders were accepted: {accepted}"
    winner = accepted[0]
    assert list(winner.users) == SUBSCRIBERS
    assert winner.order_id == ids[0], "the accepted order was not the first one decided"
    losers = [answer for answer in answers if answer is not winner]
    assert {(a.status, a.reason, a.users) for a in losers} == {("REJECTED", losing_reason, ())}
    return winner


@pytest.mark.e2e
@pytest.mark.parametrize("scope", ["account", "strategy"])
def test_simultaneous_identical_orders_open_and_close_each_position_exactly_once(
    home: Path, start_gateway: StartGateway, scope: str
) -> None:
    gateway = start_gateway(home, "--scope", scope)

    buys = asyncio.run(send_all_at_once(gateway.url, "BUY", "buy"))
    bought = assert_decided_exactly_once(buys, "ALREADY_HOLDING")
    with httpx.Client(base_url=gateway.url, timeout=REQUEST_TIMEOUT) as client:
        positions = fetch_all(client, "/v1/positions")
        assert sorted((p["user"], p["strategy"], p["instrument"], p["opened_order_id"]) for p in positions) == [
            (user, STRATEGY, INSTRUMENT, bought.order_id) for user in SUBSCRIBERS
        ]

        sells = asyncio.run(send_all_at_once(gateway.url, "SELL", "sell"))
        sold = assert_decided_exactly_once(sells, "NO_OPEN_POSITION")
        assert min(answer.order_id for answer in sells) == bought.order_id + COPIES

        assert fetch_all(client, "/v1/positions") == []
        trades = fetch_all(client, "/v1/trades")
        assert sorted(
            (t["user"], t["strategy"], t["instrument"], t["opened_order_id"], t["closed_order_id"]) for t in trades
        ) == [(user, STRATEGY, INSTRUMENT, bought.order_id, sold.order_id) for user in SUBSCRIBERS]
        log = fetch_all(client, "/v1/orders")
        assert len(log) == 2 * COPIES
        assert replay(log, PROFILE, scope) == book_of([], scope) == {}
    assert_verified(home)
