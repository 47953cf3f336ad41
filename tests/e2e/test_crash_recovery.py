"""A gateway killed with SIGKILL under concurrent load restarts with exactly what it answered, no more."""

from __future__ import annotations

import asyncio
import random
import ssl
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.e2e.conftest import (
    GatewayProcess,
    Profile,
    StartGateway,
    assert_verified,
    book_of,
    fetch_all,
    replay,
)

PROFILE: Profile = {
    "Holland Proctor": {"STRATEGY_A": ["BIRLASOFT", "GRASIM", "EICHER"], "STRATEGY_B": ["MINDA", "L&T"]},
    "Oaklee Wagner": {"STRATEGY_A": ["GRASIM", "EICHER"], "STRATEGY_D": ["ACC", "MINDA"]},
    "Ann Lee": {"STRATEGY_B": ["MINDA", "L&T", "ACC"], "STRATEGY_C": ["GRASIM", "INFY"]},
    "Raj Patel": {"STRATEGY_C": ["GRASIM", "INFY"], "STRATEGY_D": ["ACC"]},
    "Mia Wong": {"STRATEGY_A": ["BIRLASOFT", "GRASIM", "EICHER"], "STRATEGY_C": ["INFY", "M&M"]},
}
UNIVERSE = {
    strategy: sorted({i for strategies in PROFILE.values() for i in strategies.get(strategy, ())})
    for strategy in sorted({s for strategies in PROFILE.values() for s in strategies})
}
INSTRUMENTS = sorted({i for instruments in UNIVERSE.values() for i in instruments} | {"TCS"})
UNKNOWN_STRATEGY = "STRATEGY_Z"

WORKERS = 24
KILL_AFTER_ANSWERS = 300
MAX_ORDERS_PER_WORKER = 100
REQUEST_TIMEOUT = 10.0
LOAD_TIMEOUT = 60.0
CRASH_ATTEMPTS = 3


@pytest.fixture
def profile() -> Profile:
    return PROFILE


@dataclass(frozen=True, slots=True)
class Sent:
    """One order as a client sent it; ``client_order_id`` goes in the body (v1) or Idempotency-Key header."""

    strategy: str
    instrument: str
    side: str
    client_order_id: str | None
    legacy: bool

    def request(self) -> tuple[str, dict[str, str], dict[str, str]]:
        """(path, JSON body, headers) of this order; resending it sends exactly this again."""
        if self.legacy:
            headers = {"Idempotency-Key": self.client_order_id} if self.client_order_id else {}
            body = {"STRATEGY": self.strategy, "INSTRUMENT": self.instrument, "POSITION": self.side}
            return "/create_order", body, headers
        body = {"strategy": self.strategy, "instrument": self.instrument, "side": self.side}
        if self.client_order_id is not None:
            body["client_order_id"] = self.client_order_id
        return "/v1/orders", body, {}


@dataclass(frozen=True, slots=True)
class Answer:
    """A decision as the client received it; ``document`` is the whole body of a ``/v1/orders`` answer."""

    sent: Sent
    order_id: int
    status: str
    reason: str | None
    users: list[str]
    document: dict[str, Any] | None


@dataclass
class LoadRun:
    answered: dict[int, Answer] = field(default_factory=dict)
    in_flight: dict[tuple[int, int], Sent] = field(default_factory=dict)
    """Orders sent but never answered: the kill caught them."""
    problems: list[str] = field(default_factory=list)
    killed: bool = False


def draw_order(rng: random.Random, client_order_id: str) -> Sent:
    """A realistic mix: mostly orders a strategy's subscribers trade, some untraded, a few unknown."""
    roll = rng.random()
    if roll < 0.04:
        strategy, instrument = UNKNOWN_STRATEGY, rng.choice(INSTRUMENTS)
    elif roll < 0.15:
        strategy, instrument = rng.choice(sorted(UNIVERSE)), rng.choice(INSTRUMENTS)
    else:
        strategy = rng.choice(sorted(UNIVERSE))
        instrument = rng.choice(UNIVERSE[strategy])
    side = rng.choice(("BUY", "SELL"))
    legacy = rng.random() < 0.3
    keyed = not legacy or rng.random() < 0.5
    return Sent(strategy, instrument, side, client_order_id if keyed else None, legacy)


def read_answer(sent: Sent, response: httpx.Response) -> Answer | str:
    """The decision in a fresh answer, or a description of what came back instead."""
    expected = 200 if sent.legacy else 201
    if response.status_code != expected:
        return f"{sent}: HTTP {response.status_code} {response.text}"
    document = response.json()
    if sent.legacy:
        return Answer(sent, document["ORDER_ID"], document["RESPONSE"], document["REASON"], document["USERS"], None)
    users = [effect["user"] for effect in document["applied"]]
    return Answer(sent, document["order_id"], document["status"], document["reason"], users, document)


async def load_until_killed(gateway: GatewayProcess, seed: int, tag: str) -> LoadRun:
    """Send orders from ``WORKERS`` concurrent clients and SIGKILL the gateway once enough are answered.

    Each worker is its own client with its own connection, as independent strategy processes are.
    Client order ids start with ``tag``.
    """
    run = LoadRun()
    seeds = random.Random(seed)
    tls = ssl.create_default_context()  # unused over http; shared because building one costs ~25 ms

    async def work(worker: int, rng: random.Random) -> None:
        async with httpx.AsyncClient(base_url=gateway.url, timeout=REQUEST_TIMEOUT, verify=tls) as client:
            for index in range(MAX_ORDERS_PER_WORKER):
                if run.killed:
                    return
                sent = draw_order(rng, f"{tag}-w{worker}-o{index}")
                run.in_flight[(worker, index)] = sent
                path, body, headers = sent.request()
                try:
                    response = await client.post(path, json=body, headers=headers)
                except httpx.TransportError as exc:
                    if not run.killed:
                        run.problems.append(f"{sent}: {type(exc).__name__} before the kill: {exc}")
                    return
                del run.in_flight[(worker, index)]
                answer = read_answer(sent, response)
                if isinstance(answer, str):
                    run.problems.append(answer)
                    return
                if answer.order_id in run.answered:
                    run.problems.append(f"order id {answer.order_id} answered twice: {answer}")
                run.answered[answer.order_id] = answer
                if len(run.answered) >= KILL_AFTER_ANSWERS and not run.killed:
                    run.killed = True
                    gateway.kill()

    workers = [work(n, random.Random(seeds.random())) for n in range(WORKERS)]
    await asyncio.wait_for(asyncio.gather(*workers), LOAD_TIMEOUT)
    return run


FETCH_TIMEOUT = 120.0
"""Seconds for reading back every answered order (a thousand GETs over 16 connections)."""


async def fetch_orders(url: str, order_ids: list[int]) -> dict[int, httpx.Response]:
    limits = httpx.Limits(max_connections=16)
    # each request is bounded, not its wait for one of the 16 connections (the whole read is, below):
    # on a loaded machine the last of a thousand queued requests may wait longer than one request may take
    timeout = httpx.Timeout(REQUEST_TIMEOUT, pool=None)
    async with httpx.AsyncClient(base_url=url, timeout=timeout, limits=limits) as client:
        reads = asyncio.gather(*(client.get(f"/v1/orders/{order_id}") for order_id in order_ids))
        responses = await asyncio.wait_for(reads, FETCH_TIMEOUT)
    return dict(zip(order_ids, responses, strict=True))


def crash_under_load(gateway: GatewayProcess, seed: int, tag: str = "crash") -> LoadRun:
    run = asyncio.run(load_until_killed(gateway, seed, tag))
    assert not run.problems, "\n".join(run.problems[:10]) + f"\n{gateway.log_tail()}"
    assert run.killed, f"only {len(run.answered)} orders were answered; the gateway was never killed"
    assert not gateway.is_running
    return run


def assert_answered_orders_are_stored_as_answered(gateway: GatewayProcess, run: LoadRun) -> None:
    stored = asyncio.run(fetch_orders(gateway.url, sorted(run.answered)))
    for order_id, answer in run.answered.items():
        response = stored[order_id]
        assert response.status_code == 200, f"answered order {order_id} is gone after the restart: {response.text}"
        order = response.json()
        if answer.document is not None:
            assert order == answer.document, f"order {order_id} changed across the crash"
            continue
        sent = answer.sent
        assert (order["strategy"], order["instrument"], order["side"], order["client_order_id"]) == (
            sent.strategy,
            sent.instrument,
            sent.side,
            sent.client_order_id,
        ), f"order {order_id} is not the order that was sent"
        assert (order["status"], order["reason"], [a["user"] for a in order["applied"]]) == (
            answer.status,
            answer.reason,
            answer.users,
        ), f"order {order_id} was stored with another decision than the one answered"


def assert_positions_replay_the_log(client: httpx.Client, log: list[dict[str, Any]]) -> None:
    implied = replay(log, PROFILE, "account")
    assert book_of(fetch_all(client, "/v1/positions"), "account") == implied
    closes = [(o["order_id"], a["user"]) for o in log for a in o["applied"] if a["action"] == "CLOSED"]
    trades = fetch_all(client, "/v1/trades")
    assert sorted((t["closed_order_id"], t["user"]) for t in trades) == sorted(closes)


@pytest.mark.heavy
@pytest.mark.e2e
@pytest.mark.parametrize("durability", ["full", "fast"])
def test_sigkill_under_load_keeps_every_answered_order_and_restarts_consistent(
    home: Path, start_gateway: StartGateway, durability: str
) -> None:
    gateway = start_gateway(home, "--durability", durability)
    run = crash_under_load(gateway, seed=2024)

    assert_verified(home)  # the crashed store as the kill left it, before any restart
    gateway.restart()
    assert_answered_orders_are_stored_as_answered(gateway, run)
    with httpx.Client(base_url=gateway.url, timeout=REQUEST_TIMEOUT) as client:
        log = fetch_all(client, "/v1/orders")
        stored_ids = [order["order_id"] for order in log]
        assert set(run.answered) <= set(stored_ids)
        unanswered = [order for order in log if order["order_id"] not in run.answered]
        assert len(unanswered) <= len(run.in_flight), "orders nobody sent are in the log"
        in_flight_ids = {sent.client_order_id for sent in run.in_flight.values()}
        for order in unanswered:
            assert order["client_order_id"] is None or order["client_order_id"] in in_flight_ids, order
        assert_positions_replay_the_log(client, log)

        after_restart = client.post("/v1/orders", json={"strategy": "STRATEGY_C", "instrument": "INFY", "side": "SELL"})
        assert after_restart.status_code == 201, after_restart.text
        assert after_restart.json()["order_id"] > max(stored_ids)
    assert_verified(home)


@pytest.mark.e2e
def test_resending_orders_in_flight_at_the_kill_applies_each_exactly_once(
    home: Path, start_gateway: StartGateway
) -> None:
    gateway = start_gateway(home)
    for attempt in range(CRASH_ATTEMPTS):  # the kill may (rarely) catch no keyed order in flight: crash again
        run = crash_under_load(gateway, seed=7 + attempt, tag=f"crash{attempt}")
        in_flight = [sent for sent in run.in_flight.values() if sent.client_order_id is not None]
        if in_flight:
            break
        gateway.restart()
    else:
        pytest.fail(f"no order with a client order id was in flight at any of {CRASH_ATTEMPTS} kills")
    answered = [answer for answer in run.answered.values() if answer.sent.client_order_id is not None]

    gateway.restart()
    with httpx.Client(base_url=gateway.url, timeout=REQUEST_TIMEOUT) as client:
        last_stored = max(order["order_id"] for order in fetch_all(client, "/v1/orders"))
        decided: dict[Sent, int] = {}
        for sent in in_flight:
            order_id, replayed = resend(client, sent)
            assert replayed in (None, order_id <= last_stored), f"{sent}: order {order_id}, replayed={replayed}"
            decided[sent] = order_id
        for sent in in_flight:
            assert resend(client, sent)[0] == decided[sent], f"{sent} was decided twice"
        for answer in answered[:50]:
            assert resend(client, answer.sent) == (answer.order_id, None if answer.sent.legacy else True)

        log = fetch_all(client, "/v1/orders")
        keys = [order["client_order_id"] for order in log if order["client_order_id"] is not None]
        assert len(keys) == len(set(keys)), "a client order id was decided more than once"
        stored = {order["client_order_id"]: order["order_id"] for order in log}
        assert {sent.client_order_id: order_id for sent, order_id in decided.items()} == {
            sent.client_order_id: stored.get(sent.client_order_id) for sent in in_flight
        }
        assert_positions_replay_the_log(client, log)
    assert_verified(home)


def resend(client: httpx.Client, sent: Sent) -> tuple[int, bool | None]:
    """Send ``sent`` again: (order id, whether it was a replay, ``None`` if a legacy answer cannot say)."""
    path, body, headers = sent.request()
    response = client.post(path, json=body, headers=headers)
    if sent.legacy:
        assert response.status_code == 200, response.text
        return response.json()["ORDER_ID"], None
    assert response.status_code in (200, 201), response.text
    order = response.json()
    assert order["replayed"] is (response.status_code == 200), order
    return order["order_id"], order["replayed"]
