"""End-to-end fixtures: real gateway processes on 127.0.0.1, started per test and always stopped.

``start_gateway(home, *serve_args)`` runs ``python -m ordergate serve`` (or any command that serves
the API, such as the ``Scripts/`` shim under uvicorn) with its output in a log file inside the home,
and returns once ``/readyz`` answers 200. ``serve`` runs on the test's ``server_stack``: the modules
of :data:`BOTH_STACKS` run every test once under uvicorn and once under granian (``--server``), the
others on the default stack of ``serve``; a server that dies or is not ready in time fails the test
with its log. Every wait is bounded in count and time. The helpers at the end read the API the way a
user would (all pages) and hold a reference model of SPEC section 2, written independently of the
code under test, to check a stored order log decision by decision.
"""

from __future__ import annotations

import json
import os
import shlex
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

import httpx
import pytest

HOST = "127.0.0.1"
READY_TIMEOUT = 20.0
STOP_TIMEOUT = 15.0
CLI_TIMEOUT = 60.0
POLL_INTERVAL = 0.05
LOG_TAIL_CHARS = 4000
MAX_PAGES = 1000

SERVER_STACKS = ("uvicorn", "granian")
BOTH_STACKS = frozenset(
    {
        "test_abuse",
        "test_abuse_requests",
        "test_api_fuzz",
        "test_crash_recovery",
        "test_dashboard",
        "test_dashboard_auth",
        "test_events_http",
        "test_graceful_shutdown",
        "test_produce",
        "test_race",
    }
)
"""The HTTP-facing modules whose tests run through both server stacks of ``serve`` (except the tests
marked ``one_stack``, which run a command of their own)."""

Profile = Mapping[str, Mapping[str, Sequence[str]]]
PositionKey = tuple[str, str, str]
"""(user, strategy or "" in account scope, instrument), as SPEC section 2 keys a position."""

SEED_PROFILE: Profile = {
    "Holland Proctor": {"STRATEGY_A": ["BIRLASOFT", "GRASIM", "EICHER"], "STRATEGY_B": ["MINDA"]},
    "Oaklee Wagner": {"STRATEGY_D": ["ACC"]},
}
"""The seed's example profiles (SPEC section 2)."""


# -- processes ------------------------------------------------------------------------------------


def free_port() -> int:
    """A TCP port on 127.0.0.1 that nothing listens on right now."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind((HOST, 0))
        return int(sock.getsockname()[1])


def subprocess_env() -> dict[str, str]:
    """The test's environment without ``ORDERGATE_*`` overrides, with unbuffered Python output."""
    env = {name: value for name, value in os.environ.items() if not name.startswith("ORDERGATE_")}
    env["PYTHONUNBUFFERED"] = "1"
    return env


def write_profile(home: Path, profile: Profile) -> Path:
    """Write ``profile`` as ``home/Jsons/user_profile.json`` and return the home."""
    (home / "Jsons").mkdir(parents=True, exist_ok=True)
    (home / "Jsons" / "user_profile.json").write_text(json.dumps(profile, indent=2), encoding="utf-8")
    return home


class GatewayProcess:
    """One gateway server process: started, waited for, killed or stopped, restarted on the same port.

    Output (stdout and stderr, every start appended) goes to ``log_path`` inside the home.
    """

    def __init__(
        self,
        home: Path,
        serve_args: Sequence[str] = (),
        *,
        command: Sequence[str] | None = None,
        cwd: Path | None = None,
        port: int | None = None,
        preexec_fn: Callable[[], object] | None = None,
        server: str | None = None,
    ) -> None:
        self.home = home
        self.preexec_fn = preexec_fn
        """Run in the child before the server starts (for example to lower its descriptor limit)."""
        self.port = port if port is not None else free_port()
        self.command = (
            list(command)
            if command is not None
            else [
                sys.executable, "-m", "ordergate", "serve",
                "--home", str(home), "--host", HOST, "--port", str(self.port),
                *(("--server", server) if server is not None else ()), *serve_args,
            ]
        )  # fmt: skip
        self.server = server
        """The ``--server`` stack given to ``serve`` (``None``: its default)."""
        self.cwd = cwd if cwd is not None else home
        self.log_path = home / "server.log"
        self.returncode: int | None = None
        self.starts = 0
        self._process: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"http://{HOST}:{self.port}"

    @property
    def pid(self) -> int:
        assert self._process is not None, "the gateway is not running"
        return self._process.pid

    @property
    def is_running(self) -> bool:
        return self._process is not None and self._process.poll() is None

    def start(self, timeout: float = READY_TIMEOUT) -> GatewayProcess:
        """Start the server and return once ``/readyz`` says 200; fail the test with its log otherwise."""
        if self.is_running:
            raise RuntimeError(f"the gateway on port {self.port} is already running")
        self.starts += 1
        self.returncode = None
        self.log_path.parent.mkdir(parents=True, exist_ok=True)
        with self.log_path.open("ab") as log:
            log.write(f"--- start {self.starts}: {shlex.join(self.command)}\n".encode())
            log.flush()
            self._process = subprocess.Popen(
                self.command,
                cwd=self.cwd,
                env=subprocess_env(),
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
                preexec_fn=self.preexec_fn,
            )
        self._wait_ready(timeout)
        return self

    def kill(self) -> int | None:
        """SIGKILL, as a crash: no shutdown code runs. Reaps the process and returns its exit code."""
        return self._stop(signal.SIGKILL)

    def terminate(self, timeout: float = STOP_TIMEOUT) -> int | None:
        """SIGTERM (graceful shutdown) and wait; a server still up after ``timeout`` fails the test."""
        return self._stop(signal.SIGTERM, timeout)

    def restart(self, timeout: float = READY_TIMEOUT) -> GatewayProcess:
        """Stop the server gracefully if it still runs, then start it again on the same port."""
        if self.is_running:
            self.terminate()
        return self.start(timeout)

    def log_text(self) -> str:
        try:
            return self.log_path.read_text(encoding="utf-8", errors="replace")
        except FileNotFoundError:
            return ""

    def log_tail(self) -> str:
        text = self.log_text()
        clipped = text[-LOG_TAIL_CHARS:]
        return f"--- server log {self.log_path} ({'last part' if clipped != text else 'whole'}) ---\n{clipped}"

    def _wait_ready(self, timeout: float) -> None:
        assert self._process is not None
        deadline = time.monotonic() + timeout
        last = "no answer yet"
        with httpx.Client(timeout=1.0) as client:
            for _ in range(int(timeout / POLL_INTERVAL) + 1):
                code = self._process.poll()
                if code is not None:
                    self._process = None
                    self.returncode = code
                    pytest.fail(f"the server exited with code {code} before it was ready\n{self.log_tail()}")
                try:
                    response = client.get(f"{self.url}/readyz")
                except httpx.TransportError as exc:
                    last = f"{type(exc).__name__}: {exc}"
                else:
                    if response.status_code == 200:
                        return
                    last = f"HTTP {response.status_code}: {response.text}"
                if time.monotonic() >= deadline:
                    break
                time.sleep(POLL_INTERVAL)
        self.kill()
        pytest.fail(f"the server was not ready within {timeout:.0f}s (last: {last})\n{self.log_tail()}")

    def _stop(self, sig: signal.Signals, timeout: float = STOP_TIMEOUT) -> int | None:
        process = self._process
        if process is None:
            return self.returncode
        self._process = None
        if process.poll() is None:
            process.send_signal(sig)
        try:
            self.returncode = process.wait(timeout)
        except subprocess.TimeoutExpired:
            process.kill()
            self.returncode = process.wait(STOP_TIMEOUT)
            pytest.fail(f"the server ignored {sig.name} for {timeout:.0f}s and was killed\n{self.log_tail()}")
        return self.returncode


class StartGateway(Protocol):
    def __call__(
        self,
        home: Path,
        *serve_args: str,
        command: Sequence[str] | None = None,
        cwd: Path | None = None,
        port: int | None = None,
        timeout: float = READY_TIMEOUT,
        preexec_fn: Callable[[], object] | None = None,
    ) -> GatewayProcess: ...


@pytest.fixture
def profile() -> Profile:
    """The profiles the ``home`` fixture writes; a module overrides this fixture to use its own."""
    return SEED_PROFILE


@pytest.fixture
def home(tmp_path: Path, profile: Profile) -> Path:
    """A fresh home folder holding ``profile`` as Jsons/user_profile.json."""
    return write_profile(tmp_path / "home", profile)


def pytest_generate_tests(metafunc: pytest.Metafunc) -> None:
    if "server_stack" in metafunc.fixturenames:
        module = metafunc.module.__name__.rpartition(".")[2]
        one = metafunc.definition.get_closest_marker("one_stack") is not None
        stacks = list(SERVER_STACKS) if module in BOTH_STACKS and not one else [None]
        metafunc.parametrize("server_stack", stacks, ids=[s or "default" for s in stacks], indirect=True)


@pytest.fixture
def server_stack(request: pytest.FixtureRequest) -> str | None:
    """The ``--server`` stack of the test's ``serve`` processes; ``None`` for the default of ``serve``."""
    stack: str | None = request.param
    return stack


@pytest.fixture
def start_gateway(server_stack: str | None) -> Iterator[StartGateway]:
    """Start ready gateway processes on ``server_stack``; every one still running is killed at teardown.

    The stack applies to ``serve`` only (``command`` given: the command is run as it is).
    """
    started: list[GatewayProcess] = []

    def start(
        home: Path,
        *serve_args: str,
        command: Sequence[str] | None = None,
        cwd: Path | None = None,
        port: int | None = None,
        timeout: float = READY_TIMEOUT,
        preexec_fn: Callable[[], object] | None = None,
    ) -> GatewayProcess:
        gateway = GatewayProcess(
            home, serve_args, command=command, cwd=cwd, port=port, preexec_fn=preexec_fn, server=server_stack
        )
        started.append(gateway)
        return gateway.start(timeout)

    yield start
    for gateway in started:
        gateway.kill()


def run_ordergate(
    *args: str, cwd: Path | None = None, timeout: float = CLI_TIMEOUT
) -> subprocess.CompletedProcess[str]:
    """Run ``python -m ordergate ARGS`` to completion (bounded by ``timeout``) and capture its output."""
    return subprocess.run(
        [sys.executable, "-m", "ordergate", *args],
        cwd=cwd,
        env=subprocess_env(),
        stdin=subprocess.DEVNULL,
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
    )


def assert_verified(home: Path) -> None:
    """``ordergate verify --home HOME`` replays the log to the open positions and exits 0."""
    result = run_ordergate("verify", "--home", str(home))
    assert result.returncode == 0, (
        f"verify exited {result.returncode}\nstdout: {result.stdout}\nstderr: {result.stderr}"
    )


# -- reading the API ------------------------------------------------------------------------------


def fetch_all(client: httpx.Client, path: str, page_size: int = 100, **filters: str) -> list[dict[str, Any]]:
    """Every item of a paged listing (``/v1/orders``, ``/v1/positions``, ``/v1/trades``), all pages."""
    items: list[dict[str, Any]] = []
    after = 0
    for _ in range(MAX_PAGES):
        response = client.get(path, params={**filters, "after": after, "limit": page_size})
        assert response.status_code == 200, f"GET {path}: HTTP {response.status_code} {response.text}"
        page = response.json()
        items.extend(page["items"])
        if page["next"] is None:
            return items
        assert page["next"] > after, f"GET {path}: cursor went from {after} to {page['next']}"
        after = page["next"]
    pytest.fail(f"GET {path} still had pages after {MAX_PAGES}")


# -- a reference model of SPEC section 2 ----------------------------------------------------------


@dataclass(frozen=True, slots=True)
class OpenPosition:
    strategy: str
    """The strategy that opened it."""
    opened_order_id: int


def position_key(scope: str, user: str, strategy: str, instrument: str) -> PositionKey:
    return (user, strategy if scope == "strategy" else "", instrument)


def expected_decision(
    profile: Profile,
    scope: str,
    book: Mapping[PositionKey, OpenPosition],
    strategy: str,
    instrument: str,
    side: str,
) -> dict[str, Any]:
    """What SPEC section 2 says about one order given the open positions, in :func:`decision_of` form."""
    subscribers = {user: strategies[strategy] for user, strategies in profile.items() if strategy in strategies}
    if not subscribers:
        return _decision("REJECTED", "UNKNOWN_STRATEGY", [], [])
    applied: list[tuple[str, str, str]] = []
    refused: list[tuple[str, str]] = []
    for user, instruments in subscribers.items():
        held = book.get(position_key(scope, user, strategy, instrument))
        if side == "BUY":
            if instrument not in instruments:
                refused.append((user, "INSTRUMENT_NOT_TRADED"))
            elif held is not None:
                refused.append((user, "ALREADY_HOLDING"))
            else:
                applied.append((user, "OPENED", strategy))
        elif held is None:
            refused.append((user, "NO_OPEN_POSITION"))
        else:
            applied.append((user, "CLOSED", held.strategy))
    if applied:
        return _decision("ACCEPTED", None, applied, refused)
    if side == "SELL":
        reason = "NO_OPEN_POSITION"
    elif any(r == "ALREADY_HOLDING" for _, r in refused):
        reason = "ALREADY_HOLDING"
    else:
        reason = "INSTRUMENT_NOT_TRADED"
    return _decision("REJECTED", reason, [], refused)


def _decision(
    status: str,
    reason: str | None,
    applied: Iterable[tuple[str, str, str]],
    refused: Iterable[tuple[str, str]],
) -> dict[str, Any]:
    return {"status": status, "reason": reason, "applied": sorted(applied), "rejected_for": sorted(refused)}


def decision_of(order: Mapping[str, Any]) -> dict[str, Any]:
    """The decision part of a ``/v1/orders`` item, with per-user lists sorted by user."""
    return _decision(
        order["status"],
        order["reason"],
        [(a["user"], a["action"], a["position_strategy"]) for a in order["applied"]],
        [(r["user"], r["reason"]) for r in order["rejected_for"]],
    )


def replay(orders: Iterable[Mapping[str, Any]], profile: Profile, scope: str) -> dict[PositionKey, OpenPosition]:
    """Replay an order log (ascending ids) through the reference rules and return the open positions.

    Asserts that every stored decision is the one the rules give at that point of the log: the
    decisions are a serial execution, whatever the concurrency they were made under.
    """
    book: dict[PositionKey, OpenPosition] = {}
    previous_id = 0
    for order in orders:
        order_id = order["order_id"]
        assert order_id > previous_id, f"order {order_id} listed after order {previous_id}"
        previous_id = order_id
        expected = expected_decision(profile, scope, book, order["strategy"], order["instrument"], order["side"])
        assert decision_of(order) == expected, f"order {order_id} was not decided by the rules: {order}"
        for effect in order["applied"]:
            key = position_key(scope, effect["user"], order["strategy"], order["instrument"])
            if effect["action"] == "OPENED":
                book[key] = OpenPosition(order["strategy"], order_id)
            else:
                del book[key]
    return book


def book_of(positions: Iterable[Mapping[str, Any]], scope: str) -> dict[PositionKey, OpenPosition]:
    """``/v1/positions`` items as a book keyed like :func:`replay`'s; two items on one key fail."""
    book: dict[PositionKey, OpenPosition] = {}
    for item in positions:
        key = position_key(scope, item["user"], item["strategy"], item["instrument"])
        assert key not in book, f"two open positions share the key {key}"
        book[key] = OpenPosition(item["strategy"], item["opened_order_id"])
    return book
