"""The PostgreSQL store on a real server: schema and migrations, scope guard, verify --db, start-up errors.

The rules and the HTTP API run against this store through the shared suites (see conftest); here
are the parts only a shared database has.
"""

from __future__ import annotations

import asyncio
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import psycopg
import pytest
from typer.testing import CliRunner

from ordergate.cli import app
from ordergate.domain.book import Position
from ordergate.domain.model import Action, Decision, Effect, Order, Scope, Side, Status
from ordergate.domain.record import OrderRecord
from ordergate.errors import StartupError, StoreUnavailable
from ordergate.store.postgres import PostgresStore
from ordergate.store.postgres.schema import MIGRATIONS
from tests.conftest import write_home
from tests.integration.conftest import running_gateway
from tests.postgres import fresh_database

runner = CliRunner()


@pytest.fixture
def database() -> Iterator[str]:
    with fresh_database() as url:
        yield url


def rows(url: str, sql: str) -> list[tuple[object, ...]]:
    with psycopg.connect(url, autocommit=True) as conn:
        cursor = conn.execute(sql)
        return cursor.fetchall() if cursor.description is not None else []


def invoke(*args: str) -> tuple[int, str, str]:
    result = runner.invoke(app, list(args))
    return result.exit_code, result.stdout, result.stderr


def opening(order_id: int, user: str = "Ann") -> OrderRecord:
    order = Order("S1", "ACC", Side.BUY)
    return OrderRecord(
        order_id=order_id,
        received_at="2026-01-01T00:00:00.000000Z",
        order=order,
        decision=Decision(Status.ACCEPTED, None, (Effect(user, Action.OPENED, "S1"),), ()),
        scope=Scope.ACCOUNT,
        profile_fingerprint="f",
        client_order_id=None,
        opened=(Position(user, "S1", "ACC", order_id, "2026-01-01T00:00:00.000000Z"),),
    )


@pytest.mark.anyio
async def test_processes_starting_together_migrate_once_and_reopening_keeps_the_state(database: str) -> None:
    stores = [PostgresStore(database) for _ in range(3)]
    snapshots = await asyncio.gather(*(store.open(Scope.ACCOUNT) for store in stores))
    assert [s.last_order_id for s in snapshots] == [0, 0, 0]
    async with stores[0].lock_group(["ACC"], [], 1) as group:
        assert group.locked.order_ids == [1]
        await group.commit([opening(1)])
    for store in stores:
        await store.close()
    versions = rows(database, "SELECT version FROM schema_migrations ORDER BY version")
    assert versions == [(v,) for v, _ in MIGRATIONS]  # in order; a version number may be left out

    again = PostgresStore(database)
    snapshot = await again.open(Scope.ACCOUNT)
    await again.close()
    assert snapshot.last_order_id == 1
    assert list(snapshot.iter_positions()) == [Position("Ann", "S1", "ACC", 1, "2026-01-01T00:00:00.000000Z")]


@pytest.mark.anyio
async def test_a_newer_schema_than_known_is_refused(database: str) -> None:
    store = PostgresStore(database)
    await store.open(Scope.ACCOUNT)
    await store.close()
    rows(database, "INSERT INTO schema_migrations (version) VALUES (99)")
    with pytest.raises(StartupError, match="upgrade ordergate"):
        await PostgresStore(database).open(Scope.ACCOUNT)


@pytest.mark.anyio
async def test_opening_an_already_open_position_is_refused_by_the_unique_key_and_stores_nothing(
    database: str,
) -> None:
    store = PostgresStore(database)
    await store.open(Scope.ACCOUNT)
    try:
        async with store.lock_group(["ACC"], [], 1) as group:
            await group.commit([opening(group.locked.order_ids[0])])
        with pytest.raises(StoreUnavailable, match="positions"):
            async with store.lock_group(["ACC"], [], 1) as group:
                await group.commit([opening(group.locked.order_ids[0])])
    finally:
        await store.close()
    assert rows(database, "SELECT order_id FROM orders") == [(1,)]


def test_starting_with_the_other_scope_while_positions_are_open_exits_2_naming_the_scope(
    seed_home: Path, database: str
) -> None:
    async def open_a_position() -> None:
        async with running_gateway(seed_home, db=database) as (client, _):
            answer = await client.post(
                "/v1/orders", json={"strategy": "STRATEGY_B", "instrument": "MINDA", "side": "BUY"}
            )
            assert answer.status_code == 201

    asyncio.run(open_a_position())
    code, _, err = invoke("serve", "--home", str(seed_home), "--db", database, "--scope", "strategy", "--port", "0")
    assert code == 2
    assert "--scope account" in err
    assert len(err.strip().splitlines()) == 1


@pytest.mark.anyio
async def test_a_process_whose_scope_another_process_replaced_refuses_orders(seed_home: Path, database: str) -> None:
    order = {"strategy": "STRATEGY_B", "instrument": "MINDA", "side": "BUY"}
    async with (
        running_gateway(seed_home, db=database) as (first, _),
        running_gateway(seed_home, db=database, scope="strategy") as (second, _),
    ):
        stale = await first.post("/v1/orders", json=order)
        assert stale.status_code == 503
        assert "--scope strategy" in stale.json()["detail"]
        assert (await second.post("/v1/orders", json=order)).status_code == 201
    assert rows(database, "SELECT scope FROM orders") == [("strategy",)]


def test_serve_with_an_unreachable_database_exits_2_with_one_line(seed_home: Path) -> None:
    code, _, err = invoke("serve", "--home", str(seed_home), "--db", "postgresql://postgres@127.0.0.1:1/none")
    assert code == 2
    assert "cannot connect to PostgreSQL at postgresql://postgres@127.0.0.1:1/none" in err
    assert len(err.strip().splitlines()) == 1


def test_verify_db_replays_the_log_and_names_the_first_altered_order(seed_home: Path, database: str) -> None:
    async def make_log() -> None:
        async with running_gateway(seed_home, db=database) as (client, _):
            for strategy, instrument, side in [
                ("STRATEGY_A", "GRASIM", "SELL"),
                ("STRATEGY_B", "MINDA", "BUY"),
                ("STRATEGY_A", "GRASIM", "BUY"),
                ("STRATEGY_A", "MINDA", "SELL"),
                ("STRATEGY_B", "MINDA", "BUY"),
            ]:
                body = {"strategy": strategy, "instrument": instrument, "side": side}
                assert (await client.post("/v1/orders", json=body)).status_code == 201

    asyncio.run(make_log())
    code, out, _ = invoke("verify", "--db", database)
    assert code == 0
    assert "5 orders replay to the 2 open positions" in " ".join(out.split())
    rows(
        database,
        "UPDATE orders SET applied = '[]', status = 'REJECTED', reason = 'NO_OPEN_POSITION' WHERE order_id = 4",
    )
    code, _, err = invoke("verify", "--db", database)
    assert code == 1
    assert "order 4" in err


def test_verify_db_of_a_database_without_a_store_exits_2(database: str) -> None:
    code, _, err = invoke("verify", "--db", database)
    assert code == 2
    assert "no ordergate store" in err


def test_the_sqlite_default_never_imports_the_postgresql_driver(seed_home: Path) -> None:
    script = (
        "import asyncio, sys\n"
        "from ordergate.api.app import create_app\n"
        "from ordergate.config import Settings\n"
        "from ordergate.bootstrap import prepare_gateway\n"
        "import ordergate.cli\n"
        f"settings = Settings(home={str(seed_home)!r})\n"
        "app = create_app(settings, prepare_gateway(settings))\n"
        "async def serve_once():\n"
        "    async with app.router.lifespan_context(app):\n"
        "        pass\n"
        "asyncio.run(serve_once())\n"
        "assert not [m for m in sys.modules if m.startswith('psycopg')], sorted(sys.modules)\n"
    )
    result = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=60, check=False)
    assert result.returncode == 0, result.stderr


def test_a_postgresql_url_without_the_extra_installed_says_how_to_install_it(seed_home: Path) -> None:
    script = (
        "import sys\n"
        "sys.modules['psycopg'] = None  # as if the 'postgres' extra were not installed\n"
        "from ordergate.cli import main\n"
        f"sys.argv = ['ordergate', 'serve', '--home', {str(seed_home)!r}, '--db', 'postgresql://x@127.0.0.1/y']\n"
        "main()\n"
    )
    result = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=60, check=False)
    assert result.returncode == 2
    assert "pip install 'ordergate[postgres]'" in result.stderr


def test_the_database_url_is_shown_without_its_password() -> None:
    store = PostgresStore("postgresql://trader:s3cret@db.internal:6432/orders?sslmode=require")
    assert store.location == "postgresql://trader@db.internal:6432/orders"


@pytest.mark.anyio
async def test_profile_reload_works_on_postgresql(tmp_path: Path, database: str) -> None:
    home = write_home(tmp_path / "home", {"Ann": {"S1": ["ACC"]}, "Bob": {"S1": ["ACC"]}})
    buy = {"strategy": "S1", "instrument": "ACC", "side": "BUY"}
    async with running_gateway(home, db=database) as (client, _):
        assert len((await client.post("/v1/orders", json=buy)).json()["applied"]) == 2
        write_home(home, {"Ann": {"S2": ["INFY"]}, "Bob": {"S1": ["ACC"]}, "Cid": {"S1": ["ACC"]}})
        assert (await client.post("/v1/admin/reload-profiles")).status_code == 200
        sell = (await client.post("/v1/orders", json={**buy, "side": "SELL"})).json()
        assert {a["user"] for a in sell["applied"]} == {"Ann", "Bob"}  # Ann left S1; her S1 position still sells
    code, out, _ = invoke("verify", "--db", database)
    assert code == 0, out
    assert "2 decisions re-derived" in " ".join(out.split())
