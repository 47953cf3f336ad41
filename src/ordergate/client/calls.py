"""The requests of the v1 API as :class:`~ordergate.client.transport.Call` values, shared by both clients.

Building a request is the same whether it is sent blocking or awaited, so it is written once here:
the paths, bodies and query parameters of every operation, the generated client order ids, and the
bookkeeping of a batch whose orders are retried one by one (:class:`BatchRun`). The clients only send
these calls and validate the answers into :mod:`ordergate.client.models`.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterable, Mapping
from typing import Any

from ordergate.client.models import NewOrder, OrderError, OrderResult
from ordergate.client.transport import Call

MAX_BATCH = 1000
"""Orders per ``POST /v1/orders/batch`` (the API's limit); longer lists are sent in several batches."""
MAX_PAGE = 1000
"""The largest ``limit`` of a listing page."""


def new_client_order_id() -> str:
    """A fresh client order id: ``og-`` and a uuid4 in hex, 35 printable ASCII characters (the API
    takes 1 to 128 of them, without spaces)."""
    return f"og-{uuid.uuid4().hex}"


def order_document(order: NewOrder) -> dict[str, Any]:
    """The JSON of one order, with its client order id (generated here when the order has none)."""
    document: dict[str, Any] = {
        "strategy": order.strategy,
        "instrument": order.instrument,
        "side": str(order.side),
        "client_order_id": order.client_order_id if order.client_order_id is not None else new_client_order_id(),
    }
    if order.signal_time is not None:
        document["signal_time"] = order.signal_time
    return document


def place(order: NewOrder) -> Call:
    """``POST /v1/orders``: safe to repeat, because the body carries the client order id."""
    return Call("POST", "/v1/orders", order_document(order))


def check(order: NewOrder) -> Call:
    document = order_document(order)
    del document["client_order_id"]
    return Call("POST", "/v1/orders/check", document)


def query(**filters: object) -> dict[str, str]:
    """Query parameters from keyword filters, leaving out the ``None`` ones."""
    return {name: str(value) for name, value in filters.items() if value is not None}


def listing(path: str, **filters: object) -> Call:
    return Call("GET", path, params=query(**filters))


def upper_ascii(value: object) -> str | None:
    """A status or side filter in the API's letter case (``accepted`` -> ``ACCEPTED``); only ASCII
    letters are folded, so a look-alike with a long s (U+017F) stays what it is (and is refused)."""
    if value is None:
        return None
    text = str(value)
    return text.upper() if text.isascii() else text


class BatchRun:
    """One :meth:`place_many`: the orders with their client order ids, and the results so far.

    Orders a batch answers with a 503 item (not stored) stay pending and go again, with the same ids,
    in the next round; everything else (a decision, a 409) is final.
    """

    def __init__(self, orders: Iterable[NewOrder]) -> None:
        self.documents = [order_document(order) for order in orders]
        self._results: list[OrderResult | OrderError | None] = [None] * len(self.documents)
        self._last_error: dict[int, OrderError] = {}

    def calls(self) -> list[tuple[list[int], Call]]:
        """The batches that send every pending order, with the positions of their orders."""
        pending = [i for i, result in enumerate(self._results) if result is None]
        chunks = [pending[start : start + MAX_BATCH] for start in range(0, len(pending), MAX_BATCH)]
        return [
            (chunk, Call("POST", "/v1/orders/batch", {"orders": [self.documents[i] for i in chunk]}))
            for chunk in chunks
        ]

    def take(self, positions: list[int], answer: Mapping[str, Any]) -> None:
        """Record a batch's answer for the orders at ``positions``."""
        results = answer["results"]
        if len(results) != len(positions):
            raise ValueError(f"the batch answered {len(results)} results for {len(positions)} orders")
        for position, item in zip(positions, results, strict=True):
            client_order_id = self.documents[position]["client_order_id"]
            error = item.get("error")
            if error is None:
                self._results[position] = OrderResult.model_validate(item)
                continue
            failure = OrderError(int(error["status"]), str(error["detail"]), client_order_id)
            if failure.status == 503:
                self._last_error[position] = failure
            else:
                self._results[position] = failure

    @property
    def complete(self) -> bool:
        return all(result is not None for result in self._results)

    def results(self) -> list[OrderResult | OrderError]:
        """The results in the order given; orders still pending end as their last 503 error."""
        return [r if r is not None else self._last_error[i] for i, r in enumerate(self._results)]
