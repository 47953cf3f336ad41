"""``decide()`` agrees with a small independent model of SPEC section 2 on random profiles and orders."""

from __future__ import annotations

from hypothesis import given, settings
from hypothesis import strategies as st

from ordergate.domain.book import Book
from ordergate.domain.model import Order, Scope, Side
from ordergate.domain.registry import Registry
from ordergate.domain.rules import decide

USERS = ["Ann", "Bob", "Cid", "Dee"]
STRATEGIES = ["S1", "S2", "S3"]
INSTRUMENTS = ["ACC", "INFY", "L&T", "TCS"]

profiles_strategy = st.dictionaries(
    st.sampled_from(USERS),
    st.dictionaries(st.sampled_from(STRATEGIES), st.lists(st.sampled_from(INSTRUMENTS), unique=True), max_size=3),
    max_size=4,
)
orders_strategy = st.lists(
    st.tuples(st.sampled_from([*STRATEGIES, "S9"]), st.sampled_from(INSTRUMENTS), st.sampled_from(["BUY", "SELL"])),
    max_size=40,
)


class Model:
    """SPEC section 2 read literally: a set of held keys, checked user by user."""

    def __init__(self, profiles: dict[str, dict[str, list[str]]], scope: str) -> None:
        self.profiles = profiles
        self.scope = scope
        self.held: dict[tuple[str, ...], str] = {}  # key -> strategy that opened it

    def key(self, user: str, strategy: str, instrument: str) -> tuple[str, ...]:
        return (user, instrument) if self.scope == "account" else (user, strategy, instrument)

    def step(self, strategy: str, instrument: str, side: str) -> tuple[str, str | None, set[str], dict[str, str]]:
        subscribers = [u for u, p in self.profiles.items() if strategy in p]
        valid: set[str] = set()
        refused: dict[str, str] = {}
        for u in subscribers:
            holds = self.key(u, strategy, instrument) in self.held
            if side == "BUY":
                if instrument not in self.profiles[u][strategy]:
                    refused[u] = "INSTRUMENT_NOT_TRADED"
                elif holds:
                    refused[u] = "ALREADY_HOLDING"
                else:
                    valid.add(u)
            elif holds:
                valid.add(u)
            else:
                refused[u] = "NO_OPEN_POSITION"
        if valid:
            for u in valid:
                k = self.key(u, strategy, instrument)
                if side == "BUY":
                    self.held[k] = strategy
                else:
                    del self.held[k]
            return "ACCEPTED", None, valid, refused
        if not subscribers:
            reason = "UNKNOWN_STRATEGY"
        elif side == "SELL":
            reason = "NO_OPEN_POSITION"
        elif any(instrument in self.profiles[u][strategy] for u in subscribers):
            reason = "ALREADY_HOLDING"
        else:
            reason = "INSTRUMENT_NOT_TRADED"
        return "REJECTED", reason, set(), refused


@settings(max_examples=300, deadline=None)
@given(profiles=profiles_strategy, orders=orders_strategy, scope=st.sampled_from(list(Scope)))
def test_decide_matches_the_model_for_random_profiles_and_orders(
    profiles: dict[str, dict[str, list[str]]], orders: list[tuple[str, str, str]], scope: Scope
) -> None:
    registry = Registry.from_document(profiles)
    book = Book(scope)
    model = Model(profiles, scope.value)
    for order_id, (strategy, instrument, side) in enumerate(orders, start=1):
        order = Order(strategy, instrument, Side(side))
        decision = decide(order, registry, book)
        status, reason, applied_users, refused = model.step(strategy, instrument, side)
        assert decision.status == status
        assert decision.reason == reason
        assert {e.user for e in decision.applied} == applied_users
        assert {r.user: r.reason.value for r in decision.rejected_for} == refused
        if side == "SELL":
            assert all(e.position_strategy for e in decision.applied)
        book.apply(order, decision.applied, order_id, "t")
        assert {model.key(p.user, p.strategy, p.instrument): p.strategy for p in book} == model.held
