"""Order entry over HTTP against a real SQLite store: the seed's table, answers, idempotency, reads."""

from __future__ import annotations

import asyncio
from pathlib import Path

import httpx
import pytest

from tests.integration.conftest import OpenGateway

pytestmark = pytest.mark.anyio

SEED_ORDERS = [
    ("STRATEGY_A", "GRASIM", "SELL"),
    ("STRATEGY_B", "MINDA", "BUY"),
    ("STRATEGY_D", "INFY", "BUY"),
    ("STRATEGY_A", "MINDA", "SELL"),
]


def legacy(strategy: str, instrument: str, side: str) -> dict[str, str]:
    return {"STRATEGY": strategy, "INSTRUMENT": instrument, "POSITION": side}


@pytest.mark.parametrize(
    ("scope", "expected"),
    [
        (
            "account",
            [
                ("REJECTED", "NO_OPEN_POSITION", []),
                ("ACCEPTED", None, ["Holland Proctor"]),
                ("REJECTED", "INSTRUMENT_NOT_TRADED", []),
                ("ACCEPTED", None, ["Holland Proctor"]),
            ],
        ),
        (
            "strategy",
            [
                ("REJECTED", "NO_OPEN_POSITION", []),
                ("ACCEPTED", None, ["Holland Proctor"]),
                ("REJECTED", "INSTRUMENT_NOT_TRADED", []),
                ("REJECTED", "NO_OPEN_POSITION", []),
            ],
        ),
    ],
)
async def test_seed_orders_on_the_legacy_endpoint_give_the_seed_table(
    seed_home: Path, open_gateway: OpenGateway, scope: str, expected: list[tuple[str, str | None, list[str]]]
) -> None:
    async with open_gateway(seed_home, scope=scope) as (client, _):
        answers = [(await client.post("/create_order", json=legacy(*order))) for order in SEED_ORDERS]
    assert [a.status_code for a in answers] == [200] * 4
    assert [a.json() for a in answers] == [
        {"RESPONSE": status, "ORDER_ID": n, "REASON": reason, "USERS": users}
        for n, (status, reason, users) in enumerate(expected, start=1)
    ]


async def test_v1_order_answer_has_every_field_of_the_spec(client: httpx.AsyncClient) -> None:
    answer = await client.post("/v1/orders", json={"strategy": "STRATEGY_B", "instrument": "MINDA", "side": "buy"})
    assert answer.status_code == 201
    body = answer.json()
    assert set(body) == {
        "order_id", "status", "reason", "strategy", "instrument", "side", "client_order_id",
        "received_at", "applied", "rejected_for", "replayed",
        "origin", "actor", "risk_fingerprint", "signal_time", "door",
    }  # fmt: skip
    assert body["side"] == "BUY"
    assert (body["origin"], body["actor"], body["risk_fingerprint"], body["signal_time"], body["door"]) == (
        "strategy", "anonymous", None, None, "api"
    )  # fmt: skip
    assert body["applied"] == [{"user": "Holland Proctor", "action": "OPENED", "position_strategy": "STRATEGY_B"}]
    assert body["received_at"].endswith("Z")
    stored = await client.get(f"/v1/orders/{body['order_id']}")
    assert stored.json() == body


async def test_repeated_client_order_id_replays_the_stored_decision_and_changes_nothing(
    client: httpx.AsyncClient,
) -> None:
    order = {"strategy": "STRATEGY_B", "instrument": "MINDA", "side": "BUY", "client_order_id": "abc-1"}
    first = await client.post("/v1/orders", json=order)
    again = await client.post("/v1/orders", json={**order, "side": "buy"})
    assert (first.status_code, again.status_code) == (201, 200)
    assert again.json() == {**first.json(), "replayed": True}
    log = (await client.get("/v1/orders")).json()
    assert [o["order_id"] for o in log["items"]] == [first.json()["order_id"]]


async def test_client_order_id_reused_for_another_order_is_a_conflict(client: httpx.AsyncClient) -> None:
    await client.post(
        "/v1/orders",
        json={"strategy": "STRATEGY_B", "instrument": "MINDA", "side": "BUY", "client_order_id": "k1"},
    )
    clash = await client.post(
        "/v1/orders",
        json={"strategy": "STRATEGY_B", "instrument": "MINDA", "side": "SELL", "client_order_id": "k1"},
    )
    assert clash.status_code == 409
    assert "k1" in clash.json()["detail"]
    assert (await client.get("/v1/positions")).json()["items"][0]["instrument"] == "MINDA"


async def test_each_order_is_stored_with_the_door_it_came_through(client: httpx.AsyncClient) -> None:
    legacy_answer = (await client.post("/create_order", json=legacy("STRATEGY_B", "MINDA", "BUY"))).json()
    v1 = (
        await client.post("/v1/orders", json={"strategy": "STRATEGY_A", "instrument": "GRASIM", "side": "buy"})
    ).json()
    batch = await client.post(
        "/v1/orders/batch", json={"orders": [{"strategy": "STRATEGY_D", "instrument": "ACC", "side": "BUY"}]}
    )
    (batched,) = batch.json()["results"]
    assert (v1["door"], batched["door"]) == ("api", "api")
    listed = (await client.get("/v1/orders")).json()["items"]
    assert [(o["order_id"], o["door"]) for o in listed] == [
        (legacy_answer["ORDER_ID"], "legacy"),
        (v1["order_id"], "api"),
        (batched["order_id"], "api"),
    ]
    assert (await client.get(f"/v1/orders/{legacy_answer['ORDER_ID']}")).json()["door"] == "legacy"


async def test_idempotency_key_header_works_on_both_endpoints(client: httpx.AsyncClient) -> None:
    headers = {"Idempotency-Key": "hdr-7"}
    body = legacy("STRATEGY_B", "MINDA", "BUY")
    first = await client.post("/create_order", json=body, headers=headers)
    second = await client.post("/create_order", json=body, headers=headers)
    assert first.json() == second.json()
    v1 = await client.post(
        "/v1/orders", json={"strategy": "STRATEGY_B", "instrument": "MINDA", "side": "BUY"}, headers=headers
    )
    assert (v1.status_code, v1.json()["replayed"], v1.json()["order_id"]) == (
        200,
        True,
        first.json()["ORDER_ID"],
    )


async def test_replay_survives_a_restart(seed_home: Path, open_gateway: OpenGateway) -> None:
    order = {"strategy": "STRATEGY_B", "instrument": "MINDA", "side": "BUY", "client_order_id": "restart-1"}
    async with open_gateway(seed_home) as (client, _):
        first = (await client.post("/v1/orders", json=order)).json()
    async with open_gateway(seed_home) as (client, _):
        again = await client.post("/v1/orders", json=order)
        clash = await client.post("/v1/orders", json={**order, "side": "SELL"})
    assert (again.status_code, again.json()) == (200, {**first, "replayed": True})
    assert clash.status_code == 409


async def test_restart_restores_positions_and_continues_order_ids(seed_home: Path, open_gateway: OpenGateway) -> None:
    async with open_gateway(seed_home) as (client, _):
        for order in SEED_ORDERS[:3]:
            await client.post("/create_order", json=legacy(*order))
    async with open_gateway(seed_home) as (client, _):
        positions = (await client.get("/v1/positions")).json()["items"]
        again = (await client.post("/create_order", json=legacy("STRATEGY_B", "MINDA", "BUY"))).json()
    assert [(p["user"], p["strategy"], p["instrument"], p["opened_order_id"]) for p in positions] == [
        ("Holland Proctor", "STRATEGY_B", "MINDA", 2)
    ]
    assert again == {"RESPONSE": "REJECTED", "ORDER_ID": 4, "REASON": "ALREADY_HOLDING", "USERS": []}


async def test_check_answers_the_decision_without_storing_it(client: httpx.AsyncClient) -> None:
    check = await client.post("/v1/orders/check", json={"strategy": "STRATEGY_B", "instrument": "MINDA", "side": "BUY"})
    assert check.status_code == 200
    assert check.json()["status"] == "ACCEPTED"
    assert (await client.get("/v1/orders")).json() == {"items": [], "next": None}
    assert (await client.get("/v1/positions")).json() == {"items": [], "next": None}


async def test_order_log_filters_and_pages_with_a_cursor(client: httpx.AsyncClient) -> None:
    for order in SEED_ORDERS:
        await client.post("/create_order", json=legacy(*order))
    first = (await client.get("/v1/orders", params={"limit": 3})).json()
    rest = (await client.get("/v1/orders", params={"limit": 3, "after": first["next"]})).json()
    assert [o["order_id"] for o in first["items"]] == [1, 2, 3]
    assert (first["next"], [o["order_id"] for o in rest["items"]], rest["next"]) == (3, [4], None)
    held = (await client.get("/v1/orders", params={"user": "Holland Proctor"})).json()
    assert [o["order_id"] for o in held["items"]] == [2, 4]
    rejected = (await client.get("/v1/orders", params={"status": "REJECTED", "strategy": "STRATEGY_D"})).json()
    assert [o["order_id"] for o in rejected["items"]] == [3]
    trades = (await client.get("/v1/trades", params={"user": "Holland Proctor"})).json()["items"]
    assert [(t["opened_order_id"], t["closed_order_id"], t["strategy"], t["closing_strategy"]) for t in trades] == [
        (2, 4, "STRATEGY_B", "STRATEGY_A")
    ]


async def test_unknown_order_is_404(client: httpx.AsyncClient) -> None:
    answer = await client.get("/v1/orders/42")
    assert answer.status_code == 404
    assert answer.json() == {"detail": "order 42 does not exist"}


async def test_users_and_strategies_describe_the_profiles(client: httpx.AsyncClient) -> None:
    users = (await client.get("/v1/users")).json()["items"]
    strategies = {s["strategy"]: s for s in (await client.get("/v1/strategies")).json()["items"]}
    assert users[1] == {"user": "Oaklee Wagner", "strategies": {"STRATEGY_D": ["ACC"]}}
    assert strategies["STRATEGY_A"] == {
        "strategy": "STRATEGY_A",
        "subscribers": ["Holland Proctor"],
        "instruments": ["BIRLASOFT", "EICHER", "GRASIM"],
    }


async def test_probes_answer(client: httpx.AsyncClient) -> None:
    assert (await client.get("/healthz")).json() == {"status": "ok"}
    assert (await client.get("/readyz")).status_code == 200


async def test_simultaneous_copies_of_one_client_order_id_are_decided_once(
    seed_home: Path, open_gateway: OpenGateway
) -> None:
    order = {"strategy": "STRATEGY_B", "instrument": "MINDA", "side": "BUY", "client_order_id": "same"}
    async with open_gateway(seed_home) as (client, gateway):
        answers = await asyncio.gather(*(client.post("/v1/orders", json=order) for _ in range(20)))
        assert sorted(a.status_code for a in answers) == [200] * 19 + [201]
        assert {a.json()["order_id"] for a in answers} == {1}
        # once committed and no lookup is running, the ids live in the store, not in memory
        for n in range(50):
            await client.post("/v1/orders", json={**order, "client_order_id": f"id-{n}"})
        assert gateway.sequencer is not None
        assert gateway.sequencer.tracked_client_order_ids == 0
        again = await client.post("/v1/orders", json={**order, "client_order_id": "id-7"})
    assert (again.status_code, again.json()["replayed"], again.json()["order_id"]) == (200, True, 9)
