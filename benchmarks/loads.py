"""Open-loop order entry from a process of its own, on a client cheap enough not to be what is measured.

``python -m benchmarks.loads URL BODIES RATE SECONDS`` sends the prepared ``POST /v1/orders`` bodies
of ``BODIES`` (one JSON document a line) at a fixed rate, on a schedule fixed in advance: the latency
of each request counts from the moment it was *scheduled*, not from when it could be sent, so a
stalled server cannot hide its stall by slowing the client down (no coordinated omission). It
prints one JSON line: the latencies' p50, p99 and max, and the answers by status.

The client speaks HTTP/1.1 over raw asyncio streams (keep-alive connections, a new one whenever all
are busy): httpx costs several times more CPU per request, and on a machine whose cores the server
and a read storm share, a client short of CPU falls behind its own schedule and reports its own lag
as the server's latency.
"""

from __future__ import annotations

import asyncio
import json
import sys
import urllib.parse
from collections import Counter
from pathlib import Path

from benchmarks.harness import percentile


class Connection:
    def __init__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.reader = reader
        self.writer = writer

    async def exchange(self, request: bytes) -> int:
        """Send one request and read its whole answer; the status code."""
        self.writer.write(request)
        head = await self.reader.readuntil(b"\r\n\r\n")
        status = int(head[9:12])
        length = 0
        for line in head.split(b"\r\n")[1:]:
            name, _, value = line.partition(b":")
            if name.strip().lower() == b"content-length":
                length = int(value)
        if length:
            await self.reader.readexactly(length)
        return status


async def orders(url: str, bodies: list[bytes], rate: float, seconds: float) -> dict[str, object]:
    target = urllib.parse.urlsplit(url)
    host, port = target.hostname or "127.0.0.1", target.port or 80
    count = min(len(bodies), int(rate * seconds))
    requests = [
        b"POST /v1/orders HTTP/1.1\r\nHost: %s\r\nContent-Type: application/json\r\nContent-Length: %d\r\n\r\n%s"
        % (host.encode(), len(body), body)
        for body in bodies[:count]
    ]
    idle: list[Connection] = []
    for _ in range(8):
        idle.append(Connection(*await asyncio.open_connection(host, port)))
    loop = asyncio.get_running_loop()
    latencies: list[float] = []
    statuses: Counter[int] = Counter()
    start = loop.time() + 0.2

    async def one(index: int) -> None:
        scheduled = start + index / rate
        await asyncio.sleep(max(0.0, scheduled - loop.time()))
        reused = bool(idle)
        conn = idle.pop() if reused else Connection(*await asyncio.open_connection(host, port))
        for attempt in range(2):
            try:
                statuses[await conn.exchange(requests[index])] += 1
                idle.append(conn)
                break
            except (OSError, asyncio.IncompleteReadError, ValueError):
                conn.writer.close()
                if not reused or attempt:
                    statuses[0] += 1
                    break
                # the server closed this keep-alive connection while it was idle: retry once on a new
                # one (safe: every body has a client order id), the latency still counted from schedule
                conn = Connection(*await asyncio.open_connection(host, port))
        latencies.append(loop.time() - scheduled)

    await asyncio.gather(*(one(i) for i in range(count)))
    for conn in idle:
        conn.writer.close()
    return {
        "sent": count,
        "p50_ms": percentile(latencies, 50) * 1000,
        "p99_ms": percentile(latencies, 99) * 1000,
        "max_ms": max(latencies, default=0.0) * 1000,
        "errors": sum(n for status, n in statuses.items() if status not in (200, 201)),
        "statuses": {str(k): v for k, v in sorted(statuses.items())},
    }


def main(argv: list[str]) -> None:
    url, bodies, rate, seconds = argv[0], Path(argv[1]).read_bytes().splitlines(), float(argv[2]), float(argv[3])
    print("LOAD_JSON " + json.dumps(asyncio.run(orders(url, bodies, rate, seconds))), flush=True)


if __name__ == "__main__":
    main(sys.argv[1:])
