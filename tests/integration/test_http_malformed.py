"""Malformed input of every kind gets a 4xx naming the problem, and stores nothing."""

from __future__ import annotations

import httpx
import pytest

pytestmark = pytest.mark.anyio

GOOD_V1 = {"strategy": "STRATEGY_B", "instrument": "MINDA", "side": "BUY"}
GOOD_LEGACY = {"STRATEGY": "STRATEGY_B", "INSTRUMENT": "MINDA", "POSITION": "BUY"}

# (raw body, words the message must contain)
V1_CASES = [
    (b'{"strategy": "STRATEGY_B", "instrument": "MINDA", "side": "BUY"', "Invalid JSON"),
    (b"", "empty"),
    (b"[1, 2]", "Input should be an object"),
    (b'{"instrument": "MINDA", "side": "BUY"}', "strategy: Field required"),
    (b'{"strategy": 5, "instrument": "MINDA", "side": "BUY"}', "strategy: Input should be a valid string"),
    (
        b'{"strategy": "STRATEGY_B", "instrument": "MINDA", "side": "HOLD"}',
        "side: Input should be 'BUY' or 'SELL'",
    ),
    (b'{"strategy": "", "instrument": "MINDA", "side": "BUY"}', "strategy: String should have at least 1"),
    (b'{"strategy": "S", "instrument": "' + b"X" * 65 + b'", "side": "BUY"}', "at most 64 characters"),
    (b'{"strategy": "S\\u0007", "instrument": "MINDA", "side": "BUY"}', "control characters"),
    (
        b'{"strategy": "S", "instrument": "MINDA", "side": "BUY", "qty": 3}',
        "qty: Extra inputs are not permitted",
    ),
    (b'{"strategy": "S", "instrument": "MINDA", "side": "BUY", "client_order_id": "a b"}', "printable ASCII"),
    (b'{"strategy": "S", "instrument": "MINDA", "side": null}', "side"),
    (b"\xff\xfe", "Invalid JSON"),
]


NOT_A_SIDE = "side: Input should be 'BUY' or 'SELL'"
LOOK_ALIKE_CASES = [
    ('{"strategy": "STRATEGY_B", "instrument": "MINDA", "side": "\u017fell"}', NOT_A_SIDE),  # long s: upper() is SELL
    ('{"strategy": "STRATEGY_B", "instrument": "MINDA", "side": "\uff22\uff35\uff39"}', NOT_A_SIDE),  # full width
    ('{"strategy": "   ", "instrument": "MINDA", "side": "BUY"}', "strategy: must not start or end with whitespace"),
    ('{"strategy": "STRATEGY_B ", "instrument": "MINDA", "side": "BUY"}', "strategy: must not start or end with"),
    ('{"strategy": "STRATEGY_B", "instrument": " MINDA", "side": "BUY"}', "instrument: must not start or end with"),
    ('{"strategy": "STRATEGY\u200b_B", "instrument": "MINDA", "side": "BUY"}', "strategy: must not contain U+200B"),
    ('{"strategy": "STRATEGY_B", "instrument": "MINDA\u202e", "side": "BUY"}', "instrument: must not contain U+202E"),
    ('{"strategy": "S\u2028order=9 ACCEPTED", "instrument": "MINDA", "side": "BUY"}', "must not contain U+2028"),
    ('{"strategy": "STRATEGY_B", "instrument": "MINDA\u2029", "side": "BUY"}', "instrument: must not contain U+2029"),
]


@pytest.mark.parametrize(("body", "message"), LOOK_ALIKE_CASES)
async def test_look_alike_sides_and_names_are_422_on_both_apis_and_store_nothing(
    client: httpx.AsyncClient, body: str, message: str
) -> None:
    v1 = await client.post("/v1/orders", content=body.encode(), headers={"content-type": "application/json"})
    assert v1.status_code == 422, v1.text
    assert message in v1.json()["message"]
    check = await client.post("/v1/orders/check", content=body.encode())
    assert check.status_code == 422, check.text
    batch = await client.post("/v1/orders/batch", content=f'{{"orders": [{body}]}}'.encode())
    assert batch.status_code == 422, batch.text
    legacy_body = body.replace('"strategy"', '"STRATEGY"').replace('"instrument"', '"INSTRUMENT"')
    legacy = await client.post("/create_order", content=legacy_body.replace('"side"', '"POSITION"').encode())
    assert legacy.status_code == 422, legacy.text
    legacy_message = message.replace("strategy", "STRATEGY").replace("instrument", "INSTRUMENT")
    assert legacy_message.replace("side", "POSITION") in legacy.json()["DETAIL"]
    assert (await client.get("/v1/orders")).json()["items"] == []


@pytest.mark.parametrize(("body", "message"), V1_CASES)
async def test_malformed_v1_order_is_422_naming_the_problem(
    client: httpx.AsyncClient, body: bytes, message: str
) -> None:
    answer = await client.post("/v1/orders", content=body, headers={"content-type": "application/json"})
    assert answer.status_code == 422
    assert message in answer.json()["message"]
    assert (await client.get("/v1/orders")).json()["items"] == []


@pytest.mark.parametrize(("body", "message"), V1_CASES[:9])
async def test_malformed_legacy_order_is_422_rejected_invalid_order(
    client: httpx.AsyncClient, body: bytes, message: str
) -> None:
    legacy_body = body.replace(b'"strategy"', b'"STRATEGY"').replace(b'"instrument"', b'"INSTRUMENT"')
    legacy_body = legacy_body.replace(b'"side"', b'"POSITION"')
    answer = await client.post("/create_order", content=legacy_body)
    assert answer.status_code == 422
    payload = answer.json()
    assert (payload["RESPONSE"], payload["REASON"]) == ("REJECTED", "INVALID_ORDER")
    assert message.replace("strategy", "STRATEGY").replace("side", "POSITION") in payload["DETAIL"]
    assert (await client.get("/v1/orders")).json()["items"] == []


@pytest.mark.parametrize("path", ["/create_order", "/v1/orders", "/v1/orders/check"])
async def test_oversized_body_is_413(client: httpx.AsyncClient, path: str) -> None:
    answer = await client.post(path, content=b"{" + b" " * 70_000 + b"}")
    assert answer.status_code == 413
    assert "larger than the limit" in answer.json()["detail"]


async def test_oversized_chunked_body_is_413(client: httpx.AsyncClient) -> None:
    async def chunks():  # type: ignore[no-untyped-def]
        for _ in range(100):
            yield b" " * 1000

    answer = await client.post("/v1/orders", content=chunks())
    assert answer.status_code == 413


async def test_bad_idempotency_key_header_is_422(client: httpx.AsyncClient) -> None:
    answer = await client.post("/v1/orders", json=GOOD_V1, headers={"Idempotency-Key": "x" * 129})
    assert answer.status_code == 422
    assert "Idempotency-Key" in answer.json()["message"]
    legacy = await client.post("/create_order", json=GOOD_LEGACY, headers={"Idempotency-Key": "has space"})
    assert (legacy.status_code, legacy.json()["REASON"]) == (422, "INVALID_ORDER")


async def test_idempotency_key_and_client_order_id_that_differ_are_422(client: httpx.AsyncClient) -> None:
    answer = await client.post("/v1/orders", json={**GOOD_V1, "client_order_id": "a"}, headers={"Idempotency-Key": "b"})
    assert answer.status_code == 422
    assert "differ" in answer.json()["detail"]


@pytest.mark.parametrize(
    "url",
    [
        "/v1/orders?limit=0",
        "/v1/orders?limit=1001",
        "/v1/orders?after=-1",
        "/v1/orders?status=MAYBE",
        "/v1/orders?side=HOLD",
        "/v1/orders?strategy=" + "x" * 65,
        "/v1/orders/abc",
        "/v1/orders/0",
        "/v1/positions?limit=abc",
        "/v1/trades?user=",
    ],
)
async def test_malformed_query_is_422_naming_the_parameter(client: httpx.AsyncClient, url: str) -> None:
    answer = await client.get(url)
    assert answer.status_code == 422
    assert answer.json()["message"]


@pytest.mark.parametrize("path", ["/v1/orders", "/v1/positions", "/v1/trades"])
@pytest.mark.parametrize(
    ("name", "problem"),
    [
        ("   ", "must not start or end with whitespace"),
        (" Holland Proctor", "must not start or end with whitespace"),
        ("MINDA\u200b", "must not contain U+200B"),
        ("\u202eMINDA", "must not contain U+202E"),
        ("MINDA\u2028x", "must not contain U+2028"),
        ("MINDA\x07", "must not contain control characters"),
    ],
)
@pytest.mark.parametrize("field", ["user", "strategy", "instrument"])
async def test_look_alike_name_filters_are_422_naming_the_parameter(
    client: httpx.AsyncClient, path: str, name: str, problem: str, field: str
) -> None:
    answer = await client.get(path, params={field: name})
    assert answer.status_code == 422, answer.text
    assert f"query.{field}: {problem}" in answer.json()["message"]


async def test_unknown_path_and_wrong_method_are_4xx(client: httpx.AsyncClient) -> None:
    assert (await client.get("/nope")).status_code == 404
    assert (await client.get("/create_order")).status_code == 405
