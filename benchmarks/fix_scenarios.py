"""F1: FIX order entry (``serve --fix-port``) at a fixed rate, open loop: orders/s and latency (issue 12).

Several FIX sessions (one SenderCompID each) split one schedule of NewOrderSingles; order ``i`` is due at
``start + i / rate`` and its latency counts from that moment to its ExecutionReport, so a gateway that
stalls cannot hide it by slowing the client (no coordinated omission). The client is a plain asyncio
FIX speaker with its orders drawn before the schedule starts; it answers TestRequests and counts
anything but an ExecutionReport to an order (a Reject, a BusinessMessageReject, a missing report) as an
error. The gateway journals every report before sending it (durability full), and the run ends with
``ordergate verify``.
"""

from __future__ import annotations

import asyncio
import re
import time
from datetime import UTC, datetime
from pathlib import Path

import orjson

from benchmarks.harness import Row, Server, free_port, percentile, verify
from ordergate.fix.codec import sending_time
from ordergate.tools.produce import OrderDrawer

SESSIONS = 4
RATE = 1000
QUICK_RATE = 500
ANSWER_TIMEOUT = 10.0
_TRAILER = re.compile(rb"\x0110=\d{3}\x01")
_SIDE = {"BUY": "1", "SELL": "2"}


def frame(sender: str, msg_type: str, seq: int, body: list[tuple[int, str]]) -> bytes:
    fields = [
        (35, msg_type),
        (49, sender),
        (56, "ORDERGATE"),
        (34, str(seq)),
        (52, sending_time(datetime.now(UTC))),
        *body,
    ]
    content = "".join(f"{tag}={value}\x01" for tag, value in fields).encode()
    head = f"8=FIX.4.4\x019={len(content)}\x01".encode() + content
    return head + f"10={sum(head) % 256:03d}\x01".encode()


def fields_of(data: bytes) -> dict[int, str]:
    found: dict[int, str] = {}
    for part in data.decode("utf-8", "replace").split("\x01"):
        tag, _, value = part.partition("=")
        if tag.isdigit():
            found.setdefault(int(tag), value)
    return found


class FixLoad:
    """One session's share of the schedule, its latencies and errors."""

    def __init__(self, sender: str, orders: list[tuple[str, list[tuple[int, str]]]], due: list[float]) -> None:
        self.sender = sender
        self.orders = orders
        self.due = due
        """Each order's offset from the schedule's start, in seconds."""
        self.sent_at: dict[str, float] = {}
        self.latencies: list[float] = []
        self.errors = 0
        self.lags: list[float] = []

    async def log_on(self, port: int) -> None:
        self._reader, self._writer = await asyncio.open_connection("127.0.0.1", port)
        self._seq = 1
        self._writer.write(frame(self.sender, "A", self._seq, [(98, "0"), (108, "30")]))
        self._buffer, logon = await _next(self._reader, b"")
        assert logon.get(35) == "A", logon

    async def run(self, start: float) -> None:
        """Send the share on its schedule (``start`` + each order's offset) and wait for every answer."""
        reader, writer = self._reader, self._writer
        done = asyncio.Event()
        answered = 0
        expected = len(self.orders)

        async def receive() -> None:
            nonlocal answered
            while answered < expected:
                self._buffer, message = await _next(reader, self._buffer)
                kind = message.get(35)
                if kind == "8":
                    due = self.sent_at.pop(message.get(11, ""), None)
                    if due is not None:
                        self.latencies.append(time.monotonic() - due)
                        answered += 1
                elif kind in ("3", "j"):
                    self.errors += 1
                    answered += 1
                elif kind == "1":
                    self._seq += 1
                    writer.write(frame(self.sender, "0", self._seq, [(112, message.get(112, ""))]))
            done.set()

        receiver = asyncio.create_task(receive())
        for (client_order_id, body), offset in zip(self.orders, self.due, strict=True):
            due = start + offset
            delay = due - time.monotonic()
            if delay > 0:
                await asyncio.sleep(delay)
            self.lags.append(max(0.0, time.monotonic() - due))
            self._seq += 1
            self.sent_at[client_order_id] = due
            writer.write(frame(self.sender, "D", self._seq, body))
        try:
            await asyncio.wait_for(done.wait(), ANSWER_TIMEOUT)
        except TimeoutError:
            self.errors += len(self.sent_at)
        receiver.cancel()
        writer.close()


async def _next(reader: asyncio.StreamReader, buffer: bytes) -> tuple[bytes, dict[int, str]]:
    while True:
        match = _TRAILER.search(buffer)
        if match is not None:
            return buffer[match.end() :], fields_of(buffer[: match.end()])
        chunk = await reader.read(65536)
        if not chunk:
            raise ConnectionError("the gateway closed the FIX connection")
        buffer += chunk


async def _run(port: int, loads: list[FixLoad]) -> None:
    """Log every session on, then run the schedule from a moment shortly after."""
    await asyncio.gather(*(load.log_on(port) for load in loads))
    start = time.monotonic() + 0.5
    await asyncio.gather(*(load.run(start) for load in loads))


def f1(work: Path, home: Path, *, rate: int, seconds: float, serve_command: list[str]) -> Row:
    """``rate`` NewOrderSingles a second for ``seconds`` over :data:`SESSIONS` sessions against the gateway
    of ``home`` (``serve_command`` without ``--fix-port``)."""
    profiles = orjson.loads((home / "Jsons" / "user_profile.json").read_bytes())
    drawer = OrderDrawer.universe(profiles, seed=12)
    count = int(rate * seconds)
    shares: list[list[tuple[str, list[tuple[int, str]]]]] = [[] for _ in range(SESSIONS)]
    dues: list[list[float]] = [[] for _ in range(SESSIONS)]
    for i in range(count):
        order = drawer.draw()
        k = i % SESSIONS
        client_order_id = f"f1-{i}"
        body = [(11, client_order_id), (55, order.instrument), (54, _SIDE[order.side]), (1, order.strategy),
                (38, "1"), (40, "1"), (60, "20261203-10:00:00")]  # fmt: skip
        shares[k].append((client_order_id, body))
        dues[k].append(i / rate)
    fix_port = free_port()
    with Server([*serve_command, "--fix-port", str(fix_port)], ready_path="/readyz", log=home / "server.log"):
        loads = [FixLoad(f"BENCH{k}", shares[k], dues[k]) for k in range(SESSIONS)]
        asyncio.run(_run(fix_port, loads))
    checked = verify(home)
    latencies = [v for load in loads for v in load.latencies]
    lags = [v for load in loads for v in load.lags]
    errors = sum(load.errors for load in loads)
    p99 = percentile(latencies, 99) * 1000
    met = errors == 0 and checked == "ok" and p99 <= 50
    result = f"FAILED verify: {checked}" if checked != "ok" else ("met" if met else "missed")
    return Row(
        "F1",
        f"FIX NewOrderSingle at {rate:,}/s open loop over {SESSIONS} sessions, durability full",
        f"{len(latencies) / seconds:,.0f} orders/s",
        f"{percentile(latencies, 50) * 1000:.1f} ms",
        f"{p99:.1f} ms",
        str(errors),
        f"p99.9 {percentile(latencies, 99.9) * 1000:.1f} ms",
        "p99 <= 50 ms, 0 errors",
        result,
        [f"latency from each order's due time to its ExecutionReport; the client sent p99 "
         f"{percentile(lags, 99) * 1000:.1f} ms late"],
    )  # fmt: skip
