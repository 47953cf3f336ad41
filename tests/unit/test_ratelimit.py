"""Token buckets: a burst, then the rate, per caller; the wait until the next token is exact."""

from __future__ import annotations

import pytest

from ordergate.security.ratelimit import RateLimiter


class FakeClock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


def test_a_caller_gets_its_burst_then_one_request_per_token() -> None:
    clock = FakeClock()
    limiter = RateLimiter(2.0, burst=3, clock=clock)
    assert [limiter.take("a") for _ in range(3)] == [0.0, 0.0, 0.0]
    assert limiter.take("a") == pytest.approx(0.5)
    clock.now += 0.5
    assert limiter.take("a") == 0.0
    assert limiter.take("a") == pytest.approx(0.5)


def test_callers_have_their_own_buckets() -> None:
    limiter = RateLimiter(1.0, burst=1, clock=FakeClock())
    assert limiter.take("a") == 0.0
    assert limiter.take("a") > 0.0
    assert limiter.take("b") == 0.0


def test_an_idle_caller_refills_to_the_burst_and_no_further() -> None:
    clock = FakeClock()
    limiter = RateLimiter(10.0, burst=2, clock=clock)
    limiter.take("a")
    limiter.take("a")
    clock.now += 60
    assert [limiter.take("a") for _ in range(2)] == [0.0, 0.0]
    assert limiter.take("a") > 0.0


def test_the_default_burst_is_one_seconds_worth_and_rates_must_be_positive() -> None:
    assert RateLimiter(50.0).burst == 50.0
    assert RateLimiter(0.2).burst == 1.0
    with pytest.raises(ValueError, match="more than 0"):
        RateLimiter(0.0)
