"""The raw ASGI fast path for order entry, in front of FastAPI's whole stack, as plain ASGI middleware.

Order entry is the hot path: a trivial FastAPI endpoint manages about a quarter of what the server
stack can carry, so ``POST`` to the order URLs is served by :class:`OrderEntry` straight from ASGI
messages, calling the same :mod:`ordergate.api.ordering` functions as the documented FastAPI routes
(alert webhooks, ``POST /v1/hooks/<token>``, too, through :class:`~ordergate.api.webhooks.HookDoor`).
Everything else (other methods and paths, the docs) passes through to FastAPI, whose answers
:class:`FinishedResponses` completes with the security headers. :func:`~ordergate.api.app.create_app`
composes these layers with the origin check and the guard.
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable

from fastapi import FastAPI
from fastapi.routing import APIRoute
from starlette.datastructures import State
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from ordergate.api import ordering
from ordergate.api.access import PRINCIPAL, SECURITY_HEADERS
from ordergate.api.body import read_body
from ordergate.api.http import ClientError
from ordergate.api.webhooks import token_of
from ordergate.errors import StoreUnavailable
from ordergate.security.hooks import HOOKS_PATH
from ordergate.security.keys import Principal
from ordergate.service.gateway import Gateway
from ordergate.service.sequencing import Sequencing

log = logging.getLogger(__name__)

NOSNIFF = (b"x-content-type-options", b"nosniff")

Handler = Callable[[Sequencing, bytes, str | None, Principal | None], Awaitable[ordering.Reply]]


async def _check(sequencer: Sequencing, body: bytes, _key: str | None, principal: Principal | None) -> ordering.Reply:
    return ordering.check_order(sequencer, body, principal)


async def _batch(sequencer: Sequencing, body: bytes, _key: str | None, principal: Principal | None) -> ordering.Reply:
    return await ordering.place_batch(sequencer, body, principal)


# path -> (handler, replies in the legacy shape, uses the batch body limit)
ROUTES: dict[str, tuple[Handler, bool, bool]] = {
    "/create_order": (ordering.place_legacy, True, False),
    "/v1/orders": (ordering.place_order, False, False),
    "/v1/orders/batch": (_batch, False, True),
    "/v1/orders/check": (_check, False, False),
}


POST_ONLY = frozenset({"/v1/orders/batch", "/v1/orders/check"})
"""Order-entry paths that the order-id route ``/v1/orders/{order_id}`` would otherwise match."""


async def _method_not_allowed(send: Send) -> None:
    body = b'{"detail":"Method Not Allowed"}'
    headers = [
        (b"content-type", b"application/json"),
        (b"content-length", str(len(body)).encode()),
        (b"allow", b"POST"),
    ]
    await send({"type": "http.response.start", "status": 405, "headers": [*headers, *SECURITY_HEADERS]})
    await send({"type": "http.response.body", "body": body})


class OrderEntry:
    """ASGI middleware: ``POST`` on :data:`ROUTES` served here, everything else passed to ``app``.

    In front of FastAPI's whole stack (its middleware, routing, dependency injection and
    serialisation); ``state`` is the FastAPI application's, where the lifespan leaves the running
    gateway. With ``enabled`` false order entry goes to the documented FastAPI routes instead (the
    HTTP suite runs through both doors). A non-``POST`` request to an order-entry path that the
    order-id route would otherwise take is answered 405 here either way.
    """

    def __init__(self, app: ASGIApp, *, state: State, enabled: bool = True) -> None:
        self.app = app
        self.state = state
        self.enabled = enabled

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http":
            if scope["method"] == "POST":
                route = ROUTES.get(scope["path"]) if self.enabled else None
                if route is not None:
                    await serve(self.state.gateway, route, scope, receive, send)
                    return
                token = token_of(scope["path"]) if self.enabled else None
                if token is not None:
                    await serve_alert(self.state, token, scope, receive, send)
                    return
            elif scope["path"] in POST_ONLY:
                await _method_not_allowed(send)  # not an order id: GET /v1/orders/{order_id} must not take it
                return
        await self.app(scope, receive, send)


class FinishedResponses:
    """ASGI middleware around FastAPI: the security headers on every answer, and a complete ``Allow``.

    (Starlette's 405 names only the methods of the first route matching the path, while a path
    such as ``/v1/orders`` has a GET route and a POST route.)
    """

    def __init__(self, app: FastAPI) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        path = scope["path"]

        async def sending(message: Message) -> None:
            if message["type"] == "http.response.start":
                headers = [*message.get("headers", ()), *SECURITY_HEADERS]
                if message["status"] == 405:
                    allowed = ", ".join(sorted(self._methods_of(path))).encode()
                    headers = [(k, allowed if k.lower() == b"allow" else v) for k, v in headers]
                message["headers"] = headers
            await send(message)

        await self.app(scope, receive, sending)

    def _methods_of(self, path: str) -> set[str]:
        methods: set[str] = set()
        for route in self.app.router.routes:
            if isinstance(route, APIRoute) and route.methods and route.path_regex.match(path):
                methods |= route.methods
        return methods


async def serve_alert(state: State, token: str, scope: Scope, receive: Receive, send: Send) -> None:
    """``POST /v1/hooks/<token>`` as :mod:`ordergate.api.routes.hooks` serves it, straight from ASGI."""
    client = scope.get("client")
    found = state.hooks.admit(token, str(client[0]) if client else "unknown")
    if isinstance(found, ordering.Reply):
        await _send(found, send)
        return
    gateway: Gateway = state.gateway
    try:
        body = await read_body(receive, scope["headers"], gateway.settings.max_body_bytes)
        sequencer = gateway.sequencer
        if sequencer is None:
            raise StoreUnavailable("the gateway is still starting")
        reply = await ordering.place_alert(sequencer, found, body)
    except (ClientError, StoreUnavailable) as exc:
        reply = ordering.error_reply(exc)
    except Exception:
        log.exception("unexpected error on POST %s", HOOKS_PATH)  # never the path: it holds the token
        reply = ordering.reply({"detail": "internal error; the server log has the details"}, 500)
    await _send(reply, send)


async def _send(reply: ordering.Reply, send: Send) -> None:
    headers = [(k.encode(), v.encode()) for k, v in reply.headers]
    headers.append((b"content-length", str(len(reply.body)).encode()))
    headers.append(NOSNIFF)
    await send({"type": "http.response.start", "status": reply.status, "headers": headers})
    await send({"type": "http.response.body", "body": reply.body})


async def serve(
    gateway: Gateway, route: tuple[Handler, bool, bool], scope: Scope, receive: Receive, send: Send
) -> None:
    handler, legacy, batch = route
    limit = gateway.settings.max_batch_body_bytes if batch else gateway.settings.max_body_bytes
    request_headers = scope["headers"]
    try:
        body = await read_body(receive, request_headers, limit)
        sequencer = gateway.sequencer
        if sequencer is None:
            raise StoreUnavailable("the gateway is still starting")
        key = ordering.header(request_headers, b"idempotency-key")
        reply = await handler(sequencer, body, key, scope.get(PRINCIPAL))
    except (ClientError, StoreUnavailable) as exc:
        reply = ordering.error_reply(exc, legacy=legacy)
    except Exception:
        log.exception("unexpected error on POST %s", scope["path"])
        reply = ordering.reply({"detail": "internal error; the server log has the details"}, 500)
    await _send(reply, send)
