"""The origin check: no web page of another site may change anything through this gateway (SPEC section 4).

Browsers let any page send a "simple" cross-site request (a form, or ``fetch`` with a ``text/plain``
body) without asking the server first, and the gateway runs without keys by default: a page the
operator merely visits could place or close positions. Browsers say where such a request comes from
in ``Origin`` (and in ``Sec-Fetch-Site``), so :class:`OriginCheck` refuses, with a 403 saying which
origin was refused and how to allow it, every state-changing request (any method but GET, HEAD and
OPTIONS) that

- carries an ``Origin`` other than the gateway's own (the request's scheme and ``Host`` header, so
  the dashboard served by the gateway keeps working) and not configured in ``allowed_origins``
  (``--allow-origin``, ``ORDERGATE_ALLOWED_ORIGINS``); ``null`` and malformed origins are refused; or
- carries no ``Origin`` but ``Sec-Fetch-Site: cross-site``.

Clients that are not browsers (curl, the kit's producer, httpx, the FIX bridge) send no ``Origin``
and are unaffected. The check sits outside the guard, so it holds with auth on and off, and a
refused request costs no key lookup and no rate-limit token. It is plain ASGI (no web framework).
"""

from __future__ import annotations

from collections.abc import Iterable

from starlette.types import ASGIApp, Receive, Scope, Send

from ordergate.api.access import Denial
from ordergate.security.origins import Origin, checked_origin, parse_origin, request_origin

SAFE_METHODS = frozenset({"GET", "HEAD", "OPTIONS"})
_SHOWN_ORIGIN_CHARS = 200


class OriginCheck:
    """ASGI middleware refusing state-changing requests from other origins than the gateway's own."""

    def __init__(self, app: ASGIApp, *, allowed_origins: Iterable[str] = ()) -> None:
        self.app = app
        self.allowed: frozenset[Origin] = frozenset(
            origin for text in allowed_origins if (origin := parse_origin(checked_origin(text))) is not None
        )

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http" and scope["method"] not in SAFE_METHODS:
            denial = self.refusal(scope)
            if denial is not None:
                await denial.send_to(send)
                return
        await self.app(scope, receive, send)

    def refusal(self, scope: Scope) -> Denial | None:
        """The 403 for this request, or ``None`` when it may go on."""
        origins: list[str] = []
        host: str | None = None
        cross_site = False
        for name, value in scope["headers"]:
            if name == b"origin":
                origins.append(value.decode("latin-1"))
            elif name == b"host":
                host = value.decode("latin-1")
            elif name == b"sec-fetch-site":
                cross_site = value.strip().lower() == b"cross-site"
        if not origins:
            if cross_site:
                return Denial(
                    403,
                    "cross-site request refused: a browser sent it from another site (Sec-Fetch-Site: cross-site) "
                    "without an Origin header; only pages of this gateway, or origins allowed with --allow-origin "
                    "URL (ORDERGATE_ALLOWED_ORIGINS), may change anything here",
                )
            return None
        own = request_origin(scope.get("scheme", "http"), host)
        for text in origins:
            origin = parse_origin(text)
            if origin is None or (origin != own and origin not in self.allowed):
                return _foreign(text, own)
        return None


def _foreign(text: str, own: Origin | None) -> Denial:
    shown = text if len(text) <= _SHOWN_ORIGIN_CHARS else f"{text[:_SHOWN_ORIGIN_CHARS]}..."
    gateway = f"this gateway's origin ({own})" if own is not None else "this gateway's origin (no Host header)"
    hint = (
        f"start the gateway with --allow-origin {shown} (or add it to ORDERGATE_ALLOWED_ORIGINS)"
        if parse_origin(text) is not None
        else "only http(s)://HOST[:PORT] origins can be allowed, with --allow-origin or ORDERGATE_ALLOWED_ORIGINS"
    )
    return Denial(
        403,
        f"cross-origin request refused: Origin {shown} is not {gateway}, so a web page of another site may not "
        f"change anything here; to allow that origin, {hint}",
    )
