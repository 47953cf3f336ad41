"""``ordergate risk list | set | apply`` and ``ordergate control flatten`` against a real gateway process."""

from __future__ import annotations

from pathlib import Path

import httpx
import orjson
import pytest
from typer.testing import CliRunner

from ordergate.cli import app
from tests.conftest import write_home

runner = CliRunner()

PROFILES = {"Ann": {"S1": ["ACC", "TCS"]}, "Bob": {"S1": ["ACC"], "S2": ["INFY"]}}


@pytest.fixture
def home(tmp_path: Path) -> Path:
    return write_home(tmp_path / "home", PROFILES)


def invoke(*args: str) -> tuple[int, str, str]:
    result = runner.invoke(app, list(args))
    return result.exit_code, result.stdout, result.stderr


def test_risk_set_list_and_apply_a_policy_file(home: Path, tmp_path: Path) -> None:
    from tests.e2e.conftest import GatewayProcess

    gateway = GatewayProcess(home).start()
    url = ["--url", gateway.url]
    try:
        code, out, err = invoke("risk", "set", "--level", "global", "max_open_positions=3", "breaker=5/60", *url)
        assert code == 0, err
        assert "max_open_positions" in out
        code, out, err = invoke("risk", "set", "--level", "user", "--target", "Ann", "cooldown_seconds=30", *url)
        assert code == 0, err
        code, out, _ = invoke("risk", "list", "--json", *url)
        listed = orjson.loads(out)
        assert listed["global"] == {"max_open_positions": 3, "breaker": {"max_rejects": 5, "window_seconds": 60}}
        assert listed["users"] == {"Ann": {"cooldown_seconds": 30}}

        policy = tmp_path / "risk.json"  # the saved answer, edited: what a desk keeps in version control
        listed["global"] = {"max_open_positions": 2}
        listed["strategies"] = {"S2": {"max_orders_per_minute": 10}}
        listed["users"] = {}
        listed["session"] = {"timezone": "Asia/Kolkata", "open": "00:00", "close": "00:00", "days": ["MON", "TUE",
                             "WED", "THU", "FRI", "SAT", "SUN"], "square_off": None}  # fmt: skip
        policy.write_bytes(orjson.dumps(listed))
        code, _, err = invoke("risk", "apply", str(policy), "--dry-run", *url)
        assert code == 0, err
        assert "would PUT /v1/risk/limits" in err
        assert orjson.loads(invoke("risk", "list", "--json", *url)[1])["users"] == {"Ann": {"cooldown_seconds": 30}}
        code, _, err = invoke("risk", "apply", str(policy), *url)
        assert code == 0, err
        applied = orjson.loads(invoke("risk", "list", "--json", *url)[1])
        assert {k: applied[k] for k in ("global", "strategies", "users", "session")} == {
            k: listed[k] for k in ("global", "strategies", "users", "session")
        }
        code, _, err = invoke("risk", "apply", str(policy), *url)
        assert (code, "nothing to change" in err) == (0, True)
    finally:
        gateway.terminate()


@pytest.mark.parametrize(
    ("args", "says"),
    [
        (["risk", "set", "--level", "global", "max_open_positions"], "write NAME=VALUE"),
        (["risk", "set", "--level", "global", "breaker=5-60"], "breaker=5/60"),
        (["risk", "set", "--level", "global", "max_open_positions=three"], "not an integer, null or JSON"),
    ],
)
def test_risk_set_refuses_a_malformed_pair_with_one_line(args: list[str], says: str) -> None:
    code, _, err = invoke(*args, "--url", "http://127.0.0.1:9")
    assert code == 2
    assert says in err
    assert "Traceback" not in err


def test_risk_apply_refuses_a_bad_file_before_sending_anything(tmp_path: Path) -> None:
    policy = tmp_path / "risk.json"
    for content, says in (
        (b"{", "not JSON"),
        (orjson.dumps({"global": {"max_open_positions": -1}}), "limits.max_open_positions"),
        (orjson.dumps({"users": {"Ann": {"max_orders_per_minute": 5}}}), "level 'global' or 'strategy'"),
        (orjson.dumps({"limits": {}}), "limits: not a part of a risk policy"),
    ):
        policy.write_bytes(content)
        code, _, err = invoke("risk", "apply", str(policy), "--url", "http://127.0.0.1:9")
        assert code == 2, err
        assert str(policy) in err
        assert says in err


def test_control_flatten_closes_a_scope_and_can_halt(home: Path) -> None:
    from tests.e2e.conftest import GatewayProcess

    gateway = GatewayProcess(home).start()
    try:
        for order in ({"strategy": "S1", "instrument": "ACC", "side": "BUY"}, {"strategy": "S2", "instrument": "INFY",
                      "side": "BUY"}):  # fmt: skip
            assert httpx.post(f"{gateway.url}/v1/orders", json=order).status_code == 201
        code, out, err = invoke(
            "control", "flatten", "--level", "user", "--target", "Bob", "--yes", "--url", gateway.url
        )
        assert code == 0, err
        assert "2 orders closed 2 positions" in err
        code, out, err = invoke("control", "flatten", "--level", "global", "--then", "halted", "--yes", "--url",
                                gateway.url)  # fmt: skip
        assert code == 0, err
        assert "1 orders closed 1 positions" in err
        assert "HALTED" in out
        assert httpx.get(f"{gateway.url}/v1/positions").json()["items"] == []
        code, _, err = runner.invoke(app, ["control", "flatten", "--level", "global", "--url", gateway.url],
                                     input="n\n").exit_code, "", ""  # fmt: skip
        assert code == 1
    finally:
        gateway.terminate()
