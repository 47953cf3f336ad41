"""The original kit's three commands work as written from a clean copy of the repository (SPEC section 5)."""

from __future__ import annotations

import json
import re
import shutil
import subprocess
import sys
from pathlib import Path

import httpx
import pytest

from tests.e2e.conftest import (
    CLI_TIMEOUT,
    HOST,
    StartGateway,
    fetch_all,
    free_port,
    run_ordergate,
    subprocess_env,
)

REPO_ROOT = Path(__file__).resolve().parents[2]
IGNORED_EVERYWHERE = frozenset(
    {
        ".git",
        ".venv",
        "__pycache__",
        ".mypy_cache",
        ".pytest_cache",
        ".ruff_cache",
        ".hypothesis",
        "node_modules",
    }
)
IGNORED_AT_ROOT = frozenset({"data", "artifacts"})
PROFILE_FILE = Path("Jsons") / "user_profile.json"
SENT_FIVE = re.compile(r"\bsent\b\W*5\b|\b5\W+(orders?\W+)?sent\b", re.IGNORECASE)
"""The summary's "sent" count as a table row (``│ sent │ 5 │``) or in words (``sent: 5``, ``5 sent``)."""


def ignore_untracked(directory: str, names: list[str]) -> set[str]:
    """``shutil.copytree`` filter leaving out what a clone does not have (see .gitignore)."""
    where = Path(directory).resolve().relative_to(REPO_ROOT)
    ignored = {name for name in names if name in IGNORED_EVERYWHERE or name.endswith((".egg-info", ".pyc"))}
    if where == Path():
        ignored |= IGNORED_AT_ROOT.intersection(names)
    elif where == Path("Logs"):
        ignored |= {name for name in names if name != ".gitkeep"}
    elif where == Path("Jsons"):
        ignored |= {"user_profile.json"}.intersection(names)
    elif where == Path("benchmarks"):
        ignored |= {"out"}.intersection(names)
    return ignored


@pytest.fixture
def clean_copy(tmp_path: Path) -> Path:
    """A copy of the repository as a fresh clone has it: no virtualenv, data, logs, profiles or caches."""
    copy = tmp_path / "repo"
    shutil.copytree(REPO_ROOT, copy, ignore=ignore_untracked, symlinks=True)
    assert not (copy / PROFILE_FILE).exists()
    return copy


def run_script(copy: Path, script: str, *args: str) -> subprocess.CompletedProcess[str]:
    """``python Scripts/SCRIPT ARGS`` from the copy's root, as its README says to run it."""
    return subprocess.run(
        [sys.executable, f"Scripts/{script}", *args],
        cwd=copy,
        env=subprocess_env(),
        stdin=subprocess.DEVNULL,
        capture_output=True,
        text=True,
        timeout=CLI_TIMEOUT,
        check=False,
    )


def handler_command(port: int) -> list[str]:
    return [sys.executable, "-m", "uvicorn", "Scripts.Order_Handler:app", "--host", HOST, "--port", str(port)]


def assert_ran(result: subprocess.CompletedProcess[str]) -> None:
    assert result.returncode == 0, f"exit {result.returncode}\nstdout: {result.stdout}\nstderr: {result.stderr}"


@pytest.mark.e2e
def test_original_generator_writes_profiles_of_catalogue_names_in_a_fresh_clone(clean_copy: Path) -> None:
    assert_ran(run_script(clean_copy, "Generate_User_Profile.py"))

    profiles = json.loads((clean_copy / PROFILE_FILE).read_text(encoding="utf-8"))
    catalogue = json.loads((clean_copy / "Jsons" / "raw_details.json").read_text(encoding="utf-8"))
    assert isinstance(profiles, dict)
    assert len(profiles) == 3
    assert set(profiles) <= set(catalogue["USERS"])
    for strategies in profiles.values():
        assert 1 <= len(strategies) <= 7
        assert set(strategies) <= set(catalogue["STRATEGIES"])
        for instruments in strategies.values():
            assert 1 <= len(instruments) <= 10
            assert set(instruments) <= set(catalogue["INSTRUMENTS"])


@pytest.mark.e2e
def test_original_generator_with_the_same_seed_writes_identical_files(clean_copy: Path) -> None:
    assert_ran(run_script(clean_copy, "Generate_User_Profile.py", "--users", "5", "--seed", "7"))
    first = (clean_copy / PROFILE_FILE).read_bytes()
    assert_ran(run_script(clean_copy, "Generate_User_Profile.py", "--users", "5", "--seed", "7"))
    second = (clean_copy / PROFILE_FILE).read_bytes()

    assert first == second
    assert len(json.loads(first)) == 5


@pytest.mark.e2e
def test_original_handler_serves_and_original_producer_sends_five_orders(
    clean_copy: Path, start_gateway: StartGateway
) -> None:
    assert_ran(run_script(clean_copy, "Generate_User_Profile.py"))
    port = free_port()
    handler = start_gateway(clean_copy, command=handler_command(port), cwd=clean_copy, port=port)

    produced = run_script(clean_copy, "Order_Producer.py", "--count", "5", "--interval", "0.1", "--url", handler.url)

    assert_ran(produced)
    summary = produced.stdout + produced.stderr
    assert SENT_FIVE.search(summary), f"the summary does not say 5 sent:\n{summary}"
    with httpx.Client(base_url=handler.url, timeout=10.0) as client:
        orders = fetch_all(client, "/v1/orders")
    assert len(orders) == 5
    assert {order["status"] for order in orders} <= {"ACCEPTED", "REJECTED"}
    assert (clean_copy / "data" / "ordergate.sqlite3").is_file(), "the clone's root is not the default home"


@pytest.mark.e2e
@pytest.mark.parametrize(
    ("content", "where"),
    [
        pytest.param("not json {", "line 1", id="not-json"),
        pytest.param('{"Ann": ["S1"]}', '$["Ann"]', id="user-without-strategies"),
    ],
)
def test_original_handler_refuses_a_broken_profile_with_one_line_and_exit_code_2(
    clean_copy: Path, content: str, where: str
) -> None:
    (clean_copy / PROFILE_FILE).write_text(content, encoding="utf-8")

    result = subprocess.run(
        handler_command(free_port()),
        cwd=clean_copy,
        env=subprocess_env(),
        stdin=subprocess.DEVNULL,
        capture_output=True,
        text=True,
        timeout=CLI_TIMEOUT,
        check=False,
    )

    assert result.returncode == 2, f"exit {result.returncode}\nstderr: {result.stderr}"
    assert "Traceback" not in result.stderr
    lines = [line for line in result.stderr.splitlines() if line.strip()]
    assert len(lines) == 1, f"expected one line on stderr, got:\n{result.stderr}"
    assert str(clean_copy / PROFILE_FILE) in lines[0]
    assert where in lines[0]


@pytest.mark.e2e
def test_second_server_on_the_same_home_exits_2_pointing_to_postgresql(home: Path, start_gateway: StartGateway) -> None:
    first = start_gateway(home)

    second = run_ordergate("serve", "--home", str(home), "--host", HOST, "--port", str(free_port()))

    assert second.returncode == 2, f"exit {second.returncode}\nstdout: {second.stdout}\nstderr: {second.stderr}"
    assert "PostgreSQL" in second.stderr
    assert "Traceback" not in second.stderr
    assert httpx.get(f"{first.url}/readyz", timeout=5.0).status_code == 200


@pytest.mark.e2e
def test_original_handler_refuses_a_key_file_with_a_non_hex_hash_with_one_line_and_exit_code_2(
    clean_copy: Path,
) -> None:
    assert run_script(clean_copy, "Generate_User_Profile.py").returncode == 0
    keyfile = clean_copy / "keys.json"
    created = run_ordergate("keys", "create", "--role", "admin", "--file", str(keyfile))
    assert created.returncode == 0, created.stderr
    document = json.loads(keyfile.read_text(encoding="utf-8"))
    document["keys"][0]["hash"] = "not hex " * 8
    keyfile.write_text(json.dumps(document), encoding="utf-8")

    result = subprocess.run(
        handler_command(free_port()),
        cwd=clean_copy,
        env={**subprocess_env(), "ORDERGATE_AUTH": str(keyfile)},
        stdin=subprocess.DEVNULL,
        capture_output=True,
        text=True,
        timeout=CLI_TIMEOUT,
        check=False,
    )

    assert result.returncode == 2, f"exit {result.returncode}\nstderr: {result.stderr}"
    assert "Traceback" not in result.stderr
    lines = [line for line in result.stderr.splitlines() if line.strip()]
    assert len(lines) == 1, f"expected one line on stderr, got:\n{result.stderr}"
    assert f'{keyfile}: $["keys"][0]["hash"]: must be 64 hex characters' in lines[0]
