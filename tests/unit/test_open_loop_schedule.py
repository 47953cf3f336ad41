"""The open-loop client of the benchmarks counts latency from each request's due time, so a server that
stalls cannot hide the stall by slowing the client down; its schedule, answer parsing, merging and
percentiles are exact."""

from __future__ import annotations

import asyncio
import itertools
import time

import pytest
from benchmarks import loads
from benchmarks.harness import merge_open_loop, percentile
from benchmarks.loads import answer_length, due_time, latency_of, run, share


def test_requests_are_due_evenly_from_the_start() -> None:
    assert [due_time(10.0, 4.0, n) for n in range(5)] == [10.0, 10.25, 10.5, 10.75, 11.0]


@pytest.mark.parametrize("workers", [1, 2, 3, 7])
def test_workers_split_one_schedule_without_gaps_or_overlaps(workers: int) -> None:
    shares = [list(share(100, workers, k)) for k in range(workers)]
    assert sorted(n for mine in shares for n in mine) == list(range(100))
    for mine in shares:  # each worker's own requests are evenly spaced too
        assert {b - a for a, b in itertools.pairwise(mine)} <= {workers}


def test_a_late_send_counts_from_the_due_time_and_an_early_one_from_the_send() -> None:
    assert latency_of(due=1.0, sent=1.004, answered=1.005) == pytest.approx(0.005)  # the client's lag counts
    assert latency_of(due=1.0, sent=0.9996, answered=1.0002) == pytest.approx(0.0006)  # never below zero


def test_an_answer_is_complete_only_with_its_whole_body() -> None:
    answer = b"HTTP/1.1 201 Created\r\ncontent-length: 5\r\nx: y\r\n\r\nhello"
    assert answer_length(answer[:20]) is None
    assert answer_length(answer[:-1]) is None
    assert answer_length(answer) == (201, len(answer))
    assert answer_length(answer + b"HTTP/1.1 200 OK") == (201, len(answer))  # the next answer stays buffered
    assert answer_length(b"HTTP/1.1 503 Service Unavailable\r\n\r\n") == (503, 36)


def test_percentile_is_the_nearest_rank_and_p99_9_of_a_thousand_is_not_the_maximum() -> None:
    values = [float(n) for n in range(1, 1001)]
    assert percentile(values, 50) == 500
    assert percentile(values, 99) == 990
    assert percentile(values, 99.9) == 999
    assert percentile(values, 100) == 1000
    assert percentile([3.0, 1.0, 2.0], 0) == 1
    assert percentile([], 99) == 0


def test_merged_workers_take_percentiles_over_every_latency_and_count_every_failure() -> None:
    fast = {"sent": 3, "latencies_us": [1000, 1000, 1000], "lags_us": [0, 0, 0], "statuses": {"201": 3}}
    slow = {"sent": 2, "latencies_us": [9000, 50000], "lags_us": [0, 7000], "statuses": {"0": 1, "503": 1}}
    merged = merge_open_loop(
        [{**fast, "connections": 8, "cpu_s": 0.5}, {**slow, "connections": 10, "cpu_s": 0.25}], rate=5, seconds=1
    )
    assert merged.sent == 5
    assert merged.p50_ms == pytest.approx(1.0)  # the third of five latencies, not a mean of two medians
    assert merged.p99_ms == merged.max_ms == pytest.approx(50.0)
    assert merged.errors == 2  # the transport failure and the 503
    assert merged.connections == 18
    assert merged.lag_p99_ms == pytest.approx(7.0)
    assert merged.cpu_share == pytest.approx(0.75)


async def _stalled_server(stall_until: float) -> asyncio.Server:
    """A server answering 201 to every request, but to none before ``stall_until``."""

    async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            while True:
                head = await reader.readuntil(b"\r\n\r\n")
                length = int(head.lower().split(b"content-length:")[1].split(b"\r\n")[0])
                await reader.readexactly(length)
                await asyncio.sleep(max(0.0, stall_until - time.monotonic()))
                writer.write(b"HTTP/1.1 201 Created\r\ncontent-length: 2\r\n\r\n{}")
                await writer.drain()
        except (asyncio.IncompleteReadError, ConnectionError):
            pass
        finally:
            writer.close()
            await writer.wait_closed()

    return await asyncio.start_server(handle, "127.0.0.1", 0)


async def _load(server: asyncio.Server, start: float) -> dict[str, object]:
    """100 orders a second for half a second from ``start``, from one worker."""
    url = f"http://127.0.0.1:{server.sockets[0].getsockname()[1]}"
    async with server:
        result = await run(url, "/create_order", [b"{}"], rate=100, seconds=0.5, start=start, workers=1, worker=0)
        await asyncio.sleep(0.1)  # the handlers see the client's connections close, and close theirs
    return result


@pytest.mark.anyio
async def test_a_stalled_server_shows_in_the_latency_of_every_order_due_during_the_stall() -> None:
    """A server that answers nothing for 200 ms: the orders due meanwhile wait from their due time, and
    the client opens more connections rather than sending fewer orders."""
    start = time.monotonic() + 0.1  # the stall covers the first 200 ms of the schedule
    result = await _load(await _stalled_server(start + 0.2), start)
    latencies = result["latencies_us"]
    assert isinstance(latencies, list)
    assert result["sent"] == 50
    assert result["statuses"] == {"201": 50}
    assert max(latencies) >= 180_000  # the first order waited for the whole stall, counted from its due time
    assert sum(1 for v in latencies if v >= 50_000) >= 10  # every order due in the first 150 ms waited 50 ms+
    connections = result["connections"]
    assert isinstance(connections, int)
    assert connections >= 20  # 20 orders fell due during the stall, each on a connection of its own
    assert result["waited"] == 0


@pytest.mark.anyio
async def test_past_the_connection_cap_orders_wait_in_the_client_with_their_wait_counted(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(loads, "MAX_CONNECTIONS", 4)
    start = time.monotonic() + 0.1
    result = await _load(await _stalled_server(start + 0.2), start)
    latencies = result["latencies_us"]
    assert isinstance(latencies, list)
    assert result["statuses"] == {"201": 50}
    assert result["connections"] == 4
    waited = result["waited"]
    assert isinstance(waited, int)
    assert waited >= 16  # 20 orders fell due during the stall, 4 of them on connections
    assert max(latencies) >= 180_000
    assert sum(1 for v in latencies if v >= 50_000) >= 10
