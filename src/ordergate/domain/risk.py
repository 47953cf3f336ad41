"""Pre-trade risk (SPEC section 10): limits, the trading session, and the state they are checked against.

Everything here is pure. The time is an input (the order's ``received_at``, as seconds since the
epoch), never read from a clock, so the gateway, ``/v1/orders/check`` and ``verify`` reach the same
answer for the same order, and tests move the time as they like.

- :class:`LimitSet` is the limits set at one level; :class:`RiskPolicy` is every level plus the
  trading session, immutable and named by its fingerprint (the log records it with each order).
- :class:`RiskState` is what the limits count: open positions per user (and per user and strategy),
  positions opened per trading day, the last close of each instrument per user, the orders of the
  last minute and the counted rejections per strategy. It is *derived from the log*: folding the
  committed orders of the last :data:`HORIZON` seconds (over the open book) into an empty state gives
  the state a gateway decides with, which is how it is rebuilt on start and how ``verify`` re-derives
  every risk decision. :meth:`RiskState.record` folds one decided order in and returns what
  :meth:`RiskState.revert` needs to take it out again exactly, for a group whose commit failed.
- :func:`order_refusal` is what refuses a whole order before the rules (``STALE_SIGNAL``,
  ``MARKET_CLOSED``, ``RATE_LIMIT``, in that order); :func:`hold_back` is what holds single users
  back from a BUY the rules and the controls let through (``POSITION_LIMIT``, ``DAILY_LIMIT``,
  ``COOLDOWN``). ``decide()`` calls both when a policy is in force.

Which level counts: a limit set for a user replaces the global one for that user; a limit set for a
strategy counts only what that strategy did (positions it opened, orders it sent), so it holds beside
the user's or the global one, and the stricter of the two refuses. ``cooldown_seconds`` and
``max_signal_age_seconds`` measure one thing whatever the level: the most specific value set wins
(user over strategy over global). The circuit breaker's ``breaker`` is a strategy's (a global one is
every strategy's default).
"""

from __future__ import annotations

import hashlib
from bisect import bisect_right, insort
from collections import deque
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field, fields, replace
from datetime import UTC, date, datetime, time, timedelta
from enum import StrEnum
from typing import Any, NamedTuple
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

import orjson

from ordergate.domain.book import Book
from ordergate.domain.controls import (
    BREAKER,
    RISK_ACTOR,
    ControlChange,
    ControlLevel,
    Controls,
    ControlSetting,
    ControlState,
)
from ordergate.domain.model import Action, Effect, Order, Origin, Reason, Refusal, Side, Status
from ordergate.domain.names import name_problem
from ordergate.domain.record import OrderRecord

HORIZON = 93_600
"""Seconds of the log the risk state looks back (26 h: a trading day of a zone that moves its clocks,
the longest cooldown and breaker window, and the rolling minute all fit in it)."""
RATE_WINDOW = 60
"""The rolling window of ``max_orders_per_minute``, in seconds."""
FUTURE_TOLERANCE = 5
"""A ``signal_time`` this many seconds ahead of the gateway's clock is refused as ``STALE_SIGNAL``."""
MAX_SECONDS = 86_400
MAX_COUNT = 1_000_000
SQUARE_OFF = "square_off"
"""The kind of the risk change that marks a day's square-off as done."""
DEFAULT_ZONE = "Asia/Kolkata"
"""The session's time zone when none is given, and the zone of the trading day when no session is set."""


class RiskError(ValueError):
    """A limit or session that makes no sense; the message names the field."""


class RiskLevel(StrEnum):
    GLOBAL = "global"
    STRATEGY = "strategy"
    USER = "user"


class Breaker(NamedTuple):
    """Halt the strategy once ``max_rejects`` of its orders were rejected within ``window_seconds``."""

    max_rejects: int
    window_seconds: int


@dataclass(frozen=True, slots=True)
class LimitSet:
    """The limits set at one level (``None``: not set here)."""

    max_open_positions: int | None = None
    max_opens_per_day: int | None = None
    max_orders_per_minute: int | None = None
    cooldown_seconds: int | None = None
    max_signal_age_seconds: int | None = None
    breaker: Breaker | None = None

    @property
    def is_empty(self) -> bool:
        return all(getattr(self, f.name) is None for f in fields(self))

    def to_document(self) -> dict[str, Any]:
        """The limits set, by name (a breaker as ``{"max_rejects", "window_seconds"}``)."""
        document: dict[str, Any] = {}
        for f in fields(self):
            value = getattr(self, f.name)
            if isinstance(value, Breaker):
                document[f.name] = value._asdict()
            elif value is not None:
                document[f.name] = value
        return document

    def patched(self, patch: Mapping[str, object], level: RiskLevel) -> LimitSet:
        """These limits with ``patch`` applied: a value sets a limit, ``None`` clears it, a field left out keeps it.

        Raises :class:`RiskError` naming the first field that is unknown, out of range or not
        settable at ``level``.
        """
        changes: dict[str, Any] = {}
        for name, value in patch.items():
            if name not in LIMIT_NAMES:
                raise RiskError(f"limits.{name}: not a limit (known: {', '.join(LIMIT_NAMES)})")
            if value is not None and level not in LEVELS_OF[name]:
                allowed = " or ".join(f"'{lvl.value}'" for lvl in LEVELS_OF[name])
                raise RiskError(f"limits.{name}: can be set at level {allowed} only, not '{level.value}'")
            changes[name] = None if value is None else _checked(name, value)
        return replace(self, **changes)

    @classmethod
    def from_document(cls, document: object) -> LimitSet:
        if not isinstance(document, dict):
            raise RiskError("limits: must be an object")
        values: dict[str, Any] = {}
        for name, value in document.items():
            if name not in LIMIT_NAMES:
                raise RiskError(f"limits.{name}: not a limit")
            values[name] = _checked(name, value)
        return cls(**values)


LIMIT_NAMES = tuple(f.name for f in fields(LimitSet))
_ANY_LEVEL = (RiskLevel.GLOBAL, RiskLevel.STRATEGY, RiskLevel.USER)
_ORDER_LEVELS = (RiskLevel.GLOBAL, RiskLevel.STRATEGY)
LEVELS_OF: dict[str, tuple[RiskLevel, ...]] = {
    "max_open_positions": _ANY_LEVEL,
    "max_opens_per_day": _ANY_LEVEL,
    "max_orders_per_minute": _ORDER_LEVELS,
    "cooldown_seconds": _ANY_LEVEL,
    "max_signal_age_seconds": _ORDER_LEVELS,
    "breaker": _ORDER_LEVELS,
}
"""Where each limit may be set: a limit on whole orders (their rate, their age, a strategy's rejections)
has no meaning for one user."""
_RANGES = {
    "max_open_positions": (0, MAX_COUNT),
    "max_opens_per_day": (0, MAX_COUNT),
    "max_orders_per_minute": (0, MAX_COUNT),
    "cooldown_seconds": (0, MAX_SECONDS),
    "max_signal_age_seconds": (0, MAX_SECONDS),
}


def _integer(path: str, value: object, low: int, high: int) -> int:
    if type(value) is not int or not low <= value <= high:
        raise RiskError(f"{path}: must be an integer from {low} to {high} (got {orjson.dumps(value).decode()})")
    return value


def _checked(name: str, value: object) -> int | Breaker:
    if name != "breaker":
        low, high = _RANGES[name]
        return _integer(f"limits.{name}", value, low, high)
    if not isinstance(value, dict) or set(value) != {"max_rejects", "window_seconds"}:
        raise RiskError('limits.breaker: must be {"max_rejects": N, "window_seconds": W}')
    return Breaker(
        _integer("limits.breaker.max_rejects", value["max_rejects"], 1, MAX_COUNT),
        _integer("limits.breaker.window_seconds", value["window_seconds"], 1, MAX_SECONDS),
    )


NO_LIMITS = LimitSet()

_DAYS = ("MON", "TUE", "WED", "THU", "FRI", "SAT", "SUN")
_WEEKDAYS = _DAYS[:5]


def _clock_time(path: str, value: object) -> time:
    if not isinstance(value, str) or len(value) != 5 or value[2] != ":":
        raise RiskError(f'{path}: must be a time "HH:MM" (got {orjson.dumps(value).decode()})')
    try:
        return time(int(value[:2]), int(value[3:]))
    except ValueError:
        raise RiskError(f'{path}: must be a time "HH:MM" from 00:00 to 23:59 (got "{value}")') from None


@dataclass(frozen=True, slots=True)
class TradingSession:
    """When orders may arrive: from ``open`` to ``close`` (local time of ``timezone``) on ``days``.

    A session whose ``close`` is before its ``open`` runs overnight: it belongs to the day it opens on.
    ``square_off`` is the local time at which every open position is flattened, once per day.
    """

    timezone: str = DEFAULT_ZONE
    open: time = time(9, 15)
    close: time = time(15, 30)
    days: tuple[str, ...] = _WEEKDAYS
    square_off: time | None = None

    @property
    def zone(self) -> ZoneInfo:
        return ZoneInfo(self.timezone)  # ZoneInfo keeps one instance per name

    def is_open(self, at: float) -> bool:
        """Whether the session is open at ``at`` (seconds since the epoch); ``close`` itself is closed."""
        local = datetime.fromtimestamp(at, self.zone)
        now, day = local.time().replace(tzinfo=None), _DAYS[local.weekday()]
        if self.open < self.close:
            return day in self.days and self.open <= now < self.close
        if self.open == self.close:  # open round the clock on its days
            return day in self.days
        # overnight: from ``open`` on a session day to ``close`` the next morning
        yesterday = _DAYS[(local.weekday() - 1) % 7]
        return (day in self.days and now >= self.open) or (yesterday in self.days and now < self.close)

    def square_off_day(self, at: float) -> date | None:
        """The latest day whose square-off moment has come by ``at`` (within a week), or ``None``.

        A day squares off when it is a session day; the square-off of an overnight session that falls
        in its morning part (before ``close``) belongs to the session that opened the day before.
        """
        if self.square_off is None:
            return None
        zone, today = self.zone, datetime.fromtimestamp(at, self.zone).date()
        morning = self.close < self.open and self.square_off < self.close
        for back in range(8):
            day = today - timedelta(days=back)
            session_day = day - timedelta(days=1) if morning else day
            if _DAYS[session_day.weekday()] not in self.days:
                continue
            if datetime.combine(day, self.square_off, zone).timestamp() <= at:
                return day
        return None

    def to_document(self) -> dict[str, Any]:
        return {
            "timezone": self.timezone,
            "open": self.open.strftime("%H:%M"),
            "close": self.close.strftime("%H:%M"),
            "days": list(self.days),
            "square_off": self.square_off.strftime("%H:%M") if self.square_off is not None else None,
        }

    @classmethod
    def from_document(cls, document: object) -> TradingSession:
        """A session from ``PUT /v1/risk/session``'s body; raises :class:`RiskError` naming the field."""
        if not isinstance(document, dict):
            raise RiskError("session: must be an object")
        unknown = set(document) - {"timezone", "open", "close", "days", "square_off"}
        if unknown:
            raise RiskError(f"session.{sorted(unknown)[0]}: not a field of a session")
        zone = document.get("timezone", DEFAULT_ZONE)
        if not isinstance(zone, str) or not zone or zone != zone.strip():
            raise RiskError("session.timezone: must be an IANA time zone name such as Asia/Kolkata")
        try:
            ZoneInfo(zone)
        except (ZoneInfoNotFoundError, ValueError):
            raise RiskError(
                f"session.timezone: unknown time zone {zone!r} (use an IANA name such as Asia/Kolkata)"
            ) from None
        for required in ("open", "close"):
            if required not in document:
                raise RiskError(f'session.{required}: required ("HH:MM")')
        days = document.get("days", list(_WEEKDAYS))
        if not isinstance(days, list) or not days or not all(isinstance(d, str) and d in _DAYS for d in days):
            raise RiskError(f"session.days: must be a non-empty list of {', '.join(_DAYS)}")
        square_off = document.get("square_off")
        return cls(
            timezone=zone,
            open=_clock_time("session.open", document["open"]),
            close=_clock_time("session.close", document["close"]),
            days=tuple(d for d in _DAYS if d in days),
            square_off=None if square_off is None else _clock_time("session.square_off", square_off),
        )


_DEFAULT_ZONE_INFO = ZoneInfo(DEFAULT_ZONE)


class RiskPolicy:
    """Every limit in force by level and target, and the trading session: immutable, named by fingerprint."""

    __slots__ = ("fingerprint", "gateway", "session", "strategies", "users", "zone")

    def __init__(
        self,
        gateway: LimitSet = NO_LIMITS,
        strategies: Mapping[str, LimitSet] | None = None,
        users: Mapping[str, LimitSet] | None = None,
        session: TradingSession | None = None,
    ) -> None:
        self.gateway = gateway
        self.strategies = {s: v for s, v in sorted((strategies or {}).items()) if not v.is_empty}
        self.users = {u: v for u, v in sorted((users or {}).items()) if not v.is_empty}
        self.session = session
        self.zone = session.zone if session is not None else _DEFAULT_ZONE_INFO
        """The zone of the trading day (``max_opens_per_day``)."""
        canonical = orjson.dumps(self.to_document(), option=orjson.OPT_SORT_KEYS)
        self.fingerprint = hashlib.sha256(canonical).hexdigest()[:16]

    @property
    def restricts_anything(self) -> bool:
        return self.session is not None or not self.gateway.is_empty or bool(self.strategies) or bool(self.users)

    def limits_at(self, level: RiskLevel, target: str | None) -> LimitSet:
        if level is RiskLevel.GLOBAL:
            return self.gateway
        table = self.strategies if level is RiskLevel.STRATEGY else self.users
        return table.get(target or "", NO_LIMITS)

    def with_limits(self, level: RiskLevel, target: str | None, patch: Mapping[str, object]) -> RiskPolicy:
        """This policy with ``patch`` applied at one level; raises :class:`RiskError` naming the problem."""
        target = check_target(level, target)
        limits = self.limits_at(level, target).patched(patch, level)
        if level is RiskLevel.GLOBAL:
            return RiskPolicy(limits, self.strategies, self.users, self.session)
        assert target is not None
        if level is RiskLevel.STRATEGY:
            return RiskPolicy(self.gateway, {**self.strategies, target: limits}, self.users, self.session)
        return RiskPolicy(self.gateway, self.strategies, {**self.users, target: limits}, self.session)

    def with_session(self, session: TradingSession | None) -> RiskPolicy:
        return RiskPolicy(self.gateway, self.strategies, self.users, session)

    def to_document(self) -> dict[str, Any]:
        return {
            "global": self.gateway.to_document(),
            "strategies": {s: v.to_document() for s, v in self.strategies.items()},
            "users": {u: v.to_document() for u, v in self.users.items()},
            "session": self.session.to_document() if self.session is not None else None,
        }

    @classmethod
    def from_document(cls, document: object) -> RiskPolicy:
        """Rebuild a policy from :meth:`to_document`; raises :class:`RiskError` on anything else."""
        if not isinstance(document, dict):
            raise RiskError("risk policy: must be an object")
        strategies, users = document.get("strategies", {}), document.get("users", {})
        if not isinstance(strategies, dict) or not isinstance(users, dict):
            raise RiskError("risk policy: strategies and users must be objects")
        session = document.get("session")
        return cls(
            LimitSet.from_document(document.get("global", {})),
            {str(s): LimitSet.from_document(v) for s, v in strategies.items()},
            {str(u): LimitSet.from_document(v) for u, v in users.items()},
            None if session is None else TradingSession.from_document(session),
        )

    # -- which value holds ---------------------------------------------------------------------

    def user_level(self, name: str, user: str) -> Any:
        """A user's own value of a limit, else the global one."""
        own = self.users.get(user)
        value = getattr(own, name) if own is not None else None
        return value if value is not None else getattr(self.gateway, name)

    def strategy_level(self, name: str, strategy: str) -> Any:
        """A strategy's own value of a limit (``None``: not set for it)."""
        own = self.strategies.get(strategy)
        return getattr(own, name) if own is not None else None

    def most_specific(self, name: str, strategy: str, user: str | None = None) -> Any:
        """The value of the most specific level that sets ``name``: the user, the strategy, the gateway."""
        for limits in (self.users.get(user) if user is not None else None, self.strategies.get(strategy)):
            if limits is not None:
                value = getattr(limits, name)
                if value is not None:
                    return value
        return getattr(self.gateway, name)

    def __eq__(self, other: object) -> bool:
        return isinstance(other, RiskPolicy) and self.fingerprint == other.fingerprint

    def __hash__(self) -> int:
        return hash(self.fingerprint)

    def __repr__(self) -> str:
        return f"RiskPolicy({self.to_document()!r})"


NO_RISK = RiskPolicy()


def check_target(level: RiskLevel, target: str | None) -> str | None:
    """``target`` if it fits ``level``: none for ``global``, a valid name for the others."""
    if level is RiskLevel.GLOBAL:
        if target is not None:
            raise RiskError("target: must be null for level 'global' (its limits are everyone's default)")
        return None
    if target is None:
        raise RiskError(f"target: level '{level.value}' needs the name of a {level.value}")
    problem = name_problem(target)
    if problem is not None:
        raise RiskError(f"target: {level.value} name {problem}")
    return target


_second: tuple[str, float] = ("", 0.0)


def epoch_of(timestamp: str) -> float:
    """Seconds since the epoch of a log timestamp (``2026-12-02T09:15:00.000000Z``).

    Every order under a policy asks, so the second is parsed once (orders of one second share it) and
    only the microseconds per call; anything not in exactly that form is parsed in full.
    """
    global _second
    if len(timestamp) == 27 and timestamp[19] == "." and timestamp[26] == "Z" and timestamp[20:26].isdigit():
        prefix = timestamp[:19]
        if _second[0] != prefix:
            _second = (prefix, datetime.fromisoformat(prefix + "+00:00").timestamp())
        return _second[1] + int(timestamp[20:26]) / 1_000_000
    return datetime.fromisoformat(timestamp).timestamp()


def day_start(at: float, zone: ZoneInfo) -> float:
    """The start (local midnight in ``zone``) of the calendar day ``at`` falls on, in seconds since the epoch."""
    local = datetime.fromtimestamp(at, zone)
    return local.replace(hour=0, minute=0, second=0, microsecond=0, fold=0).timestamp()


_LATEST_SIGNAL = datetime(9999, 12, 31, tzinfo=UTC).timestamp() * 1000


def parse_signal_time(value: object) -> str:
    """A v1 order's ``signal_time`` in the log's form (UTC, milliseconds, ``Z``); raises ``ValueError``.

    Accepts ISO 8601 with a UTC offset (``2026-12-02T09:15:00+05:30``, ``...Z``) or epoch milliseconds
    (an integer). A time without an offset is refused: it could mean any zone.
    """
    if type(value) is int:
        if not 0 <= value <= _LATEST_SIGNAL:
            raise ValueError("signal_time: epoch milliseconds out of range")
        moment = datetime.fromtimestamp(value / 1000, UTC)
    elif isinstance(value, str):
        try:
            moment = datetime.fromisoformat(value)
        except ValueError:
            raise ValueError("signal_time: must be ISO 8601 with a UTC offset, or epoch milliseconds") from None
        if moment.tzinfo is None:
            raise ValueError("signal_time: needs a UTC offset (such as Z or +05:30)")
        moment = moment.astimezone(UTC)
    else:
        raise ValueError("signal_time: must be ISO 8601 with a UTC offset, or epoch milliseconds")
    return moment.strftime("%Y-%m-%dT%H:%M:%S.") + f"{moment.microsecond // 1000:03d}Z"


# -- the state the limits count ----------------------------------------------------------------------

_OPENED, _CLOSED = Action.OPENED, Action.CLOSED
_NOT_COUNTED = frozenset({Reason.HALTED, Reason.REDUCE_ONLY})
"""Rejections a control caused: not the strategy misbehaving, so the breaker does not count them."""
_SWEEP_EVERY = 4096


class Folded(NamedTuple):
    """What :meth:`RiskState.record` changed, so that :meth:`RiskState.revert` can take it out exactly."""

    counters: list[tuple[dict[Any, Any], Any, Any]]
    """``(table, key, value before)``: ``None`` before means the key was absent."""
    appended: list[list[float]]
    """Lists of times that got the order's time (at their end, unless a later time is in them already)."""
    windows: list[tuple[deque[float], list[float]]]
    """``(window, entries it dropped)``: the order's time was added (at its right end, as above)."""
    cleared: list[tuple[str, deque[float]]]
    """``(strategy, its rejections)``: a breaker that tripped forgot them."""
    at: float = 0.0
    """The order's time, as it was added."""


@dataclass(slots=True)
class RiskState:
    """What the limits count, derived from the open book and the orders of the last :data:`HORIZON`.

    Times are kept as they are (seconds since the epoch), never as days: which day a time falls on
    depends on the session's zone, and that may change; a count "today" is the entries since the
    start of the trading day of the order being decided.

    Each list of times stays in time order whatever order the orders are folded in: a shared store
    commits orders on different instruments in any order while no limit is in force, so a log read by
    order_id may go back in time, and the limits count by time, not by order_id (the last close of a
    position is the latest one, too). Orders decided under limits are decided one at a time, so their
    times only grow, and appending is the common case.
    """

    open_by_user: dict[str, int] = field(default_factory=dict)
    open_by_user_strategy: dict[tuple[str, str], int] = field(default_factory=dict)
    opens: dict[str, list[float]] = field(default_factory=dict)
    """When each user opened a position, oldest first."""
    opens_by_strategy: dict[tuple[str, str], list[float]] = field(default_factory=dict)
    """When each user opened a position through each strategy, oldest first."""
    last_close: dict[tuple[str, str], float] = field(default_factory=dict)
    orders: deque[float] = field(default_factory=deque)
    orders_by_strategy: dict[str, deque[float]] = field(default_factory=dict)
    rejects_by_strategy: dict[str, deque[float]] = field(default_factory=dict)
    recorded: int = 0

    @classmethod
    def of_book(cls, book: Book) -> RiskState:
        """The state of a book with no order in the horizon: only its open positions count."""
        state = cls()
        for position in book:
            state.open_by_user[position.user] = state.open_by_user.get(position.user, 0) + 1
            pair = (position.user, position.strategy)
            state.open_by_user_strategy[pair] = state.open_by_user_strategy.get(pair, 0) + 1
        return state

    def record(
        self,
        order: Order,
        status: Status,
        reason: Reason | None,
        applied: Iterable[Effect],
        at: float,
        origin: Origin = Origin.STRATEGY,
        *,
        count_positions: bool = True,
    ) -> Folded:
        """Fold one decided order in; returns what :meth:`revert` needs to take it out again.

        ``count_positions=False`` leaves the open positions alone: a state rebuilt over the open book
        (:meth:`of_book`) folds in the orders of the horizon for their times only.
        """
        folded = Folded([], [], [], [], at)
        counters, appended = folded.counters, folded.appended
        instrument = order.instrument
        for user, action, position_strategy in applied:
            if action is _OPENED:
                if count_positions:
                    _add(counters, self.open_by_user, user, 1)
                    _add(counters, self.open_by_user_strategy, (user, position_strategy), 1)
                appended.append(_times(self.opens, user))
                appended.append(_times(self.opens_by_strategy, (user, position_strategy)))
            else:
                if count_positions:
                    _add(counters, self.open_by_user, user, -1)
                    _add(counters, self.open_by_user_strategy, (user, position_strategy), -1)
                key = (user, instrument)
                before = self.last_close.get(key)
                counters.append((self.last_close, key, before))
                self.last_close[key] = at if before is None or before <= at else before
        for times in appended:
            if times and times[-1] > at:
                insort(times, at)
            else:
                times.append(at)
        if origin is Origin.STRATEGY:  # a flatten is the gateway's own: not a strategy's order or rejection
            strategy = order.strategy
            _slide(folded, self.orders, at, RATE_WINDOW)
            _slide(folded, _window(self.orders_by_strategy, strategy), at, RATE_WINDOW)
            if status is Status.REJECTED and reason not in _NOT_COUNTED:
                _slide(folded, _window(self.rejects_by_strategy, strategy), at, MAX_SECONDS)
        self.recorded += 1
        if self.recorded % _SWEEP_EVERY == 0:
            self._sweep(at)
        return folded

    def trip(self, folded: Folded, strategy: str) -> None:
        """The strategy's breaker tripped with the order ``folded`` is of: its counted rejections start over
        (an admin who lets it trade again gives it a full window)."""
        rejects = self.rejects_by_strategy.pop(strategy, None)
        if rejects is not None:
            folded.cleared.append((strategy, rejects))

    def revert(self, folded: Folded) -> None:
        """Take one :meth:`record` (and its :meth:`trip`) out again: the last one not yet reverted."""
        for strategy, rejects in reversed(folded.cleared):
            self.rejects_by_strategy[strategy] = rejects
        at = folded.at
        for window, dropped in reversed(folded.windows):
            if window[-1] == at:
                window.pop()
            else:
                window.remove(at)
            window.extendleft(reversed(dropped))
        for times in folded.appended:
            if times:  # (a sweep may have dropped it with everything older than the horizon: never read again)
                if times[-1] == at:
                    times.pop()
                elif at in times:
                    times.remove(at)
        for table, key, before in reversed(folded.counters):
            if before is None:
                table.pop(key, None)
            else:
                table[key] = before

    def _sweep(self, at: float) -> None:
        """Drop what no later order can count: opens and closes more than :data:`HORIZON` before ``at``.

        A trading day, a cooldown and a breaker window are all shorter than the horizon, so the
        answers of the limits never depend on when a sweep ran.
        """
        oldest = at - HORIZON
        _sweep_times(self.opens, oldest)
        _sweep_times(self.opens_by_strategy, oldest)
        for pair in [k for k, closed in self.last_close.items() if closed <= oldest]:
            del self.last_close[pair]

    # -- what the limits read ------------------------------------------------------------------

    def opens_reach(self, times: list[float] | None, since: float, count: int) -> bool:
        """Whether ``count`` of ``times`` are at or after ``since`` (walks back at most ``count`` entries)."""
        if times is None or len(times) < count:
            return count <= 0
        return count <= 0 or times[-count] >= since

    def orders_within_minute(self, strategy: str | None, at: float) -> int:
        """Orders received in the rolling minute before ``at`` (of ``strategy``, or all).

        The window keeps the entries of the minute before the last order recorded; those that have
        aged out since are at its left end, and the next :meth:`record` drops them: counting them
        costs, over time, one step per order.
        """
        window = self.orders if strategy is None else self.orders_by_strategy.get(strategy)
        if not window:
            return 0
        oldest, stale = at - RATE_WINDOW, 0
        for entry in window:
            if entry > oldest:
                break
            stale += 1
        return len(window) - stale

    def rejects_reach(self, strategy: str, at: float, seconds: int, count: int) -> bool:
        """Whether ``count`` of the strategy's counted rejections fall in ``(at - seconds, at]``.

        Walks from the newest one back, at most ``count`` steps.
        """
        window = self.rejects_by_strategy.get(strategy)
        if window is None or len(window) < count:
            return False
        oldest = at - seconds
        for seen, entry in enumerate(reversed(window), start=1):
            if entry <= oldest:
                return False
            if seen >= count:
                return True
        return False


def _add(counters: list[tuple[dict[Any, Any], Any, Any]], table: dict[Any, int], key: Any, delta: int) -> None:
    before = table.get(key)
    counters.append((table, key, before))
    after = (before or 0) + delta
    if after:
        table[key] = after
    else:
        table.pop(key, None)


def _sweep_times(table: dict[Any, list[float]], oldest: float) -> None:
    for key in list(table):
        times = table[key]
        if not times or times[-1] <= oldest:  # (a revert may have emptied it)
            del table[key]
        elif times[0] <= oldest:
            del times[: bisect_right(times, oldest)]


def _times(table: dict[Any, list[float]], key: Any) -> list[float]:
    times = table.get(key)
    if times is None:
        times = table[key] = []
    return times


def _window(table: dict[str, deque[float]], key: str) -> deque[float]:
    window = table.get(key)
    if window is None:
        window = table[key] = deque()
    return window


def _slide(folded: Folded, window: deque[float], at: float, keep: int) -> None:
    """Add ``at`` (in time order: at the end unless a later time is in already), dropping the entries older
    than ``keep`` seconds before it (kept for the undo)."""
    oldest = at - keep
    dropped: list[float] = _NONE_DROPPED
    if window and window[0] <= oldest:
        dropped = []
        while window and window[0] <= oldest:
            dropped.append(window.popleft())
    if window and window[-1] > at:
        window.insert(bisect_right(window, at), at)
    else:
        window.append(at)
    folded.windows.append((window, dropped))


_NONE_DROPPED: list[float] = []
"""What :func:`_slide` dropped when it dropped nothing (shared: only ever read)."""


def fold(state: RiskState, record: OrderRecord, *, count_positions: bool = True) -> Folded:
    """Fold a stored order into ``state`` as the gateway did when it decided it, its breaker trip included
    (``record.control_change``, as the store reads it back)."""
    decision = record.decision
    folded = state.record(
        record.order,
        decision.status,
        decision.reason,
        decision.applied,
        epoch_of(record.received_at),
        record.origin,
        count_positions=count_positions,
    )
    if record.control_change is not None and record.control_change[0].reason == BREAKER:
        state.trip(folded, record.order.strategy)
    return folded


def rebuilt(book: Book, recent: Iterable[OrderRecord]) -> RiskState:
    """The risk state of a gateway whose open positions are ``book`` and whose log's last
    :data:`HORIZON` seconds are ``recent`` (in order_id order): what it starts with under a policy."""
    state = RiskState.of_book(book)
    for record in recent:
        fold(state, record, count_positions=False)
    return state


def horizon_start(now: str) -> str:
    """The log timestamp :data:`HORIZON` seconds before ``now``: the oldest order the risk state needs."""
    moment = datetime.fromisoformat(now) - timedelta(seconds=HORIZON)
    return moment.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


# -- the decision ------------------------------------------------------------------------------------


class RiskContext(NamedTuple):
    """What the risk step of one decision needs besides the order: the policy, the state, the time."""

    policy: RiskPolicy
    state: RiskState
    at: float
    """The order's ``received_at``, in seconds since the epoch."""
    signal_at: float | None = None
    """The order's ``signal_time`` in seconds since the epoch, if it carries one."""
    origin: Origin = Origin.STRATEGY

    @property
    def day_start(self) -> float:
        """When the trading day of the order began (midnight in the zone of the trading day)."""
        return day_start(self.at, self.policy.zone)


def order_refusal(order: Order, risk: RiskContext) -> Reason | None:
    """Why the whole order is refused before the rules, or ``None``: stale signal, closed market, rate.

    An order the gateway sends itself (a flatten, the square-off) is never refused here.
    """
    if risk.origin is not Origin.STRATEGY:
        return None
    policy, at, strategy = risk.policy, risk.at, order.strategy
    if risk.signal_at is not None:
        if risk.signal_at > at + FUTURE_TOLERANCE:
            return Reason.STALE_SIGNAL
        max_age = policy.most_specific("max_signal_age_seconds", strategy)
        if max_age is not None and at - risk.signal_at > max_age:
            return Reason.STALE_SIGNAL
    if policy.session is not None and not policy.session.is_open(at):
        return Reason.MARKET_CLOSED
    state = risk.state
    overall = policy.gateway.max_orders_per_minute
    if overall is not None and state.orders_within_minute(None, at) >= overall:
        return Reason.RATE_LIMIT
    own = policy.strategy_level("max_orders_per_minute", strategy)
    if own is not None and state.orders_within_minute(strategy, at) >= own:
        return Reason.RATE_LIMIT
    return None


_PRECEDENCE = (Reason.POSITION_LIMIT, Reason.DAILY_LIMIT, Reason.COOLDOWN)


def hold_back(order: Order, users: Iterable[str], risk: RiskContext) -> list[Refusal]:
    """The ``users`` (those a BUY would open a position for) a limit holds back, with the limit's reason.

    Each user is checked on its own, against the state before this order: ``max_open_positions``
    (the user's or the global value, over all the user's positions; the strategy's value over the
    positions it opened), ``max_opens_per_day`` (likewise, over the positions opened this trading
    day), ``cooldown_seconds`` (the most specific value, since the user last closed the instrument).
    When several limits refuse one user, the first of ``POSITION_LIMIT``, ``DAILY_LIMIT``,
    ``COOLDOWN`` is its reason.
    """
    if order.side is not Side.BUY or risk.origin is not Origin.STRATEGY:
        return []
    policy, state, at, strategy = risk.policy, risk.state, risk.at, order.strategy
    since: float | None = None  # the start of the trading day, worked out only if a daily limit asks
    own_open = policy.strategy_level("max_open_positions", strategy)
    own_daily = policy.strategy_level("max_opens_per_day", strategy)
    refused: list[Refusal] = []
    for user in users:
        reason: Reason | None = None
        cap = policy.user_level("max_open_positions", user)
        if (cap is not None and state.open_by_user.get(user, 0) >= cap) or (
            own_open is not None and state.open_by_user_strategy.get((user, strategy), 0) >= own_open
        ):
            reason = Reason.POSITION_LIMIT
        else:
            daily = policy.user_level("max_opens_per_day", user)
            if daily is not None or own_daily is not None:
                if since is None:
                    since = risk.day_start
                if (daily is not None and state.opens_reach(state.opens.get(user), since, daily)) or (
                    own_daily is not None
                    and state.opens_reach(state.opens_by_strategy.get((user, strategy)), since, own_daily)
                ):
                    reason = Reason.DAILY_LIMIT
            if reason is None:
                cooldown = policy.most_specific("cooldown_seconds", strategy, user)
                closed = state.last_close.get((user, order.instrument))
                if cooldown is not None and closed is not None and at - closed < cooldown:
                    reason = Reason.COOLDOWN
        if reason is not None:
            refused.append(Refusal(user, reason))
    return refused


def limit_reason(refused: Iterable[Refusal]) -> Reason:
    """The reason of a BUY the limits held back from everyone: the first of :data:`_PRECEDENCE` among them."""
    reasons = {r.reason for r in refused}
    return next(reason for reason in _PRECEDENCE if reason in reasons)


def breaker_of(policy: RiskPolicy, strategy: str) -> Breaker | None:
    breaker: Breaker | None = policy.most_specific("breaker", strategy)
    return breaker


def breaker_trips(order: Order, status: Status, reason: Reason | None, risk: RiskContext) -> bool:
    """Whether this rejection (already folded into the state) brings its strategy to its breaker's count."""
    if status is not Status.REJECTED or reason in _NOT_COUNTED or risk.origin is not Origin.STRATEGY:
        return False
    breaker = breaker_of(risk.policy, order.strategy)
    if breaker is None:
        return False
    return risk.state.rejects_reach(order.strategy, risk.at, breaker.window_seconds, breaker.max_rejects)


def tripped(
    record: OrderRecord, risk: RiskContext, controls: Controls, folded: Folded
) -> tuple[Controls, ControlChange] | None:
    """Whether ``record`` (decided under ``risk``, already folded in as ``folded``) trips its strategy's
    breaker; if so the strategy's counted rejections start over, and the answer is the controls with the
    strategy ``HALTED`` and the change to store in the order's transaction (by ``risk``, reason ``BREAKER``).
    """
    order, decision = record.order, record.decision
    if not breaker_trips(order, decision.status, decision.reason, risk):
        return None
    risk.state.trip(folded, order.strategy)
    setting = ControlSetting(ControlLevel.STRATEGY, order.strategy, ControlState.HALTED)
    halted = controls.with_setting(setting)
    change = ControlChange(record.received_at, setting, RISK_ACTOR, halted.fingerprint, BREAKER, record.order_id)
    return halted, change


def square_off_mark(at: str, day: date, order_ids: Sequence[int], policy_fingerprint: str) -> RiskChange:
    """The mark that says ``day`` was squared off (by the orders ``order_ids``), stored as a risk change of
    kind :data:`SQUARE_OFF` under the policy in force, so that it runs once a day across restarts."""
    change = orjson.dumps({"day": day.isoformat(), "orders": list(order_ids)}).decode()
    return RiskChange(at, SQUARE_OFF, None, None, change, RISK_ACTOR, policy_fingerprint)


def squared_off_day(mark: RiskChange | None) -> date:
    """The day a :func:`square_off_mark` names (``date.min`` for none)."""
    return date.fromisoformat(orjson.loads(mark.change)["day"]) if mark is not None else date.min


class RiskChange(NamedTuple):
    """One change of the risk policy, as recorded: when, what, by which key, and the policy it put in force.

    ``kind`` is ``limits`` (``level``/``target`` name where, ``change`` is the JSON object of the limits
    given: a value sets, ``null`` clears) or ``session`` (``level``/``target`` are ``None``, ``change`` is
    the session's JSON, or ``null`` when the session was removed).
    """

    at: str
    kind: str
    level: str | None
    target: str | None
    change: str
    by: str | None
    fingerprint: str
    """The fingerprint of the whole risk policy in force after the change."""
