"""The event stream's reconnects without a server: which token each connection resumes from, and what
``resync``, ``revoked`` and refusals do (httpx's mock transport plays the gateway, one scripted answer
per connection)."""

from __future__ import annotations

from collections.abc import Callable

import httpx
import orjson
import pytest

from ordergate.client import (
    AsyncClient,
    Client,
    GatewayUnreachable,
    RetryPolicy,
    StreamResync,
    StreamRevoked,
    Unauthorized,
)

Script = list[Callable[[httpx.Request], httpx.Response]]


def order_event(token: str, order_id: int) -> bytes:
    answer = {
        "order_id": order_id, "status": "ACCEPTED", "reason": None, "strategy": "S1", "instrument": "ACC",
        "side": "BUY", "client_order_id": None, "received_at": "2026-12-03T10:00:00.000000Z", "applied": [],
        "rejected_for": [],
    }  # fmt: skip
    return b"id: %b\nevent: order\ndata: %b\n\n" % (token.encode(), orjson.dumps(answer))


def sse(*frames: bytes) -> Callable[[httpx.Request], httpx.Response]:
    body = b"retry: 1000\n\n" + b"".join(frames)
    return lambda request: httpx.Response(200, content=body, headers={"Content-Type": "text/event-stream"})


def lost(request: httpx.Request) -> httpx.Response:
    raise httpx.RemoteProtocolError("peer closed connection", request=request)


class Gateway:
    """Answers ``/v1/stats`` with ``position`` and each ``/v1/events`` connection with the next answer."""

    def __init__(self, script: Script, position: str | None = "5") -> None:
        self.script = script
        self.position = position
        self.resumed_from: list[str | None] = []

    def __call__(self, request: httpx.Request) -> httpx.Response:
        if request.url.path == "/v1/stats":
            if self.position is None:
                return httpx.Response(403, json={"detail": "a bound viewer may not read the stats"})
            return httpx.Response(200, json={"position": self.position})
        self.resumed_from.append(request.headers.get("Last-Event-ID"))
        if not self.script:
            raise httpx.ConnectError("refused", request=request)
        return self.script.pop(0)(request)


def stream_client(gateway: Gateway, sleeps: list[float]) -> Client:
    return Client("http://gateway", http=httpx.Client(transport=httpx.MockTransport(gateway)), sleep=sleeps.append)


def test_each_reconnect_resumes_after_the_last_order_handed_out() -> None:
    gateway = Gateway([sse(order_event("6", 6), order_event("7", 7)), lost, sse(order_event("8", 8)), lost])
    sleeps: list[float] = []
    with stream_client(gateway, sleeps) as client:
        stream = client.events(reconnect=RetryPolicy(attempts=3))
        seen: list[int] = []
        with pytest.raises(GatewayUnreachable):
            seen.extend(event.order.order_id for event in stream)
    assert seen == [6, 7, 8]
    assert gateway.resumed_from[:4] == ["5", "7", "7", "8"]  # from the stats' position, then each last token
    assert stream.token == "8"


def test_a_slow_client_resync_reconnects_from_its_token_and_an_explicit_start_is_kept() -> None:
    resync = b'event: resync\ndata: {"reason": "slow_client", "token": "3"}\n\n'
    gateway = Gateway([sse(order_event("2", 2), resync, order_event("99", 99)), sse(order_event("4", 4))])
    with stream_client(gateway, []) as client:
        events = iter(client.events(resume_from=1))
        assert [next(events).order.order_id for _ in range(2)] == [2, 4]
    assert gateway.resumed_from == ["1", "3"]


def test_a_token_of_another_log_raises_resync_with_the_token_to_follow_from() -> None:
    gateway = Gateway([sse(b'event: resync\ndata: {"reason": "ahead_of_log", "token": "12"}\n\n')])
    with stream_client(gateway, []) as client, pytest.raises(StreamResync) as resync:
        next(iter(client.events(resume_from=900)))
    assert (resync.value.reason, resync.value.token) == ("ahead_of_log", "12")


def test_a_revoked_key_ends_the_stream_and_a_refused_one_is_not_retried() -> None:
    revoked = Gateway(
        [sse(b'event: revoked\ndata: {"reason": "the API key of this stream is not valid any more"}\n\n')]
    )
    with stream_client(revoked, []) as client, pytest.raises(StreamRevoked, match="not valid any more"):
        next(iter(client.events()))

    refused = Gateway([lambda request: httpx.Response(401, json={"detail": "missing API key"})])
    sleeps: list[float] = []
    with stream_client(refused, sleeps) as client, pytest.raises(Unauthorized, match="missing API key"):
        next(iter(client.events()))
    assert (len(refused.resumed_from), sleeps) == (1, [])


def test_a_full_gateway_is_waited_out_as_its_retry_after_says() -> None:
    full = lambda request: httpx.Response(503, headers={"Retry-After": "5"}, json={"detail": "too many streams"})  # noqa: E731
    gateway = Gateway([full, sse(order_event("6", 6))])
    sleeps: list[float] = []
    with stream_client(gateway, sleeps) as client:
        assert next(iter(client.events())).order.order_id == 6
    assert sleeps == [5.0]


def test_a_bound_viewer_without_stats_starts_from_now_without_a_token() -> None:
    gateway = Gateway([sse(order_event("6", 6))], position=None)
    with stream_client(gateway, []) as client:
        assert next(iter(client.events())).token == "6"
    assert gateway.resumed_from == [None]


@pytest.mark.anyio
async def test_the_async_stream_resumes_after_the_last_order_handed_out() -> None:
    gateway = Gateway([sse(order_event("6", 6)), lost, sse(order_event("7", 7))])
    sleeps: list[float] = []

    async def sleep(seconds: float) -> None:
        sleeps.append(seconds)

    http = httpx.AsyncClient(transport=httpx.MockTransport(gateway))
    async with AsyncClient("http://gateway", http=http, sleep=sleep) as client:
        stream = client.events()
        seen = [event.order.order_id async for event in _first(stream, 2)]
        await stream.aclose()
    assert seen == [6, 7]
    assert gateway.resumed_from == ["5", "6", "6"]
    assert len(sleeps) == 2


async def _first(stream: object, count: int):  # type: ignore[no-untyped-def]
    n = 0
    async for event in stream:  # type: ignore[attr-defined]
        yield event
        n += 1
        if n == count:
            return
