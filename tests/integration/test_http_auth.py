"""API keys and roles over HTTP (SPEC section 8): who gets 401, 403 or an answer, on every door.

Keys are made with ``ordergate keys create`` as an operator would; every test runs once through the
order-entry fast path and once through the FastAPI routes.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import httpx
import orjson
import pytest
from typer.testing import CliRunner

from ordergate.cli import app
from ordergate.service.gateway import Gateway
from tests.conftest import write_home
from tests.integration.conftest import running_gateway
from tests.integration.sse import EventStreamClient, running

pytestmark = pytest.mark.anyio

runner = CliRunner()


def create_key(keyfile: Path, *args: str) -> str:
    result = runner.invoke(app, ["keys", "create", "--file", str(keyfile), *args])
    assert result.exit_code == 0, result.stderr
    return result.stdout.strip().splitlines()[-1]


class Keys:
    def __init__(self, keyfile: Path) -> None:
        self.file = keyfile
        self.admin = create_key(keyfile, "--role", "admin", "--name", "ops")
        self.producer = create_key(keyfile, "--role", "producer", "--name", "algo")
        self.producer_b = create_key(keyfile, "--role", "producer", "--strategy", "STRATEGY_B", "--name", "algo-b")
        self.viewer = create_key(keyfile, "--role", "viewer", "--name", "risk")
        self.holland = create_key(keyfile, "--role", "viewer", "--user", "Holland Proctor", "--name", "holland")


@pytest.fixture(scope="module")
def module_keys(tmp_path_factory: pytest.TempPathFactory) -> Keys:
    return Keys(tmp_path_factory.mktemp("keys") / "api_keys.json")


@pytest.fixture(params=[True, False], ids=["fast-path", "fastapi-routes"])
async def gateway(
    seed_home: Path, module_keys: Keys, request: pytest.FixtureRequest
) -> AsyncIterator[tuple[httpx.AsyncClient, Gateway]]:
    async with running_gateway(seed_home, auth=module_keys.file, fast_path=request.param) as running:
        yield running


def bearer(key: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {key}"}


ORDER = {"strategy": "STRATEGY_B", "instrument": "MINDA", "side": "BUY"}
ORDER_A = {"strategy": "STRATEGY_A", "instrument": "GRASIM", "side": "BUY"}
LEGACY = {"STRATEGY": "STRATEGY_B", "INSTRUMENT": "MINDA", "POSITION": "BUY"}

# (method, path, body, roles allowed)
ENDPOINTS: list[tuple[str, str, Any, set[str]]] = [
    ("POST", "/create_order", LEGACY, {"producer", "admin"}),
    ("POST", "/v1/orders", ORDER, {"producer", "admin"}),
    ("POST", "/v1/orders/batch", {"orders": [ORDER]}, {"producer", "admin"}),
    ("POST", "/v1/orders/check", ORDER, {"producer", "admin"}),
    ("GET", "/v1/orders", None, {"viewer", "admin"}),
    ("GET", "/v1/orders/1", None, {"viewer", "admin"}),
    ("GET", "/v1/positions", None, {"viewer", "admin"}),
    ("GET", "/v1/trades", None, {"viewer", "admin"}),
    ("GET", "/v1/users", None, {"viewer", "admin"}),
    ("GET", "/v1/strategies", None, {"viewer", "admin"}),
    ("GET", "/v1/stats", None, {"viewer", "admin"}),
    ("GET", "/metrics", None, {"viewer", "admin"}),
    ("GET", "/v1/controls", None, {"viewer", "admin"}),
    ("PUT", "/v1/controls", {"level": "user", "target": "Nobody", "state": "ACTIVE"}, {"admin"}),
    ("POST", "/v1/admin/reload-profiles", None, {"admin"}),
    ("POST", "/v1/controls/flatten", {"level": "user", "target": "Nobody"}, {"admin"}),
    ("GET", "/v1/risk/limits", None, {"viewer", "admin"}),
    ("PUT", "/v1/risk/limits", {"level": "user", "target": "Nobody", "limits": {"cooldown_seconds": None}}, {"admin"}),
    ("GET", "/v1/risk/session", None, {"viewer", "admin"}),
    ("DELETE", "/v1/risk/session", None, {"admin"}),
    ("GET", "/v1/whoami", None, {"viewer", "admin"}),
]


async def call(client: httpx.AsyncClient, method: str, path: str, body: Any, headers: dict[str, str]) -> httpx.Response:
    return await client.request(method, path, json=body, headers=headers)


async def test_every_endpoint_answers_401_without_a_valid_key(gateway: tuple[httpx.AsyncClient, Gateway]) -> None:
    client, _ = gateway
    for method, path, body, _ in ENDPOINTS:
        for headers in ({}, bearer("og_0000_nope"), {"X-API-Key": "not-a-key"}, {"Authorization": "Basic x"}):
            response = await call(client, method, path, body, headers)
            assert response.status_code == 401, (method, path, headers, response.text)
            assert response.headers["www-authenticate"] == "Bearer"
            assert "API key" in response.json()["detail"]
    events = await client.get("/v1/events")
    assert events.status_code == 401


async def test_roles_get_403_outside_their_rights_and_an_answer_inside(
    gateway: tuple[httpx.AsyncClient, Gateway], module_keys: Keys
) -> None:
    client, _ = gateway
    keys = {"producer": module_keys.producer, "viewer": module_keys.viewer, "admin": module_keys.admin}
    for method, path, body, allowed in ENDPOINTS:
        for role, key in keys.items():
            response = await call(client, method, path, body, bearer(key))
            if role in allowed:
                assert response.status_code < 400 or (path == "/v1/orders/1" and response.status_code == 404), (
                    role,
                    method,
                    path,
                    response.text,
                )
            else:
                assert response.status_code == 403, (role, method, path, response.text)
                assert f"role {role}" in response.json()["detail"]


async def test_a_key_is_accepted_in_the_x_api_key_header(
    gateway: tuple[httpx.AsyncClient, Gateway], module_keys: Keys
) -> None:
    client, _ = gateway
    response = await client.post("/create_order", json=LEGACY, headers={"X-API-Key": module_keys.producer})
    assert response.status_code == 200
    assert response.json()["RESPONSE"] == "ACCEPTED"


async def test_probes_dashboard_and_docs_stay_open(gateway: tuple[httpx.AsyncClient, Gateway]) -> None:
    client, _ = gateway
    for path in ("/healthz", "/readyz", "/", "/ui/main.js", "/docs", "/openapi.json"):
        response = await client.get(path)
        assert response.status_code == 200, path
        assert response.headers["x-content-type-options"] == "nosniff"


async def test_a_producer_limited_to_strategies_may_send_only_theirs(
    gateway: tuple[httpx.AsyncClient, Gateway], module_keys: Keys
) -> None:
    client, _ = gateway
    key = bearer(module_keys.producer_b)
    assert (await client.post("/v1/orders", json=ORDER, headers=key)).status_code == 201
    for path, body in (
        ("/v1/orders", ORDER_A),
        ("/v1/orders/check", ORDER_A),
        ("/create_order", {"STRATEGY": "STRATEGY_A", "INSTRUMENT": "GRASIM", "POSITION": "BUY"}),
        ("/v1/orders/batch", {"orders": [{**ORDER, "side": "SELL"}, ORDER_A]}),
    ):
        response = await client.post(path, json=body, headers=key)
        assert response.status_code == 403, (path, response.text)
        assert "STRATEGY_B only, not for STRATEGY_A" in response.json()["detail"]
    # the refused batch decided nothing: the position opened first is still open
    positions = (await client.get("/v1/positions", headers=bearer(module_keys.admin))).json()["items"]
    assert [(p["user"], p["instrument"]) for p in positions] == [("Holland Proctor", "MINDA")]
    orders = (await client.get("/v1/orders", headers=bearer(module_keys.admin))).json()["items"]
    assert len(orders) == 1


async def test_a_viewer_bound_to_a_user_sees_only_that_users_data(
    seed_home: Path, module_keys: Keys, tmp_path: Path
) -> None:
    profiles = {
        "Holland Proctor": {"STRATEGY_A": ["GRASIM"], "STRATEGY_B": ["MINDA"]},
        "Oaklee Wagner": {"STRATEGY_A": ["GRASIM"], "STRATEGY_D": ["ACC"]},
    }
    home = write_home(tmp_path / "shared", profiles)
    async with running(home, auth=module_keys.file) as gw:
        client = gw.client
        admin, holland = bearer(module_keys.admin), bearer(module_keys.holland)
        for order in (
            {"strategy": "STRATEGY_A", "instrument": "GRASIM", "side": "BUY"},  # both users
            {"strategy": "STRATEGY_D", "instrument": "ACC", "side": "BUY"},  # Oaklee only
            {"strategy": "STRATEGY_A", "instrument": "GRASIM", "side": "SELL"},  # both users: two trades
        ):
            assert (await client.post("/v1/orders", json=order, headers=admin)).status_code == 201

        orders = (await client.get("/v1/orders", headers=holland)).json()["items"]
        assert [o["order_id"] for o in orders] == [1, 3]
        assert all([a["user"] for a in o["applied"]] == ["Holland Proctor"] for o in orders)
        assert (await client.get("/v1/orders/1", headers=holland)).json()["applied"] == [
            {"user": "Holland Proctor", "action": "OPENED", "position_strategy": "STRATEGY_A"}
        ]
        assert (await client.get("/v1/orders/2", headers=holland)).status_code == 404
        assert (await client.get("/v1/orders/2", headers=admin)).status_code == 200

        trades = (await client.get("/v1/trades", headers=holland)).json()["items"]
        assert [t["user"] for t in trades] == ["Holland Proctor"]
        assert [p["user"] for p in (await client.get("/v1/positions", headers=holland)).json()["items"]] == []
        assert [p["user"] for p in (await client.get("/v1/positions", headers=admin)).json()["items"]] == [
            "Oaklee Wagner"
        ]
        for path in ("/v1/positions", "/v1/trades", "/v1/orders"):
            response = await client.get(path, params={"user": "Oaklee Wagner"}, headers=holland)
            assert response.status_code == 403, path
            assert "Holland Proctor's data only" in response.json()["detail"]
        users = (await client.get("/v1/users", headers=holland)).json()["items"]
        assert [u["user"] for u in users] == ["Holland Proctor"]
        strategies = (await client.get("/v1/strategies", headers=holland)).json()["items"]
        assert {s["strategy"]: s["subscribers"] for s in strategies} == {
            "STRATEGY_A": ["Holland Proctor"],
            "STRATEGY_B": ["Holland Proctor"],
        }

        # the event stream (key as a query parameter, as the dashboard's EventSource sends it)
        async with EventStreamClient(gw.app, query=f"after=0&api_key={module_keys.holland}") as stream:
            frames = [e.json() for e in await stream.events(2)]
            assert await stream.nothing_more() == []
        assert [f["order_id"] for f in frames] == [1, 3]
        assert all([a["user"] for a in f["applied"]] == ["Holland Proctor"] for f in frames)
        async with EventStreamClient(gw.app, headers=bearer(module_keys.viewer), query="after=0") as stream:
            assert [e.json()["order_id"] for e in await stream.events(3)] == [1, 2, 3]
        async with EventStreamClient(gw.app, query="after=0") as stream:
            assert stream.status == 401


async def test_the_api_key_query_parameter_is_accepted_only_on_the_event_stream(
    gateway: tuple[httpx.AsyncClient, Gateway], module_keys: Keys
) -> None:
    client, _ = gateway
    response = await client.get("/v1/positions", params={"api_key": module_keys.viewer})
    assert response.status_code == 401


async def test_a_revoked_key_is_refused_by_the_running_gateway(seed_home: Path, tmp_path: Path) -> None:
    keyfile = tmp_path / "keys.json"
    key = create_key(keyfile, "--role", "producer", "--name", "temp")
    async with running_gateway(seed_home, auth=keyfile) as (client, _):
        assert (await client.post("/create_order", json=LEGACY, headers=bearer(key))).status_code == 200
        result = runner.invoke(app, ["keys", "revoke", "temp", "--file", str(keyfile)])
        assert result.exit_code == 0, result.stderr
        deadline = asyncio.get_running_loop().time() + 5
        while (await client.post("/create_order", json=LEGACY, headers=bearer(key))).status_code != 401:
            assert asyncio.get_running_loop().time() < deadline, "the revoked key still works after 5 s"
            await asyncio.sleep(0.1)


async def test_with_auth_off_everything_is_open_as_before(seed_home: Path) -> None:
    async with running_gateway(seed_home) as (client, _):
        assert (await client.post("/create_order", json=LEGACY)).json()["RESPONSE"] == "ACCEPTED"
        assert (await client.get("/v1/positions")).status_code == 200
        assert (
            await client.put("/v1/controls", json={"level": "global", "target": None, "state": "ACTIVE"})
        ).status_code == 200


async def test_a_key_over_its_rate_limit_gets_429_with_retry_after_and_other_keys_do_not(
    seed_home: Path, module_keys: Keys
) -> None:
    for fast_path in (True, False):
        async with running_gateway(
            seed_home, auth=module_keys.file, rate_limit=0.5, rate_burst=3, fast_path=fast_path
        ) as (client, _):
            statuses = [
                (await client.post("/create_order", json=LEGACY, headers=bearer(module_keys.producer))).status_code
                for _ in range(4)
            ]
            assert statuses == [200, 200, 200, 429]
            limited = await client.post("/v1/orders", json=ORDER, headers=bearer(module_keys.producer))
            assert limited.status_code == 429
            assert limited.headers["retry-after"] == "2"
            assert "rate limit" in limited.json()["detail"]
            assert (await client.get("/v1/positions", headers=bearer(module_keys.viewer))).status_code == 200
            assert (await client.get("/healthz")).status_code == 200  # probes are never limited


async def test_without_auth_the_rate_limit_applies_per_client_address(seed_home: Path) -> None:
    async with running_gateway(seed_home, rate_limit=1, rate_burst=2) as (client, _):
        statuses = [(await client.get("/v1/stats")).status_code for _ in range(3)]
    assert statuses == [200, 200, 429]


async def test_a_key_file_made_invalid_while_running_keeps_its_keys_and_never_answers_500(
    seed_home: Path, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    keyfile = tmp_path / "keys.json"
    producer = create_key(keyfile, "--role", "producer", "--name", "algo")
    viewer = create_key(keyfile, "--role", "viewer", "--name", "risk")
    caplog.set_level(logging.ERROR, logger="ordergate.security.keys")
    for fast_path in (True, False):
        caplog.clear()
        good = keyfile.read_bytes()
        async with running_gateway(seed_home, auth=keyfile, fast_path=fast_path) as (client, _):
            document = orjson.loads(good)
            document["keys"][0]["hash"] = "zz" * 32  # 64 characters, not hex
            keyfile.write_bytes(orjson.dumps(document))
            loop = asyncio.get_running_loop()
            deadline = loop.time() + 3.5  # more than three reload checks
            statuses: set[int] = set()
            while loop.time() < deadline:
                statuses.add((await client.post("/create_order", json=LEGACY, headers=bearer(producer))).status_code)
                statuses.add((await client.get("/v1/positions", headers=bearer(viewer))).status_code)
                statuses.add((await client.get("/v1/stats", headers=bearer("og_0000_nope"))).status_code)
                await asyncio.sleep(0.05)
        keyfile.write_bytes(good)
        assert statuses == {200, 401}, statuses
        errors = [r.getMessage() for r in caplog.records if r.levelno >= logging.ERROR]
        assert len(errors) == 1, errors  # once per change of the file, not once a second
        assert f'{keyfile}: $["keys"][0]["hash"]: must be 64 hex characters' in errors[0]


async def test_a_viewer_bound_to_a_user_may_not_see_the_whole_gateways_stats_or_metrics(
    gateway: tuple[httpx.AsyncClient, Gateway], module_keys: Keys
) -> None:
    client, _ = gateway
    assert (await client.post("/v1/orders", json=ORDER, headers=bearer(module_keys.producer))).status_code == 201
    for path in ("/v1/stats", "/metrics"):
        refused = await client.get(path, headers=bearer(module_keys.holland))
        assert refused.status_code == 403, (path, refused.text)
        detail = refused.json()["detail"]
        assert "Holland Proctor's data only" in detail
        assert "every user" in detail
        assert "ordergate_orders_total" not in refused.text
        for key in (module_keys.viewer, module_keys.admin):
            assert (await client.get(path, headers=bearer(key))).status_code == 200, path
    stats = (await client.get("/v1/stats", headers=bearer(module_keys.viewer))).json()
    assert stats["orders"] == 1
    # what the bound viewer may read of that order is its own share: Holland Proctor's
    orders = (await client.get("/v1/orders", headers=bearer(module_keys.holland))).json()["items"]
    assert [[a["user"] for a in o["applied"]] for o in orders] == [["Holland Proctor"]]


async def test_revoking_a_key_ends_the_event_stream_it_had_open_within_a_second_or_two(
    seed_home: Path, tmp_path: Path
) -> None:
    keyfile = tmp_path / "keys.json"
    key = create_key(keyfile, "--role", "viewer", "--name", "screen")
    async with running(seed_home, auth=keyfile) as gw:
        stream = EventStreamClient(gw.app, headers=bearer(key))
        await stream.__aenter__()
        assert stream.status == 200
        result = runner.invoke(app, ["keys", "revoke", "screen", "--file", str(keyfile)])
        assert result.exit_code == 0, result.stderr
        revoked_at = asyncio.get_running_loop().time()
        events = await stream.until_end(timeout=5)
        ended_after = asyncio.get_running_loop().time() - revoked_at
        await stream.__aexit__()
        assert [e.event for e in events] == ["revoked"]
        assert ended_after < 1.5, f"the stream went on {ended_after:.1f} s after its key was revoked"


async def test_a_producer_limited_to_a_strategy_is_not_told_about_another_strategys_order_on_a_409(
    gateway: tuple[httpx.AsyncClient, Gateway], module_keys: Keys
) -> None:
    client, _ = gateway
    first = {"strategy": "STRATEGY_A", "instrument": "GRASIM", "side": "BUY", "client_order_id": "shared-id"}
    assert (await client.post("/v1/orders", json=first, headers=bearer(module_keys.admin))).status_code == 201
    mine = {**first, "strategy": "STRATEGY_B", "instrument": "MINDA"}
    refused = await client.post("/v1/orders", json=mine, headers=bearer(module_keys.producer_b))
    assert refused.status_code == 409
    detail = refused.json()["detail"]
    assert "STRATEGY_A" not in detail
    assert "GRASIM" not in detail
    assert "shared-id" in detail
    batch = await client.post("/v1/orders/batch", json={"orders": [mine]}, headers=bearer(module_keys.producer_b))
    assert "GRASIM" not in str(batch.json())
    own = await client.post("/v1/orders", json={**first, "side": "SELL"}, headers=bearer(module_keys.admin))
    assert "STRATEGY_A" in own.json()["detail"]  # a key that may send it still learns which order holds the id


async def test_an_order_records_the_key_that_sent_it_and_whoami_names_the_key(
    gateway: tuple[httpx.AsyncClient, Gateway], module_keys: Keys
) -> None:
    client, _ = gateway
    placed = await client.post("/v1/orders", json=ORDER, headers=bearer(module_keys.producer_b))
    assert placed.json()["actor"] == "algo-b"
    who = (await client.get("/v1/whoami", headers=bearer(module_keys.holland))).json()
    assert who == {"auth": True, "name": "holland", "role": "viewer", "strategies": None, "user": "Holland Proctor"}


async def test_a_viewer_bound_to_one_user_sees_only_that_users_own_limits(
    gateway: tuple[httpx.AsyncClient, Gateway], module_keys: Keys
) -> None:
    client, _ = gateway
    admin = bearer(module_keys.admin)
    for target in ("Holland Proctor", "Oaklee Wagner"):
        body = {"level": "user", "target": target, "limits": {"max_open_positions": 2}}
        assert (await client.put("/v1/risk/limits", json=body, headers=admin)).status_code == 200
    seen = (await client.get("/v1/risk/limits", headers=bearer(module_keys.holland))).json()
    assert seen["users"] == {"Holland Proctor": {"max_open_positions": 2}}
    assert [c["target"] for c in seen["changes"]] == ["Holland Proctor"]
    assert set((await client.get("/v1/risk/limits", headers=admin)).json()["users"]) == {
        "Holland Proctor",
        "Oaklee Wagner",
    }
