"""Scenario S7 (issue 4): two gateway processes on one PostgreSQL database, against PostgreSQL's own commit rate.

Both processes serve ``POST /create_order`` under two ``wrk`` runs in parallel (half the
connections each, as a load balancer would split them). In the same run, on the same database, a
psycopg loop measures what PostgreSQL itself does with single-row ``INSERT`` + ``COMMIT``: one
client (a commit per round trip and fsync) and 16 clients at once (PostgreSQL then shares fsyncs).
The gateway stores one order, with its positions and trades, per row and many orders per commit
(group commit). ``ordergate verify --db`` replays the log afterwards.

The server is ``BENCH_POSTGRES_URL`` (default: the local one); its admin database is used only to
create and drop a scratch database ``ordergate_bench_<random>``.
"""

from __future__ import annotations

import asyncio
import os
import secrets
import shutil
import time
from concurrent.futures import ThreadPoolExecutor

from benchmarks.harness import BIN, LoadResult, Row, Server, ordergate, run_wrk
from benchmarks.scenarios import CONNECTIONS, Plan, _result, fmt_ms, fmt_rate, new_home, write_bodies

ADMIN_URL = os.environ.get("BENCH_POSTGRES_URL", "postgresql://postgres@127.0.0.1:5432/test")
COMMIT_CLIENTS = 16


def _admin(sql: str) -> None:
    import psycopg

    with psycopg.connect(ADMIN_URL, autocommit=True) as conn:
        conn.execute(sql)


def _database_url(name: str) -> str:
    return f"{ADMIN_URL.rpartition('/')[0]}/{name}"


def single_row_commit_rate(url: str, seconds: float, clients: int) -> float:
    """Single-row INSERT + COMMIT per second, ``clients`` connections at once (synchronous_commit on)."""
    import psycopg

    with psycopg.connect(url, autocommit=True) as conn:
        conn.execute("CREATE TABLE IF NOT EXISTS commit_probe (id bigserial PRIMARY KEY, at text NOT NULL)")

    async def client(deadline: float) -> int:
        done = 0
        async with await psycopg.AsyncConnection.connect(url, autocommit=True) as conn:
            while time.perf_counter() < deadline:
                await conn.execute("INSERT INTO commit_probe (at) VALUES (%s)", ("2026-01-01T00:00:00Z",))
                done += 1
        return done

    async def run() -> float:
        started = time.perf_counter()
        counts = await asyncio.gather(*(client(started + seconds) for _ in range(clients)))
        return sum(counts) / (time.perf_counter() - started)

    return asyncio.run(run())


def s7(plan: Plan) -> Row:
    what = f"2 processes, one PostgreSQL, POST /create_order, {CONNECTIONS} connections split, durability full"
    try:
        name = f"ordergate_bench_{secrets.token_hex(4)}"
        _admin(f"CREATE DATABASE {name}")
    except Exception as exc:  # no server, or no driver: say so in the table
        return Row("S7", what, "-", result=f"skipped: no PostgreSQL at {ADMIN_URL} ({type(exc).__name__})")
    url = _database_url(name)
    try:
        one_client = single_row_commit_rate(url, min(plan.seconds, 5), 1)
        many_clients = single_row_commit_rate(url, min(plan.seconds, 5), COMMIT_CLIENTS)
        first = new_home(plan, "s7a")
        second = plan.work / "s7b"
        shutil.copytree(first / "Jsons", second / "Jsons")
        bodies = write_bodies(first)
        servers = [
            Server(
                [str(BIN / "ordergate"), "serve", "--home", str(home), "--port", "{port}", "--db", url],
                ready_path="/readyz",
                log=home / "server.log",
            )
            for home in (first, second)
        ]
        with servers[0], servers[1], ThreadPoolExecutor(2) as pool:
            loads = list(
                pool.map(
                    lambda server: run_wrk(
                        server.url, "/create_order", bodies, seconds=plan.seconds, connections=CONNECTIONS // 2
                    ),
                    servers,
                )
            )
        result = ordergate("verify", "--db", url, timeout=1800)
        checked = "ok" if result.returncode == 0 else (result.stderr.strip() or result.stdout.strip())
    finally:
        _admin(f"DROP DATABASE IF EXISTS {name} WITH (FORCE)")
    rate = sum(load.rate for load in loads)
    errors = sum(load.errors for load in loads)
    worst: LoadResult = max(loads, key=lambda load: load.p99_ms)
    return Row(
        "S7",
        what,
        fmt_rate(rate, "orders/s"),
        fmt_ms(max(load.p50_ms for load in loads)),
        fmt_ms(worst.p99_ms),
        str(errors),
        f"{rate / one_client:.1f}x PG 1-client commits, {rate / many_clients:.2f}x PG {COMMIT_CLIENTS}-client commits",
        ">= PostgreSQL's single-row commit rate (1 client), 0 errors",
        _result(rate >= one_client and errors == 0, checked),
        [
            f"PostgreSQL single-row INSERT+COMMIT on the same database in the same run: {one_client:,.0f}/s with "
            f"1 client, {many_clients:,.0f}/s with {COMMIT_CLIENTS} clients; per process: "
            + ", ".join(fmt_rate(load.rate, "orders/s") for load in loads)
        ],
    )
