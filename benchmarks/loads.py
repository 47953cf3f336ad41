"""Open-loop order entry from processes of their own, on a client cheap enough not to be what is measured.

``python -m benchmarks.loads URL PATH BODIES RATE SECONDS START WORKERS WORKER OUT [--retry]`` is one
worker of an open-loop load: ``WORKERS`` such processes split one schedule of ``RATE`` requests a
second for ``SECONDS`` (request ``i`` is due at ``START + i / RATE`` on the system's monotonic clock,
and worker ``k`` sends the requests ``k, k + WORKERS, ...``), each ``POST PATH`` with the prepared
bodies of ``BODIES`` (one a line, used in turn). The schedule is fixed in advance and the latency of
each request counts from the moment it was *due*, not from when it could be sent, so a stalled
server cannot hide its stall by slowing the client down (no coordinated omission). The worker writes
one JSON document to ``OUT`` (a file, not its standard output, which the event loop may leave
non-blocking: a large write to a pipe would be cut short): every latency, every send lag (how late the
worker itself sent), the answers by status (0 for a transport failure or no answer), the connections
it opened, how many orders waited for a free one and the CPU time it used.
:func:`benchmarks.harness.open_loop` starts the workers and merges what they wrote.

Why it is built this way: on a machine whose two cores the server shares, a client short of CPU falls
behind its own schedule and reports its own lag as the server's latency. So there is no task, future
or stream per request: one timer callback sends whatever is due on an idle keep-alive connection (a
new one when all are busy, up to :data:`MAX_CONNECTIONS`, so a slow server meets more connections,
never fewer requests), an
:class:`asyncio.Protocol` parses the status line and ``Content-Length`` as bytes arrive, and the
event loop is uvloop's. ``benchmarks`` measures this client against the HTTP ceiling at the same rates
in the same run to show it is not the limit.

A connection the server closes while it carries a request is a transport failure; with ``--retry``
(only for bodies with client order ids, where sending twice is safe) a request lost on a reused
keep-alive connection before any byte of its answer is sent once more on another, its latency still
counted from its due time.
"""

from __future__ import annotations

import asyncio
import json
import resource
import sys
import time
import urllib.parse
from collections import Counter, deque
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import cast

EARLY = 0.0005
"""A request may leave up to half a millisecond before it is due: the event loop's timers have
millisecond resolution, so waiting for the exact due time would add half a millisecond on average to
every latency. A request sent early counts its latency from when it was sent."""
TICK = 0.001
"""The shortest sleep between two sends: a shorter one rounds to no sleep at all on uvloop's
millisecond timers, and at 4,000 requests a second the worker would spin on a core it shares with the
server. Above 1,000 a second a tick sends what fell due since the last one, in a burst."""
GRACE = 30.0
"""How long after the last due time the worker waits for the answers still out: those that do not come
count as failures, with the whole wait as their latency."""
INITIAL_CONNECTIONS = 8
MAX_CONNECTIONS = 1024
"""A worker opens a new connection whenever all are busy, up to this many at once; past it, an order
waits in the worker for the first connection free (its latency still counts from its due time, so the
wait is measured, not hidden). Without a bound, a server that falls behind meets thousands of
connection attempts, whose handshakes take the CPU it needs to catch up, and the file descriptors run
out."""


def due_time(start: float, rate: float, index: int) -> float:
    """When request ``index`` of a schedule of ``rate`` a second from ``start`` is due."""
    return start + index / rate


def share(count: int, workers: int, worker: int) -> range:
    """The requests ``worker`` of ``workers`` sends out of ``count``: every ``workers``-th, from its own
    number, so the workers' requests interleave and each worker's are evenly spaced too."""
    return range(worker, count, workers)


def latency_of(due: float, sent: float, answered: float) -> float:
    """From the due time, or from the send time for a request that left early (see :data:`EARLY`):
    from whichever came first, so neither the worker's lag nor an early start is hidden."""
    return answered - min(due, sent)


def answer_length(buffer: bytes | bytearray) -> tuple[int, int] | None:
    """``(status, length of the whole answer)`` once ``buffer`` holds a complete HTTP/1.1 answer with a
    ``Content-Length`` (or none, for no body), else ``None``."""
    end = buffer.find(b"\r\n\r\n")
    if end < 0:
        return None
    head = bytes(buffer[:end])
    length = 0
    for line in head.split(b"\r\n")[1:]:
        name, _, value = line.partition(b":")
        if name.strip().lower() == b"content-length":
            length = int(value)
    total = end + 4 + length
    if len(buffer) < total:
        return None
    return int(head[9:12]), total


class Connection(asyncio.Protocol):
    """One keep-alive connection carrying one request at a time; ``done(status)`` when its answer is
    complete (status 0 if the connection is lost first)."""

    def __init__(self, lost: Callable[[Connection], None]) -> None:
        self.transport: asyncio.Transport | None = None
        self.buffer = bytearray()
        self.lost = lost
        self.done: Callable[[int, bool], None] | None = None
        self.served = 0
        self.closed = False

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = cast(asyncio.Transport, transport)  # uvloop's transports do not subclass it

    def send(self, request: bytes, done: Callable[[int, bool], None]) -> None:
        assert self.transport is not None
        self.done = done
        self.transport.write(request)

    def data_received(self, data: bytes) -> None:
        self.buffer += data
        answer = answer_length(self.buffer)
        if answer is None or self.done is None:
            return
        status, total = answer
        del self.buffer[:total]
        done, self.done = self.done, None
        self.served += 1
        done(status, False)

    def connection_lost(self, exc: Exception | None) -> None:
        self.closed = True
        done, self.done = self.done, None
        self.lost(self)
        if done is not None:
            # retriable: a reused connection the server closed before sending any of the answer
            done(0, self.served > 0 and not self.buffer)


class Worker:
    """One process's share of the schedule, its connection pool, and what it measured."""

    def __init__(
        self, host: str, port: int, requests: Sequence[bytes], schedule: Sequence[float], *, retry: bool
    ) -> None:
        self.host, self.port = host, port
        self.requests = requests
        self.schedule = schedule
        self.retry = retry
        self.idle: list[Connection] = []
        self.opened = 0
        self.live = 0
        self.waiting: deque[tuple[int, float, float, bool]] = deque()
        self.waited = 0
        self.latencies: list[float] = []
        self.lags: list[float] = []
        self.statuses: Counter[int] = Counter()
        self.outstanding = 0
        self.next = 0
        self.finished = asyncio.get_running_loop().create_future()
        self.opening: set[asyncio.Task[None]] = set()  # the loop keeps only weak references to tasks

    def open_for(self, n: int, due: float, sent: float, retried: bool) -> None:
        task = asyncio.get_running_loop().create_task(self.on_new(n, due, sent, retried))
        self.opening.add(task)
        task.add_done_callback(self.opening.discard)

    def drop(self, conn: Connection) -> None:
        self.live -= 1
        if conn in self.idle:
            self.idle.remove(conn)
        if self.waiting and self.live < MAX_CONNECTIONS:
            self.open_for(*self.waiting.popleft())

    async def open(self) -> Connection:
        loop = asyncio.get_running_loop()
        self.opened += 1
        self.live += 1
        try:
            _, conn = await loop.create_connection(lambda: Connection(self.drop), self.host, self.port)
        except OSError:
            self.live -= 1
            raise
        return conn

    async def warm(self, count: int) -> None:
        self.idle += [await self.open() for _ in range(count)]

    def tick(self) -> None:
        """Send everything due (or due within :data:`EARLY`), then sleep until the next one is (at least
        :data:`TICK`)."""
        now = time.monotonic()
        while self.next < len(self.schedule) and self.schedule[self.next] <= now + EARLY:
            self.dispatch(self.next, self.schedule[self.next], now, retried=False)
            self.next += 1
            now = time.monotonic()
        if self.next < len(self.schedule):
            delay = self.schedule[self.next] - EARLY - time.monotonic()
            asyncio.get_running_loop().call_later(max(TICK, delay), self.tick)
        else:
            self.settle()

    def dispatch(self, n: int, due: float, now: float, *, retried: bool) -> None:
        self.outstanding += 1
        if not retried:
            self.lags.append(max(0.0, now - due))
        while self.idle:
            conn = self.idle.pop()
            if not conn.closed:
                self.on(conn, n, due, now, retried)
                return
        if self.live < MAX_CONNECTIONS:
            self.open_for(n, due, now, retried)
        else:
            self.waited += 1
            self.waiting.append((n, due, now, retried))

    async def on_new(self, n: int, due: float, sent: float, retried: bool) -> None:
        try:
            conn = await self.open()
        except OSError:
            self.record(0, due, sent)
            return
        self.on(conn, n, due, sent, retried)

    def on(self, conn: Connection, n: int, due: float, sent: float, retried: bool) -> None:
        def done(status: int, retriable: bool) -> None:
            if status == 0 and retriable and self.retry and not retried:
                self.outstanding -= 1
                self.dispatch(n, due, sent, retried=True)
                return
            if conn.closed:
                pass
            elif self.waiting:
                self.on(conn, *self.waiting.popleft())
            else:
                self.idle.append(conn)
            self.record(status, due, sent)

        conn.send(self.requests[n], done)

    def record(self, status: int, due: float, sent: float) -> None:
        self.statuses[status] += 1
        self.latencies.append(latency_of(due, sent, time.monotonic()))
        self.outstanding -= 1
        self.settle()

    def settle(self) -> None:
        if self.next >= len(self.schedule) and self.outstanding == 0 and not self.finished.done():
            self.finished.set_result(None)


async def run(
    url: str, path: str, bodies: Sequence[bytes], *, rate: float, seconds: float, start: float, workers: int,
    worker: int, retry: bool = False,
) -> dict[str, object]:  # fmt: skip
    target = urllib.parse.urlsplit(url)
    host, port = target.hostname or "127.0.0.1", target.port or 80
    mine = share(int(rate * seconds), workers, worker)
    requests = [
        b"POST %s HTTP/1.1\r\nHost: %s\r\nContent-Type: application/json\r\nContent-Length: %d\r\n\r\n%s"
        % (path.encode(), host.encode(), len(body), body)
        for body in (bodies[n % len(bodies)] for n in mine)
    ]
    schedule = [due_time(start, rate, n) for n in mine]
    load = Worker(host, port, requests, schedule, retry=retry)
    await load.warm(min(INITIAL_CONNECTIONS, MAX_CONNECTIONS))
    loop = asyncio.get_running_loop()
    cpu = _cpu_seconds()
    loop.call_later(max(0.0, start - EARLY - time.monotonic()), load.tick)
    last_due = schedule[-1] if schedule else start
    try:
        await asyncio.wait_for(asyncio.shield(load.finished), last_due + GRACE - time.monotonic())
    except TimeoutError:
        missing = len(schedule) - sum(load.statuses.values())
        load.statuses[0] += missing
        load.latencies += [GRACE] * missing
    for conn in load.idle:
        if conn.transport is not None:
            conn.transport.close()
    return {
        "sent": len(schedule),
        "latencies_us": [round(v * 1e6) for v in load.latencies],
        "lags_us": [round(v * 1e6) for v in load.lags],
        "statuses": {str(k): v for k, v in sorted(load.statuses.items())},
        "connections": load.opened,
        "waited": load.waited,
        "cpu_s": _cpu_seconds() - cpu,
    }


def _cpu_seconds() -> float:
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


def main(argv: list[str]) -> None:
    retry = "--retry" in argv
    url, path, bodies_file, rate, seconds, start, workers, worker, out = [a for a in argv if a != "--retry"]
    bodies = Path(bodies_file).read_bytes().splitlines()
    try:
        import uvloop

        uvloop.install()
    except ImportError:  # the standard loop works, at a higher cost per request
        pass
    result = asyncio.run(
        run(
            url,
            path,
            bodies,
            rate=float(rate),
            seconds=float(seconds),
            start=float(start),
            workers=int(workers),
            worker=int(worker),
            retry=retry,
        )
    )
    Path(out).write_text(json.dumps(result))


if __name__ == "__main__":
    main(sys.argv[1:])
