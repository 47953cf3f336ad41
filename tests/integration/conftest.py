"""An in-process gateway over a real SQLite file, driven through its HTTP interface (ASGI)."""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from contextlib import AbstractAsyncContextManager, asynccontextmanager
from pathlib import Path

import httpx
import pytest

from ordergate.api.app import create_app
from ordergate.config import Settings
from ordergate.service.gateway import Gateway

Client = httpx.AsyncClient
OpenGateway = Callable[..., AbstractAsyncContextManager[tuple[httpx.AsyncClient, Gateway]]]


@asynccontextmanager
async def running_gateway(home: Path, **settings: object) -> AsyncIterator[tuple[httpx.AsyncClient, Gateway]]:
    config = Settings(home=home, **settings)  # type: ignore[arg-type]
    gateway = Gateway.prepare(config)
    app = create_app(config, gateway)
    async with app.router.lifespan_context(app):
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://gateway") as client:
            yield client, gateway


@pytest.fixture
def open_gateway() -> OpenGateway:
    return running_gateway


@pytest.fixture(params=[True, False], ids=["fast-path", "fastapi-routes"])
async def client(seed_home: Path, request: pytest.FixtureRequest) -> AsyncIterator[httpx.AsyncClient]:
    """A client of a gateway on the seed profiles, once through the fast path and once through the
    documented FastAPI routes: every test using it proves both doors give the same answers."""
    async with running_gateway(seed_home, fast_path=request.param) as (http, _):
        yield http
