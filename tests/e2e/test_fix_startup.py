"""``serve --fix-port`` refuses a port it cannot listen on before anything starts: one line, exit code 2."""

from __future__ import annotations

import socket
from pathlib import Path

from tests.e2e.conftest import HOST, free_port, run_ordergate


def test_a_fix_port_in_use_is_one_line_and_exit_code_2(home: Path) -> None:
    with socket.socket() as taken:
        taken.bind((HOST, 0))
        taken.listen()
        port = taken.getsockname()[1]
        result = run_ordergate(
            "serve", "--home", str(home), "--host", HOST, "--port", str(free_port()), "--fix-port", str(port)
        )
    assert result.returncode == 2
    assert result.stderr.strip().splitlines() == [
        f"error: --fix-port {port}: cannot listen on {HOST}: Address already in use"
    ]
    assert "Traceback" not in result.stdout + result.stderr
