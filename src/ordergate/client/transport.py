"""Sending one request to the gateway with retries, and turning its answer into JSON or an exception.

:class:`Call` describes a request (method, path, JSON body, query, whether repeating it is safe);
:class:`SyncTransport` and :class:`AsyncTransport` send it with an httpx client, retrying as
:mod:`ordergate.client.retry` decides (the same budget arithmetic in both), and return the JSON of a
2xx or raise the exception of :mod:`ordergate.client.errors` that fits. :func:`send_with_retries`
and :func:`asend_with_retries` are the bare loops, for callers that read answers themselves (the
load producer, which must not pay for models on its hot path).
"""

from __future__ import annotations

import asyncio
import logging
import os
import time
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass
from typing import Any

import httpx
import orjson

from ordergate.client.errors import AnswerLost, GatewayUnreachable, api_error
from ordergate.client.retry import NOT_SENT, RetryBudget, RetryPolicy, should_retry

DEFAULT_URL = "http://127.0.0.1:8080"
API_KEY_VARIABLE = "ORDERGATE_API_KEY"
DEFAULT_TIMEOUT = 10.0
_log = logging.getLogger(__name__)

Outcome = httpx.Response | httpx.TransportError
"""What one attempt gave: an answer (any status) or the network error that stopped it."""


@dataclass(frozen=True, slots=True)
class Call:
    """One request of the API; ``idempotent``: repeating it after a lost answer changes nothing more."""

    method: str
    path: str
    document: Any = None
    params: Mapping[str, str] | None = None
    idempotent: bool = True


def send_with_retries(
    send: Callable[[], httpx.Response], budget: RetryBudget, *, idempotent: bool, sleep: Callable[[float], None]
) -> Outcome:
    """Attempt ``send`` until an outcome is final or ``budget`` is spent; the last outcome."""
    while True:
        budget.attempted()
        try:
            outcome: Outcome = send()
        except httpx.TransportError as exc:
            outcome = exc
        delay = _retry_delay(outcome, budget, idempotent)
        if delay is None:
            return outcome
        sleep(delay)


async def asend_with_retries(
    send: Callable[[], Awaitable[httpx.Response]],
    budget: RetryBudget,
    *,
    idempotent: bool,
    sleep: Callable[[float], Awaitable[None]] = asyncio.sleep,
) -> Outcome:
    """:func:`send_with_retries` for coroutines."""
    while True:
        budget.attempted()
        try:
            outcome: Outcome = await send()
        except httpx.TransportError as exc:
            outcome = exc
        delay = _retry_delay(outcome, budget, idempotent)
        if delay is None:
            return outcome
        await sleep(delay)


def _retry_delay(outcome: Outcome, budget: RetryBudget, idempotent: bool) -> float | None:
    if not should_retry(outcome, idempotent=idempotent):
        return None
    retry_after = outcome.headers.get("Retry-After") if isinstance(outcome, httpx.Response) else None
    delay = budget.next_delay(retry_after)
    if delay is not None:
        _log.debug("%s; retrying in %.2fs (attempt %d)", problem_of(outcome), delay, budget.attempts + 1)
    return delay


def problem_of(outcome: Outcome) -> str:
    """One line for what an attempt gave: ``HTTP 503: <detail>`` or ``ConnectError: <message>``."""
    if isinstance(outcome, httpx.Response):
        return f"HTTP {outcome.status_code}: {detail_of(outcome.content)}"
    return f"{type(outcome).__name__}: {outcome}" if str(outcome) else type(outcome).__name__


def detail_of(body: bytes) -> str:
    """The server's message in an error body (``message``, else ``detail``, as the gateway writes them)."""
    document = json_or_none(body)
    if isinstance(document, dict):
        for key in ("message", "detail", "DETAIL", "REASON"):
            value = document.get(key)
            if isinstance(value, str):
                return _clip(value)
            if value is not None:
                return _clip(orjson.dumps(value).decode())
    return _clip(body.decode("utf-8", "replace")) or "(empty body)"


def json_or_none(body: bytes) -> object:
    try:
        return orjson.loads(body) if body else None
    except orjson.JSONDecodeError:
        return None


def _clip(text: str, limit: int = 300) -> str:
    text = " ".join(text.split())
    return text if len(text) <= limit else text[: limit - 1] + "…"


class _Base:
    """What both transports share: the address, the headers, the policy and the reading of answers."""

    def __init__(
        self,
        base_url: str | None,
        api_key: str | None,
        retry: RetryPolicy | None,
        clock: Callable[[], float],
    ) -> None:
        url = base_url if base_url is not None else DEFAULT_URL
        if not url.startswith(("http://", "https://")):
            raise ValueError(f"base_url must start with http:// or https:// (got {url!r})")
        self.base_url = url.rstrip("/")
        self.api_key = api_key if api_key is not None else (os.environ.get(API_KEY_VARIABLE) or None)
        self.retry = retry if retry is not None else RetryPolicy()
        self.clock = clock
        self.headers = {"Accept": "application/json"}
        if self.api_key:
            self.headers["Authorization"] = f"Bearer {self.api_key}"

    def request_of(self, call: Call) -> tuple[str, dict[str, Any]]:
        """The URL and the httpx keyword arguments of ``call``."""
        options: dict[str, Any] = {"headers": self.headers}
        if call.document is not None:
            options["content"] = orjson.dumps(call.document)
            options["headers"] = {**self.headers, "Content-Type": "application/json"}
        if call.params:
            options["params"] = dict(call.params)
        return f"{self.base_url}{call.path}", options

    def finish(self, call: Call, url: str, outcome: Outcome, attempts: int) -> Any:
        """The JSON of a 2xx answer; else the exception that says what happened."""
        if isinstance(outcome, httpx.TransportError):
            lost = AnswerLost if not call.idempotent and not isinstance(outcome, NOT_SENT) else GatewayUnreachable
            raise lost(self.base_url, type(outcome).__name__, attempts) from outcome
        if outcome.is_success:
            return json_or_none(outcome.content)
        raise api_error(
            call.method, url, outcome.status_code, detail_of(outcome.content), json_or_none(outcome.content)
        )


class SyncTransport(_Base):
    """Blocking requests over one pooled ``httpx.Client`` (given, or made and owned here)."""

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
        super().__init__(base_url, api_key, retry, clock)
        self.http = http if http is not None else httpx.Client(timeout=timeout)
        self._owns_http = http is None
        self.sleep = sleep

    def run(self, call: Call) -> Any:
        url, options = self.request_of(call)
        budget = self.retry.start(clock=self.clock)
        outcome = send_with_retries(
            lambda: self.http.request(call.method, url, **options),
            budget,
            idempotent=call.idempotent,
            sleep=self.sleep,
        )
        return self.finish(call, url, outcome, budget.attempts)

    def close(self) -> None:
        if self._owns_http:
            self.http.close()


class AsyncTransport(_Base):
    """:class:`SyncTransport` over an ``httpx.AsyncClient``."""

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
        super().__init__(base_url, api_key, retry, clock)
        self.http = http if http is not None else httpx.AsyncClient(timeout=timeout)
        self._owns_http = http is None
        self.sleep = sleep

    async def run(self, call: Call) -> Any:
        url, options = self.request_of(call)
        budget = self.retry.start(clock=self.clock)
        outcome = await asend_with_retries(
            lambda: self.http.request(call.method, url, **options),
            budget,
            idempotent=call.idempotent,
            sleep=self.sleep,
        )
        return self.finish(call, url, outcome, budget.attempts)

    async def aclose(self) -> None:
        if self._owns_http:
            await self.http.aclose()
