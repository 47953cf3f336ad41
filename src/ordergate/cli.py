"""The ``ordergate`` command line (Typer + Rich): one command per verb of SPEC section 5.

Commands build :class:`~ordergate.config.Settings` from their options (and ``ORDERGATE_*``
variables) and call the package; errors a user can fix end with one line on stderr and exit code 2
(exit 1 is reserved for ``verify`` finding a difference).
"""

from __future__ import annotations

import logging
import sys
from collections.abc import Callable
from enum import StrEnum
from pathlib import Path
from typing import Annotated, Any, NoReturn

import typer
from pydantic import ValidationError
from rich.console import Console
from rich.markup import escape

from ordergate.config import LogFormat, Settings
from ordergate.domain.controls import ControlLevel, ControlState
from ordergate.domain.model import Scope, Side, Status
from ordergate.errors import StartupError, StoredRowError
from ordergate.security.exposure import exposure_warning
from ordergate.security.keys import Role
from ordergate.store.base import Durability
from ordergate.tools.export import ExportFormat, ExportWhat


class ProduceMode(StrEnum):
    UNIFORM = "uniform"
    UNIVERSE = "universe"


class ProduceApi(StrEnum):
    LEGACY = "legacy"
    V1 = "v1"


class ServerStack(StrEnum):
    """The HTTP server under ``ordergate serve`` (README, "Server stacks")."""

    UVICORN = "uvicorn"
    GRANIAN = "granian"


app = typer.Typer(
    name="ordergate",
    help="The order gateway of a multi-user algorithmic trading system.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)
console = Console()
err_console = Console(stderr=True)

HomeOption = Annotated[
    Path | None,
    typer.Option("--home", help="Home folder (Jsons/, Logs/, data/). Default: ORDERGATE_HOME or the current folder."),
]
ApiKeyOption = Annotated[
    str | None,
    typer.Option("--api-key", envvar="ORDERGATE_API_KEY", help="API key, when the gateway runs with --auth."),
]
DbOption = Annotated[
    str | None,
    typer.Option(
        "--db",
        help="Database URL: postgresql://USER@HOST:PORT/DB shares one database between gateway processes; "
        "default: SQLite under <home>/data/. Env: ORDERGATE_DB.",
    ),
]


def fail(message: str, code: int = 2) -> NoReturn:
    err_console.print(f"[bold red]error:[/] {escape(message)}", highlight=False, soft_wrap=True)
    raise typer.Exit(code)


def settings_from(**options: object) -> Settings:
    """Settings from the given options, falling back to ``ORDERGATE_*`` variables and defaults."""
    given = {name: value for name, value in options.items() if value is not None}
    try:
        return Settings(**given)  # type: ignore[arg-type]
    except ValidationError as exc:
        problems = "; ".join(
            f"{'.'.join(str(part) for part in error['loc'])}: {error['msg'].removeprefix('Value error, ')}"
            for error in exc.errors()
        )
        fail(f"invalid setting ({problems}); check the option or its ORDERGATE_* variable")


@app.command()
def init(home: HomeOption = None) -> None:
    """Create a home: Jsons/ with the default catalogue, Logs/ and data/."""
    from ordergate.home import init_home

    settings = settings_from(home=home)
    created = init_home(settings.home)
    for path in created:
        console.print(f"created {path}", highlight=False)
    console.print(f"home ready at {settings.home}", highlight=False)


@app.command()
def generate(
    users: Annotated[int, typer.Option("--users", min=1, help="How many users.")] = 3,
    seed: Annotated[
        int | None, typer.Option("--seed", help="Random seed: the same seed gives the same profiles.")
    ] = None,
    home: HomeOption = None,
) -> None:
    """Write random user profiles to Jsons/user_profile.json, as the original kit does."""
    from ordergate.tools.catalogue import load_catalogue
    from ordergate.tools.generate import generate_profiles, write_profiles

    settings = settings_from(home=home)
    try:
        catalogue = load_catalogue(settings.catalogue_path)
    except StartupError as exc:
        fail(str(exc))
    profiles = generate_profiles(catalogue, users, seed)
    write_profiles(profiles, settings.profile_path)
    strategies = {s for p in profiles.values() for s in p}
    console.print(
        f"wrote {len(profiles)} users subscribed to {len(strategies)} strategies to {settings.profile_path}",
        highlight=False,
    )


@app.command()
def serve(
    host: Annotated[str | None, typer.Option(help="Address to listen on. Env: ORDERGATE_HOST.")] = None,
    port: Annotated[int | None, typer.Option(help="Port. Env: ORDERGATE_PORT.")] = None,
    fix_port: Annotated[
        int | None,
        typer.Option(help="Also accept FIX 4.4 sessions on this port (off by default). Env: ORDERGATE_FIX_PORT."),
    ] = None,
    scope: Annotated[Scope | None, typer.Option(help="Position scope (SPEC section 2).")] = None,
    db: DbOption = None,
    durability: Annotated[
        Durability | None, typer.Option(help="full: fsync every commit; fast: survive kill -9.")
    ] = None,
    log_format: Annotated[LogFormat | None, typer.Option(help="Decision log format in Logs/.")] = None,
    access_log: Annotated[
        bool | None, typer.Option("--access-log/--no-access-log", help="One log line per request.")
    ] = None,
    auth: Annotated[
        Path | None,
        typer.Option(
            "--auth",
            metavar="KEYFILE",
            help="Require API keys from this key file (ordergate keys). Env: ORDERGATE_AUTH.",
        ),
    ] = None,
    rate_limit: Annotated[
        float | None,
        typer.Option(
            help="Requests a second per API key (per client address without --auth). Env: ORDERGATE_RATE_LIMIT."
        ),
    ] = None,
    rate_burst: Annotated[
        int | None, typer.Option(help="Requests at once above the rate (default: one second's worth).")
    ] = None,
    max_header_bytes: Annotated[
        int | None,
        typer.Option(help="Request line and headers of a request, in bytes; more gets 431. Default 16384."),
    ] = None,
    max_headers: Annotated[
        int | None, typer.Option(help="Header fields of a request; more gets 431. Default 100.")
    ] = None,
    header_timeout: Annotated[
        float | None,
        typer.Option(help="Seconds from connecting (or the previous response) to complete headers. Default 10."),
    ] = None,
    body_timeout: Annotated[
        float | None, typer.Option(help="Seconds from the headers to the complete body. Default 10.")
    ] = None,
    max_connections: Annotated[
        int | None,
        typer.Option(help="Open connections before new ones get 503. Default: the descriptor limit minus a quarter."),
    ] = None,
    max_event_clients: Annotated[
        int | None,
        typer.Option(
            help="Event streams open at once; one more gets 503. Default 100. Env: ORDERGATE_MAX_EVENT_CLIENTS."
        ),
    ] = None,
    allow_origin: Annotated[
        list[str] | None,
        typer.Option(
            "--allow-origin",
            metavar="URL",
            help="A web origin (https://HOST[:PORT]) besides the gateway's own whose pages may send orders "
            "and changes; repeatable. Env: ORDERGATE_ALLOWED_ORIGINS (comma-separated).",
        ),
    ] = None,
    server: Annotated[
        ServerStack,
        typer.Option(
            "--server",
            envvar="ORDERGATE_SERVER",
            help="HTTP server stack: uvicorn (bounded httptools protocol) or granian (Rust, RSGI); see the "
            "README, 'Server stacks'. Env: ORDERGATE_SERVER.",
        ),
    ] = ServerStack.UVICORN,
    home: HomeOption = None,
) -> None:
    """Run the gateway (HTTP API on --host:--port)."""
    import uvicorn

    from ordergate.api.app import create_app
    from ordergate.bootstrap import prepare_gateway
    from ordergate.server import KEEP_ALIVE_SECONDS, ServerLimits, bounded_protocol
    from ordergate.service.exit_signals import exit_zero_after_graceful_sigterm

    settings = settings_from(
        host=host,
        port=port,
        fix_port=fix_port,
        scope=scope,
        db=db,
        durability=durability,
        log_format=log_format,
        access_log=access_log,
        auth=auth,
        rate_limit=rate_limit,
        rate_burst=rate_burst,
        max_header_bytes=max_header_bytes,
        max_headers=max_headers,
        header_timeout=header_timeout,
        body_timeout=body_timeout,
        max_connections=max_connections,
        allowed_origins=allow_origin or None,
        max_event_clients=max_event_clients,
        home=home,
    )
    try:
        gateway = prepare_gateway(settings)
        application = create_app(settings, gateway)
    except StartupError as exc:
        fail(str(exc))
    warning = exposure_warning(settings.host, settings.auth)
    if warning is not None:
        err_console.print(f"[bold yellow]warning:[/] {escape(warning)}", highlight=False, soft_wrap=True)
    logging.basicConfig(level=logging.INFO, format="%(levelname)s:     %(name)s: %(message)s")
    err_console.print(
        f"ordergate {settings.scope} scope, {settings.durability} durability, store {gateway.store.location}",
        highlight=False,
    )
    limits = ServerLimits.from_settings(settings)
    if server is ServerStack.GRANIAN:
        from ordergate.server.granian_runner import run as run_granian

        run_granian(application, settings, limits)
        return
    exit_zero_after_graceful_sigterm()
    uvicorn.run(
        application,
        host=settings.host,
        port=settings.port,
        access_log=settings.access_log,
        log_level="info",
        timeout_graceful_shutdown=10,
        http=bounded_protocol(limits),
        timeout_keep_alive=KEEP_ALIVE_SECONDS,
    )


@app.command()
def produce(
    url: Annotated[str, typer.Option(help="Gateway base URL.")] = "http://127.0.0.1:8080",
    count: Annotated[int, typer.Option(min=1, help="How many orders to send.")] = 300,
    interval: Annotated[float, typer.Option(min=0.0, help="Seconds between a worker's sends.")] = 1.0,
    rate: Annotated[
        float | None, typer.Option(min=0.001, help="Orders per second overall (replaces --interval).")
    ] = None,
    concurrency: Annotated[int, typer.Option(min=1, help="Orders in flight at once.")] = 1,
    mode: Annotated[
        ProduceMode,
        typer.Option(help="uniform: any catalogue names; universe: each strategy's own instruments."),
    ] = ProduceMode.UNIFORM,
    api: Annotated[
        ProduceApi, typer.Option(help="legacy: POST /create_order; v1: POST /v1/orders.")
    ] = ProduceApi.LEGACY,
    seed: Annotated[int | None, typer.Option(help="Random seed for the orders drawn.")] = None,
    api_key: ApiKeyOption = None,
    home: HomeOption = None,
) -> None:
    """Send random orders, as the original kit's producer does, and print a summary."""
    from ordergate.profiles import load_registry
    from ordergate.tools.catalogue import load_catalogue
    from ordergate.tools.produce import ProducerConfig, render_summary
    from ordergate.tools.produce import produce as run

    settings = settings_from(home=home)
    try:
        universe = mode is ProduceMode.UNIVERSE
        catalogue = None if universe else load_catalogue(settings.catalogue_path)
        profiles = load_registry(settings.profile_path).to_document() if universe else None
        config = ProducerConfig(
            url=url.rstrip("/"),
            count=count,
            interval=interval,
            rate=rate,
            concurrency=concurrency,
            mode=mode.value,
            api=api.value,
            seed=seed,
            api_key=api_key,
        )
    except (StartupError, ValueError) as exc:
        fail(str(exc))
    summary = run(config, catalogue, profiles, console=err_console)
    console.print(render_summary(summary))
    if summary.errors:
        fail(
            f"{summary.errors} of {summary.sent} orders got no decision (see the table); is the gateway at {url}?",
            1,
        )


@app.command()
def verify(
    home: HomeOption = None,
    db: DbOption = None,
    until: Annotated[
        int | None,
        typer.Option(
            "--until",
            min=1,
            metavar="ORDER_ID",
            help="Check the log up to this order only and print the anchor there: the one printed when it "
            "was the last order (the open positions, which describe the whole log, are not compared).",
        ),
    ] = None,
) -> None:
    """Replay the order log and compare it with the open positions; exit 1 on any difference."""
    from ordergate.bootstrap import open_log_reader
    from ordergate.service.verify import verify_log

    settings = settings_from(home=home, db=db)
    try:
        reader = open_log_reader(settings)
    except StartupError as exc:
        fail(str(exc))
    try:
        report = verify_log(reader, until=until)
    finally:
        reader.close()
    if not report.ok:
        assert report.problem is not None
        err_console.print(f"[bold red]verify failed:[/] {escape(report.problem)}", highlight=False, soft_wrap=True)
        raise typer.Exit(1)
    derived = f"({report.redecided} decisions re-derived from their profiles)"
    if until is None:
        console.print(
            f"ok: {report.orders} orders replay to the {report.open_positions} open positions {derived}",
            highlight=False,
        )
    else:
        console.print(
            f"ok: the {report.orders} orders up to order {until} replay {derived}; the stored open positions "
            "describe the whole log and were not compared",
            highlight=False,
        )
    if report.anchor is not None:
        console.print(
            f"hash chain intact through order {report.last_order_id}; "
            f"anchor (a digest of every chain head): {report.anchor}",
            highlight=False,
            soft_wrap=True,
        )


# -- operator commands: listings, export, demo --------------------------------------------------------

UrlOption = Annotated[
    str,
    typer.Option("--url", envvar="ORDERGATE_URL", help="Base URL of the running gateway. Env: ORDERGATE_URL."),
]
FilterOption = Annotated[str | None, typer.Option(help="Only this name (exact match).")]
AfterOption = Annotated[int, typer.Option(min=0, help="Cursor: the 'next' of the previous page.")]
LimitOption = Annotated[int, typer.Option(min=1, max=1000, help="Items per page (at most 1000).")]
JsonOption = Annotated[bool, typer.Option("--json", help='Print the API\'s page as JSON: {"items", "next"}.')]
DEFAULT_URL = "http://127.0.0.1:8080"


def _list(listing: str, url: str, as_json: bool, api_key: str | None, **filters: object) -> None:
    import orjson

    from ordergate.client import OrdergateError
    from ordergate.tools.gateway import connect, problem
    from ordergate.tools.listing import fetch_page, render

    try:
        with connect(url, api_key) as client:
            page = fetch_page(client, listing, filters)  # type: ignore[arg-type]
    except OrdergateError as exc:
        fail(problem(exc))
    if as_json:
        sys.stdout.write(orjson.dumps(page, option=orjson.OPT_INDENT_2 | orjson.OPT_APPEND_NEWLINE).decode())
    else:
        console.print(render(listing, page))  # type: ignore[arg-type]


@app.command()
def orders(
    strategy: FilterOption = None,
    instrument: FilterOption = None,
    user: Annotated[str | None, typer.Option(help="Only orders applied for this user.")] = None,
    status: Annotated[Status | None, typer.Option(case_sensitive=False, help="ACCEPTED or REJECTED.")] = None,
    side: Annotated[Side | None, typer.Option(case_sensitive=False, help="BUY or SELL.")] = None,
    after: AfterOption = 0,
    limit: LimitOption = 100,
    as_json: JsonOption = False,
    url: UrlOption = DEFAULT_URL,
    api_key: ApiKeyOption = None,
) -> None:
    """The order log of a running gateway (GET /v1/orders), oldest first, with the API's filters."""
    _list(
        "orders",
        url,
        as_json,
        api_key,
        strategy=strategy,
        instrument=instrument,
        user=user,
        status=status.value if status else None,
        side=side.value if side else None,
        after=after,
        limit=limit,
    )


@app.command()
def positions(
    user: FilterOption = None,
    strategy: Annotated[str | None, typer.Option(help="Only positions opened by this strategy.")] = None,
    instrument: FilterOption = None,
    after: AfterOption = 0,
    limit: LimitOption = 100,
    as_json: JsonOption = False,
    url: UrlOption = DEFAULT_URL,
    api_key: ApiKeyOption = None,
) -> None:
    """Open positions of a running gateway (GET /v1/positions), with the API's filters."""
    filters = {"user": user, "strategy": strategy, "instrument": instrument, "after": after, "limit": limit}
    _list("positions", url, as_json, api_key, **filters)


@app.command()
def trades(
    user: FilterOption = None,
    strategy: Annotated[str | None, typer.Option(help="Only round trips opened by this strategy.")] = None,
    instrument: FilterOption = None,
    after: AfterOption = 0,
    limit: LimitOption = 100,
    as_json: JsonOption = False,
    url: UrlOption = DEFAULT_URL,
    api_key: ApiKeyOption = None,
) -> None:
    """Closed round trips of a running gateway (GET /v1/trades), with the API's filters."""
    filters = {"user": user, "strategy": strategy, "instrument": instrument, "after": after, "limit": limit}
    _list("trades", url, as_json, api_key, **filters)


@app.command()
def export(
    what: Annotated[ExportWhat, typer.Option("--what", help="What to export.")] = ExportWhat.ORDERS,
    fmt: Annotated[ExportFormat, typer.Option("--format", help="jsonl, csv or json.")] = ExportFormat.JSONL,
    output: Annotated[
        Path | None, typer.Option("--output", "-o", help="File to write (default: standard output).")
    ] = None,
    home: HomeOption = None,
    db: DbOption = None,
) -> None:
    """Stream the order log, the open positions or the closed trades from the store, whole."""
    from ordergate.bootstrap import open_log_reader
    from ordergate.tools.export import COLUMNS, rows, write

    settings = settings_from(home=home, db=db)
    try:
        snapshot = open_log_reader(settings, audit=False)
    except StartupError as exc:
        fail(str(exc))
    try:
        try:
            target = sys.stdout if output is None else output.open("w", encoding="utf-8", newline="")
        except OSError as exc:
            fail(f"cannot write {output}: {exc.strerror}")
        try:
            count = write(rows(snapshot, what), COLUMNS[what], fmt, target)
        except StoredRowError as exc:
            fail(f"export stopped at an altered row ({exc}): ordergate verify reports it; the output is incomplete")
        finally:
            if output is not None:
                target.close()
    finally:
        snapshot.close()
    err_console.print(f"exported {count} {what} to {output or 'standard output'}", highlight=False)


@app.command()
def demo(
    home: HomeOption = None,
    host: Annotated[str, typer.Option(help="Address to listen on.")] = "127.0.0.1",
    port: Annotated[int, typer.Option(min=0, max=65535, help="Port (0: any free port).")] = 8080,
    users: Annotated[int, typer.Option(min=1, help="Users to generate when there are no profiles yet.")] = 5,
    count: Annotated[int, typer.Option(min=1, help="Orders to send.")] = 200,
    rate: Annotated[float, typer.Option(min=0.001, help="Orders per second.")] = 40.0,
    seed: Annotated[int | None, typer.Option(help="Random seed for the profiles and the orders.")] = None,
) -> None:
    """Prepare a home, start the gateway, send orders for a while, then serve the dashboard until Ctrl-C."""
    import asyncio

    from ordergate.tools.demo import DemoConfig, run_demo

    settings = settings_from(home=home, host=host, port=port)
    try:
        asyncio.run(run_demo(settings, DemoConfig(users, count, rate, seed), console, err_console))
    except StartupError as exc:
        fail(str(exc))
    except KeyboardInterrupt:
        pass
    console.print("gateway stopped", highlight=False)


# -- security and controls: API keys, trading controls ---------------------------------------------

keys_app = typer.Typer(help="Manage the API keys of a key file (serve --auth KEYFILE).", no_args_is_help=True)
control_app = typer.Typer(help="Trading controls of a running gateway: halt or reduce-only.", no_args_is_help=True)
app.add_typer(keys_app, name="keys")
app.add_typer(control_app, name="control")
risk_app = typer.Typer(
    help="Risk limits and the trading session of a running gateway (SPEC section 10).", no_args_is_help=True
)
app.add_typer(risk_app, name="risk")

KeyFileOption = Annotated[
    Path | None,
    typer.Option(
        "--file", envvar="ORDERGATE_AUTH", help="Key file; default: ORDERGATE_AUTH or <home>/data/api_keys.json."
    ),
]


def _key_file(file: Path | None, home: Path | None) -> Path:
    return file if file is not None else settings_from(home=home).default_key_file


@keys_app.command("create")
def keys_create(
    role: Annotated[Role, typer.Option("--role", help="producer, viewer or admin.")],
    strategy: Annotated[
        list[str] | None, typer.Option("--strategy", help="Producer: only this strategy (repeat for more).")
    ] = None,
    user: Annotated[str | None, typer.Option("--user", help="Viewer: only this user's data.")] = None,
    name: Annotated[str | None, typer.Option("--name", help="A name to recognise the key by.")] = None,
    file: KeyFileOption = None,
    home: HomeOption = None,
) -> None:
    """Create a key; it is printed once, alone on the last line, and only its hash is kept."""
    from ordergate.security.keys import KeyFile
    from ordergate.service.clock import utc_now

    path = _key_file(file, home)
    try:
        keys, entry, key = KeyFile.load_or_new(path).create(
            role, name=name, strategies=strategy, user=user, now=utc_now()
        )
        keys.save()
    except StartupError as exc:
        fail(str(exc))
    except ValueError as exc:
        fail(str(exc))
    except OSError as exc:
        fail(f"cannot write {path}: {exc.strerror}")
    limits = f" for {', '.join(entry.strategies)}" if entry.strategies else ""
    limits += f" bound to {entry.user}" if entry.user else ""
    err_console.print(
        f"created {entry.role} key {entry.key_id} ({entry.name}){limits} in {path}; it is shown once, keep it safe:",
        highlight=False,
    )
    sys.stdout.write(key + "\n")


@keys_app.command("list")
def keys_list(
    as_json: Annotated[bool, typer.Option("--json", help="Print the keys as JSON (no hashes).")] = False,
    file: KeyFileOption = None,
    home: HomeOption = None,
) -> None:
    """The keys of the file (never the keys themselves): id, name, role, limits, created, revoked."""
    from ordergate.security.keys import KeyFile
    from ordergate.tools.keys import key_rows, render_keys

    try:
        keys = KeyFile.load(_key_file(file, home))
    except StartupError as exc:
        fail(str(exc))
    if as_json:
        import orjson

        sys.stdout.write(orjson.dumps(key_rows(keys), option=orjson.OPT_INDENT_2 | orjson.OPT_APPEND_NEWLINE).decode())
    else:
        console.print(render_keys(keys))


@keys_app.command("revoke")
def keys_revoke(
    key: Annotated[str, typer.Argument(help="The id or the name of the key to revoke.")],
    file: KeyFileOption = None,
    home: HomeOption = None,
) -> None:
    """Revoke a key; a running gateway refuses it within a second (it re-reads the file)."""
    from ordergate.security.keys import KeyFile
    from ordergate.service.clock import utc_now

    path = _key_file(file, home)
    try:
        keys, entry = KeyFile.load(path).revoke(key, now=utc_now())
        keys.save()
    except StartupError as exc:
        fail(str(exc))
    except ValueError as exc:
        fail(str(exc))
    except OSError as exc:
        fail(f"cannot write {path}: {exc.strerror}")
    console.print(f"revoked key {entry.key_id} ({entry.name}, {entry.role})", highlight=False)


# -- alert webhooks (SPEC section 11) ------------------------------------------------------------

hooks_app = typer.Typer(
    help="Alert webhooks (TradingView, ChartInk, Amibroker): POST /v1/hooks/<token>.", no_args_is_help=True
)
app.add_typer(hooks_app, name="hooks")

HookFileOption = Annotated[
    Path | None, typer.Option("--file", help="Hooks file; default: <home>/Jsons/hooks.json (what a gateway reads).")
]


def _hooks_file(file: Path | None, home: Path | None) -> Path:
    from ordergate.security.hooks import default_hooks_file

    return file if file is not None else default_hooks_file(settings_from(home=home).home)


@hooks_app.command("create")
def hooks_create(
    strategy: Annotated[str, typer.Option("--strategy", help="The strategy the hook sends orders for.")],
    name: Annotated[str | None, typer.Option("--name", help="A name to recognise the hook by (the actor).")] = None,
    file: HookFileOption = None,
    home: HomeOption = None,
) -> None:
    """Create a hook; its secret path is printed once, alone on the last line, and only its hash is kept."""
    from ordergate.security.hooks import HookFile, path_of
    from ordergate.service.clock import utc_now

    path = _hooks_file(file, home)
    try:
        hooks, hook, token = HookFile.load_or_new(path).create(strategy, name=name, now=utc_now())
        hooks.save()
    except (StartupError, ValueError) as exc:
        fail(str(exc))
    except OSError as exc:
        fail(f"cannot write {path}: {exc.strerror}")
    err_console.print(
        f"created hook {hook.hook_id} ({hook.name}) for {hook.strategy} in {path}; post alerts to this path on "
        "the gateway's address (it is shown once, keep it secret):",
        highlight=False,
    )
    sys.stdout.write(path_of(token) + "\n")


@hooks_app.command("list")
def hooks_list(
    as_json: Annotated[bool, typer.Option("--json", help="Print the hooks as JSON (no hashes).")] = False,
    file: HookFileOption = None,
    home: HomeOption = None,
) -> None:
    """The hooks of the file (never their secret paths): id, name, strategy, created, revoked."""
    from ordergate.security.hooks import HookFile
    from ordergate.tools.hooks import hook_rows, render_hooks

    try:
        hooks = HookFile.load(_hooks_file(file, home))
    except StartupError as exc:
        fail(str(exc))
    if as_json:
        import orjson

        listed = orjson.dumps(hook_rows(hooks), option=orjson.OPT_INDENT_2 | orjson.OPT_APPEND_NEWLINE)
        sys.stdout.write(listed.decode())
    else:
        console.print(render_hooks(hooks))


@hooks_app.command("revoke")
def hooks_revoke(
    hook: Annotated[str, typer.Argument(help="The id or the name of the hook to revoke.")],
    file: HookFileOption = None,
    home: HomeOption = None,
) -> None:
    """Revoke a hook; a running gateway of the home answers its path 404 within a second."""
    from ordergate.security.hooks import HookFile
    from ordergate.service.clock import utc_now

    path = _hooks_file(file, home)
    try:
        hooks, revoked = HookFile.load(path).revoke(hook, now=utc_now())
        hooks.save()
    except (StartupError, ValueError) as exc:
        fail(str(exc))
    except OSError as exc:
        fail(f"cannot write {path}: {exc.strerror}")
    console.print(f"revoked hook {revoked.hook_id} ({revoked.name}, {revoked.strategy})", highlight=False)


@control_app.command("set")
def control_set(
    level: Annotated[ControlLevel, typer.Option("--level", help="global, strategy or user.")],
    state: Annotated[
        ControlState, typer.Option("--state", case_sensitive=False, help="ACTIVE, HALTED or REDUCE_ONLY.")
    ],
    target: Annotated[
        str | None, typer.Option("--target", help="The strategy or user (not for --level global).")
    ] = None,
    url: UrlOption = DEFAULT_URL,
    api_key: ApiKeyOption = None,
) -> None:
    """Set a trading control (PUT /v1/controls; needs an admin key when auth is on)."""
    from ordergate.client import OrdergateError
    from ordergate.tools.controls import render_controls
    from ordergate.tools.gateway import connect, problem

    try:
        with connect(url, api_key) as client:
            answer = client.set_control(level.value, state.value, target)
    except OrdergateError as exc:
        fail(problem(exc))
    console.print(render_controls(answer.model_dump(mode="json", by_alias=True)))


@control_app.command("flatten")
def control_flatten(
    level: Annotated[ControlLevel, typer.Option("--level", help="global (everything), strategy or user.")],
    target: Annotated[
        str | None, typer.Option("--target", help="The strategy or user (not for --level global).")
    ] = None,
    then: Annotated[
        ControlState | None,
        typer.Option("--then", case_sensitive=False, help="Set HALTED (a kill switch) or REDUCE_ONLY with the orders."),
    ] = None,
    yes: Annotated[bool, typer.Option("--yes", help="Do not ask for confirmation.")] = False,
    url: UrlOption = DEFAULT_URL,
    api_key: ApiKeyOption = None,
) -> None:
    """Close every open position in the scope at once (POST /v1/controls/flatten; needs an admin key)."""
    from ordergate.client import OrdergateError
    from ordergate.tools.controls import render_controls
    from ordergate.tools.gateway import connect, problem

    scope = "every open position" if level is ControlLevel.GLOBAL else f"every open position of {level.value} {target}"
    if not yes and not typer.confirm(f"close {scope}{f' and set {then.value}' if then else ''}?"):
        fail("nothing was closed", code=1)
    try:
        with connect(url, api_key) as client:
            answer = client.flatten(level.value, target, then.value if then is not None else None)
    except OrdergateError as exc:
        fail(problem(exc))
    closed = sum(len(o.applied) for o in answer.orders)
    err_console.print(f"{len(answer.orders)} orders closed {closed} positions", highlight=False)
    for o in answer.orders:
        users = ", ".join(e.user for e in o.applied)
        console.print(f"order {o.order_id}: {o.strategy} {o.instrument} SELL for {users}", highlight=False)
    console.print(render_controls(answer.controls.model_dump(mode="json", by_alias=True)))


@control_app.command("list")
def control_list(
    as_json: Annotated[bool, typer.Option("--json", help="Print the API's answer as JSON.")] = False,
    url: UrlOption = DEFAULT_URL,
    api_key: ApiKeyOption = None,
) -> None:
    """The trading controls in force (GET /v1/controls)."""
    from ordergate.tools.controls import render_controls

    _show(lambda client: client.controls(), render_controls, as_json=as_json, url=url, api_key=api_key)


def _show(
    fetch: Callable[[Any], Any], render: Callable[[Any], Any], *, as_json: bool, url: str, api_key: str | None
) -> None:
    """``fetch`` an answer with a client of the running gateway and print it as JSON or as ``render`` makes it."""
    import orjson

    from ordergate.client import OrdergateError
    from ordergate.tools.gateway import connect, problem

    try:
        with connect(url, api_key) as client:
            answer = fetch(client).model_dump(mode="json", by_alias=True)
    except OrdergateError as exc:
        fail(problem(exc))
    if as_json:
        sys.stdout.write(orjson.dumps(answer, option=orjson.OPT_INDENT_2 | orjson.OPT_APPEND_NEWLINE).decode())
    else:
        console.print(render(answer))


@risk_app.command("list")
def risk_list(
    as_json: Annotated[
        bool, typer.Option("--json", help="Print the API's answer as JSON (a file 'risk apply' takes).")
    ] = False,
    url: UrlOption = DEFAULT_URL,
    api_key: ApiKeyOption = None,
) -> None:
    """The limits and the trading session in force (GET /v1/risk/limits)."""
    from ordergate.tools.risk import render_risk

    _show(lambda client: client.risk_limits(), render_risk, as_json=as_json, url=url, api_key=api_key)


@risk_app.command("set")
def risk_set(
    level: Annotated[str, typer.Option("--level", help="global, strategy or user.")],
    limits: Annotated[
        list[str],
        typer.Argument(
            help="NAME=VALUE pairs: max_open_positions=3, cooldown_seconds=null (clears), breaker=5/60 "
            "(5 rejections within 60 s)."
        ),
    ],
    target: Annotated[
        str | None, typer.Option("--target", help="The strategy or user (not for --level global).")
    ] = None,
    url: UrlOption = DEFAULT_URL,
    api_key: ApiKeyOption = None,
) -> None:
    """Set or clear limits at one level (PUT /v1/risk/limits; needs an admin key when auth is on)."""
    from ordergate.client import OrdergateError
    from ordergate.tools.gateway import connect, problem
    from ordergate.tools.risk import parse_assignments, render_risk

    try:
        assignments = parse_assignments(limits)
    except ValueError as exc:
        fail(str(exc))
    try:
        with connect(url, api_key) as client:
            answer = client.set_risk_limits(level, assignments, target)
    except OrdergateError as exc:
        fail(problem(exc))
    console.print(render_risk(answer.model_dump(mode="json", by_alias=True)))


@risk_app.command("apply")
def risk_apply(
    file: Annotated[Path, typer.Argument(help="A policy file: what 'ordergate risk list --json' prints.")],
    dry_run: Annotated[bool, typer.Option("--dry-run", help="Print the changes; change nothing.")] = False,
    url: UrlOption = DEFAULT_URL,
    api_key: ApiKeyOption = None,
) -> None:
    """Make the gateway's limits and session exactly the file's (limits it leaves out are cleared)."""
    from ordergate.client import OrdergateError
    from ordergate.tools.gateway import connect, problem
    from ordergate.tools.risk import load_policy, plan, render_risk

    try:
        wanted = load_policy(file.read_bytes(), str(file))
    except OSError as exc:
        fail(f"cannot read {file}: {exc.strerror}")
    except ValueError as exc:
        fail(str(exc))
    try:
        with connect(url, api_key) as client:
            answer = client.risk_limits().model_dump(mode="json", by_alias=True)
            calls = plan(answer, wanted)
            for method, path, body in calls:
                shown = f" {body}" if body is not None else ""
                err_console.print(f"{'would ' if dry_run else ''}{method} {path}{shown}", highlight=False, markup=False)
                if not dry_run:  # each call sets a level to what the file says: safe to repeat
                    answer = client.request(method, path, body, idempotent=True)
    except OrdergateError as exc:
        fail(problem(exc))
    if not calls:
        err_console.print(f"the gateway's policy is already {file}'s: nothing to change", highlight=False)
    console.print(render_risk(answer))


def main(argv: list[str] | None = None, prog_name: str = "ordergate") -> None:
    app(args=argv if argv is not None else sys.argv[1:], prog_name=prog_name)


if __name__ == "__main__":  # pragma: no cover
    main()
