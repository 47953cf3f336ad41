"""``POST /v1/orders/batch``: orders decided in their order, each atomic, with per-item idempotency."""

from __future__ import annotations

import httpx
import pytest

pytestmark = pytest.mark.anyio


def order(strategy: str, instrument: str, side: str, client_order_id: str | None = None) -> dict[str, str]:
    item = {"strategy": strategy, "instrument": instrument, "side": side}
    if client_order_id:
        item["client_order_id"] = client_order_id
    return item


async def test_batch_decides_in_order_as_if_sent_one_by_one(client: httpx.AsyncClient) -> None:
    batch = [
        order("STRATEGY_A", "GRASIM", "SELL"),
        order("STRATEGY_B", "MINDA", "BUY"),
        order("STRATEGY_D", "INFY", "BUY"),
        order("STRATEGY_A", "MINDA", "SELL"),
        order("STRATEGY_B", "MINDA", "buy"),
    ]
    answer = await client.post("/v1/orders/batch", json={"orders": batch})
    assert answer.status_code == 200
    results = answer.json()["results"]
    assert [(r["order_id"], r["status"], r["reason"]) for r in results] == [
        (1, "REJECTED", "NO_OPEN_POSITION"),
        (2, "ACCEPTED", None),
        (3, "REJECTED", "INSTRUMENT_NOT_TRADED"),
        (4, "ACCEPTED", None),
        (5, "ACCEPTED", None),
    ]
    stored = (await client.get("/v1/orders")).json()["items"]
    assert stored == results


async def test_batch_items_replay_and_conflict_on_their_own(client: httpx.AsyncClient) -> None:
    first = await client.post("/v1/orders", json=order("STRATEGY_B", "MINDA", "BUY", "b-1"))
    answer = await client.post(
        "/v1/orders/batch",
        json={
            "orders": [
                order("STRATEGY_B", "MINDA", "BUY", "b-1"),  # replay of a stored order
                order("STRATEGY_B", "MINDA", "SELL", "b-1"),  # same id, other order
                order("STRATEGY_B", "MINDA", "SELL", "b-2"),
                order("STRATEGY_B", "MINDA", "SELL", "b-2"),  # replay within the batch
            ]
        },
    )
    results = answer.json()["results"]
    assert results[0] == {**first.json(), "replayed": True}
    assert results[1]["error"]["status"] == 409
    assert (results[2]["status"], results[2]["replayed"]) == ("ACCEPTED", False)
    assert results[3] == {**results[2], "replayed": True}
    assert len((await client.get("/v1/orders")).json()["items"]) == 2


@pytest.mark.parametrize(
    ("payload", "message"),
    [
        ({"orders": []}, "orders: List should have at least 1 item"),
        ({"orders": [order("S", "I", "BUY")] * 1001}, "orders: List should have at most 1000 items"),
        ({"orders": [order("S", "I", "BUY"), order("S", "", "BUY")]}, "orders.1.instrument"),
        ({"orders": [order("S", "I", "BUY")], "mode": "all"}, "mode: Extra inputs are not permitted"),
        ({"order": []}, "orders: Field required"),
    ],
)
async def test_malformed_batch_is_422_naming_the_item_and_stores_nothing(
    client: httpx.AsyncClient, payload: object, message: str
) -> None:
    answer = await client.post("/v1/orders/batch", json=payload)
    assert answer.status_code == 422
    assert message in answer.json()["message"]
    assert (await client.get("/v1/orders")).json()["items"] == []


async def test_a_full_batch_of_1000_orders_is_accepted(client: httpx.AsyncClient) -> None:
    sides = ["BUY", "SELL"]
    answer = await client.post(
        "/v1/orders/batch", json={"orders": [order("STRATEGY_B", "MINDA", sides[n % 2]) for n in range(1000)]}
    )
    results = answer.json()["results"]
    assert [r["status"] for r in results] == ["ACCEPTED"] * 1000
    assert [r["order_id"] for r in results] == list(range(1, 1001))
