"""The scenarios of ``make bench`` (issue 3): baselines, then S1 to S6, the open-loop rows (O1k, O2k,
O4k; issue 10) and S8, each returning table rows.

Every ordergate scenario ends with ``ordergate verify`` on its home: a fast wrong answer does not count.
"""

from __future__ import annotations

import asyncio
import time
import urllib.parse
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import orjson

from benchmarks.harness import (
    BIN,
    PYTHON,
    ROOT,
    LoadResult,
    OpenLoop,
    ReadStorm,
    Row,
    Server,
    open_loop,
    ordergate,
    percentile,
    run_wrk,
    verify,
)
from benchmarks.loads import MAX_CONNECTIONS
from ordergate.domain.book import Book
from ordergate.domain.model import Order, Scope, Side
from ordergate.domain.registry import Registry
from ordergate.domain.rules import decide
from ordergate.tools.produce import OrderDrawer


@dataclass
class Plan:
    """How big and how long: the full run, or the quick one (about a minute)."""

    quick: bool
    work: Path

    @property
    def seconds(self) -> float:
        return 4 if self.quick else 15

    @property
    def fanout_users(self) -> int:
        return 100_000

    @property
    def fanout_orders(self) -> int:
        return 2 if self.quick else 10

    @property
    def book_users(self) -> int:
        return 10_000 if self.quick else 100_000

    @property
    def history_orders(self) -> int:
        return 50_000 if self.quick else 1_000_000

    @property
    def storm_log_orders(self) -> int:
        return 200_000 if self.quick else 1_000_000

    @property
    def storm_seconds(self) -> float:
        return 8 if self.quick else 20


CONNECTIONS = 64
S1_USERS = 3
"""The original kit's default profile size (``generate`` with 3 users): 1 to 3 subscribers per order."""
WIDE_USERS = 20
"""A wider profile for an extra S1 row: about 8 subscribers per order, each with its own outcome."""


def fmt_rate(value: float, unit: str = "req/s") -> str:
    return f"{value:,.0f} {unit}"


def fmt_ms(value: float) -> str:
    return f"{value:.1f} ms" if value < 100 else f"{value:,.0f} ms"


def new_home(plan: Plan, name: str, users: int = S1_USERS) -> Path:
    home = plan.work / name
    ordergate("init", "--home", str(home))
    ordergate("generate", "--home", str(home), "--users", str(users), "--seed", "1")
    return home


def write_bodies(home: Path, count: int = 5000, legacy: bool = True) -> Path:
    """A realistic mix: each strategy's own instruments (the 'universe' of its subscribers), random sides."""
    profiles = orjson.loads((home / "Jsons" / "user_profile.json").read_bytes())
    drawer = OrderDrawer.universe(profiles, seed=7)
    path = home / "bodies.jsonl"
    with path.open("wb") as out:
        for _ in range(count):
            o = drawer.draw()
            doc = (
                {"STRATEGY": o.strategy, "INSTRUMENT": o.instrument, "POSITION": o.side}
                if legacy
                else {"strategy": o.strategy, "instrument": o.instrument, "side": o.side}
            )
            out.write(orjson.dumps(doc) + b"\n")
    return path


def serve(home: Path, *extra: str) -> Server:
    return Server(
        [str(BIN / "ordergate"), "serve", "--home", str(home), "--port", "{port}", *extra],
        ready_path="/readyz",
        log=home / "server.log",
    )


def baseline(module: str, **options: Any) -> Server:
    """A baseline app of benchmarks/baselines/ on the same server stack as ordergate."""
    return Server(
        [PYTHON, "-m", "uvicorn", f"benchmarks.baselines.{module}:app", "--port", "{port}", "--loop", "uvloop",
         "--http", "httptools", "--no-access-log", "--log-level", "warning"],
        cwd=ROOT,
        **options,
    )  # fmt: skip


def run_baselines(plan: Plan) -> tuple[LoadResult, LoadResult]:
    home = new_home(plan, "naive")
    bodies = write_bodies(home)
    with baseline("ceiling") as ceiling:
        top = run_wrk(ceiling.url, "/create_order", bodies, seconds=plan.seconds, connections=CONNECTIONS)
    with baseline("naive_gateway", env={"NAIVE_HOME": str(home)}, ready_path="/openapi.json") as naive:
        slow = run_wrk(naive.url, "/create_order", bodies, seconds=plan.seconds, connections=CONNECTIONS)
    return top, slow


def baseline_rows(top: LoadResult, slow: LoadResult) -> list[Row]:
    return [
        Row(
            "B1",
            "HTTP ceiling: raw ASGI, constant answer",
            fmt_rate(top.rate),
            fmt_ms(top.p50_ms),
            fmt_ms(top.p99_ms),
            str(top.errors),
            "1.00x ceiling",
        ),
        Row(
            "B2",
            "naive gateway: FastAPI, JSON files, fsync per order",
            fmt_rate(slow.rate),
            fmt_ms(slow.p50_ms),
            fmt_ms(slow.p99_ms),
            str(slow.errors),
            f"{slow.rate / top.rate:.2f}x ceiling",
        ),
    ]


def s1(
    plan: Plan,
    top: LoadResult,
    slow: LoadResult,
    name: str = "s1",
    home: Path | None = None,
    users: int = S1_USERS,
    serve_args: tuple[str, ...] = (),
) -> tuple[Row, LoadResult]:
    home = home or new_home(plan, name, users)
    bodies = write_bodies(home)
    with serve(home, *serve_args) as server:
        load = _measured_wrk(server, bodies, plan)
    checked = verify(home)
    vs_top, vs_naive = load.rate / top.rate, load.rate / slow.rate if slow.rate else float("inf")
    met = vs_top >= 0.35 and vs_naive >= 30 and load.p99_ms <= 10 and load.errors == 0 and checked == "ok"
    row = Row(
        "S1",
        f"POST /create_order, {CONNECTIONS} connections, durability full, {users} users",
        fmt_rate(load.rate),
        fmt_ms(load.p50_ms),
        fmt_ms(load.p99_ms),
        str(load.errors),
        f"{vs_top:.2f}x ceiling, {vs_naive:.1f}x naive",
        ">= 0.35x ceiling (goal 0.5x), >= 30x naive, p99 <= 10 ms, 0 errors",
        _result(met, checked),
    )
    return row, load


async def _batches(url: str, bodies: list[bytes], seconds: float, clients: int) -> tuple[int, list[float], int]:
    done = 0
    errors = 0
    latencies: list[float] = []
    deadline = time.perf_counter() + seconds

    async def worker(n: int) -> None:
        nonlocal done, errors
        async with httpx.AsyncClient(base_url=url, timeout=60) as client:
            i = n
            while time.perf_counter() < deadline:
                started = time.perf_counter()
                answer = await client.post(
                    "/v1/orders/batch", content=bodies[i % len(bodies)], headers={"content-type": "application/json"}
                )
                latencies.append(time.perf_counter() - started)
                results = answer.json().get("results", []) if answer.status_code == 200 else []
                good = sum(1 for r in results if "order_id" in r)
                done += good
                errors += 1000 - good
                i += clients

    await asyncio.gather(*(worker(n) for n in range(clients)))
    return done, latencies, errors


def s1_granian(plan: Plan, top: LoadResult, slow: LoadResult) -> Row:
    """S1 served by ``--server granian`` (the ceiling stays uvicorn's, so the ratios compare with S1's)."""
    row, _ = s1(plan, top, slow, name="s1-granian", serve_args=("--server", "granian"))
    row.scenario = "S1g"
    row.what = row.what + ", --server granian"
    row.notes.append("S1 on granian: order entry straight from RSGI; ratios against the same (uvicorn) ceiling")
    return row


S1_LIMITS = {"max_open_positions": 1_000_000, "max_orders_per_minute": 1_000_000, "cooldown_seconds": 1}
"""S1L's global limits: every order goes through the risk step (the rolling minute, the open positions,
the cooldown of each user's last close), and none but a re-open within a second of a close is refused."""


def s1_limits(plan: Plan, top: LoadResult, slow: LoadResult, s1_load: LoadResult | None) -> Row:
    """S1 under a risk policy, measured in the same run as S1: what the risk step costs."""
    home = new_home(plan, "s1-limits")
    bodies = write_bodies(home)
    with serve(home) as server:
        answer = httpx.put(
            f"{server.url}/v1/risk/limits", json={"level": "global", "target": None, "limits": S1_LIMITS}, timeout=30
        )
        answer.raise_for_status()
        load = _measured_wrk(server, bodies, plan)
    checked = verify(home)
    ratio = load.rate / s1_load.rate if s1_load is not None and s1_load.rate else float("nan")
    cpu_ratio = (
        load.cpu_us_per_request / s1_load.cpu_us_per_request
        if s1_load is not None and s1_load.cpu_us_per_request
        else float("nan")
    )
    met = ratio >= 0.9 and load.errors == 0 and checked == "ok"
    row = Row(
        "S1L",
        f"S1 with global limits in force ({', '.join(f'{k} {v:,}' for k, v in S1_LIMITS.items())})",
        fmt_rate(load.rate),
        fmt_ms(load.p50_ms),
        fmt_ms(load.p99_ms),
        str(load.errors),
        f"{ratio:.2f}x S1",
        "within 10% of S1, 0 errors",
        _result(met, checked),
    )
    row.notes.append("every order decided with the risk step and folded into the risk state; S1 of the same run")
    if s1_load is not None:
        row.notes.append(
            f"server CPU per order (the writer process included): S1L {load.cpu_us_per_request:.0f} us, "
            f"S1 {s1_load.cpu_us_per_request:.0f} us ({cpu_ratio:.2f}x): the throughput ratio moves with "
            "whatever else shares the cores, this one much less"
        )
    return row


def _measured_wrk(server: Server, bodies: Path, plan: Plan) -> LoadResult:
    """S1's load, with the CPU the server spent on it."""
    before = server.cpu_seconds()
    load = run_wrk(server.url, "/create_order", bodies, seconds=plan.seconds, connections=CONNECTIONS)
    load.server_cpu_s = server.cpu_seconds() - before
    return load


def s1_wide(plan: Plan, top: LoadResult, slow: LoadResult) -> Row:
    row, _ = s1(plan, top, slow, name="s1-wide", users=WIDE_USERS)
    row.scenario = "S1w"
    row.notes.append(f"S1 with {WIDE_USERS} users: every order has about 8 subscribers, each outcome stored")
    return row


OPEN_LOOP_TARGETS = {1000: 5.0, 2000: 10.0, 4000: 20.0}
"""The open-loop rates (orders a second) and each one's p99 target in ms (issue 10)."""


def open_loop_name(rate: int) -> str:
    """The row of a rate: O1k for 1,000 orders a second."""
    return f"O{rate // 1000}k"


def open_loop_rows(plan: Plan, rates: list[int]) -> list[Row]:
    """Durable ``POST /create_order`` on S1w's home shape at fixed arrival rates, latency from each
    order's due time (no coordinated omission), so a server that stalls or falls behind its arrivals
    shows it in p99 and p99.9 instead of slowing the client down (what a closed loop like S1's does).

    Before each rate, the same client at the same rate against the HTTP ceiling, in the same run: the
    latency a server that does nothing gets from this client on this machine, so the rows show what
    the gateway adds and that the client is not the limit.
    """
    home = new_home(plan, "open-loop", WIDE_USERS)
    bodies = write_bodies(home)
    seconds = plan.seconds
    floors: dict[int, OpenLoop] = {}
    loads: dict[int, OpenLoop] = {}
    with baseline("ceiling") as ceiling, serve(home) as server:
        for rate in rates:
            floors[rate] = open_loop(ceiling.url, "/create_order", bodies, rate=rate, seconds=seconds)
            loads[rate] = open_loop(server.url, "/create_order", bodies, rate=rate, seconds=seconds)
    checked = verify(home)
    rows = []
    for rate in rates:
        load, floor, target = loads[rate], floors[rate], OPEN_LOOP_TARGETS[rate]
        tail = load.p999_ms / load.p99_ms if load.p99_ms else float("inf")
        met = load.p99_ms <= target and tail <= 2 and load.errors == 0
        row = Row(
            open_loop_name(rate),
            f"POST /create_order at {rate:,}/s open loop, durability full, {WIDE_USERS} users",
            fmt_rate(load.sent / seconds, "orders/s"),
            fmt_ms(load.p50_ms),
            fmt_ms(load.p99_ms),
            str(load.errors),
            f"p99.9 {fmt_ms(load.p999_ms)} ({tail:.1f}x p99), {load.connections:,} connections",
            f"p99 <= {target:.0f} ms, p99.9 <= 2x p99, 0 errors",
            _result(met, checked),
        )
        row.notes.append(
            f"latency from each order's due time; max {fmt_ms(load.max_ms)}; answers by status {_statuses(load)};"
            f" the client opened {load.connections:,} connections (8 before the first order; {load.waited:,}"
            f" orders waited for one at the cap of {MAX_CONNECTIONS:,}) and sent p99 {fmt_ms(load.lag_p99_ms)}"
            f" late, on {load.cpu_share:.0%} of a core; the same client at {rate:,}/s against the HTTP ceiling"
            f" (B1's server): p50 {fmt_ms(floor.p50_ms)}, p99 {fmt_ms(floor.p99_ms)}, p99.9 {fmt_ms(floor.p999_ms)},"
            f" {floor.connections:,} connections, {floor.errors} errors, sent p99 {fmt_ms(floor.lag_p99_ms)} late"
        )
        rows.append(row)
    return rows


def _statuses(load: OpenLoop) -> str:
    """``201: 3,998, 0: 2`` (0 is a transport failure or no answer)."""
    return ", ".join(f"{status}: {count:,}" for status, count in load.statuses.items())


def s2(plan: Plan) -> Row:
    home = new_home(plan, "s2")
    profiles = orjson.loads((home / "Jsons" / "user_profile.json").read_bytes())
    drawer = OrderDrawer.universe(profiles, seed=9)
    bodies = [
        orjson.dumps(
            {
                "orders": [
                    {"strategy": o.strategy, "instrument": o.instrument, "side": o.side}
                    for o in (drawer.draw() for _ in range(1000))
                ]
            }
        )
        for _ in range(50)
    ]
    with serve(home) as server:
        started = time.perf_counter()
        done, latencies, errors = asyncio.run(_batches(server.url, bodies, plan.seconds, clients=4))
        elapsed = time.perf_counter() - started
    checked = verify(home)
    rate = done / elapsed
    return Row(
        "S2",
        "POST /v1/orders/batch, 1000 orders per request, 4 clients, checked answers",
        fmt_rate(rate, "orders/s"),
        fmt_ms(percentile(latencies, 50) * 1000),
        fmt_ms(percentile(latencies, 99) * 1000),
        str(errors),
        "-",
        ">= 60,000 orders/s durable",
        _result(rate >= 60_000 and errors == 0, checked),
        ["p50/p99 are per batch of 1000 orders"],
    )


def _one_strategy_home(plan: Plan, name: str, users: int, instruments: list[str]) -> Path:
    home = plan.work / name
    (home / "Jsons").mkdir(parents=True, exist_ok=True)
    profile = {f"User {n:06d}": {"FANOUT": instruments} for n in range(users)}
    (home / "Jsons" / "user_profile.json").write_bytes(orjson.dumps(profile))
    return home


def _post_all(url: str, orders: list[Order], expect_users: int) -> tuple[list[float], int]:
    latencies, errors = [], 0
    with httpx.Client(base_url=url, timeout=600) as client:
        for o in orders:
            started = time.perf_counter()
            answer = client.post(
                "/create_order", json={"STRATEGY": o.strategy, "INSTRUMENT": o.instrument, "POSITION": o.side}
            )
            latencies.append(time.perf_counter() - started)
            body = answer.json()
            if answer.status_code != 200 or body.get("RESPONSE") != "ACCEPTED" or len(body["USERS"]) != expect_users:
                errors += 1
    return latencies, errors


def s3(plan: Plan) -> Row:
    users = plan.fanout_users
    home = _one_strategy_home(plan, "s3", users, ["ACC"])
    orders = [Order("FANOUT", "ACC", Side.BUY if n % 2 == 0 else Side.SELL) for n in range(plan.fanout_orders)]
    with serve(home) as server:
        latencies, errors = _post_all(server.url, orders, users)
    checked = verify(home)
    p50, p99 = percentile(latencies, 50), percentile(latencies, 99)
    return Row(
        "S3",
        f"fan-out: {users:,} subscribers of one strategy, alternating BUY/SELL",
        f"{len(orders) / sum(latencies):.1f} orders/s ({len(orders) * users / sum(latencies):,.0f} effects/s)",
        fmt_ms(p50 * 1000),
        fmt_ms(p99 * 1000),
        str(errors),
        "-",
        "p50 <= 0.5 s per order (p99 <= 1 s), durable",
        _result(p50 <= 0.5 and p99 <= 1.0 and errors == 0, checked),
        [f"{len(orders)} orders, each applied for {users:,} users"],
    )


def s4(plan: Plan) -> Row:
    users = plan.book_users
    instruments = [f"INST{n}" for n in range(10)]
    home = _one_strategy_home(plan, "s4", users, instruments)
    orders = [Order("FANOUT", i, Side.BUY) for i in instruments]
    with serve(home) as server:
        _, errors = _post_all(server.url, orders, users)
    restarted = serve(home)
    with restarted:
        ready = restarted.ready_after
        rss = restarted.rss_mb()
        positions = httpx.get(restarted.url + "/v1/positions", params={"limit": 1}).status_code
    checked = verify(home)
    met = ready <= 4 and rss <= 600 and errors == 0 and positions == 200
    scale = "" if users == 100_000 else f" (quick: {users:,} users)"
    return Row(
        "S4",
        f"big book: {users * 10:,} open positions ({users:,} users x 10 instruments){scale}",
        f"ready in {ready:.2f} s",
        "-",
        "-",
        str(errors),
        f"RSS {rss:,.0f} MB",
        "restart to ready <= 4 s, RSS <= 600 MB",
        _result(met, checked),
    )


def s5(plan: Plan) -> Row:
    """decide() alone, over a book that evolves as the decisions are applied (best of three runs).

    Each decide() call is timed on its own (the clock reads count against it); applying the effects
    to the book happens outside the timed part and is reported with it in the notes.
    """
    profile = {"S1": ["ACC", "INFY", "TCS"], "S2": ["ACC", "SBIN"]}
    registry = Registry.from_document(dict.fromkeys(("Ann", "Bob", "Cid"), profile))
    drawer = OrderDrawer(profile, seed=3)
    orders = [drawer.draw() for _ in range(200_000)]
    clock = time.perf_counter_ns
    best_decide = best_both = 0.0
    for _ in range(3):
        book = Book(Scope.ACCOUNT)
        deciding = 0
        started = clock()
        for order_id, order in enumerate(orders, start=1):
            before = clock()
            decision = decide(order, registry, book)
            deciding += clock() - before
            book.apply(order, decision.applied, order_id, "t")
        both = clock() - started
        best_decide = max(best_decide, len(orders) / deciding * 1e9)
        best_both = max(best_both, len(orders) / both * 1e9)
    return Row(
        "S5",
        "decide() in process, 3-user fan-out, evolving book",
        fmt_rate(best_decide, "orders/s"),
        target=">= 300,000 orders/s",
        result=_result(best_decide >= 300_000, "ok"),
        notes=[f"decide() and applying its effects, with the clock reads: {best_both:,.0f} orders/s"],
    )


def s6(plan: Plan, top: LoadResult, slow: LoadResult, s1_load: LoadResult) -> Row:
    home = new_home(plan, "s6")
    profiles = orjson.loads((home / "Jsons" / "user_profile.json").read_bytes())
    drawer = OrderDrawer.universe(profiles, seed=11)
    body = orjson.dumps(
        {
            "orders": [
                {"strategy": o.strategy, "instrument": o.instrument, "side": o.side}
                for o in (drawer.draw() for _ in range(1000))
            ]
        }
    )
    with serve(home) as server:
        asyncio.run(_fill(server.url, body, plan.history_orders // 1000))
    row, load = s1(plan, top, slow, home=home)
    ratio = load.rate / s1_load.rate
    row.scenario, row.what = "S6", f"S1 again after {plan.history_orders:,} logged orders"
    row.ratios = f"{ratio:.2f}x S1"
    row.target = "within 10% of S1"
    row.result = _result(ratio >= 0.9 and load.errors == 0, verify(home))
    return row


async def _fill(url: str, body: bytes, batches: int) -> None:
    async with httpx.AsyncClient(base_url=url, timeout=120) as client:
        for _ in range(batches):
            answer = await client.post("/v1/orders/batch", content=body, headers={"content-type": "application/json"})
            answer.raise_for_status()


STORM_RATE = 250
"""Orders per second of S8's open-loop client: well under S1's capacity, so latency is the measure."""
STORM_CLIENTS = 4


def _storm_paths(home: Path) -> list[str]:
    """The reads of S8's storm: filters that match nothing, rare combinations, a user's whole history."""
    profiles = orjson.loads((home / "Jsons" / "user_profile.json").read_bytes())
    user = sorted(profiles)[0]
    strategy = sorted(profiles[user])[0]
    queries: list[tuple[str, dict[str, object]]] = [
        ("trades", {"instrument": "NOPE"}),
        ("orders", {"status": "REJECTED", "limit": 1000}),
        ("positions", {"strategy": strategy}),
        ("orders", {"user": user}),
        ("trades", {"user": user, "instrument": "NOPE"}),
        ("orders", {"strategy": strategy, "instrument": "NOPE"}),
        ("positions", {"instrument": "NOPE"}),
        ("orders", {"user": user, "side": "SELL", "status": "REJECTED"}),
    ]
    return [f"/v1/{listing}?{urllib.parse.urlencode(filters)}" for listing, filters in queries]


def _order_bodies(home: Path, count: int, seed: int, prefix: str) -> Path:
    """``POST /v1/orders`` bodies, each with its own client order id (so every order is looked up)."""
    profiles = orjson.loads((home / "Jsons" / "user_profile.json").read_bytes())
    drawer = OrderDrawer.universe(profiles, seed=seed)
    path = home / f"{prefix}.jsonl"
    with path.open("wb") as out:
        for n in range(count):
            o = drawer.draw()
            doc = {"strategy": o.strategy, "instrument": o.instrument, "side": o.side}
            out.write(orjson.dumps({**doc, "client_order_id": f"{prefix}-{n}"}) + b"\n")
    return path


def s8(plan: Plan) -> list[Row]:
    """Order latency at a fixed open-loop rate on a big log: alone, with a storm of slow API reads, and
    (the control) with the same storm of ``GET /healthz``, which reads nothing: what any storm of
    requests costs orders on the shared event loop and cores, whatever the store does."""
    home = new_home(plan, "s8")
    profiles = orjson.loads((home / "Jsons" / "user_profile.json").read_bytes())
    drawer = OrderDrawer.universe(profiles, seed=13)
    batches = [
        orjson.dumps(
            {
                "orders": [
                    {"strategy": o.strategy, "instrument": o.instrument, "side": o.side}
                    for o in (drawer.draw() for _ in range(1000))
                ]
            }
        )
        for _ in range(20)
    ]
    count = int(STORM_RATE * plan.storm_seconds)
    bodies = {
        phase: _order_bodies(home, count, seed, phase) for phase, seed in (("quiet", 17), ("reads", 19), ("probes", 23))
    }
    paths = {"reads": _storm_paths(home), "probes": ["/healthz"]}
    storms: dict[str, LoadResult] = {}
    with serve(home) as server:
        asyncio.run(_fill_many(server.url, batches, plan.storm_log_orders // 1000))
        latency = {
            "quiet": open_loop(
                server.url, "/v1/orders", bodies["quiet"], rate=STORM_RATE, seconds=plan.storm_seconds, retry=True
            )
        }
        for phase in ("reads", "probes"):
            with ReadStorm(
                server.url, paths[phase], clients=STORM_CLIENTS, seconds=plan.storm_seconds + 4, work=home
            ) as storm:
                latency[phase] = open_loop(
                    server.url, "/v1/orders", bodies[phase], rate=STORM_RATE, seconds=plan.storm_seconds, retry=True
                )
            storms[phase] = storm.result
    checked = verify(home)
    quiet, stormy, control = latency["quiet"], latency["reads"], latency["probes"]
    ratio = stormy.p99_ms / quiet.p99_ms if quiet.p99_ms else float("inf")
    met = (ratio <= 1.5 or stormy.p99_ms - quiet.p99_ms <= 3) and stormy.errors == 0
    what = f"POST /v1/orders at {STORM_RATE}/s open loop, client order ids, {plan.storm_log_orders:,} logged orders"

    def row(scenario: str, during: str, result: OpenLoop, ratios: str, target: str, met: bool) -> Row:
        return Row(
            scenario,
            f"{what}, {during}",
            fmt_rate(result.sent / plan.storm_seconds, "orders/s"),
            fmt_ms(result.p50_ms),
            fmt_ms(result.p99_ms),
            str(result.errors),
            ratios,
            target,
            _result(met, checked),
        )

    def storm_note(phase: str, what: str) -> str:
        load = storms[phase]
        return (
            f"max {latency[phase].max_ms:.1f} ms; the storm (wrk, {STORM_CLIENTS} connections looping over {what})"
            f" got {load.requests:,} answers ({load.rate:,.0f}/s, p50 {load.p50_ms:.1f} ms, p99 {load.p99_ms:.1f} ms),"
            f" {load.errors:,} of them not 2xx"
        )

    rows = [
        row("S8", "no other requests", quiet, "-", "-", quiet.errors == 0),
        row(
            "S8r",
            f"{STORM_CLIENTS} clients looping slow GETs",
            stormy,
            f"p99 {ratio:.2f}x S8, {stormy.p99_ms / control.p99_ms:.2f}x S8h",
            "p99 <= 1.5x S8 (or + 3 ms), 0 errors",
            met,
        ),
        row(
            "S8h",
            f"{STORM_CLIENTS} clients looping GET /healthz (control: no read at all)",
            control,
            f"p99 {control.p99_ms / quiet.p99_ms:.2f}x S8",
            "-",
            control.errors == 0,
        ),
    ]
    rows[0].notes.append(
        f"latency from each order's scheduled send time (no coordinated omission); max {quiet.max_ms:.1f} ms"
    )
    rows[1].notes.append(storm_note("reads", f"{len(paths['reads'])} filters"))
    rows[2].notes.append(storm_note("probes", "GET /healthz"))
    return rows


async def _fill_many(url: str, bodies: list[bytes], batches: int, clients: int = 2) -> None:
    async def client(n: int) -> None:
        async with httpx.AsyncClient(base_url=url, timeout=120) as http:
            for i in range(n, batches, clients):
                answer = await http.post(
                    "/v1/orders/batch", content=bodies[i % len(bodies)], headers={"content-type": "application/json"}
                )
                answer.raise_for_status()

    await asyncio.gather(*(client(n) for n in range(clients)))


def f1(plan: Plan) -> Row:
    """FIX order entry at a fixed rate on S1w's home shape (:mod:`benchmarks.fix_scenarios`)."""
    from benchmarks.fix_scenarios import QUICK_RATE, RATE
    from benchmarks.fix_scenarios import f1 as run_f1

    home = new_home(plan, "f1", WIDE_USERS)
    command = [str(BIN / "ordergate"), "serve", "--home", str(home), "--port", "{port}"]
    return run_f1(plan.work, home, rate=QUICK_RATE if plan.quick else RATE, seconds=plan.seconds, serve_command=command)


def _result(met: bool, checked: str) -> str:
    if checked != "ok":
        return f"FAILED verify: {checked}"
    return "met" if met else "missed"
