"""``GET /v1/users`` and ``GET /v1/strategies``: paged by name, built off the event loop, a bound viewer's own only."""

from __future__ import annotations

import asyncio
import random
import time
from collections.abc import Awaitable
from pathlib import Path
from typing import Any, TypeVar

import httpx
import pytest

from tests.conftest import write_home
from tests.integration.conftest import running_gateway
from tests.integration.test_http_auth import Keys, bearer

pytestmark = pytest.mark.anyio

T = TypeVar("T")


@pytest.fixture(scope="module")
def module_keys(tmp_path_factory: pytest.TempPathFactory) -> Keys:
    return Keys(tmp_path_factory.mktemp("keys") / "api_keys.json")


def many_users(count: int, seed: int = 7) -> dict[str, dict[str, list[str]]]:
    """``count`` users in shuffled order, with spaces, ``&`` and non-ASCII in their names."""
    rng = random.Random(seed)
    strategies = {f"STRATEGY_{n:02d}": sorted(rng.sample(["ACC", "INFY", "L&T", "MINDA", "TCS"], 2)) for n in range(30)}
    names = [f"{rng.choice(['Ann', 'Bø', 'Cid & Co', 'dee', 'Émile'])} {n}" for n in range(count)]
    rng.shuffle(names)
    return {name: {s: strategies[s] for s in rng.sample(sorted(strategies), 3)} for name in names}


async def every_page(client: httpx.AsyncClient, path: str, limit: int, **headers: str) -> list[dict[str, Any]]:
    items: list[dict[str, Any]] = []
    params: dict[str, str | int] = {"limit": limit}
    for _ in range(10_000):
        answer = await client.get(path, params=params, headers=headers)
        assert answer.status_code == 200, answer.text
        page = answer.json()
        assert len(page["items"]) <= limit
        items.extend(page["items"])
        if page["next"] is None:
            return items
        assert page["next"] == page["items"][-1]["user" if path == "/v1/users" else "strategy"]
        params["after"] = page["next"]
    raise AssertionError("the pages never ended")


async def test_paging_through_2500_users_gives_each_once_in_name_order(tmp_path: Path) -> None:
    profiles = many_users(2500)
    async with running_gateway(write_home(tmp_path / "home", profiles)) as (client, _):
        for limit in (1000, 7):
            users = await every_page(client, "/v1/users", limit)
            assert [u["user"] for u in users] == sorted(profiles)
            assert all(u["strategies"] == {s: sorted(i) for s, i in profiles[u["user"]].items()} for u in users)
        first = (await client.get("/v1/users")).json()
        assert len(first["items"]) == 100  # the default limit, as for the other listings
        assert first["next"] == sorted(profiles)[99]
        strategies = await every_page(client, "/v1/strategies", 7)
        assert [s["strategy"] for s in strategies] == [f"STRATEGY_{n:02d}" for n in range(30)]
        subscribers = {s["strategy"]: s["subscribers"] for s in strategies}
        assert sum(len(users) for users in subscribers.values()) == 3 * 2500
        assert set(subscribers["STRATEGY_05"]) == {u for u, p in profiles.items() if "STRATEGY_05" in p}


async def test_a_cursor_is_a_name_and_the_page_continues_after_it(seed_home: Path) -> None:
    async with running_gateway(seed_home) as (client, _):
        page = (await client.get("/v1/users", params={"limit": 1})).json()
        assert ([u["user"] for u in page["items"]], page["next"]) == (["Holland Proctor"], "Holland Proctor")
        page = (await client.get("/v1/users", params={"after": "Holland Proctor"})).json()
        assert ([u["user"] for u in page["items"]], page["next"]) == (["Oaklee Wagner"], None)
        page = (await client.get("/v1/users", params={"after": "I"})).json()  # any name: the names after it
        assert [u["user"] for u in page["items"]] == ["Oaklee Wagner"]
        assert (await client.get("/v1/strategies", params={"after": "STRATEGY_Z"})).json() == {
            "items": [],
            "next": None,
        }


@pytest.mark.parametrize("path", ["/v1/users", "/v1/strategies"])
@pytest.mark.parametrize(
    ("params", "problem"),
    [
        ({"limit": 0}, "limit"),
        ({"limit": 1001}, "limit"),
        ({"after": ""}, "after"),
        ({"after": "x" * 65}, "after"),
    ],
)
async def test_limits_and_cursors_out_of_range_are_a_422_naming_the_parameter(
    seed_home: Path, path: str, params: dict[str, Any], problem: str
) -> None:
    async with running_gateway(seed_home) as (client, _):
        answer = await client.get(path, params=params)
        assert answer.status_code == 422
        assert problem in answer.text


async def test_a_viewer_bound_to_one_user_pages_through_its_own_profile_only(tmp_path: Path, module_keys: Keys) -> None:
    profiles = many_users(300)
    profiles["Holland Proctor"] = {"STRATEGY_03": ["ACC"], "STRATEGY_01": ["INFY", "ACC"], "STRATEGY_07": ["TCS"]}
    async with running_gateway(write_home(tmp_path / "home", profiles), auth=module_keys.file) as (client, _):
        holland = bearer(module_keys.holland)
        assert await every_page(client, "/v1/users", 1, **holland) == [
            {"user": "Holland Proctor", "strategies": {s: sorted(i) for s, i in profiles["Holland Proctor"].items()}}
        ]
        assert (await client.get("/v1/users", params={"after": "Holland Proctor"}, headers=holland)).json() == {
            "items": [],
            "next": None,
        }
        strategies = await every_page(client, "/v1/strategies", 2, **holland)
        assert strategies == [
            {"strategy": "STRATEGY_01", "subscribers": ["Holland Proctor"], "instruments": ["ACC", "INFY"]},
            {"strategy": "STRATEGY_03", "subscribers": ["Holland Proctor"], "instruments": ["ACC"]},
            {"strategy": "STRATEGY_07", "subscribers": ["Holland Proctor"], "instruments": ["TCS"]},
        ]
        everyone = await every_page(client, "/v1/users", 1000, **bearer(module_keys.viewer))
        assert len(everyone) == 301


async def test_after_a_profile_reload_the_pages_show_the_new_profiles(seed_home: Path) -> None:
    async with running_gateway(seed_home) as (client, _):
        assert [u["user"] for u in (await client.get("/v1/users")).json()["items"]] == [
            "Holland Proctor",
            "Oaklee Wagner",
        ]
        write_home(seed_home, {"Zed": {"S9": ["ACC"]}, "Amy": {"S1": ["TCS"]}})
        assert (await client.post("/v1/admin/reload-profiles")).status_code == 200
        assert [u["user"] for u in (await client.get("/v1/users")).json()["items"]] == ["Amy", "Zed"]
        assert [s["strategy"] for s in (await client.get("/v1/strategies")).json()["items"]] == ["S1", "S9"]


async def loop_work_while(request: Awaitable[T]) -> tuple[T, float]:
    """``request``'s result, and the most CPU time the event loop's thread spent between two turns of a
    task that yields at every turn: the longest the loop was held by work of its own (CPU time, so a busy
    machine does not stretch it; waiting for the GIL or for a worker thread is not the loop's work)."""
    done = False
    longest = 0.0

    async def monitor() -> None:
        nonlocal longest
        last = time.thread_time()
        while not done:
            await asyncio.sleep(0)
            now = time.thread_time()
            longest = max(longest, now - last)
            last = now

    watching = asyncio.create_task(monitor())
    await asyncio.sleep(0)
    try:
        result = await request
    finally:
        done = True
        await watching
    return result, longest


async def test_a_page_of_a_100000_user_registry_holds_the_event_loop_only_briefly(tmp_path: Path) -> None:
    profiles = many_users(100_000)
    async with running_gateway(write_home(tmp_path / "home", profiles)) as (client, _):
        assert (await client.get("/healthz")).status_code == 200  # a first request's one-off costs are not measured
        for path, params in (
            ("/v1/users", {"limit": 1000}),  # the first request sorts the names
            ("/v1/users", {"limit": 1000, "after": sorted(profiles)[50_000]}),
            ("/v1/strategies", {"limit": 1000}),  # 30 strategies of 10,000 subscribers each
        ):
            answer, held = await loop_work_while(client.get(path, params=params))
            # the whole answer built on the loop (before paging) held it for 200 ms of CPU here
            assert held < 0.05, f"{path} held the event loop for {held * 1000:.0f} ms of CPU"
            assert answer.status_code == 200
        assert len(answer.json()["items"]) == 30
