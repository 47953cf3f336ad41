"""The dashboard's Risk panel in a real headless Chromium, against a real gateway process.

Limits set over HTTP show on the page by level and target, with the trading session (or the lack of
one), within a refresh; a halted strategy shows with who halted it, when, and the breaker that
applies to it; the flatten is offered to a key that may change controls and not to a viewer, and
closes positions only after its confirmation step.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any

import httpx
import pytest

from tests.e2e.browser import PageWatch, launch_browser, new_page, screenshot
from tests.e2e.conftest import Profile, StartGateway, run_ordergate

if TYPE_CHECKING:
    from playwright.sync_api import Browser, Locator, Page

pytestmark = pytest.mark.e2e

LIVE = "body[data-connection=live]"
REFRESH = 10_000
"""Milliseconds to wait for a change made over HTTP to show: the panel refreshes every 3 s."""
UNSET = "\u2013"
"""What a limit cell shows when the limit is not set at that level (an en dash)."""
PROFILE: Profile = {
    "Holland Proctor": {"STRATEGY_A": ["BIRLASOFT", "GRASIM", "EICHER"], "STRATEGY_B": ["MINDA"]},
    "Oaklee Wagner": {"STRATEGY_D": ["ACC"]},
    "Ishaan Verma": {"STRATEGY_A": ["BIRLASOFT", "GRASIM", "EICHER"]},
}


@pytest.fixture
def profile() -> Profile:
    return PROFILE


@pytest.fixture(scope="module")
def browser() -> Iterator[Browser]:
    yield from launch_browser()


def create_key(keyfile: Path, *args: str) -> str:
    result = run_ordergate("keys", "create", "--file", str(keyfile), *args)
    assert result.returncode == 0, result.stderr
    return result.stdout.strip().splitlines()[-1]


def put(client: httpx.Client, path: str, body: dict[str, Any]) -> dict[str, Any]:
    answer = client.put(path, json=body)
    assert answer.status_code == 200, answer.text
    document: dict[str, Any] = answer.json()
    return document


def set_limits(client: httpx.Client, level: str, target: str | None, **limits: object) -> dict[str, Any]:
    return put(client, "/v1/risk/limits", {"level": level, "target": target, "limits": limits})


def breaker(max_rejects: int, window_seconds: int) -> dict[str, int]:
    return {"max_rejects": max_rejects, "window_seconds": window_seconds}


def buy(client: httpx.Client, strategy: str, instrument: str) -> dict[str, Any]:
    answer = client.post("/v1/orders", json={"strategy": strategy, "instrument": instrument, "side": "BUY"})
    assert answer.status_code == 201, answer.text
    document: dict[str, Any] = answer.json()
    return document


def limit(page: Page, level: str, target: str, name: str) -> Locator:
    return page.locator(f'#risk-limits tr[data-level="{level}"][data-target="{target}"] td[data-limit="{name}"]')


def control(page: Page, level: str, target: str) -> Locator:
    return page.locator(f'#risk-controls tr[data-level="{level}"][data-target="{target}"]')


def cell(page: Page, user: str, instrument: str) -> Locator:
    return page.locator(f'#positions-grid td[data-user="{user}"][data-instrument="{instrument}"]')


def open_with_key(watch: PageWatch, url: str, key: str) -> None:
    """Open the dashboard of a gateway with auth on and enter ``key``; forget the 401s that asked for it."""
    from playwright.sync_api import expect

    page = watch.page
    page.goto(f"{url}/")
    expect(page.locator("#key-banner")).to_be_visible(timeout=5000)
    page.get_by_label("API key", exact=True).fill(key)
    page.get_by_role("button", name="Use key").click()
    page.wait_for_selector(LIVE, timeout=10_000)
    expect(page.locator("#risk-session")).not_to_have_text("Loading the limits…")


def assert_only_refusals_logged(watch: PageWatch, *statuses: str) -> None:
    """No console error but the browser's own line for a request refused with one of ``statuses``.

    The page asks for a key with a refused read (401), and a producer key's ``GET /v1/whoami`` is refused
    (403); Chromium logs each.
    """
    unexpected = [e for e in watch.console_errors if not any(f"status of {s}" in e for s in ("401", *statuses))]
    assert unexpected == [], watch.console_errors
    assert watch.external_requests == []


def test_the_risk_panel_shows_the_limits_by_level_and_target_and_the_session_as_they_change(
    home: Path, start_gateway: StartGateway, browser: Browser
) -> None:
    from playwright.sync_api import expect

    gateway = start_gateway(home)
    watch = new_page(browser, gateway.url)
    page = watch.page
    page.goto(f"{gateway.url}/")
    page.wait_for_selector(LIVE)
    panel = page.locator("#risk")
    expect(page.locator("#risk-session")).to_have_text("No session: orders taken at any time.")
    expect(page.locator("#risk-limits-empty")).to_be_visible()
    expect(page.locator("#risk-controls-empty")).to_have_text("Everything is ACTIVE.")
    expect(page.locator("#risk-limits tbody tr")).to_have_count(1)  # the global level, nothing set
    expect(limit(page, "global", "", "max_open_positions")).to_have_text(UNSET)

    with httpx.Client(base_url=gateway.url, timeout=10) as client:
        set_limits(client, "global", None, max_open_positions=3)
        set_limits(client, "strategy", "STRATEGY_B", max_orders_per_minute=20, breaker=breaker(4, 120))
        policy = set_limits(client, "user", "Holland Proctor", cooldown_seconds=30, max_opens_per_day=5)

        # each level and target in its row, each limit in its column, within a refresh
        expect(limit(page, "global", "", "max_open_positions")).to_have_text("3", timeout=REFRESH)
        expect(limit(page, "strategy", "STRATEGY_B", "max_orders_per_minute")).to_have_text("20")
        expect(limit(page, "strategy", "STRATEGY_B", "breaker")).to_have_text("4 rejects in 120 s")
        expect(limit(page, "strategy", "STRATEGY_B", "max_open_positions")).to_have_text(UNSET)
        expect(limit(page, "user", "Holland Proctor", "cooldown_seconds")).to_have_text("30")
        expect(limit(page, "user", "Holland Proctor", "max_opens_per_day")).to_have_text("5")
        expect(page.locator("#risk-limits tbody tr")).to_have_count(3)
        expect(page.locator("#risk-limits-empty")).to_be_hidden()
        expect(page.locator("#risk-fingerprint")).to_contain_text(policy["fingerprint"])

        session = {"timezone": "Asia/Kolkata", "open": "09:15", "close": "15:30", "days": ["MON", "TUE"]}
        put(client, "/v1/risk/session", {**session, "square_off": "15:20"})
        expect(page.locator("#risk-session")).to_have_text(
            f"Session: MON TUE 09:15{UNSET}15:30 (Asia/Kolkata), square-off at 15:20.", timeout=REFRESH
        )

        # a limit cleared leaves its level; a session removed is the "any time" line again
        set_limits(client, "strategy", "STRATEGY_B", max_orders_per_minute=None, breaker=None)
        assert client.delete("/v1/risk/session").status_code == 200
        expect(page.locator('#risk-limits tr[data-level="strategy"]')).to_have_count(0, timeout=REFRESH)
        expect(page.locator("#risk-session")).to_have_text("No session: orders taken at any time.", timeout=REFRESH)

    # with auth off the gateway takes a flatten from anyone, so the page offers it
    expect(panel.get_by_role("button", name="Flatten positions…")).to_be_visible()
    screenshot(page, "dashboard-risk.png")
    watch.assert_clean()


def test_halted_strategies_show_who_halted_them_when_and_the_breaker_that_applies(
    home: Path, start_gateway: StartGateway, browser: Browser
) -> None:
    from playwright.sync_api import expect

    keyfile = home / "keys.json"
    admin = create_key(keyfile, "--role", "admin", "--name", "ops desk")
    viewer = create_key(keyfile, "--role", "viewer", "--name", "wall screen")
    gateway = start_gateway(home, "--auth", str(keyfile))
    with httpx.Client(base_url=gateway.url, headers={"Authorization": f"Bearer {admin}"}, timeout=10) as client:
        set_limits(client, "global", None, breaker=breaker(5, 60))
        set_limits(client, "strategy", "STRATEGY_D", breaker=breaker(2, 30))
        put(client, "/v1/controls", {"level": "strategy", "target": "STRATEGY_B", "state": "HALTED"})

        watch = new_page(browser, gateway.url)
        page = watch.page
        open_with_key(watch, gateway.url, viewer)
        halted = control(page, "strategy", "STRATEGY_B")
        expect(halted).to_contain_text("HALTED", timeout=REFRESH)
        expect(halted.locator("td.why")).to_have_text("set by ops desk")
        assert halted.get_attribute("data-breaker") == "no"
        expect(halted.locator('td[data-limit="breaker"]')).to_have_text("5 rejects in 60 s")  # the global default
        at = client.get("/v1/controls").json()["changes"][-1]["at"]
        assert halted.locator("td[title]").get_attribute("title") == at

        # changes made while the page is open show within a refresh
        put(client, "/v1/controls", {"level": "strategy", "target": "STRATEGY_D", "state": "REDUCE_ONLY"})
        put(client, "/v1/controls", {"level": "user", "target": "Oaklee Wagner", "state": "HALTED"})
        reduce_only = control(page, "strategy", "STRATEGY_D")
        expect(reduce_only).to_contain_text("REDUCE_ONLY", timeout=REFRESH)
        expect(reduce_only.locator('td[data-limit="breaker"]')).to_have_text("2 rejects in 30 s")  # its own
        expect(control(page, "user", "Oaklee Wagner")).to_contain_text("HALTED")
        put(client, "/v1/controls", {"level": "strategy", "target": "STRATEGY_B", "state": "ACTIVE"})
        expect(halted).to_have_count(0, timeout=REFRESH)

        # a viewer reads all of it but is not offered the flatten
        expect(page.get_by_role("button", name="Flatten positions…")).to_be_hidden()
        assert_only_refusals_logged(watch, "403")

        # an admin key in the same tab is
        page.get_by_label("API key", exact=True).fill(admin)
        page.get_by_role("button", name="Use key").click()
        expect(page.get_by_role("button", name="Flatten positions…")).to_be_visible(timeout=REFRESH)
        screenshot(page, "dashboard-risk-halted.png")
        assert_only_refusals_logged(watch, "403")


def test_a_strategy_the_circuit_breaker_halted_shows_as_halted_by_the_breaker(
    home: Path, start_gateway: StartGateway, browser: Browser
) -> None:
    from playwright.sync_api import expect

    gateway = start_gateway(home)
    with httpx.Client(base_url=gateway.url, timeout=10) as client:
        watch = new_page(browser, gateway.url)
        page = watch.page
        page.goto(f"{gateway.url}/")
        page.wait_for_selector(LIVE)
        set_limits(client, "strategy", "STRATEGY_D", breaker=breaker(2, 60))
        for _ in range(2):
            assert buy(client, "STRATEGY_D", "INFY")["status"] == "REJECTED"  # not an instrument it trades
        change = client.get("/v1/controls").json()["changes"][-1]
        assert (change["by"], change["reason"]) == ("risk", "BREAKER")

        tripped = control(page, "strategy", "STRATEGY_D")
        expect(tripped).to_contain_text("HALTED", timeout=REFRESH)
        expect(tripped.locator("td.why")).to_have_text("circuit breaker")
        assert tripped.get_attribute("data-breaker") == "yes"
        expect(tripped.locator('td[data-limit="breaker"]')).to_have_text("2 rejects in 60 s")
        assert tripped.locator("td[title]").get_attribute("title") == change["at"]
        watch.assert_clean()


def test_an_admin_flattens_one_strategy_after_confirming_and_sees_the_positions_closed(
    home: Path, start_gateway: StartGateway, browser: Browser
) -> None:
    from playwright.sync_api import expect

    keyfile = home / "keys.json"
    admin = create_key(keyfile, "--role", "admin", "--name", "ops desk")
    gateway = start_gateway(home, "--auth", str(keyfile))
    with httpx.Client(base_url=gateway.url, headers={"Authorization": f"Bearer {admin}"}, timeout=10) as client:
        assert len(buy(client, "STRATEGY_A", "GRASIM")["applied"]) == 2  # Holland Proctor and Ishaan Verma
        assert len(buy(client, "STRATEGY_B", "MINDA")["applied"]) == 1  # Holland Proctor

        watch = new_page(browser, gateway.url)
        page = watch.page
        open_with_key(watch, gateway.url, admin)
        expect(cell(page, "Ishaan Verma", "GRASIM")).to_have_text("STRATEGY_A")
        panel = page.locator("#risk")
        flatten = panel.get_by_role("button", name="Flatten positions…")

        # the button only opens the confirmation; cancelling it sends nothing
        flatten.click()
        expect(page.locator("#flatten-form")).to_be_visible()
        expect(page.locator("#flatten-summary")).to_have_text(
            "Close every open position on the gateway; the controls stay as they are."
        )
        panel.get_by_role("button", name="Cancel").click()
        expect(page.locator("#flatten-form")).to_be_hidden()
        assert len(client.get("/v1/positions").json()["items"]) == 3

        # one strategy, then HALTED: the confirmation says so and waits for the name
        flatten.click()
        page.get_by_label("Flatten scope", exact=True).select_option("strategy")
        confirm = panel.get_by_role("button", name="Confirm flatten")
        expect(confirm).to_be_disabled()
        page.get_by_label("Strategy or user name", exact=True).fill("STRATEGY_A")
        page.get_by_label("Afterwards", exact=True).select_option("HALTED")
        expect(page.locator("#flatten-summary")).to_have_text(
            'Close every open position of strategy "STRATEGY_A", then set that strategy HALTED.'
        )
        with page.expect_request("**/v1/controls/flatten") as sent:
            confirm.click()
        assert sent.value.post_data_json == {"level": "strategy", "target": "STRATEGY_A", "then": "HALTED"}
        expect(page.locator("#flatten-result")).to_have_text(re.compile(r"^2 positions closed \("))
        expect(page.locator("#flatten-form")).to_be_hidden()

        # the grid and the controls follow; STRATEGY_B's position stays
        expect(cell(page, "Ishaan Verma", "GRASIM").and_(page.locator(".held"))).to_have_count(0)
        expect(cell(page, "Holland Proctor", "GRASIM").and_(page.locator(".held"))).to_have_count(0)
        expect(cell(page, "Holland Proctor", "MINDA")).to_have_text("STRATEGY_B")
        halted = control(page, "strategy", "STRATEGY_A")
        expect(halted).to_contain_text("HALTED")
        expect(halted.locator("td.why")).to_have_text("set with a flatten by ops desk")
        positions = client.get("/v1/positions").json()["items"]
        assert [(p["user"], p["strategy"], p["instrument"]) for p in positions] == [
            ("Holland Proctor", "STRATEGY_B", "MINDA")
        ]
        assert client.get("/v1/controls").json()["strategies"] == {"STRATEGY_A": "HALTED"}
        screenshot(page, "dashboard-risk-flattened.png")
        assert_only_refusals_logged(watch)
