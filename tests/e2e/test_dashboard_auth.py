"""The dashboard of a gateway that runs with ``--auth``, in a real headless Chromium.

The page itself opens without a key, asks for one when the gateway refuses its calls, and once a
viewer key is entered loads the state, follows the event stream and shows new orders live. With a
viewer key bound to one user it shows that user's orders, positions and strategies, and labels (and
hides) what counts every user, without retrying the refused figures.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING

import httpx
import pytest

from tests.e2e.browser import launch_browser, new_page, screenshot
from tests.e2e.conftest import StartGateway, run_ordergate

if TYPE_CHECKING:
    from playwright.sync_api import Browser, Locator, Page

pytestmark = pytest.mark.e2e


@pytest.fixture(scope="module")
def browser() -> Iterator[Browser]:
    yield from launch_browser()


def create_key(keyfile: Path, *args: str) -> str:
    result = run_ordergate("keys", "create", "--file", str(keyfile), *args)
    assert result.returncode == 0, result.stderr
    return result.stdout.strip().splitlines()[-1]


def test_the_dashboard_asks_for_a_key_then_follows_orders_live(
    home: Path, start_gateway: StartGateway, browser: Browser
) -> None:
    from playwright.sync_api import expect

    keyfile = home / "keys.json"
    viewer = create_key(keyfile, "--role", "viewer", "--name", "wall screen")
    producer = create_key(keyfile, "--role", "producer", "--name", "algo")
    gateway = start_gateway(home, "--auth", str(keyfile))

    watch = new_page(browser, gateway.url)
    page = watch.page
    page.goto(f"{gateway.url}/")
    expect(page.locator("#key-banner")).to_be_visible(timeout=5000)
    assert "API key" in page.locator("#key-banner").inner_text()
    screenshot(page, "dashboard-key.png")

    page.get_by_label("API key", exact=True).fill(viewer)
    page.get_by_role("button", name="Use key").click()
    page.wait_for_selector("body[data-connection=live]", timeout=10_000)
    expect(page.locator("#key-banner")).to_be_hidden()

    with httpx.Client(base_url=gateway.url, headers={"Authorization": f"Bearer {producer}"}) as client:
        answer = client.post("/v1/orders", json={"strategy": "STRATEGY_B", "instrument": "MINDA", "side": "BUY"})
    assert answer.status_code == 201, answer.text
    page.wait_for_selector(f'#feed tbody tr[data-order-id="{answer.json()["order_id"]}"]', timeout=5000)
    expect(page.locator("[data-counter=orders]")).to_have_text("1")
    # the key stays in this tab: a reload goes live without asking again
    page.reload()
    page.wait_for_selector("body[data-connection=live]", timeout=10_000)
    expect(page.locator("[data-counter=orders]")).to_have_text("1")


def test_a_viewer_bound_to_one_user_sees_that_users_orders_and_positions_and_no_whole_gateway_figures(
    home: Path, start_gateway: StartGateway, browser: Browser
) -> None:
    from playwright.sync_api import Request, expect

    keyfile = home / "keys.json"
    holland = create_key(keyfile, "--role", "viewer", "--user", "Holland Proctor", "--name", "holland")
    producer = create_key(keyfile, "--role", "producer", "--name", "algo")
    gateway = start_gateway(home, "--auth", str(keyfile))
    with httpx.Client(base_url=gateway.url, headers={"Authorization": f"Bearer {producer}"}) as client:

        def send(strategy: str, instrument: str) -> int:
            answer = client.post("/v1/orders", json={"strategy": strategy, "instrument": instrument, "side": "BUY"})
            assert answer.status_code == 201, answer.text
            order_id: int = answer.json()["order_id"]
            return order_id

        # a history longer than the feed: 151 of Holland Proctor's orders, each followed by one of Oaklee Wagner's
        batch = []
        for index in range(151):
            side = "BUY" if index % 2 == 0 else "SELL"
            batch.append({"strategy": "STRATEGY_B", "instrument": "MINDA", "side": side})
            batch.append({"strategy": "STRATEGY_D", "instrument": "ACC", "side": side})
        results = client.post("/v1/orders/batch", json={"orders": batch}).json()["results"]
        assert all(r["status"] == "ACCEPTED" for r in results)
        holland_ids = [r["order_id"] for r in results[0::2]]
        oaklee_before = results[-1]["order_id"]  # Oaklee Wagner's only
        holland_before = holland_ids[-1]  # Holland Proctor's

        watch = new_page(browser, gateway.url)
        page = watch.page
        stats_calls: list[str] = []

        def count_stats(request: Request) -> None:
            if "/v1/stats" in request.url or "/metrics" in request.url:
                stats_calls.append(request.url)

        page.on("request", count_stats)
        page.goto(f"{gateway.url}/")
        expect(page.locator("#key-banner")).to_be_visible(timeout=5000)
        watch.console_errors.clear()  # the 401s that asked for a key
        page.get_by_label("API key", exact=True).fill(holland)
        page.get_by_role("button", name="Use key").click()
        page.wait_for_selector("body[data-connection=live]", timeout=10_000)

        # labelled, not broken: the whole-gateway panels are hidden and the page says why
        expect(page.locator("#user-view-banner")).to_be_visible(timeout=5000)
        assert "one user" in page.locator("#user-view-banner").inner_text()
        expect(page.locator("#key-banner")).to_be_hidden()
        expect(page.locator(".counters")).to_be_hidden()
        expect(page.locator("#throughput")).to_be_hidden()
        expect(page.get_by_role("link", name="Metrics")).to_be_hidden()

        # that user's orders and positions, and only theirs, loaded and then live
        rows = page.locator("#feed tbody tr")
        expect(rows).to_have_count(100)  # the newest 100 of Holland Proctor's, newest first
        assert rows.first.get_attribute("data-order-id") == str(holland_before)
        assert rows.last.get_attribute("data-order-id") == str(holland_ids[-100])
        expect(page.locator(f'#feed tbody tr[data-order-id="{oaklee_before}"]')).to_have_count(0)
        expect(cell(page, "Holland Proctor", "MINDA")).to_have_text("STRATEGY_B")
        expect(page.locator('#positions-grid th:has-text("Oaklee Wagner")')).to_have_count(0)
        holland_live = send("STRATEGY_A", "GRASIM")
        oaklee_live = send("STRATEGY_D", "ACC")  # refused (already holding), and not Holland's anyway
        page.wait_for_selector(f'#feed tbody tr[data-order-id="{holland_live}"]', timeout=5000)
        expect(cell(page, "Holland Proctor", "GRASIM")).to_have_text("STRATEGY_A")
        expect(page.locator(f'#feed tbody tr[data-order-id="{oaklee_live}"]')).to_have_count(0)
        assert page.locator("#strategies tbody tr").count() == 2  # STRATEGY_A and STRATEGY_B: Holland's

        # no spinning on the 403: one stats request per snapshot, none meanwhile
        seen = len(stats_calls)
        page.wait_for_timeout(3000)
        assert len(stats_calls) == seen <= 2, stats_calls
        unexpected = [e for e in watch.console_errors if "status of 403 (Forbidden)" not in e]
        assert unexpected == [], watch.console_errors  # the browser logs the refused /v1/stats, nothing else
        assert watch.external_requests == []
        screenshot(page, "dashboard-user-view.png")

        # an unbound key in the same tab brings the figures back
        viewer = create_key(keyfile, "--role", "viewer", "--name", "wall screen")
        page.get_by_label("API key", exact=True).fill(viewer)
        page.get_by_role("button", name="Use key").click()
        expect(page.locator(".counters")).to_be_visible(timeout=10_000)
        expect(page.locator("#user-view-banner")).to_be_hidden()
        expect(page.locator("[data-counter=orders]")).to_have_text("304")


def cell(page: Page, user: str, instrument: str) -> Locator:
    return page.locator(f'#positions-grid td[data-user="{user}"][data-instrument="{instrument}"]')
