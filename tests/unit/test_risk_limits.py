"""Pre-trade risk (SPEC section 10) through ``decide()``: each limit at each level, the precedence of the
refusals, the circuit breaker, and the values that carry a policy (limits, fingerprints, signal times).

Orders go through a small desk that does what the gateway does with each decision: apply it to the book,
fold it into the risk state, and halt a strategy whose breaker trips (the trip clearing its window).
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import UTC, datetime, time

import orjson
import pytest

from ordergate.domain.book import Book, Position
from ordergate.domain.controls import ControlLevel, Controls, ControlSetting, ControlState
from ordergate.domain.model import Action, Decision, Effect, Order, Origin, Reason, Refusal, Scope, Side, Status
from ordergate.domain.registry import Registry
from ordergate.domain.risk import (
    NO_RISK,
    Breaker,
    LimitSet,
    RiskContext,
    RiskError,
    RiskLevel,
    RiskPolicy,
    RiskState,
    TradingSession,
    breaker_trips,
    parse_signal_time,
)
from ordergate.domain.rules import decide

BASE = datetime(2026, 12, 2, 4, 0, tzinfo=UTC).timestamp()
"""Wednesday 2 December 2026, 09:30 in Asia/Kolkata: inside the default session, far from midnight."""
IST_MIDNIGHT = datetime(2026, 12, 2, 18, 30, tzinfo=UTC).timestamp()
"""Thursday 3 December 2026 begins in Asia/Kolkata."""

PROFILES: dict[str, dict[str, list[str]]] = {
    "Ann": {"S1": ["ACC", "TCS", "INFY", "L&T"], "S2": ["ACC", "TCS", "INFY", "L&T"]},
    "Bob": {"S1": ["ACC", "TCS", "INFY", "L&T"]},
}
BUY, SELL = Side.BUY, Side.SELL
MAX_DAY = 86_400


def stamp(at: float) -> str:
    return datetime.fromtimestamp(at, UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def policy_of(
    gateway: Mapping[str, object] | None = None,
    strategies: Mapping[str, Mapping[str, object]] | None = None,
    users: Mapping[str, Mapping[str, object]] | None = None,
    session: TradingSession | None = None,
) -> RiskPolicy:
    """A policy built the way an admin builds one: one ``PUT /v1/risk/limits`` per level and target."""
    policy = NO_RISK.with_session(session)
    if gateway:
        policy = policy.with_limits(RiskLevel.GLOBAL, None, gateway)
    for strategy, patch in (strategies or {}).items():
        policy = policy.with_limits(RiskLevel.STRATEGY, strategy, patch)
    for user, patch in (users or {}).items():
        policy = policy.with_limits(RiskLevel.USER, user, patch)
    return policy


class Desk:
    """A gateway in miniature: every order decided under ``policy`` at its time, then applied and folded."""

    def __init__(
        self,
        policy: RiskPolicy,
        profiles: Mapping[str, Mapping[str, list[str]]] = PROFILES,
        scope: Scope = Scope.ACCOUNT,
        controls: Controls | None = None,
        positions: list[Position] | None = None,
    ) -> None:
        self.registry = Registry.from_document(dict(profiles))
        self.book = Book(scope, positions or [])
        self.state = RiskState.of_book(self.book)
        self.policy = policy
        self.controls = controls or Controls()
        self.next_id = 1
        self.tripped: list[str] = []

    def send(
        self,
        strategy: str,
        instrument: str,
        side: Side,
        at: float,
        signal_at: float | None = None,
        origin: Origin = Origin.STRATEGY,
    ) -> Decision:
        order = Order(strategy, instrument, side)
        risk = RiskContext(self.policy, self.state, at, signal_at, origin)
        controls = self.controls if self.controls.restricts_anything else None
        decision = decide(order, self.registry, self.book, controls, risk)
        self.book.apply(order, decision.applied, self.next_id, stamp(at))
        folded = self.state.record(order, decision.status, decision.reason, decision.applied, at, origin)
        if breaker_trips(order, decision.status, decision.reason, risk):
            self.state.trip(folded, strategy)
            self.control(ControlLevel.STRATEGY, strategy, ControlState.HALTED)
            self.tripped.append(strategy)
        self.next_id += 1
        return decision

    def control(self, level: ControlLevel, target: str | None, state: ControlState) -> None:
        self.controls = self.controls.with_setting(ControlSetting(level, target, state))


def outcome(decision: Decision) -> tuple[Status, Reason | None, set[str], set[Refusal]]:
    return decision.status, decision.reason, {e.user for e in decision.applied}, set(decision.rejected_for)


def whole_order_refused(reason: Reason) -> tuple[Status, Reason, set[str], set[Refusal]]:
    return Status.REJECTED, reason, set(), set()


# -- max_open_positions ---------------------------------------------------------------------------


def test_global_max_open_positions_refuses_the_buy_that_would_exceed_it_for_that_user_only() -> None:
    desk = Desk(policy_of({"max_open_positions": 2}))
    desk.send("S2", "ACC", BUY, BASE)  # Ann only
    desk.send("S2", "TCS", BUY, BASE + 1)  # Ann holds 2 now
    decision = desk.send("S1", "INFY", BUY, BASE + 2)
    assert outcome(decision) == (Status.ACCEPTED, None, {"Bob"}, {Refusal("Ann", Reason.POSITION_LIMIT)})


def test_positions_held_before_the_policy_count_toward_max_open_positions() -> None:
    held = [Position("Ann", "S1", "ACC", 1, "t"), Position("Ann", "S2", "TCS", 2, "t")]
    desk = Desk(policy_of({"max_open_positions": 2}), positions=held)
    assert outcome(desk.send("S1", "INFY", BUY, BASE)) == (
        Status.ACCEPTED,
        None,
        {"Bob"},
        {Refusal("Ann", Reason.POSITION_LIMIT)},
    )


def test_closing_a_position_frees_a_slot_under_max_open_positions() -> None:
    desk = Desk(policy_of({"max_open_positions": 1}))
    desk.send("S2", "ACC", BUY, BASE)
    assert desk.send("S2", "TCS", BUY, BASE + 1).reason is Reason.POSITION_LIMIT
    desk.send("S2", "ACC", SELL, BASE + 2)
    assert desk.send("S2", "TCS", BUY, BASE + 3).is_accepted


def test_a_users_own_max_open_positions_replaces_the_global_one_either_way() -> None:
    desk = Desk(policy_of({"max_open_positions": 1}, users={"Ann": {"max_open_positions": 3}, "Bob": {}}))
    for n, instrument in enumerate(["ACC", "TCS", "INFY"]):
        assert outcome(desk.send("S2", instrument, BUY, BASE + n)) == (Status.ACCEPTED, None, {"Ann"}, set())
    assert desk.send("S2", "L&T", BUY, BASE + 3).reason is Reason.POSITION_LIMIT
    # Bob has no value of his own: the global 1 holds for him
    desk.send("S1", "ACC", BUY, BASE + 4)  # Ann holds ACC already; Bob opens
    assert desk.send("S1", "TCS", BUY, BASE + 5).rejected_for == (
        Refusal("Ann", Reason.ALREADY_HOLDING),
        Refusal("Bob", Reason.POSITION_LIMIT),
    )

    stricter = Desk(policy_of({"max_open_positions": 5}, users={"Ann": {"max_open_positions": 1}}))
    stricter.send("S2", "ACC", BUY, BASE)
    assert stricter.send("S2", "TCS", BUY, BASE + 1).reason is Reason.POSITION_LIMIT


@pytest.mark.parametrize("scope", list(Scope))
def test_a_strategys_max_open_positions_counts_only_the_positions_it_opened(scope: Scope) -> None:
    desk = Desk(policy_of(strategies={"S1": {"max_open_positions": 1}}), scope=scope)
    desk.send("S2", "ACC", BUY, BASE)
    desk.send("S2", "TCS", BUY, BASE + 1)
    assert outcome(desk.send("S1", "INFY", BUY, BASE + 2)) == (Status.ACCEPTED, None, {"Ann", "Bob"}, set())
    assert outcome(desk.send("S1", "L&T", BUY, BASE + 3)) == (
        Status.REJECTED,
        Reason.POSITION_LIMIT,
        set(),
        {Refusal("Ann", Reason.POSITION_LIMIT), Refusal("Bob", Reason.POSITION_LIMIT)},
    )
    # S2 has no limit of its own, and none is global: S1's positions do not stop it
    assert desk.send("S2", "L&T", BUY, BASE + 4).is_accepted


def test_a_position_opened_by_one_strategy_and_closed_by_another_frees_the_openers_slot_in_account_scope() -> None:
    desk = Desk(policy_of(strategies={"S1": {"max_open_positions": 1}}))
    desk.send("S1", "ACC", BUY, BASE)
    assert desk.send("S1", "TCS", BUY, BASE + 1).reason is Reason.POSITION_LIMIT
    closed = desk.send("S2", "ACC", SELL, BASE + 2)  # account scope: S2 closes Ann's ACC, opened by S1
    assert closed.applied == (Effect("Ann", Action.CLOSED, "S1"),)
    assert outcome(desk.send("S1", "TCS", BUY, BASE + 3)) == (
        Status.ACCEPTED,
        None,
        {"Ann"},
        {Refusal("Bob", Reason.POSITION_LIMIT)},
    )


def test_a_strategys_limit_holds_beside_the_users_and_the_stricter_refuses() -> None:
    strategy_stricter = Desk(
        policy_of({"max_open_positions": 10}, {"S2": {"max_open_positions": 1}}, {"Ann": {"max_open_positions": 10}})
    )
    strategy_stricter.send("S2", "ACC", BUY, BASE)
    assert strategy_stricter.send("S2", "TCS", BUY, BASE + 1).reason is Reason.POSITION_LIMIT

    user_stricter = Desk(
        policy_of(strategies={"S2": {"max_open_positions": 10}}, users={"Ann": {"max_open_positions": 1}})
    )
    user_stricter.send("S2", "ACC", BUY, BASE)
    assert user_stricter.send("S2", "TCS", BUY, BASE + 1).reason is Reason.POSITION_LIMIT


def test_max_open_positions_zero_lets_no_buy_through_and_every_sell_through() -> None:
    held = [Position("Ann", "S1", "ACC", 1, "t")]
    desk = Desk(policy_of({"max_open_positions": 0}), positions=held)
    assert desk.send("S1", "TCS", BUY, BASE).reason is Reason.POSITION_LIMIT
    assert outcome(desk.send("S1", "ACC", SELL, BASE + 1)) == (
        Status.ACCEPTED,
        None,
        {"Ann"},
        {Refusal("Bob", Reason.NO_OPEN_POSITION)},
    )


def test_the_rules_come_before_the_limits_a_holder_is_already_holding_not_limited() -> None:
    desk = Desk(policy_of({"max_open_positions": 1}))
    desk.send("S2", "ACC", BUY, BASE)
    assert outcome(desk.send("S1", "ACC", BUY, BASE + 1)) == (
        Status.ACCEPTED,
        None,
        {"Bob"},
        {Refusal("Ann", Reason.ALREADY_HOLDING)},
    )


# -- max_opens_per_day ----------------------------------------------------------------------------


def test_max_opens_per_day_counts_opens_not_open_positions() -> None:
    desk = Desk(policy_of({"max_opens_per_day": 2}))
    desk.send("S2", "ACC", BUY, BASE)
    desk.send("S2", "ACC", SELL, BASE + 1)
    desk.send("S2", "ACC", BUY, BASE + 2)
    desk.send("S2", "ACC", SELL, BASE + 3)
    assert outcome(desk.send("S2", "ACC", BUY, BASE + 4)) == (
        Status.REJECTED,
        Reason.DAILY_LIMIT,
        set(),
        {Refusal("Ann", Reason.DAILY_LIMIT)},
    )


def test_the_trading_day_is_the_calendar_day_in_asia_kolkata_without_a_session() -> None:
    desk = Desk(policy_of({"max_opens_per_day": 1}))
    desk.send("S2", "ACC", BUY, IST_MIDNIGHT - 1)  # 23:59:59 IST on the Wednesday
    assert desk.send("S2", "TCS", BUY, IST_MIDNIGHT - 0.5).reason is Reason.DAILY_LIMIT
    assert desk.send("S2", "TCS", BUY, IST_MIDNIGHT).is_accepted  # 00:00 IST on the Thursday


def test_the_trading_day_follows_the_sessions_time_zone() -> None:
    around_the_clock = TradingSession("Europe/London", open=time(0, 0), close=time(0, 0), days=("WED", "THU"))
    london_midnight = datetime(2026, 12, 3, 0, 0, tzinfo=UTC).timestamp()  # London is on UTC in December
    desk = Desk(policy_of({"max_opens_per_day": 1}, session=around_the_clock))
    desk.send("S2", "ACC", BUY, IST_MIDNIGHT - 60)
    # a new day in Asia/Kolkata, still Wednesday in London
    assert desk.send("S2", "TCS", BUY, IST_MIDNIGHT + 60).reason is Reason.DAILY_LIMIT
    assert desk.send("S2", "TCS", BUY, london_midnight).is_accepted


def test_a_users_own_max_opens_per_day_replaces_the_global_one() -> None:
    desk = Desk(policy_of({"max_opens_per_day": 1}, users={"Ann": {"max_opens_per_day": 2}}))
    assert desk.send("S1", "ACC", BUY, BASE).applied == (
        Effect("Ann", Action.OPENED, "S1"),
        Effect("Bob", Action.OPENED, "S1"),
    )
    assert outcome(desk.send("S1", "TCS", BUY, BASE + 1)) == (
        Status.ACCEPTED,
        None,
        {"Ann"},
        {Refusal("Bob", Reason.DAILY_LIMIT)},
    )
    assert desk.send("S1", "INFY", BUY, BASE + 2).reason is Reason.DAILY_LIMIT


@pytest.mark.parametrize("scope", list(Scope))
def test_a_strategys_max_opens_per_day_counts_only_the_opens_through_it(scope: Scope) -> None:
    desk = Desk(policy_of(strategies={"S1": {"max_opens_per_day": 1}}), scope=scope)
    desk.send("S2", "ACC", BUY, BASE)
    desk.send("S2", "TCS", BUY, BASE + 1)
    assert outcome(desk.send("S1", "INFY", BUY, BASE + 2)) == (Status.ACCEPTED, None, {"Ann", "Bob"}, set())
    desk.send("S1", "INFY", SELL, BASE + 3)
    assert desk.send("S1", "L&T", BUY, BASE + 4).reason is Reason.DAILY_LIMIT
    assert desk.send("S2", "L&T", BUY, BASE + 5).is_accepted
    assert Effect("Bob", Action.OPENED, "S1") in desk.send("S1", "L&T", BUY, IST_MIDNIGHT).applied  # a new day


# -- cooldown_seconds -----------------------------------------------------------------------------


def test_cooldown_refuses_a_reopen_until_exactly_cooldown_seconds_after_the_close() -> None:
    desk = Desk(policy_of({"cooldown_seconds": 300}))
    desk.send("S2", "ACC", BUY, BASE)
    desk.send("S2", "ACC", SELL, BASE + 10)
    assert outcome(desk.send("S2", "ACC", BUY, BASE + 309.999)) == (
        Status.REJECTED,
        Reason.COOLDOWN,
        set(),
        {Refusal("Ann", Reason.COOLDOWN)},
    )
    assert desk.send("S2", "TCS", BUY, BASE + 309.999).is_accepted  # another instrument: no cooldown
    assert desk.send("S2", "ACC", BUY, BASE + 310).is_accepted


def test_cooldown_is_the_most_specific_value_user_over_strategy_over_global() -> None:
    policy = policy_of({"cooldown_seconds": 1000}, {"S1": {"cooldown_seconds": 100}}, {"Ann": {"cooldown_seconds": 10}})
    desk = Desk(policy)
    desk.send("S1", "ACC", BUY, BASE)
    desk.send("S1", "ACC", SELL, BASE + 1)
    # at +50: Ann's own 10 s are over; Bob has only S1's 100 s
    assert outcome(desk.send("S1", "ACC", BUY, BASE + 51)) == (
        Status.ACCEPTED,
        None,
        {"Ann"},
        {Refusal("Bob", Reason.COOLDOWN)},
    )
    desk.send("S1", "ACC", SELL, BASE + 52)  # closes Ann's again
    # S2 has no cooldown of its own: Ann's 10 s still win over the global 1000
    assert desk.send("S2", "ACC", BUY, BASE + 62).is_accepted
    desk.send("S1", "ACC", BUY, BASE + 101)  # Bob reopens: S1's 100 s are over
    desk.send("S1", "ACC", SELL, BASE + 102)  # closes both (account scope)
    without_own = policy_of({"cooldown_seconds": 1000}, {"S1": {"cooldown_seconds": 100}})
    desk.policy = without_own
    # Ann's own value gone: through S2 the global 1000 s count for her
    assert desk.send("S2", "ACC", BUY, BASE + 500).reason is Reason.COOLDOWN


def test_cooldown_follows_the_user_and_instrument_across_strategies_in_strategy_scope() -> None:
    desk = Desk(policy_of({"cooldown_seconds": 60}), scope=Scope.STRATEGY)
    desk.send("S1", "ACC", BUY, BASE)
    desk.send("S1", "ACC", SELL, BASE + 1)
    assert outcome(desk.send("S2", "ACC", BUY, BASE + 2)) == (
        Status.REJECTED,
        Reason.COOLDOWN,
        set(),
        {Refusal("Ann", Reason.COOLDOWN)},
    )


def test_an_instrument_never_closed_has_no_cooldown() -> None:
    desk = Desk(policy_of({"cooldown_seconds": MAX_DAY}))
    assert desk.send("S1", "ACC", BUY, BASE).is_accepted


# -- max_orders_per_minute ------------------------------------------------------------------------


def test_rate_limit_refuses_the_whole_order_and_the_refused_order_still_counts() -> None:
    desk = Desk(policy_of({"max_orders_per_minute": 2}))
    assert desk.send("S1", "ACC", BUY, BASE).is_accepted
    assert desk.send("S1", "ACC", SELL, BASE + 30).is_accepted
    assert outcome(desk.send("S1", "TCS", BUY, BASE + 40)) == whole_order_refused(Reason.RATE_LIMIT)
    # (BASE, BASE + 60]: the orders at +30 and +40 (refused, but received)
    assert outcome(desk.send("S1", "TCS", BUY, BASE + 60)) == whole_order_refused(Reason.RATE_LIMIT)
    # (BASE + 40, BASE + 100]: the order at +60 only
    assert desk.send("S1", "TCS", BUY, BASE + 100).is_accepted


def test_an_order_exactly_sixty_seconds_before_no_longer_counts() -> None:
    desk = Desk(policy_of({"max_orders_per_minute": 1}))
    assert desk.send("S1", "ACC", BUY, BASE).is_accepted
    assert desk.send("S1", "TCS", BUY, BASE + 59.999).reason is Reason.RATE_LIMIT
    assert desk.send("S1", "TCS", BUY, BASE + 60).reason is Reason.RATE_LIMIT  # the refused one at +59.999
    assert desk.send("S1", "TCS", BUY, BASE + 120).is_accepted  # the one at +60 is exactly 60 s before

    spaced = Desk(policy_of({"max_orders_per_minute": 1}))
    assert all(spaced.send("S1", "ACC", side, BASE + 60 * n).is_accepted for n, side in enumerate([BUY, SELL] * 3))


def test_orders_at_the_same_instant_all_count() -> None:
    desk = Desk(policy_of({"max_orders_per_minute": 2}))
    assert desk.send("S1", "ACC", BUY, BASE).is_accepted
    assert desk.send("S1", "TCS", BUY, BASE).is_accepted
    assert desk.send("S1", "INFY", BUY, BASE).reason is Reason.RATE_LIMIT


def test_the_global_rate_counts_every_strategys_orders_even_rejected_and_unknown_ones() -> None:
    desk = Desk(policy_of({"max_orders_per_minute": 2}))
    assert desk.send("S9", "ACC", BUY, BASE).reason is Reason.UNKNOWN_STRATEGY
    assert desk.send("S2", "ACC", SELL, BASE + 1).reason is Reason.NO_OPEN_POSITION
    assert outcome(desk.send("S1", "ACC", BUY, BASE + 2)) == whole_order_refused(Reason.RATE_LIMIT)


def test_a_strategys_rate_counts_only_its_own_orders() -> None:
    desk = Desk(policy_of(strategies={"S1": {"max_orders_per_minute": 1}}))
    assert desk.send("S2", "ACC", BUY, BASE).is_accepted
    assert desk.send("S2", "TCS", BUY, BASE + 1).is_accepted
    assert desk.send("S1", "INFY", BUY, BASE + 2).is_accepted
    assert desk.send("S1", "L&T", BUY, BASE + 3).reason is Reason.RATE_LIMIT
    assert desk.send("S2", "L&T", BUY, BASE + 4).is_accepted  # S2 has no rate of its own


def test_the_global_and_the_strategy_rate_both_hold() -> None:
    desk = Desk(policy_of({"max_orders_per_minute": 3}, {"S1": {"max_orders_per_minute": 5}}))
    for n in range(3):
        desk.send("S2", "ACC", BUY if n % 2 == 0 else SELL, BASE + n)
    assert desk.send("S1", "ACC", BUY, BASE + 3).reason is Reason.RATE_LIMIT

    strategy_stricter = Desk(policy_of({"max_orders_per_minute": 5}, {"S1": {"max_orders_per_minute": 1}}))
    assert strategy_stricter.send("S1", "ACC", BUY, BASE).is_accepted
    assert strategy_stricter.send("S1", "ACC", SELL, BASE + 1).reason is Reason.RATE_LIMIT


def test_rate_limit_precedes_the_rules_a_strategy_nobody_subscribes_to_is_rate_limited() -> None:
    desk = Desk(policy_of({"max_orders_per_minute": 0}))
    assert outcome(desk.send("S9", "ACC", BUY, BASE)) == whole_order_refused(Reason.RATE_LIMIT)


# -- max_signal_age_seconds and signals from the future --------------------------------------------


def test_a_signal_older_than_max_signal_age_is_stale_and_one_exactly_that_old_is_not() -> None:
    desk = Desk(policy_of({"max_signal_age_seconds": 10}))
    assert outcome(desk.send("S1", "ACC", BUY, BASE, signal_at=BASE - 10.001)) == whole_order_refused(
        Reason.STALE_SIGNAL
    )
    assert desk.send("S1", "ACC", BUY, BASE + 1, signal_at=BASE - 9).is_accepted
    assert desk.send("S1", "TCS", BUY, BASE + 2).is_accepted  # no signal_time: nothing to be stale


def test_a_strategys_max_signal_age_wins_over_the_global_one() -> None:
    desk = Desk(policy_of({"max_signal_age_seconds": 100}, {"S1": {"max_signal_age_seconds": 5}}))
    assert desk.send("S1", "ACC", BUY, BASE, signal_at=BASE - 6).reason is Reason.STALE_SIGNAL
    assert desk.send("S2", "ACC", BUY, BASE, signal_at=BASE - 6).is_accepted
    assert desk.send("S2", "TCS", BUY, BASE, signal_at=BASE - 101).reason is Reason.STALE_SIGNAL


def test_a_signal_more_than_five_seconds_ahead_is_stale_under_any_policy() -> None:
    desk = Desk(policy_of({"max_open_positions": 100}))  # a policy in force, but no signal age
    assert outcome(desk.send("S1", "ACC", BUY, BASE, signal_at=BASE + 5.001)) == whole_order_refused(
        Reason.STALE_SIGNAL
    )
    assert desk.send("S1", "ACC", BUY, BASE, signal_at=BASE + 5).is_accepted


def test_without_a_risk_context_no_signal_is_checked() -> None:
    registry = Registry.from_document(PROFILES)
    assert decide(Order("S1", "ACC", BUY), registry, Book(Scope.ACCOUNT), None, None).is_accepted


# -- precedence -----------------------------------------------------------------------------------


def test_whole_order_refusals_come_in_the_order_stale_signal_market_closed_rate_limit() -> None:
    closed = TradingSession(days=("SAT",))  # never open on the Wednesday of BASE
    everything = policy_of({"max_orders_per_minute": 0, "max_signal_age_seconds": 1}, session=closed)
    desk = Desk(everything)
    assert outcome(desk.send("S1", "ACC", BUY, BASE, signal_at=BASE - 2)) == whole_order_refused(Reason.STALE_SIGNAL)
    assert outcome(desk.send("S1", "ACC", BUY, BASE, signal_at=BASE)) == whole_order_refused(Reason.MARKET_CLOSED)
    desk.policy = policy_of({"max_orders_per_minute": 0, "max_signal_age_seconds": 1})
    assert outcome(desk.send("S1", "ACC", BUY, BASE, signal_at=BASE)) == whole_order_refused(Reason.RATE_LIMIT)


def test_a_stale_signal_is_refused_before_the_rate_and_the_future_before_the_age() -> None:
    desk = Desk(policy_of({"max_orders_per_minute": 0, "max_signal_age_seconds": 1}))
    assert outcome(desk.send("S1", "ACC", BUY, BASE, signal_at=BASE - 2)) == whole_order_refused(Reason.STALE_SIGNAL)
    assert outcome(desk.send("S1", "ACC", BUY, BASE, signal_at=BASE + 6)) == whole_order_refused(Reason.STALE_SIGNAL)
    assert outcome(desk.send("S1", "ACC", BUY, BASE, signal_at=BASE)) == whole_order_refused(Reason.RATE_LIMIT)


def test_one_users_reason_is_position_limit_over_daily_limit_over_cooldown() -> None:
    desk = Desk(policy_of({"cooldown_seconds": 1000}))
    desk.send("S2", "ACC", BUY, BASE)
    desk.send("S2", "ACC", SELL, BASE + 1)
    desk.send("S2", "TCS", BUY, BASE + 2)
    cooled = desk.send("S2", "ACC", BUY, BASE + 3)
    assert cooled.rejected_for == (Refusal("Ann", Reason.COOLDOWN),)
    desk.policy = policy_of({"cooldown_seconds": 1000, "max_opens_per_day": 2})
    assert desk.send("S2", "ACC", BUY, BASE + 4).rejected_for == (Refusal("Ann", Reason.DAILY_LIMIT),)
    desk.policy = policy_of({"cooldown_seconds": 1000, "max_opens_per_day": 2, "max_open_positions": 1})
    assert desk.send("S2", "ACC", BUY, BASE + 5).rejected_for == (Refusal("Ann", Reason.POSITION_LIMIT),)


def test_an_order_the_limits_hold_back_from_everyone_takes_the_first_reason_among_its_users() -> None:
    policy = policy_of(users={"Ann": {"cooldown_seconds": 1000}, "Bob": {"max_opens_per_day": 1}})
    desk = Desk(policy)
    desk.send("S1", "ACC", BUY, BASE)
    desk.send("S1", "ACC", SELL, BASE + 1)
    decision = desk.send("S1", "ACC", BUY, BASE + 2)
    assert outcome(decision) == (
        Status.REJECTED,
        Reason.DAILY_LIMIT,
        set(),
        {Refusal("Ann", Reason.COOLDOWN), Refusal("Bob", Reason.DAILY_LIMIT)},
    )
    desk.policy = policy_of(users={"Ann": {"max_open_positions": 0}, "Bob": {"max_opens_per_day": 1}})
    assert outcome(desk.send("S1", "ACC", BUY, BASE + 3)) == (
        Status.REJECTED,
        Reason.POSITION_LIMIT,
        set(),
        {Refusal("Ann", Reason.POSITION_LIMIT), Refusal("Bob", Reason.DAILY_LIMIT)},
    )


@pytest.mark.parametrize(
    ("state", "reason"), [(ControlState.HALTED, Reason.HALTED), (ControlState.REDUCE_ONLY, Reason.REDUCE_ONLY)]
)
def test_a_control_comes_before_the_limits_and_names_the_order_held_back_from_everyone(
    state: ControlState, reason: Reason
) -> None:
    desk = Desk(policy_of({"max_open_positions": 0}))
    desk.control(ControlLevel.USER, "Ann", state)
    assert outcome(desk.send("S1", "ACC", BUY, BASE)) == (
        Status.REJECTED,
        reason,
        set(),
        {Refusal("Ann", reason), Refusal("Bob", Reason.POSITION_LIMIT)},
    )


def test_halted_wins_over_reduce_only_and_both_over_the_limits() -> None:
    desk = Desk(policy_of({"max_open_positions": 0}), profiles={**PROFILES, "Cid": {"S1": ["ACC"]}})
    desk.control(ControlLevel.USER, "Ann", ControlState.REDUCE_ONLY)
    desk.control(ControlLevel.USER, "Bob", ControlState.HALTED)
    assert outcome(desk.send("S1", "ACC", BUY, BASE)) == (
        Status.REJECTED,
        Reason.HALTED,
        set(),
        {Refusal("Ann", Reason.REDUCE_ONLY), Refusal("Bob", Reason.HALTED), Refusal("Cid", Reason.POSITION_LIMIT)},
    )


def test_users_a_control_and_a_limit_spare_still_get_the_order() -> None:
    desk = Desk(policy_of(users={"Ann": {"max_open_positions": 0}}), profiles={**PROFILES, "Cid": {"S1": ["ACC"]}})
    desk.control(ControlLevel.USER, "Bob", ControlState.HALTED)
    assert outcome(desk.send("S1", "ACC", BUY, BASE)) == (
        Status.ACCEPTED,
        None,
        {"Cid"},
        {Refusal("Bob", Reason.HALTED), Refusal("Ann", Reason.POSITION_LIMIT)},
    )


def test_limits_hold_back_buys_only() -> None:
    held = [Position("Ann", "S1", "ACC", 1, "t")]
    desk = Desk(
        policy_of({"max_open_positions": 0, "max_opens_per_day": 0, "cooldown_seconds": MAX_DAY}), positions=held
    )
    assert desk.send("S1", "ACC", SELL, BASE).applied == (Effect("Ann", Action.CLOSED, "S1"),)


@pytest.mark.parametrize("origin", [Origin.FLATTEN, Origin.SQUARE_OFF])
def test_the_gateways_own_orders_are_neither_refused_nor_counted(origin: Origin) -> None:
    held = [Position("Ann", "S1", "ACC", 1, "t"), Position("Bob", "S1", "ACC", 1, "t")]
    limits = {"max_orders_per_minute": 0, "max_signal_age_seconds": 0}
    breaker = {"S1": {"breaker": {"max_rejects": 1, "window_seconds": 60}}}
    desk = Desk(policy_of(limits, breaker), positions=held)
    assert desk.send("S1", "ACC", SELL, BASE, signal_at=BASE - 9, origin=origin).applied == (
        Effect("Ann", Action.CLOSED, "S1"),
        Effect("Bob", Action.CLOSED, "S1"),
    )
    assert desk.send("S1", "ACC", SELL, BASE + 1, origin=origin).reason is Reason.NO_OPEN_POSITION
    assert desk.tripped == []  # the rejection of the gateway's own order does not count
    desk.policy = policy_of({"max_orders_per_minute": 1})
    assert desk.send("S1", "ACC", BUY, BASE + 2).is_accepted  # neither of the two counted toward the rate


# -- the circuit breaker --------------------------------------------------------------------------

BREAKER_3_IN_60 = {"breaker": {"max_rejects": 3, "window_seconds": 60}}


def test_the_breaker_trips_when_the_rejections_within_the_window_reach_max_rejects() -> None:
    desk = Desk(policy_of(strategies={"S1": BREAKER_3_IN_60}))
    desk.send("S1", "ACC", SELL, BASE)
    desk.send("S1", "ACC", SELL, BASE + 10)
    assert desk.tripped == []
    desk.send("S1", "ACC", SELL, BASE + 20)
    assert desk.tripped == ["S1"]
    assert outcome(desk.send("S1", "ACC", BUY, BASE + 21)) == (
        Status.REJECTED,
        Reason.HALTED,
        set(),
        {Refusal("Ann", Reason.HALTED), Refusal("Bob", Reason.HALTED)},
    )


def test_a_rejection_exactly_window_seconds_old_no_longer_counts_toward_the_breaker() -> None:
    desk = Desk(policy_of(strategies={"S1": BREAKER_3_IN_60}))
    for offset in (0, 30, 60):  # at +60 the window (0, 60] holds two
        desk.send("S1", "ACC", SELL, BASE + offset)
    assert desk.tripped == []
    desk.send("S1", "ACC", SELL, BASE + 61)
    assert desk.tripped == ["S1"]


def test_rejections_a_control_caused_do_not_count_toward_the_breaker_and_others_all_do() -> None:
    desk = Desk(policy_of(strategies={"S1": {**BREAKER_3_IN_60, "max_orders_per_minute": 2}}))
    desk.control(ControlLevel.USER, "Ann", ControlState.HALTED)
    desk.control(ControlLevel.USER, "Bob", ControlState.REDUCE_ONLY)
    assert desk.send("S1", "ACC", BUY, BASE).reason is Reason.HALTED
    desk.control(ControlLevel.USER, "Ann", ControlState.REDUCE_ONLY)
    assert desk.send("S1", "ACC", BUY, BASE + 1).reason is Reason.REDUCE_ONLY
    assert desk.tripped == []
    assert desk.send("S1", "ACC", SELL, BASE + 2).reason is Reason.RATE_LIMIT
    assert desk.send("S1", "ACC", SELL, BASE + 3).reason is Reason.RATE_LIMIT
    assert desk.tripped == []
    assert desk.send("S1", "ACC", SELL, BASE + 4).reason is Reason.RATE_LIMIT
    assert desk.tripped == ["S1"]


def test_a_global_breaker_is_every_strategys_default_and_a_strategys_own_replaces_it() -> None:
    policy = policy_of({"breaker": {"max_rejects": 1, "window_seconds": 60}}, {"S1": BREAKER_3_IN_60})
    desk = Desk(policy)
    desk.send("S2", "ACC", SELL, BASE)
    assert desk.tripped == ["S2"]
    desk.send("S1", "ACC", SELL, BASE + 1)
    desk.send("S1", "ACC", SELL, BASE + 2)
    assert desk.tripped == ["S2"]
    desk.send("S1", "ACC", SELL, BASE + 3)
    assert desk.tripped == ["S2", "S1"]


def test_a_trip_clears_the_strategys_window_so_an_admin_gives_it_a_full_one() -> None:
    desk = Desk(policy_of(strategies={"S1": BREAKER_3_IN_60}))
    for offset in (0, 1, 2):
        desk.send("S1", "ACC", SELL, BASE + offset)
    assert desk.tripped == ["S1"]
    desk.control(ControlLevel.STRATEGY, "S1", ControlState.ACTIVE)
    desk.send("S1", "ACC", SELL, BASE + 3)
    desk.send("S1", "ACC", SELL, BASE + 4)
    assert desk.tripped == ["S1"]  # the three before the trip are forgotten
    desk.send("S1", "ACC", SELL, BASE + 5)
    assert desk.tripped == ["S1", "S1"]


def test_breaker_trips_is_false_for_an_accepted_order_and_without_a_breaker() -> None:
    state = RiskState()
    order = Order("S1", "ACC", SELL)
    for n in range(3):
        state.record(order, Status.REJECTED, Reason.NO_OPEN_POSITION, (), BASE + n)
    tripping = RiskContext(policy_of(strategies={"S1": BREAKER_3_IN_60}), state, BASE + 2)
    assert breaker_trips(order, Status.REJECTED, Reason.NO_OPEN_POSITION, tripping)
    assert not breaker_trips(order, Status.ACCEPTED, None, tripping)
    assert not breaker_trips(order, Status.REJECTED, Reason.HALTED, tripping)
    assert not breaker_trips(order, Status.REJECTED, Reason.NO_OPEN_POSITION, tripping._replace(origin=Origin.FLATTEN))
    assert not breaker_trips(
        order, Status.REJECTED, Reason.NO_OPEN_POSITION, tripping._replace(policy=policy_of({"max_open_positions": 1}))
    )


def test_trip_forgets_the_strategys_rejections_and_revert_brings_them_back() -> None:
    state = RiskState()
    order = Order("S1", "ACC", SELL)
    state.record(order, Status.REJECTED, Reason.NO_OPEN_POSITION, (), BASE)
    folded = state.record(order, Status.REJECTED, Reason.NO_OPEN_POSITION, (), BASE + 1)
    state.trip(folded, "S1")
    assert "S1" not in state.rejects_by_strategy
    assert not state.rejects_reach("S1", BASE + 1, 60, 1)
    state.revert(folded)
    assert list(state.rejects_by_strategy["S1"]) == [BASE]


# -- LimitSet.patched and the errors that name the field ------------------------------------------


def test_patched_sets_a_value_clears_a_null_and_keeps_what_is_left_out() -> None:
    limits = LimitSet(max_open_positions=3, cooldown_seconds=60, breaker=Breaker(2, 30))
    patched = limits.patched({"max_opens_per_day": 5, "cooldown_seconds": None}, RiskLevel.STRATEGY)
    assert patched == LimitSet(max_open_positions=3, max_opens_per_day=5, breaker=Breaker(2, 30))
    assert patched.patched({}, RiskLevel.STRATEGY) == patched
    assert patched.patched({"breaker": {"max_rejects": 4, "window_seconds": 10}}, RiskLevel.GLOBAL).breaker == Breaker(
        4, 10
    )
    assert LimitSet().patched({"max_open_positions": None}, RiskLevel.USER).is_empty


def test_clearing_an_order_level_limit_at_user_level_is_allowed() -> None:
    assert LimitSet().patched({"max_orders_per_minute": None, "breaker": None}, RiskLevel.USER).is_empty


@pytest.mark.parametrize(
    ("patch", "level", "names"),
    [
        ({"max_positions": 3}, RiskLevel.GLOBAL, "limits.max_positions: not a limit"),
        ({"max_open_positions": True}, RiskLevel.GLOBAL, "limits.max_open_positions: must be an integer"),
        ({"max_opens_per_day": -1}, RiskLevel.USER, "limits.max_opens_per_day: must be an integer from 0"),
        (
            {"cooldown_seconds": 86_401},
            RiskLevel.STRATEGY,
            "limits.cooldown_seconds: must be an integer from 0 to 86400",
        ),
        ({"max_signal_age_seconds": 1.5}, RiskLevel.GLOBAL, "limits.max_signal_age_seconds: must be an integer"),
        ({"max_orders_per_minute": "5"}, RiskLevel.GLOBAL, "limits.max_orders_per_minute: must be an integer"),
        ({"max_open_positions": 1_000_001}, RiskLevel.GLOBAL, "limits.max_open_positions: must be an integer"),
        ({"max_orders_per_minute": 5}, RiskLevel.USER, "limits.max_orders_per_minute: can be set at level"),
        ({"max_signal_age_seconds": 5}, RiskLevel.USER, "limits.max_signal_age_seconds: can be set at level"),
        ({"breaker": {"max_rejects": 1, "window_seconds": 1}}, RiskLevel.USER, "limits.breaker: can be set at level"),
        ({"breaker": 3}, RiskLevel.STRATEGY, "limits.breaker: must be"),
        ({"breaker": {"max_rejects": 3}}, RiskLevel.STRATEGY, "limits.breaker: must be"),
        ({"breaker": {"max_rejects": 3, "window_seconds": 9, "x": 1}}, RiskLevel.STRATEGY, "limits.breaker: must be"),
        ({"breaker": {"max_rejects": 0, "window_seconds": 9}}, RiskLevel.STRATEGY, "limits.breaker.max_rejects:"),
        ({"breaker": {"max_rejects": 2, "window_seconds": 0}}, RiskLevel.STRATEGY, "limits.breaker.window_seconds:"),
        ({"breaker": {"max_rejects": False, "window_seconds": 9}}, RiskLevel.STRATEGY, "limits.breaker.max_rejects:"),
    ],
)
def test_every_limit_error_names_the_field(patch: dict[str, object], level: RiskLevel, names: str) -> None:
    with pytest.raises(RiskError) as raised:
        LimitSet().patched(patch, level)
    assert str(raised.value).startswith(names)


def test_a_user_level_refusal_says_where_the_limit_can_be_set() -> None:
    with pytest.raises(RiskError, match="'global' or 'strategy' only, not 'user'"):
        LimitSet().patched({"max_orders_per_minute": 5}, RiskLevel.USER)


def test_a_bool_is_refused_and_shown_as_given() -> None:
    with pytest.raises(RiskError, match=r"\(got true\)"):
        LimitSet().patched({"max_open_positions": True}, RiskLevel.GLOBAL)


@pytest.mark.parametrize(
    ("level", "target", "names"),
    [
        (RiskLevel.GLOBAL, "S1", "target: must be null for level 'global'"),
        (RiskLevel.STRATEGY, None, "target: level 'strategy' needs the name of a strategy"),
        (RiskLevel.USER, None, "target: level 'user' needs the name of a user"),
        (RiskLevel.USER, " Ann", "target: user name"),
    ],
)
def test_with_limits_names_a_target_that_does_not_fit_the_level(
    level: RiskLevel, target: str | None, names: str
) -> None:
    with pytest.raises(RiskError) as raised:
        NO_RISK.with_limits(level, target, {"max_open_positions": 1})
    assert str(raised.value).startswith(names)


def test_limits_from_document_names_an_unknown_field_and_a_bad_value() -> None:
    with pytest.raises(RiskError, match=r"^limits\.speed: not a limit"):
        LimitSet.from_document({"speed": 1})
    with pytest.raises(RiskError, match=r"^limits\.cooldown_seconds: must be an integer"):
        LimitSet.from_document({"cooldown_seconds": None})
    with pytest.raises(RiskError, match=r"^limits: must be an object"):
        LimitSet.from_document([1])


# -- the policy: fingerprint and documents --------------------------------------------------------

SESSION = TradingSession("Europe/London", days=("MON", "TUE"))
GIVEN_GLOBAL: dict[str, object] = {"max_open_positions": 3, "cooldown_seconds": 60}
GIVEN_STRATEGIES: dict[str, dict[str, object]] = {
    "S1": {"max_orders_per_minute": 10},
    "S2": {"breaker": {"window_seconds": 60, "max_rejects": 2}},
}
GIVEN_USERS: dict[str, dict[str, object]] = {"Ann": {"max_opens_per_day": 4}, "Bob": {"cooldown_seconds": 5}}


def limits_given_the_other_way_round() -> RiskPolicy:
    """The ``GIVEN_*`` limits set level by level in another order, keys reordered, a strategy set and cleared."""
    return (
        NO_RISK.with_limits(RiskLevel.USER, "Bob", {"cooldown_seconds": 5})
        .with_limits(RiskLevel.STRATEGY, "S2", {"breaker": {"max_rejects": 2, "window_seconds": 60}})
        .with_limits(RiskLevel.GLOBAL, None, {"cooldown_seconds": 60, "max_open_positions": 3})
        .with_limits(RiskLevel.USER, "Ann", {"max_opens_per_day": 4})
        .with_limits(RiskLevel.STRATEGY, "S1", {"max_orders_per_minute": 10})
        .with_limits(RiskLevel.STRATEGY, "S3", {"cooldown_seconds": 9})
        .with_limits(RiskLevel.STRATEGY, "S3", {"cooldown_seconds": None})  # set, then cleared: as never set
    )


def test_the_fingerprint_is_the_same_for_the_same_content_whatever_the_order_it_was_given_in() -> None:
    one, other = policy_of(GIVEN_GLOBAL, GIVEN_STRATEGIES, GIVEN_USERS), limits_given_the_other_way_round()
    assert one.fingerprint == other.fingerprint
    assert one == other
    assert hash(one) == hash(other)
    assert other.strategies.keys() == {"S1", "S2"}
    assert RiskPolicy(users={"Ann": LimitSet()}).fingerprint == NO_RISK.fingerprint


def test_the_fingerprint_is_the_same_for_the_same_session_and_limits() -> None:
    one, other = (
        policy_of(GIVEN_GLOBAL, GIVEN_STRATEGIES, GIVEN_USERS, SESSION),
        limits_given_the_other_way_round().with_session(SESSION),
    )
    assert one.fingerprint == other.fingerprint
    assert one.fingerprint != policy_of(GIVEN_GLOBAL, GIVEN_STRATEGIES, GIVEN_USERS).fingerprint
    assert NO_RISK.with_session(TradingSession()).restricts_anything


def test_the_fingerprint_changes_with_any_value() -> None:
    base = policy_of({"max_open_positions": 3})
    fingerprints = {
        base.fingerprint,
        policy_of({"max_open_positions": 4}).fingerprint,
        policy_of({"max_open_positions": 3, "cooldown_seconds": 0}).fingerprint,
        policy_of({"max_open_positions": 3}, {"S1": {"max_open_positions": 3}}).fingerprint,
        policy_of({"max_open_positions": 3}, users={"S1": {"max_open_positions": 3}}).fingerprint,
        NO_RISK.fingerprint,
    }
    assert len(fingerprints) == 6
    assert not NO_RISK.restricts_anything
    assert base.restricts_anything


def test_a_policy_survives_its_document_round_trip() -> None:
    policy = policy_of(
        {"max_open_positions": 3, "max_signal_age_seconds": 30, "breaker": {"max_rejects": 5, "window_seconds": 600}},
        {"S1": {"max_orders_per_minute": 10, "cooldown_seconds": 0}},
        {"Ann": {"max_opens_per_day": 0}},
    )
    document = policy.to_document()
    again = RiskPolicy.from_document(orjson.loads(orjson.dumps(document)))
    assert again.fingerprint == policy.fingerprint
    assert again.to_document() == document
    assert again.gateway.breaker == Breaker(5, 600)
    assert again.strategies["S1"] == LimitSet(max_orders_per_minute=10, cooldown_seconds=0)
    assert RiskPolicy.from_document(NO_RISK.to_document()) == NO_RISK


def test_a_policy_with_a_session_survives_its_document_round_trip() -> None:
    policy = policy_of(
        {"max_open_positions": 3},
        session=TradingSession.from_document(
            {
                "timezone": "America/New_York",
                "open": "09:30",
                "close": "16:00",
                "days": ["SUN", "MON"],
                "square_off": "15:45",
            }
        ),
    )
    document = policy.to_document()
    again = RiskPolicy.from_document(orjson.loads(orjson.dumps(document)))
    assert again.fingerprint == policy.fingerprint
    assert again.session == policy.session


@pytest.mark.parametrize(
    ("document", "names"),
    [
        ([], "risk policy: must be an object"),
        ({"strategies": []}, "risk policy: strategies and users must be objects"),
        ({"global": {"max_open_positions": -1}}, "limits.max_open_positions:"),
        ({"session": {"open": "09:00"}}, "session.close: required"),
    ],
)
def test_a_policy_document_of_the_wrong_shape_is_refused_naming_the_field(document: object, names: str) -> None:
    with pytest.raises(RiskError) as raised:
        RiskPolicy.from_document(document)
    assert str(raised.value).startswith(names)


# -- signal_time ----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("given", "stored"),
    [
        ("2026-12-02T09:15:00Z", "2026-12-02T09:15:00.000Z"),
        ("2026-12-02T09:15:00.123456Z", "2026-12-02T09:15:00.123Z"),
        ("2026-12-02T09:15:00+05:30", "2026-12-02T03:45:00.000Z"),
        ("2026-12-02T01:00:00.5-05:00", "2026-12-02T06:00:00.500Z"),
        (1_764_667_500_123, "2025-12-02T09:25:00.123Z"),
        (0, "1970-01-01T00:00:00.000Z"),
    ],
)
def test_parse_signal_time_gives_utc_milliseconds(given: object, stored: str) -> None:
    assert parse_signal_time(given) == stored


@pytest.mark.parametrize(
    ("given", "says"),
    [
        ("2026-12-02T09:15:00", "needs a UTC offset"),
        ("yesterday", "must be ISO 8601"),
        ("", "must be ISO 8601"),
        (1.5e12, "must be ISO 8601"),
        (True, "must be ISO 8601"),
        (None, "must be ISO 8601"),
        (-1, "out of range"),
        (10**20, "out of range"),
    ],
)
def test_parse_signal_time_refuses_what_could_mean_any_time(given: object, says: str) -> None:
    with pytest.raises(ValueError, match=f"^signal_time: .*{says}"):
        parse_signal_time(given)
