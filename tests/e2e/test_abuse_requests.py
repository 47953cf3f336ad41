"""Abusive requests against a real gateway process, each with a well-behaved client trading alongside.

A web page of another site posting forms (cross-site request forgery, issue 9 item 19) and look-alike
sides and names (item 26) are refused with a 4xx that says why, store nothing, and cost the
well-behaved client nothing: every one of its orders, sent at the same time, gets its decision. A
revoked key's open event stream ends within a second or two (item 20). Abuse of the connection
itself (headers, slowloris, stalls, bodies: items 16 to 18 and 21) is in ``test_abuse.py``.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path

import httpx
import pytest

from tests.e2e.conftest import StartGateway, assert_verified, fetch_all, run_ordergate

pytestmark = pytest.mark.e2e

EVIL = "https://evil.example"
DESK = "https://desk.example"
WELL_BEHAVED_ORDERS = 60


class WellBehavedClient:
    """Sends BUY and SELL of STRATEGY_B MINDA in turn (no Origin, as the kit's producer) on a thread."""

    def __init__(self, url: str, headers: dict[str, str] | None = None) -> None:
        self.url = url
        self.headers = headers or {}
        self.answers: list[tuple[int, str]] = []
        self.errors: list[str] = []
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        with httpx.Client(base_url=self.url, timeout=10, headers=self.headers) as client:
            for index in range(WELL_BEHAVED_ORDERS):
                side = "BUY" if index % 2 == 0 else "SELL"
                try:
                    if index % 3 == 0:
                        answer = client.post(
                            "/create_order", json={"STRATEGY": "STRATEGY_B", "INSTRUMENT": "MINDA", "POSITION": side}
                        )
                        self.answers.append((answer.status_code, answer.json().get("RESPONSE", "")))
                    else:
                        order = {"strategy": "STRATEGY_B", "instrument": "MINDA", "side": side.lower()}
                        answer = client.post("/v1/orders", json={**order, "client_order_id": f"good-{index}"})
                        self.answers.append((answer.status_code, answer.json().get("status", "")))
                except httpx.HTTPError as exc:
                    self.errors.append(f"{type(exc).__name__}: {exc}")

    @contextmanager
    def alongside(self) -> Iterator[None]:
        self._thread.start()
        try:
            yield
        finally:
            self._thread.join(60)

    def assert_all_decided(self) -> None:
        assert not self._thread.is_alive(), "the well-behaved client did not finish"
        assert self.errors == []
        assert len(self.answers) == WELL_BEHAVED_ORDERS
        statuses = {status for status, _ in self.answers}
        assert statuses <= {200, 201}, self.answers
        assert {decision for _, decision in self.answers} == {"ACCEPTED"}  # BUY and SELL alternate


def stored(url: str) -> list[dict[str, object]]:
    with httpx.Client(base_url=url, timeout=10) as client:
        return fetch_all(client, "/v1/orders")


def repeat(times: int, attack: Callable[[httpx.Client], None], url: str) -> None:
    with httpx.Client(base_url=url, timeout=10) as client:
        for _ in range(times):
            attack(client)


def test_form_posts_from_another_origin_are_refused_and_store_nothing_while_others_trade(
    home: Path, start_gateway: StartGateway
) -> None:
    gateway = start_gateway(home, "--allow-origin", DESK)
    legacy = '{"STRATEGY": "STRATEGY_A", "INSTRUMENT": "GRASIM", "POSITION": "BUY", "x": "="}'  # text/plain form
    v1 = '{"strategy": "STRATEGY_A", "instrument": "GRASIM", "side": "BUY"}'
    refused: list[str] = []

    def forge(client: httpx.Client) -> None:
        for path, body, content_type in (
            ("/create_order", legacy, "text/plain"),
            (
                "/create_order",
                "STRATEGY=STRATEGY_A&INSTRUMENT=GRASIM&POSITION=BUY",
                "application/x-www-form-urlencoded",
            ),
            ("/v1/orders", v1, "text/plain"),
            ("/v1/orders", v1, "application/x-www-form-urlencoded"),
        ):
            answer = client.post(path, content=body, headers={"Content-Type": content_type, "Origin": EVIL})
            assert answer.status_code == 403, (path, answer.text)
            refused.append(answer.json()["detail"])
        no_origin = client.post("/create_order", content=legacy, headers={"Sec-Fetch-Site": "cross-site"})
        assert no_origin.status_code == 403, no_origin.text

    good = WellBehavedClient(gateway.url)
    with good.alongside():
        repeat(25, forge, gateway.url)
    good.assert_all_decided()
    assert len(refused) == 100
    assert all(f"Origin {EVIL} is not this gateway's origin" in d and "--allow-origin" in d for d in refused)
    assert [o for o in stored(gateway.url) if o["strategy"] == "STRATEGY_A"] == []

    with httpx.Client(base_url=gateway.url, timeout=10) as client:
        own = client.post("/v1/orders", content=v1, headers={"Content-Type": "application/json", "Origin": gateway.url})
        assert own.status_code == 201, own.text  # the dashboard's own origin
        desk = client.post(
            "/create_order",
            content=legacy.replace("BUY", "SELL"),
            headers={"Content-Type": "text/plain", "Origin": DESK},
        )
        assert (desk.status_code, desk.json()["RESPONSE"]) == (200, "ACCEPTED")  # configured with --allow-origin
    assert len(stored(gateway.url)) == WELL_BEHAVED_ORDERS + 2
    assert_verified(home)


LOOK_ALIKE_V1 = [
    ({"strategy": "STRATEGY_B", "instrument": "MINDA", "side": "\u017fell"}, "side: Input should be 'BUY' or 'SELL'"),
    ({"strategy": "   ", "instrument": "MINDA", "side": "BUY"}, "strategy: must not start or end with whitespace"),
    ({"strategy": "STRATEGY_B ", "instrument": "MINDA", "side": "BUY"}, "strategy: must not start or end with"),
    ({"strategy": "STRATEGY\u200b_B", "instrument": "MINDA", "side": "BUY"}, "strategy: must not contain U+200B"),
    ({"strategy": "STRATEGY_B", "instrument": "\u202eADNIM", "side": "BUY"}, "instrument: must not contain U+202E"),
    ({"strategy": "STRATEGY_B\u2028order=1 ACCEPTED", "instrument": "MINDA", "side": "BUY"}, "U+2028"),
]


def test_look_alike_sides_and_names_are_refused_422_and_store_nothing_while_others_trade(
    home: Path, start_gateway: StartGateway
) -> None:
    gateway = start_gateway(home)
    answers: list[tuple[str, str]] = []

    def send_look_alikes(client: httpx.Client) -> None:
        for body, message in LOOK_ALIKE_V1:
            v1 = client.post("/v1/orders", json=body)
            assert v1.status_code == 422, v1.text
            answers.append((v1.json()["message"], message))
            legacy_body = {"STRATEGY": body["strategy"], "INSTRUMENT": body["instrument"], "POSITION": body["side"]}
            legacy = client.post("/create_order", json=legacy_body)
            assert legacy.status_code == 422, legacy.text
            assert legacy.json()["REASON"] == "INVALID_ORDER"
            batch = client.post("/v1/orders/batch", json={"orders": [body]})
            assert batch.status_code == 422, batch.text
        for name in ("   ", "MINDA\u200b", "Holland Proctor\u2028"):
            for field in ("user", "strategy", "instrument"):
                listing = client.get("/v1/positions", params={field: name})
                assert listing.status_code == 422, (field, name, listing.text)

    good = WellBehavedClient(gateway.url)
    with good.alongside():
        repeat(10, send_look_alikes, gateway.url)
    good.assert_all_decided()
    assert all(expected in got for got, expected in answers), answers
    orders = stored(gateway.url)
    assert len(orders) == WELL_BEHAVED_ORDERS
    assert {(o["strategy"], o["instrument"]) for o in orders} == {("STRATEGY_B", "MINDA")}
    assert "Traceback" not in gateway.log_text()
    assert_verified(home)


def test_revoking_a_key_ends_the_event_stream_it_had_open_while_others_trade(
    home: Path, start_gateway: StartGateway
) -> None:
    keyfile = home / "data" / "keys.json"

    def create(*args: str) -> str:
        result = run_ordergate("keys", "create", "--file", str(keyfile), *args)
        assert result.returncode == 0, result.stderr
        return result.stdout.strip().splitlines()[-1]

    producer = create("--role", "producer", "--name", "desk")
    screen = create("--role", "viewer", "--name", "screen")
    gateway = start_gateway(home, "--auth", str(keyfile))
    ended: list[float] = []
    events: list[str] = []
    opened = threading.Event()
    revoked_at: list[float] = []

    def watch() -> None:
        with (
            httpx.Client(base_url=gateway.url, timeout=httpx.Timeout(30, read=20)) as client,
            client.stream("GET", "/v1/events", headers={"Authorization": f"Bearer {screen}"}) as response,
        ):
            assert response.status_code == 200
            opened.set()
            for line in response.iter_lines():
                if line.startswith("event: "):
                    events.append(line.removeprefix("event: "))
        ended.append(time.monotonic())

    watcher = threading.Thread(target=watch, daemon=True)
    watcher.start()
    assert opened.wait(10)
    good = WellBehavedClient(gateway.url, {"Authorization": f"Bearer {producer}"})
    with good.alongside():
        time.sleep(0.5)
        result = run_ordergate("keys", "revoke", "screen", "--file", str(keyfile))
        assert result.returncode == 0, result.stderr
        revoked_at.append(time.monotonic())
        watcher.join(15)
    good.assert_all_decided()
    assert ended, "the revoked key's stream was still open 15 s later"
    assert ended[0] - revoked_at[0] < 1.5
    assert events[-1] == "revoked"
    assert "order" in events  # it was delivering orders until then
    with httpx.Client(base_url=gateway.url, timeout=10) as client:
        again = client.get("/v1/events", headers={"Authorization": f"Bearer {screen}"})
    assert again.status_code == 401
