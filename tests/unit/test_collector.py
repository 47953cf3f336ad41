"""``held_for`` holds the collector off through a big step only, and always gives it back as it was."""

from __future__ import annotations

import gc
from collections.abc import Iterator

import pytest

from ordergate.collector import HOLD_FROM, held_for


@pytest.fixture(autouse=True)
def collector_enabled() -> Iterator[None]:
    was = gc.isenabled()
    gc.enable()
    yield
    if was:
        gc.enable()
    else:
        gc.disable()


def test_a_big_step_runs_with_the_collector_held_off_and_gives_it_back() -> None:
    with held_for(HOLD_FROM):
        assert not gc.isenabled()
    assert gc.isenabled()


def test_a_small_step_leaves_the_collector_running() -> None:
    with held_for(HOLD_FROM - 1):
        assert gc.isenabled()


def test_a_step_that_fails_gives_the_collector_back() -> None:
    with pytest.raises(ValueError, match="the step failed"), held_for(HOLD_FROM * 10):
        raise ValueError("the step failed")
    assert gc.isenabled()


def test_a_collector_paused_by_someone_else_stays_paused() -> None:
    gc.disable()
    with held_for(HOLD_FROM):
        pass
    assert not gc.isenabled()
