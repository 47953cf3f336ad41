"""The SQLite writer process killed with SIGKILL under load: 503s for what it lost, then business as usual.

The gateway keeps serving: orders the dead writer had in hand are answered with the truth the file
holds (stored, or 503 with nothing of them anywhere), a new writer takes over, and every answered
order is stored as answered.
"""

from __future__ import annotations

import asyncio
import os
import random
import signal
import time
from pathlib import Path

import httpx
import pytest

from tests.e2e.conftest import GatewayProcess, StartGateway, assert_verified, fetch_all
from tests.e2e.test_crash_recovery import (
    REQUEST_TIMEOUT,
    Answer,
    LoadRun,
    Sent,
    assert_answered_orders_are_stored_as_answered,
    assert_positions_replay_the_log,
    draw_order,
    read_answer,
)
from tests.e2e.test_crash_recovery import profile as profile  # the crash tests' profile fixture

WORKERS = 16
ORDERS_PER_WORKER = 60
KILLS = 3


def writer_pid(gateway: GatewayProcess) -> int:
    """The gateway's one child process: its SQLite writer."""
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        children = [
            int(pid)
            for task in Path(f"/proc/{gateway.pid}/task").iterdir()
            for pid in (task / "children").read_text().split()
        ]
        if children:
            assert len(children) == 1, children
            return children[0]
        time.sleep(0.05)
    raise AssertionError("the gateway has no writer process")


async def load_while_killing_writers(gateway: GatewayProcess, seed: int) -> tuple[LoadRun, list[Sent], list[int]]:
    run = LoadRun()
    refused: list[Sent] = []
    killed: list[int] = []
    seeds = random.Random(seed)
    sent_count = 0

    async def work(worker: int, rng: random.Random) -> None:
        nonlocal sent_count
        async with httpx.AsyncClient(base_url=gateway.url, timeout=REQUEST_TIMEOUT) as client:
            for index in range(ORDERS_PER_WORKER):
                sent = draw_order(rng, f"w{worker}-o{index}")
                path, body, headers = sent.request()
                response = await client.post(path, json=body, headers=headers)
                sent_count += 1
                if response.status_code == 503:
                    assert "Retry-After" in response.headers, response.headers
                    refused.append(sent)
                    continue
                answer = read_answer(sent, response)
                if isinstance(answer, str):
                    run.problems.append(answer)
                    return
                assert isinstance(answer, Answer)
                if answer.order_id in run.answered:
                    run.problems.append(f"order id {answer.order_id} answered twice")
                run.answered[answer.order_id] = answer

    async def killer() -> None:
        total = WORKERS * ORDERS_PER_WORKER
        for n in range(KILLS):
            while sent_count < total * (n + 1) // (KILLS + 1):
                await asyncio.sleep(0.01)
            pid = await asyncio.to_thread(writer_pid, gateway)
            os.kill(pid, signal.SIGKILL)
            killed.append(pid)

    workers = [work(n, random.Random(seeds.random())) for n in range(WORKERS)]
    await asyncio.wait_for(asyncio.gather(killer(), *workers), 120)
    return run, refused, killed


@pytest.mark.heavy
@pytest.mark.e2e
def test_a_killed_writer_process_costs_at_most_503s_and_every_answer_stays_true(
    home: Path, start_gateway: StartGateway
) -> None:
    gateway = start_gateway(home)
    run, refused, killed = asyncio.run(load_while_killing_writers(gateway, seed=11))
    assert not run.problems, "\n".join(run.problems[:10]) + f"\n{gateway.log_tail()}"
    assert len(set(killed)) == KILLS, "each kill hit a new writer"
    assert gateway.is_running, gateway.log_tail()
    assert len(run.answered) >= WORKERS * ORDERS_PER_WORKER * 0.8, f"{len(refused)} refused"

    with httpx.Client(base_url=gateway.url, timeout=REQUEST_TIMEOUT) as client:
        assert client.get("/readyz").status_code == 200
        log = fetch_all(client, "/v1/orders")
        assert {o["order_id"] for o in log} == set(run.answered), "the log holds exactly the answered orders"
        keys = {s.client_order_id for s in refused if s.client_order_id is not None}
        assert not keys & {o["client_order_id"] for o in log}, "an order answered 503 is in the log"
        assert_positions_replay_the_log(client, log)
    assert_answered_orders_are_stored_as_answered(gateway, run)
    gateway.terminate()
    assert_verified(home)
