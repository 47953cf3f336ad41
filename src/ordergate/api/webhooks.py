"""The door of alert webhooks, as both ways of serving ``POST /v1/hooks/<token>`` use it.

The secret path is the credential, with auth on or off (the guard lets ``/v1/hooks/*`` through without
a key). A token that is no active hook of the home's hooks file, revoked or never made alike, is
answered exactly as a path that does not exist (404 ``{"detail":"Not Found"}``), and costs its client
address one of :data:`MISS_BURST` misses, refilled one every ``1 / MISS_RATE`` seconds: past them every
hook request from that address is 429 until one refills, so 256-bit tokens cannot even be tried at
speed, and a valid token cannot be told apart while an address is held back. A known hook's body is
then read as an alert and placed through :func:`ordergate.api.ordering.place_alert`, the path of
``POST /v1/orders``. The FastAPI route (:mod:`ordergate.api.routes.hooks`) documents the endpoint
and serves it with the fast path off; the fast path (:mod:`ordergate.api.fastpath`) serves it straight
from ASGI otherwise, as it serves order entry.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

from ordergate.api.ordering import Reply
from ordergate.security.hooks import HOOKS_PATH, Hook, HookRing
from ordergate.security.ratelimit import RateLimiter

MISS_BURST = 10
"""Unknown tokens a client address may present before its hook requests are refused (429)."""
MISS_RATE = 0.2
"""Misses given back per second (one every 5 s)."""
NOT_FOUND = Reply(404, b'{"detail":"Not Found"}')
"""The answer to an unknown or revoked token: the very body of a path that does not exist."""


def token_of(path: str) -> str | None:
    """The token of a hook path (``/v1/hooks/<token>``: one non-empty segment), or ``None``."""
    if not path.startswith(HOOKS_PATH):
        return None
    token = path[len(HOOKS_PATH) :]
    return token if token and "/" not in token else None


@dataclass(slots=True)
class HookDoor:
    """The hooks of a running gateway (in memory, reloaded on change) and the misses of each address."""

    ring: HookRing
    misses: RateLimiter = field(default_factory=lambda: RateLimiter(MISS_RATE, MISS_BURST))

    def admit(self, token: str, address: str) -> Hook | Reply:
        """The active hook of ``token``, or the reply for a request that gets none (429 or 404)."""
        wait = self.misses.wait(address)
        if wait > 0.0:
            return Reply(
                429,
                b'{"detail":"too many requests for unknown hooks from this address; retry later"}',
                (("content-type", "application/json"), ("retry-after", str(max(1, math.ceil(wait))))),
            )
        hook = self.ring.find(token)
        if hook is None:
            self.misses.take(address)
            return NOT_FOUND
        return hook
