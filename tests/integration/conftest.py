"""An in-process gateway over a real store, driven through its HTTP interface (ASGI, or granian).

The store is a real SQLite file, and for the rules and HTTP suites (:data:`STORE_SUITES`) also a
fresh database on a real PostgreSQL server: those tests run once per store, unchanged, through the
``store_url`` fixture that ``client`` and ``open_gateway`` use. The other modules reach into SQLite
files on purpose (capping their size, editing rows) and run on SQLite only.

The ``client`` fixture serves each test three ways: the ASGI application through the fast path,
through the documented FastAPI routes, and under granian (``serve --server granian``'s RSGI door,
embedded in the test's event loop on a real socket), so the HTTP suites prove every door alike.
"""

from __future__ import annotations

import asyncio
import socket
from collections.abc import AsyncIterator, Callable, Iterator
from contextlib import AbstractAsyncContextManager, asynccontextmanager
from pathlib import Path
from typing import Any

import httpx
import pytest

from ordergate.api.app import create_app
from ordergate.bootstrap import prepare_gateway
from ordergate.config import Settings
from ordergate.server.granian_runner import granian_server
from ordergate.server.limits import ServerLimits
from ordergate.server.rsgi import RsgiGateway
from ordergate.service.clock import Clock, utc_now
from ordergate.service.gateway import Gateway
from tests.postgres import fresh_database

Client = httpx.AsyncClient
OpenGateway = Callable[..., AbstractAsyncContextManager[tuple[httpx.AsyncClient, Gateway]]]


READY_TRIES = 200
READY_POLL = 0.025


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@asynccontextmanager
async def running_gateway(
    home: Path, *, server: str | None = None, clock: Clock = utc_now, **settings: object
) -> AsyncIterator[tuple[httpx.AsyncClient, Gateway]]:
    """A started gateway and a client of it: in process over ASGI, or with ``server="granian"`` over
    a socket served by granian's embedded server in this event loop (as ``serve --server granian``),
    its requests naming the same host as the ASGI client's (``gateway``). ``clock`` stamps its orders."""
    if server == "granian":
        settings.setdefault("port", _free_port())
    config = Settings(home=home, **settings)  # type: ignore[arg-type]
    gateway = prepare_gateway(config, clock=clock)
    app = create_app(config, gateway)
    async with app.router.lifespan_context(app):
        if server == "granian":
            async with _on_granian(app, config) as client:
                yield client, gateway
            return
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://gateway") as client:
            yield client, gateway


@asynccontextmanager
async def _on_granian(app: Any, config: Settings) -> AsyncIterator[httpx.AsyncClient]:
    limits = ServerLimits.from_settings(config)
    rsgi = RsgiGateway(app, app.state, config, limits, access=False)
    server = granian_server(rsgi, config, limits)
    serving = asyncio.create_task(server.serve())
    url = f"http://{config.host}:{config.port}"
    try:
        async with httpx.AsyncClient(base_url=url, timeout=10, headers={"host": "gateway"}) as client:
            for _ in range(READY_TRIES):
                assert not serving.done(), "granian stopped before it served"
                try:
                    if (await client.get("/healthz")).status_code == 200:
                        break
                except httpx.TransportError:
                    pass
                await asyncio.sleep(READY_POLL)
            else:
                raise AssertionError(f"granian did not answer on {url}")
            yield client
    finally:
        server.stop()
        await asyncio.wait_for(serving, 10)


STORE_SUITES = frozenset({"test_http_orders", "test_http_batch", "test_http_malformed"})
"""The rules and HTTP suites: every test in them runs against SQLite and against PostgreSQL."""

PG_DOORS: dict[str, tuple[str, ...]] = {"test_http_malformed": ("fast-path",)}
"""Suites whose PostgreSQL runs go through fewer doors: malformed input is refused before the store is
reached, the same code for every door (proved on SQLite), so on PostgreSQL one door proves what is left,
that a refusal stores nothing."""


def pytest_generate_tests(metafunc: pytest.Metafunc) -> None:
    if "store_url" not in metafunc.fixturenames:
        return
    module = metafunc.module.__name__.rpartition(".")[2]
    stores = ["sqlite", "postgresql"] if module in STORE_SUITES else ["sqlite"]
    if "door" not in metafunc.fixturenames:
        metafunc.parametrize("store_url", stores, indirect=True)
        return
    # every door on SQLite; PostgreSQL through the ASGI doors (the server stack does not touch the store),
    # or through the fast path alone for input refused before any store is reached
    pg_doors = PG_DOORS.get(module, ("fast-path", "fastapi-routes"))
    pairs = [(store, door) for store in stores for door in DOORS if store == "sqlite" or door in pg_doors]
    metafunc.parametrize(("store_url", "door"), pairs, ids=[f"{door}-{store}" for store, door in pairs], indirect=True)


@pytest.fixture
def store_url(request: pytest.FixtureRequest) -> Iterator[str | None]:
    """``None`` for the default SQLite store under the home, or the URL of a fresh PostgreSQL database."""
    if request.param == "sqlite":
        yield None
        return
    with fresh_database() as url:
        yield url


@pytest.fixture
def open_gateway(store_url: str | None) -> OpenGateway:
    """``running_gateway`` on the test's store (every gateway a test opens shares it, as on restart)."""

    def open_on_store(home: Path, **settings: object) -> AbstractAsyncContextManager[tuple[httpx.AsyncClient, Gateway]]:
        if store_url is not None:
            settings.setdefault("db", store_url)
        return running_gateway(home, **settings)

    return open_on_store


DOORS: dict[str, dict[str, object]] = {
    "fast-path": {"fast_path": True},
    "fastapi-routes": {"fast_path": False},
    "granian": {"server": "granian"},
}
"""The ways ``client`` serves a test: ASGI with and without the fast path, and granian's RSGI door."""


@pytest.fixture
def door(request: pytest.FixtureRequest) -> str:
    """Which of :data:`DOORS` the test's ``client`` goes through."""
    name: str = request.param
    return name


@pytest.fixture
async def client(seed_home: Path, open_gateway: OpenGateway, door: str) -> AsyncIterator[httpx.AsyncClient]:
    """A client of a gateway on the seed profiles, through each of :data:`DOORS` (granian on SQLite
    only): every test using it proves the fast path, the documented FastAPI routes and the granian
    server answer alike."""
    async with open_gateway(seed_home, **DOORS[door]) as (http, _):
        yield http
