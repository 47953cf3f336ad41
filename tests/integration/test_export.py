"""``ordergate export``: a large log round-trips through every format, streamed in flat memory, and
read while the gateway that owns the store is running; from SQLite and from PostgreSQL, including
stores written by earlier versions."""

from __future__ import annotations

import csv
import io
import json
import random
import sqlite3
import tracemalloc
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from typer.testing import CliRunner

from ordergate.cli import app
from ordergate.store.sqlite.schema import MIGRATIONS
from tests.conftest import SEED_PROFILES, write_home
from tests.integration.sse import running
from tests.postgres import fresh_database

pytestmark = pytest.mark.anyio

PROFILES = {
    f"User {n:03d}": {
        "S1": ["ACC", "INFY", "TCS", "WIPRO", "L&T"],
        "S2": ["ACC", "SBIN", "ITC"],
        **({"S3": ["TCS", "ITC"]} if n % 3 == 0 else {}),
    }
    for n in range(30)
}
BATCHES = 10  # of 1000 orders: a log of 10,000 orders


async def listing(client: httpx.AsyncClient, path: str) -> list[dict[str, Any]]:
    items: list[dict[str, Any]] = []
    after = 0
    while True:
        page = (await client.get(path, params={"after": after, "limit": 1000})).json()
        items += page["items"]
        if page["next"] is None:
            return items
        after = page["next"]


def export(home: Path, what: str, fmt: str, output: Path, db: str | None = None) -> None:
    store = ["--home", str(home)] if db is None else ["--db", db]
    result = CliRunner().invoke(app, ["export", *store, "--what", what, "--format", fmt, "--output", str(output)])
    assert result.exception is None or isinstance(result.exception, SystemExit), result.exception
    assert result.exit_code == 0, result.output
    assert "exported" in result.stderr


def read_back(path: Path, fmt: str) -> list[dict[str, Any]]:
    text = path.read_text(encoding="utf-8")
    if fmt == "json":
        loaded: list[dict[str, Any]] = json.loads(text)
        return loaded
    if fmt == "jsonl":
        return [json.loads(line) for line in text.splitlines()]
    rows = list(csv.DictReader(io.StringIO(text, newline="")))
    return [{name: _typed(name, value) for name, value in row.items()} for row in rows]


def _typed(name: str, value: str) -> object:
    if name.endswith("_id") and name != "client_order_id":
        return int(value)
    if name in ("applied", "rejected_for"):
        return json.loads(value)
    if value == "" and name in ("reason", "client_order_id", "actor", "risk_fingerprint", "signal_time", "door"):
        return None
    return value


async def test_a_large_log_round_trips_through_every_format_while_the_gateway_runs(tmp_path: Path) -> None:
    home = write_home(tmp_path / "home", PROFILES)
    rng = random.Random(3)
    async with running(home) as gw:
        for batch in range(BATCHES):
            orders = [
                {
                    "strategy": (strategy := rng.choice(["S1", "S2", "S3", "S4"])),
                    "instrument": rng.choice(PROFILES["User 000"].get(strategy, ["ACC"])),
                    "side": rng.choice(["BUY", "SELL"]),
                    **({"client_order_id": f"b{batch}-{i}"} if i % 2 else {}),
                }
                for i in range(1000)
            ]
            assert (await gw.client.post("/v1/orders/batch", json={"orders": orders})).status_code == 200
        expected = {
            "orders": [{k: v for k, v in o.items() if k != "replayed"} for o in await listing(gw.client, "/v1/orders")],
            "positions": await listing(gw.client, "/v1/positions"),
            "trades": await listing(gw.client, "/v1/trades"),
        }
        assert len(expected["orders"]) == BATCHES * 1000
        assert expected["positions"]
        assert expected["trades"]
        for what, items in expected.items():
            for fmt in ("jsonl", "csv", "json"):
                output = tmp_path / f"{what}.{fmt}"
                export(home, what, fmt, output)
                assert read_back(output, fmt) == items, f"{what} as {fmt}"


async def test_exporting_the_log_as_one_json_array_uses_flat_memory(tmp_path: Path) -> None:
    home = write_home(tmp_path / "home", PROFILES)
    async with running(home) as gw:
        orders = [{"strategy": "S1", "instrument": i, "side": s} for i in ("ACC", "TCS") for s in ("BUY", "SELL")]
        for _ in range(5):
            await gw.client.post("/v1/orders/batch", json={"orders": orders * 250})
    output = tmp_path / "orders.json"
    tracemalloc.start()
    try:
        export(home, "orders", "json", output)
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    size = output.stat().st_size
    assert len(json.loads(output.read_text())) == 5000
    assert size > 4_000_000, size  # 30 users per order: a sizeable file
    assert peak < size / 4, f"peak {peak} bytes of Python memory while writing {size} bytes"


def test_export_without_a_store_exits_2_with_one_line(tmp_path: Path) -> None:
    result = CliRunner().invoke(app, ["export", "--home", str(tmp_path), "--what", "trades"])
    assert result.exit_code == 2
    assert "no store" in result.stderr
    assert len(result.stderr.strip().splitlines()) == 1


def test_export_refuses_an_unknown_format(tmp_path: Path) -> None:
    result = CliRunner().invoke(app, ["export", "--home", str(tmp_path), "--format", "xml"])
    assert result.exit_code == 2
    assert "xml" in result.stderr


# -- PostgreSQL ---------------------------------------------------------------------------------------


@pytest.fixture
def database() -> Iterator[str]:
    with fresh_database() as url:
        yield url


def random_orders(rng: random.Random, batch: int, count: int) -> list[dict[str, Any]]:
    return [
        {
            "strategy": (strategy := rng.choice(["S1", "S2", "S3", "S4"])),
            "instrument": rng.choice(PROFILES["User 000"].get(strategy, ["ACC"])),
            "side": rng.choice(["BUY", "SELL"]),
            **({"client_order_id": f"b{batch}-{i}"} if i % 2 else {}),
        }
        for i in range(count)
    ]


async def test_a_postgresql_log_round_trips_through_every_format_with_the_gateway_running_and_stopped(
    tmp_path: Path, database: str
) -> None:
    home = write_home(tmp_path / "home", PROFILES)
    rng = random.Random(5)
    outputs = tmp_path / "out"
    outputs.mkdir()

    def export_all(label: str, expected: dict[str, list[dict[str, Any]]]) -> None:
        for what, items in expected.items():
            for fmt in ("jsonl", "csv", "json"):
                output = outputs / f"{label}-{what}.{fmt}"
                export(home, what, fmt, output, db=database)
                assert read_back(output, fmt) == items, f"{what} as {fmt}, gateway {label}"

    async with running(home, db=database) as gw:
        for batch in range(3):
            response = await gw.client.post("/v1/orders/batch", json={"orders": random_orders(rng, batch, 500)})
            assert response.status_code == 200
        expected = {
            "orders": [{k: v for k, v in o.items() if k != "replayed"} for o in await listing(gw.client, "/v1/orders")],
            "positions": await listing(gw.client, "/v1/positions"),
            "trades": await listing(gw.client, "/v1/trades"),
        }
        assert len(expected["orders"]) == 1500
        assert expected["positions"]
        assert expected["trades"]
        assert any(o["client_order_id"] for o in expected["orders"])
        assert any(o["rejected_for"] for o in expected["orders"])
        export_all("running", expected)
    export_all("stopped", expected)


async def test_export_of_a_postgresql_store_from_before_the_hash_chain(tmp_path: Path, database: str) -> None:
    """Exports read a store of any version; verify alone needs the chain (it refuses, exit 2)."""
    import psycopg

    home = write_home(tmp_path / "home", SEED_PROFILES)
    async with running(home, db=database) as gw:
        body = {"strategy": "STRATEGY_B", "instrument": "MINDA", "side": "BUY"}
        assert (await gw.client.post("/v1/orders", json=body)).status_code == 201
    with psycopg.connect(database, autocommit=True) as conn:  # as version 1 left it
        conn.execute("ALTER TABLE orders DROP COLUMN chain_hash, DROP COLUMN controls_fingerprint")
        conn.execute("DELETE FROM schema_migrations WHERE version > 1")
    output = tmp_path / "orders.jsonl"
    export(home, "orders", "jsonl", output, db=database)
    [order] = read_back(output, "jsonl")
    assert (order["order_id"], order["status"], order["applied"][0]["user"]) == (1, "ACCEPTED", "Holland Proctor")
    export(home, "positions", "csv", tmp_path / "positions.csv", db=database)
    assert [p["user"] for p in read_back(tmp_path / "positions.csv", "csv")] == ["Holland Proctor"]
    verified = CliRunner().invoke(app, ["verify", "--db", database])
    assert verified.exit_code == 2
    assert "from before the hash chain" in verified.stderr


def test_export_of_an_sqlite_store_from_before_the_hash_chain(tmp_path: Path) -> None:
    path = tmp_path / "data" / "ordergate.sqlite3"
    path.parent.mkdir()
    with sqlite3.connect(path) as db:  # a version-2 store, as an earlier release left it
        for version, script in MIGRATIONS[:2]:
            db.executescript(script)
            db.execute(f"PRAGMA user_version = {version}")
        db.execute(
            "INSERT INTO orders (order_id, received_at, strategy, instrument, side, status, reason, scope, "
            "profile_fingerprint, client_order_id, applied, rejected_for) VALUES "
            "(1, '2026-01-01T00:00:00.000000Z', 'S1', 'ACC', 'BUY', 'REJECTED', 'UNKNOWN_STRATEGY', 'account', "
            "'f', 'mine', '[]', '[]')"
        )
    export(tmp_path, "orders", "json", tmp_path / "orders.json")
    [order] = read_back(tmp_path / "orders.json", "json")
    assert (order["order_id"], order["reason"], order["client_order_id"]) == (1, "UNKNOWN_STRATEGY", "mine")


def test_export_of_a_postgresql_database_without_a_store_exits_2_with_one_line(database: str) -> None:
    result = CliRunner().invoke(app, ["export", "--db", database, "--what", "orders"])
    assert result.exit_code == 2
    assert "no ordergate store" in result.stderr
    assert len(result.stderr.strip().splitlines()) == 1


def test_export_of_an_unreachable_postgresql_exits_2_with_one_line() -> None:
    result = CliRunner().invoke(app, ["export", "--db", "postgresql://nobody@127.0.0.1:1/none", "--what", "trades"])
    assert result.exit_code == 2
    assert "cannot connect to PostgreSQL at" in result.stderr
    assert len(result.stderr.strip().splitlines()) == 1
