"""The dashboard in a real headless Chromium, against a real gateway process.

It loads with no console error and no request leaving the machine; an order sent over HTTP shows in
the feed and in the positions grid within seconds; orders sent from the form show their decision and
change the grid; the filter narrows the grid; a restart of the server shows as a disconnection and
the page comes back live by itself. ``/docs`` renders offline too. Screenshots go to ``artifacts/``.
"""

from __future__ import annotations

import random
import time
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING

import httpx
import pytest

from tests.e2e.browser import launch_browser, new_page, screenshot
from tests.e2e.conftest import Profile, StartGateway, write_profile

if TYPE_CHECKING:
    from playwright.sync_api import Browser, Locator, Page

pytestmark = pytest.mark.e2e

LIVE = "body[data-connection=live]"
PROFILE: Profile = {
    "Holland Proctor": {"STRATEGY_A": ["BIRLASOFT", "GRASIM", "EICHER"], "STRATEGY_B": ["MINDA"]},
    "Oaklee Wagner": {"STRATEGY_D": ["ACC"]},
    "Ishaan Verma": {"STRATEGY_A": ["BIRLASOFT", "GRASIM", "EICHER"], "STRATEGY_C": ["INFY", "TCS", "WIPRO"]},
    "Lucia Moretti": {"STRATEGY_C": ["INFY", "TCS", "WIPRO"], "STRATEGY_E": ["SBIN", "ICICIBANK"]},
    "Vikram Rao": {"STRATEGY_E": ["SBIN", "ICICIBANK"], "STRATEGY_C": ["INFY", "TCS", "WIPRO"]},
}
BACKGROUND = {
    "STRATEGY_A": PROFILE["Holland Proctor"]["STRATEGY_A"],
    **{s: PROFILE["Lucia Moretti"][s] for s in ("STRATEGY_C", "STRATEGY_E")},
}
"""Strategies the background traffic uses: never STRATEGY_B or STRATEGY_D, which the test itself drives."""


@pytest.fixture
def profile() -> Profile:
    return PROFILE


@pytest.fixture(scope="module")
def browser() -> Iterator[Browser]:
    yield from launch_browser()


def send(client: httpx.Client, strategy: str, instrument: str, side: str) -> dict[str, object]:
    answer = client.post("/v1/orders", json={"strategy": strategy, "instrument": instrument, "side": side})
    assert answer.status_code == 201, answer.text
    body: dict[str, object] = answer.json()
    return body


def cell(page: Page, user: str, instrument: str) -> Locator:
    return page.locator(f'#positions-grid td[data-user="{user}"][data-instrument="{instrument}"]')


def counter(page: Page, name: str) -> Locator:
    return page.locator(f"[data-counter={name}]")


def use_form(page: Page, strategy: str, instrument: str, side: str) -> str:
    """Fill the form by its labels, press Send, and return the decision shown."""
    from playwright.sync_api import expect

    page.get_by_label("Strategy", exact=True).fill(strategy)
    page.get_by_label("Instrument", exact=True).fill(instrument)
    page.get_by_label("Side", exact=True).select_option(side)
    before = page.locator("#decision").inner_text()
    page.get_by_role("button", name="Send").click()
    expect(page.locator("#decision")).not_to_have_text(before)
    expect(page.get_by_role("button", name="Send")).to_be_enabled()
    return page.locator("#decision").inner_text()


def test_dashboard_follows_orders_live_and_sends_orders_from_the_form(
    home: Path, start_gateway: StartGateway, browser: Browser
) -> None:
    from playwright.sync_api import expect

    gateway = start_gateway(home)
    rng = random.Random(11)
    with httpx.Client(base_url=gateway.url, timeout=10) as client:
        for _ in range(40):
            strategy = rng.choice(sorted(BACKGROUND))
            send(client, strategy, rng.choice(BACKGROUND[strategy]), rng.choice(["BUY", "BUY", "SELL"]))

        watch = new_page(browser, gateway.url)
        page = watch.page
        page.goto(f"{gateway.url}/")
        page.wait_for_selector(LIVE)
        expect(counter(page, "orders")).to_have_text("40")
        assert page.locator("#strategies tbody tr").count() == 5

        # an order sent over HTTP shows in the feed and in the grid
        started = time.monotonic()
        order = send(client, "STRATEGY_B", "MINDA", "BUY")
        page.wait_for_selector(f'#feed tbody tr[data-order-id="{order["order_id"]}"]', timeout=5000)
        expect(cell(page, "Holland Proctor", "MINDA")).to_have_text("STRATEGY_B", timeout=5000)
        assert time.monotonic() - started < 5
        row = page.locator(f'#feed tbody tr[data-order-id="{order["order_id"]}"]').inner_text()
        assert "ACCEPTED" in row
        assert "Holland Proctor opened" in row
        door = page.locator(f'#feed tbody tr[data-order-id="{order["order_id"]}"] td.door')
        assert door.inner_text() == "api"  # the door it came through: the v1 API

        # the form shows each decision and the grid follows
        decision = use_form(page, "STRATEGY_D", "ACC", "BUY")
        assert decision.startswith("ACCEPTED")
        assert "Oaklee Wagner: OPENED" in decision
        expect(cell(page, "Oaklee Wagner", "ACC")).to_have_text("STRATEGY_D")
        decision = use_form(page, "STRATEGY_A", "MINDA", "SELL")  # account scope: closes B's position
        assert decision.startswith("ACCEPTED")
        assert "Holland Proctor: CLOSED (position of STRATEGY_B)" in decision
        expect(cell(page, "Holland Proctor", "MINDA").and_(page.locator(".held"))).to_have_count(0)
        decision = use_form(page, "STRATEGY_D", "INFY", "BUY")
        assert decision.startswith("REJECTED")
        assert "INSTRUMENT_NOT_TRADED" in decision

        expect(counter(page, "orders")).to_have_text("44")
        stats = client.get("/v1/stats").json()
        for name in ("orders", "accepted", "rejected", "open_positions", "users", "strategies"):
            expect(counter(page, name)).to_have_text(str(stats[name]))

        # the filter narrows the grid to what matches
        rows = page.locator("#positions-grid tbody tr")
        everyone = rows.count()
        assert everyone > 1
        page.get_by_label("Filter", exact=True).fill("Oaklee")
        expect(rows).to_have_count(1)
        expect(page.locator("#positions-grid tbody th")).to_have_text("Oaklee Wagner")
        page.get_by_label("Filter", exact=True).fill("")
        expect(rows).to_have_count(everyone)

        screenshot(page, "dashboard.png")
        watch.assert_clean()


def test_dashboard_shows_a_server_restart_and_comes_back_live(
    home: Path, start_gateway: StartGateway, browser: Browser
) -> None:
    from playwright.sync_api import expect

    gateway = start_gateway(home)
    watch = new_page(browser, gateway.url)
    page = watch.page
    page.goto(f"{gateway.url}/")
    page.wait_for_selector(LIVE)
    watch.assert_clean()

    started = time.monotonic()
    gateway.terminate()  # graceful: the open event stream must not hold the shutdown
    assert time.monotonic() - started < 5
    page.wait_for_selector("body[data-connection=disconnected]", timeout=5000)
    assert page.locator("#offline-banner").is_visible()
    assert "Disconnected" in page.locator("#connection").inner_text()
    screenshot(page, "dashboard-disconnected.png")

    gateway.start()
    page.wait_for_selector(LIVE, timeout=10_000)
    assert not page.locator("#offline-banner").is_visible()
    with httpx.Client(base_url=gateway.url) as client:
        order = send(client, "STRATEGY_B", "MINDA", "BUY")
    page.wait_for_selector(f'#feed tbody tr[data-order-id="{order["order_id"]}"]', timeout=5000)
    expect(cell(page, "Holland Proctor", "MINDA")).to_have_text("STRATEGY_B")


def test_dashboard_pages_through_more_strategies_than_one_page_holds(
    tmp_path: Path, start_gateway: StartGateway, browser: Browser
) -> None:
    from playwright.sync_api import expect

    many = {f"STRATEGY_{n:04d}": ["ACC"] for n in range(1, 1201)}  # the API pages them 1000 at a time
    home = write_profile(tmp_path / "home", {"Holland Proctor": many, "Oaklee Wagner": {"STRATEGY_1200": ["TCS"]}})
    gateway = start_gateway(home)
    watch = new_page(browser, gateway.url)
    page = watch.page
    page.goto(f"{gateway.url}/")
    page.wait_for_selector(LIVE)
    expect(page.locator("#strategies tbody tr[data-strategy]")).to_have_count(1200)
    expect(page.locator("#strategies tbody tr.more")).to_have_count(0)
    last = page.locator('#strategies tbody tr[data-strategy="STRATEGY_1200"]')
    expect(last).to_contain_text("2 · ")
    expect(last).to_contain_text("ACC, TCS")
    decision = use_form(page, "STRATEGY_1200", "TCS", "BUY")  # a strategy of the second page, from the form
    assert decision.startswith("ACCEPTED")
    assert "Oaklee Wagner: OPENED" in decision
    watch.assert_clean()


def test_api_docs_render_offline(home: Path, start_gateway: StartGateway, browser: Browser) -> None:
    gateway = start_gateway(home)
    watch = new_page(browser, gateway.url)
    page = watch.page
    page.goto(f"{gateway.url}/docs")
    page.wait_for_selector(".swagger-ui .info .title")
    assert "ordergate" in page.locator(".swagger-ui .info .title").inner_text()
    page.get_by_text("/v1/events", exact=True).first.wait_for()
    watch.assert_clean()
