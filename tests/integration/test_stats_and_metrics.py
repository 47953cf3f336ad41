"""``GET /v1/stats`` and ``GET /metrics``: they count committed orders, move as orders are decided, and
survive a restart; ``/docs`` is served without any request leaving the machine."""

from __future__ import annotations

import re
from pathlib import Path

import httpx
import pytest
from prometheus_client.parser import text_string_to_metric_families

from ordergate.domain.model import Reason
from tests.integration.sqlite_writer import refuse_writes
from tests.integration.sse import running

pytestmark = pytest.mark.anyio

SEED_ORDERS = [
    ("STRATEGY_A", "GRASIM", "SELL"),
    ("STRATEGY_B", "MINDA", "BUY"),
    ("STRATEGY_D", "INFY", "BUY"),
    ("STRATEGY_A", "MINDA", "SELL"),
]


async def send_seed_orders(client: httpx.AsyncClient) -> None:
    for strategy, instrument, side in SEED_ORDERS:
        answer = await client.post("/v1/orders", json={"strategy": strategy, "instrument": instrument, "side": side})
        assert answer.status_code == 201


async def metrics(client: httpx.AsyncClient) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    answer = await client.get("/metrics")
    assert answer.status_code == 200
    assert answer.headers["content-type"].startswith("text/plain")
    return {
        (s.name, tuple(sorted(s.labels.items()))): s.value
        for family in text_string_to_metric_families(answer.text)
        for s in family.samples
    }


def orders_total(
    values: dict[tuple[str, tuple[tuple[str, str], ...]], float], status: str, side: str, reason: str
) -> float:
    return values.get(("ordergate_orders_total", (("reason", reason), ("side", side), ("status", status))), 0.0)


async def test_stats_count_the_seed_example_and_keep_the_totals_over_a_restart(seed_home: Path) -> None:
    async with running(seed_home) as gw:
        empty = (await gw.client.get("/v1/stats")).json()
        await send_seed_orders(gw.client)
        stats = (await gw.client.get("/v1/stats")).json()
    async with running(seed_home) as gw:
        restarted = (await gw.client.get("/v1/stats")).json()
    assert (empty["orders"], empty["last_order_id"], sum(empty["throughput"]["accepted"])) == (0, 0, 0)
    assert {k: stats[k] for k in ("orders", "accepted", "rejected", "open_positions", "last_order_id")} == {
        "orders": 4,
        "accepted": 2,
        "rejected": 2,
        "open_positions": 0,
        "last_order_id": 4,
    }
    assert stats["rejected_by_reason"] == {
        **{reason.value: 0 for reason in Reason},
        "INSTRUMENT_NOT_TRADED": 1,
        "NO_OPEN_POSITION": 1,
    }
    assert stats["by_side"] == {"BUY": 2, "SELL": 2}
    assert (stats["users"], stats["strategies"], stats["instruments"], stats["scope"]) == (2, 3, 5, "account")
    assert sum(stats["throughput"]["accepted"]) == 2
    assert sum(stats["throughput"]["rejected"]) == 2
    assert len(stats["throughput"]["accepted"]) == stats["throughput"]["seconds"] == 300
    for key in ("orders", "accepted", "rejected", "rejected_by_reason", "by_side", "open_positions", "last_order_id"):
        assert restarted[key] == stats[key], key


async def test_metrics_move_as_orders_are_decided(seed_home: Path) -> None:
    async with running(seed_home) as gw:
        before = await metrics(gw.client)
        await send_seed_orders(gw.client)
        await gw.client.post("/v1/orders", json={"strategy": "STRATEGY_B", "instrument": "MINDA", "side": "BUY"})
        after = await metrics(gw.client)
    assert orders_total(before, "ACCEPTED", "BUY", "") == 0
    assert orders_total(after, "ACCEPTED", "BUY", "") == 2
    assert orders_total(after, "ACCEPTED", "SELL", "") == 1
    assert orders_total(after, "REJECTED", "SELL", "NO_OPEN_POSITION") == 1
    assert orders_total(after, "REJECTED", "BUY", "INSTRUMENT_NOT_TRADED") == 1
    assert after[("ordergate_decision_latency_seconds_count", ())] == 5
    assert 0 < after[("ordergate_decision_latency_seconds_sum", ())] < 5
    assert after[("ordergate_commit_group_size_sum", ())] == 5
    assert before[("ordergate_open_positions", ())] == 0
    assert after[("ordergate_open_positions", ())] == 1
    assert after[("ordergate_last_order_id", ())] == 5
    assert ("process_cpu_seconds_total", ()) in after


async def test_a_failed_commit_counts_as_a_store_error_and_not_as_an_order(seed_home: Path) -> None:
    async with running(seed_home) as gw:
        await refuse_writes(gw.gateway, True)
        failed = await gw.client.post(
            "/v1/orders", json={"strategy": "STRATEGY_B", "instrument": "MINDA", "side": "BUY"}
        )
        await refuse_writes(gw.gateway, False)
        values = await metrics(gw.client)
        stats = (await gw.client.get("/v1/stats")).json()
    assert failed.status_code == 503
    assert values[("ordergate_store_errors_total", (("operation", "commit"),))] == 1
    assert orders_total(values, "ACCEPTED", "BUY", "") == 0
    assert (stats["orders"], stats["open_positions"]) == (0, 0)


async def test_docs_and_dashboard_load_only_local_assets(seed_home: Path) -> None:
    async with running(seed_home) as gw:
        docs = await gw.client.get("/docs")
        dashboard = await gw.client.get("/")
        local = re.findall(r'(?:src|href)="([^"]+)"', docs.text + dashboard.text)
        fetched = {url: (await gw.client.get(url if url.startswith("/") else f"/{url}")).status_code for url in local}
        openapi = (await gw.client.get("/openapi.json")).json()
    assert docs.status_code == dashboard.status_code == 200
    assert "swagger-ui" in docs.text
    assert not [url for url in local if "//" in url], local
    assert len(fetched) >= 5, fetched  # css, scripts, favicons
    assert set(fetched.values()) == {200}, fetched
    assert "default-src 'self'" in dashboard.headers["content-security-policy"]
    assert {"/v1/events", "/v1/stats", "/metrics"} <= set(openapi["paths"])
