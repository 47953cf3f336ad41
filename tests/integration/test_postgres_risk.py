"""Risk limits and the trading session on PostgreSQL (SPEC sections 6 and 10), through the HTTP API.

Every limit test of ``test_http_risk`` (SQLite) runs here again, unchanged, on a gateway over a fresh
PostgreSQL database; then two gateways share one database (two stores with their own pools and
sequencers in this test process; ``tests/e2e/test_postgres_risk_race.py`` does it with real processes):
a limit set through one holds at once for orders sent to the other, and what the limits count is
counted across both. The clock is the test's, shared by both gateways. Every test ends with ``verify``
deriving every stored decision again from the database's log.
"""

from __future__ import annotations

import asyncio
import contextlib
import inspect
import random
from collections import Counter
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx
import pytest

from ordergate.service.gateway import Gateway
from ordergate.service.verify import verify_log
from ordergate.store.postgres import PostgresLogReader
from tests.conftest import write_home
from tests.integration import test_http_risk as on_sqlite
from tests.integration.conftest import running_gateway
from tests.integration.test_http_risk import (
    PROFILES,
    WEDNESDAY_0930_IST,
    ManualClock,
    applied,
    order,
    refusals,
    set_limits,
)
from tests.postgres import fresh_database, kill_connections

pytestmark = pytest.mark.anyio

Running = tuple[httpx.AsyncClient, Gateway]

SAME_CASES: list[Callable[..., Awaitable[None]]] = [
    on_sqlite.test_without_limits_orders_are_decided_as_always_and_say_who_sent_them,
    on_sqlite.test_max_open_positions_refuses_a_user_at_the_limit_and_a_user_level_value_wins,
    on_sqlite.test_a_strategy_level_limit_counts_only_the_positions_that_strategy_opened,
    on_sqlite.test_max_opens_per_day_counts_the_trading_day_of_the_session_zone,
    on_sqlite.test_cooldown_refuses_reopening_an_instrument_too_soon_after_closing_it,
    on_sqlite.test_max_orders_per_minute_rejects_whole_orders_in_any_rolling_minute,
    on_sqlite.test_a_strategy_rate_limit_counts_only_that_strategys_orders,
    on_sqlite.test_a_signal_older_than_its_max_age_or_from_the_future_is_stale,
    on_sqlite.test_orders_outside_the_trading_session_are_market_closed,
    on_sqlite.test_check_says_what_the_limits_would_do_and_changes_nothing,
    on_sqlite.test_a_batch_decides_each_order_under_the_limits_with_its_own_signal_time,
    on_sqlite.test_limits_set_later_count_what_happened_before_them,
    on_sqlite.test_flatten_closes_every_position_in_the_scope_for_exactly_its_holders,
    on_sqlite.test_a_flatten_under_limits_counts_its_closes_for_the_cooldown,
]
"""The SQLite suite's tests of what each limit decides: the same answers are due on PostgreSQL."""


@pytest.fixture
def database() -> Iterator[str]:
    with fresh_database() as url:
        yield url


@pytest.fixture
def home(tmp_path: Path) -> Path:
    return write_home(tmp_path / "home", PROFILES)


@pytest.fixture
def clock() -> ManualClock:
    return ManualClock(WEDNESDAY_0930_IST)


def assert_log_verifies(database: str) -> int:
    """``verify`` over the database's log passes; how many orders it decided again."""
    reader = PostgresLogReader(database)
    try:
        report = verify_log(reader)
    finally:
        reader.close()
    assert report.ok, report.problem
    return report.redecided


@pytest.fixture
async def gateway(home: Path, clock: ManualClock, database: str) -> AsyncIterator[Running]:
    async with running_gateway(home, clock=clock, db=database) as running:
        yield running
    assert_log_verifies(database)


@contextlib.asynccontextmanager
async def two_gateways(home: Path, clock: ManualClock, database: str) -> AsyncIterator[tuple[Running, Running]]:
    async with (
        running_gateway(home, clock=clock, db=database) as a,
        running_gateway(home, clock=clock, db=database) as b,
    ):
        yield a, b
    assert_log_verifies(database)


@pytest.mark.parametrize("case", SAME_CASES, ids=lambda case: case.__name__.removeprefix("test_"))
async def test_each_limit_decides_on_postgresql_as_on_sqlite(
    case: Callable[..., Awaitable[None]], gateway: Running, clock: ManualClock
) -> None:
    wanted = inspect.signature(case).parameters
    await case(**{name: value for name, value in (("gateway", gateway), ("clock", clock)) if name in wanted})


async def test_a_refusal_records_the_policy_and_the_entry_on_postgresql(gateway: Running) -> None:
    http, _ = gateway
    policy = await set_limits(http, "global", None, max_open_positions=1)
    await order(http, "S1", "ACC", "BUY")
    response = await http.post(
        "/v1/orders", json={"strategy": "S1", "instrument": "TCS", "side": "BUY", "client_order_id": "full"}
    )
    full = response.json()
    assert (full["reason"], full["risk_fingerprint"], full["origin"]) == (
        "POSITION_LIMIT",
        policy["fingerprint"],
        "strategy",
    )
    again = await http.get(f"/v1/orders/{full['order_id']}")
    assert again.json()["risk_fingerprint"] == policy["fingerprint"]


async def test_limits_and_what_they_count_survive_a_restart_on_postgresql(
    home: Path, clock: ManualClock, database: str
) -> None:
    async with running_gateway(home, clock=clock, db=database) as (http, _):
        await set_limits(http, "global", None, max_opens_per_day=1, cooldown_seconds=600)
        await order(http, "S1", "ACC", "BUY")
        await order(http, "S1", "ACC", "SELL")
    clock.advance(60)
    async with running_gateway(home, clock=clock, db=database) as (http, _):
        limits = (await http.get("/v1/risk/limits")).json()
        assert limits["global"] == {"max_opens_per_day": 1, "cooldown_seconds": 600}
        assert (await order(http, "S1", "ACC", "BUY"))["reason"] == "DAILY_LIMIT"  # counted from the log
        await set_limits(http, "global", None, max_opens_per_day=None)
        assert (await order(http, "S1", "ACC", "BUY"))["reason"] == "COOLDOWN"
        assert (await order(http, "S1", "TCS", "BUY"))["status"] == "ACCEPTED"
    assert assert_log_verifies(database) == 5


async def test_a_limit_set_through_one_gateway_holds_at_once_for_orders_sent_to_the_other(
    home: Path, clock: ManualClock, database: str
) -> None:
    async with two_gateways(home, clock, database) as ((a, _), (b, _)):
        assert applied(await order(b, "S1", "ACC", "BUY")) == ["Ann", "Bob"]  # b decides without limits
        policy = await set_limits(a, "global", None, max_open_positions=1)
        full = await order(b, "S1", "TCS", "BUY")  # b has not read the policy yet: its group does
        assert (full["reason"], refusals(full)) == (
            "POSITION_LIMIT",
            {"Ann": "POSITION_LIMIT", "Bob": "POSITION_LIMIT"},
        )
        assert full["risk_fingerprint"] == policy["fingerprint"]
        assert (await b.get("/v1/risk/limits")).json()["global"] == {"max_open_positions": 1}
        check = await b.post("/v1/orders/check", json={"strategy": "S1", "instrument": "INFY", "side": "BUY"})
        assert check.json()["reason"] == "POSITION_LIMIT"  # b's own state, brought up to date by its group

        await set_limits(b, "user", "Bob", max_open_positions=2)
        some = await order(a, "S1", "TCS", "BUY")
        assert (applied(some), refusals(some)) == (["Bob"], {"Ann": "POSITION_LIMIT"})
        assert (await a.get("/v1/risk/limits")).json()["users"] == {"Bob": {"max_open_positions": 2}}

        await set_limits(a, "global", None, max_open_positions=None)  # nothing restricted: both let go
        await set_limits(a, "user", "Bob", max_open_positions=None)
        free = await order(b, "S1", "INFY", "BUY")
        assert (applied(free), free["risk_fingerprint"]) == (["Ann", "Bob"], None)


async def test_an_idle_gateway_shows_a_policy_another_one_set_within_a_second(
    home: Path, clock: ManualClock, database: str
) -> None:
    async with two_gateways(home, clock, database) as ((a, _), (b, _)):
        await set_limits(a, "strategy", "S2", cooldown_seconds=30)
        session = {"timezone": "Asia/Kolkata", "open": "09:15", "close": "15:30"}
        assert (await a.put("/v1/risk/session", json=session)).status_code == 200
        for _ in range(40):
            shown = (await b.get("/v1/risk/limits")).json()
            if shown["session"] is not None and shown["strategies"]:
                break
            await asyncio.sleep(0.05)
        assert shown["strategies"] == {"S2": {"cooldown_seconds": 30}}
        assert shown["session"]["open"] == "09:15"


async def test_max_opens_per_day_counts_the_positions_opened_through_both_gateways(
    home: Path, clock: ManualClock, database: str
) -> None:
    async with two_gateways(home, clock, database) as ((a, _), (b, _)):
        await set_limits(a, "global", None, max_opens_per_day=2)
        assert applied(await order(a, "S1", "ACC", "BUY")) == ["Ann", "Bob"]
        assert applied(await order(b, "S1", "ACC", "SELL")) == ["Ann", "Bob"]
        assert applied(await order(b, "S1", "TCS", "BUY")) == ["Ann", "Bob"]  # the second of the day
        third = await order(a, "S1", "INFY", "BUY")  # a caught up on what b opened
        assert (third["reason"], refusals(third)) == ("DAILY_LIMIT", {"Ann": "DAILY_LIMIT", "Bob": "DAILY_LIMIT"})
        assert (await order(b, "S2", "WIPRO", "BUY"))["reason"] == "DAILY_LIMIT"
        clock.at = clock.at.replace(hour=19)  # 00:30 the next day in Kolkata
        assert applied(await order(b, "S1", "INFY", "BUY")) == ["Ann", "Bob"]
        assert applied(await order(a, "S2", "WIPRO", "BUY")) == ["Ann"]
        last = await order(b, "S1", "ACC", "BUY")  # Ann opened two today (through both), Bob one
        assert (applied(last), refusals(last)) == (["Bob"], {"Ann": "DAILY_LIMIT"})


async def test_a_rate_limit_counts_the_orders_of_both_gateways(home: Path, clock: ManualClock, database: str) -> None:
    async with two_gateways(home, clock, database) as ((a, _), (b, _)):
        await set_limits(b, "global", None, max_orders_per_minute=3)
        await order(a, "S1", "ACC", "BUY")
        await order(b, "S1", "TCS", "BUY")
        await order(a, "S9", "ACC", "BUY")
        assert (await order(b, "S1", "INFY", "BUY"))["reason"] == "RATE_LIMIT"
        assert (await order(a, "S1", "INFY", "BUY"))["reason"] == "RATE_LIMIT"
        clock.advance(61)
        assert (await order(a, "S1", "INFY", "BUY"))["status"] == "ACCEPTED"


async def test_limits_let_go_and_set_again_count_what_both_gateways_did_meanwhile(
    home: Path, clock: ManualClock, database: str
) -> None:
    async with two_gateways(home, clock, database) as ((a, _), (b, _)):
        await set_limits(a, "global", None, max_open_positions=3)
        assert applied(await order(a, "S1", "ACC", "BUY")) == ["Ann", "Bob"]
        assert applied(await order(b, "S1", "TCS", "BUY")) == ["Ann", "Bob"]
        await set_limits(b, "global", None, max_open_positions=None)  # b lets its state go; a keeps its own
        assert applied(await order(b, "S1", "INFY", "BUY")) == ["Ann", "Bob"]
        assert applied(await order(b, "S2", "WIPRO", "BUY")) == ["Ann"]  # Ann holds 4 now
        assert applied(await order(b, "S1", "ACC", "SELL")) == ["Ann", "Bob"]
        await set_limits(b, "global", None, max_open_positions=3)
        held = await order(a, "S2", "ACC", "BUY")  # a catches up on what b did without limits
        assert (held["reason"], refusals(held)) == ("POSITION_LIMIT", {"Ann": "POSITION_LIMIT"})
        bob = await order(b, "S1", "ACC", "BUY")  # b rebuilt its state: Bob holds 2, Ann 3
        assert (applied(bob), refusals(bob)) == (["Bob"], {"Ann": "POSITION_LIMIT"})


async def test_concurrent_buys_through_both_gateways_never_exceed_the_limit(
    home: Path, clock: ManualClock, database: str
) -> None:
    instruments = ["ACC", "TCS", "INFY"]
    async with two_gateways(home, clock, database) as ((a, _), (b, _)):
        await set_limits(a, "user", "Ann", max_open_positions=1)
        await set_limits(a, "user", "Bob", max_open_positions=2)
        sent = [(a if n % 2 else b, instruments[n % 3]) for n in range(24)]
        answers = await asyncio.gather(*(order(http, "S1", instrument, "BUY") for http, instrument in sent))
        opened = {user: sum(user in applied(answer) for answer in answers) for user in ("Ann", "Bob")}
        assert opened == {"Ann": 1, "Bob": 2}
        positions = (await b.get("/v1/positions", params={"limit": 100})).json()["items"]
        assert sorted(p["user"] for p in positions) == ["Ann", "Bob", "Bob"]


async def test_limits_stay_exact_when_connections_break_under_load_through_both_gateways(
    home: Path, clock: ManualClock, database: str
) -> None:
    """Broken connections fail groups (or leave them in doubt): each process drops its risk state and
    rebuilds it; ``verify`` then finds every stored decision to be the one the limits give."""
    choices = [("S1", "ACC"), ("S1", "TCS"), ("S1", "INFY"), ("S2", "ACC"), ("S2", "WIPRO")]
    answered: list[dict[str, Any]] = []
    statuses: set[int] = set()
    done = asyncio.Event()
    async with two_gateways(home, clock, database) as ((a, _), (b, _)):
        await set_limits(a, "global", None, max_open_positions=2)

        async def work(worker: int) -> None:
            rng = random.Random(worker)
            while not done.is_set():
                strategy, instrument = rng.choice(choices)
                body = {"strategy": strategy, "instrument": instrument, "side": rng.choice(["BUY", "BUY", "SELL"])}
                response = await rng.choice([a, b]).post("/v1/orders", json=body)
                statuses.add(response.status_code)
                if response.status_code == 201:
                    answered.append(response.json())
                else:
                    await asyncio.sleep(0.02)

        load = asyncio.gather(*(work(n) for n in range(8)))
        for target in (60, 160, 260):
            while len(answered) < target:
                await asyncio.sleep(0.01)
            kill_connections(database)
        while len(answered) < 360:
            await asyncio.sleep(0.01)
        done.set()
        await load
        positions = (await a.get("/v1/positions", params={"limit": 100})).json()["items"]
    assert statuses <= {201, 503}
    held = Counter(p["user"] for p in positions)
    assert max(held.values(), default=0) <= 2
    assert any(answer["reason"] == "POSITION_LIMIT" for answer in answered)


async def test_the_breaker_trips_once_across_both_gateways_in_the_order_that_trips_it(
    home: Path, clock: ManualClock, database: str
) -> None:
    async with two_gateways(home, clock, database) as ((a, _), (b, _)):
        await set_limits(a, "strategy", "S1", breaker={"max_rejects": 4, "window_seconds": 60})
        sent = [a, b, a, b, a, b]
        answers = await asyncio.gather(*(order(http, "S1", f"X{n}", "SELL") for n, http in enumerate(sent)))
        assert {answer["reason"] for answer in answers} == {"NO_OPEN_POSITION"}  # (a halt holds back no SELL
        rejected = sorted(answer["order_id"] for answer in answers)  # that applies to nobody anyway)
        for http in (a, b):
            for _ in range(30):  # the other gateway reads the halt with its next group or idle read
                controls = (await http.get("/v1/controls")).json()
                if controls["strategies"]:
                    break
                await asyncio.sleep(0.1)
            assert controls["strategies"] == {"S1": "HALTED"}
            trips = [c for c in controls["changes"] if c["reason"] == "BREAKER"]
            assert [(c["by"], c["order_id"]) for c in trips] == [("risk", rejected[3])]  # the 4th, counted across
        halted = await order(b, "S1", "ACC", "BUY")
        assert (halted["reason"], refusals(halted)) == ("HALTED", {"Ann": "HALTED", "Bob": "HALTED"})
        assert (await order(a, "S2", "ACC", "BUY"))["status"] == "ACCEPTED"
        await a.put("/v1/controls", json={"level": "strategy", "target": "S1", "state": "ACTIVE"})
        assert (await order(b, "S1", "TCS", "BUY"))["status"] == "ACCEPTED"  # a fresh window, in both


async def test_a_breaker_halt_survives_a_restart_and_counts_nothing_twice_on_postgresql(
    home: Path, clock: ManualClock, database: str
) -> None:
    async with running_gateway(home, clock=clock, db=database) as (http, _):
        await set_limits(http, "strategy", "S1", breaker={"max_rejects": 2, "window_seconds": 60})
        await order(http, "S1", "ACC", "SELL")
        await order(http, "S1", "ACC", "SELL")
        assert (await http.get("/v1/controls")).json()["strategies"] == {"S1": "HALTED"}
        await http.put("/v1/controls", json={"level": "strategy", "target": "S1", "state": "ACTIVE"})
    async with running_gateway(home, clock=clock, db=database) as (http, _):  # rebuilt from the log: the trip
        await order(http, "S1", "ACC", "SELL")  # emptied the window, so one more rejection does not trip
        assert (await http.get("/v1/controls")).json()["strategies"] == {}
        await order(http, "S1", "ACC", "SELL")
        assert (await http.get("/v1/controls")).json()["strategies"] == {"S1": "HALTED"}
    assert_log_verifies(database)


async def test_a_kill_switch_through_one_gateway_closes_what_both_opened_and_halts_both(
    home: Path, clock: ManualClock, database: str
) -> None:
    async with two_gateways(home, clock, database) as ((a, _), (b, _)):
        await order(a, "S1", "ACC", "BUY")
        await order(b, "S2", "WIPRO", "BUY")
        await order(b, "S1", "TCS", "BUY")
        kill = await a.post("/v1/controls/flatten", json={"level": "global", "then": "HALTED"})
        assert kill.status_code == 200, kill.text
        closed = kill.json()
        assert [(o["instrument"], applied(o), o["origin"]) for o in closed["orders"]] == [
            ("ACC", ["Ann", "Bob"], "flatten"),
            ("TCS", ["Ann", "Bob"], "flatten"),
            ("WIPRO", ["Ann"], "flatten"),
        ]
        assert closed["controls"]["global"] == "HALTED"
        assert closed["controls"]["changes"][-1]["order_id"] == closed["orders"][-1]["order_id"]
        assert (await b.get("/v1/positions")).json()["items"] == []
        assert (await order(b, "S1", "INFY", "BUY"))["reason"] == "HALTED"  # b's next group reads the halt
        assert (await b.post("/v1/controls/flatten", json={"level": "global"})).json()["orders"] == []


async def test_flatten_on_postgresql_keeps_limits_counting_and_the_chain_intact(
    home: Path, clock: ManualClock, database: str
) -> None:
    async with two_gateways(home, clock, database) as ((a, _), (b, _)):
        await set_limits(a, "global", None, cooldown_seconds=300)
        await order(a, "S1", "ACC", "BUY")
        await order(b, "S1", "ACC", "SELL")
        await order(b, "S1", "TCS", "BUY")
        user = (await b.post("/v1/controls/flatten", json={"level": "user", "target": "Bob"})).json()
        assert [(o["instrument"], applied(o)) for o in user["orders"]] == [("TCS", ["Bob"])]
        assert user["orders"][0]["risk_fingerprint"] is not None
        clock.advance(10)
        reopen = await order(a, "S1", "TCS", "BUY")  # a counts b's flatten: Bob closed TCS 10 s ago
        assert (reopen["reason"], refusals(reopen)["Bob"]) == ("COOLDOWN", "COOLDOWN")  # (Ann holds TCS still)


async def test_the_square_off_runs_once_although_both_gateways_look_every_second(
    home: Path, clock: ManualClock, database: str
) -> None:
    async with two_gateways(home, clock, database) as ((a, _), (b, _)):
        assert (await a.put("/v1/risk/session", json=on_sqlite.SESSION)).status_code == 200
        await order(a, "S1", "ACC", "BUY")
        await order(b, "S2", "WIPRO", "BUY")
        clock.at = on_sqlite.AT_1516_IST
        for _ in range(100):
            if not (await a.get("/v1/positions")).json()["items"]:
                break
            await asyncio.sleep(0.05)
        await asyncio.sleep(2.5)  # both have looked again since
        orders = (await b.get("/v1/orders")).json()["items"]
        squared = [(o["instrument"], applied(o)) for o in orders if o["origin"] == "square_off"]
        assert squared == [("ACC", ["Ann", "Bob"]), ("WIPRO", ["Ann"])]
        marks = [c for c in (await b.get("/v1/risk/limits")).json()["changes"] if c["kind"] == "square_off"]
        assert [c["change"]["day"] for c in marks] == ["2026-12-02"]
    clock.at = datetime(2026, 12, 3, 3, 0, tzinfo=UTC)  # the next morning: a square-off missed while down
    async with running_gateway(home, clock=clock, db=database) as (http, _):
        await order(http, "S1", "TCS", "BUY")  # before 09:15: MARKET_CLOSED, nothing to close
        marks = [c for c in (await http.get("/v1/risk/limits")).json()["changes"] if c["kind"] == "square_off"]
        assert [c["change"]["day"] for c in marks] == ["2026-12-02"]  # yesterday's was done: nothing again
