"""SIGTERM under load: the gateway stops accepting, commits what is in flight, and exits 0.

Every order that got a decision is in the log afterwards with that decision, nothing else is, the
open positions are a replay of the log (no half-written group) and the hash chain is intact. Also:
serving on a non-loopback address without ``--auth`` prints a warning.
"""

from __future__ import annotations

import asyncio
import random
import time
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.e2e.conftest import SEED_PROFILE, StartGateway, assert_verified, book_of, fetch_all, replay

pytestmark = pytest.mark.e2e

STRATEGIES = {"STRATEGY_A": ["BIRLASOFT", "GRASIM", "EICHER"], "STRATEGY_B": ["MINDA"], "STRATEGY_D": ["ACC"]}
WORKERS = 32
TERMINATE_AFTER_ANSWERS = 300


async def load(url: str, answered: dict[str, dict[str, Any]], stop: asyncio.Event) -> None:
    """Send orders from WORKERS clients until the gateway stops answering; keep every decision."""

    async def worker(number: int) -> None:
        rng = random.Random(number)
        async with httpx.AsyncClient(base_url=url, timeout=10) as client:
            for sequence in range(10_000):
                strategy = rng.choice(sorted(STRATEGIES))
                body = {
                    "strategy": strategy,
                    "instrument": rng.choice(STRATEGIES[strategy]),
                    "side": rng.choice(["BUY", "SELL"]),
                    "client_order_id": f"w{number}-{sequence}",
                }
                try:
                    response = await client.post("/v1/orders", json=body)
                except httpx.TransportError:
                    return  # the gateway stopped listening
                if response.status_code == 201:
                    answered[body["client_order_id"]] = response.json()
                elif response.status_code != 503:
                    pytest.fail(f"unexpected answer during shutdown: {response.status_code} {response.text}")
                if stop.is_set() and response.headers.get("connection") == "close":
                    return

    await asyncio.gather(*(worker(n) for n in range(WORKERS)))


def test_sigterm_under_load_commits_what_is_in_flight_and_exits_zero(home: Path, start_gateway: StartGateway) -> None:
    gateway = start_gateway(home)
    answered: dict[str, dict[str, Any]] = {}

    async def scenario() -> int | None:
        stop = asyncio.Event()
        traffic = asyncio.create_task(load(gateway.url, answered, stop))
        deadline = time.monotonic() + 30
        while len(answered) < TERMINATE_AFTER_ANSWERS:
            assert time.monotonic() < deadline, f"only {len(answered)} answers in 30 s"
            await asyncio.sleep(0.01)
        stop.set()
        code = await asyncio.to_thread(gateway.terminate)
        await asyncio.wait_for(traffic, 30)
        return code

    code = asyncio.run(scenario())
    assert code == 0, gateway.log_tail()
    assert "Traceback" not in gateway.log_text()

    gateway.start()
    with httpx.Client(base_url=gateway.url, timeout=10) as client:
        orders = fetch_all(client, "/v1/orders", page_size=1000)
        positions = fetch_all(client, "/v1/positions", page_size=1000)
    stored = {o["client_order_id"]: o for o in orders}
    assert len(stored) == len(orders)
    for client_order_id, answer in answered.items():
        assert stored.get(client_order_id) == {**answer, "replayed": False}, client_order_id
    assert book_of(positions, "account") == replay(orders, SEED_PROFILE, "account")
    gateway.terminate()
    assert_verified(home)


def test_serving_beyond_loopback_without_auth_prints_a_warning(home: Path, start_gateway: StartGateway) -> None:
    gateway = start_gateway(home, "--host", "0.0.0.0")
    assert "without --auth" in gateway.log_text()
    gateway.terminate()
    quiet = start_gateway(home)
    assert "without --auth" not in quiet.log_text().split("--- start 1")[-1]
