"""``decide_and_apply()`` is ``decide()`` followed by ``Book.apply()``: same decision, same undo, same book.

The sequencers decide and apply in one walk of the subscribers; ``/v1/orders/check`` and ``verify`` use
the pure ``decide()``. On random profiles (reloaded between orders, so positions outlive their
subscriptions), random trading controls and random orders, in both scopes, the two ways must agree
on everything a caller can see, and the undo of the one-pass way must restore the book exactly.
"""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from ordergate.domain import rules
from ordergate.domain.book import Book, Position
from ordergate.domain.controls import ControlLevel, Controls, ControlSetting, ControlState
from ordergate.domain.model import Decision, Order, Scope, Side
from ordergate.domain.registry import Registry
from ordergate.domain.risk import RiskContext
from ordergate.domain.rules import decide, decide_and_apply


@pytest.fixture(autouse=True, scope="module")
def in_bulk() -> Iterator[None]:
    """Every order here takes the bulk way, however few its subscribers (small ones would not)."""
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(rules, "BULK_SUBSCRIBERS", 0)
        yield


USERS = ["Ann", "Bob", "Cid", "Dee", "Eve"]
STRATEGIES = ["S1", "S2"]
INSTRUMENTS = ["ACC", "L&T"]

profiles_strategy = st.dictionaries(
    st.sampled_from(USERS),
    st.dictionaries(
        st.sampled_from(STRATEGIES), st.lists(st.sampled_from(INSTRUMENTS), unique=True, min_size=1), max_size=2
    ),
    max_size=5,
)
settings_strategy = st.lists(
    st.one_of(
        st.tuples(st.just(ControlLevel.GLOBAL), st.none(), st.sampled_from(list(ControlState))),
        st.tuples(st.just(ControlLevel.STRATEGY), st.sampled_from(STRATEGIES), st.sampled_from(list(ControlState))),
        st.tuples(st.just(ControlLevel.USER), st.sampled_from(USERS), st.sampled_from(list(ControlState))),
    ),
    max_size=3,
)
order_step = st.tuples(
    st.just("order"), st.sampled_from([*STRATEGIES, "S9"]), st.sampled_from(INSTRUMENTS), st.sampled_from(list(Side))
)
step_strategy = st.one_of(
    order_step,
    order_step,
    order_step,
    order_step,
    st.tuples(st.just("reload"), profiles_strategy),
    st.tuples(st.just("leave"), st.sets(st.sampled_from(USERS), min_size=1)),
    st.tuples(st.just("controls"), settings_strategy),
)


def controls_of(chosen: list[tuple[ControlLevel, str | None, ControlState]]) -> Controls | None:
    """Controls as the sequencers pass them: ``None`` when they restrict nothing."""
    result = Controls()
    for level, target, state in chosen:
        result = result.with_setting(ControlSetting(level, target, state))
    return result if result.restricts_anything else None


def state(book: Book) -> tuple[list[Position], dict[tuple[str, str], set[str]]]:
    """Everything a book answers: its positions, and who holds what each strategy opened."""
    positions = sorted(book)
    openers = {(p.strategy, p.instrument) for p in positions} | {(s, i) for s in STRATEGIES for i in INSTRUMENTS}
    return positions, {o: set(book.holders(*o)) for o in openers}


@settings(max_examples=500, deadline=None)
@given(
    first=profiles_strategy,
    steps=st.lists(step_strategy, max_size=60),
    scope=st.sampled_from(list(Scope)),
)
def test_decide_and_apply_gives_the_decision_and_undo_of_decide_then_apply(
    first: dict[str, dict[str, list[str]]], steps: list[tuple[object, ...]], scope: Scope
) -> None:
    profiles, registry = first, Registry.from_document(first)
    controls: Controls | None = None
    two_step, one_pass = Book(scope), Book(scope)
    for order_id, step in enumerate(steps, start=1):
        if step[0] in ("reload", "leave"):  # a new file, or some users leave (their positions stay open)
            profiles = step[1] if step[0] == "reload" else {u: p for u, p in profiles.items() if u not in step[1]}  # type: ignore[assignment, operator]
            registry = Registry.from_document(profiles)
            continue
        if step[0] == "controls":
            controls = controls_of(step[1])  # type: ignore[arg-type]
            continue
        _, strategy, instrument, side = step
        order = Order(strategy, instrument, side)  # type: ignore[arg-type]
        at = f"t{order_id}"
        expected = decide(order, registry, two_step, controls)
        expected_undo = two_step.apply(order, expected.applied, order_id, at)
        before = state(one_pass)
        decision, undo = decide_and_apply(order, registry, one_pass, controls, order_id, at)
        assert decision == expected
        assert [type(e) for e in decision.applied] == [type(e) for e in expected.applied]
        assert undo == expected_undo
        assert state(one_pass) == state(two_step)
        one_pass.undo(undo)  # what a failed commit does
        assert state(one_pass) == before
        decision_again, _ = decide_and_apply(order, registry, one_pass, controls, order_id, at)
        assert decision_again == expected
        assert state(one_pass) == state(two_step)


def agree(orders: list[Order], profiles: list[dict[str, dict[str, list[str]]]], controls: Controls | None) -> None:
    """Each order decided the two ways, under the profiles given for it, agrees (the last under controls)."""
    two_step, one_pass = Book(Scope.ACCOUNT), Book(Scope.ACCOUNT)
    for order_id, (order, document) in enumerate(zip(orders, profiles, strict=True), start=1):
        registry, in_force = Registry.from_document(document), controls if order_id == len(orders) else None
        expected = decide(order, registry, two_step, in_force)
        undo = two_step.apply(order, expected.applied, order_id, "t")
        assert decide_and_apply(order, registry, one_pass, in_force, order_id, "t") == (expected, undo)
        assert state(one_pass) == state(two_step)


def test_a_sell_reaches_leavers_even_when_subscribers_close_positions_another_strategy_opened() -> None:
    everyone = {u: {"S1": ["ACC"]} for u in ("Ann", "Bob", "Cid")}
    after = {"Ann": {"S1": ["ACC"]}, "Bob": {"S1": ["ACC"]}}  # Cid left S1, holding a position it opened
    buys = [Order("S2", "ACC", Side.BUY), Order("S1", "ACC", Side.BUY)]
    s2_for_ann_and_bob = {"Ann": {"S2": ["ACC"]}, "Bob": {"S2": ["ACC"]}}
    agree([*buys, Order("S1", "ACC", Side.SELL)], [s2_for_ann_and_bob, everyone, after], None)


def test_a_sell_held_back_for_one_user_closes_the_others_in_subscriber_order() -> None:
    everyone = {u: {"S1": ["ACC"]} for u in USERS}
    halted = controls_of([(ControlLevel.USER, "Bob", ControlState.HALTED)])
    agree([Order("S1", "ACC", Side.BUY), Order("S1", "ACC", Side.SELL)], [everyone, everyone], halted)


def test_few_subscribers_are_decided_then_applied_and_many_in_bulk(monkeypatch: pytest.MonkeyPatch) -> None:
    registry = Registry.from_document({u: {"S1": ["ACC"]} for u in USERS})
    calls: list[str] = []

    def spied(
        order: Order, registry: Registry, book: Book, controls: Controls | None = None, risk: RiskContext | None = None
    ) -> Decision:
        calls.append("decide")
        return decide(order, registry, book, controls, risk)

    monkeypatch.setattr(rules, "decide", spied)
    for bulk_from, expected in ((len(USERS) + 1, ["decide"]), (len(USERS), [])):
        calls.clear()
        monkeypatch.setattr(rules, "BULK_SUBSCRIBERS", bulk_from)
        book = Book(Scope.ACCOUNT)
        decision, undo = decide_and_apply(Order("S1", "ACC", Side.BUY), registry, book, None, 1, "t")
        assert calls == expected
        assert len(decision.applied) == len(undo) == len(book) == len(USERS)


def test_a_wide_fanout_buy_then_sell_opens_and_closes_every_subscriber_in_one_pass() -> None:
    users = [f"User {n:05d}" for n in range(5_000)]
    registry = Registry.from_document({u: {"FANOUT": ["ACC"]} for u in users})
    book = Book(Scope.ACCOUNT)
    buy, undo = decide_and_apply(Order("FANOUT", "ACC", Side.BUY), registry, book, None, 1, "t1")
    assert [e.user for e in buy.applied] == users
    assert len(undo) == len(book) == 5_000
    assert book.holders("FANOUT", "ACC") == set(users)
    sell, undo = decide_and_apply(Order("FANOUT", "ACC", Side.SELL), registry, book, None, 2, "t2")
    assert [e.user for e in sell.applied] == users
    assert len(undo) == 5_000
    assert len(book) == 0
    assert not book.holders("FANOUT", "ACC")
    assert {p.opened_order_id for _, p, _ in undo if p is not None} == {1}


@pytest.mark.parametrize("scope", list(Scope))
def test_bulk_changes_that_contradict_the_book_raise_and_change_nothing(scope: Scope) -> None:
    book = Book(scope, [Position("Ann", "S1", "ACC", 1, "t1")])
    held = list(book)
    with pytest.raises(ValueError, match="Ann already holds ACC"):
        book.open_positions("S1", "ACC", ["Bob", "Ann"], 2, "t2")
    with pytest.raises(ValueError, match="named twice"):
        book.open_positions("S1", "ACC", ["Bob", "Bob"], 2, "t2")
    with pytest.raises(ValueError, match="Bob holds no ACC to close"):
        book.close_positions([held[0], Position("Bob", "S1", "ACC", 1, "t1")])
    with pytest.raises(ValueError, match="Ann holds no ACC to close"):
        book.close_positions([held[0], held[0]])
    assert list(book) == held
    assert book.holders("S1", "ACC") == {"Ann"}
    assert book.position("Bob", "S1", "ACC") is None
