"""Trading controls on PostgreSQL (SPEC sections 6 and 9): stored in the shared database and read inside
every group transaction, so a control set through one gateway holds at once for orders sent to
another; each order records the controls it was decided under and ``verify --db`` decides it again.

Two gateways on one database here are two stores with their own connection pools and sequencers in
one test process; ``tests/e2e/test_postgres_cluster.py`` does the same with real processes.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import httpx
import orjson
import psycopg
import pytest
from typer.testing import CliRunner

from ordergate.cli import app
from ordergate.domain.controls import Controls
from tests.conftest import write_home
from tests.integration.conftest import running_gateway
from tests.integration.test_controls_and_reload import PROFILES, control, refusals, send
from tests.postgres import fresh_database

pytestmark = pytest.mark.anyio
runner = CliRunner()


@pytest.fixture
def database() -> Iterator[str]:
    with fresh_database() as url:
        yield url


@pytest.fixture
def home(tmp_path: Path) -> Path:
    return write_home(tmp_path / "home", PROFILES)


@contextlib.asynccontextmanager
async def two_gateways(home: Path, database: str) -> AsyncIterator[tuple[httpx.AsyncClient, httpx.AsyncClient]]:
    async with running_gateway(home, db=database) as (a, _), running_gateway(home, db=database) as (b, _):
        yield a, b


def verify(database: str) -> tuple[int, str]:
    result = runner.invoke(app, ["verify", "--db", database])
    return result.exit_code, " ".join((result.stdout + result.stderr).split())


def rows(url: str, sql: str) -> list[tuple[Any, ...]]:
    with psycopg.connect(url, autocommit=True) as conn:
        cursor = conn.execute(sql)
        return cursor.fetchall() if cursor.description is not None else []


@pytest.mark.parametrize(("level", "target"), [("global", None), ("strategy", "S1")])
async def test_a_control_set_through_one_gateway_holds_at_once_for_orders_sent_to_another(
    home: Path, database: str, level: str, target: str | None
) -> None:
    async with two_gateways(home, database) as (a, b):
        await control(a, level, target, "HALTED")
        halted = await send(b, "S1", "ACC", "BUY")
        assert (halted["status"], halted["reason"]) == ("REJECTED", "HALTED")
        assert refusals(halted) == {"Ann": "HALTED", "Bob": "HALTED"}

        await control(b, level, target, "ACTIVE")
        assert (await send(a, "S1", "ACC", "BUY"))["status"] == "ACCEPTED"

        await control(a, level, target, "REDUCE_ONLY")
        buy = await send(b, "S1", "TCS", "BUY")
        assert (buy["status"], buy["reason"]) == ("REJECTED", "REDUCE_ONLY")
        sell = await send(b, "S1", "ACC", "SELL")
        assert sell["status"] == "ACCEPTED"
        assert {x["user"] for x in sell["applied"]} == {"Ann", "Bob"}
    code, output = verify(database)
    assert code == 0, output
    assert "4 decisions re-derived" in output


async def test_user_level_controls_hold_back_one_user_in_every_gateway(home: Path, database: str) -> None:
    async with two_gateways(home, database) as (a, b):
        await control(a, "user", "Ann", "HALTED")
        buy = await send(b, "S1", "ACC", "BUY")
        assert [x["user"] for x in buy["applied"]] == ["Bob"]
        assert refusals(buy) == {"Ann": "HALTED"}
        await control(a, "user", "Bob", "REDUCE_ONLY")
        everyone_held = await send(b, "S1", "TCS", "BUY")
        assert (everyone_held["status"], everyone_held["reason"]) == ("REJECTED", "HALTED")
        assert refusals(everyone_held) == {"Ann": "HALTED", "Bob": "REDUCE_ONLY"}
        sell = await send(b, "S1", "ACC", "SELL")
        assert [x["user"] for x in sell["applied"]] == ["Bob"]  # reduce-only lets Bob sell; Ann stays halted
        listed = (await b.get("/v1/controls")).json()
        assert listed["users"] == {"Ann": "HALTED", "Bob": "REDUCE_ONLY"}
        assert [(c["level"], c["target"], c["state"]) for c in listed["changes"]] == [
            ("user", "Ann", "HALTED"),
            ("user", "Bob", "REDUCE_ONLY"),
        ]
    code, output = verify(database)
    assert code == 0, output
    assert "3 decisions re-derived" in output


async def test_a_change_through_one_gateway_never_undoes_a_change_made_through_another(
    home: Path, database: str
) -> None:
    async with two_gateways(home, database) as (a, b):
        await control(a, "strategy", "S1", "HALTED")
        await control(b, "user", "Bob", "REDUCE_ONLY")  # b has decided nothing since: its view is stale
        in_force = rows(
            database,
            "SELECT s.document FROM control_changes c JOIN controls_sets s USING (fingerprint)"
            " ORDER BY change_id DESC LIMIT 1",
        )[0][0]
        assert Controls.from_document(orjson.loads(in_force)).to_document() == {
            "global": "ACTIVE",
            "strategies": {"S1": "HALTED"},
            "users": {"Bob": "REDUCE_ONLY"},
        }
        held = await send(b, "S1", "ACC", "BUY")
        assert (held["status"], held["reason"]) == ("REJECTED", "HALTED")
        assert refusals(held) == {"Ann": "HALTED", "Bob": "HALTED"}
        listed = (await b.get("/v1/controls")).json()  # b read them in its group transaction
        assert (listed["strategies"], listed["users"]) == ({"S1": "HALTED"}, {"Bob": "REDUCE_ONLY"})


async def test_controls_are_durable_and_each_order_records_the_controls_it_was_decided_under(
    home: Path, database: str
) -> None:
    async with running_gateway(home, db=database) as (client, _):
        await send(client, "S1", "ACC", "BUY")
        halted = await control(client, "strategy", "S1", "REDUCE_ONLY")
        await send(client, "S1", "TCS", "BUY")  # held back
    async with running_gateway(home, db=database) as (client, _):
        assert (await client.get("/v1/controls")).json()["strategies"] == {"S1": "REDUCE_ONLY"}
        assert (await send(client, "S1", "TCS", "BUY"))["reason"] == "REDUCE_ONLY"
        assert (await send(client, "S1", "ACC", "SELL"))["status"] == "ACCEPTED"
    assert rows(database, "SELECT order_id, controls_fingerprint FROM orders ORDER BY order_id")[1:] == [
        (2, halted["fingerprint"]),
        (3, halted["fingerprint"]),
        (4, halted["fingerprint"]),
    ]
    assert rows(database, "SELECT controls_fingerprint FROM orders WHERE order_id = 1") == [(None,)]
    code, output = verify(database)
    assert code == 0, output
    assert "4 decisions re-derived" in output


async def test_an_idle_gateway_shows_the_controls_another_gateway_set(home: Path, database: str) -> None:
    async with two_gateways(home, database) as (a, b):
        await control(a, "global", None, "HALTED")
        for _ in range(40):  # an idle gateway re-reads them every second
            if (await b.get("/v1/controls")).json()["global"] == "HALTED":
                break
            await asyncio.sleep(0.1)
        assert (await b.get("/v1/controls")).json()["global"] == "HALTED"
        check = (await b.post("/v1/orders/check", json={"strategy": "S1", "instrument": "ACC", "side": "BUY"})).json()
        assert check["reason"] == "HALTED"


async def test_the_answer_to_a_control_change_is_what_the_database_now_holds(home: Path, database: str) -> None:
    """A gateway whose view of the controls is stale answers the merged controls it stored, not the
    set it built from its own view (and decides ``check()`` under them at once)."""
    async with two_gateways(home, database) as (a, b):
        await control(a, "strategy", "S1", "HALTED")
        answer = await control(b, "user", "Bob", "REDUCE_ONLY")
        assert (answer["strategies"], answer["users"]) == ({"S1": "HALTED"}, {"Bob": "REDUCE_ONLY"})
        stored = rows(
            database,
            "SELECT fingerprint FROM control_changes ORDER BY change_id DESC LIMIT 1",
        )[0][0]
        assert answer["fingerprint"] == stored
        checked = (await b.post("/v1/orders/check", json={"strategy": "S1", "instrument": "ACC", "side": "BUY"})).json()
        assert checked["reason"] == "HALTED"
