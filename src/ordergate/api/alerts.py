"""What an alerting platform posts to a webhook, turned into the body of a ``/v1/orders`` order.

TradingView, ChartInk and Amibroker send what their users type into an alert message, so the door
takes the spellings they use (SPEC section 11):

- a JSON object: the instrument as ``instrument``, ``ticker`` or ``symbol``; the side as ``side`` or
  ``action`` (``buy``/``sell``, any letter case); optionally the client order id as
  ``client_order_id`` or ``id``, ``strategy`` (which must be the hook's) and ``signal_time``. Other
  members (a price, a quantity a template carries) are ignored;
- text: ``BUY GRASIM`` or ``sell NSE:GRASIM id=abc`` (side, instrument, then ``id=``, ``strategy=``,
  ``signal_time=`` options).

TradingView sends every alert as ``text/plain``, so a body that parses as a JSON object is JSON
whatever its content type. An exchange prefix (``NSE:``, ``BSE:``, any ``WORD:``) is dropped from the
instrument. Spaces inside an id become ``_`` (TradingView order ids such as ``Long Entry`` have
spaces; a client order id has none), so the same alert always gives the same id. A member given as
``null`` is refused (no platform sends one), except ``strategy`` and ``signal_time``, and so is a
member given in two spellings (``ticker`` and ``symbol``). A body that is none of these is a
:class:`~ordergate.api.http.ClientError` naming the problem in the alert's own terms; the order built
is then validated as any ``/v1/orders`` body.
"""

from __future__ import annotations

import re
from typing import Any

import orjson

from ordergate.api.http import ClientError
from ordergate.api.schemas import client_order_id_problem
from ordergate.domain.model import Side
from ordergate.domain.names import name_problem, side_of

INSTRUMENT_FIELDS = ("instrument", "ticker", "symbol")
SIDE_FIELDS = ("side", "action")
ID_FIELDS = ("client_order_id", "id")
TEXT_OPTIONS = {"id": "client_order_id", "client_order_id": "client_order_id", "strategy": "strategy",
                "signal_time": "signal_time"}  # fmt: skip
_EXCHANGE = re.compile(r"[A-Za-z][A-Za-z0-9_]{0,30}:(?=.)")
"""An exchange prefix: a word of up to 31 letters, digits or ``_`` and a colon, before a name."""
_SPACES = re.compile(r" +")
_TEXT_FORM = 'send JSON such as {"ticker": "GRASIM", "action": "buy"} or text such as \'BUY GRASIM\''


def _invalid(message: str, where: str = "body") -> ClientError:
    return ClientError(422, message, [{"loc": ["body", where], "msg": message, "type": "value_error"}])


def alert_order(body: bytes, strategy: str) -> bytes:
    """The ``/v1/orders`` body of an alert to a hook of ``strategy`` (raises a 422 :class:`ClientError`)."""
    text = body.decode("utf-8", "replace").strip()
    if not text:
        raise _invalid(f"the alert is empty: {_TEXT_FORM}")
    fields = _json_fields(text) if text.startswith(("{", "[")) else _text_fields(text)
    named = fields.pop("strategy", None)
    if named is not None and named != strategy:
        raise ClientError(
            403, f"strategy: this hook sends orders for {strategy} only, not for {named!r}; use that strategy's hook"
        )
    document: dict[str, Any] = {"strategy": strategy, **fields}
    return orjson.dumps(document)


def _json_fields(text: str) -> dict[str, Any]:
    try:
        document = orjson.loads(text)
    except orjson.JSONDecodeError as exc:
        raise _invalid(f"the alert starts as JSON but is not valid JSON: {exc}") from None
    if type(document) is not dict:
        raise _invalid(f"the alert must be a JSON object: {_TEXT_FORM}")
    instrument = _one_of(document, INSTRUMENT_FIELDS, "the instrument")
    side = _one_of(document, SIDE_FIELDS, "the side")
    if instrument is None or side is None:
        missing = " and ".join(
            what for what, value in (("instrument (or ticker, symbol)", instrument), ("side (or action)", side))
            if value is None
        )  # fmt: skip
        raise _invalid(f"the alert names no {missing}: {_TEXT_FORM}")
    fields: dict[str, Any] = {
        "instrument": _instrument(*instrument),
        "side": _side(*side),
    }
    client_order_id = _one_of(document, ID_FIELDS, "the client order id")
    if client_order_id is not None:
        fields["client_order_id"] = _client_order_id(*client_order_id)
    if document.get("signal_time") is not None:
        fields["signal_time"] = document["signal_time"]
    strategy = document.get("strategy")
    if strategy is not None:
        if type(strategy) is not str:
            raise _invalid(f"strategy must be a string, not {strategy!r}", "strategy")
        fields["strategy"] = strategy
    return fields


def _one_of(document: dict[str, Any], names: tuple[str, ...], what: str) -> tuple[str, Any] | None:
    """``(field, value)`` of the one spelling of ``what`` the alert uses; two spellings are refused."""
    given = [(name, document[name]) for name in names if name in document]
    if len(given) > 1:
        spelled = ", ".join(f"{name}={value!r}" for name, value in given)
        raise _invalid(f"the alert gives {what} more than once ({spelled}); send one", given[1][0])
    return given[0] if given else None


def _instrument(field: str, value: object) -> str:
    if type(value) is not str:
        raise _invalid(f"{field} must be a string, not {value!r}", field)
    instrument = _EXCHANGE.sub("", value.strip(), count=1)
    problem = name_problem(instrument)
    if problem is not None:
        raise _invalid(f"{field} {problem}", field)
    return instrument


def _side(field: str, value: object) -> str:
    side: Side | None = side_of(value) if type(value) is str else None
    if side is None:
        raise _invalid(f"{field} must be buy or sell (any letter case), not {value!r}", field)
    return side.value


def _client_order_id(field: str, value: object) -> str:
    if type(value) is not str:
        if type(value) is int:  # Amibroker and ChartInk templates may send a number
            value = str(value)
        else:
            raise _invalid(f"{field} must be a string, not {value!r}", field)
    client_order_id = _SPACES.sub("_", value.strip())
    problem = client_order_id_problem(client_order_id)
    if problem is not None:
        raise _invalid(f"{field} {problem}", field)
    return client_order_id


def _text_fields(text: str) -> dict[str, Any]:
    words = text.split()
    if len(words) < 2:
        raise _invalid(f"the alert {text!r} needs a side and an instrument: {_TEXT_FORM}")
    fields: dict[str, Any] = {"side": _side("side", words[0]), "instrument": _instrument("instrument", words[1])}
    for word in words[2:]:
        option, equals, value = word.partition("=")
        field = TEXT_OPTIONS.get(option)
        if not equals or field is None or not value:
            known = ", ".join(f"{name}=..." for name in ("id", "strategy", "signal_time"))
            raise _invalid(f"the alert's {word!r} is not an option of the text form (those are {known})", "body")
        if field == "client_order_id":
            fields[field] = _client_order_id(option, value)
        elif field == "signal_time" and value.isdigit():
            fields[field] = int(value)  # epoch milliseconds, as the JSON form takes them
        else:
            fields[field] = value
    return fields
