"""A restart over a real store (SQLite, PostgreSQL): the book it builds, the profiles it records, the collector.

The book a store gives back at start (:meth:`~ordergate.domain.book.Book.restore` over its grouped
rows) must equal, position for position and holder for holder, the book of the running gateway and
the book built the old way (one position per stored row, indexed by the constructor).
"""

from __future__ import annotations

import gc
import random
import sqlite3
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from ordergate.bootstrap import open_log_reader, prepare_gateway
from ordergate.config import Settings
from ordergate.domain.book import Book
from ordergate.domain.model import Scope
from ordergate.errors import StartupError
from ordergate.store.base import Snapshot
from ordergate.store.sqlite import SQLiteStore
from tests.conftest import write_home
from tests.integration.conftest import running_gateway
from tests.postgres import fresh_database

pytestmark = pytest.mark.anyio

STRATEGIES = ["S1", "S2", "S3"]
INSTRUMENTS = ["ACC", "INFY", "TCS", "L&T", "MINDA"]


def random_profiles(rng: random.Random) -> dict[str, dict[str, list[str]]]:
    return {
        f"User {n}": {s: rng.sample(INSTRUMENTS, rng.randint(1, 4)) for s in rng.sample(STRATEGIES, rng.randint(1, 3))}
        for n in range(30)
    }


@pytest.fixture(params=["sqlite", "postgresql"])
def db(request: pytest.FixtureRequest) -> Iterator[str | None]:
    if request.param == "sqlite":
        yield None
        return
    with fresh_database() as url:
        yield url


def settings_of(home: Path, db: str | None, scope: Scope) -> dict[str, Any]:
    return {"scope": scope} | ({"db": db} if db is not None else {})


def book_facts(book: Book) -> tuple[list[Any], dict[tuple[str, str], set[str]]]:
    holders = {(s, i): set(book.holders(s, i)) for s in STRATEGIES for i in INSTRUMENTS}
    return sorted(book), holders


async def send_random_orders(client: httpx.AsyncClient, rng: random.Random, count: int) -> None:
    orders = [
        {"strategy": rng.choice(STRATEGIES), "instrument": rng.choice(INSTRUMENTS), "side": rng.choice(["BUY", "SELL"])}
        for _ in range(count)
    ]
    for start in range(0, count, 50):
        answer = await client.post("/v1/orders/batch", json={"orders": orders[start : start + 50]})
        assert answer.status_code == 200


async def opened_snapshot(home: Path, db: str | None, scope: Scope) -> Snapshot:
    config = Settings(home=home, **settings_of(home, db, scope))
    gateway = prepare_gateway(config)
    try:
        return await gateway.store.open(scope)
    finally:
        await gateway.stop()


@pytest.mark.parametrize("scope", list(Scope))
async def test_the_book_after_a_restart_is_the_stored_book_built_in_one_pass_from_the_stores_groups(
    tmp_path: Path, db: str | None, scope: Scope
) -> None:
    rng = random.Random(f"{scope}-{db is None}")
    home = write_home(tmp_path / "home", random_profiles(rng))
    async with running_gateway(home, **settings_of(home, db, scope)) as (client, gateway):
        await send_random_orders(client, rng, 400)
        assert gateway.sequencer is not None
        before = book_facts(gateway.sequencer.book)
    assert before[0], "the random orders left no open position"

    snapshot = await opened_snapshot(home, db, scope)
    restored = Book.restore(scope, snapshot.opened)
    reader = open_log_reader(Settings(home=home, **settings_of(home, db, scope)))
    try:
        old_way = Book(scope, reader.open_positions())
    finally:
        reader.close()
    assert book_facts(restored) == book_facts(old_way) == before
    assert snapshot.open_at_origin == len(restored) or db is not None
    # one string per name: the user of every position held by one user is the same object
    names: dict[str, str] = {}
    assert all(names.setdefault(p.user, p.user) is p.user for p in restored)
    assert all(names.setdefault(p.instrument, p.instrument) is p.instrument for p in restored)

    async with running_gateway(home, **settings_of(home, db, scope)) as (_, gateway):
        assert gateway.sequencer is not None
        assert book_facts(gateway.sequencer.book) == before


async def test_a_start_records_profiles_only_when_the_store_does_not_keep_them_yet(
    tmp_path: Path, db: str | None, monkeypatch: pytest.MonkeyPatch
) -> None:
    home = write_home(tmp_path / "home", {"Ann": {"S1": ["ACC"]}})
    recorded: list[str] = []

    def counting(gateway: Any) -> None:
        inner = gateway.store.record_profiles

        async def record_profiles(fingerprint: str, document: str) -> None:
            recorded.append(fingerprint)
            await inner(fingerprint, document)

        monkeypatch.setattr(gateway.store, "record_profiles", record_profiles)

    async def start_once() -> str:
        config = Settings(home=home, **settings_of(home, db, Scope.ACCOUNT))
        gateway = prepare_gateway(config)
        counting(gateway)
        await gateway.start()
        await gateway.stop()
        return gateway.registry.fingerprint

    first = await start_once()
    assert recorded == [first]
    assert await start_once() == first
    assert recorded == [first], "profiles already stored were recorded again"
    write_home(home, {"Ann": {"S1": ["ACC", "INFY"]}})
    second = await start_once()
    assert recorded == [first, second]
    snapshot = await opened_snapshot(home, db, Scope.ACCOUNT)
    assert snapshot.profiles == {first, second}


async def test_the_collector_is_paused_through_each_step_of_the_start_and_resumed_once_ready(tmp_path: Path) -> None:
    home = write_home(tmp_path / "home", {"Ann": {"S1": ["ACC"]}})
    assert gc.isenabled()
    frozen = gc.get_freeze_count()
    gateway = prepare_gateway(Settings(home=home))
    assert gc.isenabled()
    assert gc.get_freeze_count() > frozen, "the registry is left for collections to walk while the server starts"
    seen: list[bool] = []
    build = gateway.new_sequencer

    def watching(snapshot: Snapshot, registry: Any) -> Any:
        seen.append(gc.isenabled())
        return build(snapshot, registry)

    gateway.new_sequencer = watching
    frozen = gc.get_freeze_count()
    await gateway.start()
    try:
        assert seen == [False]
        assert gc.isenabled()
        assert gc.get_freeze_count() > frozen  # what the start built is out of the collector's sight
    finally:
        await gateway.stop()
    assert gc.isenabled()


async def test_a_failed_start_gives_the_collector_back(tmp_path: Path) -> None:
    home = write_home(tmp_path / "home", {"Ann": {"S1": ["ACC"]}})
    async with running_gateway(home) as (client, _):
        assert (await client.post("/v1/orders", json={"strategy": "S1", "instrument": "ACC", "side": "BUY"})).is_success
    gateway = prepare_gateway(Settings(home=home, scope=Scope.STRATEGY))
    with pytest.raises(StartupError, match="--scope account"):
        await gateway.start()
    assert gc.isenabled()
    await gateway.stop()
    assert gc.isenabled()


async def test_a_refused_profile_file_gives_the_collector_back(tmp_path: Path) -> None:
    home = write_home(tmp_path / "home", b"not json")
    with pytest.raises(StartupError, match="not valid JSON"):
        prepare_gateway(Settings(home=home))
    assert gc.isenabled()


async def test_the_store_reads_its_book_as_one_row_per_opening_order(tmp_path: Path) -> None:
    home = write_home(tmp_path / "home", {f"U{n}": {"S1": ["ACC", "INFY"]} for n in range(50)})
    async with running_gateway(home) as (client, _):
        for instrument in ("ACC", "INFY"):
            answer = await client.post("/v1/orders", json={"strategy": "S1", "instrument": instrument, "side": "BUY"})
            assert len(answer.json()["applied"]) == 50
    store = SQLiteStore(home / "data" / "ordergate.sqlite3")
    snapshot = await store.open(Scope.ACCOUNT)
    await store.close()
    assert sorted((o.instrument, len(o.users)) for o in snapshot.opened) == [("ACC", 50), ("INFY", 50)]
    assert snapshot.open_at_origin == 100
    with sqlite3.connect(home / "data" / "ordergate.sqlite3") as conn:
        assert conn.execute("SELECT count(*) FROM positions").fetchone() == (100,)
