"""An independent model of the rules the simulation checks stored decisions against.

Written from SPEC sections 2 and 9 without the package's ``decide()`` or ``Book``: subscribers,
both scopes, positions that stay sellable by the strategy that opened them after their holder left
it, and the trading controls (the strictest of the gateway's, the strategy's and the user's state
holds a user back). Decisions are compared in a canonical form (per-user lists sorted), which is all
the spec says about them.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

Profiles = Mapping[str, Mapping[str, Iterable[str]]]
Key = tuple[str, str, str]
"""(user, strategy or "" in account scope, instrument)."""

RANK = {"ACTIVE": 0, "REDUCE_ONLY": 1, "HALTED": 2}


@dataclass(frozen=True, slots=True)
class Held:
    user: str
    strategy: str
    """The strategy that opened it."""
    instrument: str
    opened_order_id: int


@dataclass(frozen=True, slots=True)
class ModelControls:
    gateway: str = "ACTIVE"
    strategies: Mapping[str, str] | None = None
    users: Mapping[str, str] | None = None

    def state_for(self, strategy: str, user: str) -> str:
        states = [self.gateway, (self.strategies or {}).get(strategy, "ACTIVE"), (self.users or {}).get(user, "ACTIVE")]
        return max(states, key=RANK.__getitem__)


def controls_from_document(document: Mapping[str, Any] | None) -> ModelControls:
    if document is None:
        return ModelControls()
    return ModelControls(document.get("global", "ACTIVE"), document.get("strategies", {}), document.get("users", {}))


def key_of(scope: str, user: str, strategy: str, instrument: str) -> Key:
    return (user, strategy if scope == "strategy" else "", instrument)


Canonical = tuple[str, str | None, tuple[tuple[str, str, str], ...], tuple[tuple[str, str], ...]]


def canonical(
    status: str, reason: str | None, applied: Iterable[tuple[str, str, str]], refused: Iterable[tuple[str, str]]
) -> Canonical:
    return (status, reason, tuple(sorted(applied)), tuple(sorted(refused)))


def expected(
    profiles: Profiles,
    scope: str,
    book: Mapping[Key, Held],
    controls: ModelControls,
    strategy: str,
    instrument: str,
    side: str,
) -> Canonical:
    """What the spec says of one order, given the open positions and the controls in force."""
    subscribers = {user: set(s[strategy]) for user, s in profiles.items() if strategy in s}
    leavers = sorted(
        h.user
        for h in book.values()
        if side == "SELL" and h.strategy == strategy and h.instrument == instrument and h.user not in subscribers
    )
    if not subscribers and not leavers:
        return canonical("REJECTED", "UNKNOWN_STRATEGY", [], [])
    applied: list[tuple[str, str, str]] = []
    refused: list[tuple[str, str]] = []
    for user, instruments in subscribers.items():
        held = book.get(key_of(scope, user, strategy, instrument))
        if side == "BUY":
            if instrument not in instruments:
                refused.append((user, "INSTRUMENT_NOT_TRADED"))
            elif held is not None:
                refused.append((user, "ALREADY_HOLDING"))
            else:
                applied.append((user, "OPENED", strategy))
        elif held is None:
            refused.append((user, "NO_OPEN_POSITION"))
        else:
            applied.append((user, "CLOSED", held.strategy))
    applied.extend((user, "CLOSED", strategy) for user in leavers)
    if side == "SELL":
        empty = "NO_OPEN_POSITION"
    elif any(reason == "ALREADY_HOLDING" for _, reason in refused):
        empty = "ALREADY_HOLDING"
    else:
        empty = "INSTRUMENT_NOT_TRADED"
    kept: list[tuple[str, str, str]] = []
    held_back: list[str] = []
    for effect in applied:
        state = controls.state_for(strategy, effect[0])
        if state == "HALTED" or (state == "REDUCE_ONLY" and side == "BUY"):
            refused.append((effect[0], state))
            held_back.append(state)
        else:
            kept.append(effect)
    if kept:
        return canonical("ACCEPTED", None, kept, refused)
    if held_back:
        empty = "HALTED" if "HALTED" in held_back else "REDUCE_ONLY"
    return canonical("REJECTED", empty, [], refused)


def apply(
    book: dict[Key, Held],
    scope: str,
    order_id: int,
    strategy: str,
    instrument: str,
    applied: Iterable[tuple[str, str, str]],
) -> None:
    for user, action, _ in applied:
        key = key_of(scope, user, strategy, instrument)
        if action == "OPENED":
            assert key not in book, f"order {order_id} opens {key}, which is open"
            book[key] = Held(user, strategy, instrument, order_id)
        else:
            assert key in book, f"order {order_id} closes {key}, which is not open"
            del book[key]
