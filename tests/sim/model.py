"""An independent model of the rules the simulation checks stored decisions against.

Written from SPEC sections 2, 9 and 10 without the package's ``decide()``, ``Book`` or risk state:
subscribers, both scopes, positions that stay sellable by the strategy that opened them after their
holder left it, the trading controls (the strictest of the gateway's, the strategy's and the user's
state holds a user back), and the risk limits and trading session. Decisions are compared in a
canonical form (per-user lists sorted), which is all the spec says about them.

The risk model keeps no counters: :class:`History` is the plain list of the committed orders before
the one decided, and every limit is a scan of it (how many orders in the last 60 s, how many opens
on the order's local calendar day, when the user last closed the instrument), in integer
microseconds, so a window or a day boundary is exact and the model cannot share a rounding, an
incremental count or an undo with the code it checks.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any
from zoneinfo import ZoneInfo

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
    risk: RiskInput | None = None,
) -> Canonical:
    """What the spec says of one order, given the open positions, the controls and the risk in force."""
    if risk is not None:
        whole = order_refusal(risk, strategy)
        if whole is not None:
            return canonical("REJECTED", whole, [], [])
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
    limited: list[str] = []
    if risk is not None and side == "BUY":
        allowed: list[tuple[str, str, str]] = []
        for effect in kept:
            reason = limit_refusal(risk, book, strategy, instrument, effect[0])
            if reason is None:
                allowed.append(effect)
            else:
                refused.append((effect[0], reason))
                limited.append(reason)
        kept = allowed
    if kept:
        return canonical("ACCEPTED", None, kept, refused)
    if held_back:
        empty = "HALTED" if "HALTED" in held_back else "REDUCE_ONLY"
    elif limited:
        empty = next(r for r in ("POSITION_LIMIT", "DAILY_LIMIT", "COOLDOWN") if r in limited)
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


# -- risk (SPEC section 10) ---------------------------------------------------------------------------

MICROS = 1_000_000
DAY = 86_400 * MICROS
DEFAULT_ZONE = "Asia/Kolkata"
DAYS = ("MON", "TUE", "WED", "THU", "FRI", "SAT", "SUN")


def micros_of(timestamp: str) -> int:
    """Integer microseconds since the epoch of a log timestamp (``...T09:15:00.123456Z``)."""
    moment = datetime.fromisoformat(timestamp).astimezone(UTC)
    whole = int(moment.replace(microsecond=0).timestamp())
    return whole * MICROS + moment.microsecond


@dataclass(frozen=True, slots=True)
class Happened:
    """One committed order as the limits count it."""

    at: int
    """``received_at``, in microseconds."""
    strategy: str
    instrument: str
    applied: tuple[tuple[str, str, str], ...]
    """``(user, OPENED|CLOSED, position strategy)``."""
    by_strategy: bool = True
    """Sent by a strategy (``False``: the gateway's own flatten, which no rate or breaker counts)."""
    counted_reject: bool = False
    """A strategy's rejection the breaker counts (any reason but ``HALTED`` and ``REDUCE_ONLY``)."""


NOT_COUNTED = ("HALTED", "REDUCE_ONLY")
"""Rejections a control caused: the circuit breaker does not count them."""


@dataclass
class History:
    """Every committed order before the one decided, in order_id order (the model scans it), and where
    each strategy's breaker last tripped (its counted rejections start over after it)."""

    orders: list[Happened] = field(default_factory=list)
    tripped_at: dict[str, int] = field(default_factory=dict)
    """Per strategy, the index in :attr:`orders` of the order whose rejection last tripped its breaker."""

    def add(
        self,
        at: int,
        strategy: str,
        instrument: str,
        applied: Iterable[tuple[str, str, str]],
        by_strategy: bool = True,
        status: str = "ACCEPTED",
        reason: str | None = None,
    ) -> None:
        counted = by_strategy and status == "REJECTED" and reason not in NOT_COUNTED
        self.orders.append(Happened(at, strategy, instrument, tuple(applied), by_strategy, counted))

    def trip(self, strategy: str) -> None:
        """The last order added tripped its strategy's breaker."""
        self.tripped_at[strategy] = len(self.orders) - 1


@dataclass(frozen=True, slots=True)
class ModelSession:
    zone: str
    open: tuple[int, int]
    close: tuple[int, int]
    days: frozenset[str]

    def is_open(self, at: int) -> bool:
        """Open from ``open`` (included) to ``close`` (excluded) local time on its days; a ``close``
        before ``open`` runs past midnight and belongs to the day it opened; ``open == close``: all day."""
        local = datetime.fromtimestamp(at // MICROS, ZoneInfo(self.zone))
        now = (local.hour, local.minute)
        day = DAYS[local.weekday()]
        previous = DAYS[(local.weekday() - 1) % 7]
        if self.open == self.close:
            return day in self.days
        if self.open < self.close:
            return day in self.days and self.open <= now < self.close
        return (day in self.days and now >= self.open) or (previous in self.days and now < self.close)


@dataclass(frozen=True, slots=True)
class ModelPolicy:
    """The limits document as stored: ``{"global": {...}, "strategies": {...}, "users": {...}, "session"}``."""

    gateway: Mapping[str, Any]
    strategies: Mapping[str, Mapping[str, Any]]
    users: Mapping[str, Mapping[str, Any]]
    session: ModelSession | None

    @property
    def zone(self) -> str:
        return self.session.zone if self.session is not None else DEFAULT_ZONE

    def for_user(self, name: str, user: str) -> int | None:
        """The user's own value, else the global one (a count over all the user's positions)."""
        value = self.users.get(user, {}).get(name)
        return value if value is not None else self.gateway.get(name)

    def for_strategy(self, name: str, strategy: str) -> int | None:
        """The strategy's own value only (a count over what that strategy did)."""
        value: int | None = self.strategies.get(strategy, {}).get(name)
        return value

    def most_specific(self, name: str, strategy: str, user: str | None = None) -> int | None:
        for level in (self.users.get(user, {}) if user is not None else {}, self.strategies.get(strategy, {})):
            if level.get(name) is not None:
                value: int = level[name]
                return value
        return self.gateway.get(name)


def policy_from_document(document: Mapping[str, Any]) -> ModelPolicy:
    def clock(text: str) -> tuple[int, int]:
        return int(text[:2]), int(text[3:])

    raw = document.get("session")
    session = None
    if raw is not None:
        session = ModelSession(
            raw.get("timezone", DEFAULT_ZONE), clock(raw["open"]), clock(raw["close"]), frozenset(raw["days"])
        )
    return ModelPolicy(document.get("global", {}), document.get("strategies", {}), document.get("users", {}), session)


@dataclass(frozen=True, slots=True)
class RiskInput:
    """What the limits of one order are checked against: the policy it names, the history before it, its times."""

    policy: ModelPolicy
    history: History
    at: int
    signal_at: int | None


def order_refusal(risk: RiskInput, strategy: str) -> str | None:
    """A whole order refused before the rules: a stale (or future) signal, a closed market, the rate."""
    policy, at = risk.policy, risk.at
    if risk.signal_at is not None:
        if risk.signal_at - at > 5 * MICROS:
            return "STALE_SIGNAL"
        age = policy.most_specific("max_signal_age_seconds", strategy)
        if age is not None and at - risk.signal_at > age * MICROS:
            return "STALE_SIGNAL"
    if policy.session is not None and not policy.session.is_open(at):
        return "MARKET_CLOSED"
    recent = [h for h in risk.history.orders if h.by_strategy and h.at > at - 60 * MICROS]
    overall = policy.gateway.get("max_orders_per_minute")
    if overall is not None and len(recent) >= overall:
        return "RATE_LIMIT"
    own = policy.for_strategy("max_orders_per_minute", strategy)
    if own is not None and sum(1 for h in recent if h.strategy == strategy) >= own:
        return "RATE_LIMIT"
    return None


def _local_day(at: int, zone: str) -> Any:
    return datetime.fromtimestamp(at // MICROS, ZoneInfo(zone)).date()


def limit_refusal(risk: RiskInput, book: Mapping[Key, Held], strategy: str, instrument: str, user: str) -> str | None:
    """Why a limit keeps ``user`` from the position a BUY would open, or ``None``."""
    policy, at = risk.policy, risk.at
    cap = policy.for_user("max_open_positions", user)
    own_cap = policy.for_strategy("max_open_positions", strategy)
    held = [h for h in book.values() if h.user == user]
    if (cap is not None and len(held) >= cap) or (
        own_cap is not None and sum(1 for h in held if h.strategy == strategy) >= own_cap
    ):
        return "POSITION_LIMIT"
    today = _local_day(at, policy.zone)
    opened = [
        position_strategy
        for h in risk.history.orders
        if at - h.at < 2 * DAY and _local_day(h.at, policy.zone) == today  # (the first test only saves time)
        for who, action, position_strategy in h.applied
        if who == user and action == "OPENED"
    ]
    daily = policy.for_user("max_opens_per_day", user)
    own_daily = policy.for_strategy("max_opens_per_day", strategy)
    if (daily is not None and len(opened) >= daily) or (own_daily is not None and opened.count(strategy) >= own_daily):
        return "DAILY_LIMIT"
    cooldown = policy.most_specific("cooldown_seconds", strategy, user)
    if cooldown is not None:
        closes = [
            h.at
            for h in risk.history.orders
            if h.instrument == instrument
            for who, action, _ in h.applied
            if who == user and action == "CLOSED"
        ]
        if closes and at - max(closes) < cooldown * MICROS:
            return "COOLDOWN"
    return None


def trips(risk: RiskInput, strategy: str) -> bool:
    """Whether the last order of the history (the one just decided, of ``strategy``, under ``risk``) trips
    the breaker: it is a counted rejection, and the strategy's counted rejections since its last trip
    that fall in ``(at - window_seconds, at]`` reach ``max_rejects`` (the most specific breaker: the
    strategy's, else the global one)."""
    history = risk.history
    if not history.orders or not history.orders[-1].counted_reject:
        return False
    own = risk.policy.strategies.get(strategy, {}).get("breaker")
    breaker: Mapping[str, int] | None = own if own is not None else risk.policy.gateway.get("breaker")
    if breaker is None:
        return False
    since = risk.at - breaker["window_seconds"] * MICROS
    after = history.tripped_at.get(strategy, -1)
    count = sum(
        1
        for index, h in enumerate(history.orders)
        if index > after and h.strategy == strategy and h.counted_reject and h.at > since
    )
    return count >= breaker["max_rejects"]


def flatten_expected(book: Mapping[Key, Held], level: str, target: str | None) -> list[tuple[str, str, Canonical]]:
    """The orders a flatten of ``level``/``target`` must be: for each (strategy that opened, instrument)
    of the positions in the scope (all; those the strategy opened; the user's), in that order, an
    ACCEPTED SELL that closes exactly those positions' holders."""
    holders: dict[tuple[str, str], list[str]] = {}
    for held in book.values():
        if (level == "strategy" and held.strategy != target) or (level == "user" and held.user != target):
            continue
        holders.setdefault((held.strategy, held.instrument), []).append(held.user)
    return [
        (strategy, instrument, canonical("ACCEPTED", None, [(u, "CLOSED", strategy) for u in users], []))
        for (strategy, instrument), users in sorted(holders.items())
    ]
