"""The operator's commands against real gateway processes: ``orders | positions | trades`` (listings over
the HTTP API), ``demo`` (a gateway with traffic, served until Ctrl-C), and the decision log formats."""

from __future__ import annotations

import json
import os
import re
import select
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import httpx
import pytest
from typer.testing import CliRunner

from ordergate.cli import app
from tests.e2e.conftest import StartGateway, fetch_all, free_port, subprocess_env

pytestmark = pytest.mark.e2e

SEED_ORDERS = [
    ("STRATEGY_A", "GRASIM", "SELL"),
    ("STRATEGY_B", "MINDA", "BUY"),
    ("STRATEGY_D", "INFY", "BUY"),
    ("STRATEGY_A", "MINDA", "SELL"),
    ("STRATEGY_B", "MINDA", "BUY"),
    ("STRATEGY_A", "GRASIM", "BUY"),
    ("STRATEGY_D", "ACC", "BUY"),
]


def cli(*args: str) -> tuple[int, str, str]:
    result = CliRunner().invoke(app, list(args), env={"COLUMNS": "200"})
    return result.exit_code, result.stdout, result.stderr


def cli_json(*args: str) -> dict[str, Any]:
    code, out, err = cli(*args, "--json")
    assert code == 0, err
    page: dict[str, Any] = json.loads(out)
    return page


def send_seed_orders(url: str) -> None:
    with httpx.Client(base_url=url) as client:
        for strategy, instrument, side in SEED_ORDERS:
            answer = client.post("/v1/orders", json={"strategy": strategy, "instrument": instrument, "side": side})
            assert answer.status_code == 201


def test_listings_show_what_the_api_serves_with_the_same_filters(home: Path, start_gateway: StartGateway) -> None:
    gateway = start_gateway(home)
    send_seed_orders(gateway.url)
    url = ("--url", gateway.url)
    with httpx.Client(base_url=gateway.url) as client:
        for listing, filters in [
            ("orders", {}),
            ("orders", {"status": "REJECTED"}),
            ("orders", {"user": "Holland Proctor", "side": "BUY"}),
            ("orders", {"strategy": "STRATEGY_A", "instrument": "MINDA"}),
            ("positions", {}),
            ("positions", {"user": "Oaklee Wagner"}),
            ("positions", {"strategy": "STRATEGY_A"}),
            ("trades", {}),
            ("trades", {"instrument": "MINDA"}),
        ]:
            options = [part for name, value in filters.items() for part in (f"--{name}", value)]
            page = cli_json(listing, *options, *url)
            assert page["items"] == fetch_all(client, f"/v1/{listing}", **filters), (listing, filters)
            assert page["items"], (listing, filters)

    first = cli_json("orders", "--limit", "2", *url)
    second = cli_json("orders", "--limit", "2", "--after", str(first["next"]), *url)
    assert [o["order_id"] for o in first["items"] + second["items"]] == [1, 2, 3, 4]
    assert cli_json("orders", "--status", "rejected", *url)["items"]  # any letter case, as the API's side

    code, table, _ = cli("orders", "--limit", "3", *url)
    assert code == 0
    assert "NO_OPEN_POSITION" in table
    assert "more with --after 3" in table
    code, table, _ = cli("positions", *url)
    assert "Holland Proctor" in table
    assert "STRATEGY_A" in table  # the strategy that opened GRASIM
    code, table, _ = cli("trades", *url)
    assert "#2" in table  # MINDA opened by order 2 ...
    assert "#4" in table  # ... closed by order 4


def test_listings_without_a_gateway_exit_2_with_one_line(home: Path) -> None:
    code, _, err = cli("positions", "--url", f"http://127.0.0.1:{free_port()}")
    assert code == 2
    assert "no gateway answers" in err
    assert len(err.strip().splitlines()) == 1


def test_listings_report_what_the_api_refuses(home: Path, start_gateway: StartGateway) -> None:
    gateway = start_gateway(home)
    code, _, err = cli("orders", "--strategy", "x" * 65, "--url", gateway.url)
    assert code == 2
    assert "422" in err


def read_until(process: subprocess.Popen[str], marker: str, timeout: float = 30.0) -> str:
    """The process's stdout up to ``marker``, read unbuffered; fails if it exits or times out first."""
    assert process.stdout is not None
    fd = process.stdout.fileno()
    seen = b""
    deadline = time.monotonic() + timeout
    while marker.encode() not in seen:
        remaining = deadline - time.monotonic()
        if remaining <= 0 or process.poll() is not None:
            pytest.fail(f"no {marker!r} in the output (exit {process.poll()}):\n{seen.decode(errors='replace')}")
        ready, _, _ = select.select([fd], [], [], min(remaining, 0.5))
        if ready:
            seen += os.read(fd, 65536)
    return seen.decode()


class Demo:
    """``ordergate demo`` as a child process: read its output until it serves, then press Ctrl-C."""

    def __init__(self, *args: str) -> None:
        self.process = subprocess.Popen(
            [sys.executable, "-m", "ordergate", "demo", *args],
            env=subprocess_env(),
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )

    def serving(self) -> str:
        return read_until(self.process, "Serving until Ctrl-C")

    def ctrl_c(self) -> tuple[int, str, str, float]:
        """SIGINT; the exit code, the rest of stdout and stderr, and the seconds it took to stop."""
        started = time.monotonic()
        self.process.send_signal(signal.SIGINT)
        out, err = self.process.communicate(timeout=15)
        return self.process.returncode, out, err, time.monotonic() - started

    def kill(self) -> None:
        if self.process.poll() is None:
            self.process.kill()
            self.process.communicate()


def test_demo_prepares_a_home_sends_orders_then_serves_the_dashboard_until_ctrl_c(tmp_path: Path) -> None:
    home = tmp_path / "fresh"
    port = free_port()
    options = ("--home", str(home), "--port", str(port), "--users", "4", "--seed", "3")
    demo = Demo(*options, "--count", "40", "--rate", "200")
    try:
        output = demo.serving()
        with httpx.Client(base_url=f"http://127.0.0.1:{port}") as client:
            stats = client.get("/v1/stats").json()
            page = client.get("/")
        code, rest, err, took = demo.ctrl_c()
    finally:
        demo.kill()
    assert "wrote 4 random users" in output
    assert f"Dashboard: http://127.0.0.1:{port}/" in output
    assert re.search(r"sent\W+40\b", output), output
    assert re.search(r"errors\W+0\b", output), output
    assert (stats["orders"], stats["users"]) == (40, 4)
    assert "ordergate dashboard" in page.text
    for part in ("Jsons/raw_details.json", "Jsons/user_profile.json", "data/ordergate.sqlite3"):
        assert (home / part).exists(), part
    assert (code, "gateway stopped" in rest, "Traceback" in err) == (0, True, False), err
    assert took < 10

    profiles = (home / "Jsons" / "user_profile.json").read_bytes()
    again = Demo(*options, "--count", "5", "--rate", "500")
    try:
        output = again.serving()
        code, _, err, _ = again.ctrl_c()
    finally:
        again.kill()
    assert "using the profiles in" in output
    assert code == 0, err
    assert (home / "Jsons" / "user_profile.json").read_bytes() == profiles


def test_demo_on_a_busy_port_exits_2_with_one_line(home: Path, tmp_path: Path, start_gateway: StartGateway) -> None:
    gateway = start_gateway(home)
    code, _, err = cli("demo", "--home", str(tmp_path / "other"), "--port", str(gateway.port))
    assert code == 2
    assert f"cannot listen on 127.0.0.1:{gateway.port}" in err
    assert "pass another --port" in err
    assert len(err.strip().splitlines()) == 1


@pytest.mark.parametrize("log_format", ["text", "json"])
def test_the_decision_log_has_one_line_per_order_in_the_chosen_format(
    home: Path, start_gateway: StartGateway, log_format: str
) -> None:
    gateway = start_gateway(home, "--log-format", log_format)
    send_seed_orders(gateway.url)
    gateway.terminate()
    lines = (home / "Logs" / "decisions.log").read_text(encoding="utf-8").splitlines()
    assert len(lines) == len(SEED_ORDERS)
    if log_format == "json":
        entries = [json.loads(line) for line in lines]
        assert [(e["order_id"], e["status"], e["reason"]) for e in entries[:4]] == [
            (1, "REJECTED", "NO_OPEN_POSITION"),
            (2, "ACCEPTED", None),
            (3, "REJECTED", "INSTRUMENT_NOT_TRADED"),
            (4, "ACCEPTED", None),
        ]
        assert entries[1]["applied"] == [["Holland Proctor", "OPENED"]]
    else:
        assert "order=1 REJECTED STRATEGY_A GRASIM SELL reason=NO_OPEN_POSITION" in lines[0]
        assert "order=2 ACCEPTED STRATEGY_B MINDA BUY users=Holland Proctor OPENED" in lines[1]
