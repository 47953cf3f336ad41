"""``ordergate verify`` as an audit (SPEC sections 3 and 9): it passes across a harmless re-ordering of
the profile file, on logs written before decisions were sorted too, and it fails (exit 1, naming the
order) on everything it cannot vouch for: a missing or unreadable profiles or controls document, and a
stored row whose values were altered into something no ordergate writes."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import orjson
import pytest
from typer.testing import CliRunner

from ordergate.cli import app
from ordergate.domain.book import Position
from ordergate.domain.model import Action, Decision, Effect, Order, Scope, Side, Status
from ordergate.domain.record import OrderRecord
from ordergate.domain.registry import Registry
from ordergate.store.sqlite import SQLiteStore
from tests.conftest import write_home
from tests.integration.conftest import running_gateway
from tests.postgres import fresh_database

pytestmark = pytest.mark.anyio
runner = CliRunner()

PROFILES = {
    "Zoe": {"S1": ["ACC", "TCS"], "S2": ["INFY"]},
    "Amy": {"S2": ["INFY"], "S1": ["TCS", "ACC"]},
    "Max": {"S1": ["ACC"]},
}
REORDERED = {  # the same content: users, strategies and instruments each in the opposite order
    user: {strategy: instruments[::-1] for strategy, instruments in reversed(strategies.items())}
    for user, strategies in reversed(PROFILES.items())
}


@pytest.fixture(params=["sqlite", "postgresql"])
def store(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str | None]:
    """``None`` for the SQLite store of the home, or the URL of a fresh PostgreSQL database."""
    if request.param == "sqlite":
        yield None
        return
    with fresh_database() as url:
        yield url


def where(home: Path, db: str | None) -> list[str]:
    return ["--home", str(home)] if db is None else ["--db", db]


def verify(home: Path, db: str | None = None, *more: str) -> tuple[int, str]:
    result = runner.invoke(app, ["verify", *where(home, db), *more])
    return result.exit_code, " ".join((result.stdout + result.stderr).split())


async def send(client: httpx.AsyncClient, strategy: str, instrument: str, side: str) -> dict[str, Any]:
    response = await client.post("/v1/orders", json={"strategy": strategy, "instrument": instrument, "side": side})
    assert response.status_code == 201, response.text
    answer: dict[str, Any] = response.json()
    return answer


def users(answer: dict[str, Any]) -> list[str]:
    return [a["user"] for a in answer["applied"]]


# -- defect 4: re-ordering the profile file changes no decision ------------------------------------


async def test_verify_passes_across_a_reload_and_a_restart_with_the_profile_keys_reordered(
    tmp_path: Path, store: str | None
) -> None:
    home = write_home(tmp_path / "home", PROFILES)
    settings = {} if store is None else {"db": store}
    async with running_gateway(home, **settings) as (client, _):
        assert users(await send(client, "S1", "ACC", "BUY")) == ["Amy", "Max", "Zoe"]
        tcs = await send(client, "S1", "TCS", "BUY")
        assert users(tcs) == ["Amy", "Zoe"]
        assert [r["user"] for r in tcs["rejected_for"]] == ["Max"]
        write_home(home, REORDERED)
        reloaded = await client.post("/v1/admin/reload-profiles")
        assert reloaded.status_code == 200, reloaded.text
        assert reloaded.json()["fingerprint"] == reloaded.json()["previous_fingerprint"]
        assert users(await send(client, "S2", "INFY", "BUY")) == ["Amy", "Zoe"]
    async with running_gateway(home, **settings) as (client, _):  # a restart reads the re-ordered file
        assert users(await send(client, "S1", "ACC", "SELL")) == ["Amy", "Max", "Zoe"]
        assert users(await send(client, "S1", "TCS", "SELL")) == ["Amy", "Zoe"]
        assert users(await send(client, "S1", "ACC", "BUY")) == ["Amy", "Max", "Zoe"]
    code, output = verify(home, store)
    assert code == 0, output
    assert "ok: 6 orders" in output
    assert "(6 decisions re-derived" in output


async def test_verify_passes_on_a_log_whose_effects_follow_the_file_order(tmp_path: Path) -> None:
    """A log written before subscribers were sorted keeps its effects in the profile file's order."""
    home = write_home(tmp_path / "home", {"Zoe": {"S1": ["ACC"]}, "Amy": {"S1": ["ACC"]}})
    registry = Registry.from_document(orjson.loads((home / "Jsons" / "user_profile.json").read_bytes()))
    at = "2026-01-01T00:00:01.000000Z"
    in_file_order = (Effect("Zoe", Action.OPENED, "S1"), Effect("Amy", Action.OPENED, "S1"))
    store = SQLiteStore(home / "data" / "ordergate.sqlite3")
    await store.open(Scope.ACCOUNT)
    await store.record_profiles(registry.fingerprint, orjson.dumps(registry.to_document()).decode())
    await store.commit(
        [
            OrderRecord(
                order_id=1,
                received_at=at,
                order=Order("S1", "ACC", Side.BUY),
                decision=Decision(Status.ACCEPTED, None, in_file_order, ()),
                scope=Scope.ACCOUNT,
                profile_fingerprint=registry.fingerprint,
                client_order_id=None,
                opened=tuple(Position(e.user, "S1", "ACC", 1, at) for e in in_file_order),
            )
        ]
    )
    await store.close()
    code, output = verify(home)
    assert code == 0, output
    assert "(1 decisions re-derived" in output
    async with running_gateway(home) as (client, _):  # decided now: sorted, and still the same decision
        assert users(await send(client, "S1", "ACC", "SELL")) == ["Amy", "Zoe"]
    assert verify(home)[0] == 0


def test_reordered_fixture_is_the_same_content_in_another_order() -> None:
    assert Registry.from_document(PROFILES).fingerprint == Registry.from_document(REORDERED).fingerprint
    assert list(REORDERED) == ["Max", "Amy", "Zoe"]
    assert orjson.dumps(PROFILES) != orjson.dumps(REORDERED)
