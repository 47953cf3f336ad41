"""Trading controls and profile reloads on a running gateway (SPEC section 9), through HTTP, SIGHUP and
the CLI: each level and state, stored durably and in force after a restart, recorded with every order
so that ``ordergate verify`` derives each decision again."""

from __future__ import annotations

import asyncio
import os
import signal
from pathlib import Path
from typing import Any

import httpx
import orjson
import pytest
from typer.testing import CliRunner

from ordergate.cli import app
from tests.conftest import write_home
from tests.integration.conftest import running_gateway

pytestmark = pytest.mark.anyio
runner = CliRunner()

PROFILES = {
    "Ann": {"S1": ["ACC", "TCS"], "S2": ["INFY"]},
    "Bob": {"S1": ["ACC", "TCS"]},
}


@pytest.fixture
def home(tmp_path: Path) -> Path:
    return write_home(tmp_path / "home", PROFILES)


def order(strategy: str, instrument: str, side: str) -> dict[str, str]:
    return {"strategy": strategy, "instrument": instrument, "side": side}


async def send(client: httpx.AsyncClient, strategy: str, instrument: str, side: str) -> dict[str, Any]:
    response = await client.post("/v1/orders", json=order(strategy, instrument, side))
    assert response.status_code == 201, response.text
    answer: dict[str, Any] = response.json()
    return answer


async def control(client: httpx.AsyncClient, level: str, target: str | None, state: str) -> dict[str, Any]:
    response = await client.put("/v1/controls", json={"level": level, "target": target, "state": state})
    assert response.status_code == 200, response.text
    answer: dict[str, Any] = response.json()
    return answer


def refusals(answer: dict[str, Any]) -> dict[str, str]:
    return {r["user"]: r["reason"] for r in answer["rejected_for"]}


def verify(home: Path) -> tuple[int, str]:
    result = runner.invoke(app, ["verify", "--home", str(home)])
    return result.exit_code, result.stdout + result.stderr


@pytest.mark.parametrize(("level", "target"), [("global", None), ("strategy", "S1")])
async def test_halted_and_reduce_only_at_gateway_and_strategy_level(home: Path, level: str, target: str | None) -> None:
    async with running_gateway(home) as (client, _):
        await control(client, level, target, "HALTED")
        halted = await send(client, "S1", "ACC", "BUY")
        assert (halted["status"], halted["reason"]) == ("REJECTED", "HALTED")
        assert refusals(halted) == {"Ann": "HALTED", "Bob": "HALTED"}
        check = (await client.post("/v1/orders/check", json=order("S1", "ACC", "BUY"))).json()
        assert check["reason"] == "HALTED"

        await control(client, level, target, "ACTIVE")
        assert (await send(client, "S1", "ACC", "BUY"))["status"] == "ACCEPTED"

        await control(client, level, target, "REDUCE_ONLY")
        buy = await send(client, "S1", "TCS", "BUY")
        assert (buy["status"], buy["reason"]) == ("REJECTED", "REDUCE_ONLY")
        sell = await send(client, "S1", "ACC", "SELL")
        assert sell["status"] == "ACCEPTED"
        assert {a["user"] for a in sell["applied"]} == {"Ann", "Bob"}
    assert verify(home)[0] == 0


async def test_user_level_controls_hold_back_one_user_and_are_listed_with_their_history(home: Path) -> None:
    async with running_gateway(home) as (client, _):
        answer = await control(client, "user", "Ann", "HALTED")
        assert answer["users"] == {"Ann": "HALTED"}
        buy = await send(client, "S1", "ACC", "BUY")
        assert buy["status"] == "ACCEPTED"
        assert [a["user"] for a in buy["applied"]] == ["Bob"]
        assert refusals(buy) == {"Ann": "HALTED"}
        await control(client, "user", "Bob", "REDUCE_ONLY")
        listed = (await client.get("/v1/controls")).json()
        assert (listed["global"], listed["strategies"], listed["users"]) == (
            "ACTIVE",
            {},
            {"Ann": "HALTED", "Bob": "REDUCE_ONLY"},
        )
        assert [(c["level"], c["target"], c["state"]) for c in listed["changes"]] == [
            ("user", "Ann", "HALTED"),
            ("user", "Bob", "REDUCE_ONLY"),
        ]
        everyone_held = await send(client, "S1", "TCS", "BUY")
        assert (everyone_held["status"], everyone_held["reason"]) == ("REJECTED", "HALTED")
        assert refusals(everyone_held) == {"Ann": "HALTED", "Bob": "REDUCE_ONLY"}


async def test_controls_are_durable_and_in_force_after_a_restart_and_verify_rederives_every_order(
    home: Path,
) -> None:
    async with running_gateway(home) as (client, _):
        await send(client, "S1", "ACC", "BUY")
        await control(client, "strategy", "S1", "REDUCE_ONLY")
        await send(client, "S1", "TCS", "BUY")  # held back
    async with running_gateway(home) as (client, _):
        assert (await client.get("/v1/controls")).json()["strategies"] == {"S1": "REDUCE_ONLY"}
        again = await send(client, "S1", "TCS", "BUY")
        assert again["reason"] == "REDUCE_ONLY"
        assert (await send(client, "S1", "ACC", "SELL"))["status"] == "ACCEPTED"
    code, output = verify(home)
    assert code == 0, output
    assert "4 decisions re-derived" in output


@pytest.mark.parametrize(
    ("body", "problem"),
    [
        ({"level": "global", "target": "S1", "state": "HALTED"}, "must be null"),
        ({"level": "user", "target": None, "state": "HALTED"}, "needs the name of a user"),
        ({"level": "user", "target": "", "state": "HALTED"}, "target"),
        ({"level": "desk", "target": None, "state": "HALTED"}, "level"),
        ({"level": "global", "target": None, "state": "PAUSED"}, "state"),
        ({"level": "global", "state": "HALTED", "extra": 1}, "extra"),
    ],
)
async def test_an_invalid_control_is_a_422_that_says_what_is_wrong(
    home: Path, body: dict[str, Any], problem: str
) -> None:
    async with running_gateway(home) as (client, _):
        response = await client.put("/v1/controls", json=body)
        assert response.status_code == 422
        assert problem in response.text
        assert (await client.get("/v1/controls")).json()["global"] == "ACTIVE"


async def test_reload_keeps_positions_of_users_who_left_open_and_sellable_by_their_strategy(home: Path) -> None:
    async with running_gateway(home) as (client, gateway):
        await send(client, "S1", "ACC", "BUY")  # Ann and Bob
        write_home(home, {"Ann": {"S2": ["INFY"]}, "Bob": {"S1": ["ACC", "TCS"]}, "Cid": {"S1": ["ACC"]}})
        response = await client.post("/v1/admin/reload-profiles")
        assert response.status_code == 200, response.text
        reloaded = response.json()
        assert (reloaded["changed"], reloaded["users"], reloaded["strategies"]) == (True, 3, 2)
        assert reloaded["fingerprint"] == gateway.registry.fingerprint != reloaded["previous_fingerprint"]
        assert [u["user"] for u in (await client.get("/v1/users")).json()["items"]] == ["Ann", "Bob", "Cid"]
        positions = (await client.get("/v1/positions")).json()["items"]
        assert {p["user"] for p in positions} == {"Ann", "Bob"}
        sell = await send(client, "S1", "ACC", "SELL")
        assert {a["user"] for a in sell["applied"]} == {"Ann", "Bob"}
        assert refusals(sell) == {"Cid": "NO_OPEN_POSITION"}
        assert (await send(client, "S1", "ACC", "BUY"))["applied"] == [
            {"user": "Bob", "action": "OPENED", "position_strategy": "S1"},
            {"user": "Cid", "action": "OPENED", "position_strategy": "S1"},
        ]
    code, output = verify(home)
    assert code == 0, output
    assert "3 decisions re-derived" in output


@pytest.mark.parametrize(
    ("content", "message"),
    [
        (b"{not json", "not valid JSON"),
        (orjson.dumps({"Ann": {"S1": ["ACC", 7]}}), '$["Ann"]["S1"][1]: instrument name must be a string, not int'),
        (orjson.dumps(["Ann"]), "must be an object of users"),
    ],
)
async def test_a_bad_profile_file_is_refused_with_the_startup_message_and_the_old_profiles_stay(
    home: Path, content: bytes, message: str
) -> None:
    async with running_gateway(home) as (client, gateway):
        before = gateway.registry.fingerprint
        (home / "Jsons" / "user_profile.json").write_bytes(content)
        response = await client.post("/v1/admin/reload-profiles")
        assert response.status_code == 422
        detail = response.json()["detail"]
        assert "profiles not reloaded, the profiles in force stay" in detail
        assert "user_profile.json" in detail
        assert message in detail
        assert gateway.registry.fingerprint == before
        assert (await send(client, "S1", "ACC", "BUY"))["status"] == "ACCEPTED"


async def test_sighup_reloads_the_profiles(home: Path) -> None:
    async with running_gateway(home) as (client, gateway):
        before = gateway.registry.fingerprint
        write_home(home, {"Dee": {"S9": ["ACC"]}})
        os.kill(os.getpid(), signal.SIGHUP)
        for _ in range(100):
            if gateway.registry.fingerprint != before:
                break
            await asyncio.sleep(0.02)
        assert [s["strategy"] for s in (await client.get("/v1/strategies")).json()["items"]] == ["S9"]
        assert (await send(client, "S9", "ACC", "BUY"))["applied"][0]["user"] == "Dee"


def test_control_set_and_list_talk_to_a_running_gateway(home: Path) -> None:
    from tests.e2e.conftest import GatewayProcess

    gateway = GatewayProcess(home).start()
    try:
        result = runner.invoke(
            app, ["control", "set", "--level", "strategy", "--target", "S1", "--state", "halted", "--url", gateway.url]
        )
        assert result.exit_code == 0, result.stderr
        assert "HALTED" in result.stdout
        listed = runner.invoke(app, ["control", "list", "--json", "--url", gateway.url])
        assert listed.exit_code == 0
        assert orjson.loads(listed.stdout)["strategies"] == {"S1": "HALTED"}
        bad = runner.invoke(app, ["control", "set", "--level", "global", "--target", "S1", "--state", "HALTED",
                                  "--url", gateway.url])  # fmt: skip
        assert bad.exit_code == 2
        assert "must be null" in bad.stderr
    finally:
        gateway.terminate()
