"""The ``ordergate`` command line: init, generate, verify, and start-up errors that exit 2 with one line."""

from __future__ import annotations

import sqlite3
from pathlib import Path

import orjson
import pytest
from typer.testing import CliRunner

from ordergate.cli import app
from tests.integration.conftest import OpenGateway

runner = CliRunner()


def invoke(*args: str) -> tuple[int, str, str]:
    result = runner.invoke(app, list(args))
    return result.exit_code, result.stdout, result.stderr


def test_init_creates_the_home_and_never_overwrites(tmp_path: Path) -> None:
    code, _, _ = invoke("init", "--home", str(tmp_path))
    assert code == 0
    for part in ("Jsons/raw_details.json", "Logs", "data"):
        assert (tmp_path / part).exists()
    catalogue = orjson.loads((tmp_path / "Jsons" / "raw_details.json").read_bytes())
    assert {"Holland Proctor", "Oaklee Wagner"} <= set(catalogue["USERS"])
    (tmp_path / "Jsons" / "raw_details.json").write_text('{"USERS": ["Me"], "STRATEGIES": ["S"], "INSTRUMENTS": ["I"]}')
    assert invoke("init", "--home", str(tmp_path))[0] == 0
    assert orjson.loads((tmp_path / "Jsons" / "raw_details.json").read_bytes())["USERS"] == ["Me"]


def test_generate_with_a_seed_is_deterministic(tmp_path: Path) -> None:
    invoke("init", "--home", str(tmp_path))
    profile = tmp_path / "Jsons" / "user_profile.json"
    assert invoke("generate", "--home", str(tmp_path), "--users", "5", "--seed", "11")[0] == 0
    first = profile.read_bytes()
    assert invoke("generate", "--home", str(tmp_path), "--users", "5", "--seed", "11")[0] == 0
    assert profile.read_bytes() == first
    assert len(orjson.loads(first)) == 5


def test_generate_without_a_catalogue_exits_2_with_one_line(tmp_path: Path) -> None:
    code, _, err = invoke("generate", "--home", str(tmp_path))
    assert code == 2
    assert "ordergate init" in err
    assert len(err.strip().splitlines()) == 1


def test_serve_with_a_broken_profile_exits_2_naming_file_and_path(tmp_path: Path) -> None:
    (tmp_path / "Jsons").mkdir()
    (tmp_path / "Jsons" / "user_profile.json").write_text('{"Ann": {"S1": ["ACC", 3]}}')
    code, _, err = invoke("serve", "--home", str(tmp_path), "--port", "0")
    assert code == 2
    assert "user_profile.json" in err
    assert '$["Ann"]["S1"][1]' in err
    assert "Traceback" not in err


def test_serve_with_an_unsupported_database_url_exits_2(seed_home: Path) -> None:
    code, _, err = invoke("serve", "--home", str(seed_home), "--db", "mysql://x/y")
    assert (code, "SQLite" in err) == (2, True)


def test_serve_with_an_unknown_scope_exits_2(seed_home: Path) -> None:
    code, _, err = invoke("serve", "--home", str(seed_home), "--scope", "portfolio")
    assert code == 2
    assert "portfolio" in err


def test_verify_without_a_store_exits_2(tmp_path: Path) -> None:
    code, _, err = invoke("verify", "--home", str(tmp_path))
    assert code == 2
    assert "no store" in err


async def make_log(home: Path, open_gateway: OpenGateway) -> None:
    async with open_gateway(home) as (client, _):
        for strategy, instrument, side in [
            ("STRATEGY_A", "GRASIM", "SELL"),
            ("STRATEGY_B", "MINDA", "BUY"),
            ("STRATEGY_A", "GRASIM", "BUY"),
            ("STRATEGY_A", "MINDA", "SELL"),
            ("STRATEGY_B", "MINDA", "BUY"),
        ]:
            await client.post("/v1/orders", json={"strategy": strategy, "instrument": instrument, "side": side})


@pytest.mark.anyio
async def test_verify_passes_on_an_intact_log(seed_home: Path, open_gateway: OpenGateway) -> None:
    await make_log(seed_home, open_gateway)
    code, out, _ = invoke("verify", "--home", str(seed_home))
    assert code == 0
    assert "5 orders" in out
    assert "2 open positions" in out


@pytest.mark.anyio
async def test_verify_names_the_first_order_whose_stored_effects_were_altered(
    seed_home: Path, open_gateway: OpenGateway
) -> None:
    await make_log(seed_home, open_gateway)
    with sqlite3.connect(seed_home / "data" / "ordergate.sqlite3") as db:
        db.execute(
            "UPDATE orders SET applied = '[]', status = 'REJECTED', reason = 'NO_OPEN_POSITION' WHERE order_id = 4"
        )
    code, _, err = invoke("verify", "--home", str(seed_home))
    assert code == 1
    assert "order 4" in err


@pytest.mark.anyio
async def test_verify_names_a_position_missing_from_the_store(seed_home: Path, open_gateway: OpenGateway) -> None:
    await make_log(seed_home, open_gateway)
    with sqlite3.connect(seed_home / "data" / "ordergate.sqlite3") as db:
        db.execute("DELETE FROM positions WHERE instrument = 'GRASIM'")
    code, _, err = invoke("verify", "--home", str(seed_home))
    assert code == 1
    assert "GRASIM" in err
    assert "missing from the store" in err


def test_invalid_setting_from_the_environment_exits_2_naming_it(
    seed_home: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("ORDERGATE_PORT", "eighty")
    code, _, err = invoke("serve", "--home", str(seed_home))
    assert code == 2
    assert "port" in err
    assert "ORDERGATE_" in err


def test_error_lines_show_brackets_literally(tmp_path: Path) -> None:
    """Rich markup must not eat parts of a message, such as a path or an extra's name in brackets."""
    (tmp_path / "Jsons").mkdir()
    (tmp_path / "Jsons" / "user_profile.json").write_text('{"[bold]": {"S1": [7]}}')
    code, _, err = invoke("serve", "--home", str(tmp_path))
    assert code == 2
    assert '$["[bold]"]["S1"][0]' in err
