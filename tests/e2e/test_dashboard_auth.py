"""The dashboard of a gateway that runs with ``--auth``, in a real headless Chromium.

The page itself opens without a key, asks for one when the gateway refuses its calls, and once a
viewer key is entered loads the state, follows the event stream and shows new orders live.
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
    from playwright.sync_api import Browser

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
