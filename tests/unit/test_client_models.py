"""The client's models against the gateway's OpenAPI document, its event parsing, and batches whose
orders are retried one by one (httpx's mock transport plays the gateway)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import httpx
import orjson
import pytest
from pydantic import BaseModel

from ordergate.api.app import create_app
from ordergate.client import (
    CheckResult,
    Client,
    ControlChange,
    Controls,
    FlattenResult,
    NewOrder,
    OrderError,
    OrderResult,
    Position,
    RiskChange,
    RiskLimits,
    Strategy,
    Trade,
    User,
)
from ordergate.client.models import Applied, RejectedFor
from ordergate.client.stream import Frame, FrameReader
from ordergate.config import Settings

MIRRORS: list[tuple[type[BaseModel], str]] = [
    (OrderResult, "OrderOut"),
    (Applied, "AppliedOut"),
    (RejectedFor, "RejectedForOut"),
    (CheckResult, "CheckOut"),
    (Position, "PositionOut"),
    (Trade, "TradeOut"),
    (User, "UserOut"),
    (Strategy, "StrategyOut"),
    (Controls, "ControlsOut"),
    (ControlChange, "ControlChangeOut"),
    (FlattenResult, "FlattenOut"),
    (RiskLimits, "RiskOut"),
    (RiskChange, "RiskChangeOut"),
]


@pytest.fixture(scope="module")
def schemas(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    home: Path = tmp_path_factory.mktemp("home")
    document: dict[str, Any] = create_app(Settings(home=home)).openapi()
    components: dict[str, Any] = document["components"]["schemas"]
    return components


@pytest.mark.parametrize(("model", "schema"), MIRRORS, ids=[schema for _, schema in MIRRORS])
def test_each_result_model_has_exactly_the_fields_of_its_openapi_schema(
    model: type[BaseModel], schema: str, schemas: dict[str, Any]
) -> None:
    fields = {info.alias or name for name, info in model.model_fields.items()}
    documented = schemas[schema]
    assert fields == set(documented["properties"]), schema
    required = {info.alias or name for name, info in model.model_fields.items() if info.is_required()}
    assert required == set(documented.get("required", [])), schema


def test_a_result_keeps_fields_a_newer_gateway_adds_and_dumps_the_servers_json() -> None:
    answer = {
        "order_id": 3, "status": "REJECTED", "reason": "NO_OPEN_POSITION", "strategy": "S1", "instrument": "ACC",
        "side": "SELL", "client_order_id": None, "received_at": "2026-12-03T10:00:00.000000Z", "applied": [],
        "rejected_for": [{"user": "Ann", "reason": "NO_OPEN_POSITION"}], "replayed": False, "origin": "strategy",
        "actor": "anonymous", "risk_fingerprint": None, "signal_time": None, "door": "fix",
    }  # fmt: skip
    result = OrderResult.model_validate(answer)
    assert (result.accepted, result.rejected_for[0].reason) == (False, "NO_OPEN_POSITION")
    assert result.model_dump(mode="json", by_alias=True) == answer


def frames(text: str) -> list[Frame]:
    reader = FrameReader()
    return [frame for line in text.split("\n") if (frame := reader.line(line)) is not None]


def test_event_frames_are_parsed_as_the_html_standard_says() -> None:
    text = (
        "retry: 1000\n\n"
        ": keep-alive\n\n"
        'id: 7-12\nevent: order\ndata: {"order_id": 12}\n\n'
        'event: resync\ndata:{"reason": "slow_client",\ndata: "token": "7-12"}\n\n'
        "data: unnamed\n\n"
    )
    assert frames(text) == [
        Frame("order", "7-12", '{"order_id": 12}'),
        Frame("resync", None, '{"reason": "slow_client",\n"token": "7-12"}'),
        Frame("message", None, "unnamed"),
    ]


def test_a_batch_resends_only_its_unstored_orders_with_their_ids_and_keeps_conflicts_as_results() -> None:
    sent: list[list[dict[str, str]]] = []

    def handler(request: httpx.Request) -> httpx.Response:
        orders = orjson.loads(request.content)["orders"]
        sent.append(orders)
        results: list[dict[str, Any]] = []
        for n, order in enumerate(orders):
            if order["client_order_id"] == "taken":
                results.append({"error": {"status": 409, "detail": "client_order_id 'taken' was already used"}})
            elif len(sent) == 1 and n == 1:
                results.append({"error": {"status": 503, "detail": "not stored; retry"}})
            else:
                results.append({
                    "order_id": len(sent) * 10 + n, "status": "ACCEPTED", "reason": None, **order,
                    "received_at": "2026-12-03T10:00:00.000000Z", "applied": [], "rejected_for": [],
                })  # fmt: skip
        return httpx.Response(200, json={"results": results})

    sleeps: list[float] = []
    http = httpx.Client(transport=httpx.MockTransport(handler))
    with Client("http://gateway", http=http, sleep=sleeps.append) as client:
        results = client.place_many(
            [NewOrder("S1", "ACC", "BUY"), NewOrder("S1", "TCS", "BUY"), NewOrder("S1", "INFY", "BUY", "taken")]
        )

    assert len(sent) == 2
    assert sent[1] == [sent[0][1]]  # only the unstored order, with the same client order id
    assert isinstance(results[0], OrderResult)
    assert results[0].instrument == "ACC"
    assert isinstance(results[1], OrderResult)
    assert results[1].client_order_id == sent[0][1]["client_order_id"]
    assert results[2] == OrderError(409, "client_order_id 'taken' was already used", "taken")
    assert len(sleeps) == 1
