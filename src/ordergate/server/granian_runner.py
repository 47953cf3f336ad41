"""``ordergate serve --server granian``: granian (Rust, hyper) embedded in the gateway's own event loop.

granian's embedded server runs its Rust HTTP workers on threads of this process and calls the RSGI
application (:class:`~ordergate.server.rsgi.RsgiGateway`) on our event loop (uvloop), so the
gateway, its lifespan and its signal handling stay in one process as under uvicorn. The order of a
run, which is uvicorn's:

1. enter the ASGI application's lifespan (the gateway starts, the committed state is restored);
2. serve until SIGTERM or SIGINT;
3. stop accepting connections (granian's ``stop``) and answer the requests in flight (granian
   waits for them; at most ``GRACEFUL_SECONDS`` here), event streams being ended by the gateway's
   exit hook as soon as the signal arrives;
4. leave the lifespan (in-flight orders committed, the store closed) and return: exit code 0.

hyper bounds the headers (``max_buffer_size``: headers that do not fit get a bare 431 from hyper;
below that, :class:`~ordergate.server.rsgi.RsgiGateway` and :class:`~ordergate.server.asgi.HeaderLimits`
answer the exact limits with the JSON 431) and the time to send them (``header_read_timeout``: the
connection is closed); ``backpressure`` bounds the requests served at once. See the README
("Server stacks") for what differs from the bounded uvicorn protocol.
"""

from __future__ import annotations

import asyncio
import logging
import signal
from typing import Any

from ordergate.config import Settings
from ordergate.server.limits import ServerLimits
from ordergate.server.rsgi import RsgiGateway

log = logging.getLogger("ordergate.server")

GRACEFUL_SECONDS = 10.0
"""How long a stop waits for the requests in flight (uvicorn's ``timeout_graceful_shutdown`` under serve)."""
HYPER_MIN_BUFFER = 8192
"""hyper refuses a read buffer below this."""
BUFFER_SLACK = 4096
"""hyper's buffer holds what follows the headers too (the start of the body): room for it above the limit."""


def buffer_size(limits: ServerLimits) -> int:
    """hyper's ``max_buffer_size`` for ``limits``: above the header limit, so that the exact check answers first."""
    return max(HYPER_MIN_BUFFER, limits.max_header_bytes + BUFFER_SLACK)


def granian_server(rsgi: RsgiGateway, settings: Settings, limits: ServerLimits) -> Any:
    """granian's embedded server for ``rsgi`` on the settings' address, HTTP/1.1 with our bounds."""
    from granian.constants import HTTPModes, Interfaces
    from granian.http import HTTP1Settings
    from granian.server.embed import Server

    return Server(
        rsgi,
        address=settings.host,
        port=settings.port,
        interface=Interfaces.RSGI,
        http=HTTPModes.http1,
        websockets=False,
        backlog=2048,
        backpressure=limits.connection_cap,
        http1_settings=HTTP1Settings(
            header_read_timeout=int(limits.header_timeout * 1000),
            keep_alive=True,
            max_buffer_size=buffer_size(limits),
        ),
        log_enabled=False,
        log_access=False,
    )


async def serve_granian(app: Any, settings: Settings, limits: ServerLimits) -> None:
    """Run ``app`` (a :class:`~ordergate.api.app.GatewayApplication`) under granian until SIGTERM/SIGINT."""
    loop = asyncio.get_running_loop()
    stop = asyncio.Event()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    try:
        async with app.router.lifespan_context(app.api):
            rsgi = RsgiGateway(app, app.state, settings, limits, access=settings.access_log)
            server = granian_server(rsgi, settings, limits)
            serving = asyncio.create_task(server.serve())
            stopping = asyncio.create_task(stop.wait())
            log.info("granian serving on http://%s:%d", settings.host, settings.port)
            await asyncio.wait({serving, stopping}, return_when=asyncio.FIRST_COMPLETED)
            stopping.cancel()
            if serving.done():  # granian stopped by itself (it could not listen, or a worker died)
                await serving
                raise RuntimeError("granian stopped serving")
            log.info("shutting down: answering %d request(s) in flight", rsgi.in_flight)
            started = loop.time()
            server.stop()  # stops accepting; granian returns once the open requests are answered
            try:
                await asyncio.wait_for(asyncio.shield(serving), GRACEFUL_SECONDS)
            except TimeoutError:
                log.warning("granian still serving after %.0fs; stopping the gateway anyway", GRACEFUL_SECONDS)
                serving.cancel()
            left = max(0.0, GRACEFUL_SECONDS - (loop.time() - started))
            if not await rsgi.drained(left):
                log.warning("%d request(s) still in flight after %.0fs", rsgi.in_flight, GRACEFUL_SECONDS)
    finally:
        for sig in (signal.SIGTERM, signal.SIGINT):
            loop.remove_signal_handler(sig)


def run(app: Any, settings: Settings, limits: ServerLimits) -> None:
    """:func:`serve_granian` on a uvloop event loop (as uvicorn's)."""
    import uvloop

    uvloop.run(serve_granian(app, settings, limits))
