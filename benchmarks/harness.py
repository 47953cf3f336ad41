"""The machinery of ``make bench``: server processes, load generators, and the results table.

Load comes from ``wrk`` (C, with ``orders.lua`` replaying prepared bodies, or ``reads.lua`` looping
over GET paths for a read storm) where answers need not be read, from a small asyncio httpx client
where they must be checked, and from :mod:`benchmarks.loads` for open-loop order entry at a fixed
rate (one process, or several splitting one schedule). All share the machine's cores with the server
under test, and the table says so.
"""

from __future__ import annotations

import json
import math
import os
import platform
import shutil
import signal
import socket
import subprocess
import sys
import time
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx

ROOT = Path(__file__).resolve().parent.parent
LUA = Path(__file__).resolve().parent / "orders.lua"
READS_LUA = Path(__file__).resolve().parent / "reads.lua"
PYTHON = sys.executable
BIN = Path(PYTHON).parent


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


class Server:
    """A server process on 127.0.0.1, ready when ``ready_path`` answers 200."""

    def __init__(
        self,
        args: Sequence[str],
        *,
        env: dict[str, str] | None = None,
        cwd: Path | None = None,
        port: int | None = None,
        ready_path: str = "/healthz",
        log: Path | None = None,
    ) -> None:
        self.port = port or free_port()
        self.args = [a.replace("{port}", str(self.port)) for a in args]
        self.env = {**os.environ, **(env or {})}
        self.cwd = cwd
        self.ready_path = ready_path
        self.log = log
        self.process: subprocess.Popen[bytes] | None = None
        self.started_at = 0.0
        self.ready_after = 0.0

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start(self, timeout: float = 120.0) -> Server:
        out = self.log.open("ab") if self.log else subprocess.DEVNULL
        self.started_at = time.perf_counter()
        self.process = subprocess.Popen(self.args, env=self.env, cwd=self.cwd, stdout=out, stderr=subprocess.STDOUT)
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError(f"server exited with {self.process.returncode}: {' '.join(self.args)}")
            try:
                if httpx.get(self.url + self.ready_path, timeout=1.0).status_code == 200:
                    self.ready_after = time.perf_counter() - self.started_at
                    return self
            except httpx.HTTPError:
                pass
            time.sleep(0.02)
        self.stop()
        raise RuntimeError(f"server not ready after {timeout} s: {' '.join(self.args)}")

    def cpu_seconds(self) -> float:
        """CPU time (user and system) the server and its child processes (the SQLite writer) used so far.

        On a machine whose cores the load generator (and anything else) shares, a throughput ratio of two
        runs moves with whatever else ran; the CPU one order costs the server moves far less."""
        assert self.process is not None
        pids = [self.process.pid]
        children = Path(f"/proc/{self.process.pid}/task/{self.process.pid}/children")
        if children.exists():
            pids += [int(p) for p in children.read_text().split()]
        total = 0
        for pid in pids:
            try:
                fields = Path(f"/proc/{pid}/stat").read_text().rpartition(")")[2].split()
            except FileNotFoundError:
                continue
            total += int(fields[11]) + int(fields[12])  # utime, stime (fields 14 and 15 of stat)
        return total / os.sysconf("SC_CLK_TCK")

    def rss_mb(self) -> float:
        assert self.process is not None
        status = Path(f"/proc/{self.process.pid}/status").read_text()
        kb = next(int(line.split()[1]) for line in status.splitlines() if line.startswith("VmRSS:"))
        return kb / 1024

    def stop(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(timeout=60)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
        self.process = None

    def __enter__(self) -> Server:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()


@dataclass
class LoadResult:
    requests: int
    seconds: float
    p50_ms: float
    p99_ms: float
    errors: int
    server_cpu_s: float = 0.0
    """CPU seconds the server used during the load, when measured (:meth:`Server.cpu_seconds`)."""

    @property
    def rate(self) -> float:
        return self.requests / self.seconds if self.seconds else 0.0

    @property
    def cpu_us_per_request(self) -> float:
        return self.server_cpu_s / self.requests * 1e6 if self.requests else 0.0


def ensure_wrk() -> str:
    found = shutil.which("wrk")
    if found is None:
        raise SystemExit("wrk is not installed: run 'make bench' (it installs Debian's wrk) or apt-get install wrk")
    return found


def run_wrk(url: str, path: str, bodies: Path, *, seconds: float, connections: int, threads: int = 2) -> LoadResult:
    """Replay ``bodies`` against ``url + path`` for ``seconds``; errors count sockets and non-2xx answers."""
    command = [
        ensure_wrk(),
        f"-t{threads}",
        f"-c{connections}",
        f"-d{seconds}s",
        "--timeout",
        "10s",
        "-s",
        str(LUA),
        url,
    ]
    env = {**os.environ, "ORDERS_FILE": str(bodies), "ORDERS_PATH": path}
    output = subprocess.run(command, env=env, capture_output=True, text=True, timeout=seconds + 60, check=True).stdout
    line = next(line for line in output.splitlines() if line.startswith("WRK_JSON "))
    data = json.loads(line.removeprefix("WRK_JSON "))
    errors = sum(data[k] for k in ("connect", "read", "write", "status", "timeout"))
    return LoadResult(data["requests"], data["duration_us"] / 1e6, data["p50_us"] / 1000, data["p99_us"] / 1000, errors)


def percentile(values: Sequence[float], p: float) -> float:
    """The nearest-rank percentile: the smallest value at least ``p`` % of the values are not above.

    The rank is rounded before its ceiling is taken, as ``99.9 / 100 * 1000`` is 999.0000000000001 in
    floating point, which would make the p99.9 of 1,000 values their maximum.
    """
    if not values:
        return 0.0
    ordered = sorted(values)
    rank = math.ceil(round(p / 100 * len(ordered), 6))
    return ordered[min(len(ordered) - 1, max(0, rank - 1))]


def ordergate(*args: str, timeout: float = 600) -> subprocess.CompletedProcess[str]:
    return subprocess.run([str(BIN / "ordergate"), *args], capture_output=True, text=True, timeout=timeout, check=False)


def verify(home: Path) -> str:
    """``ordergate verify`` on a home: 'ok' or the first difference."""
    result = ordergate("verify", "--home", str(home), timeout=1800)
    return "ok" if result.returncode == 0 else (result.stderr.strip() or result.stdout.strip())


@dataclass
class Row:
    scenario: str
    what: str
    throughput: str
    p50: str = "-"
    p99: str = "-"
    errors: str = "-"
    ratios: str = "-"
    target: str = "-"
    result: str = "-"
    notes: list[str] = field(default_factory=list)


def machine() -> str:
    model = "unknown CPU"
    for line in Path("/proc/cpuinfo").read_text().splitlines():
        if line.startswith("model name"):
            model = line.split(":", 1)[1].strip()
            break
    memory = next(
        int(line.split()[1]) // 1024 // 1024
        for line in Path("/proc/meminfo").read_text().splitlines()
        if line.startswith("MemTotal")
    )
    return (
        f"{os.cpu_count()} cores ({model}), {memory} GiB RAM, Linux {platform.release()}, "
        f"Python {platform.python_version()}"
    )


def markdown(rows: Sequence[Row], header: str) -> str:
    lines = [
        header,
        "",
        "| Scenario | What | Throughput | p50 | p99 | Errors | Ratio | Target | Result |",
        "|---|---|---|---|---|---|---|---|---|",
    ]
    for r in rows:
        lines.append(
            f"| {r.scenario} | {r.what} | {r.throughput} | {r.p50} | {r.p99} | {r.errors} | {r.ratios} "
            f"| {r.target} | {r.result} |"
        )
    notes = [f"- **{r.scenario}**: {note}" for r in rows for note in r.notes]
    if notes:
        lines += ["", *notes]
    return "\n".join(lines) + "\n"


@dataclass
class OpenLoop:
    """What the workers of one open-loop load measured together (latency from each request's due time)."""

    rate: float
    seconds: float
    sent: int
    p50_ms: float
    p99_ms: float
    p999_ms: float
    max_ms: float
    errors: int
    """Answers that are not 2xx, and transport failures (status 0: refused, reset, no answer in time)."""
    connections: int
    """Connections the workers opened, the ones opened before the schedule began included."""
    waited: int
    """Orders that waited in a worker for a free connection, all its connections being busy."""
    lag_p99_ms: float
    """How late the workers themselves sent (p99): a generator short of CPU shows here first."""
    cpu_s: float
    statuses: dict[str, int]

    @property
    def cpu_share(self) -> float:
        """The workers' CPU time over the load's duration: 1.0 is one core."""
        return self.cpu_s / self.seconds if self.seconds else 0.0


def merge_open_loop(outputs: Sequence[dict[str, Any]], *, rate: float, seconds: float) -> OpenLoop:
    """One :class:`OpenLoop` from the JSON the workers of :mod:`benchmarks.loads` wrote: percentiles
    over every worker's latencies together (a percentile of percentiles would be wrong)."""
    latencies = [v / 1e6 for out in outputs for v in out["latencies_us"]]
    lags = [v / 1e6 for out in outputs for v in out["lags_us"]]
    statuses: Counter[str] = Counter()
    for out in outputs:
        statuses.update(out["statuses"])
    return OpenLoop(
        rate=rate,
        seconds=seconds,
        sent=sum(int(out["sent"]) for out in outputs),
        p50_ms=percentile(latencies, 50) * 1000,
        p99_ms=percentile(latencies, 99) * 1000,
        p999_ms=percentile(latencies, 99.9) * 1000,
        max_ms=max(latencies, default=0.0) * 1000,
        errors=sum(n for status, n in statuses.items() if not 200 <= int(status) < 300),
        connections=sum(int(out["connections"]) for out in outputs),
        waited=sum(int(out.get("waited", 0)) for out in outputs),
        lag_p99_ms=percentile(lags, 99) * 1000,
        cpu_s=sum(float(out["cpu_s"]) for out in outputs),
        statuses=dict(sorted(statuses.items())),
    )


def open_loop(
    url: str, path: str, bodies: Path, *, rate: float, seconds: float, workers: int = 1, retry: bool = False
) -> OpenLoop:
    """``POST path`` at a fixed rate from ``workers`` processes of :mod:`benchmarks.loads` that split
    one schedule, starting together on the system's monotonic clock once all are up."""
    start = time.monotonic() + 2.0  # time for the workers to start and open their first connections
    command = [PYTHON, "-m", "benchmarks.loads", url, path, str(bodies), str(rate), str(seconds), repr(start)]
    outs = [bodies.with_name(f"{bodies.stem}-open-loop-{k}.json") for k in range(workers)]
    processes = [
        subprocess.Popen(
            [*command, str(workers), str(k), str(outs[k]), *(["--retry"] if retry else [])],
            cwd=ROOT,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
            text=True,
        )
        for k in range(workers)
    ]
    outputs = []
    for process, out in zip(processes, outs, strict=True):
        _, err = process.communicate(timeout=seconds + 120)
        if process.returncode != 0:
            raise RuntimeError(f"an open-loop worker failed ({process.returncode}): {err.strip()}")
        outputs.append(json.loads(out.read_text()))
        out.unlink()
    return merge_open_loop(outputs, rate=rate, seconds=seconds)


class ReadStorm:
    """``wrk`` with ``clients`` connections looping over ``GET paths`` (``reads.lua``), for ``seconds``.

    Started by ``with``, it reaches its pace before the block runs; leaving the block waits for it to end.
    """

    def __init__(self, url: str, paths: Sequence[str], *, clients: int, seconds: float, work: Path) -> None:
        queries = work / "storm-queries.txt"
        queries.write_text("\n".join(paths) + "\n")
        self.seconds = seconds
        self.command = [
            ensure_wrk(),
            "-t1",
            f"-c{clients}",
            f"-d{seconds:.0f}s",
            "--timeout",
            "30s",
            "-s",
            str(READS_LUA),
            url,
        ]
        self.env = {**os.environ, "READS_FILE": str(queries)}
        self.process: subprocess.Popen[str] | None = None
        self.result = LoadResult(0, 0.0, 0.0, 0.0, 0)

    def __enter__(self) -> ReadStorm:
        self.process = subprocess.Popen(
            self.command, env=self.env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True
        )
        time.sleep(1.0)  # let it reach its pace
        return self

    def __exit__(self, *exc: object) -> None:
        assert self.process is not None
        output, _ = self.process.communicate(timeout=self.seconds + 60)
        line = next((line for line in output.splitlines() if line.startswith("WRK_JSON ")), None)
        if line is None:
            raise RuntimeError(f"the read storm failed: {output.strip()}")
        data = json.loads(line.removeprefix("WRK_JSON "))
        errors = sum(data[k] for k in ("connect", "read", "write", "status", "timeout"))
        self.result = LoadResult(
            data["requests"], data["duration_us"] / 1e6, data["p50_us"] / 1000, data["p99_us"] / 1000, errors
        )
