"""Load clients that run in processes of their own: open-loop order entry and a storm of API reads.

``python -m benchmarks.loads orders URL BODIES RATE SECONDS`` sends the prepared ``POST /v1/orders``
bodies of ``BODIES`` (one JSON document a line) at a fixed rate, on a schedule fixed in advance: the
latency of each request counts from the moment it was *scheduled*, not from when it could be sent,
so a stalled server cannot hide its stall by slowing the client down (no coordinated omission).
It prints one JSON line: the latencies' p50, p99 and max, how many answers were not 201 or 200.

``python -m benchmarks.loads storm URL CLIENTS QUERIES`` runs ``CLIENTS`` closed loops, each sending
the ``GET`` paths of ``QUERIES`` (one a line) one after the other as fast as answers come back, and
ignoring ``Retry-After`` (a hostile viewer), until it is sent SIGTERM; it then prints its counts.

Each role is its own process so that neither the storm's client work nor its own event loop delays
the order client's schedule beyond the CPU they share on the machine.
"""

from __future__ import annotations

import asyncio
import json
import signal
import sys
import time
from collections import Counter
from pathlib import Path

import httpx

from benchmarks.harness import percentile


async def orders(url: str, bodies: list[bytes], rate: float, seconds: float) -> dict[str, object]:
    count = min(len(bodies), int(rate * seconds))
    loop = asyncio.get_running_loop()
    latencies: list[float] = []
    statuses: Counter[int] = Counter()
    limits = httpx.Limits(max_connections=256, max_keepalive_connections=256)
    async with httpx.AsyncClient(base_url=url, timeout=60, limits=limits) as client:
        await client.get("/healthz")
        start = loop.time() + 0.5

        async def one(index: int) -> None:
            scheduled = start + index / rate
            await asyncio.sleep(max(0.0, scheduled - loop.time()))
            try:
                answer = await client.post(
                    "/v1/orders", content=bodies[index], headers={"content-type": "application/json"}
                )
                statuses[answer.status_code] += 1
            except httpx.HTTPError:
                statuses[0] += 1
            latencies.append(loop.time() - scheduled)

        await asyncio.gather(*(one(i) for i in range(count)))
    return {
        "sent": count,
        "p50_ms": percentile(latencies, 50) * 1000,
        "p99_ms": percentile(latencies, 99) * 1000,
        "max_ms": max(latencies, default=0.0) * 1000,
        "errors": sum(n for status, n in statuses.items() if status not in (200, 201)),
        "statuses": {str(k): v for k, v in sorted(statuses.items())},
    }


async def storm(url: str, clients: int, paths: list[str]) -> dict[str, object]:
    stop = asyncio.Event()
    asyncio.get_running_loop().add_signal_handler(signal.SIGTERM, stop.set)
    statuses: Counter[int] = Counter()
    latencies: list[float] = []
    started = time.perf_counter()

    async def loop(n: int) -> None:
        async with httpx.AsyncClient(base_url=url, timeout=120) as client:
            i = n
            while not stop.is_set():
                began = time.perf_counter()
                try:
                    answer = await client.get(paths[i % len(paths)])
                    statuses[answer.status_code] += 1
                except httpx.HTTPError:
                    statuses[0] += 1
                latencies.append(time.perf_counter() - began)
                i += 1

    tasks = [asyncio.create_task(loop(n)) for n in range(clients)]
    print("storming", flush=True)
    await stop.wait()
    elapsed = time.perf_counter() - started
    for task in tasks:
        task.cancel()
    await asyncio.gather(*tasks, return_exceptions=True)
    return {
        "reads": sum(statuses.values()),
        "rate": sum(statuses.values()) / elapsed if elapsed else 0.0,
        "p50_ms": percentile(latencies, 50) * 1000,
        "p99_ms": percentile(latencies, 99) * 1000,
        "statuses": {str(k): v for k, v in sorted(statuses.items())},
    }


def main(argv: list[str]) -> None:
    role, url = argv[0], argv[1]
    if role == "orders":
        bodies = Path(argv[2]).read_bytes().splitlines()
        result = asyncio.run(orders(url, bodies, float(argv[3]), float(argv[4])))
    elif role == "storm":
        paths = [line for line in Path(argv[3]).read_text().splitlines() if line]
        result = asyncio.run(storm(url, int(argv[2]), paths))
    else:
        raise SystemExit(f"unknown role {role!r}: orders or storm")
    print("LOAD_JSON " + json.dumps(result), flush=True)


if __name__ == "__main__":
    main(sys.argv[1:])
