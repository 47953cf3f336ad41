"""``create_app(settings)``: the FastAPI application of one gateway process.

The app does nothing at import or construction time beyond wiring routes; the store is opened and
the committed state restored in the lifespan, and closed after in-flight orders are committed.
Pass an already :meth:`prepared <ordergate.service.gateway.Gateway.prepare>` gateway to have
start-up problems reported before the server starts (the CLI and the ``Scripts/`` shim do).
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

from fastapi import FastAPI
from fastapi.openapi.utils import get_openapi
from pydantic.json_schema import models_json_schema

import ordergate
from ordergate.api.errors import install_error_handlers
from ordergate.api.fastpath import GatewayApp
from ordergate.api.operator import install_operator_routes
from ordergate.api.routes import health, orders, queries
from ordergate.api.schemas import BatchIn, LegacyOrderIn, OrderIn
from ordergate.config import Settings
from ordergate.service.gateway import Gateway
from ordergate.service.runtime import settle_after_recovery

BODY_MODELS = (LegacyOrderIn, OrderIn, BatchIn)
"""Request bodies validated by the routes themselves, added to the OpenAPI components."""


def create_app(settings: Settings, gateway: Gateway | None = None) -> GatewayApp:
    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        running = gateway if gateway is not None else Gateway.prepare(settings)
        app.state.gateway = running
        await running.start()
        settle_after_recovery()
        try:
            yield
        finally:
            await running.stop()

    app = GatewayApp(
        title="ordergate",
        version=ordergate.__version__,
        summary="The order gateway: decides, applies and durably records strategy orders.",
        lifespan=lifespan,
        docs_url=None,  # served offline by install_operator_routes
        redoc_url=None,
    )
    install_error_handlers(app)
    app.fast_path = settings.fast_path
    app.include_router(orders.router)
    app.include_router(queries.router)
    app.include_router(health.router)
    install_operator_routes(app)

    def openapi() -> dict[str, Any]:
        if app.openapi_schema is None:
            schema = get_openapi(title=app.title, version=app.version, summary=app.summary, routes=app.routes)
            _, defs = models_json_schema(
                [(model, "validation") for model in BODY_MODELS],
                ref_template="#/components/schemas/{model}",
            )
            schema.setdefault("components", {}).setdefault("schemas", {}).update(defs.get("$defs", {}))
            app.openapi_schema = schema
        return app.openapi_schema

    app.openapi = openapi  # type: ignore[method-assign]
    return app
