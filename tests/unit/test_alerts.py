"""Alert bodies as TradingView, ChartInk and Amibroker send them, read as the ``/v1/orders`` body they ask
for (SPEC section 11), and every body that is not an order refused naming its problem in the alert's terms."""

from __future__ import annotations

from typing import Any

import orjson
import pytest

from ordergate.api.alerts import alert_order
from ordergate.api.http import ClientError


def order_of(body: str | dict[str, Any], strategy: str = "S1") -> dict[str, Any]:
    raw = body.encode() if isinstance(body, str) else orjson.dumps(body)
    document: dict[str, Any] = orjson.loads(alert_order(raw, strategy))
    return document


def refusal(body: str, strategy: str = "S1") -> ClientError:
    with pytest.raises(ClientError) as raised:
        alert_order(body.encode(), strategy)
    return raised.value


@pytest.mark.parametrize(
    ("body", "expected"),
    [
        ({"ticker": "GRASIM", "action": "buy"}, {"instrument": "GRASIM", "side": "BUY"}),
        ({"symbol": "NSE:GRASIM", "side": "SELL"}, {"instrument": "GRASIM", "side": "SELL"}),
        ({"instrument": "BSE:L&T", "action": "Sell", "id": "x1"}, {"instrument": "L&T", "side": "SELL",
                                                                    "client_order_id": "x1"}),
        ({"ticker": "NSE_EQ:TCS", "action": "buy", "client_order_id": "Long Entry-2026"},
         {"instrument": "TCS", "side": "BUY", "client_order_id": "Long_Entry-2026"}),
        ({"ticker": "ACC", "action": "buy", "id": 42}, {"instrument": "ACC", "side": "BUY", "client_order_id": "42"}),
        ({"ticker": "ACC", "action": "buy", "signal_time": "2026-12-03T09:15:00Z", "price": 101.5, "qty": 3},
         {"instrument": "ACC", "side": "BUY", "signal_time": "2026-12-03T09:15:00Z"}),
        ({"ticker": "ACC", "action": "buy", "strategy": "S1"}, {"instrument": "ACC", "side": "BUY"}),
        ({"ticker": "ACC", "action": "buy", "strategy": None}, {"instrument": "ACC", "side": "BUY"}),
        ("BUY GRASIM", {"instrument": "GRASIM", "side": "BUY"}),
        ("  sell  NSE:GRASIM   id=abc \n", {"instrument": "GRASIM", "side": "SELL", "client_order_id": "abc"}),
        ("buy ACC strategy=S1 signal_time=1764753300000 id=k",
         {"instrument": "ACC", "side": "BUY", "signal_time": 1764753300000, "client_order_id": "k"}),
    ],
)  # fmt: skip
def test_an_alert_becomes_the_order_of_the_hooks_strategy(body: str | dict[str, Any], expected: dict[str, Any]) -> None:
    assert order_of(body) == {"strategy": "S1", **expected}


def test_an_exchange_prefix_alone_is_not_dropped_into_an_empty_name() -> None:
    assert order_of("BUY NSE:")["instrument"] == "NSE:"  # nothing after the colon: the name is kept as sent


@pytest.mark.parametrize(
    ("body", "says"),
    [
        ("", "the alert is empty"),
        ('{"ticker": "ACC"', "not valid JSON"),
        ("[]", "must be a JSON object"),
        ('"BUY ACC"', "side must be buy or sell"),
        ('{"ticker": "ACC"}', "names no side (or action)"),
        ('{"action": "buy"}', "names no instrument (or ticker, symbol)"),
        ('{"ticker": "ACC", "action": "\\u017fell"}', "action must be buy or sell (any letter case), not '\u017fell'"),
        ('{"ticker": ["ACC"], "action": "buy"}', "ticker must be a string"),
        ('{"ticker": "ACC", "instrument": "TCS", "action": "buy"}', "gives the instrument more than once"),
        ('{"ticker": "ACC", "action": "buy", "side": "sell"}', "gives the side more than once"),
        ('{"ticker": "ACC", "action": "buy", "id": 1.5}', "id must be a string"),
        ('{"ticker": "ACC", "action": "buy", "id": "é"}', "id must be 1 to 128 printable ASCII"),
        ('{"ticker": "ACC", "action": "buy", "strategy": 7}', "strategy must be a string"),
        ('{"ticker": "A\\u200bCC", "action": "buy"}', "ticker"),
        ("BUY", "needs a side and an instrument"),
        ("GRASIM BUY", "side must be buy or sell"),
        ("BUY GRASIM qty=1", "'qty=1' is not an option"),
        ("BUY GRASIM id=", "'id=' is not an option"),
        ("BUY GRASIM ID=k", "'ID=k' is not an option"),
        ('{"ticker": "ACC", "symbol": "ACC", "action": "buy"}', "gives the instrument more than once"),
        ('{"ticker": "ACC", "action": "buy", "id": null}', "id must be a string, not None"),
        ('{"ticker": "ACC", "action": "buy", "id": "a", "client_order_id": "a"}', "client order id more than once"),
        ('{"ticker": null, "action": "buy"}', "ticker must be a string, not None"),
        ('{"ticker": "ACC", "action": "buy", "id": "a\\tb"}', "id must be 1 to 128 printable ASCII"),
        ('{"ticker": "ACC", "action": "buy", "id": "   "}', "id must be 1 to 128 printable ASCII"),
    ],
)
def test_a_body_that_is_no_order_is_a_422_naming_the_problem(body: str, says: str) -> None:
    problem = refusal(body)
    assert problem.status == 422
    assert says in problem.message


def test_an_alert_for_another_strategy_is_refused_naming_both() -> None:
    for body in ('{"ticker": "ACC", "action": "buy", "strategy": "S2"}', "BUY ACC strategy=S2"):
        problem = refusal(body)
        assert problem.status == 403
        assert problem.message.startswith("strategy: this hook sends orders for S1 only, not for 'S2'")
