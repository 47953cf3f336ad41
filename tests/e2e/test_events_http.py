"""``GET /v1/events`` over a real socket: a client resumes after a server crash with ``Last-Event-ID``."""

from __future__ import annotations

import json
import queue
import threading
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.e2e.conftest import StartGateway

pytestmark = pytest.mark.e2e


class Listener:
    """Reads an event stream on a thread; ``events`` gets ``(id, data)`` of each ``order`` event."""

    def __init__(self, url: str, last_event_id: str | None = None) -> None:
        self.events: queue.Queue[tuple[int, dict[str, Any]]] = queue.Queue()
        self.connected = threading.Event()
        headers = {"Last-Event-ID": last_event_id} if last_event_id else {}
        self._thread = threading.Thread(target=self._read, args=(url, headers), daemon=True)
        self._thread.start()
        assert self.connected.wait(10), "the event stream did not answer"

    def _read(self, url: str, headers: dict[str, str]) -> None:
        fields: dict[str, str] = {}
        try:
            with httpx.stream("GET", f"{url}/v1/events", headers=headers, timeout=httpx.Timeout(5, read=None)) as r:
                assert r.status_code == 200
                self.connected.set()
                for line in r.iter_lines():
                    if line:
                        name, _, value = line.partition(": ")
                        fields[name] = value
                    elif fields.get("event") == "order":
                        self.events.put((int(fields["id"]), json.loads(fields["data"])))
                        fields = {}
                    else:
                        fields = {}
        except httpx.HTTPError:
            return  # the server went away: the stream is over

    def take(self, count: int) -> list[tuple[int, dict[str, Any]]]:
        return [self.events.get(timeout=10) for _ in range(count)]


def post(url: str, strategy: str, instrument: str, side: str) -> int:
    answer = httpx.post(f"{url}/v1/orders", json={"strategy": strategy, "instrument": instrument, "side": side})
    assert answer.status_code == 201
    order_id: int = answer.json()["order_id"]
    return order_id


def test_a_client_resumes_after_a_crash_from_the_last_event_it_saw(home: Path, start_gateway: StartGateway) -> None:
    gateway = start_gateway(home)
    listener = Listener(gateway.url)
    first = post(gateway.url, "STRATEGY_B", "MINDA", "BUY")
    seen = listener.take(1)
    assert [order_id for order_id, _ in seen] == [first]
    assert seen[0][1]["applied"] == [{"user": "Holland Proctor", "action": "OPENED", "position_strategy": "STRATEGY_B"}]

    missed = [post(gateway.url, "STRATEGY_A", "GRASIM", side) for side in ("BUY", "SELL", "SELL")]
    gateway.kill()
    gateway.start()
    resumed = Listener(gateway.url, last_event_id=str(first))
    later = post(gateway.url, "STRATEGY_D", "ACC", "BUY")
    got = resumed.take(4)
    assert [order_id for order_id, _ in got] == [*missed, later]
    assert [data["status"] for _, data in got] == ["ACCEPTED", "ACCEPTED", "REJECTED", "ACCEPTED"]
    assert resumed.events.empty()
