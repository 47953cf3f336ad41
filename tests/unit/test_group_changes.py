"""``group_changes()`` gives the net row changes of a commit group exactly as the walk over every
position did before it was built in bulk: the same deletes, inserts and trades, in the same order."""

from __future__ import annotations

import itertools
from collections.abc import Sequence

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from ordergate.domain.book import Book, Position
from ordergate.domain.model import Order, Scope, Side
from ordergate.domain.record import OrderRecord, decided_record
from ordergate.domain.registry import Registry
from ordergate.domain.rules import decide_and_apply
from ordergate.store import changes as changes_module
from ordergate.store.changes import GroupChanges, group_changes, stored_key

WAYS = pytest.mark.parametrize("bulk_from", [0, 10**9], ids=["bulk", "walked"])
"""Both ways of building the rows: in bulk (forced, whatever the group's size) and position by position."""


USERS = ["Ann", "Bob", "Cid"]
STRATEGIES = ["S1", "S2"]
INSTRUMENTS = ["ACC", "L&T"]


def walked(scope: Scope, records: Sequence[OrderRecord]) -> GroupChanges:
    """The reference: one position at a time, as ``group_changes`` was written before."""
    changes = GroupChanges()
    first_touch_closes: dict[tuple[str, str, str], bool] = {}
    final: dict[tuple[str, str, str], Position | None] = {}
    for record in records:
        for position in record.closed:
            key = stored_key(scope, position)
            first_touch_closes.setdefault(key, True)
            final[key] = None
            changes.trades.append(
                (
                    position.user,
                    position.strategy,
                    position.instrument,
                    position.opened_order_id,
                    position.opened_at,
                    record.order_id,
                    record.received_at,
                    record.order.strategy,
                )
            )
        for position in record.opened:
            key = stored_key(scope, position)
            first_touch_closes.setdefault(key, False)
            final[key] = position
    changes.deletes = [key for key, closes in first_touch_closes.items() if closes]
    changes.inserts = [position for position in final.values() if position is not None]
    return changes


profiles_strategy = st.dictionaries(
    st.sampled_from(USERS),
    st.dictionaries(
        st.sampled_from(STRATEGIES), st.lists(st.sampled_from(INSTRUMENTS), unique=True, min_size=1), max_size=2
    ),
    min_size=1,
)
orders_strategy = st.lists(
    st.tuples(st.sampled_from(STRATEGIES), st.sampled_from(INSTRUMENTS), st.sampled_from(list(Side))), max_size=40
)


@WAYS
@settings(max_examples=300, deadline=None)
@given(
    profiles=profiles_strategy,
    orders=orders_strategy,
    cuts=st.lists(st.integers(0, 40), max_size=6),
    scope=st.sampled_from(list(Scope)),
)
def test_group_changes_equal_the_position_by_position_walk(
    profiles: dict[str, dict[str, list[str]]],
    orders: list[tuple[str, str, Side]],
    cuts: list[int],
    scope: Scope,
    bulk_from: int,
) -> None:
    registry, book = Registry.from_document(profiles), Book(scope)
    records: list[OrderRecord] = []
    for order_id, (strategy, instrument, side) in enumerate(orders, start=1):
        order = Order(strategy, instrument, side)
        at = f"t{order_id}"
        decision, undo = decide_and_apply(order, registry, book, None, order_id, at)
        records.append(decided_record(order_id, at, order, decision, scope, registry.fingerprint, None, undo, None))
    bounds = sorted({0, len(records), *(c for c in cuts if c < len(records))})
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(changes_module, "BULK_POSITIONS", bulk_from)
        for start, end in itertools.pairwise(bounds):
            group = records[start:end]
            assert group_changes(scope, group) == walked(scope, group)


@WAYS
def test_one_record_that_closes_and_reopens_a_key_nets_like_the_walk(
    bulk_from: int, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Not an order ``decide()`` makes, but the rows must still net the same way."""
    old = Position("Ann", "S1", "ACC", 1, "t1")
    new = Position("Ann", "S1", "ACC", 2, "t2")
    other = Position("Bob", "S1", "ACC", 2, "t2")
    monkeypatch.setattr(changes_module, "BULK_POSITIONS", bulk_from)
    record = OrderRecord(2, "t2", Order("S1", "ACC", Side.BUY), None, Scope.ACCOUNT, "f", None, (other, new), (old,))  # type: ignore[arg-type]
    assert group_changes(Scope.ACCOUNT, [record]) == walked(Scope.ACCOUNT, [record])
