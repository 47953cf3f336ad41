""":class:`Client`: the blocking Python client of a running gateway (its v1 API).

Each method sends one request (built by :mod:`ordergate.client.calls`) through
:class:`~ordergate.client.transport.SyncTransport`, which retries what is safe to retry, and returns
a model of :mod:`ordergate.client.models` or raises an exception of :mod:`ordergate.client.errors`.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable, Iterator, Mapping
from typing import Any, TypeVar

import httpx

from ordergate.client import calls
from ordergate.client.models import (
    CheckResult,
    Controls,
    FlattenResult,
    NewOrder,
    OrderError,
    OrderResult,
    Page,
    Position,
    RiskLimits,
    Strategy,
    Trade,
    User,
    WhoAmI,
)
from ordergate.client.retry import RetryPolicy
from ordergate.client.stream import READ_TIMEOUT, EventStream
from ordergate.client.transport import DEFAULT_TIMEOUT, Call, SyncTransport
from ordergate.domain.model import Side, Status

ItemT = TypeVar("ItemT")
CursorT = TypeVar("CursorT", int, str)


def walk(fetch: Callable[[CursorT | None], Page[ItemT, CursorT]], start: CursorT | None) -> Iterator[ItemT]:
    """Every item of a listing from ``start`` on, page after page, until a page's ``next`` is ``None``."""
    cursor = start
    while True:
        page = fetch(cursor)
        yield from page.items
        if page.next is None:
            return
        cursor = page.next


class Client:
    """A gateway at ``base_url`` (default ``http://127.0.0.1:8080``), with ``api_key`` (default: the
    ``ORDERGATE_API_KEY`` variable) as a bearer token. ``retry`` says how hard to try (see
    :class:`~ordergate.client.retry.RetryPolicy`); ``http`` replaces the ``httpx.Client``; ``sleep`` and
    ``clock`` are for tests. Use it as a context manager, or call :meth:`close`.
    """

    def __init__(
        self,
        base_url: str | None = None,
        api_key: str | None = None,
        *,
        retry: RetryPolicy | None = None,
        timeout: float = DEFAULT_TIMEOUT,
        http: httpx.Client | None = None,
        sleep: Callable[[float], None] = time.sleep,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.transport = SyncTransport(
            base_url, api_key, retry=retry, timeout=timeout, http=http, sleep=sleep, clock=clock
        )

    @property
    def base_url(self) -> str:
        return self.transport.base_url

    def __enter__(self) -> Client:
        return self

    def __exit__(self, *_: object) -> None:
        self.close()

    def close(self) -> None:
        self.transport.close()

    def request(
        self,
        method: str,
        path: str,
        document: Any = None,
        *,
        params: Mapping[str, str] | None = None,
        idempotent: bool = False,
    ) -> Any:
        """Any endpoint, for what has no method here: the JSON of its 2xx answer. A lost answer is
        retried only when ``idempotent`` says that repeating the request is safe."""
        return self.transport.run(Call(method, path, document, params, idempotent))

    # -- orders ------------------------------------------------------------------------------------

    def place(
        self,
        strategy: str,
        instrument: str,
        side: Side | str,
        *,
        client_order_id: str | None = None,
        signal_time: str | int | None = None,
    ) -> OrderResult:
        """Place one order: its decision (``replayed`` when the client order id was decided before).

        A client order id is generated when none is given and sent with every retry, so the order is
        decided once however often the answer is lost. Raises :class:`~ordergate.client.errors.Conflict`
        when the id was used for a different order."""
        call = calls.place(NewOrder(strategy, instrument, side, client_order_id, signal_time))
        return OrderResult.model_validate(self.transport.run(call))

    def place_many(self, orders: Iterable[NewOrder]) -> list[OrderResult | OrderError]:
        """Place orders in batches of up to 1000, each atomic on its own: one result per order, in
        order. An order the gateway could not store (a 503 item) is sent again with its id until the
        retry policy runs out; a 409 item is an :class:`OrderError`, not an exception."""
        run = calls.BatchRun(orders)
        budget = self.transport.retry.start(clock=self.transport.clock)
        while True:
            budget.attempted()
            for positions, call in run.calls():
                run.take(positions, self.transport.run(call))
            delay = None if run.complete else budget.next_delay()
            if delay is None:
                return run.results()
            self.transport.sleep(delay)

    def check(
        self, strategy: str, instrument: str, side: Side | str, *, signal_time: str | int | None = None
    ) -> CheckResult:
        """The decision the order would get now; nothing is stored."""
        call = calls.check(NewOrder(strategy, instrument, side, signal_time=signal_time))
        return CheckResult.model_validate(self.transport.run(call))

    def order(self, order_id: int) -> OrderResult:
        """One stored order (:class:`~ordergate.client.errors.NotFound` when there is none)."""
        return OrderResult.model_validate(self.transport.run(Call("GET", f"/v1/orders/{order_id}")))

    # -- listings ----------------------------------------------------------------------------------

    def orders(
        self,
        *,
        strategy: str | None = None,
        instrument: str | None = None,
        user: str | None = None,
        status: Status | str | None = None,
        side: Side | str | None = None,
        after: int = 0,
        limit: int = 100,
    ) -> Page[OrderResult, int]:
        """One page of the order log, ascending by order id; ``next`` is the ``after`` of the next page."""
        call = calls.listing(
            "/v1/orders",
            strategy=strategy, instrument=instrument, user=user, status=calls.upper_ascii(status),
            side=calls.upper_ascii(side), after=after, limit=limit,
        )  # fmt: skip
        return Page[OrderResult, int].model_validate(self.transport.run(call))

    def iter_orders(
        self,
        *,
        strategy: str | None = None,
        instrument: str | None = None,
        user: str | None = None,
        status: Status | str | None = None,
        side: Side | str | None = None,
        after: int = 0,
        page_size: int = calls.MAX_PAGE,
    ) -> Iterator[OrderResult]:
        """Every order after ``after`` with these filters, fetched a page at a time as you iterate."""

        def fetch(cursor: int | None) -> Page[OrderResult, int]:
            return self.orders(
                strategy=strategy, instrument=instrument, user=user, status=status, side=side,
                after=cursor or 0, limit=page_size,
            )  # fmt: skip

        return walk(fetch, after)

    def positions(
        self,
        *,
        user: str | None = None,
        strategy: str | None = None,
        instrument: str | None = None,
        after: int = 0,
        limit: int = 100,
    ) -> Page[Position, int]:
        """One page of the open positions (``strategy``: the one that opened them)."""
        call = calls.listing(
            "/v1/positions", user=user, strategy=strategy, instrument=instrument, after=after, limit=limit
        )
        return Page[Position, int].model_validate(self.transport.run(call))

    def iter_positions(
        self,
        *,
        user: str | None = None,
        strategy: str | None = None,
        instrument: str | None = None,
        page_size: int = calls.MAX_PAGE,
    ) -> Iterator[Position]:
        def fetch(cursor: int | None) -> Page[Position, int]:
            return self.positions(
                user=user, strategy=strategy, instrument=instrument, after=cursor or 0, limit=page_size
            )

        return walk(fetch, 0)

    def trades(
        self,
        *,
        user: str | None = None,
        strategy: str | None = None,
        instrument: str | None = None,
        after: int = 0,
        limit: int = 100,
    ) -> Page[Trade, int]:
        """One page of the closed round trips."""
        call = calls.listing(
            "/v1/trades", user=user, strategy=strategy, instrument=instrument, after=after, limit=limit
        )
        return Page[Trade, int].model_validate(self.transport.run(call))

    def iter_trades(
        self,
        *,
        user: str | None = None,
        strategy: str | None = None,
        instrument: str | None = None,
        page_size: int = calls.MAX_PAGE,
    ) -> Iterator[Trade]:
        def fetch(cursor: int | None) -> Page[Trade, int]:
            return self.trades(user=user, strategy=strategy, instrument=instrument, after=cursor or 0, limit=page_size)

        return walk(fetch, 0)

    def users(self, *, after: str | None = None, limit: int = 100) -> Page[User, str]:
        """One page of the users by name; ``next`` is the last name of the page."""
        return Page[User, str].model_validate(self.transport.run(calls.listing("/v1/users", after=after, limit=limit)))

    def iter_users(self, *, page_size: int = calls.MAX_PAGE) -> Iterator[User]:
        return walk(lambda cursor: self.users(after=cursor, limit=page_size), None)

    def strategies(self, *, after: str | None = None, limit: int = 100) -> Page[Strategy, str]:
        """One page of the strategies by name, with their subscribers and instruments."""
        call = calls.listing("/v1/strategies", after=after, limit=limit)
        return Page[Strategy, str].model_validate(self.transport.run(call))

    def iter_strategies(self, *, page_size: int = calls.MAX_PAGE) -> Iterator[Strategy]:
        return walk(lambda cursor: self.strategies(after=cursor, limit=page_size), None)

    # -- the event stream --------------------------------------------------------------------------

    def events(
        self,
        resume_from: str | int | None = None,
        *,
        reconnect: RetryPolicy | None = None,
        read_timeout: float = READ_TIMEOUT,
    ) -> EventStream:
        """The committed orders after ``resume_from`` (an event's token, an order id, 0 for the whole log;
        ``None``: from now), then live ones, reconnecting by itself (:mod:`ordergate.client.stream`)."""
        return EventStream(self.transport, resume_from, reconnect, read_timeout)

    # -- controls, risk, keys ----------------------------------------------------------------------

    def controls(self) -> Controls:
        return Controls.model_validate(self.transport.run(Call("GET", "/v1/controls")))

    def set_control(self, level: str, state: str, target: str | None = None) -> Controls:
        """Set a trading control (``global`` with no target, or a strategy or user); needs an admin key."""
        document = {"level": str(level), "target": target, "state": str(state)}
        return Controls.model_validate(self.transport.run(Call("PUT", "/v1/controls", document)))

    def flatten(self, level: str, target: str | None = None, then: str | None = None) -> FlattenResult:
        """Close every open position in the scope; ``then`` sets HALTED or REDUCE_ONLY with the orders.
        Not repeated after a lost answer (a second flatten would close positions opened since)."""
        document = {"level": str(level), "target": target, "then": str(then) if then is not None else None}
        answer = self.transport.run(Call("POST", "/v1/controls/flatten", document, idempotent=False))
        return FlattenResult.model_validate(answer)

    def risk_limits(self) -> RiskLimits:
        return RiskLimits.model_validate(self.transport.run(Call("GET", "/v1/risk/limits")))

    def set_risk_limits(self, level: str, limits: Mapping[str, object], target: str | None = None) -> RiskLimits:
        """Set (a value) or clear (``None``) limits at one level; limits left out are kept."""
        document = {"level": str(level), "target": target, "limits": dict(limits)}
        return RiskLimits.model_validate(self.transport.run(Call("PUT", "/v1/risk/limits", document)))

    def set_session(self, session: Mapping[str, object]) -> RiskLimits:
        """Set the trading session (``{"open", "close", "timezone", "days", "square_off"}``)."""
        return RiskLimits.model_validate(self.transport.run(Call("PUT", "/v1/risk/session", dict(session))))

    def clear_session(self) -> RiskLimits:
        return RiskLimits.model_validate(self.transport.run(Call("DELETE", "/v1/risk/session")))

    def whoami(self) -> WhoAmI:
        """The key this client uses: its name, role and bounds."""
        return WhoAmI.model_validate(self.transport.run(Call("GET", "/v1/whoami")))
