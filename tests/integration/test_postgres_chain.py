"""The tamper-evident order log on PostgreSQL (SPEC section 9): one hash chain per instrument, each order
linked to the previous order on its instrument; ``ordergate verify --db`` names the first broken order."""

from __future__ import annotations

import asyncio
import hashlib
import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import psycopg
import pytest
from typer.testing import CliRunner

from ordergate.cli import app
from ordergate.domain.chain import GENESIS_HASH, chain_hash
from ordergate.store.postgres import PostgresLogReader
from tests.integration.conftest import running_gateway
from tests.postgres import fresh_database

runner = CliRunner()

ORDERS = [
    ("STRATEGY_B", "MINDA", "BUY"),  # 1
    ("STRATEGY_A", "GRASIM", "BUY"),  # 2
    ("STRATEGY_A", "GRASIM", "SELL"),  # 3
    ("STRATEGY_D", "ACC", "BUY"),  # 4
    ("STRATEGY_A", "MINDA", "SELL"),  # 5
    ("STRATEGY_A", "GRASIM", "BUY"),  # 6
]


@pytest.fixture
def database(seed_home: Path) -> Iterator[str]:
    with fresh_database() as url:

        async def fill() -> None:
            async with running_gateway(seed_home, db=url) as (client, _):
                for strategy, instrument, side in ORDERS:
                    body = {"strategy": strategy, "instrument": instrument, "side": side}
                    assert (await client.post("/v1/orders", json=body)).status_code == 201

        asyncio.run(fill())
        yield url


def execute(url: str, sql: str) -> list[tuple[Any, ...]]:
    with psycopg.connect(url, autocommit=True) as conn:
        cursor = conn.execute(sql)
        return cursor.fetchall() if cursor.description is not None else []


def verify(url: str) -> tuple[int, str]:
    result = runner.invoke(app, ["verify", "--db", url])
    return result.exit_code, " ".join((result.stdout + result.stderr).split())


def test_every_order_is_linked_to_the_previous_order_on_its_instrument(database: str) -> None:
    reader = PostgresLogReader(database)
    heads: dict[str, str] = {}
    last = GENESIS_HASH
    for record in reader.iter_orders():
        instrument = record.order.instrument
        assert record.chain_hash == chain_hash(heads.get(instrument, GENESIS_HASH), record)
        heads[instrument] = last = record.chain_hash
    reader.close()
    assert set(heads) == {"MINDA", "GRASIM", "ACC"}
    code, output = verify(database)
    assert code == 0, output
    # the anchor covers every instrument's chain, not only the chain of the last order
    anchor = hashlib.sha256(json.dumps(sorted(heads.items()), separators=(",", ":")).encode()).hexdigest()
    assert f"anchor (a digest of every chain head): {anchor}" in output
    assert last not in output


@pytest.mark.parametrize(
    ("tamper", "first_broken"),
    [
        ("UPDATE orders SET status = 'REJECTED', reason = 'ALREADY_HOLDING', applied = '[]' WHERE order_id = 2", 2),
        ("UPDATE orders SET received_at = '2020-01-01T00:00:00.000000Z' WHERE order_id = 3", 3),
        ("UPDATE orders SET client_order_id = 'mine' WHERE order_id = 4", 4),
        ("UPDATE orders SET controls_fingerprint = 'abc' WHERE order_id = 5", 5),
        ("UPDATE orders SET instrument = 'ACC' WHERE order_id = 6", 6),
        ("DELETE FROM orders WHERE order_id = 3", 6),  # the next GRASIM order no longer follows its predecessor
        ("UPDATE orders SET chain_hash = '" + "0" * 64 + "' WHERE order_id = 5", 5),
    ],
    ids=["decision", "timestamp", "client-id", "controls", "instrument", "deleted", "hash"],
)
def test_verify_db_exits_1_naming_the_first_order_where_the_log_was_altered(
    database: str, tamper: str, first_broken: int
) -> None:
    assert verify(database)[0] == 0
    execute(database, tamper)
    code, output = verify(database)
    assert code == 1, output
    assert f"order {first_broken}: the hash chain of" in output


def test_a_store_from_before_the_chain_is_refused_by_verify_then_linked_when_a_gateway_opens_it(
    seed_home: Path, database: str
) -> None:
    # back to schema version 3: without the chain, nor what later versions added
    execute(database, "ALTER TABLE orders DROP COLUMN chain_hash, DROP COLUMN commit_xid")
    execute(database, "DELETE FROM schema_migrations WHERE version >= 4")
    code, output = verify(database)
    assert code == 2
    assert "from before the hash chain" in output

    async def reopen() -> None:
        async with running_gateway(seed_home, db=database) as (client, _):
            body = {"strategy": "STRATEGY_B", "instrument": "MINDA", "side": "BUY"}
            assert (await client.post("/v1/orders", json=body)).status_code == 201

    asyncio.run(reopen())
    assert execute(database, "SELECT count(*) FROM orders WHERE chain_hash IS NULL") == [(0,)]
    code, output = verify(database)
    assert code == 0, output
    assert "7 orders" in output
