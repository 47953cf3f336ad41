"""An in-process gateway over a real store, driven through its HTTP interface (ASGI).

The store is a real SQLite file, and for the rules and HTTP suites (:data:`STORE_SUITES`) also a
fresh database on a real PostgreSQL server: those tests run once per store, unchanged, through the
``store_url`` fixture that ``client`` and ``open_gateway`` use. The other modules reach into SQLite
files on purpose (capping their size, editing rows) and run on SQLite only.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable, Iterator
from contextlib import AbstractAsyncContextManager, asynccontextmanager
from pathlib import Path

import httpx
import pytest

from ordergate.api.app import create_app
from ordergate.bootstrap import prepare_gateway
from ordergate.config import Settings
from ordergate.service.gateway import Gateway
from tests.postgres import fresh_database

Client = httpx.AsyncClient
OpenGateway = Callable[..., AbstractAsyncContextManager[tuple[httpx.AsyncClient, Gateway]]]


@asynccontextmanager
async def running_gateway(home: Path, **settings: object) -> AsyncIterator[tuple[httpx.AsyncClient, Gateway]]:
    config = Settings(home=home, **settings)  # type: ignore[arg-type]
    gateway = prepare_gateway(config)
    app = create_app(config, gateway)
    async with app.router.lifespan_context(app):
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://gateway") as client:
            yield client, gateway


STORE_SUITES = frozenset({"test_http_orders", "test_http_batch", "test_http_malformed"})
"""The rules and HTTP suites: every test in them runs against SQLite and against PostgreSQL."""


def pytest_generate_tests(metafunc: pytest.Metafunc) -> None:
    if "store_url" in metafunc.fixturenames:
        module = metafunc.module.__name__.rpartition(".")[2]
        stores = ["sqlite", "postgresql"] if module in STORE_SUITES else ["sqlite"]
        metafunc.parametrize("store_url", stores, indirect=True)


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


@pytest.fixture(params=[True, False], ids=["fast-path", "fastapi-routes"])
async def client(
    seed_home: Path, open_gateway: OpenGateway, request: pytest.FixtureRequest
) -> AsyncIterator[httpx.AsyncClient]:
    """A client of a gateway on the seed profiles, once through the fast path and once through the
    documented FastAPI routes: every test using it proves both doors give the same answers."""
    async with open_gateway(seed_home, fast_path=request.param) as (http, _):
        yield http
