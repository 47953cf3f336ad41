"""SPEC section 9 inside ``decide()``: trading controls at each level and state, and positions of users
who left the strategy that opened them (still sellable by it, in both scopes)."""

from __future__ import annotations

import pytest

from ordergate.domain.book import Book
from ordergate.domain.controls import ControlError, ControlLevel, Controls, ControlSetting, ControlState
from ordergate.domain.model import Action, Effect, Order, Reason, Refusal, Scope, Side, Status
from ordergate.domain.registry import Registry
from ordergate.domain.rules import decide

PROFILES = {
    "Ann": {"S1": ["ACC", "TCS"], "S2": ["ACC"]},
    "Bob": {"S1": ["ACC", "TCS"]},
}
REGISTRY = Registry.from_document(PROFILES)
BUY = Order("S1", "ACC", Side.BUY)
SELL = Order("S1", "ACC", Side.SELL)

HALTED, REDUCE_ONLY, ACTIVE = ControlState.HALTED, ControlState.REDUCE_ONLY, ControlState.ACTIVE


def controls(*settings: tuple[ControlLevel, str | None, ControlState]) -> Controls:
    result = Controls()
    for level, target, state in settings:
        result = result.with_setting(ControlSetting(level, target, state))
    return result


def opened(book: Book, order: Order = BUY) -> None:
    decision = decide(order, REGISTRY, book)
    book.apply(order, decision.applied, 1, "t")


@pytest.mark.parametrize(
    "settings",
    [
        [(ControlLevel.GLOBAL, None, HALTED)],
        [(ControlLevel.STRATEGY, "S1", HALTED)],
        [(ControlLevel.USER, "Ann", HALTED), (ControlLevel.USER, "Bob", HALTED)],
    ],
    ids=["global", "strategy", "both-users"],
)
def test_halted_at_any_level_rejects_buys_and_sells_for_everyone_with_halted(
    settings: list[tuple[ControlLevel, str | None, ControlState]],
) -> None:
    book = Book(Scope.ACCOUNT)
    in_force = controls(*settings)
    buy = decide(BUY, REGISTRY, book, in_force)
    assert (buy.status, buy.reason, buy.applied) == (Status.REJECTED, Reason.HALTED, ())
    assert set(buy.rejected_for) == {Refusal("Ann", Reason.HALTED), Refusal("Bob", Reason.HALTED)}
    opened(book)
    sell = decide(SELL, REGISTRY, book, in_force)
    assert (sell.status, sell.reason) == (Status.REJECTED, Reason.HALTED)


@pytest.mark.parametrize(
    "settings",
    [[(ControlLevel.GLOBAL, None, REDUCE_ONLY)], [(ControlLevel.STRATEGY, "S1", REDUCE_ONLY)]],
    ids=["global", "strategy"],
)
def test_reduce_only_refuses_buys_and_lets_sells_close(
    settings: list[tuple[ControlLevel, str | None, ControlState]],
) -> None:
    book = Book(Scope.ACCOUNT)
    in_force = controls(*settings)
    buy = decide(BUY, REGISTRY, book, in_force)
    assert (buy.status, buy.reason) == (Status.REJECTED, Reason.REDUCE_ONLY)
    opened(book)
    sell = decide(SELL, REGISTRY, book, in_force)
    assert sell.status is Status.ACCEPTED
    assert {e.user for e in sell.applied} == {"Ann", "Bob"}


def test_a_user_control_holds_back_that_user_only_and_the_order_is_accepted_for_the_others() -> None:
    book = Book(Scope.ACCOUNT)
    decision = decide(BUY, REGISTRY, book, controls((ControlLevel.USER, "Ann", HALTED)))
    assert decision.status is Status.ACCEPTED
    assert decision.applied == (Effect("Bob", Action.OPENED, "S1"),)
    assert decision.rejected_for == (Refusal("Ann", Reason.HALTED),)


def test_the_strictest_level_wins_and_a_user_already_refused_keeps_the_rules_reason() -> None:
    book = Book(Scope.ACCOUNT)
    opened(book, Order("S1", "ACC", Side.BUY))
    in_force = controls((ControlLevel.GLOBAL, None, REDUCE_ONLY), (ControlLevel.USER, "Bob", HALTED))
    sell = decide(SELL, REGISTRY, book, in_force)
    assert sell.applied == (Effect("Ann", Action.CLOSED, "S1"),)
    assert sell.rejected_for == (Refusal("Bob", Reason.HALTED),)
    # Ann already holds ACC: the rules refuse her (ALREADY_HOLDING), the control does not need to
    buy = decide(BUY, REGISTRY, book, in_force)
    assert (buy.status, buy.reason) == (Status.REJECTED, Reason.ALREADY_HOLDING)


def test_active_lifts_a_control_and_controls_that_restrict_nothing_change_nothing() -> None:
    lifted = controls((ControlLevel.STRATEGY, "S1", HALTED), (ControlLevel.STRATEGY, "S1", ACTIVE))
    assert not lifted.restricts_anything
    assert lifted == Controls()
    book = Book(Scope.ACCOUNT)
    assert decide(BUY, REGISTRY, book, lifted) == decide(BUY, REGISTRY, book)


def test_control_settings_name_a_target_exactly_when_the_level_needs_one() -> None:
    with pytest.raises(ControlError, match="must be null"):
        Controls().with_setting(ControlSetting(ControlLevel.GLOBAL, "S1", HALTED))
    with pytest.raises(ControlError, match="needs the name of a user"):
        Controls().with_setting(ControlSetting(ControlLevel.USER, None, HALTED))
    with pytest.raises(ControlError, match="control characters"):
        Controls().with_setting(ControlSetting(ControlLevel.STRATEGY, "S\x01", HALTED))


def test_controls_survive_their_document_with_the_same_fingerprint() -> None:
    in_force = controls((ControlLevel.GLOBAL, None, REDUCE_ONLY), (ControlLevel.USER, "L&T fan", HALTED))
    again = Controls.from_document(in_force.to_document())
    assert again == in_force
    assert again.fingerprint == in_force.fingerprint


@pytest.mark.parametrize("scope", [Scope.ACCOUNT, Scope.STRATEGY])
def test_a_sell_of_the_opening_strategy_reaches_a_holder_who_left_it(scope: Scope) -> None:
    book = Book(scope)
    opened(book)  # Ann and Bob open ACC under S1
    after = Registry.from_document({"Ann": {"S2": ["ACC"]}, "Bob": {"S1": ["ACC", "TCS"]}})  # Ann left S1
    sell = decide(SELL, after, book)
    assert sell.status is Status.ACCEPTED
    assert set(sell.applied) == {Effect("Ann", Action.CLOSED, "S1"), Effect("Bob", Action.CLOSED, "S1")}
    assert sell.rejected_for == ()


@pytest.mark.parametrize("scope", [Scope.ACCOUNT, Scope.STRATEGY])
def test_a_sell_reaches_holders_even_when_nobody_subscribes_to_the_strategy_any_more(scope: Scope) -> None:
    book = Book(scope)
    opened(book)
    gone = Registry.from_document({"Ann": {"S2": ["ACC"]}})
    sell = decide(SELL, gone, book)
    assert sell.status is Status.ACCEPTED
    assert [e.user for e in sell.applied] == ["Ann", "Bob"]
    book.apply(SELL, sell.applied, 2, "t")
    assert len(book) == 0
    again = decide(SELL, gone, book)
    assert (again.status, again.reason) == (Status.REJECTED, Reason.UNKNOWN_STRATEGY)
    assert decide(BUY, gone, book).reason is Reason.UNKNOWN_STRATEGY


def test_a_sell_of_another_strategy_does_not_reach_a_holder_who_left() -> None:
    book = Book(Scope.ACCOUNT)
    opened(book)
    after = Registry.from_document({"Ann": {"S2": ["ACC"]}})
    # S2's SELL reaches Ann as a subscriber (account scope: any strategy's position), not as a departed holder
    sell = decide(Order("S2", "ACC", Side.SELL), after, book)
    assert sell.applied == (Effect("Ann", Action.CLOSED, "S1"),)


def test_a_halted_holder_who_left_is_held_back_too() -> None:
    book = Book(Scope.STRATEGY)
    opened(book)
    after = Registry.from_document({"Bob": {"S1": ["ACC"]}})
    sell = decide(SELL, after, book, controls((ControlLevel.USER, "Ann", HALTED)))
    assert sell.applied == (Effect("Bob", Action.CLOSED, "S1"),)
    assert sell.rejected_for == (Refusal("Ann", Reason.HALTED),)


def test_undo_restores_who_holds_what_each_strategy_opened() -> None:
    book = Book(Scope.ACCOUNT)
    opened(book)
    gone = Registry.from_document({"Cid": {"S1": ["ACC"]}})
    sell = decide(SELL, gone, book)
    undo = book.apply(SELL, sell.applied, 2, "t")
    assert set(book.holders("S1", "ACC")) == set()
    book.undo(undo)
    assert set(book.holders("S1", "ACC")) == {"Ann", "Bob"}
    assert decide(SELL, gone, book) == sell
