"""The door an order is stored with (SPEC section 11): the one its entrypoint says, else, for the orders no
strategy sent, the door of their origin, whichever sequencer builds them."""

from __future__ import annotations

import pytest

from ordergate.domain.model import Door, Origin
from ordergate.domain.record import DIRECT, Entry, door_of


@pytest.mark.parametrize(
    ("entry", "door"),
    [
        (Entry("tv", None, Origin.STRATEGY, Door.HOOK), Door.HOOK),
        (Entry("ops", None, Origin.FLATTEN), Door.API),  # an admin's flatten, by HTTP or the CLI
        (Entry("risk", None, Origin.SQUARE_OFF), Door.GATEWAY),  # the gateway's own
        (Entry("ops", None, Origin.FLATTEN, Door.FIX), Door.FIX),  # a door said is kept
        (DIRECT, None),  # a strategy order that did not say
    ],
)
def test_an_order_gets_the_door_of_its_entry_or_of_its_origin(entry: Entry, door: Door | None) -> None:
    assert door_of(entry) is door
