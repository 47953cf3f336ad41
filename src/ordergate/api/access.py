"""Who may do what: API keys (``--auth``), roles and rate limits, as plain ASGI middleware at the door.

:class:`Guard` wraps the application (the order-entry fast path and FastAPI) as Starlette's
middleware do, ``Guard(app, keys=..., limiter=...)``, so no route can be reached around it and it can
be read and tested alone around any ASGI app. It classifies the request, finds its key, and answers
at once:

- open to everyone: ``/healthz``, ``/readyz``, the dashboard page and its static files, ``/docs``
  and ``/openapi.json`` (they hold no data; the dashboard asks for a key and sends it with its calls);
- alert webhooks, ``/v1/hooks/<token>``, need no key with auth on or off: the secret path is the
  credential, checked behind the guard (:class:`~ordergate.api.webhooks.HookDoor`), and the order is
  sent as a producer of the hook's strategy; the rate limit applies to them per client address;
- 401 without a valid key (``Authorization: Bearer KEY`` or ``X-API-Key: KEY``; on ``/v1/events``
  also ``?api_key=KEY``, because a browser's EventSource cannot send headers);
- 403 when the key's role does not cover the request: order entry needs ``producer`` or ``admin``,
  reads need ``viewer`` or ``admin``, controls, risk changes and reloads need ``admin``;
- 429 with ``Retry-After`` when the caller (the key, or the client address with auth off) exceeds
  its rate limit.

What a key may see or send *within* an allowed route (a producer's strategies, a viewer bound to one
user) is checked by the routes, from the :class:`~ordergate.security.keys.Principal` this guard puts
in the ASGI scope (:func:`principal_of`). With auth off and no rate limit there is no guard at all.
The origin check (:mod:`ordergate.api.origins`), which holds with auth on and off, sits outside it.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from enum import Enum
from typing import Any
from urllib.parse import parse_qsl

import orjson
from starlette.requests import HTTPConnection
from starlette.types import ASGIApp, Receive, Scope, Send

from ordergate.security.hooks import HOOKS_PATH
from ordergate.security.keys import KeyRing, Principal, Role
from ordergate.security.ratelimit import RateLimiter

PRINCIPAL = "ordergate.principal"
"""The ASGI scope key under which the guard leaves the request's principal."""
ADMITTED = "ordergate.admitted"
"""The ASGI scope key of a ``() -> bool`` that says whether the request's key is still admitted
(with auth on): a long request, such as an event stream, asks it again and ends once its key is revoked."""

EVENTS_PATH = "/v1/events"
ORDER_PATHS = frozenset({"/create_order", "/v1/orders", "/v1/orders/batch", "/v1/orders/check"})
OPEN_PATHS = frozenset({"/healthz", "/readyz", "/", "/docs", "/docs/oauth2-redirect", "/openapi.json"})
OPEN_PREFIXES = ("/ui/", "/docs-assets/")

SECURITY_HEADERS: tuple[tuple[bytes, bytes], ...] = (
    (b"x-content-type-options", b"nosniff"),
    (b"referrer-policy", b"no-referrer"),
    (b"x-frame-options", b"DENY"),
)
"""Sent with every response FastAPI serves (the dashboard, its files, the docs, the reads)."""


class Access(Enum):
    OPEN = "open"
    HOOK = "hook"
    """An alert webhook: its token is the credential (no key), rate limited by client address."""
    ORDER = "order"
    READ = "read"
    ADMIN = "admin"
    OTHER = "other"
    """Any valid key; FastAPI then answers (404, 405)."""


def classify(method: str, path: str) -> Access:
    if path in OPEN_PATHS or path.startswith(OPEN_PREFIXES):
        return Access.OPEN
    if path.startswith(HOOKS_PATH):
        return Access.HOOK
    if method == "POST" and path in ORDER_PATHS:
        return Access.ORDER
    if (
        (method == "PUT" and path == "/v1/controls")
        or (method == "POST" and path == "/v1/controls/flatten")
        or path.startswith("/v1/admin/")
        or (method in ("PUT", "DELETE", "POST") and path.startswith("/v1/risk/"))
    ):
        return Access.ADMIN
    if method in ("GET", "HEAD"):
        return Access.READ
    return Access.OTHER


_ALLOWED: dict[Access, frozenset[Role]] = {
    Access.ORDER: frozenset({Role.PRODUCER, Role.ADMIN}),
    Access.READ: frozenset({Role.VIEWER, Role.ADMIN}),
    Access.ADMIN: frozenset({Role.ADMIN}),
    Access.OTHER: frozenset(Role),
}
_WHAT = {
    Access.ORDER: "send orders",
    Access.READ: "read",
    Access.ADMIN: "change controls, flatten, change risk limits or sessions, or reload profiles",
}


class Denial(Exception):
    """A request the middleware refuses: status, message and extra headers; sent as ``{"detail": message}``."""

    def __init__(self, status: int, message: str, headers: tuple[tuple[bytes, bytes], ...] = ()) -> None:
        super().__init__(message)
        self.status = status
        self.message = message
        self.headers = headers

    def response_parts(self) -> tuple[int, list[tuple[bytes, bytes]], bytes]:
        body = orjson.dumps({"detail": self.message})
        headers = [
            (b"content-type", b"application/json"),
            (b"content-length", str(len(body)).encode()),
            *SECURITY_HEADERS,
            *self.headers,
        ]
        return self.status, headers, body

    async def send_to(self, send: Send) -> None:
        status, headers, body = self.response_parts()
        await send({"type": "http.response.start", "status": status, "headers": headers})
        await send({"type": "http.response.body", "body": body})


def presented_key(headers: Sequence[tuple[bytes, bytes]], scope: Any) -> str | None:
    """The key a request carries: ``Authorization: Bearer``, ``X-API-Key``, or on the event stream ``api_key``."""
    for name, value in headers:
        if name == b"authorization":
            scheme, _, token = value.decode("latin-1").partition(" ")
            if scheme.lower() == "bearer" and token.strip():
                return token.strip()
        elif name == b"x-api-key" and value.strip():
            return value.decode("latin-1").strip()
    if scope["path"] == EVENTS_PATH and scope.get("query_string"):
        query: bytes = scope["query_string"]
        for field, text in parse_qsl(query.decode("latin-1")):
            if field == "api_key" and text:
                return text
    return None


class Guard:
    """ASGI middleware: authentication, authorisation by role, and rate limiting of the wrapped app."""

    def __init__(self, app: ASGIApp, *, keys: KeyRing | None = None, limiter: RateLimiter | None = None) -> None:
        self.app = app
        self.keys = keys
        self.limiter = limiter

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http":
            try:
                self.admit(scope)
            except Denial as denial:
                await denial.send_to(send)
                return
        await self.app(scope, receive, send)

    def admit(self, scope: Scope) -> None:
        """Let the request through (leaving its principal in ``scope``) or raise :class:`Denial`."""
        access = classify(scope["method"], scope["path"])
        if access is Access.OPEN:
            return
        principal: Principal | None = None
        if self.keys is not None and access is not Access.HOOK:
            key = presented_key(scope["headers"], scope)
            if key is None:
                raise Denial(
                    401,
                    "an API key is required: send 'Authorization: Bearer KEY' or 'X-API-Key: KEY'",
                    ((b"www-authenticate", b"Bearer"),),
                )
            principal = self.keys.authenticate(key)
            if principal is None:
                raise Denial(401, "the API key is not valid (unknown or revoked)", ((b"www-authenticate", b"Bearer"),))
            if principal.role not in _ALLOWED[access]:
                raise Denial(
                    403,
                    f"this key ({principal.name}, role {principal.role.value}) may not {_WHAT[access]}",
                )
            scope[PRINCIPAL] = principal
            scope[ADMITTED] = _still_admitted(self.keys, key)
        if self.limiter is not None:
            caller = principal.key_id if principal is not None else _client_address(scope)
            wait = self.limiter.take(caller)
            if wait > 0.0:
                raise Denial(
                    429,
                    f"rate limit of {self.limiter.rate:g} requests a second exceeded; retry after {wait:.2f}s",
                    ((b"retry-after", str(max(1, math.ceil(wait))).encode()),),
                )


def _still_admitted(keys: KeyRing, key: str) -> Callable[[], bool]:
    return lambda: keys.authenticate(key) is not None


def _client_address(scope: Any) -> str:
    client = scope.get("client")
    return str(client[0]) if client else "unknown"


def principal_of(connection: HTTPConnection) -> Principal | None:
    """The principal the guard admitted this request as (``None`` with auth off)."""
    principal: Principal | None = connection.scope.get(PRINCIPAL)
    return principal


def viewed_user(connection: HTTPConnection) -> str | None:
    """The one user a bound viewer key may see, or ``None`` when the caller may see everyone."""
    principal = principal_of(connection)
    return principal.user if principal is not None and principal.role is Role.VIEWER else None
