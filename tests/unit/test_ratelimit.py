"""Token buckets: a burst, then the rate, per caller; the wait until the next token is exact; the table
of callers is bounded, and a new caller costs a few operations however many are tracked."""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Iterable, Iterator
from typing import Any

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


def test_wait_says_how_long_until_a_token_without_taking_one() -> None:
    clock = FakeClock()
    limiter = RateLimiter(0.5, burst=2, clock=clock)
    assert limiter.wait("a") == 0.0  # an unseen caller has its burst
    assert [limiter.take("a"), limiter.take("a")] == [0.0, 0.0]
    assert limiter.wait("a") == pytest.approx(2.0)
    assert limiter.wait("a") == pytest.approx(2.0)  # asking again took nothing
    clock.now += 2.0
    assert limiter.wait("a") == 0.0
    assert limiter.take("a") == 0.0


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


class CountingBuckets(OrderedDict[str, Any]):
    """The limiter's table, counting every method called on it and every entry an iteration visits."""

    def __init__(self, *args: Any) -> None:
        self.operations = 0
        super().__init__(*args)

    def _visit(self, entries: Iterable[Any]) -> Iterator[Any]:
        for item in entries:
            self.operations += 1
            yield item

    def __iter__(self) -> Iterator[str]:
        return self._visit(list(super().__iter__()))

    def items(self) -> Any:
        return self._visit(list(super().items()))

    def keys(self) -> Any:
        return self._visit(list(super().keys()))

    def values(self) -> Any:
        return self._visit(list(super().values()))


def _counted(name: str) -> Any:
    method = getattr(OrderedDict, name)

    def counted(self: CountingBuckets, *args: Any, **kwargs: Any) -> Any:
        self.operations += 1
        return method(self, *args, **kwargs)

    return counted


for _name in ("__getitem__", "__setitem__", "__delitem__", "__contains__", "get", "pop", "popitem", "move_to_end"):
    setattr(CountingBuckets, _name, _counted(_name))


def counting(limiter: RateLimiter) -> CountingBuckets:
    table = CountingBuckets(limiter._buckets)
    limiter._buckets = table  # type: ignore[assignment]
    return table


def test_the_number_of_callers_tracked_never_exceeds_the_cap() -> None:
    clock = FakeClock()
    limiter = RateLimiter(1.0, burst=1, clock=clock, max_callers=100)
    for index in range(1000):
        limiter.take(f"caller-{index}")  # every bucket stays empty: none is idle
        assert len(limiter) <= 100
    assert len(limiter) == 100


@pytest.mark.parametrize("cap", [100, 10_000])
def test_a_new_caller_past_the_cap_costs_the_same_few_operations_whatever_the_number_of_callers(cap: int) -> None:
    limiter = RateLimiter(1.0, burst=1, clock=FakeClock(), max_callers=cap)
    for index in range(cap):
        limiter.take(f"old-{index}")
    table = counting(limiter)
    costs = []
    for index in range(50):
        before = table.operations
        limiter.take(f"new-{index}")
        costs.append(table.operations - before)
    assert max(costs) <= 6, costs  # a handful of O(1) table operations, no scan
    assert len(limiter) == cap


def test_the_least_recently_seen_caller_is_forgotten_first_and_a_busy_one_never() -> None:
    clock = FakeClock()
    limiter = RateLimiter(1.0, burst=2, clock=clock, max_callers=3)
    assert limiter.take("busy") == limiter.take("busy") == 0.0
    assert limiter.take("busy") > 0.0  # limited
    for caller in ("a", "b"):
        limiter.take(caller)
    for caller in ("c", "d", "e", "f"):
        assert limiter.take("busy") > 0.0  # still limited: being refused counts as being seen
        limiter.take(caller)
    assert limiter.take("busy") > 0.0
    assert len(limiter) == 3
    assert limiter.take("f") == 0.0  # f, seen last, is remembered with one token left ...
    assert limiter.take("f") > 0.0
    assert limiter.take("a") == 0.0  # ... a was forgotten long ago: it starts again with a full bucket
    assert limiter.take("a") == 0.0
    assert limiter.take("a") > 0.0


def test_a_forgotten_caller_comes_back_with_a_full_burst_at_most() -> None:
    clock = FakeClock()
    limiter = RateLimiter(1.0, burst=3, clock=clock, max_callers=2)
    for _ in range(3):
        assert limiter.take("x") == 0.0
    assert limiter.take("x") > 0.0
    limiter.take("y")
    limiter.take("z")  # x, the least recently seen, is forgotten
    assert len(limiter) == 2
    assert [limiter.take("x") for _ in range(4)] == [0.0, 0.0, 0.0, pytest.approx(1.0)]


def test_the_cap_must_be_positive() -> None:
    with pytest.raises(ValueError, match="at least 1"):
        RateLimiter(1.0, max_callers=0)
