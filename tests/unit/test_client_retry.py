"""The client's retries without a server: the backoff schedule on an injected clock, and which answers
are retried, with what, and how often (httpx's mock transport plays the gateway)."""

from __future__ import annotations

import math
import random
from collections.abc import Callable

import httpx
import orjson
import pytest

from ordergate.client import (
    AnswerLost,
    Client,
    Conflict,
    GatewayUnreachable,
    InvalidRequest,
    RetryPolicy,
    Unauthorized,
    Unavailable,
)
from ordergate.client.retry import parse_retry_after


class FakeTime:
    """A clock that only moves when the code under test sleeps."""

    def __init__(self) -> None:
        self.now = 0.0
        self.sleeps: list[float] = []

    def clock(self) -> float:
        return self.now

    def sleep(self, seconds: float) -> None:
        self.sleeps.append(seconds)
        self.now += seconds


Handler = Callable[[httpx.Request], httpx.Response]


def client_of(handler: Handler, fake: FakeTime, retry: RetryPolicy | None = None) -> Client:
    http = httpx.Client(transport=httpx.MockTransport(handler))
    return Client("http://gateway", retry=retry, http=http, sleep=fake.sleep, clock=fake.clock)


def decided(request: httpx.Request, status: int = 201, *, replayed: bool = False) -> httpx.Response:
    body = orjson.loads(request.content)
    return httpx.Response(
        status,
        json={
            "order_id": 7, "status": "ACCEPTED", "reason": None, "strategy": body["strategy"],
            "instrument": body["instrument"], "side": body["side"].upper(), "client_order_id": body["client_order_id"],
            "received_at": "2026-12-03T10:00:00.000000Z", "applied": [], "rejected_for": [], "replayed": replayed,
        },
    )  # fmt: skip


def test_backoff_doubles_from_the_base_with_equal_jitter_up_to_the_cap() -> None:
    policy = RetryPolicy(base_seconds=0.1, cap_seconds=1.0)
    jitter = random.Random(3)

    for retry, ceiling in [(0, 0.1), (1, 0.2), (2, 0.4), (3, 0.8), (4, 1.0), (30, 1.0), (10_000, 1.0)]:
        delays = [policy.delay(retry, None, jitter) for _ in range(200)]
        assert all(ceiling / 2 <= d <= ceiling for d in delays), (retry, min(delays), max(delays))
        assert max(delays) - min(delays) > ceiling / 4  # jittered, not in step


def test_the_same_seed_gives_the_same_schedule() -> None:
    policy = RetryPolicy()
    first = [policy.delay(n, None, random.Random(42)) for n in range(6)]
    assert first == [policy.delay(n, None, random.Random(42)) for n in range(6)]


def test_retry_after_replaces_the_backoff_within_its_cap() -> None:
    policy = RetryPolicy(retry_after_cap_seconds=60.0)
    jitter = random.Random(0)

    assert policy.delay(0, "2", jitter) == 2.0
    assert policy.delay(5, "0", jitter) == 0.0
    assert policy.delay(0, "86400", jitter) == 60.0
    assert policy.delay(0, "Wed, 21 Oct 2015 07:28:00 GMT", jitter) == 0.0  # a date in the past: now
    assert 0.05 <= policy.delay(0, "soon", jitter) <= 0.1  # not a Retry-After: the backoff
    assert parse_retry_after("nan") is None


def test_a_budget_stops_at_the_attempts_or_before_a_wait_that_would_pass_the_total() -> None:
    fake = FakeTime()
    budget = RetryPolicy(attempts=4, base_seconds=1.0, cap_seconds=1.0, total_seconds=math.inf).start(
        clock=fake.clock, jitter=random.Random(0)
    )
    waits = []
    for _ in range(10):
        budget.attempted()
        delay = budget.next_delay()
        if delay is None:
            break
        waits.append(delay)
    assert (budget.attempts, len(waits)) == (4, 3)

    timed = RetryPolicy(attempts=100, base_seconds=1.0, cap_seconds=1.0, total_seconds=2.0).start(
        clock=fake.clock, jitter=random.Random(0)
    )
    timed.attempted()
    assert timed.next_delay() is not None
    fake.now += 1.6
    timed.attempted()
    assert timed.next_delay() is None  # 1.6 s spent and at least 0.5 s more would pass 2 s


@pytest.mark.parametrize("invalid", [{"attempts": 0}, {"base_seconds": -1.0}, {"total_seconds": math.nan}])
def test_a_policy_refuses_impossible_values(invalid: dict[str, float]) -> None:
    with pytest.raises(ValueError, match=next(iter(invalid))):
        RetryPolicy(**invalid)  # type: ignore[arg-type]


def test_an_order_is_resent_with_the_same_client_order_id_after_503_429_and_lost_connections() -> None:
    fake = FakeTime()
    bodies: list[dict[str, str]] = []

    def handler(request: httpx.Request) -> httpx.Response:
        bodies.append(orjson.loads(request.content))
        if len(bodies) == 1:
            raise httpx.ConnectError("refused", request=request)
        if len(bodies) == 2:
            return httpx.Response(503, headers={"Retry-After": "1.5"}, json={"detail": "store unavailable"})
        if len(bodies) == 3:
            return httpx.Response(429, headers={"Retry-After": "2"}, json={"detail": "slow down"})
        if len(bodies) == 4:
            raise httpx.ReadTimeout("no answer", request=request)  # sent, answer lost: safe for an order
        return decided(request, 200, replayed=True)

    with client_of(handler, fake) as client:
        result = client.place("S1", "ACC", "buy")

    assert result.replayed
    assert len(bodies) == 5
    assert len({body["client_order_id"] for body in bodies}) == 1
    assert result.client_order_id == bodies[0]["client_order_id"]
    assert bodies[0]["client_order_id"].startswith("og-")
    assert fake.sleeps[1:3] == [1.5, 2.0]  # Retry-After honoured
    assert 0.05 <= fake.sleeps[0] <= 0.1  # backoff: the first retry waits half to all of the base
    assert 0.4 <= fake.sleeps[3] <= 0.8  # ... and the fourth, 2**3 bases


def test_a_given_client_order_id_is_the_one_sent() -> None:
    fake = FakeTime()
    seen: list[str] = []

    def handler(request: httpx.Request) -> httpx.Response:
        seen.append(orjson.loads(request.content)["client_order_id"])
        return decided(request)

    with client_of(handler, fake) as client:
        client.place("S1", "ACC", "SELL", client_order_id="desk-42", signal_time=1_700_000_000_000)
    assert seen == ["desk-42"]


@pytest.mark.parametrize(
    ("status", "error"), [(409, Conflict), (422, InvalidRequest), (401, Unauthorized), (400, InvalidRequest)]
)
def test_a_refusal_is_never_retried_and_carries_the_servers_detail(status: int, error: type[Exception]) -> None:
    fake = FakeTime()
    calls: list[httpx.Request] = []

    def handler(request: httpx.Request) -> httpx.Response:
        calls.append(request)
        return httpx.Response(status, json={"detail": "client_order_id 'x' was already used by order 1"})

    with client_of(handler, fake) as client, pytest.raises(error) as raised:
        client.place("S1", "ACC", "BUY", client_order_id="x")
    assert len(calls) == 1
    assert fake.sleeps == []
    assert raised.value.detail == "client_order_id 'x' was already used by order 1"  # type: ignore[attr-defined]
    assert raised.value.status == status  # type: ignore[attr-defined]


def test_a_422_names_the_problem_from_its_summary_message() -> None:
    def handler(request: httpx.Request) -> httpx.Response:
        return httpx.Response(
            422, json={"detail": [{"loc": ["body", "side"]}], "message": "body.side: not BUY or SELL"}
        )

    with client_of(handler, FakeTime()) as client, pytest.raises(InvalidRequest, match=r"body\.side: not BUY or SELL"):
        client.place("S1", "ACC", "HOLD")


def test_giving_up_on_503_raises_unavailable_after_the_bounded_attempts() -> None:
    fake = FakeTime()
    calls: list[int] = []

    def handler(request: httpx.Request) -> httpx.Response:
        calls.append(1)
        return httpx.Response(503, json={"detail": "disk full"})

    with client_of(handler, fake, RetryPolicy(attempts=3)) as client, pytest.raises(Unavailable, match="disk full"):
        client.place("S1", "ACC", "BUY")
    assert (len(calls), len(fake.sleeps)) == (3, 2)


def test_giving_up_on_a_dead_address_raises_gateway_unreachable_within_the_total_time() -> None:
    fake = FakeTime()

    def handler(request: httpx.Request) -> httpx.Response:
        raise httpx.ConnectError("refused", request=request)

    policy = RetryPolicy(attempts=1000, base_seconds=1.0, cap_seconds=1.0, total_seconds=5.0)
    with client_of(handler, fake, policy) as client, pytest.raises(GatewayUnreachable, match="ConnectError"):
        client.positions()
    assert fake.now <= 5.0
    assert len(fake.sleeps) >= 5


def test_a_lost_answer_to_a_flatten_is_not_repeated_but_a_refused_connection_is() -> None:
    fake = FakeTime()
    calls: list[int] = []

    def lost(request: httpx.Request) -> httpx.Response:
        calls.append(1)
        raise httpx.ReadError("connection reset", request=request)

    with client_of(lost, fake) as client, pytest.raises(AnswerLost, match="may have been done"):
        client.flatten("global")
    assert len(calls) == 1

    def refused_then_answered(request: httpx.Request) -> httpx.Response:
        calls.append(1)
        if len(calls) == 2:
            raise httpx.ConnectError("refused", request=request)
        controls = {"global": "ACTIVE", "strategies": {}, "users": {}, "fingerprint": "f", "changes": []}
        return httpx.Response(200, json={"orders": [], "controls": controls})

    with client_of(refused_then_answered, fake) as client:
        assert client.flatten("global").orders == []
    assert len(calls) == 3


def test_the_api_key_comes_from_the_environment_when_not_given(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("ORDERGATE_API_KEY", "og_from_env")
    seen: list[str | None] = []

    def handler(request: httpx.Request) -> httpx.Response:
        seen.append(request.headers.get("Authorization"))
        return httpx.Response(200, json={"auth": True, "name": "algo", "role": "producer", "strategies": None,
                                         "user": None})  # fmt: skip

    with client_of(handler, FakeTime()) as client:
        assert client.whoami().name == "algo"
    with Client("http://gateway", "og_given", http=httpx.Client(transport=httpx.MockTransport(handler))) as client:
        client.whoami()
    assert seen == ["Bearer og_from_env", "Bearer og_given"]
    assert Client().base_url == "http://127.0.0.1:8080"
