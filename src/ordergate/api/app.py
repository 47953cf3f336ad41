"""``create_app(settings)``: the ASGI application of one gateway process.

It is the FastAPI app (the documented routes) inside plain-ASGI layers composed here, outermost
first: header limits, the origin check, the guard, the order-entry fast path, finished responses
(:class:`GatewayApplication`). The app does nothing at import or construction time beyond wiring
routes; the store is opened and the committed state restored in the lifespan, and closed after
in-flight orders are committed.
Pass an already :func:`prepared <ordergate.bootstrap.prepare_gateway>` gateway to have
start-up problems reported before the server starts (the CLI and the ``Scripts/`` shim do).
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

from fastapi import FastAPI
from fastapi.openapi.utils import get_openapi
from pydantic.json_schema import models_json_schema
from starlette.types import ASGIApp, Receive, Scope, Send

import ordergate
from ordergate.api.access import Access, Guard, classify
from ordergate.api.errors import install_error_handlers
from ordergate.api.fastpath import FinishedResponses, OrderEntry
from ordergate.api.operator import install_operator_routes
from ordergate.api.origins import OriginCheck
from ordergate.api.routes import controls, health, hooks, orders, queries, risk
from ordergate.api.schemas import (
    BatchIn,
    ControlIn,
    FlattenEverythingIn,
    FlattenOneIn,
    GlobalLimitsIn,
    LegacyOrderIn,
    OrderIn,
    StrategyLimitsIn,
    UserLimitsIn,
)
from ordergate.api.webhooks import HookDoor
from ordergate.bootstrap import prepare_gateway
from ordergate.config import Settings
from ordergate.security.hooks import HookRing, default_hooks_file
from ordergate.security.keys import KeyRing
from ordergate.security.ratelimit import RateLimiter
from ordergate.server.accesslog import install_access_log_redaction
from ordergate.server.asgi import HeaderLimits
from ordergate.service.gateway import Gateway
from ordergate.service.operations import Operations
from ordergate.service.runtime import settle_after_recovery

BODY_MODELS = (
    LegacyOrderIn,
    OrderIn,
    BatchIn,
    ControlIn,
    GlobalLimitsIn,
    StrategyLimitsIn,
    UserLimitsIn,
    FlattenEverythingIn,
    FlattenOneIn,
)
"""Request bodies validated by the routes themselves, added to the OpenAPI components."""


def access_middleware(app: ASGIApp, settings: Settings) -> ASGIApp:
    """``app`` behind the middleware every HTTP request meets first: the origin check, then the guard.

    The guard (keys, roles, rate limits) is left out when the settings ask for neither keys nor a
    limit; the origin check is always there. Raises :class:`~ordergate.errors.StartupError` for a bad
    key file.
    """
    keys = KeyRing.load(settings.auth) if settings.auth is not None else None
    limiter = RateLimiter(settings.rate_limit, settings.rate_burst) if settings.rate_limit is not None else None
    if keys is not None or limiter is not None:
        app = Guard(app, keys=keys, limiter=limiter)
    return OriginCheck(app, allowed_origins=settings.allowed_origins)


GUARD_RESPONSES: dict[str, str] = {
    "401": "No valid API key: send `Authorization: Bearer KEY` or `X-API-Key: KEY` (auth on).",
    "403": "The key's role or limits do not cover this request.",
    "429": "Rate limit exceeded; see Retry-After.",
}
SECURITY_SCHEMES = {
    "bearer": {"type": "http", "scheme": "bearer", "description": "An API key from `ordergate keys create`."},
    "apiKey": {"type": "apiKey", "in": "header", "name": "X-API-Key"},
}


def _document_access(schema: dict[str, Any]) -> None:
    """Add the guard's answers and the key schemes to every guarded operation of the OpenAPI document."""
    problem = {"application/json": {"schema": {"$ref": "#/components/schemas/Problem"}}}
    schema.setdefault("components", {}).setdefault("securitySchemes", {}).update(SECURITY_SCHEMES)
    for path, operations in schema.get("paths", {}).items():
        for method, operation in operations.items():
            if classify(method.upper(), path.split("{", 1)[0]) in (Access.OPEN, Access.HOOK):
                continue  # a hook's secret path is its credential (documented by its route)
            operation["security"] = [{"bearer": []}, {"apiKey": []}]
            responses = operation.setdefault("responses", {})
            for status, description in GUARD_RESPONSES.items():
                responses.setdefault(status, {"description": description, "content": problem})


def create_app(settings: Settings, gateway: Gateway | None = None) -> GatewayApplication:
    """The application; raises :class:`StartupError` if the key file (``settings.auth``) or the hooks file
    of the home is unusable.

    Its outermost layer refuses headers over the limits (431) whichever server runs it (see
    :class:`GatewayApplication` for every layer).
    """

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        running = gateway if gateway is not None else prepare_gateway(settings)
        app.state.gateway = running
        await running.start()
        operations = app.state.operations = Operations(running, clock=running.clock)
        await operations.start()
        operations.install_sighup()
        settle_after_recovery()
        try:
            yield
        finally:
            operations.uninstall_sighup()
            await operations.stop()
            await running.stop()

    app = FastAPI(
        title="ordergate",
        version=ordergate.__version__,
        summary="The order gateway: decides, applies and durably records strategy orders.",
        lifespan=lifespan,
        docs_url=None,  # served offline by install_operator_routes
        redoc_url=None,
    )
    install_error_handlers(app)
    app.include_router(orders.router)
    app.include_router(queries.router)
    app.include_router(health.router)
    app.include_router(controls.router)
    app.include_router(risk.router)
    app.include_router(hooks.router)
    app.state.hooks = HookDoor(HookRing(default_hooks_file(settings.home)))
    install_operator_routes(app)

    def openapi() -> dict[str, Any]:
        if app.openapi_schema is None:
            schema = get_openapi(title=app.title, version=app.version, summary=app.summary, routes=app.routes)
            _, defs = models_json_schema(
                [(model, "validation") for model in BODY_MODELS],
                ref_template="#/components/schemas/{model}",
            )
            components = schema.setdefault("components", {}).setdefault("schemas", {})
            components.update(defs.get("$defs", {}))
            components[hooks.ALERT_SCHEMA_NAME] = hooks.alert_schema()
            _document_access(schema)
            app.openapi_schema = schema
        return app.openapi_schema

    app.openapi = openapi  # type: ignore[method-assign]
    install_access_log_redaction()
    layers: ASGIApp = OrderEntry(FinishedResponses(app), state=app.state, enabled=settings.fast_path)
    layers = access_middleware(layers, settings)
    layers = HeaderLimits(layers, max_header_bytes=settings.max_header_bytes, max_headers=settings.max_headers)
    return GatewayApplication(app, layers)


class GatewayApplication:
    """The ASGI application of one gateway: the FastAPI app inside its plain-ASGI layers.

    A request meets, outermost first: :class:`~ordergate.server.asgi.HeaderLimits` (431), the origin
    check (403 for a foreign web page), the guard when keys or a rate limit are on (401, 403, 429),
    :class:`~ordergate.api.fastpath.OrderEntry` (order entry straight from ASGI), then FastAPI behind
    :class:`~ordergate.api.fastpath.FinishedResponses`. Each layer is a plain ASGI callable that can
    be read and tested alone. Attributes (``state``, ``router``, ``openapi``) are the FastAPI app's.
    Under ``serve --server granian``, :class:`~ordergate.server.rsgi.RsgiGateway` serves order entry
    itself (with the same checks) when no guard is on, and hands every other request to this app.
    """

    def __init__(self, api: FastAPI, layers: ASGIApp) -> None:
        self.api = api
        self._layers = layers

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        await self._layers(scope, receive, send)

    def __getattr__(self, name: str) -> Any:
        return getattr(self.api, name)
