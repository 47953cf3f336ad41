"""Several real gateway processes on one PostgreSQL database: one consistent book (SPEC section 6).

Each process has its own home (its own logs), the same profiles and the same ``--db``; clients spread
their orders over the processes as a load balancer would. The log is then read back through the API
and replayed by order_id through the reference model of the rules, and ``ordergate verify --db``
replays it again from the database.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import random
import ssl
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from tests.e2e.conftest import (
    GatewayProcess,
    StartGateway,
    book_of,
    fetch_all,
    replay,
    run_ordergate,
    write_profile,
)
from tests.e2e.test_crash_recovery import PROFILE, Answer, Sent, draw_order, read_answer
from tests.postgres import fresh_database

pytestmark = pytest.mark.e2e

STRATEGY, INSTRUMENT = "STRATEGY_A", "GRASIM"
SUBSCRIBERS = ["Holland Proctor", "Mia Wong", "Oaklee Wagner"]
COPIES = 64
REQUEST_TIMEOUT = 30.0
LOAD_TIMEOUT = 90.0


@pytest.fixture
def database() -> Iterator[str]:
    with fresh_database() as url:
        yield url


def cluster(tmp_path: Path, start_gateway: StartGateway, database: str, size: int, *args: str) -> list[GatewayProcess]:
    """``size`` gateway processes on ``database``, each with its own home holding :data:`PROFILE`."""
    return [start_gateway(write_profile(tmp_path / f"home{n}", PROFILE), "--db", database, *args) for n in range(size)]


def assert_verified(database: str) -> str:
    result = run_ordergate("verify", "--db", database)
    assert result.returncode == 0, f"verify --db exited {result.returncode}\n{result.stdout}\n{result.stderr}"
    return result.stdout


async def send_at_once(urls: list[str], bodies: list[tuple[str, dict[str, str]]]) -> list[httpx.Response]:
    """Send ``bodies[n]`` to ``urls[n % len(urls)]``, all released together by a barrier, each on its own
    connection (opened beforehand), so the processes receive them at the same moment."""
    tls = ssl.create_default_context()
    async with contextlib.AsyncExitStack() as stack:
        clients = [
            await stack.enter_async_context(
                httpx.AsyncClient(base_url=urls[n % len(urls)], timeout=REQUEST_TIMEOUT, verify=tls)
            )
            for n in range(len(bodies))
        ]
        await asyncio.gather(*(client.get("/healthz") for client in clients))
        barrier = asyncio.Barrier(len(bodies))

        async def send(client: httpx.AsyncClient, path: str, body: dict[str, str]) -> httpx.Response:
            await barrier.wait()
            return await client.post(path, json=body)

        return await asyncio.gather(*(send(c, path, body) for c, (path, body) in zip(clients, bodies, strict=True)))


def identical_orders(side: str, tag: str) -> list[tuple[str, dict[str, str]]]:
    """:data:`COPIES` copies of one order: even ones to ``/v1/orders`` (own client ids), odd to ``/create_order``."""
    return [
        ("/v1/orders", {"strategy": STRATEGY, "instrument": INSTRUMENT, "side": side, "client_order_id": f"{tag}{n}"})
        if n % 2 == 0
        else ("/create_order", {"STRATEGY": STRATEGY, "INSTRUMENT": INSTRUMENT, "POSITION": side})
        for n in range(COPIES)
    ]


def decisions(responses: list[httpx.Response]) -> list[tuple[int, str, str | None, tuple[str, ...]]]:
    """(order id, status, reason, users applied) of each answer, whichever endpoint gave it."""
    out = []
    for response in responses:
        assert response.status_code in (200, 201), response.text
        body = response.json()
        if "RESPONSE" in body:
            out.append((body["ORDER_ID"], body["RESPONSE"], body["REASON"], tuple(sorted(body["USERS"]))))
        else:
            users = tuple(sorted(a["user"] for a in body["applied"]))
            out.append((body["order_id"], body["status"], body["reason"], users))
    return out


def assert_exactly_one_applied(answers: list[tuple[int, str, str | None, tuple[str, ...]]], losing: str) -> int:
    """One ACCEPTED, for every subscriber, decided first; every other copy REJECTED; returns its id."""
    assert len({order_id for order_id, *_ in answers}) == COPIES, "two answers share an order id"
    accepted = [answer for answer in answers if answer[1] == "ACCEPTED"]
    assert len(accepted) == 1, f"{len(accepted)} of {COPIES} identical orders were accepted: {accepted}"
    winner_id, _, _, users = accepted[0]
    assert list(users) == SUBSCRIBERS
    assert winner_id == min(order_id for order_id, *_ in answers), "the accepted copy was not decided first"
    assert {(s, r, u) for order_id, s, r, u in answers if order_id != winner_id} == {("REJECTED", losing, ())}
    return winner_id


def test_identical_orders_split_across_two_processes_open_and_close_the_position_exactly_once(
    tmp_path: Path, start_gateway: StartGateway, database: str
) -> None:
    gateways = cluster(tmp_path, start_gateway, database, 2)
    urls = [g.url for g in gateways]

    bought = assert_exactly_one_applied(
        decisions(asyncio.run(send_at_once(urls, identical_orders("BUY", "buy")))), "ALREADY_HOLDING"
    )
    for url in urls:  # every process reads the same book
        with httpx.Client(base_url=url, timeout=REQUEST_TIMEOUT) as client:
            positions = fetch_all(client, "/v1/positions")
        assert sorted((p["user"], p["instrument"], p["opened_order_id"]) for p in positions) == [
            (user, INSTRUMENT, bought) for user in SUBSCRIBERS
        ]
    sold = assert_exactly_one_applied(
        decisions(asyncio.run(send_at_once(urls, identical_orders("SELL", "sell")))), "NO_OPEN_POSITION"
    )
    assert sold > bought

    # one client order id sent to both processes at the same moment is decided once
    same = {"strategy": STRATEGY, "instrument": INSTRUMENT, "side": "BUY", "client_order_id": "twice"}
    answers = asyncio.run(send_at_once(urls, [("/v1/orders", same)] * 16))
    assert sorted(a.status_code for a in answers) == [200] * 15 + [201]
    assert len({a.json()["order_id"] for a in answers}) == 1
    other = {**same, "side": "SELL"}
    assert httpx.post(f"{urls[1]}/v1/orders", json=other, timeout=REQUEST_TIMEOUT).status_code == 409

    with httpx.Client(base_url=urls[0], timeout=REQUEST_TIMEOUT) as client:
        log = fetch_all(client, "/v1/orders")
        assert len(log) == 2 * COPIES + 1
        assert replay(log, PROFILE, "account") == book_of(fetch_all(client, "/v1/positions"), "account")
    assert f"{2 * COPIES + 1} orders" in assert_verified(database)


async def spread_load(urls: list[str], seed: int, orders_per_worker: int, workers: int) -> dict[int, Answer]:
    """Random orders from ``workers`` concurrent clients, each bound to one process in turn."""
    answered: dict[int, Answer] = {}
    problems: list[str] = []
    seeds = random.Random(seed)

    async def work(worker: int, rng: random.Random) -> None:
        async with httpx.AsyncClient(base_url=urls[worker % len(urls)], timeout=REQUEST_TIMEOUT) as client:
            for index in range(orders_per_worker):
                sent = draw_order(rng, f"w{worker}-o{index}")
                path, body, headers = sent.request()
                answer = read_answer(sent, await client.post(path, json=body, headers=headers))
                if isinstance(answer, str):
                    problems.append(answer)
                    return
                assert answer.order_id not in answered, f"order id {answer.order_id} answered twice"
                answered[answer.order_id] = answer

    await asyncio.wait_for(
        asyncio.gather(*(work(n, random.Random(seeds.random())) for n in range(workers))), LOAD_TIMEOUT
    )
    assert not problems, "\n".join(problems[:10])
    return answered


def assert_log_holds_the_answers(log: list[dict[str, object]], answered: dict[int, Answer]) -> None:
    stored = {order["order_id"]: order for order in log}
    for order_id, answer in answered.items():
        order = stored.get(order_id)
        assert order is not None, f"answered order {order_id} is not stored"
        if answer.document is not None:
            assert order == answer.document, f"order {order_id} was stored otherwise than answered"
        else:
            assert (order["status"], order["reason"]) == (answer.status, answer.reason), order_id


@pytest.mark.heavy
def test_random_concurrent_load_across_three_processes_replays_by_order_id(
    tmp_path: Path, start_gateway: StartGateway, database: str
) -> None:
    gateways = cluster(tmp_path, start_gateway, database, 3)
    answered = asyncio.run(spread_load([g.url for g in gateways], seed=31, orders_per_worker=40, workers=24))

    with httpx.Client(base_url=gateways[2].url, timeout=REQUEST_TIMEOUT) as client:
        log = fetch_all(client, "/v1/orders")
        assert sorted(order["order_id"] for order in log) == sorted(answered)
        assert_log_holds_the_answers(log, answered)
        # every decision is the one the rules give at its place in order_id order, across processes
        assert replay(log, PROFILE, "account") == book_of(fetch_all(client, "/v1/positions"), "account")
    assert f"{len(answered)} orders" in assert_verified(database)


def test_a_process_killed_mid_load_loses_no_answered_order_and_the_others_keep_serving(
    tmp_path: Path, start_gateway: StartGateway, database: str
) -> None:
    victim, survivor = cluster(tmp_path, start_gateway, database, 2)
    answered: dict[int, Answer] = {}
    in_flight: dict[tuple[int, int], Sent] = {}
    problems: list[str] = []
    state = {"killed": False}

    async def work(worker: int, url: str, rng: random.Random) -> None:
        async with httpx.AsyncClient(base_url=url, timeout=REQUEST_TIMEOUT) as client:
            for index in range(60):
                sent = draw_order(rng, f"k{worker}-o{index}")
                in_flight[(worker, index)] = sent
                path, body, headers = sent.request()
                try:
                    response = await client.post(path, json=body, headers=headers)
                except httpx.TransportError:
                    if url == victim.url and state["killed"]:
                        return  # the process died under this request: it may or may not have committed
                    raise
                del in_flight[(worker, index)]
                answer = read_answer(sent, response)
                if isinstance(answer, str):
                    problems.append(answer)
                    return
                answered[answer.order_id] = answer
                if len(answered) >= 200 and not state["killed"]:
                    state["killed"] = True
                    victim.kill()

    async def load() -> None:
        seeds = random.Random(77)
        jobs = [work(n, (victim, survivor)[n % 2].url, random.Random(seeds.random())) for n in range(16)]
        await asyncio.wait_for(asyncio.gather(*jobs), LOAD_TIMEOUT)

    asyncio.run(load())
    assert not problems, "\n".join(problems[:10])
    assert state["killed"]
    assert not victim.is_running

    with httpx.Client(base_url=survivor.url, timeout=REQUEST_TIMEOUT) as client:
        log = fetch_all(client, "/v1/orders")
        assert_log_holds_the_answers(log, answered)
        sent_ids = {sent.client_order_id for sent in in_flight.values()}
        for order in log:  # beyond the answered ones, only orders caught in flight by the kill
            assert order["order_id"] in answered or order["client_order_id"] in sent_ids | {None}, order
        assert replay(log, PROFILE, "account") == book_of(fetch_all(client, "/v1/positions"), "account")
        after = client.post("/v1/orders", json={"strategy": "STRATEGY_C", "instrument": "INFY", "side": "SELL"})
        assert after.status_code == 201, after.text
    assert_verified(database)
    victim.start()  # and the killed process comes back on the same database
    with httpx.Client(base_url=victim.url, timeout=REQUEST_TIMEOUT) as client:
        assert len(fetch_all(client, "/v1/orders")) == len(log) + 1


def test_a_halt_set_through_one_process_stops_every_order_sent_to_another_after_it_was_answered(
    tmp_path: Path, start_gateway: StartGateway, database: str
) -> None:
    first, second = cluster(tmp_path, start_gateway, database, 2)
    sent: list[tuple[float, dict[str, object]]] = []  # (when the request went out, the answer)
    state: dict[str, float] = {}

    async def trade(worker: int) -> None:
        async with httpx.AsyncClient(base_url=second.url, timeout=REQUEST_TIMEOUT) as client:
            for index in range(80):
                side = "BUY" if (worker + index) % 2 == 0 else "SELL"
                started = time.monotonic()
                response = await client.post("/v1/orders", json={"strategy": STRATEGY, "instrument": INSTRUMENT,
                                                                 "side": side})  # fmt: skip
                assert response.status_code == 201, response.text
                sent.append((started, response.json()))

    async def halt_midway() -> None:
        while len(sent) < 60:
            await asyncio.sleep(0.005)
        async with httpx.AsyncClient(base_url=first.url, timeout=REQUEST_TIMEOUT) as client:
            body = {"level": "global", "target": None, "state": "HALTED"}
            assert (await client.put("/v1/controls", json=body)).status_code == 200
        state["halted_at"] = time.monotonic()

    async def load() -> None:
        await asyncio.wait_for(asyncio.gather(halt_midway(), *(trade(n) for n in range(8))), LOAD_TIMEOUT)

    asyncio.run(load())
    after = [answer for started, answer in sent if started > state["halted_at"]]
    assert len(after) > 50, "the halt came too late to test anything"
    assert all(answer["status"] == "REJECTED" and answer["applied"] == [] for answer in after), after
    assert any(answer["status"] == "ACCEPTED" for started, answer in sent if started < state["halted_at"])

    lifted = httpx.put(
        f"{second.url}/v1/controls",
        json={"level": "global", "target": None, "state": "ACTIVE"},
        timeout=REQUEST_TIMEOUT,
    )
    assert lifted.status_code == 200
    order = {"strategy": "STRATEGY_C", "instrument": "INFY", "side": "BUY"}
    assert httpx.post(f"{first.url}/v1/orders", json=order, timeout=REQUEST_TIMEOUT).json()["status"] == "ACCEPTED"
    out = " ".join(assert_verified(database).split())
    assert f"{len(sent) + 1} orders" in out
    assert f"({len(sent) + 1} decisions re-derived" in out


def read_stream(url: str, token: str, seconds: float) -> list[tuple[str, int]]:
    """``(id, order_id)`` of the order events ``GET /v1/events`` sends after ``token`` within ``seconds``."""
    events: list[tuple[str, int]] = []
    deadline = time.monotonic() + seconds
    with (
        httpx.Client(base_url=url, timeout=httpx.Timeout(seconds + 5, read=0.5)) as client,
        contextlib.suppress(httpx.ReadTimeout),
        client.stream("GET", "/v1/events", headers={"Last-Event-ID": token}) as response,
    ):
        assert response.status_code == 200
        kind, event_id = "", ""
        for line in response.iter_lines():
            if line.startswith("event: "):
                kind = line.removeprefix("event: ")
            elif line.startswith("id: "):
                event_id = line.removeprefix("id: ")
            elif line.startswith("data: ") and kind == "order":
                events.append((event_id, json.loads(line.removeprefix("data: "))["order_id"]))
            if time.monotonic() > deadline:
                break
    return events


def position(token: str) -> tuple[int, int]:
    commit, _, order_id = token.rpartition("-")
    return (int(commit or 0), int(order_id))


def test_a_stream_resumed_on_the_other_process_gets_every_order_once_though_ids_commit_out_of_order(
    tmp_path: Path, start_gateway: StartGateway, database: str
) -> None:
    """Order N+1 (process B) commits while order N (process A) still waits inside its transaction; a
    client that follows the stream on B, then resumes on A, then on B again, gets every order once."""
    import psycopg

    a, b = cluster(tmp_path, start_gateway, database, 2)
    with httpx.Client(timeout=REQUEST_TIMEOUT) as client:
        first = client.post(f"{a.url}/v1/orders", json={"strategy": "STRATEGY_B", "instrument": "MINDA", "side": "BUY"})
        assert first.status_code == 201, first.text
    seen = read_stream(b.url, "0", 1.0)
    assert [order_id for _, order_id in seen] == [first.json()["order_id"]]
    token = seen[-1][0]

    blocker = psycopg.connect(database)  # a session that keeps the row order N's group will insert
    blocker.execute(
        "INSERT INTO positions (user_name, scope_strategy, instrument, strategy, opened_order_id, opened_at)"
        " VALUES ('Holland Proctor', '', 'GRASIM', 'STRATEGY_A', 0, 'x')"
    )

    async def interleave() -> tuple[httpx.Response, httpx.Response, list[tuple[str, int]]]:
        async with httpx.AsyncClient(timeout=REQUEST_TIMEOUT) as client:
            slow = asyncio.ensure_future(
                client.post(
                    f"{a.url}/v1/orders", json={"strategy": "STRATEGY_A", "instrument": "GRASIM", "side": "BUY"}
                )
            )
            await asyncio.sleep(1.0)  # N is drawn and its group waits for the blocker's row
            fast = await client.post(
                f"{b.url}/v1/orders", json={"strategy": "STRATEGY_D", "instrument": "ACC", "side": "BUY"}
            )
            early = await asyncio.to_thread(read_stream, b.url, token, 1.0)  # N+1 is committed, N is not
            blocker.rollback()
            return await slow, fast, early

    slow, fast, early = asyncio.run(interleave())
    blocker.close()
    assert (slow.status_code, fast.status_code) == (201, 201), (slow.text, fast.text)
    n, n_plus_1 = slow.json()["order_id"], fast.json()["order_id"]
    assert n < n_plus_1, "the order that waited drew its id first"
    delivered = seen + early
    token = delivered[-1][0]
    delivered += read_stream(a.url, token, 1.5)  # resumed on the other process
    delivered += read_stream(b.url, delivered[-1][0], 0.5)  # and back: nothing more, nothing twice
    ids = [order_id for _, order_id in delivered]
    assert sorted(ids) == [first.json()["order_id"], n, n_plus_1], delivered
    assert len(set(ids)) == len(ids)
    tokens = [position(event_id) for event_id, _ in delivered]
    assert tokens == sorted(tokens)
    assert len(set(tokens)) == len(tokens)


def test_every_process_counts_the_whole_clusters_orders_and_open_positions(
    tmp_path: Path, start_gateway: StartGateway, database: str
) -> None:
    """``/v1/stats`` of each process describes the shared log, not that process's deltas over it."""
    gateways = cluster(tmp_path, start_gateway, database, 2)
    rng = random.Random(24)
    sent = [draw_order(rng, f"stats-{n}") for n in range(60)]
    bodies = [("/v1/orders", {"strategy": o.strategy, "instrument": o.instrument, "side": o.side}) for o in sent]
    answers = asyncio.run(send_at_once([g.url for g in gateways], bodies))
    assert all(a.status_code in (200, 201) for a in answers)
    with httpx.Client(timeout=REQUEST_TIMEOUT) as client:
        client.base_url = httpx.URL(gateways[0].url)
        truth_orders = len(fetch_all(client, "/v1/orders"))
        truth_open = len(fetch_all(client, "/v1/positions"))
        for gateway in gateways:
            deadline = time.monotonic() + 10
            while True:
                stats = client.get(f"{gateway.url}/v1/stats").json()
                if stats["orders"] == truth_orders or time.monotonic() > deadline:
                    break
                time.sleep(0.1)
            assert (stats["orders"], stats["open_positions"]) == (truth_orders, truth_open), gateway.url
