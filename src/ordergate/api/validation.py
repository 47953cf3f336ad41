"""A shortcut for valid order bodies that never disagrees with the documented schemas.

Most orders are well formed. Checking a parsed document by hand costs a fraction of a pydantic model
validation, so the hot path tries these checks first and only falls back to the models of
:mod:`ordergate.api.schemas` (the OpenAPI schemas) when a body does not pass them: the models then
either accept it or produce the exact 422 message. The checks accept a subset of what the models
accept, with the same values; a property test holds them to that.
"""

from __future__ import annotations

import re

from ordergate.domain.model import Order, Side
from ordergate.domain.names import name_problem, side_of

_CLIENT_ORDER_ID = re.compile(r"[\x21-\x7e]{1,128}")
_V1_FIELDS = frozenset({"strategy", "instrument", "side", "client_order_id"})


def _is_name(value: object) -> bool:
    return type(value) is str and name_problem(value) is None  # the one definition of a name, as the models use


def _side(value: object) -> Side | None:
    return side_of(value) if type(value) is str else None  # ASCII case only: a long-s "sell" is no SELL


def legacy_order(document: object) -> Order | None:
    """The order of a valid ``/create_order`` body, or ``None`` to let the model decide."""
    if type(document) is not dict:
        return None
    strategy, instrument = document.get("STRATEGY"), document.get("INSTRUMENT")
    side = _side(document.get("POSITION"))
    if side is None or not _is_name(strategy) or not _is_name(instrument):
        return None
    return Order(strategy, instrument, side)  # type: ignore[arg-type]


def v1_order(document: object) -> tuple[Order, str | None] | None:
    """The order and client order id of a valid ``/v1/orders`` item, or ``None`` to let the model decide."""
    if type(document) is not dict or not document.keys() <= _V1_FIELDS:
        return None
    strategy, instrument = document.get("strategy"), document.get("instrument")
    side = _side(document.get("side"))
    client_order_id = document.get("client_order_id")
    if side is None or not _is_name(strategy) or not _is_name(instrument):
        return None
    if client_order_id is not None and (
        type(client_order_id) is not str or _CLIENT_ORDER_ID.fullmatch(client_order_id) is None
    ):
        return None
    return Order(strategy, instrument, side), client_order_id  # type: ignore[arg-type]
