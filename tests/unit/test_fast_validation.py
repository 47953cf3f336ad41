"""The hand-written checks of the fast path accept exactly what the documented pydantic models accept."""

from __future__ import annotations

from typing import Any

import orjson
import pytest
from hypothesis import example, given, settings
from hypothesis import strategies as st
from pydantic import ValidationError

from ordergate.api.schemas import LegacyOrderIn, OrderIn
from ordergate.api.validation import legacy_order, v1_order
from ordergate.domain.model import Order

LOOK_ALIKE_NAMES = [
    " ",
    "   ",
    " STRATEGY_A",
    "STRATEGY_A ",
    "\u00a0A",
    "A\u3000",
    "STRATEGY\u200b_A",
    "A\u202e",
    "\u2066A\u2069",
    "\ufeffA",
    "A\u00adB",
    "A\u2028B",
    "A\u2029B",
    "A\u00a0B",
]
names = st.one_of(
    st.sampled_from(["STRATEGY_A", "L&T", "Holland Proctor", "", "x" * 64, "x" * 65, "a\x00b", "é\x85", "ß"]),
    st.sampled_from(LOOK_ALIKE_NAMES),
    st.text(alphabet=st.sampled_from("A \u00a0\u200b\u202e\u2028\u2029\u3000\u00ad"), max_size=4),
    st.text(max_size=70),
    st.integers(-(2**63), 2**63 - 1),
    st.none(),
    st.booleans(),
    st.lists(st.text(max_size=3), max_size=2),
)
sides = st.one_of(
    st.sampled_from(["BUY", "SELL", "buy", "Sell", "HOLD", "", "bUy "]),
    st.sampled_from(["\u017fell", "\u017fELL", "SELL\u200b", "\uff22\uff35\uff39", "\u0131", "BUY\u0307"]),
    st.text(max_size=5),
    st.integers(-(2**63), 2**63 - 1),
)
client_ids = st.one_of(
    st.none(),
    st.sampled_from(["a", "a b", "x" * 128, "x" * 129, "é"]),
    st.text(max_size=10),
    st.integers(-(2**63), 2**63 - 1),
)
extras = st.dictionaries(
    st.sampled_from(["qty", "price", "STRATEGY", "strategy"]), st.integers(-(2**63), 2**63 - 1), max_size=2
)


def model_order(model: type[Any], body: bytes) -> Any:
    try:
        return model.model_validate_json(body)
    except ValidationError:
        return None


@settings(max_examples=400, deadline=None)
@given(strategy=names, instrument=names, side=sides, extra=extras, drop=st.sampled_from([None, "STRATEGY", "POSITION"]))
@example(strategy="S", instrument="I", side="\u017fell", extra={}, drop=None)
@example(strategy=" ", instrument="I", side="BUY", extra={}, drop=None)
def test_legacy_shortcut_agrees_with_the_legacy_model(
    strategy: object, instrument: object, side: object, extra: dict[str, int], drop: str | None
) -> None:
    document: dict[str, object] = {**extra, "STRATEGY": strategy, "INSTRUMENT": instrument, "POSITION": side}
    if drop:
        del document[drop]
    body = orjson.dumps(document)
    fast = legacy_order(orjson.loads(body))
    model = model_order(LegacyOrderIn, body)
    if fast is not None:
        assert model is not None, "the shortcut accepted what the model refuses"
        assert fast == Order(model.STRATEGY, model.INSTRUMENT, model.POSITION)
    else:
        assert model is None, "the shortcut refused what the model accepts"


@settings(max_examples=400, deadline=None)
@given(strategy=names, instrument=names, side=sides, client_order_id=client_ids, extra=extras)
@example(strategy="S", instrument="I", side="buy", client_order_id=None, extra={})
@example(strategy="S", instrument="I", side="\u017fell", client_order_id=None, extra={})
@example(strategy="S\u2028", instrument="I", side="BUY", client_order_id=None, extra={})
def test_v1_shortcut_agrees_with_the_v1_model(
    strategy: object, instrument: object, side: object, client_order_id: object, extra: dict[str, int]
) -> None:
    document = {"strategy": strategy, "instrument": instrument, "side": side, **extra}
    if client_order_id is not None:
        document["client_order_id"] = client_order_id
    body = orjson.dumps(document)
    fast = v1_order(orjson.loads(body))
    model = model_order(OrderIn, body)
    if fast is not None:
        assert model is not None, "the shortcut accepted what the model refuses"
        assert fast == (Order(model.strategy, model.instrument, model.side), model.client_order_id)
    else:
        assert model is None, "the shortcut refused what the model accepts"


@pytest.mark.parametrize("side", ["\u017fell", "\u017fELL", "\uff22\uff35\uff39", "SELL\u200b"])
def test_look_alike_sides_are_refused_by_the_shortcuts_and_the_models(side: str) -> None:
    legacy = orjson.dumps({"STRATEGY": "S", "INSTRUMENT": "I", "POSITION": side})
    v1 = orjson.dumps({"strategy": "S", "instrument": "I", "side": side})
    assert legacy_order(orjson.loads(legacy)) is None
    assert v1_order(orjson.loads(v1)) is None
    assert model_order(LegacyOrderIn, legacy) is None
    assert model_order(OrderIn, v1) is None


@pytest.mark.parametrize("name", LOOK_ALIKE_NAMES[:-1])  # the last one, an inner no-break space, is a valid name
def test_look_alike_names_are_refused_by_the_shortcuts_and_the_models(name: str) -> None:
    legacy = orjson.dumps({"STRATEGY": name, "INSTRUMENT": "I", "POSITION": "BUY"})
    v1 = orjson.dumps({"strategy": "S", "instrument": name, "side": "BUY"})
    assert legacy_order(orjson.loads(legacy)) is None
    assert v1_order(orjson.loads(v1)) is None
    assert model_order(LegacyOrderIn, legacy) is None
    assert model_order(OrderIn, v1) is None
