"""PostgreSQL going away under load: 503 with Retry-After, nothing of those orders stored, recovery by itself.

The outage is real: the database stops accepting connections (``ALLOW_CONNECTIONS false``) and every
session it has is ended with ``pg_terminate_backend``, whatever it was doing (waiting for a lock,
writing, committing). To the gateway that is the database being down; then it comes back.
"""

from __future__ import annotations

import asyncio
import random
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from ordergate.service.verify import verify_log
from ordergate.store.postgres import PostgresLogReader
from tests.conftest import write_home
from tests.integration.conftest import running_gateway
from tests.postgres import bring_database_back, fresh_database, kill_connections, take_database_down

pytestmark = pytest.mark.anyio

PROFILES = {f"User {n}": {"S1": ["ACC", "INFY", "TCS", "WIPRO"], "S2": ["ACC", "SBIN"]} for n in range(8)}
WORKERS = 16
RECOVERY_TIMEOUT = 20.0


@pytest.fixture
def database() -> Iterator[str]:
    with fresh_database() as url:
        yield url


def random_order(rng: random.Random, client_order_id: str) -> dict[str, str]:
    return {
        "strategy": rng.choice(["S1", "S2"]),
        "instrument": rng.choice(["ACC", "INFY", "TCS", "WIPRO", "SBIN"]),
        "side": rng.choice(["BUY", "SELL"]),
        "client_order_id": client_order_id,
    }


async def all_orders(client: httpx.AsyncClient) -> list[dict[str, object]]:
    stored: list[dict[str, object]] = []
    after = 0
    for _ in range(100):
        page = (await client.get("/v1/orders", params={"after": after, "limit": 1000})).json()
        stored += page["items"]
        if page["next"] is None:
            return stored
        after = page["next"]
    raise AssertionError("the order log has too many pages")


async def test_database_down_mid_load_answers_503_keeps_nothing_of_those_orders_and_recovers_by_itself(
    tmp_path: Path, database: str
) -> None:
    home = write_home(tmp_path / "home", PROFILES)
    answered: dict[str, dict[str, object]] = {}
    refused: set[str] = set()
    problems: list[str] = []
    phase = {"name": "before"}

    async with running_gateway(home, db=database) as (client, _):

        async def work(worker: int) -> None:
            rng = random.Random(worker)
            for index in range(10_000):
                if phase["name"] == "done":
                    return
                key = f"w{worker}-{index}"
                answer = await client.post("/v1/orders", json=random_order(rng, key))
                if answer.status_code == 201:
                    answered[key] = answer.json()
                elif answer.status_code == 503:
                    refused.add(key)
                    if answer.headers.get("Retry-After") is None or "not stored" not in answer.json()["detail"]:
                        problems.append(f"{key}: 503 without Retry-After or reason: {answer.text}")
                    await asyncio.sleep(0.05)
                else:
                    problems.append(f"{key}: HTTP {answer.status_code} {answer.text}")
                    return

        load = asyncio.gather(*(work(n) for n in range(WORKERS)))
        while len(answered) < 100:
            await asyncio.sleep(0.01)
        phase["name"] = "down"
        take_database_down(database)
        down_since = len(answered)
        # fresh orders while it is down are refused (the load's own may be waiting on a group whose
        # COMMIT the outage interrupted: those are answered once the database tells whether it committed)
        rng = random.Random(99)
        probes = {f"probe-{n}": random_order(rng, f"probe-{n}") for n in range(8)}
        answers = await asyncio.gather(*(client.post("/v1/orders", json=body) for body in probes.values()))
        assert [a.status_code for a in answers] == [503] * len(probes)
        assert {a.headers["Retry-After"] for a in answers} == {"1"}
        refused |= probes.keys()
        assert (await client.get("/readyz")).status_code == 503
        bring_database_back(database)
        phase["name"] = "back"

        deadline = time.monotonic() + RECOVERY_TIMEOUT
        while len(answered) < down_since + 200:  # served again, by the same process, without a restart
            assert time.monotonic() < deadline, f"no recovery: {len(answered) - down_since} orders since the outage"
            await asyncio.sleep(0.05)
        kill_connections(database)  # connections killed while the database stays up: one more blip
        target = len(answered) + 100
        while len(answered) < target:
            assert time.monotonic() < deadline + RECOVERY_TIMEOUT, "no recovery after the connections were killed"
            await asyncio.sleep(0.05)
        phase["name"] = "done"
        await load
        assert not problems, "\n".join(problems[:10])
        assert (await client.get("/readyz")).status_code == 200
        stored = await all_orders(client)

    # exactly the answered orders are stored, as answered; nothing of a refused order exists
    by_key = {order["client_order_id"]: order for order in stored}
    assert by_key.keys() == answered.keys()
    assert all(by_key[key] == answer for key, answer in answered.items())
    assert not refused & by_key.keys()
    reader = PostgresLogReader(database)
    try:
        report = verify_log(reader)
    finally:
        reader.close()
    assert report.ok, report.problem
    assert report.redecided == len(answered)


async def test_an_instrument_another_session_keeps_locked_does_not_fail_the_orders_of_other_instruments(
    tmp_path: Path, database: str
) -> None:
    """A stuck transaction holds ACC's lock past the lock timeout: only ACC's order is answered 503."""
    import psycopg

    from ordergate.store.postgres.store import LOCK_SPACE_INSTRUMENT, lock_key

    home = write_home(tmp_path / "home", PROFILES)
    async with running_gateway(home, db=database) as (client, _):
        stuck = psycopg.connect(database)  # a transaction of another process that does not end
        stuck.execute("SELECT pg_advisory_xact_lock(%s, %s)", (LOCK_SPACE_INSTRUMENT, lock_key("ACC")))
        try:
            batch = {
                "orders": [
                    {"strategy": "S1", "instrument": "ACC", "side": "BUY", "client_order_id": "acc-1"},
                    {"strategy": "S1", "instrument": "INFY", "side": "BUY", "client_order_id": "infy-1"},
                    {"strategy": "S2", "instrument": "SBIN", "side": "BUY", "client_order_id": "sbin-1"},
                ]
            }
            results = (await client.post("/v1/orders/batch", json=batch, timeout=30)).json()["results"]
        finally:
            stuck.close()
        acc, infy, sbin = results
        assert acc["error"]["status"] == 503
        assert "lock" in acc["error"]["detail"]
        assert (infy["status"], sbin["status"]) == ("ACCEPTED", "ACCEPTED")
        again = await client.post("/v1/orders", json=batch["orders"][0])  # the lock is gone: decided now
        assert (again.status_code, again.json()["status"]) == (201, "ACCEPTED")
