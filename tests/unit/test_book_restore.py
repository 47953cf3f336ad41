"""Book.restore, the one-pass builder a store's groups feed at start, against the constructor (the old way)."""

from __future__ import annotations

import random

import pytest

from ordergate.domain.book import Book, Opened, Position, opened_groups
from ordergate.domain.model import Scope

USERS = [f"User {n}" for n in range(40)]
STRATEGIES = ["S1", "S2", "S3"]
INSTRUMENTS = ["ACC", "INFY", "TCS", "L&T"]


def random_positions(seed: int, scope: Scope) -> list[Position]:
    """Positions with distinct keys in ``scope``, opened by orders of one or many users each."""
    rng = random.Random(seed)
    taken: set[tuple[str, ...]] = set()
    positions: list[Position] = []
    for order_id in range(1, rng.randint(1, 60)):
        strategy, instrument = rng.choice(STRATEGIES), rng.choice(INSTRUMENTS)
        at = f"2026-01-01T00:{order_id // 60:02d}:{order_id % 60:02d}.000000Z"
        for user in rng.sample(USERS, rng.randint(1, len(USERS))):
            key = (user, strategy, instrument) if scope is Scope.STRATEGY else (user, instrument)
            if key not in taken:
                taken.add(key)
                positions.append(Position(user, strategy, instrument, order_id, at))
    return positions


def same_book(restored: Book, built: Book) -> None:
    assert sorted(restored) == sorted(built)
    assert len(restored) == len(built)
    for strategy in STRATEGIES:
        for instrument in INSTRUMENTS:
            assert restored.holders(strategy, instrument) == built.holders(strategy, instrument)
            for user in USERS:
                assert restored.position(user, strategy, instrument) == built.position(user, strategy, instrument)


@pytest.mark.parametrize("scope", list(Scope))
@pytest.mark.parametrize("seed", range(25))
def test_restore_builds_the_same_book_as_the_constructor_on_a_random_book(scope: Scope, seed: int) -> None:
    positions = random_positions(seed, scope)
    rng = random.Random(seed)
    groups = opened_groups(positions)
    rng.shuffle(groups)  # a store returns its groups in any order
    same_book(Book.restore(scope, groups), Book(scope, positions))


@pytest.mark.parametrize("scope", list(Scope))
def test_restored_book_holds_positions_as_the_orders_opened_them(scope: Scope) -> None:
    book = Book.restore(scope, [Opened("S1", "ACC", 7, "t7", ["Ann", "Bob"])])
    ann = book.position("Ann", "S1", "ACC")
    assert ann == Position("Ann", "S1", "ACC", 7, "t7")
    assert type(ann) is Position
    assert book.holders("S1", "ACC") == {"Ann", "Bob"}


@pytest.mark.parametrize(
    ("scope", "groups"),
    [
        (Scope.ACCOUNT, [Opened("S1", "ACC", 1, "t1", ["Ann"]), Opened("S2", "ACC", 2, "t2", ["Ann"])]),
        (Scope.STRATEGY, [Opened("S1", "ACC", 1, "t1", ["Ann"]), Opened("S1", "ACC", 2, "t2", ["Ann"])]),
        (Scope.ACCOUNT, [Opened("S1", "ACC", 1, "t1", ["Ann", "Ann"])]),
    ],
    ids=["account-two-strategies", "strategy-two-orders", "one-group-twice"],
)
def test_restore_refuses_two_positions_with_one_key(scope: Scope, groups: list[Opened]) -> None:
    with pytest.raises(ValueError, match="share a key"):
        Book.restore(scope, groups)


def test_two_strategies_may_hold_one_instrument_in_strategy_scope() -> None:
    groups = [Opened("S1", "ACC", 1, "t1", ["Ann"]), Opened("S2", "ACC", 2, "t2", ["Ann"])]
    book = Book.restore(Scope.STRATEGY, groups)
    assert len(book) == 2
    assert book.holders("S2", "ACC") == {"Ann"}
