"""The trading session (SPEC section 10): when it is open, in its own zone and across clock changes, how a
bad session document is refused, and ``MARKET_CLOSED`` through ``decide()``."""

from __future__ import annotations

from datetime import UTC, datetime, time
from zoneinfo import ZoneInfo

import pytest

from ordergate.domain.book import Book
from ordergate.domain.model import Order, Reason, Scope, Side, Status
from ordergate.domain.registry import Registry
from ordergate.domain.risk import NO_RISK, RiskContext, RiskError, RiskLevel, RiskState, TradingSession, day_start
from ordergate.domain.rules import decide


def at(zone: str, *local: int) -> float:
    """Seconds since the epoch of a wall-clock time in ``zone`` (the first of two, when the clock went back)."""
    return datetime(*local, tzinfo=ZoneInfo(zone)).timestamp()  # type: ignore[arg-type, misc]


def utc(*moment: int) -> float:
    return datetime(*moment, tzinfo=UTC).timestamp()  # type: ignore[arg-type, misc]


NSE = TradingSession()
"""The default: 09:15 to 15:30 in Asia/Kolkata, Monday to Friday."""


@pytest.mark.parametrize(
    ("local", "is_open"),
    [
        ((2026, 12, 2, 9, 14, 59), False),
        ((2026, 12, 2, 9, 15, 0), True),
        ((2026, 12, 2, 12, 0, 0), True),
        ((2026, 12, 2, 15, 29, 59), True),
        ((2026, 12, 2, 15, 30, 0), False),  # the close minute itself is closed
        ((2026, 12, 4, 10, 0, 0), True),  # Friday
        ((2026, 12, 5, 10, 0, 0), False),  # Saturday
        ((2026, 12, 6, 10, 0, 0), False),  # Sunday
    ],
)
def test_a_day_session_is_open_from_open_to_before_close_on_its_days(local: tuple[int, ...], is_open: bool) -> None:
    assert NSE.is_open(at("Asia/Kolkata", *local)) is is_open


OVERNIGHT = TradingSession("Asia/Kolkata", open=time(22, 0), close=time(2, 0), days=("MON",))
"""Opens Monday 22:00 and runs to Tuesday 02:00: it belongs to the Monday."""


@pytest.mark.parametrize(
    ("local", "is_open"),
    [
        ((2026, 11, 30, 21, 59), False),  # Monday, before the open
        ((2026, 11, 30, 22, 0), True),
        ((2026, 11, 30, 23, 59), True),
        ((2026, 12, 1, 0, 0), True),  # Tuesday morning, still Monday's session
        ((2026, 12, 1, 1, 59), True),
        ((2026, 12, 1, 2, 0), False),  # the close
        ((2026, 12, 1, 22, 0), False),  # Tuesday is not a session day
        ((2026, 11, 30, 1, 0), False),  # Monday morning: Sunday had no session
    ],
)
def test_an_overnight_session_belongs_to_the_day_it_opens_on(local: tuple[int, ...], is_open: bool) -> None:
    assert OVERNIGHT.is_open(at("Asia/Kolkata", *local)) is is_open


def test_a_session_whose_open_equals_its_close_is_open_round_the_clock_on_its_days() -> None:
    weekdays = TradingSession("Asia/Kolkata", open=time(0, 0), close=time(0, 0))
    assert weekdays.is_open(at("Asia/Kolkata", 2026, 12, 4, 0, 0))
    assert weekdays.is_open(at("Asia/Kolkata", 2026, 12, 4, 23, 59, 59))
    assert not weekdays.is_open(at("Asia/Kolkata", 2026, 12, 5, 0, 0))
    at_nine = TradingSession("Asia/Kolkata", open=time(9, 0), close=time(9, 0), days=("WED",))
    assert at_nine.is_open(at("Asia/Kolkata", 2026, 12, 2, 8, 59))  # the whole Wednesday, whatever the hour
    assert not at_nine.is_open(at("Asia/Kolkata", 2026, 12, 3, 9, 0))


LONDON_SUNDAY = TradingSession("Europe/London", open=time(1, 0), close=time(3, 0), days=("SUN",))


def test_a_session_keeps_wall_clock_time_when_the_clocks_go_forward() -> None:
    # Sunday 29 March 2026: at 01:00 UTC, 01:00 GMT becomes 02:00 BST (01:00 to 02:00 local never happens)
    assert not LONDON_SUNDAY.is_open(utc(2026, 3, 29, 0, 59))  # 00:59 GMT
    assert LONDON_SUNDAY.is_open(utc(2026, 3, 29, 1, 0))  # 02:00 BST
    assert LONDON_SUNDAY.is_open(utc(2026, 3, 29, 1, 59))  # 02:59 BST
    assert not LONDON_SUNDAY.is_open(utc(2026, 3, 29, 2, 0))  # 03:00 BST


def test_a_session_keeps_wall_clock_time_when_the_clocks_go_back() -> None:
    # Sunday 25 October 2026: at 01:00 UTC, 02:00 BST becomes 01:00 GMT (01:00 to 02:00 local happens twice)
    assert not LONDON_SUNDAY.is_open(utc(2026, 10, 24, 23, 59))  # 00:59 BST
    assert LONDON_SUNDAY.is_open(utc(2026, 10, 25, 0, 0))  # 01:00 BST
    assert LONDON_SUNDAY.is_open(utc(2026, 10, 25, 1, 30))  # 01:30 GMT
    assert LONDON_SUNDAY.is_open(utc(2026, 10, 25, 2, 59))  # 02:59 GMT
    assert not LONDON_SUNDAY.is_open(utc(2026, 10, 25, 3, 0))  # 03:00 GMT


def test_a_london_day_session_follows_summer_time() -> None:
    city = TradingSession("Europe/London", open=time(8, 0), close=time(16, 30))
    assert city.is_open(utc(2026, 3, 30, 7, 30))  # Monday 08:30 BST
    assert not city.is_open(utc(2026, 3, 23, 7, 30))  # Monday 07:30 GMT, a week before
    assert city.is_open(utc(2026, 10, 26, 16, 15))  # Monday 16:15 GMT
    assert not city.is_open(utc(2026, 10, 19, 16, 15))  # Monday 17:15 BST, a week before


def test_the_trading_day_begins_at_local_midnight_across_both_clock_changes() -> None:
    london = ZoneInfo("Europe/London")
    assert day_start(utc(2026, 3, 29, 12, 0), london) == utc(2026, 3, 29, 0, 0)  # a 23-hour day
    assert day_start(utc(2026, 3, 30, 0, 30), london) == utc(2026, 3, 29, 23, 0)
    assert day_start(utc(2026, 10, 25, 12, 0), london) == utc(2026, 10, 24, 23, 0)  # a 25-hour day
    assert day_start(utc(2026, 10, 26, 0, 30), london) == utc(2026, 10, 26, 0, 0)


def test_the_trading_day_begins_at_the_first_midnight_when_the_clock_goes_back_just_after_it() -> None:
    havana = ZoneInfo("America/Havana")
    # 00:59:59 CDT is followed by 00:00 CST: 00:30 happens twice, both on Sunday 1 November
    second_half_past_midnight = utc(2026, 11, 1, 5, 30)
    assert datetime.fromtimestamp(second_half_past_midnight, havana).fold == 1
    assert day_start(second_half_past_midnight, havana) == utc(2026, 11, 1, 4, 0)


# -- the session document -------------------------------------------------------------------------


def test_a_session_document_round_trips_with_days_in_week_order_and_the_default_zone() -> None:
    session = TradingSession.from_document({"open": "09:15", "close": "15:30", "days": ["FRI", "MON", "FRI"]})
    assert session == TradingSession("Asia/Kolkata", time(9, 15), time(15, 30), ("MON", "FRI"))
    assert session.to_document() == {
        "timezone": "Asia/Kolkata",
        "open": "09:15",
        "close": "15:30",
        "days": ["MON", "FRI"],
        "square_off": None,
    }
    assert TradingSession.from_document(session.to_document()) == session
    assert TradingSession.from_document({"open": "22:00", "close": "02:00", "square_off": "01:45"}).square_off == time(
        1, 45
    )
    assert TradingSession.from_document({"open": "09:15", "close": "15:30"}).days == ("MON", "TUE", "WED", "THU", "FRI")


@pytest.mark.parametrize(
    ("document", "names"),
    [
        ([], "session: must be an object"),
        ({"open": "09:15", "close": "15:30", "timezone": "Mars/Olympus"}, "session.timezone: unknown time zone"),
        ({"open": "09:15", "close": "15:30", "timezone": ""}, "session.timezone: must be an IANA time zone"),
        ({"open": "09:15", "close": "15:30", "timezone": " Asia/Kolkata"}, "session.timezone: must be an IANA"),
        ({"open": "09:15", "close": "15:30", "timezone": 5}, "session.timezone: must be an IANA"),
        ({"open": "09:15", "close": "15:30", "timezone": "../etc/passwd"}, "session.timezone: unknown time zone"),
        ({"close": "15:30"}, "session.open: required"),
        ({"open": "09:15"}, "session.close: required"),
        ({"open": "9:15", "close": "15:30"}, 'session.open: must be a time "HH:MM"'),
        ({"open": "09:15", "close": "24:00"}, 'session.close: must be a time "HH:MM" from 00:00 to 23:59'),
        ({"open": "09:60", "close": "15:30"}, 'session.open: must be a time "HH:MM" from 00:00 to 23:59'),
        ({"open": 915, "close": "15:30"}, 'session.open: must be a time "HH:MM"'),
        ({"open": "ab:cd", "close": "15:30"}, "session.open: must be a time"),
        ({"open": "09:15", "close": "15:30", "days": []}, "session.days: must be a non-empty list"),
        ({"open": "09:15", "close": "15:30", "days": ["MONDAY"]}, "session.days: must be a non-empty list"),
        ({"open": "09:15", "close": "15:30", "days": "MON"}, "session.days: must be a non-empty list"),
        ({"open": "09:15", "close": "15:30", "square_off": "3pm"}, "session.square_off: must be a time"),
        ({"open": "09:15", "close": "15:30", "holidays": []}, "session.holidays: not a field of a session"),
    ],
)
def test_a_bad_session_document_is_refused_naming_the_field(document: object, names: str) -> None:
    with pytest.raises(RiskError) as raised:
        TradingSession.from_document(document)
    assert str(raised.value).startswith(names)


# -- MARKET_CLOSED through decide() ---------------------------------------------------------------

REGISTRY = Registry.from_document({"Ann": {"S1": ["ACC"]}})


def decided(session: TradingSession, moment: float, order: Order = Order("S1", "ACC", Side.BUY)) -> tuple[object, ...]:
    policy = NO_RISK.with_session(session)
    decision = decide(order, REGISTRY, Book(Scope.ACCOUNT), None, RiskContext(policy, RiskState(), moment))
    return decision.status, decision.reason, decision.rejected_for


def test_an_order_outside_the_session_is_rejected_market_closed_for_everyone() -> None:
    saturday = at("Asia/Kolkata", 2026, 12, 5, 10, 0)
    assert decided(NSE, saturday) == (Status.REJECTED, Reason.MARKET_CLOSED, ())
    assert decided(NSE, at("Asia/Kolkata", 2026, 12, 2, 15, 30)) == (Status.REJECTED, Reason.MARKET_CLOSED, ())
    assert decided(NSE, at("Asia/Kolkata", 2026, 12, 2, 15, 29)) == (Status.ACCEPTED, None, ())


def test_market_closed_comes_before_the_rules_and_after_a_stale_signal() -> None:
    saturday = at("Asia/Kolkata", 2026, 12, 5, 10, 0)
    assert decided(NSE, saturday, Order("S9", "ACC", Side.SELL)) == (Status.REJECTED, Reason.MARKET_CLOSED, ())
    policy = NO_RISK.with_session(NSE).with_limits(RiskLevel.GLOBAL, None, {"max_signal_age_seconds": 1})
    stale = RiskContext(policy, RiskState(), saturday, saturday - 2)
    decision = decide(Order("S1", "ACC", Side.BUY), REGISTRY, Book(Scope.ACCOUNT), None, stale)
    assert decision.reason is Reason.STALE_SIGNAL


def test_an_order_refused_market_closed_still_counts_toward_the_rate() -> None:
    policy = NO_RISK.with_session(NSE).with_limits(RiskLevel.GLOBAL, None, {"max_orders_per_minute": 1})
    state, order = RiskState(), Order("S1", "ACC", Side.BUY)
    before_open = at("Asia/Kolkata", 2026, 12, 2, 9, 14, 30)
    closed = decide(order, REGISTRY, Book(Scope.ACCOUNT), None, RiskContext(policy, state, before_open))
    assert closed.reason is Reason.MARKET_CLOSED
    state.record(order, closed.status, closed.reason, closed.applied, before_open)
    opened = at("Asia/Kolkata", 2026, 12, 2, 9, 15)
    assert decide(order, REGISTRY, Book(Scope.ACCOUNT), None, RiskContext(policy, state, opened)).reason is (
        Reason.RATE_LIMIT
    )
