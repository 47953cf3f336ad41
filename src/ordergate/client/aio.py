""":class:`AsyncClient`: :class:`~ordergate.client.Client` for asyncio, method for method.

The requests are the same values (:mod:`ordergate.client.calls`), sent through
:class:`~ordergate.client.transport.AsyncTransport` with the same retry policy; listings walk their
pages as async iterators and the event stream is an :class:`~ordergate.client.stream.AsyncEventStream`.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Iterable, Mapping
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
from ordergate.client.stream import READ_TIMEOUT, AsyncEventStream
from ordergate.client.transport import DEFAULT_TIMEOUT, AsyncTransport, Call
from ordergate.domain.model import Side, Status

ItemT = TypeVar("ItemT")
CursorT = TypeVar("CursorT", int, str)


async def awalk(
    fetch: Callable[[CursorT | None], Awaitable[Page[ItemT, CursorT]]], start: CursorT | None
) -> AsyncIterator[ItemT]:
    """Every item of a listing from ``start`` on, page after page, until a page's ``next`` is ``None``."""
    cursor = start
    while True:
        page = await fetch(cursor)
        for item in page.items:
            yield item
        if page.next is None:
            return
        cursor = page.next


class AsyncClient:
    """The gateway at ``base_url`` for asyncio; the arguments are :class:`~ordergate.client.Client`'s.
    Use it as an async context manager, or await :meth:`aclose`."""

    def __init__(
        self,
        base_url: str | None = None,
        api_key: str | None = None,
        *,
        retry: RetryPolicy | None = None,
        timeout: float = DEFAULT_TIMEOUT,
        http: httpx.AsyncClient | None = None,
        sleep: Callable[[float], Awaitable[None]] = asyncio.sleep,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.transport = AsyncTransport(
            base_url, api_key, retry=retry, timeout=timeout, http=http, sleep=sleep, clock=clock
        )

    @property
    def base_url(self) -> str:
        return self.transport.base_url

    async def __aenter__(self) -> AsyncClient:
        return self

    async def __aexit__(self, *_: object) -> None:
        await self.aclose()

    async def aclose(self) -> None:
        await self.transport.aclose()

    async def request(
        self,
        method: str,
        path: str,
        document: Any = None,
        *,
        params: Mapping[str, str] | None = None,
        idempotent: bool = False,
    ) -> Any:
        return await self.transport.run(Call(method, path, document, params, idempotent))

    # -- orders ------------------------------------------------------------------------------------

    async def place(
        self,
        strategy: str,
        instrument: str,
        side: Side | str,
        *,
        client_order_id: str | None = None,
        signal_time: str | int | None = None,
    ) -> OrderResult:
        call = calls.place(NewOrder(strategy, instrument, side, client_order_id, signal_time))
        return OrderResult.model_validate(await self.transport.run(call))

    async def place_many(self, orders: Iterable[NewOrder]) -> list[OrderResult | OrderError]:
        run = calls.BatchRun(orders)
        budget = self.transport.retry.start(clock=self.transport.clock)
        while True:
            budget.attempted()
            for positions, call in run.calls():
                run.take(positions, await self.transport.run(call))
            delay = None if run.complete else budget.next_delay()
            if delay is None:
                return run.results()
            await self.transport.sleep(delay)

    async def check(
        self, strategy: str, instrument: str, side: Side | str, *, signal_time: str | int | None = None
    ) -> CheckResult:
        call = calls.check(NewOrder(strategy, instrument, side, signal_time=signal_time))
        return CheckResult.model_validate(await self.transport.run(call))

    async def order(self, order_id: int) -> OrderResult:
        return OrderResult.model_validate(await self.transport.run(Call("GET", f"/v1/orders/{order_id}")))

    # -- listings ----------------------------------------------------------------------------------

    async def orders(
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
        call = calls.listing(
            "/v1/orders",
            strategy=strategy, instrument=instrument, user=user, status=calls.upper_ascii(status),
            side=calls.upper_ascii(side), after=after, limit=limit,
        )  # fmt: skip
        return Page[OrderResult, int].model_validate(await self.transport.run(call))

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
    ) -> AsyncIterator[OrderResult]:
        async def fetch(cursor: int | None) -> Page[OrderResult, int]:
            return await self.orders(
                strategy=strategy, instrument=instrument, user=user, status=status, side=side,
                after=cursor or 0, limit=page_size,
            )  # fmt: skip

        return awalk(fetch, after)

    async def positions(
        self,
        *,
        user: str | None = None,
        strategy: str | None = None,
        instrument: str | None = None,
        after: int = 0,
        limit: int = 100,
    ) -> Page[Position, int]:
        call = calls.listing(
            "/v1/positions", user=user, strategy=strategy, instrument=instrument, after=after, limit=limit
        )
        return Page[Position, int].model_validate(await self.transport.run(call))

    def iter_positions(
        self,
        *,
        user: str | None = None,
        strategy: str | None = None,
        instrument: str | None = None,
        page_size: int = calls.MAX_PAGE,
    ) -> AsyncIterator[Position]:
        async def fetch(cursor: int | None) -> Page[Position, int]:
            return await self.positions(
                user=user, strategy=strategy, instrument=instrument, after=cursor or 0, limit=page_size
            )

        return awalk(fetch, 0)

    async def trades(
        self,
        *,
        user: str | None = None,
        strategy: str | None = None,
        instrument: str | None = None,
        after: int = 0,
        limit: int = 100,
    ) -> Page[Trade, int]:
        call = calls.listing(
            "/v1/trades", user=user, strategy=strategy, instrument=instrument, after=after, limit=limit
        )
        return Page[Trade, int].model_validate(await self.transport.run(call))

    def iter_trades(
        self,
        *,
        user: str | None = None,
        strategy: str | None = None,
        instrument: str | None = None,
        page_size: int = calls.MAX_PAGE,
    ) -> AsyncIterator[Trade]:
        async def fetch(cursor: int | None) -> Page[Trade, int]:
            return await self.trades(
                user=user, strategy=strategy, instrument=instrument, after=cursor or 0, limit=page_size
            )

        return awalk(fetch, 0)

    async def users(self, *, after: str | None = None, limit: int = 100) -> Page[User, str]:
        call = calls.listing("/v1/users", after=after, limit=limit)
        return Page[User, str].model_validate(await self.transport.run(call))

    def iter_users(self, *, page_size: int = calls.MAX_PAGE) -> AsyncIterator[User]:
        async def fetch(cursor: str | None) -> Page[User, str]:
            return await self.users(after=cursor, limit=page_size)

        return awalk(fetch, None)

    async def strategies(self, *, after: str | None = None, limit: int = 100) -> Page[Strategy, str]:
        call = calls.listing("/v1/strategies", after=after, limit=limit)
        return Page[Strategy, str].model_validate(await self.transport.run(call))

    def iter_strategies(self, *, page_size: int = calls.MAX_PAGE) -> AsyncIterator[Strategy]:
        async def fetch(cursor: str | None) -> Page[Strategy, str]:
            return await self.strategies(after=cursor, limit=page_size)

        return awalk(fetch, None)

    # -- the event stream --------------------------------------------------------------------------

    def events(
        self,
        resume_from: str | int | None = None,
        *,
        reconnect: RetryPolicy | None = None,
        read_timeout: float = READ_TIMEOUT,
    ) -> AsyncEventStream:
        return AsyncEventStream(self.transport, resume_from, reconnect, read_timeout)

    # -- controls, risk, keys ----------------------------------------------------------------------

    async def controls(self) -> Controls:
        return Controls.model_validate(await self.transport.run(Call("GET", "/v1/controls")))

    async def set_control(self, level: str, state: str, target: str | None = None) -> Controls:
        document = {"level": str(level), "target": target, "state": str(state)}
        return Controls.model_validate(await self.transport.run(Call("PUT", "/v1/controls", document)))

    async def flatten(self, level: str, target: str | None = None, then: str | None = None) -> FlattenResult:
        document = {"level": str(level), "target": target, "then": str(then) if then is not None else None}
        answer = await self.transport.run(Call("POST", "/v1/controls/flatten", document, idempotent=False))
        return FlattenResult.model_validate(answer)

    async def risk_limits(self) -> RiskLimits:
        return RiskLimits.model_validate(await self.transport.run(Call("GET", "/v1/risk/limits")))

    async def set_risk_limits(self, level: str, limits: Mapping[str, object], target: str | None = None) -> RiskLimits:
        document = {"level": str(level), "target": target, "limits": dict(limits)}
        return RiskLimits.model_validate(await self.transport.run(Call("PUT", "/v1/risk/limits", document)))

    async def set_session(self, session: Mapping[str, object]) -> RiskLimits:
        return RiskLimits.model_validate(await self.transport.run(Call("PUT", "/v1/risk/session", dict(session))))

    async def clear_session(self) -> RiskLimits:
        return RiskLimits.model_validate(await self.transport.run(Call("DELETE", "/v1/risk/session")))

    async def whoami(self) -> WhoAmI:
        return WhoAmI.model_validate(await self.transport.run(Call("GET", "/v1/whoami")))
