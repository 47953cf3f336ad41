"""Reads never hold up order entry (SPEC section 3): the API's reads queue in a lane of their own.

Without timing anything: the API's reads are *held* inside the database, in a way the test controls
(SQLite: a progress handler on the API's read connections that blocks until released; PostgreSQL: a
table lock that the reads of ``/v1/trades`` wait for inside the server). While they are held, an
order with a client order id (an idempotency lookup), a batch of them, and ``/readyz`` must still
answer; reads past the lane's queue are refused at once with 503 and ``Retry-After``. The waits
below only bound how long a broken build may hang before it fails.
"""

from __future__ import annotations

import asyncio
import contextlib
import sqlite3
import threading
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import psycopg
import pytest

from ordergate.store.admission import READ_CONNECTIONS, READ_QUEUE
from ordergate.store.postgres.store import POOL_SIZE
from ordergate.store.sqlite import SQLiteStore
from tests.integration.conftest import running_gateway
from tests.postgres import fresh_database

pytestmark = pytest.mark.anyio

HANG = 10.0
"""Seconds after which a request that should have answered counts as stuck (the test fails)."""


class HeldReads:
    """Blocks every statement of the API's read lane inside SQLite, once, until :meth:`release`."""

    def __init__(self) -> None:
        self.holding = threading.Event()
        self.released = threading.Event()
        self.inside = threading.Semaphore(0)
        self._local = threading.local()

    def install(self, conn: sqlite3.Connection) -> None:
        if threading.current_thread().name.startswith("ordergate-sqlite-api-read"):
            conn.set_progress_handler(self._progress, 1)

    def _progress(self) -> int:
        if self.holding.is_set() and not self.released.is_set():
            self.inside.release()
            self.released.wait(30)
        return 0

    async def wait_inside(self, count: int) -> None:
        for _ in range(count):
            entered = await asyncio.to_thread(self.inside.acquire, True, HANG)
            assert entered, "the API's reads never reached SQLite"

    def release(self) -> None:
        self.released.set()

    @contextlib.asynccontextmanager
    async def holding_reads(self) -> AsyncIterator[None]:
        """Hold the reads from now on; released at the end whatever happens, before the gateway stops."""
        self.holding.set()
        try:
            yield
        finally:
            self.release()


@pytest.fixture
def held(monkeypatch: pytest.MonkeyPatch) -> Iterator[HeldReads]:
    reads = HeldReads()
    opened = SQLiteStore._read_connection

    def read_connection(store: SQLiteStore) -> sqlite3.Connection:
        conn = opened(store)
        reads.install(conn)
        return conn

    monkeypatch.setattr(SQLiteStore, "_read_connection", read_connection)
    yield reads
    reads.release()


def order(n: int, side: str = "BUY") -> dict[str, str]:
    return {"strategy": "STRATEGY_B", "instrument": "MINDA", "side": side, "client_order_id": f"held-{n}"}


async def test_orders_with_client_order_ids_and_readyz_answer_while_the_apis_reads_are_held_in_sqlite(
    seed_home: Path, held: HeldReads
) -> None:
    async with running_gateway(seed_home) as (client, _), held.holding_reads():
        reads = [
            asyncio.create_task(client.get("/v1/trades", params={"instrument": "NOPE"}))
            for _ in range(READ_CONNECTIONS + 2)
        ]
        await held.wait_inside(READ_CONNECTIONS)  # every read connection is busy; two more reads wait

        first = await asyncio.wait_for(client.post("/v1/orders", json=order(1)), HANG)
        assert first.status_code == 201, first.text
        again = await asyncio.wait_for(client.post("/v1/orders", json=order(1)), HANG)
        assert (again.status_code, again.json()["replayed"]) == (200, True)
        batch = await asyncio.wait_for(
            client.post("/v1/orders/batch", json={"orders": [order(2, "SELL"), order(1)]}), HANG
        )
        assert [r.get("status") for r in batch.json()["results"]] == ["ACCEPTED", "ACCEPTED"]
        ready = await asyncio.wait_for(client.get("/readyz"), HANG)
        assert ready.status_code == 200, ready.text
        assert not any(read.done() for read in reads), "the reads were meant to be held"

        held.release()
        answers = await asyncio.wait_for(asyncio.gather(*reads), HANG)
        assert [a.status_code for a in answers] == [200] * len(reads)
        assert all(a.json() == {"items": [], "next": None} for a in answers)


async def test_reads_past_the_lanes_queue_are_refused_at_once_with_503_and_retry_after(
    seed_home: Path, held: HeldReads
) -> None:
    async with running_gateway(seed_home) as (client, _), held.holding_reads():
        admitted = [asyncio.create_task(client.get("/v1/orders", params={"status": "REJECTED"}))]
        await held.wait_inside(1)
        admitted += [
            asyncio.create_task(client.get("/v1/positions", params={"strategy": "STRATEGY_A"}))
            for _ in range(READ_CONNECTIONS + READ_QUEUE - 1)
        ]
        await held.wait_inside(READ_CONNECTIONS - 1)
        for _ in range(50):  # until every admitted read has been queued by its request
            await asyncio.sleep(0.01)
        refused = await asyncio.wait_for(client.get("/v1/trades", params={"user": "Holland Proctor"}), HANG)
        assert refused.status_code == 503
        assert refused.headers["retry-after"] == "1"
        assert "too many reads at once" in refused.json()["detail"]
        assert (await asyncio.wait_for(client.post("/v1/orders", json=order(3)), HANG)).status_code == 201

        held.release()
        answers = await asyncio.wait_for(asyncio.gather(*admitted), HANG)
        assert {a.status_code for a in answers} == {200}
        assert (await client.get("/v1/trades", params={"user": "Holland Proctor"})).status_code == 200
        metrics = (await client.get("/metrics")).text
        assert 'ordergate_store_errors_total{operation="read"} 0.0' in metrics, "a refusal is not a store failure"


def test_orders_and_readyz_answer_while_every_api_read_waits_inside_postgresql(seed_home: Path) -> None:
    with fresh_database() as url:
        asyncio.run(_while_reads_wait_on_a_lock(seed_home, url))


async def _while_reads_wait_on_a_lock(home: Path, url: str) -> None:
    async with running_gateway(home, db=url) as (client, _):
        async with await psycopg.AsyncConnection.connect(url) as locker:
            # Order entry never touches trades for a BUY: only the API's reads of /v1/trades wait.
            await locker.execute("LOCK TABLE trades IN ACCESS EXCLUSIVE MODE")
            reads = [
                asyncio.create_task(client.get("/v1/trades", params={"instrument": "NOPE"}))
                for _ in range(POOL_SIZE + 2)  # as many as would take every connection of one shared pool
            ]
            await _sessions_waiting_on_a_lock(url, READ_CONNECTIONS)
            placed = await asyncio.wait_for(client.post("/v1/orders", json=order(1)), HANG)
            assert placed.status_code == 201, placed.text
            again = await asyncio.wait_for(client.post("/v1/orders", json=order(1)), HANG)
            assert (again.status_code, again.json()["replayed"]) == (200, True)
            assert (await asyncio.wait_for(client.get("/readyz"), HANG)).status_code == 200
            assert not any(read.done() for read in reads[:READ_CONNECTIONS])
            await locker.rollback()
        answers = await asyncio.wait_for(asyncio.gather(*reads), HANG)
        statuses = [a.status_code for a in answers]
        assert set(statuses) <= {200, 503}, statuses  # reads that waited past the pool's timeout: 503
        assert statuses.count(200) >= READ_CONNECTIONS


async def _sessions_waiting_on_a_lock(url: str, count: int) -> None:
    async with await psycopg.AsyncConnection.connect(url, autocommit=True) as watcher:
        for _ in range(int(HANG / 0.05)):
            cursor = await watcher.execute(
                "SELECT count(*) FROM pg_stat_activity WHERE datname = current_database()"
                " AND wait_event_type = 'Lock' AND query LIKE '%FROM trades%'"
            )
            row = await cursor.fetchone()
            if row is not None and row[0] >= count:
                return
            await asyncio.sleep(0.05)
    raise AssertionError(f"fewer than {count} reads ever waited inside PostgreSQL")
