"""Alert webhooks through every way the gateway serves HTTP (ASGI with and without the fast path, and
granian's RSGI door), with auth on and off, with a rate limit and on PostgreSQL; the endpoint is in the
OpenAPI document. The end-to-end suite (``tests/e2e/test_webhooks.py``) drives real processes and the CLI."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
from typer.testing import CliRunner

from ordergate.cli import app
from ordergate.security.hooks import HookFile, default_hooks_file
from ordergate.security.keys import KeyFile, Role
from tests.integration.conftest import DOORS, running_gateway
from tests.postgres import fresh_database

pytestmark = pytest.mark.anyio

NOW = "2026-12-03T09:00:00Z"
TEXT = {"content-type": "text/plain"}


def make_hook(home: Path, strategy: str, name: str) -> str:
    """A hook saved in the home's hooks file; returns its secret path."""
    path = default_hooks_file(home)
    hooks, _, token = HookFile.load_or_new(path).create(strategy, name=name, now=NOW)
    hooks.save()
    return f"/v1/hooks/{token}"


@pytest.mark.parametrize("door", list(DOORS))
async def test_an_alert_is_placed_as_a_v1_order_through_every_server_door(seed_home: Path, door: str) -> None:
    path = make_hook(seed_home, "STRATEGY_B", "tv")
    settings: dict[str, Any] = dict(DOORS[door])
    async with running_gateway(seed_home, **settings) as (client, _):
        bought = await client.post(path, content=b'{"ticker": "NSE:MINDA", "action": "buy", "id": "m-1"}', headers=TEXT)
        assert bought.status_code == 201, bought.text
        again = await client.post(path, content=b"BUY MINDA id=m-1", headers=TEXT)
        assert (again.status_code, again.json()["replayed"], again.json()["order_id"]) == (
            200, True, bought.json()["order_id"]
        )  # fmt: skip
        stored = (await client.get(f"/v1/orders/{bought.json()['order_id']}")).json()
        assert stored == {**bought.json()}
        assert (stored["door"], stored["actor"], stored["client_order_id"]) == ("hook", "tv", "m-1")
        unknown = await client.post(path[:-2] + "xx", content=b"BUY MINDA", headers=TEXT)
        assert (unknown.status_code, unknown.content) == (404, b'{"detail":"Not Found"}')


async def test_with_keys_a_hook_needs_none_and_the_api_still_does(seed_home: Path, tmp_path: Path) -> None:
    keyfile = tmp_path / "keys.json"
    keys, _, admin = KeyFile.new(keyfile).create(Role.ADMIN, name="ops", now=NOW)
    keys.save()
    path = make_hook(seed_home, "STRATEGY_D", "chartink")
    async with running_gateway(seed_home, auth=keyfile) as (client, _):
        assert (await client.post(path, content=b"BUY ACC", headers=TEXT)).status_code == 201
        assert (await client.get("/v1/orders")).status_code == 401
        listed = await client.get("/v1/orders", headers={"authorization": f"Bearer {admin}"})
        assert [(o["door"], o["actor"]) for o in listed.json()["items"]] == [("hook", "chartink")]
        missing = await client.post("/v1/hooks/wh_nope_nope", content=b"BUY ACC", headers=TEXT)
        assert (missing.status_code, missing.content) == (404, b'{"detail":"Not Found"}')  # not 401: no hint


async def test_the_rate_limit_holds_hooks_per_client_address(seed_home: Path) -> None:
    path = make_hook(seed_home, "STRATEGY_D", "amibroker")
    async with running_gateway(seed_home, rate_limit=1.0, rate_burst=2) as (client, _):
        answers = [(await client.post(path, content=b"BUY ACC", headers=TEXT)).status_code for _ in range(3)]
    assert answers == [201, 201, 429]


async def test_the_openapi_document_describes_the_hook_endpoint(seed_home: Path) -> None:
    async with running_gateway(seed_home) as (client, _):
        schema = (await client.get("/openapi.json")).json()
    operation = schema["paths"]["/v1/hooks/{token}"]["post"]
    assert {"application/json", "text/plain"} <= set(operation["requestBody"]["content"])
    assert {"201", "200", "403", "404", "409", "413", "422", "429"} <= set(operation["responses"])
    assert "security" not in operation  # the secret path is the credential, no key
    assert [p["name"] for p in operation["parameters"] if p["in"] == "path"] == ["token"]
    alert = operation["requestBody"]["content"]["application/json"]["schema"]["$ref"].rpartition("/")[2]
    instrument = schema["components"]["schemas"][alert]["properties"]["instrument"]
    assert instrument["pattern"].startswith("^[^")
    assert instrument["maxLength"] == 64 + 32


def test_serving_the_api_does_not_scan_the_unicode_database_before_the_document_is_asked_for(seed_home: Path) -> None:
    """The name pattern of the OpenAPI document scans every code point (about half a second here): a
    gateway's start-up, and every restart, must not pay for it."""
    probe = (
        "from ordergate.api.app import create_app\n"
        "from ordergate.bootstrap import prepare_gateway\n"
        "from ordergate.config import Settings\n"
        "from ordergate.domain.names import name_pattern\n"
        f"settings = Settings(home={str(seed_home)!r})\n"
        "create_app(settings, prepare_gateway(settings))\n"
        "print(name_pattern.cache_info().currsize)\n"
    )
    done = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, timeout=60, check=False)
    assert (done.returncode, done.stdout.strip()) == (0, "0"), done.stderr


async def test_on_postgresql_an_alert_is_stored_with_its_door_and_actor_and_verifies(seed_home: Path) -> None:
    path = make_hook(seed_home, "STRATEGY_A", "tv-pg")
    with fresh_database() as url:
        async with running_gateway(seed_home, db=url) as (client, _):
            bought = await client.post(path, content=b'{"ticker": "BSE:GRASIM", "action": "buy"}', headers=TEXT)
            sold = await client.post(path, content=b"sell GRASIM id=pg-1", headers=TEXT)
            assert (bought.status_code, sold.status_code) == (201, 201), (bought.text, sold.text)
            listed = (await client.get("/v1/orders")).json()["items"]
        assert [(o["side"], o["door"], o["actor"], o["status"]) for o in listed] == [
            ("BUY", "hook", "tv-pg", "ACCEPTED"),
            ("SELL", "hook", "tv-pg", "ACCEPTED"),
        ]
        verified = CliRunner().invoke(app, ["verify", "--db", url])
        assert verified.exit_code == 0, verified.stdout + verified.stderr
