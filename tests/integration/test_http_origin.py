"""Cross-site request forgery (SPEC section 4): a web page of another site cannot trade through the gateway.

A page the operator visits can send a form or a ``text/plain`` fetch to the gateway without asking
first; the browser says where it comes from in ``Origin``. Every test runs through the order-entry
fast path and the FastAPI routes (``client``), with auth off (the default) and, where it matters, on.
"""

from __future__ import annotations

from pathlib import Path

import httpx
import pytest
from typer.testing import CliRunner

from ordergate.cli import app
from ordergate.config import Settings
from tests.integration.conftest import running_gateway

pytestmark = pytest.mark.anyio

LEGACY = b'{"STRATEGY": "STRATEGY_B", "INSTRUMENT": "MINDA", "POSITION": "BUY"}'
V1 = b'{"strategy": "STRATEGY_B", "instrument": "MINDA", "side": "BUY"}'
FORM = {"content-type": "application/x-www-form-urlencoded"}
TEXT = {"content-type": "text/plain"}
EVIL = "https://evil.example"

# (method, path, body): every state-changing endpoint
STATE_CHANGING = [
    ("POST", "/create_order", LEGACY),
    ("POST", "/v1/orders", V1),
    ("POST", "/v1/orders/batch", b'{"orders": [' + V1 + b"]}"),
    ("POST", "/v1/orders/check", V1),
    ("PUT", "/v1/controls", b'{"level": "global", "target": null, "state": "HALTED"}'),
    ("POST", "/v1/admin/reload-profiles", b""),
]


async def stored_orders(client: httpx.AsyncClient) -> list[dict[str, object]]:
    items: list[dict[str, object]] = (await client.get("/v1/orders")).json()["items"]
    return items


@pytest.mark.parametrize("content_type", [FORM, TEXT], ids=["form", "text-plain"])
async def test_a_form_post_from_another_origin_is_refused_403_and_stores_nothing(
    client: httpx.AsyncClient, content_type: dict[str, str]
) -> None:
    for method, path, body in STATE_CHANGING:
        answer = await client.request(method, path, content=body, headers={**content_type, "Origin": EVIL})
        assert answer.status_code == 403, (path, answer.text)
        detail = answer.json()["detail"]
        assert f"Origin {EVIL} is not this gateway's origin (http://gateway)" in detail
        assert f"--allow-origin {EVIL}" in detail
    assert await stored_orders(client) == []
    controls = (await client.get("/v1/controls")).json()
    assert controls["global"] == "ACTIVE"


async def test_a_cross_site_request_without_an_origin_is_refused(client: httpx.AsyncClient) -> None:
    answer = await client.post("/create_order", content=LEGACY, headers={**TEXT, "Sec-Fetch-Site": "cross-site"})
    assert answer.status_code == 403
    assert "cross-site" in answer.json()["detail"]
    assert await stored_orders(client) == []


async def test_the_gateways_own_pages_and_clients_without_an_origin_still_trade(client: httpx.AsyncClient) -> None:
    own = await client.post("/v1/orders", content=V1, headers={"Origin": "http://gateway"})
    assert own.status_code == 201, own.text
    plain = await client.post("/create_order", content=LEGACY.replace(b"BUY", b"SELL"))
    assert (plain.status_code, plain.json()["RESPONSE"]) == (200, "ACCEPTED")
    same_site = await client.post("/v1/orders", content=V1, headers={"Sec-Fetch-Site": "same-origin"})
    assert same_site.status_code == 201, same_site.text
    read = await client.get("/v1/orders", headers={"Origin": EVIL, "Sec-Fetch-Site": "cross-site"})
    assert read.status_code == 200  # reads change nothing; the browser keeps their answer from the page
    assert len(read.json()["items"]) == 3


async def test_an_allowed_origin_may_trade_and_another_still_may_not(seed_home: Path) -> None:
    for fast_path in (True, False):
        async with running_gateway(seed_home, allowed_origins=["https://desk.example"], fast_path=fast_path) as (
            client,
            _,
        ):
            allowed = await client.post("/create_order", content=LEGACY, headers={"Origin": "https://desk.example"})
            assert allowed.status_code == 200, allowed.text
            refused = await client.post("/create_order", content=LEGACY, headers={"Origin": EVIL})
            assert refused.status_code == 403


async def test_with_auth_on_a_valid_key_does_not_let_another_origin_through(seed_home: Path, tmp_path: Path) -> None:
    keyfile = tmp_path / "keys.json"
    result = CliRunner().invoke(app, ["keys", "create", "--role", "admin", "--file", str(keyfile)])
    key = result.stdout.strip().splitlines()[-1]
    headers = {"Authorization": f"Bearer {key}"}
    async with running_gateway(seed_home, auth=keyfile) as (client, _):
        for method, path, body in STATE_CHANGING:
            answer = await client.request(method, path, content=body, headers={**headers, **TEXT, "Origin": EVIL})
            assert answer.status_code == 403, (path, answer.text)
        assert (await client.get("/v1/orders", headers=headers)).json()["items"] == []
        own = await client.post("/v1/orders", content=V1, headers={**headers, "Origin": "http://gateway"})
        assert own.status_code == 201


def test_allowed_origins_come_from_the_environment_separated_by_commas_or_spaces(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.setenv(
        "ORDERGATE_ALLOWED_ORIGINS", "https://desk.example, http://OPS.example:9000/ https://desk.example"
    )
    assert Settings(home=tmp_path).allowed_origins == ["https://desk.example", "http://ops.example:9000"]
    monkeypatch.setenv("ORDERGATE_ALLOWED_ORIGINS", '["https://a.example:443"]')
    assert Settings(home=tmp_path).allowed_origins == ["https://a.example"]
    monkeypatch.delenv("ORDERGATE_ALLOWED_ORIGINS")
    assert Settings(home=tmp_path).allowed_origins == []


def test_serve_with_an_allow_origin_that_is_no_origin_exits_2_with_one_line(seed_home: Path) -> None:
    result = CliRunner().invoke(app, ["serve", "--home", str(seed_home), "--allow-origin", "desk.example/app"])
    assert result.exit_code == 2
    assert "allowed_origins" in result.stderr
    assert "is not an origin: write it as http://HOST[:PORT]" in result.stderr.replace("\n", "")
