"""A store that cannot commit (disk full) gives 503 with Retry-After and leaves no trace of those orders.

The disk is filled for real: SQLite's ``max_page_count`` caps the database file at its current size,
so the next commit that needs a new page fails with SQLITE_FULL exactly as on a full disk.
"""

from __future__ import annotations

import asyncio
import random
import sqlite3
from pathlib import Path

import pytest

from ordergate.service.verify import verify_log
from ordergate.store.sqlite import SQLiteLogReader
from tests.conftest import write_home
from tests.integration.conftest import OpenGateway
from tests.integration.sqlite_writer import cap_database_size, refuse_writes

pytestmark = pytest.mark.anyio

PROFILES = {f"User {n}": {"S1": ["ACC", "INFY", "TCS", "WIPRO"], "S2": ["ACC", "SBIN"]} for n in range(8)}


def random_order(rng: random.Random) -> dict[str, str]:
    strategy = rng.choice(["S1", "S2"])
    return {
        "strategy": strategy,
        "instrument": rng.choice(["ACC", "INFY", "TCS", "WIPRO", "SBIN"]),
        "side": rng.choice(["BUY", "SELL"]),
    }


async def test_failed_commits_answer_503_and_leave_nothing_in_memory_or_on_disk(
    tmp_path: Path, open_gateway: OpenGateway
) -> None:
    home = write_home(tmp_path / "home", PROFILES)
    rng = random.Random(7)
    answered: dict[int, dict[str, object]] = {}
    refused = 0
    async with open_gateway(home) as (client, gateway):
        await cap_database_size(gateway, None)
        for _ in range(40):  # bounded: the cap is reached after a few dozen orders
            wave = await asyncio.gather(*(client.post("/v1/orders", json=random_order(rng)) for _ in range(32)))
            for answer in wave:
                if answer.status_code == 201:
                    answered[answer.json()["order_id"]] = answer.json()
                else:
                    assert answer.status_code == 503
                    assert answer.headers["Retry-After"] == "1"
                    assert "not stored" in answer.json()["detail"]
                    refused += 1
            if refused:
                break
        assert refused, "the capped store never failed"

        # the disk has room again: the gateway recovers by itself and continues as if nothing failed
        await cap_database_size(gateway, 1_000_000)
        for _ in range(64):
            answer = await client.post("/v1/orders", json=random_order(rng))
            assert answer.status_code == 201
            answered[answer.json()["order_id"]] = answer.json()
        assert (await client.get("/readyz")).status_code == 200

        stored = []
        after = 0
        while True:
            page = (await client.get("/v1/orders", params={"after": after, "limit": 1000})).json()
            stored += page["items"]
            if page["next"] is None:
                break
            after = page["next"]

    # exactly the answered orders are stored, with gapless ids, and nothing else
    assert sorted(answered) == list(range(1, len(answered) + 1))
    assert {o["order_id"]: o for o in stored} == answered
    # every decision (made after the failure too) re-derives from the stored log alone: nothing of the
    # failed orders lingered in the in-memory book
    reader = SQLiteLogReader(home / "data" / "ordergate.sqlite3")
    try:
        report = verify_log(reader)
    finally:
        reader.close()
    assert report.ok, report.problem
    assert report.redecided == len(answered)


async def test_idempotent_retry_after_a_503_is_decided_fresh(tmp_path: Path, open_gateway: OpenGateway) -> None:
    home = write_home(tmp_path / "home", PROFILES)
    order = {"strategy": "S1", "instrument": "ACC", "side": "BUY", "client_order_id": "retry-me"}
    async with open_gateway(home) as (client, gateway):
        await refuse_writes(gateway, True)
        failed = await client.post("/v1/orders", json=order)
        assert failed.status_code == 503
        assert (await client.get("/readyz")).status_code == 503
        await refuse_writes(gateway, False)
        retried = await client.post("/v1/orders", json=order)
        replayed = await client.post("/v1/orders", json=order)
        ready = await client.get("/readyz")
    assert ready.status_code == 200
    assert (retried.status_code, retried.json()["replayed"]) == (201, False)
    assert (replayed.status_code, replayed.json()["order_id"]) == (200, retried.json()["order_id"])


async def test_legacy_endpoint_gets_503_too(tmp_path: Path, open_gateway: OpenGateway) -> None:
    home = write_home(tmp_path / "home", PROFILES)
    async with open_gateway(home) as (client, gateway):
        await refuse_writes(gateway, True)
        answer = await client.post("/create_order", json={"STRATEGY": "S1", "INSTRUMENT": "ACC", "POSITION": "BUY"})
        assert (answer.status_code, answer.headers["Retry-After"]) == (503, "1")
        assert (await client.get("/v1/positions")).json()["items"] == []


async def test_a_caller_that_goes_away_while_its_order_waits_for_commit_does_not_cancel_it(
    seed_home: Path, open_gateway: OpenGateway
) -> None:
    """The order is decided, the database is busy, the caller gives up: the order is still committed."""
    order = {"strategy": "STRATEGY_B", "instrument": "MINDA", "side": "BUY", "client_order_id": "gone"}
    async with open_gateway(seed_home) as (client, _):
        blocker = sqlite3.connect(seed_home / "data" / "ordergate.sqlite3", isolation_level=None)
        blocker.execute("BEGIN IMMEDIATE")  # the gateway's commit now waits for this write lock
        task = asyncio.ensure_future(client.post("/v1/orders", json=order))
        for _ in range(200):  # until the order is decided (the book holds it, uncommitted)
            check = await client.post(
                "/v1/orders/check", json={k: order[k] for k in ("strategy", "instrument", "side")}
            )
            if check.json()["reason"] == "ALREADY_HOLDING":
                break
            await asyncio.sleep(0.01)
        assert check.json()["reason"] == "ALREADY_HOLDING"
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task
        blocker.execute("ROLLBACK")
        again = await client.post("/v1/orders", json=order)
        positions = (await client.get("/v1/positions")).json()["items"]
    blocker.close()
    assert (again.status_code, again.json()["replayed"], again.json()["order_id"]) == (200, True, 1)
    assert [(p["user"], p["instrument"]) for p in positions] == [("Holland Proctor", "MINDA")]


async def test_batch_items_of_a_failed_commit_report_503_and_are_not_stored(
    tmp_path: Path, open_gateway: OpenGateway
) -> None:
    home = write_home(tmp_path / "home", PROFILES)
    async with open_gateway(home) as (client, gateway):
        await refuse_writes(gateway, True)
        batch = {"orders": [{"strategy": "S1", "instrument": "ACC", "side": "BUY"}] * 3}
        answer = await client.post("/v1/orders/batch", json=batch)
        assert [r["error"]["status"] for r in answer.json()["results"]] == [503, 503, 503]
        await refuse_writes(gateway, False)
        again = await client.post("/v1/orders/batch", json=batch)
    assert [(r["order_id"], r["status"]) for r in again.json()["results"]] == [
        (1, "ACCEPTED"),
        (2, "REJECTED"),
        (3, "REJECTED"),
    ]


async def test_an_id_whose_first_order_is_not_committed_yet_makes_no_409_and_is_free_again_if_that_commit_fails(
    seed_home: Path, open_gateway: OpenGateway
) -> None:
    """Only a committed decision makes a conflict: while the first order under an id waits for a busy
    store, another order under that id waits too; when the first one's commit fails, the id was never
    used and the second order is decided."""
    first = {"strategy": "STRATEGY_B", "instrument": "MINDA", "side": "BUY", "client_order_id": "same"}
    second = {**first, "side": "SELL"}
    async with open_gateway(seed_home) as (client, _):
        blocker = sqlite3.connect(seed_home / "data" / "ordergate.sqlite3", isolation_level=None)
        blocker.execute("BEGIN IMMEDIATE")  # the commit waits for this lock, then fails (busy timeout)
        first_answer = asyncio.ensure_future(client.post("/v1/orders", json=first))
        for _ in range(200):  # until the first order is decided (the book holds it, uncommitted)
            check = await client.post(
                "/v1/orders/check", json={k: first[k] for k in ("strategy", "instrument", "side")}
            )
            if check.json()["reason"] == "ALREADY_HOLDING":
                break
            await asyncio.sleep(0.01)
        second_answer = asyncio.ensure_future(client.post("/v1/orders", json=second))
        await asyncio.sleep(0.5)
        assert not second_answer.done()  # no 409 for an id whose order is not committed
        assert (await first_answer).status_code == 503
        blocker.execute("ROLLBACK")
        answer = await second_answer
        blocker.close()
    assert answer.status_code == 201, answer.text
    assert (answer.json()["side"], answer.json()["reason"]) == ("SELL", "NO_OPEN_POSITION")
