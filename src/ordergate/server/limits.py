"""The bounds a gateway process puts on every HTTP connection, and how the connection cap is derived.

:class:`ServerLimits` is what the bounded protocol (:mod:`ordergate.server.protocol`) and the ASGI
header check (:mod:`ordergate.server.asgi`) enforce; it is built from the
:class:`~ordergate.config.Settings` (``ORDERGATE_*`` variables or ``ordergate serve`` options). The
connection cap defaults to the process's file-descriptor limit minus a reserve, so that a flood of
connections is refused by the gateway (503) before the kernel refuses ``accept`` (EMFILE), which
would stall every client, orders included.
"""

from __future__ import annotations

import resource
from dataclasses import dataclass
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from ordergate.config import Settings

DRAIN_BYTES = 16 * 1024 * 1024
"""After an answer given before the whole request arrived (413, 431, 408), at most this much of the
rest is read and discarded so that clients that send everything before reading (Python's
``urllib`` and ``requests``) can read the answer instead of a connection reset."""
DRAIN_SECONDS = 5.0
"""... and for at most this long."""

FD_RESERVE_MIN = 128
"""Descriptors kept free of client connections: the store's files and connections, the logs, the
listening socket, and a burst of connections accepted in one go before they can be refused."""
CAP_WITHOUT_LIMIT = 65_536
"""The connection cap when the descriptor limit is unlimited."""


def derived_max_connections() -> int:
    """The default connection cap: the soft ``RLIMIT_NOFILE`` minus a quarter of it (at least 128).

    With the common limit of 1,024 descriptors that is 768 connections.
    """
    soft, _hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft == resource.RLIM_INFINITY:
        return CAP_WITHOUT_LIMIT
    return max(16, soft - max(FD_RESERVE_MIN, soft // 4))


KEEP_ALIVE_SECONDS = 5
"""An idle keep-alive connection is closed after this many seconds of silence (uvicorn's default)."""


@dataclass(frozen=True, slots=True)
class ServerLimits:
    """Per-connection bounds; the defaults are the settings' defaults."""

    max_header_bytes: int = 16 * 1024
    """Request line and header fields of one request, in bytes, in all."""
    max_headers: int = 100
    """Header fields of one request (trailers included)."""
    header_timeout: float = 10.0
    """Seconds a client has, from connecting or from its previous response, to send a request's headers."""
    body_timeout: float = 10.0
    """Seconds a client has, from the end of the headers, to send the whole body."""
    max_connections: int | None = None
    """Open connections before new ones are refused (503); ``None``: :func:`derived_max_connections`."""

    @classmethod
    def from_settings(cls, settings: Settings) -> ServerLimits:
        return cls(
            max_header_bytes=settings.max_header_bytes,
            max_headers=settings.max_headers,
            header_timeout=settings.header_timeout,
            body_timeout=settings.body_timeout,
            max_connections=settings.max_connections,
        )

    @property
    def connection_cap(self) -> int:
        return self.max_connections if self.max_connections is not None else derived_max_connections()
