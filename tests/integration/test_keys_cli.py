"""``ordergate keys create | list | revoke`` and the key file they keep (hashes only, owner-readable)."""

from __future__ import annotations

import stat
from pathlib import Path

import orjson
from typer.testing import CliRunner

from ordergate.cli import app
from ordergate.security.exposure import exposure_warning, host_from_argv, is_loopback
from ordergate.security.keys import KeyRing, Role

runner = CliRunner()


def keys(*args: str) -> tuple[int, str, str]:
    result = runner.invoke(app, ["keys", *args])
    return result.exit_code, result.stdout, result.stderr


def test_create_prints_the_key_once_alone_on_the_last_line_and_stores_only_its_hash(tmp_path: Path) -> None:
    keyfile = tmp_path / "keys.json"
    code, out, err = keys("create", "--role", "producer", "--strategy", "S1", "--name", "algo", "--file", str(keyfile))
    assert code == 0, err
    key = out.splitlines()[-1]
    assert key.startswith("og_")
    assert key == out.strip()
    assert "shown once" in err
    text = keyfile.read_text()
    assert key not in text
    assert key.split("_")[-1] not in text
    assert stat.S_IMODE(keyfile.stat().st_mode) == 0o600
    principal = KeyRing.load(keyfile).authenticate(key)
    assert principal is not None
    assert (principal.role, principal.strategies, principal.name) == (Role.PRODUCER, frozenset({"S1"}), "algo")
    assert KeyRing.load(keyfile).authenticate(key[:-1] + ("A" if key[-1] != "A" else "B")) is None


def test_list_and_revoke_by_name_or_id(tmp_path: Path) -> None:
    keyfile = str(tmp_path / "keys.json")
    keys("create", "--role", "viewer", "--user", "Ann", "--name", "ann", "--file", keyfile)
    code, out, _ = keys("create", "--role", "admin", "--name", "ops", "--file", keyfile)
    admin = out.splitlines()[-1]
    code, out, _ = keys("list", "--json", "--file", keyfile)
    listed = orjson.loads(out)
    assert [(k["name"], k["role"], k["user"], k["revoked_at"]) for k in listed] == [
        ("ann", "viewer", "Ann", None),
        ("ops", "admin", None, None),
    ]
    assert all("hash" not in k for k in listed)
    code, out, _ = keys("revoke", listed[1]["id"], "--file", keyfile)
    assert code == 0
    assert "revoked" in out
    assert KeyRing.load(Path(keyfile)).authenticate(admin) is None
    code, _, err = keys("revoke", "ops", "--file", keyfile)
    assert code == 2
    assert "already revoked" in err
    code, out, _ = keys("list", "--file", keyfile)
    assert code == 0
    assert "1 active, 1 revoked" in out


def test_create_refuses_limits_that_do_not_fit_the_role_and_a_broken_file_is_named(tmp_path: Path) -> None:
    keyfile = tmp_path / "keys.json"
    code, _, err = keys("create", "--role", "admin", "--user", "Ann", "--file", str(keyfile))
    assert code == 2
    assert "--user binds a viewer key" in err
    code, _, err = keys("create", "--role", "viewer", "--strategy", "S1", "--file", str(keyfile))
    assert code == 2
    assert "--strategy limits a producer key" in err
    assert not keyfile.exists()
    keyfile.write_text('{"version": 1, "secret": "00", "keys": []}')
    code, _, err = keys("list", "--file", str(keyfile))
    assert code == 2
    assert '$["secret"]' in err
    code, _, err = keys("revoke", "nobody", "--file", str(tmp_path / "missing.json"))
    assert code == 2
    assert "key file not found" in err


def test_serve_with_a_broken_key_file_stops_with_one_line(seed_home: Path) -> None:
    keyfile = seed_home / "keys.json"
    keyfile.write_text("[]")
    result = runner.invoke(app, ["serve", "--home", str(seed_home), "--auth", str(keyfile), "--port", "0"])
    assert result.exit_code == 2
    assert "keys.json: $: must be an object" in result.stderr.replace("\n", "")


def test_only_loopback_without_auth_goes_without_a_warning() -> None:
    assert is_loopback("127.0.0.1")
    assert is_loopback("localhost")
    assert is_loopback("::1")
    assert is_loopback("[::1]")
    assert not is_loopback("0.0.0.0")
    assert not is_loopback("10.1.2.3")
    assert not is_loopback("gateway.example")
    assert exposure_warning("127.0.0.1", None) is None
    assert exposure_warning("0.0.0.0", Path("keys.json")) is None
    warning = exposure_warning("0.0.0.0", None)
    assert warning is not None
    assert "without --auth" in warning
    assert host_from_argv(["uvicorn", "Scripts.Order_Handler:app", "--host", "0.0.0.0"]) == "0.0.0.0"
    assert host_from_argv(["uvicorn", "x:app", "--host=::"]) == "::"
    assert host_from_argv(["uvicorn", "x:app"]) is None


def test_serve_with_a_non_hex_hash_in_the_key_file_exits_2_naming_the_entry(seed_home: Path) -> None:
    keyfile = seed_home / "keys.json"
    assert keys("create", "--role", "admin", "--file", str(keyfile))[0] == 0
    document = orjson.loads(keyfile.read_bytes())
    document["keys"][0]["hash"] = "g" * 64
    keyfile.write_bytes(orjson.dumps(document))
    result = runner.invoke(app, ["serve", "--home", str(seed_home), "--auth", str(keyfile), "--port", "0"])
    assert result.exit_code == 2, result.output
    assert result.exception is None or isinstance(result.exception, SystemExit)
    line = result.stderr.replace("\n", "")
    assert 'keys.json: $["keys"][0]["hash"]: must be 64 hex characters' in line
    assert "Traceback" not in result.stderr
