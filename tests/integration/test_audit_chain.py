"""The tamper-evident order log (SPEC section 9): every stored order carries a hash over its content and
the previous order's hash; ``ordergate verify`` names the first order where the chain breaks."""

from __future__ import annotations

import sqlite3
from pathlib import Path

import orjson
import pytest
from typer.testing import CliRunner

from ordergate.cli import app
from ordergate.domain.chain import GENESIS_HASH, chain_hash
from ordergate.domain.model import Scope
from ordergate.domain.registry import Registry
from ordergate.errors import StoreUnavailable
from ordergate.store.sqlite import SQLiteLogReader, SQLiteStore
from ordergate.store.sqlite.schema import MIGRATIONS
from tests.conftest import SEED_PROFILES
from tests.integration.conftest import running_gateway
from tests.integration.test_sqlite_store import opening

pytestmark = pytest.mark.anyio
runner = CliRunner()

ORDERS = [
    ("STRATEGY_B", "MINDA", "BUY"),
    ("STRATEGY_A", "GRASIM", "BUY"),
    ("STRATEGY_A", "GRASIM", "SELL"),
    ("STRATEGY_D", "ACC", "BUY"),
    ("STRATEGY_A", "MINDA", "SELL"),
]


def verify(home: Path) -> tuple[int, str]:
    result = runner.invoke(app, ["verify", "--home", str(home)])
    return result.exit_code, result.stdout + result.stderr


async def fill(home: Path) -> None:
    async with running_gateway(home) as (client, _):
        for strategy, instrument, side in ORDERS:
            body = {"strategy": strategy, "instrument": instrument, "side": side}
            assert (await client.post("/v1/orders", json=body)).status_code == 201


def database(home: Path) -> Path:
    return home / "data" / "ordergate.sqlite3"


async def test_every_stored_order_is_linked_to_the_one_before(seed_home: Path) -> None:
    await fill(seed_home)
    reader = SQLiteLogReader(database(seed_home))
    previous = GENESIS_HASH
    for record in reader.iter_orders():
        assert record.chain_hash == chain_hash(previous, record)
        previous = record.chain_hash
    reader.close()
    code, output = verify(seed_home)
    assert code == 0, output
    assert f"anchor (a digest of every chain head): {previous}" in output.replace("\n", "")


@pytest.mark.parametrize(
    ("tamper", "first_broken"),
    [
        ("UPDATE orders SET status = 'REJECTED', reason = 'ALREADY_HOLDING', applied = '[]' WHERE order_id = 2", 2),
        ("UPDATE orders SET received_at = '2020-01-01T00:00:00.000000Z' WHERE order_id = 3", 3),
        ("UPDATE orders SET client_order_id = 'mine' WHERE order_id = 4", 4),
        ("DELETE FROM orders WHERE order_id = 3", 4),
        ("UPDATE orders SET chain_hash = '" + "0" * 64 + "' WHERE order_id = 5", 5),
    ],
    ids=["decision", "timestamp", "client-id", "deleted", "hash"],
)
async def test_verify_names_the_first_order_where_the_log_was_altered(
    seed_home: Path, tamper: str, first_broken: int
) -> None:
    await fill(seed_home)
    with sqlite3.connect(database(seed_home)) as db:
        db.execute(tamper)
    code, output = verify(seed_home)
    assert code == 1
    assert f"order {first_broken}: the hash chain breaks here" in output.replace("\n", " ")


async def test_a_failed_commit_leaves_the_chain_where_it_was(tmp_path: Path) -> None:
    store = SQLiteStore(tmp_path / "db.sqlite3")
    await store.open(Scope.ACCOUNT)
    await store.commit([opening(1)])
    with pytest.raises(StoreUnavailable, match="UNIQUE"):  # the unique key on open positions refuses it
        await store.commit([opening(2, instrument="INFY"), opening(3)])
    await store.commit([opening(2, instrument="INFY")])
    await store.close()
    reader = SQLiteLogReader(tmp_path / "db.sqlite3")
    records = list(reader.iter_orders())
    reader.close()
    assert records[1].chain_hash == chain_hash(chain_hash(GENESIS_HASH, records[0]), records[1])


async def test_a_store_from_before_the_chain_is_linked_when_the_gateway_opens_it(seed_home: Path) -> None:
    path = database(seed_home)
    path.parent.mkdir(parents=True)
    profiles = Registry.from_document(SEED_PROFILES)
    with sqlite3.connect(path) as db:  # a version-2 store, as the previous release left it
        for version, script in MIGRATIONS[:2]:
            db.executescript(script)
            db.execute(f"PRAGMA user_version = {version}")
        db.execute(
            "INSERT INTO profiles (fingerprint, document) VALUES (?, ?)",
            (profiles.fingerprint, orjson.dumps(profiles.to_document()).decode()),
        )
        db.execute(
            "INSERT INTO orders (order_id, received_at, strategy, instrument, side, status, reason, scope, "
            "profile_fingerprint, client_order_id, applied, rejected_for) VALUES "
            "(1, '2026-01-01T00:00:00.000000Z', 'STRATEGY_B', 'MINDA', 'BUY', 'ACCEPTED', NULL, 'account', "
            "?, NULL, ?, '[]')",
            (profiles.fingerprint, orjson.dumps([["Holland Proctor", "OPENED", "STRATEGY_B"]]).decode()),
        )
        db.execute(
            "INSERT INTO positions (user, scope_strategy, instrument, strategy, opened_order_id, opened_at) "
            "VALUES ('Holland Proctor', '', 'MINDA', 'STRATEGY_B', 1, '2026-01-01T00:00:00.000000Z')"
        )
    code, output = verify(seed_home)
    assert code == 2
    assert "start the gateway on it once" in output
    async with running_gateway(seed_home) as (client, _):
        body = {"strategy": "STRATEGY_A", "instrument": "MINDA", "side": "SELL"}
        assert (await client.post("/v1/orders", json=body)).json()["status"] == "ACCEPTED"
    code, output = verify(seed_home)
    assert code == 0, output
    assert "ok: 2 orders" in output
