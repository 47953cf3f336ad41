"""The Python client against real gateway processes: placing, replays and conflicts, retries that decide
once (a lost answer, a 503, a gateway that is down and comes back), paging helpers, the event stream
resuming across restarts without a gap or a repeat, and the same through :class:`AsyncClient`."""

from __future__ import annotations

import threading
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import httpx
import orjson
import pytest

from ordergate.client import (
    AsyncClient,
    Client,
    Conflict,
    Forbidden,
    NewOrder,
    OrderError,
    OrderResult,
    RetryPolicy,
    Unauthorized,
)
from tests.e2e.conftest import StartGateway, run_ordergate
from tests.e2e.proxy import faulty_proxy

pytestmark = pytest.mark.e2e

PATIENT = RetryPolicy(attempts=200, base_seconds=0.05, cap_seconds=0.25, total_seconds=30.0)
"""Retries that outlast a gateway restart."""


def client_order_ids(requests: list[bytes]) -> list[str]:
    return [orjson.loads(request.partition(b"\r\n\r\n")[2])["client_order_id"] for request in requests]


def test_place_replays_a_decided_client_order_id_and_refuses_it_for_another_order(
    home: Path, start_gateway: StartGateway
) -> None:
    gateway = start_gateway(home)
    with Client(gateway.url) as client:
        first = client.place("STRATEGY_A", "GRASIM", "buy")
        again = client.place("STRATEGY_A", "GRASIM", "BUY", client_order_id=first.client_order_id)
        with pytest.raises(Conflict) as conflict:
            client.place("STRATEGY_A", "EICHER", "BUY", client_order_id=first.client_order_id)
        check = client.check("STRATEGY_A", "GRASIM", "SELL")
        stored = client.order(first.order_id)

    assert first.accepted
    assert not first.replayed
    assert [(e.user, e.action) for e in first.applied] == [("Holland Proctor", "OPENED")]
    assert first.client_order_id is not None
    assert first.client_order_id.startswith("og-")
    assert again.replayed
    assert again.order_id == first.order_id
    assert again.received_at == first.received_at
    assert conflict.value.status == 409
    assert "already used" in conflict.value.detail
    assert check.accepted
    assert check.applied[0].action == "CLOSED"
    assert stored.model_dump(exclude={"replayed"}) == first.model_dump(exclude={"replayed"})


def test_an_order_whose_answer_was_lost_is_retried_and_decided_once(home: Path, start_gateway: StartGateway) -> None:
    gateway = start_gateway(home)
    with faulty_proxy(gateway.port) as proxy, Client(proxy.url, retry=PATIENT) as client:
        proxy.lose_next_answers(1)
        result = client.place("STRATEGY_A", "GRASIM", "BUY")
        sent = client_order_ids(proxy.requests)

    assert len(sent) == 2
    assert sent[0] == sent[1] == result.client_order_id
    assert result.replayed  # the gateway had decided it: the retry got the stored decision
    with Client(gateway.url) as direct:
        orders = list(direct.iter_orders())
    assert [(o.order_id, o.client_order_id) for o in orders] == [(result.order_id, result.client_order_id)]


def test_a_batch_whose_answer_was_lost_is_retried_and_each_order_decided_once(
    home: Path, start_gateway: StartGateway
) -> None:
    gateway = start_gateway(home)
    orders = [NewOrder("STRATEGY_A", "GRASIM", "BUY"), NewOrder("STRATEGY_D", "ACC", "BUY"),
              NewOrder("STRATEGY_B", "MINDA", "SELL")]  # fmt: skip
    with faulty_proxy(gateway.port) as proxy, Client(proxy.url, retry=PATIENT) as client:
        proxy.lose_next_answers(1)
        results = client.place_many(orders)

    assert all(isinstance(r, OrderResult) and r.replayed for r in results)
    assert [r.status for r in results if isinstance(r, OrderResult)] == ["ACCEPTED", "ACCEPTED", "REJECTED"]
    with Client(gateway.url) as direct:
        assert [o.order_id for o in direct.iter_orders()] == [1, 2, 3]


def test_a_503_is_retried_with_the_same_client_order_id(home: Path, start_gateway: StartGateway) -> None:
    gateway = start_gateway(home)
    with faulty_proxy(gateway.port) as proxy, Client(proxy.url, retry=PATIENT) as client:
        proxy.refuse_next(2)
        result = client.place("STRATEGY_D", "ACC", "BUY")
        sent = client_order_ids(proxy.requests)

    assert len(sent) == 3
    assert len(set(sent)) == 1
    assert result.accepted
    assert not result.replayed


def test_an_order_sent_while_the_gateway_is_down_is_decided_once_it_is_back(
    home: Path, start_gateway: StartGateway
) -> None:
    gateway = start_gateway(home)
    with Client(gateway.url) as client:
        client.place("STRATEGY_A", "GRASIM", "BUY")
    gateway.kill()
    restarted = threading.Timer(0.5, gateway.start)
    restarted.start()
    try:
        with Client(gateway.url, retry=PATIENT) as client:
            result = client.place("STRATEGY_A", "GRASIM", "SELL")
            orders = list(client.iter_orders())
    finally:
        restarted.join()
    assert result.accepted
    assert result.order_id == 2
    assert [o.order_id for o in orders] == [1, 2]


def test_the_paging_helpers_walk_every_page(home: Path, start_gateway: StartGateway) -> None:
    gateway = start_gateway(home)
    with Client(gateway.url) as client:
        wanted = [("GRASIM", "BUY"), ("GRASIM", "SELL"), ("GRASIM", "BUY"), ("EICHER", "BUY"), ("EICHER", "SELL"),
                  ("EICHER", "BUY"), ("BIRLASOFT", "BUY"), ("BIRLASOFT", "SELL"), ("BIRLASOFT", "BUY")]  # fmt: skip
        placed = client.place_many([NewOrder("STRATEGY_A", instrument, side) for instrument, side in wanted])
        orders = list(client.iter_orders(page_size=2))
        accepted = list(client.iter_orders(status="accepted", page_size=1))
        positions = list(client.iter_positions(page_size=1))
        trades = list(client.iter_trades(page_size=1))
        users = [u.user for u in client.iter_users(page_size=1)]
        strategies = [s.strategy for s in client.iter_strategies(page_size=1)]
        first = client.orders(limit=4)

    assert [o.order_id for o in orders] == [r.order_id for r in placed if isinstance(r, OrderResult)]
    assert len(orders) == 9
    assert len(accepted) == 9
    assert sorted(p.instrument for p in positions) == ["BIRLASOFT", "EICHER", "GRASIM"]
    assert len(trades) == 3
    assert users == ["Holland Proctor", "Oaklee Wagner"]
    assert strategies == ["STRATEGY_A", "STRATEGY_B", "STRATEGY_D"]
    assert (len(first.items), first.next) == (4, 4)


def test_the_event_stream_resumes_across_restarts_without_a_gap_or_a_repeat(
    home: Path, start_gateway: StartGateway
) -> None:
    gateway = start_gateway(home)
    orders = [("STRATEGY_A", "GRASIM"), ("STRATEGY_A", "EICHER"), ("STRATEGY_D", "ACC")]
    with Client(gateway.url, retry=PATIENT) as client:
        stream = client.events(resume_from=0)
        events = iter(stream)
        for strategy, instrument in orders:
            client.place(strategy, instrument, "BUY")
        seen = [next(events).order.order_id for _ in range(2)]

        gateway.kill()  # a crash: the stream's connection is cut
        gateway.start()
        for strategy, instrument in orders:
            client.place(strategy, instrument, "SELL")
        seen += [next(events).order.order_id for _ in range(4)]

        gateway.terminate()  # a graceful stop ends the stream; it reconnects once the gateway is back
        gateway.start()
        last = client.place("STRATEGY_B", "MINDA", "BUY")
        seen.append(next(events).order.order_id)
        token = stream.token

    assert seen == [1, 2, 3, 4, 5, 6, 7]
    assert last.order_id == 7
    assert stream.reconnects >= 2
    with Client(gateway.url) as client:  # the remembered token resumes after the last order seen
        client.place("STRATEGY_B", "MINDA", "SELL")
        assert next(iter(client.events(resume_from=token))).order.order_id == 8


def test_a_stream_from_now_lost_before_its_first_order_misses_nothing(home: Path, start_gateway: StartGateway) -> None:
    gateway = start_gateway(home)
    slow = RetryPolicy(base_seconds=8.0, cap_seconds=8.0, total_seconds=40.0)  # waits 4 to 8 s to reconnect
    pool = ThreadPoolExecutor(1)
    try:
        with Client(gateway.url, retry=PATIENT) as client:
            client.place("STRATEGY_A", "GRASIM", "BUY")
            stream = client.events(reconnect=slow)  # from now: after order 1
            first = pool.submit(next, iter(stream))
            deadline = time.monotonic() + 10
            while stream.token is None and time.monotonic() < deadline:  # connected, with the token of now
                time.sleep(0.05)
            gateway.kill()
            gateway.start()
            client.place("STRATEGY_A", "GRASIM", "SELL")  # committed while the stream waits to reconnect
            event = first.result(timeout=30)
    finally:
        gateway.kill()  # a stream still waiting ends within its reconnect budget
        pool.shutdown(wait=True)
    assert event.order.order_id == 2
    assert stream.reconnects >= 1


def test_the_event_stream_waits_out_a_full_gateway_and_then_follows(home: Path, start_gateway: StartGateway) -> None:
    gateway = start_gateway(home, "--max-event-clients", "1")
    with httpx.Client(base_url=gateway.url, timeout=10) as raw:
        held = raw.stream("GET", "/v1/events")
        held.__enter__()
        assert raw.get("/v1/events", timeout=2).status_code == 503  # the one stream is taken
        release = threading.Timer(0.5, held.__exit__, args=(None, None, None))
        release.start()
        try:
            with Client(gateway.url) as client:
                client.place("STRATEGY_A", "GRASIM", "BUY")
                started = time.monotonic()
                event = next(iter(client.events(resume_from=0)))  # 503 + Retry-After: 5, then served
                waited = time.monotonic() - started
        finally:
            release.join()
    assert event.order.order_id == 1
    assert waited >= 4.5  # the gateway's Retry-After was honoured


def test_a_key_from_the_environment_or_the_constructor_is_used_and_a_missing_one_is_unauthorized(
    home: Path, start_gateway: StartGateway, monkeypatch: pytest.MonkeyPatch
) -> None:
    keyfile = home / "keys.json"

    def create_key(*args: str) -> str:
        created = run_ordergate("keys", "create", "--file", str(keyfile), *args)
        assert created.returncode == 0, created.stderr
        return created.stdout.strip().splitlines()[-1]

    producer = create_key("--role", "producer", "--name", "algo", "--strategy", "STRATEGY_A")
    viewer = create_key("--role", "viewer", "--name", "screen")
    gateway = start_gateway(home, "--auth", str(keyfile))

    monkeypatch.delenv("ORDERGATE_API_KEY", raising=False)
    with Client(gateway.url) as anonymous, pytest.raises(Unauthorized):
        anonymous.place("STRATEGY_A", "GRASIM", "BUY")
    monkeypatch.setenv("ORDERGATE_API_KEY", producer)
    with Client(gateway.url) as client:
        result = client.place("STRATEGY_A", "GRASIM", "BUY")
        with pytest.raises(Forbidden, match="may not read"):
            client.whoami()
    with Client(gateway.url, viewer) as watching:
        who = watching.whoami()
        seen = [o.actor for o in watching.iter_orders()]
    assert result.actor == "algo"
    assert (who.auth, who.name, who.role) == (True, "screen", "viewer")
    assert seen == ["algo"]


def test_the_cli_reports_the_clients_refusals_with_what_to_do(home: Path, start_gateway: StartGateway) -> None:
    keyfile = home / "keys.json"
    created = run_ordergate("keys", "create", "--file", str(keyfile), "--role", "viewer", "--name", "screen")
    viewer = created.stdout.strip().splitlines()[-1]
    gateway = start_gateway(home, "--auth", str(keyfile))

    no_key = run_ordergate("orders", "--url", gateway.url)
    not_admin = run_ordergate("control", "set", "--level", "global", "--state", "HALTED", "--url", gateway.url,
                              "--api-key", viewer)  # fmt: skip
    listed = run_ordergate("orders", "--json", "--url", gateway.url, "--api-key", viewer)

    assert no_key.returncode == 2
    assert "answered HTTP 401" in no_key.stderr
    assert "(pass --api-key or set ORDERGATE_API_KEY)" in no_key.stderr
    assert not_admin.returncode == 2
    assert "answered HTTP 403" in not_admin.stderr
    assert "(this needs an admin key)" in not_admin.stderr
    assert listed.returncode == 0, listed.stderr
    assert orjson.loads(listed.stdout) == {"items": [], "next": None}


@pytest.mark.anyio
async def test_the_async_client_places_pages_and_resumes_its_stream_across_a_restart(
    home: Path, start_gateway: StartGateway
) -> None:
    import asyncio

    gateway = start_gateway(home)
    async with AsyncClient(gateway.url, retry=PATIENT) as client:
        first = await client.place("STRATEGY_A", "GRASIM", "BUY")
        replay = await client.place("STRATEGY_A", "GRASIM", "BUY", client_order_id=first.client_order_id)
        batch = await client.place_many(
            [NewOrder("STRATEGY_D", "ACC", "BUY"), NewOrder("STRATEGY_A", "X", "BUY", first.client_order_id)]
        )
        stream = client.events(resume_from=0)
        events = aiter(stream)
        seen = [(await anext(events)).order.order_id for _ in range(2)]

        await asyncio.to_thread(gateway.kill)
        await asyncio.to_thread(gateway.start)
        await client.place("STRATEGY_A", "GRASIM", "SELL")
        seen.append((await asyncio.wait_for(anext(events), 30)).order.order_id)
        with pytest.raises(asyncio.TimeoutError):  # nothing repeated
            await asyncio.wait_for(anext(events), 0.5)
        await stream.aclose()
        orders = [o.order_id async for o in client.iter_orders(page_size=1)]
        users = [u.user async for u in client.iter_users(page_size=1)]

    assert replay.replayed
    assert replay.order_id == first.order_id
    assert isinstance(batch[0], OrderResult)
    assert batch[0].accepted
    assert isinstance(batch[1], OrderError)
    assert batch[1].status == 409
    assert seen == [1, 2, 3]
    assert orders == [1, 2, 3]
    assert users == ["Holland Proctor", "Oaklee Wagner"]
