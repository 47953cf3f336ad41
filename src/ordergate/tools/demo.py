"""``ordergate demo``: a gateway with live traffic in one command, to see what ordergate does.

It prepares the home (``init``), writes random profiles only if there are none, starts the gateway
in this process, sends orders in ``universe`` mode for a short while (so most of them mean
something), prints the producer's summary and the dashboard's address, and keeps serving until
Ctrl-C. The listening socket is bound before anything starts, so a busy port is one clear line.
"""

from __future__ import annotations

import asyncio
import contextlib
import socket
from dataclasses import dataclass

import uvicorn
from rich.console import Console

from ordergate.api.app import create_app
from ordergate.bootstrap import prepare_gateway
from ordergate.config import Settings
from ordergate.errors import StartupError
from ordergate.home import init_home
from ordergate.server import KEEP_ALIVE_SECONDS, ServerLimits, bounded_protocol
from ordergate.tools.catalogue import load_catalogue
from ordergate.tools.generate import generate_profiles, write_profiles
from ordergate.tools.produce import ProducerConfig, ProducerSummary, render_summary, run_producer

START_TIMEOUT = 30.0


@dataclass(frozen=True, slots=True)
class DemoConfig:
    users: int = 5
    count: int = 200
    rate: float = 40.0
    seed: int | None = None


def prepare_home(settings: Settings, config: DemoConfig, console: Console) -> None:
    """Create what the home lacks: folders, catalogue, and profiles (never overwritten)."""
    for path in init_home(settings.home):
        console.print(f"created {path}", highlight=False)
    if not settings.profile_path.exists():
        profiles = generate_profiles(load_catalogue(settings.catalogue_path), config.users, config.seed)
        write_profiles(profiles, settings.profile_path)
        console.print(f"wrote {len(profiles)} random users to {settings.profile_path}", highlight=False)
    else:
        console.print(f"using the profiles in {settings.profile_path}", highlight=False)


def listen(host: str, port: int) -> socket.socket:
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    try:
        sock.bind((host, port))
    except OSError as exc:
        sock.close()
        raise StartupError(f"cannot listen on {host}:{port}: {exc.strerror}; pass another --port") from None
    sock.listen(2048)
    sock.set_inheritable(True)
    return sock


def base_url(host: str, port: int) -> str:
    shown = "127.0.0.1" if host in ("0.0.0.0", "") else f"[{host}]" if ":" in host else host
    return f"http://{shown}:{port}"


async def run_demo(settings: Settings, config: DemoConfig, console: Console, err_console: Console) -> ProducerSummary:
    """Serve and produce; returns the producer's summary once the server stopped (Ctrl-C)."""
    prepare_home(settings, config, console)
    gateway = prepare_gateway(settings)
    try:
        sock = listen(settings.host, settings.port)
    except StartupError:
        await gateway.store.close()
        raise
    url = base_url(settings.host, sock.getsockname()[1])
    server = uvicorn.Server(
        uvicorn.Config(
            create_app(settings, gateway),
            http=bounded_protocol(ServerLimits.from_settings(settings)),  # the same bounds as serve
            timeout_keep_alive=KEEP_ALIVE_SECONDS,
            log_level="warning",
            access_log=False,
            timeout_graceful_shutdown=5,
        )
    )
    serving = asyncio.create_task(server.serve(sockets=[sock]), name="demo-server")
    for _ in range(int(START_TIMEOUT / 0.02)):
        if server.started or serving.done():
            break
        await asyncio.sleep(0.02)
    if not server.started:
        server.should_exit = True
        with contextlib.suppress(BaseException):
            await serving
        raise StartupError("the gateway did not start; the lines above say why")
    console.print(f"gateway listening on {url} (store {gateway.store.location})", highlight=False, soft_wrap=True)
    console.print(
        f"sending {config.count} orders in universe mode at {config.rate:g}/s ...", highlight=False, soft_wrap=True
    )
    producer = ProducerConfig(
        url=url, count=config.count, rate=config.rate, concurrency=4, mode="universe", api="v1", seed=config.seed
    )
    producing = asyncio.create_task(
        run_producer(producer, None, gateway.registry.to_document(), console=err_console), name="demo-producer"
    )
    await asyncio.wait({serving, producing}, return_when=asyncio.FIRST_COMPLETED)
    if not producing.done():  # the server stopped first (Ctrl-C while producing)
        producing.cancel()
    summary = await producing
    console.print(render_summary(summary))
    if not serving.done():
        console.print(f"Dashboard: {url}/", highlight=False, soft_wrap=True)
        console.print(f"API docs:  {url}/docs   Metrics: {url}/metrics", highlight=False, soft_wrap=True)
        console.print("Serving until Ctrl-C.", highlight=False)
    await serving
    return summary
