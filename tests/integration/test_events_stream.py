"""``GET /v1/events``: committed orders only, in order, resumable from the log, and slow clients dropped.

The stream is read through the app's ASGI interface (see :mod:`tests.integration.sse`); orders are
sent over HTTP to the same in-process gateway, on a real SQLite file.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from pathlib import Path

import pytest

from ordergate.errors import StoreUnavailable
from tests.conftest import write_home
from tests.integration.sqlite_writer import refuse_writes
from tests.integration.sse import EventStreamClient, running

pytestmark = pytest.mark.anyio

PROFILES = {f"User {n}": {"S1": ["ACC", "INFY", "TCS"], "S2": ["ACC", "SBIN"]} for n in range(4)}
ORDERS = [
    ("S1", "ACC", "BUY"),
    ("S1", "ACC", "BUY"),
    ("S2", "SBIN", "SELL"),
    ("S2", "ACC", "SELL"),
    ("S9", "ACC", "BUY"),
    ("S1", "TCS", "BUY"),
]


def body(strategy: str, instrument: str, side: str) -> dict[str, str]:
    return {"strategy": strategy, "instrument": instrument, "side": side}


@pytest.fixture
def home(tmp_path: Path) -> Path:
    return write_home(tmp_path / "home", PROFILES)


async def test_each_committed_order_is_one_event_in_order_with_the_answer_as_data(home: Path) -> None:
    async with running(home) as gw, EventStreamClient(gw.app) as stream:
        assert stream.status == 200
        assert stream.headers["content-type"].startswith("text/event-stream")
        answers = await asyncio.gather(*(gw.client.post("/v1/orders", json=body(*o)) for o in ORDERS * 5))
        events = await stream.events(len(answers))
        stored = (await gw.client.get("/v1/orders", params={"limit": 1000})).json()["items"]
    assert [e.event for e in events] == ["order"] * 30
    assert [int(e.id or 0) for e in events] == list(range(1, 31))
    assert [e.json() for e in events] == stored
    by_id = {a.json()["order_id"]: a.json() for a in answers}
    assert all(e.json() == by_id[int(e.id or 0)] for e in events)


async def test_an_order_whose_commit_failed_never_appears_and_its_id_is_reused(home: Path) -> None:
    async with running(home) as gw, EventStreamClient(gw.app) as stream:
        first = await gw.client.post("/v1/orders", json=body("S1", "ACC", "BUY"))
        await refuse_writes(gw.gateway, True)
        failed = await gw.client.post("/v1/orders", json=body("S1", "INFY", "BUY"))
        await refuse_writes(gw.gateway, False)
        retried = await gw.client.post("/v1/orders", json=body("S1", "TCS", "BUY"))
        events = await stream.events(2)
        extra = await stream.nothing_more()
    assert (first.status_code, failed.status_code, retried.status_code) == (201, 503, 201)
    assert [(e.id, e.json()["instrument"]) for e in events] == [("1", "ACC"), ("2", "TCS")]
    assert extra == []


async def test_reconnecting_with_last_event_id_gets_the_missed_orders_from_the_log_then_live_ones(
    home: Path,
) -> None:
    async with running(home) as gw:
        for order in ORDERS:
            await gw.client.post("/v1/orders", json=body(*order))
        async with EventStreamClient(gw.app, headers={"Last-Event-ID": "2"}) as stream:
            missed = await stream.events(4)
            live = await gw.client.post("/v1/orders", json=body("S2", "ACC", "BUY"))
            after = await stream.events(1)
        async with EventStreamClient(gw.app, query="after=5", headers={"Last-Event-ID": "7"}) as stream:
            header_wins = await stream.nothing_more()
        async with EventStreamClient(gw.app, query="after=5") as stream:
            from_query = await stream.events(2)
        stored = (await gw.client.get("/v1/orders")).json()["items"]
    assert [e.json() for e in missed] == stored[2:6]
    assert [e.id for e in after] == [str(live.json()["order_id"])] == ["7"]
    assert header_wins == []
    assert [e.id for e in from_query] == ["6", "7"]


async def test_resuming_across_many_pages_of_the_log_has_no_gap_or_duplicate(home: Path) -> None:
    async with running(home) as gw:
        batch = {"orders": [body(*o) for o in ORDERS] * 150}  # 900 orders
        for _ in range(3):
            assert (await gw.client.post("/v1/orders/batch", json=batch)).status_code == 200
        async with EventStreamClient(gw.app, headers={"Last-Event-ID": "10"}) as stream:
            sending = asyncio.create_task(gw.client.post("/v1/orders/batch", json=batch))  # while it catches up
            events = await stream.events(2700 - 10 + 900, timeout=30)
            await sending
    assert [int(e.id or 0) for e in events] == list(range(11, 3601))


async def test_a_client_that_stops_reading_is_dropped_with_resync_and_never_slows_orders(home: Path) -> None:
    async with running(home, event_buffer=50) as gw, EventStreamClient(gw.app) as slow:
        hub = gw.gateway.events
        assert hub is not None
        async with asyncio.timeout(5):  # the stream caught up from the log and follows the hub
            while hub.clients == 0:
                await asyncio.sleep(0.01)
        slow.pause()
        started = time.monotonic()
        answers = []
        for _ in range(40):  # 240 orders, well past the 50 the client may fall behind
            answers += await asyncio.gather(*(gw.client.post("/v1/orders", json=body(*o)) for o in ORDERS))
        elapsed = time.monotonic() - started
        assert all(a.status_code == 201 for a in answers)
        assert (hub.clients, hub.dropped_total) == (0, 1)
        slow.resume()
        events = await slow.until_end()
        metrics = (await gw.client.get("/metrics")).text
    assert elapsed < 10, f"240 orders took {elapsed:.1f}s with a stuck event client"
    assert events[-1].event == "resync"
    delivered = [int(e.id or 0) for e in events if e.event == "order"]
    assert delivered == list(range(1, len(delivered) + 1))
    assert len(delivered) < 240
    assert events[-1].json() == {"reason": "slow_client", "token": str(delivered[-1] if delivered else 0)}
    assert "ordergate_event_clients_dropped_total 1.0" in metrics


async def test_a_last_event_id_past_the_end_of_the_log_asks_the_client_to_resync(home: Path) -> None:
    async with running(home) as gw:
        await gw.client.post("/v1/orders", json=body("S1", "ACC", "BUY"))
        async with EventStreamClient(gw.app, headers={"Last-Event-ID": "500"}) as stream:
            resync = await stream.events(1)
            await gw.client.post("/v1/orders", json=body("S1", "INFY", "BUY"))
            live = await stream.events(1)
    assert (resync[0].event, resync[0].json()) == ("resync", {"reason": "ahead_of_log", "token": "1"})
    assert [e.id for e in live] == ["2"]


async def test_a_last_event_id_that_is_not_an_order_id_is_a_422(home: Path) -> None:
    async with running(home) as gw:
        answer = await gw.client.get("/v1/events", headers={"Last-Event-ID": "yesterday"})
        negative = await gw.client.get("/v1/events", params={"after": -1})
    assert answer.status_code == 422
    assert "Last-Event-ID" in answer.json()["message"]
    assert negative.status_code == 422


async def test_stopping_the_gateway_ends_open_streams(home: Path) -> None:
    async with running(home) as gw:
        stream = EventStreamClient(gw.app)
        await stream.__aenter__()
        hub = gw.gateway.events
        assert hub is not None
        assert hub.streams == 1
    assert await stream.until_end(timeout=5) == []
    await stream.__aexit__()


async def test_past_the_cap_of_open_streams_a_new_one_is_refused_with_503_and_retry_after(home: Path) -> None:
    async with running(home, max_event_clients=2) as gw:
        open_ones = [EventStreamClient(gw.app) for _ in range(2)]
        for stream in open_ones:
            await stream.__aenter__()
        refused = EventStreamClient(gw.app)
        await refused.__aenter__()
        assert (refused.status, refused.headers.get("retry-after")) == (503, "5")
        assert "too many event streams" in refused.body().decode()
        await refused.__aexit__()
        await open_ones[0].__aexit__()  # one leaves: there is room again
        again = EventStreamClient(gw.app)
        await again.__aenter__()
        assert again.status == 200
        for stream in (again, open_ones[1]):
            await stream.__aexit__()
        hub = gw.gateway.events
        assert hub is not None
        assert (hub.streams, hub.clients) == (0, 0)


async def test_a_client_gone_before_its_stream_started_leaves_nothing_behind(home: Path) -> None:
    async with running(home) as gw:
        hub = gw.gateway.events
        assert hub is not None

        async def gone() -> dict[str, object]:
            return {"type": "http.disconnect"}

        async def refuse(message: dict[str, object]) -> None:
            raise OSError("the client is gone")

        stream = EventStreamClient(gw.app)
        with contextlib.suppress(OSError):
            await gw.app(stream._scope(), gone, refuse)
        assert (hub.streams, hub.clients) == (0, 0)


async def test_a_store_that_cannot_be_read_ends_the_stream_cleanly_for_the_client_to_resume(home: Path) -> None:
    """The store went down, or closed under a stopping gateway, while a stream caught up from it."""
    async with running(home) as gw:
        store = gw.gateway.store

        async def unreadable(*_: object) -> object:
            raise StoreUnavailable("the store is closing")

        store.stream_page = unreadable  # type: ignore[method-assign]
        stream = EventStreamClient(gw.app, query="after=0")
        await stream.__aenter__()
        assert stream.status == 200
        assert await stream.until_end(timeout=5) == []
        await stream.__aexit__()
        hub = gw.gateway.events
        assert hub is not None
        assert (hub.streams, hub.clients) == (0, 0)


async def control_changes_show_live_and_on_resume(home: Path, **settings: object) -> None:
    async with running(home, **settings) as gw, EventStreamClient(gw.app) as live:
        breaker = {"level": "strategy", "target": "S2", "limits": {"breaker": {"max_rejects": 2, "window_seconds": 60}}}
        assert (await gw.client.put("/v1/risk/limits", json=breaker)).status_code == 200
        await gw.client.post("/v1/orders", json=body("S2", "SBIN", "SELL"))  # nothing to sell: rejected
        tripping = (await gw.client.post("/v1/orders", json=body("S2", "ACC", "SELL"))).json()
        await gw.client.post("/v1/orders", json=body("S1", "ACC", "BUY"))
        kill = await gw.client.post("/v1/controls/flatten", json={"level": "global", "then": "HALTED"})
        last = kill.json()["orders"][-1]
        seen = await live.events(6)
        async with EventStreamClient(gw.app, headers={"Last-Event-ID": seen[0].id or ""}) as resumed:
            again = await resumed.events(5)
    assert [e.event for e in seen] == ["order", "order", "control", "order", "order", "control"]
    trip, halt = seen[2].json(), seen[5].json()
    assert (trip["level"], trip["target"], trip["state"], trip["by"], trip["reason"], trip["order_id"]) == (
        "strategy",
        "S2",
        "HALTED",
        "risk",
        "BREAKER",
        tripping["order_id"],
    )
    assert (halt["level"], halt["state"], halt["reason"], halt["order_id"]) == (
        "global",
        "HALTED",
        "FLATTEN",
        last["order_id"],
    )
    assert [(e.event, e.data) for e in again] == [(e.event, e.data) for e in seen[1:]]  # read back from the log


async def test_a_breaker_trip_and_a_kill_switch_are_control_events_live_and_on_resume(home: Path) -> None:
    await control_changes_show_live_and_on_resume(home)


async def test_a_breaker_trip_and_a_kill_switch_are_control_events_on_postgresql(home: Path) -> None:
    from tests.postgres import fresh_database

    with fresh_database() as url:
        await control_changes_show_live_and_on_resume(home, db=url)
