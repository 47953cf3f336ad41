"""Risk limits and the trading session through the HTTP API (SPEC section 10), with a clock the test moves.

Each limit is set with ``PUT /v1/risk/limits`` (or the session with ``PUT /v1/risk/session``) on a
running gateway over a real SQLite file, and orders are sent as a strategy sends them; the clock the
gateway stamps orders with is the test's, so "a minute later" and "the next trading day" are exact.
Every test ends with ``verify`` deriving every stored decision again from the log.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import pytest

from ordergate.config import Settings
from ordergate.service.gateway import Gateway
from ordergate.service.verify import verify_log
from ordergate.store.sqlite.log import SQLiteLogReader
from tests.conftest import write_home
from tests.integration.conftest import running_gateway

pytestmark = pytest.mark.anyio

PROFILES = {
    "Ann": {"S1": ["ACC", "TCS", "INFY"], "S2": ["ACC", "WIPRO"]},
    "Bob": {"S1": ["ACC", "TCS", "INFY"]},
}
WEDNESDAY_0930_IST = datetime(2026, 12, 2, 4, 0, tzinfo=UTC)


class ManualClock:
    """The gateway's clock, moved by the test (log timestamps: UTC, microseconds, ``Z``)."""

    def __init__(self, at: datetime) -> None:
        self.at = at

    def __call__(self) -> str:
        return self.at.strftime("%Y-%m-%dT%H:%M:%S.%fZ")

    def advance(self, seconds: float) -> None:
        self.at += timedelta(seconds=seconds)


@pytest.fixture
def home(tmp_path: Path) -> Path:
    return write_home(tmp_path / "home", PROFILES)


@pytest.fixture
def clock() -> ManualClock:
    return ManualClock(WEDNESDAY_0930_IST)


@pytest.fixture
async def gateway(home: Path, clock: ManualClock) -> AsyncIterator[tuple[httpx.AsyncClient, Gateway]]:
    async with running_gateway(home, clock=clock) as running:
        yield running
    assert_log_verifies(home)


def db(home: Path) -> Path:
    return Settings(home=home).sqlite_path


def assert_log_verifies(home: Path) -> None:
    with SQLiteLogReader(db(home)) as reader:
        report = verify_log(reader)
    assert report.ok, report.problem


async def order(http: httpx.AsyncClient, strategy: str, instrument: str, side: str, **extra: Any) -> dict[str, Any]:
    response = await http.post(
        "/v1/orders", json={"strategy": strategy, "instrument": instrument, "side": side, **extra}
    )
    assert response.status_code == 201, response.text
    answer: dict[str, Any] = response.json()
    return answer


async def set_limits(http: httpx.AsyncClient, level: str, target: str | None, **limits: Any) -> dict[str, Any]:
    response = await http.put("/v1/risk/limits", json={"level": level, "target": target, "limits": limits})
    assert response.status_code == 200, response.text
    answer: dict[str, Any] = response.json()
    return answer


def refusals(answer: dict[str, Any]) -> dict[str, str]:
    return {r["user"]: r["reason"] for r in answer["rejected_for"]}


def applied(answer: dict[str, Any]) -> list[str]:
    return sorted(e["user"] for e in answer["applied"])


async def test_without_limits_orders_are_decided_as_always_and_say_who_sent_them(gateway: Any) -> None:
    http, _ = gateway
    answer = await order(http, "S1", "ACC", "BUY")
    assert (answer["status"], applied(answer)) == ("ACCEPTED", ["Ann", "Bob"])
    assert (answer["origin"], answer["actor"], answer["risk_fingerprint"]) == ("strategy", "anonymous", None)
    limits = (await http.get("/v1/risk/limits")).json()
    assert (limits["global"], limits["strategies"], limits["users"], limits["session"]) == ({}, {}, {}, None)


async def test_max_open_positions_refuses_a_user_at_the_limit_and_a_user_level_value_wins(gateway: Any) -> None:
    http, _ = gateway
    policy = await set_limits(http, "global", None, max_open_positions=1)
    assert policy["global"] == {"max_open_positions": 1}
    assert applied(await order(http, "S1", "ACC", "BUY")) == ["Ann", "Bob"]
    full = await order(http, "S1", "TCS", "BUY")
    assert (full["status"], full["reason"], refusals(full)) == (
        "REJECTED",
        "POSITION_LIMIT",
        {"Ann": "POSITION_LIMIT", "Bob": "POSITION_LIMIT"},
    )
    assert full["risk_fingerprint"] == policy["fingerprint"]
    await set_limits(http, "user", "Bob", max_open_positions=2)
    some = await order(http, "S1", "TCS", "BUY")
    assert (some["status"], applied(some), refusals(some)) == ("ACCEPTED", ["Bob"], {"Ann": "POSITION_LIMIT"})
    assert applied(await order(http, "S1", "ACC", "SELL")) == ["Ann", "Bob"]  # a SELL is never limited
    assert applied(await order(http, "S2", "WIPRO", "BUY")) == ["Ann"]  # closing freed Ann's slot


async def test_a_strategy_level_limit_counts_only_the_positions_that_strategy_opened(gateway: Any) -> None:
    http, _ = gateway
    await set_limits(http, "strategy", "S1", max_open_positions=1)
    assert applied(await order(http, "S2", "WIPRO", "BUY")) == ["Ann"]
    assert applied(await order(http, "S1", "ACC", "BUY")) == ["Ann", "Bob"]  # S2's position does not count
    assert (await order(http, "S1", "TCS", "BUY"))["reason"] == "POSITION_LIMIT"


async def test_max_opens_per_day_counts_the_trading_day_of_the_session_zone(gateway: Any, clock: ManualClock) -> None:
    http, _ = gateway
    await set_limits(http, "global", None, max_opens_per_day=1)
    assert applied(await order(http, "S1", "ACC", "BUY")) == ["Ann", "Bob"]
    assert applied(await order(http, "S1", "ACC", "SELL")) == ["Ann", "Bob"]
    again = await order(http, "S1", "TCS", "BUY")
    assert (again["reason"], refusals(again)) == ("DAILY_LIMIT", {"Ann": "DAILY_LIMIT", "Bob": "DAILY_LIMIT"})
    clock.at = datetime(2026, 12, 2, 18, 29, tzinfo=UTC)  # 23:59 in Kolkata: still the same trading day
    assert (await order(http, "S1", "TCS", "BUY"))["reason"] == "DAILY_LIMIT"
    clock.advance(60)  # 00:00 in Kolkata, though still 2 December in UTC
    assert applied(await order(http, "S1", "TCS", "BUY")) == ["Ann", "Bob"]


async def test_cooldown_refuses_reopening_an_instrument_too_soon_after_closing_it(
    gateway: Any, clock: ManualClock
) -> None:
    http, _ = gateway
    await set_limits(http, "strategy", "S1", cooldown_seconds=60)
    await order(http, "S1", "ACC", "BUY")
    await order(http, "S1", "ACC", "SELL")
    clock.advance(59)
    soon = await order(http, "S1", "ACC", "BUY")
    assert (soon["reason"], refusals(soon)) == ("COOLDOWN", {"Ann": "COOLDOWN", "Bob": "COOLDOWN"})
    assert applied(await order(http, "S1", "TCS", "BUY")) == ["Ann", "Bob"]  # another instrument is not cooling
    clock.advance(1)
    assert applied(await order(http, "S1", "ACC", "BUY")) == ["Ann", "Bob"]


async def test_max_orders_per_minute_rejects_whole_orders_in_any_rolling_minute(
    gateway: Any, clock: ManualClock
) -> None:
    http, _ = gateway
    await set_limits(http, "global", None, max_orders_per_minute=2)
    await order(http, "S1", "ACC", "BUY")
    clock.advance(30)
    await order(http, "S9", "ACC", "BUY")  # an order of an unknown strategy counts as received too
    limited = await order(http, "S1", "TCS", "BUY")
    assert (limited["status"], limited["reason"], limited["rejected_for"]) == ("REJECTED", "RATE_LIMIT", [])
    legacy = await http.post("/create_order", json={"STRATEGY": "S1", "INSTRUMENT": "TCS", "POSITION": "BUY"})
    assert (legacy.json()["RESPONSE"], legacy.json()["REASON"]) == ("REJECTED", "RATE_LIMIT")
    clock.advance(30)  # the first order left the minute; the refused ones are still in it
    assert (await order(http, "S1", "TCS", "BUY"))["reason"] == "RATE_LIMIT"
    clock.advance(31)
    assert applied(await order(http, "S1", "TCS", "BUY")) == ["Ann", "Bob"]


async def test_a_strategy_rate_limit_counts_only_that_strategys_orders(gateway: Any) -> None:
    http, _ = gateway
    await set_limits(http, "strategy", "S2", max_orders_per_minute=1)
    await order(http, "S1", "ACC", "BUY")
    assert applied(await order(http, "S2", "WIPRO", "BUY")) == ["Ann"]
    assert (await order(http, "S2", "WIPRO", "SELL"))["reason"] == "RATE_LIMIT"
    assert (await order(http, "S1", "ACC", "SELL"))["status"] == "ACCEPTED"


async def test_a_signal_older_than_its_max_age_or_from_the_future_is_stale(gateway: Any, clock: ManualClock) -> None:
    http, _ = gateway
    await set_limits(http, "global", None, max_signal_age_seconds=5)
    old = (clock.at - timedelta(seconds=6)).isoformat()
    stale = await order(http, "S1", "ACC", "BUY", signal_time=old)
    assert (stale["reason"], stale["signal_time"]) == ("STALE_SIGNAL", "2026-12-02T03:59:54.000Z")
    ahead = int((clock.at + timedelta(seconds=6)).timestamp() * 1000)
    assert (await order(http, "S1", "ACC", "BUY", signal_time=ahead))["reason"] == "STALE_SIGNAL"
    fresh = await order(http, "S1", "ACC", "BUY", signal_time="2026-12-02T09:29:57+05:30")
    assert (fresh["status"], fresh["signal_time"]) == ("ACCEPTED", "2026-12-02T03:59:57.000Z")
    assert (await order(http, "S1", "TCS", "BUY"))["status"] == "ACCEPTED"  # no signal_time: nothing to check


@pytest.mark.parametrize(
    ("signal_time", "says"),
    [("2026-12-02T09:29:57", "UTC offset"), ("yesterday", "ISO 8601"), (True, "ISO 8601"), (-1, "out of range")],
)
async def test_a_malformed_signal_time_is_a_422_naming_it(gateway: Any, signal_time: object, says: str) -> None:
    http, _ = gateway
    response = await http.post(
        "/v1/orders", json={"strategy": "S1", "instrument": "ACC", "side": "BUY", "signal_time": signal_time}
    )
    assert response.status_code == 422
    message = response.json()["message"]
    assert "signal_time" in message
    assert says in message


async def test_orders_outside_the_trading_session_are_market_closed(gateway: Any, clock: ManualClock) -> None:
    http, _ = gateway
    session = {
        "timezone": "Asia/Kolkata",
        "open": "09:15",
        "close": "15:30",
        "days": ["MON", "TUE", "WED", "THU", "FRI"],
    }
    answer = (await http.put("/v1/risk/session", json=session)).json()
    assert answer["session"] == {**session, "square_off": None}
    assert (await order(http, "S1", "ACC", "BUY"))["status"] == "ACCEPTED"  # 09:30 on a Wednesday
    clock.at = datetime(2026, 12, 2, 10, 0, tzinfo=UTC)  # 15:30 in Kolkata: the close itself is closed
    closed = await order(http, "S1", "ACC", "SELL")
    assert (closed["status"], closed["reason"], closed["rejected_for"]) == ("REJECTED", "MARKET_CLOSED", [])
    assert (await http.delete("/v1/risk/session")).json()["session"] is None
    assert (await order(http, "S1", "ACC", "SELL"))["status"] == "ACCEPTED"


async def test_check_says_what_the_limits_would_do_and_changes_nothing(gateway: Any) -> None:
    http, _ = gateway
    await set_limits(http, "user", "Ann", max_open_positions=0)
    check = (await http.post("/v1/orders/check", json={"strategy": "S1", "instrument": "ACC", "side": "BUY"})).json()
    assert (check["status"], refusals(check), applied(check)) == ("ACCEPTED", {"Ann": "POSITION_LIMIT"}, ["Bob"])
    assert (await http.get("/v1/positions")).json()["items"] == []


async def test_a_batch_decides_each_order_under_the_limits_with_its_own_signal_time(
    gateway: Any, clock: ManualClock
) -> None:
    http, _ = gateway
    await set_limits(http, "global", None, max_open_positions=1, max_signal_age_seconds=5)
    old = (clock.at - timedelta(seconds=10)).isoformat()
    batch = {
        "orders": [
            {"strategy": "S1", "instrument": "ACC", "side": "BUY", "signal_time": old},
            {"strategy": "S1", "instrument": "ACC", "side": "BUY"},
            {"strategy": "S1", "instrument": "TCS", "side": "BUY"},
        ]
    }
    results = (await http.post("/v1/orders/batch", json=batch)).json()["results"]
    assert [r["reason"] for r in results] == ["STALE_SIGNAL", None, "POSITION_LIMIT"]


@pytest.mark.parametrize(
    ("body", "says"),
    [
        ({"level": "global", "target": None, "limits": {"max_positions": 1}}, "limits.max_positions: not a limit"),
        ({"level": "global", "target": None, "limits": {"cooldown_seconds": -1}}, "limits.cooldown_seconds"),
        ({"level": "global", "target": None, "limits": {"max_open_positions": True}}, "limits.max_open_positions"),
        ({"level": "user", "target": "Ann", "limits": {"max_orders_per_minute": 5}}, "level 'global' or 'strategy'"),
        ({"level": "strategy", "target": None, "limits": {"cooldown_seconds": 5}}, "target: level 'strategy'"),
        (
            {"level": "global", "target": None, "limits": {"breaker": {"max_rejects": 0, "window_seconds": 5}}},
            "breaker",
        ),
        ({"level": "everyone", "target": None, "limits": {}}, "level"),
    ],
)
async def test_a_bad_limit_is_a_422_naming_the_field_and_changes_nothing(
    gateway: Any, body: dict[str, Any], says: str
) -> None:
    http, _ = gateway
    response = await http.put("/v1/risk/limits", json=body)
    assert response.status_code == 422, response.text
    assert says in str(response.json()["detail"])
    assert (await http.get("/v1/risk/limits")).json()["changes"] == []


@pytest.mark.parametrize(
    ("session", "says"),
    [
        ({"open": "09:15"}, "session.close"),
        ({"open": "9:15", "close": "15:30"}, "session.open"),
        ({"open": "09:15", "close": "24:00"}, "session.close"),
        ({"open": "09:15", "close": "15:30", "timezone": "Mars/Olympus"}, "session.timezone"),
        ({"open": "09:15", "close": "15:30", "days": []}, "session.days"),
        ({"open": "09:15", "close": "15:30", "lunch": "12:00"}, "session.lunch"),
    ],
)
async def test_a_bad_session_is_a_422_naming_the_field(gateway: Any, session: dict[str, Any], says: str) -> None:
    http, _ = gateway
    response = await http.put("/v1/risk/session", json=session)
    assert response.status_code == 422, response.text
    assert says in response.json()["detail"]


async def test_limits_and_what_they_count_survive_a_restart(home: Path, clock: ManualClock) -> None:
    async with running_gateway(home, clock=clock) as (http, _):
        await set_limits(http, "global", None, max_opens_per_day=1, cooldown_seconds=600)
        await order(http, "S1", "ACC", "BUY")
        await order(http, "S1", "ACC", "SELL")
    clock.advance(60)
    async with running_gateway(home, clock=clock) as (http, _):
        limits = (await http.get("/v1/risk/limits")).json()
        assert limits["global"] == {"max_opens_per_day": 1, "cooldown_seconds": 600}
        assert [c["by"] for c in limits["changes"]] == [None]
        assert (await order(http, "S1", "ACC", "BUY"))["reason"] == "DAILY_LIMIT"  # counted from the log
        await set_limits(http, "global", None, max_opens_per_day=None)
        assert (await order(http, "S1", "ACC", "BUY"))["reason"] == "COOLDOWN"
        assert (await order(http, "S1", "TCS", "BUY"))["status"] == "ACCEPTED"
    assert_log_verifies(home)


async def test_limits_set_later_count_what_happened_before_them(gateway: Any) -> None:
    http, _ = gateway
    await order(http, "S1", "ACC", "BUY")
    await order(http, "S1", "TCS", "BUY")
    await set_limits(http, "global", None, max_opens_per_day=2)
    assert (await order(http, "S1", "INFY", "BUY"))["reason"] == "DAILY_LIMIT"
    await set_limits(http, "global", None, max_opens_per_day=None)  # nothing restricted: the state is let go
    await set_limits(http, "global", None, max_open_positions=2)  # rebuilt from the log again
    assert (await order(http, "S1", "INFY", "BUY"))["reason"] == "POSITION_LIMIT"


async def test_verify_reports_an_order_whose_stored_decision_the_limits_contradict(
    home: Path, clock: ManualClock
) -> None:
    import sqlite3

    async with running_gateway(home, clock=clock) as (http, _):
        await set_limits(http, "global", None, max_open_positions=1)
        await order(http, "S1", "ACC", "BUY")
        await order(http, "S1", "TCS", "BUY")
    with sqlite3.connect(db(home)) as conn:  # the limits document, rewritten
        conn.execute(
            "UPDATE risk_sets SET document = replace(document, '\"max_open_positions\":1', '\"max_open_positions\":5')"
        )
    with SQLiteLogReader(db(home)) as reader:
        report = verify_log(reader)
    assert report.problem is not None
    assert "risk limits it was decided under" in report.problem
    assert "altered" in report.problem


async def test_the_breaker_halts_a_strategy_in_the_order_that_trips_it_until_an_admin_lifts_it(
    home: Path, clock: ManualClock
) -> None:
    async with running_gateway(home, clock=clock) as (http, _):
        await set_limits(http, "strategy", "S1", breaker={"max_rejects": 3, "window_seconds": 60})
        await order(http, "S1", "ACC", "SELL")  # nothing to sell: rejected, counted
        clock.advance(61)  # the first rejection leaves the window
        await order(http, "S1", "TCS", "SELL")
        await order(http, "S9", "ACC", "SELL")  # another strategy's rejections do not count
        assert (await order(http, "S2", "ACC", "SELL"))["reason"] == "NO_OPEN_POSITION"
        await order(http, "S1", "INFY", "SELL")
        tripping = await order(http, "S1", "INFY", "SELL")
        assert tripping["reason"] == "NO_OPEN_POSITION"  # the order that trips is decided before the halt
        controls = (await http.get("/v1/controls")).json()
        assert controls["strategies"] == {"S1": "HALTED"}
        (change,) = controls["changes"]
        assert (change["by"], change["reason"], change["order_id"], change["state"]) == (
            "risk",
            "BREAKER",
            tripping["order_id"],
            "HALTED",
        )
        halted = await order(http, "S1", "ACC", "BUY")
        assert (halted["reason"], refusals(halted)) == ("HALTED", {"Ann": "HALTED", "Bob": "HALTED"})
        assert (await order(http, "S2", "ACC", "BUY"))["status"] == "ACCEPTED"  # other strategies trade on
        for _ in range(3):  # halted rejections are the control's, not the strategy's: the breaker does not count them
            await order(http, "S1", "ACC", "BUY")
    async with running_gateway(home, clock=clock) as (http, _):  # the halt is stored: it survives a restart
        assert (await http.get("/v1/controls")).json()["strategies"] == {"S1": "HALTED"}
        await http.put("/v1/controls", json={"level": "strategy", "target": "S1", "state": "ACTIVE"})
        assert (await order(http, "S1", "TCS", "SELL"))["reason"] == "NO_OPEN_POSITION"  # a fresh window
        assert (await order(http, "S1", "TCS", "BUY"))["status"] == "ACCEPTED"
        assert (await http.get("/v1/controls")).json()["strategies"] == {}
    assert_log_verifies(home)


async def test_verify_reports_a_breaker_trip_removed_from_the_log(home: Path, clock: ManualClock) -> None:
    import sqlite3

    async with running_gateway(home, clock=clock) as (http, _):
        await set_limits(http, "global", None, breaker={"max_rejects": 1, "window_seconds": 60})
        await order(http, "S1", "ACC", "SELL")
    assert_log_verifies(home)
    with sqlite3.connect(db(home)) as conn:
        conn.execute("DELETE FROM control_changes WHERE reason = 'BREAKER'")
    with SQLiteLogReader(db(home)) as reader:
        report = verify_log(reader)
    assert report.problem is not None
    assert "trips the breaker of S1, but no halt by the breaker is stored" in report.problem


async def test_flatten_closes_every_position_in_the_scope_for_exactly_its_holders(gateway: Any) -> None:
    http, _ = gateway
    await order(http, "S1", "ACC", "BUY")
    await order(http, "S1", "TCS", "BUY")
    await order(http, "S2", "WIPRO", "BUY")
    user = (await http.post("/v1/controls/flatten", json={"level": "user", "target": "Bob"})).json()
    assert [(o["strategy"], o["instrument"], applied(o), o["origin"], o["door"]) for o in user["orders"]] == [
        ("S1", "ACC", ["Bob"], "flatten", "api"),  # an admin's flatten comes through the API
        ("S1", "TCS", ["Bob"], "flatten", "api"),
    ]
    strategy = (await http.post("/v1/controls/flatten", json={"level": "strategy", "target": "S2"})).json()
    assert [(o["instrument"], applied(o)) for o in strategy["orders"]] == [("WIPRO", ["Ann"])]
    positions = (await http.get("/v1/positions")).json()["items"]
    assert sorted((p["user"], p["instrument"]) for p in positions) == [("Ann", "ACC"), ("Ann", "TCS")]
    empty = await http.post("/v1/controls/flatten", json={"level": "user", "target": "Bob"})
    assert (empty.status_code, empty.json()["orders"]) == (200, [])


async def test_a_kill_switch_flattens_everything_and_halts_in_one_transaction(home: Path, clock: ManualClock) -> None:
    async with running_gateway(home, clock=clock) as (http, _):
        await order(http, "S1", "ACC", "BUY")
        await order(http, "S2", "WIPRO", "BUY")
        await http.put("/v1/controls", json={"level": "user", "target": "Ann", "state": "HALTED"})
        kill = (await http.post("/v1/controls/flatten", json={"level": "global", "then": "HALTED"})).json()
        assert [(o["instrument"], applied(o), o["actor"]) for o in kill["orders"]] == [
            ("ACC", ["Ann", "Bob"], "anonymous"),  # a halted user's position is closed too
            ("WIPRO", ["Ann"], "anonymous"),
        ]
        assert kill["controls"]["global"] == "HALTED"
        assert kill["controls"]["changes"][-1]["order_id"] == kill["orders"][-1]["order_id"]
        assert (await http.get("/v1/positions")).json()["items"] == []
        assert (await order(http, "S1", "ACC", "BUY"))["reason"] == "HALTED"
    async with running_gateway(home, clock=clock) as (http, _):
        assert (await http.get("/v1/controls")).json()["global"] == "HALTED"
    assert_log_verifies(home)


async def test_a_flatten_under_limits_counts_its_closes_for_the_cooldown(gateway: Any, clock: ManualClock) -> None:
    http, _ = gateway
    await set_limits(http, "global", None, cooldown_seconds=300, max_orders_per_minute=3)
    await order(http, "S1", "ACC", "BUY")
    kill = (await http.post("/v1/controls/flatten", json={"level": "global"})).json()
    assert kill["orders"][0]["risk_fingerprint"] is not None
    clock.advance(10)
    assert (await order(http, "S1", "ACC", "BUY"))["reason"] == "COOLDOWN"  # the flatten is not a strategy order:
    assert (await order(http, "S1", "TCS", "BUY"))["status"] == "ACCEPTED"  # it took no slot of the rate limit


@pytest.mark.parametrize(
    ("body", "says"),
    [
        ({"level": "global", "target": "Ann"}, "target: must be null"),
        ({"level": "user"}, "target: level 'user' needs"),
        ({"level": "global", "then": "PAUSED"}, "then"),
        ({"level": "desk"}, "level"),
    ],
)
async def test_a_bad_flatten_is_a_422_and_closes_nothing(gateway: Any, body: dict[str, Any], says: str) -> None:
    http, _ = gateway
    await order(http, "S1", "ACC", "BUY")
    response = await http.post("/v1/controls/flatten", json=body)
    assert response.status_code == 422, response.text
    assert says in str(response.json()["detail"])
    assert len((await http.get("/v1/positions")).json()["items"]) == 2


SESSION = {"open": "09:15", "close": "15:30", "square_off": "15:15"}
AT_1516_IST = datetime(2026, 12, 2, 9, 46, tzinfo=UTC)


async def positions_of(http: httpx.AsyncClient) -> list[tuple[str, str]]:
    items = (await http.get("/v1/positions")).json()["items"]
    return sorted((p["user"], p["instrument"]) for p in items)


async def test_the_square_off_flattens_everything_once_at_its_minute(home: Path, clock: ManualClock) -> None:
    import asyncio

    async with running_gateway(home, clock=clock) as (http, _):
        assert (await http.put("/v1/risk/session", json=SESSION)).status_code == 200
        await order(http, "S1", "ACC", "BUY")
        await order(http, "S2", "WIPRO", "BUY")
        clock.at = AT_1516_IST
        for _ in range(100):  # the gateway looks every second
            if not await positions_of(http):
                break
            await asyncio.sleep(0.05)
        assert await positions_of(http) == []
        orders = (await http.get("/v1/orders")).json()["items"]
        assert [(o["origin"], o["actor"], o["instrument"], o["door"]) for o in orders[2:]] == [
            ("square_off", "risk", "ACC", "gateway"),  # the gateway's own orders
            ("square_off", "risk", "WIPRO", "gateway"),
        ]
        await order(http, "S1", "TCS", "BUY")  # the market is open until 15:30: this one stays open
        await asyncio.sleep(1.5)
        assert await positions_of(http) == [("Ann", "TCS"), ("Bob", "TCS")]
        marks = [c for c in (await http.get("/v1/risk/limits")).json()["changes"] if c["kind"] == "square_off"]
        assert [(c["by"], c["change"]["day"]) for c in marks] == [("risk", "2026-12-02")]
    async with running_gateway(home, clock=clock) as (http, _):  # once a day: a restart does not do it again
        assert await positions_of(http) == [("Ann", "TCS"), ("Bob", "TCS")]
    assert_log_verifies(home)


async def test_a_square_off_missed_while_the_gateway_was_down_happens_on_start(home: Path, clock: ManualClock) -> None:
    async with running_gateway(home, clock=clock) as (http, _):
        await http.put("/v1/risk/session", json=SESSION)
        await order(http, "S1", "ACC", "BUY")
    clock.at = datetime(2026, 12, 3, 3, 0, tzinfo=UTC)  # 08:30 the next morning: yesterday's square-off was missed
    async with running_gateway(home, clock=clock) as (http, _):
        assert await positions_of(http) == []  # done before the first request is served
        (squared,) = [o for o in (await http.get("/v1/orders")).json()["items"] if o["origin"] == "square_off"]
        assert squared["received_at"].startswith("2026-12-03T03:00")
    async with running_gateway(home, clock=clock) as (http, _):
        changes = (await http.get("/v1/risk/limits")).json()["changes"]
        assert [c["change"]["day"] for c in changes if c["kind"] == "square_off"] == ["2026-12-02"]
    assert_log_verifies(home)


async def test_in_strategy_scope_limits_count_each_strategys_positions_and_flatten_closes_each(
    tmp_path: Path, clock: ManualClock
) -> None:
    home = write_home(tmp_path / "scoped", PROFILES)
    async with running_gateway(home, clock=clock, scope="strategy") as (http, _):
        await set_limits(http, "user", "Ann", max_open_positions=2)
        await set_limits(http, "strategy", "S2", max_open_positions=1)
        assert applied(await order(http, "S1", "ACC", "BUY")) == ["Ann", "Bob"]
        assert applied(await order(http, "S2", "ACC", "BUY")) == ["Ann"]  # the same instrument, S2's own position
        full = await order(http, "S2", "WIPRO", "BUY")
        assert (full["reason"], refusals(full)) == ("POSITION_LIMIT", {"Ann": "POSITION_LIMIT"})
        flat = (await http.post("/v1/controls/flatten", json={"level": "user", "target": "Ann"})).json()
        assert [(o["strategy"], o["instrument"], applied(o)) for o in flat["orders"]] == [
            ("S1", "ACC", ["Ann"]),
            ("S2", "ACC", ["Ann"]),
        ]
        assert await positions_of(http) == [("Bob", "ACC")]
    assert_log_verifies(home)
