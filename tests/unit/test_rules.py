"""The rules of SPEC section 2 through ``decide()``: the seed's table in both scopes, and fan-out."""

from __future__ import annotations

import pytest

from ordergate.domain.book import Book
from ordergate.domain.model import Action, Decision, Effect, Order, Reason, Refusal, Scope, Side, Status
from ordergate.domain.registry import Registry
from ordergate.domain.rules import decide

SEED_PROFILES = {
    "Holland Proctor": {"STRATEGY_A": ["BIRLASOFT", "GRASIM", "EICHER"], "STRATEGY_B": ["MINDA"]},
    "Oaklee Wagner": {"STRATEGY_D": ["ACC"]},
}
SEED_ORDERS = [
    Order("STRATEGY_A", "GRASIM", Side.SELL),
    Order("STRATEGY_B", "MINDA", Side.BUY),
    Order("STRATEGY_D", "INFY", Side.BUY),
    Order("STRATEGY_A", "MINDA", Side.SELL),
]


def run(registry: Registry, book: Book, orders: list[Order]) -> list[Decision]:
    decisions = []
    for order_id, order in enumerate(orders, start=1):
        decision = decide(order, registry, book)
        book.apply(order, decision.applied, order_id, "t")
        decisions.append(decision)
    return decisions


def test_seed_example_gives_the_seed_table_in_account_scope() -> None:
    decisions = run(Registry.from_document(SEED_PROFILES), Book(Scope.ACCOUNT), SEED_ORDERS)
    assert [(d.status, d.reason) for d in decisions] == [
        (Status.REJECTED, Reason.NO_OPEN_POSITION),
        (Status.ACCEPTED, None),
        (Status.REJECTED, Reason.INSTRUMENT_NOT_TRADED),
        (Status.ACCEPTED, None),
    ]
    assert decisions[1].applied == (Effect("Holland Proctor", Action.OPENED, "STRATEGY_B"),)
    # order 4 closes the MINDA position STRATEGY_B opened
    assert decisions[3].applied == (Effect("Holland Proctor", Action.CLOSED, "STRATEGY_B"),)


def test_seed_example_gives_the_strict_answers_in_strategy_scope() -> None:
    book = Book(Scope.STRATEGY)
    decisions = run(Registry.from_document(SEED_PROFILES), book, SEED_ORDERS)
    assert [(d.status, d.reason) for d in decisions] == [
        (Status.REJECTED, Reason.NO_OPEN_POSITION),
        (Status.ACCEPTED, None),
        (Status.REJECTED, Reason.INSTRUMENT_NOT_TRADED),
        (Status.REJECTED, Reason.NO_OPEN_POSITION),
    ]
    assert decisions[3].rejected_for == (Refusal("Holland Proctor", Reason.NO_OPEN_POSITION),)
    assert book.position("Holland Proctor", "STRATEGY_B", "MINDA") is not None


def test_order_of_a_strategy_nobody_subscribes_to_is_unknown_strategy() -> None:
    decision = decide(Order("STRATEGY_Z", "ACC", Side.BUY), Registry.from_document(SEED_PROFILES), Book(Scope.ACCOUNT))
    assert (decision.status, decision.reason, decision.rejected_for) == (
        Status.REJECTED,
        Reason.UNKNOWN_STRATEGY,
        (),
    )


FAN_OUT = {
    "Ann": {"S1": ["ACC", "INFY"]},
    "Bob": {"S1": ["ACC"]},
    "Cid": {"S1": ["INFY"], "S2": ["ACC"]},
}


@pytest.mark.parametrize("scope", list(Scope))
def test_buy_applies_for_exactly_the_subscribers_that_trade_it_and_do_not_hold_it(scope: Scope) -> None:
    registry = Registry.from_document(FAN_OUT)
    book = Book(scope)
    run(registry, book, [Order("S1", "ACC", Side.BUY)])
    assert {p.user for p in book} == {"Ann", "Bob"}
    decision = decide(Order("S1", "INFY", Side.BUY), registry, book)
    assert decision.applied == (
        Effect("Ann", Action.OPENED, "S1"),
        Effect("Cid", Action.OPENED, "S1"),
    )
    assert decision.rejected_for == (Refusal("Bob", Reason.INSTRUMENT_NOT_TRADED),)


@pytest.mark.parametrize("scope", list(Scope))
def test_buy_everyone_already_holds_is_rejected_already_holding(scope: Scope) -> None:
    registry = Registry.from_document(FAN_OUT)
    book = Book(scope)
    run(registry, book, [Order("S1", "ACC", Side.BUY)])
    decision = decide(Order("S1", "ACC", Side.BUY), registry, book)
    assert (decision.status, decision.reason) == (Status.REJECTED, Reason.ALREADY_HOLDING)
    assert decision.rejected_for == (
        Refusal("Ann", Reason.ALREADY_HOLDING),
        Refusal("Bob", Reason.ALREADY_HOLDING),
        Refusal("Cid", Reason.INSTRUMENT_NOT_TRADED),
    )


def test_sell_closes_position_opened_by_another_strategy_in_account_scope() -> None:
    registry = Registry.from_document(FAN_OUT)
    book = Book(Scope.ACCOUNT)
    run(registry, book, [Order("S2", "ACC", Side.BUY)])
    decision = decide(Order("S1", "ACC", Side.SELL), registry, book)
    assert decision.applied == (Effect("Cid", Action.CLOSED, "S2"),)
    assert decision.rejected_for == (
        Refusal("Ann", Reason.NO_OPEN_POSITION),
        Refusal("Bob", Reason.NO_OPEN_POSITION),
    )


def test_buy_is_refused_while_another_strategy_holds_the_instrument_in_account_scope() -> None:
    registry = Registry.from_document({"Cid": {"S1": ["ACC"], "S2": ["ACC"]}})
    book = Book(Scope.ACCOUNT)
    run(registry, book, [Order("S2", "ACC", Side.BUY)])
    decision = decide(Order("S1", "ACC", Side.BUY), registry, book)
    assert (decision.status, decision.reason) == (Status.REJECTED, Reason.ALREADY_HOLDING)


def test_each_strategy_holds_its_own_position_in_strategy_scope() -> None:
    registry = Registry.from_document({"Cid": {"S1": ["ACC"], "S2": ["ACC"]}})
    book = Book(Scope.STRATEGY)
    decisions = run(
        registry,
        book,
        [Order("S2", "ACC", Side.BUY), Order("S1", "ACC", Side.BUY), Order("S1", "ACC", Side.SELL)],
    )
    assert [d.status for d in decisions] == [Status.ACCEPTED] * 3
    assert [(p.strategy, p.instrument) for p in book] == [("S2", "ACC")]


def test_sell_in_account_scope_needs_no_instrument_list_entry() -> None:
    registry = Registry.from_document({"Ann": {"S1": ["ACC"], "S2": []}})
    book = Book(Scope.ACCOUNT)
    decisions = run(registry, book, [Order("S1", "ACC", Side.BUY), Order("S2", "ACC", Side.SELL)])
    assert decisions[1].applied == (Effect("Ann", Action.CLOSED, "S1"),)


def test_names_are_matched_exactly() -> None:
    registry = Registry.from_document({"Ann": {"S1": ["L&T"]}})
    book = Book(Scope.ACCOUNT)
    assert decide(Order("s1", "L&T", Side.BUY), registry, book).reason is Reason.UNKNOWN_STRATEGY
    assert decide(Order("S1", "l&t", Side.BUY), registry, book).reason is Reason.INSTRUMENT_NOT_TRADED
    assert decide(Order("S1", "L&T", Side.BUY), registry, book).is_accepted


def test_decisions_are_equal_for_registries_built_from_reordered_documents() -> None:
    profiles = {
        "Zoe": {"S1": ["ACC", "TCS"], "S2": ["INFY"]},
        "Amy": {"S2": ["INFY"], "S1": ["TCS", "ACC"]},
        "Max": {"S1": ["ACC"]},
    }
    reordered = {  # users, strategies and instruments, each in the opposite order
        user: {strategy: instruments[::-1] for strategy, instruments in reversed(strategies.items())}
        for user, strategies in reversed(profiles.items())
    }
    orders = [
        Order("S1", "ACC", Side.BUY),
        Order("S1", "TCS", Side.BUY),
        Order("S2", "INFY", Side.BUY),
        Order("S1", "ACC", Side.SELL),
        Order("S1", "TCS", Side.SELL),
        Order("S2", "INFY", Side.SELL),
    ]
    for scope in Scope:
        one = run(Registry.from_document(profiles), Book(scope), orders)
        two = run(Registry.from_document(reordered), Book(scope), orders)
        assert one == two  # exactly: the same effects and refusals in the same order
        assert [e.user for e in one[0].applied] == ["Amy", "Max", "Zoe"]
        assert one[1].rejected_for == (Refusal("Max", Reason.INSTRUMENT_NOT_TRADED),)
