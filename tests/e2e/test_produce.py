"""``ordergate produce`` against a real gateway: universe mode on the v1 API, its summary, and retries."""

from __future__ import annotations

import re
from pathlib import Path

import httpx
import pytest

from tests.e2e.conftest import StartGateway, assert_verified, fetch_all, free_port, run_ordergate

pytestmark = pytest.mark.e2e


def summary_row(output: str, label: str) -> int:
    match = re.search(rf"^\W*{re.escape(label)}\W+(\d+)", output, re.MULTILINE)
    assert match, f"no '{label}' row in:\n{output}"
    return int(match.group(1))


def test_produce_in_universe_mode_sends_only_subscribed_instruments_and_sums_up(
    home: Path, start_gateway: StartGateway
) -> None:
    gateway = start_gateway(home)
    result = run_ordergate(
        "produce", "--home", str(home), "--url", gateway.url, "--count", "60", "--rate", "400",
        "--concurrency", "8", "--mode", "universe", "--api", "v1", "--seed", "5",
    )  # fmt: skip
    assert result.returncode == 0, result.stderr
    with httpx.Client(base_url=gateway.url) as client:
        orders = fetch_all(client, "/v1/orders")
    assert len(orders) == 60
    assert summary_row(result.stdout, "sent") == 60
    assert summary_row(result.stdout, "accepted") == sum(o["status"] == "ACCEPTED" for o in orders)
    traded = {("STRATEGY_A", i) for i in ("BIRLASOFT", "GRASIM", "EICHER")} | {
        ("STRATEGY_B", "MINDA"),
        ("STRATEGY_D", "ACC"),
    }
    assert {(o["strategy"], o["instrument"]) for o in orders} <= traded
    assert all(o["client_order_id"] for o in orders)
    assert_verified(home)


def test_produce_without_a_gateway_reports_errors_and_exits_1(home: Path) -> None:
    run_ordergate("init", "--home", str(home))
    result = run_ordergate(
        "produce", "--home", str(home), "--url", f"http://127.0.0.1:{free_port()}", "--count", "2",
        "--interval", "0",
    )  # fmt: skip
    assert result.returncode == 1
    assert summary_row(result.stdout, "errors") == 2
    assert "is the gateway at" in result.stderr
    assert "Traceback" not in result.stderr
