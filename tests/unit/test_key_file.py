"""A key file with a malformed entry is refused with one line naming the file and the entry, at start-up
and on a hot reload, where the keys loaded before stay in force and the problem is logged once."""

from __future__ import annotations

import logging
from collections.abc import Callable
from pathlib import Path
from typing import Any

import orjson
import pytest

from ordergate.errors import StartupError
from ordergate.security.keys import KeyFile, KeyFileError, KeyRing, Role

NOW = "2026-11-24T10:00:00Z"


class FakeClock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def write_keys(path: Path) -> tuple[KeyFile, str, str]:
    """A key file with an admin and a producer key, saved; returns it and both keys."""
    keys, _, admin = KeyFile.new(path).create(Role.ADMIN, name="ops", now=NOW)
    keys, _, producer = keys.create(Role.PRODUCER, name="algo", strategies=["S1"], now=NOW)
    keys.save()
    return keys, admin, producer


def edited(path: Path, change: Callable[[dict[str, Any]], None]) -> None:
    document = orjson.loads(path.read_bytes())
    change(document)
    path.write_bytes(orjson.dumps(document, option=orjson.OPT_INDENT_2))


def entry(index: int, field: str, value: object) -> Callable[[dict[str, Any]], None]:
    def change(document: dict[str, Any]) -> None:
        document["keys"][index][field] = value

    return change


MALFORMED = [
    pytest.param(entry(0, "hash", "zz" * 32), '$["keys"][0]["hash"]: must be 64 hex characters', id="non-hex-hash"),
    pytest.param(entry(1, "hash", "é" * 64), '$["keys"][1]["hash"]: must be 64 hex characters', id="non-ascii-hash"),
    pytest.param(entry(0, "hash", "ab" * 31), '$["keys"][0]["hash"]: must be 64 hex characters', id="short-hash"),
    pytest.param(entry(1, "strategies", ["S1", 7]), '$["keys"][1]["strategies"][1]: strategy name', id="strategy"),
    pytest.param(entry(1, "strategies", "S1"), '$["keys"][1]["strategies"]: must be list', id="strategies-str"),
    pytest.param(entry(0, "name", "ops\u2028x"), '$["keys"][0]["name"]: key name must not contain U+2028', id="name"),
    pytest.param(entry(0, "name", None), '$["keys"][0]["name"]: must be str, not null', id="no-name"),
    pytest.param(entry(0, "role", "root"), '$["keys"][0]["role"]: must be producer, viewer or admin', id="role"),
    pytest.param(entry(0, "user", ["x"]), '$["keys"][0]["user"]: must be str, not a list', id="user"),
    pytest.param(entry(0, "created_at", 5), '$["keys"][0]["created_at"]: must be str', id="created-at"),
    pytest.param(entry(0, "id", "a\u2028b"), '$["keys"][0]["id"]: must be 1 to 64 ASCII letters', id="id"),
    pytest.param(entry(1, "id", "a_b"), '$["keys"][1]["id"]: must be 1 to 64 ASCII letters', id="id-underscore"),
]


@pytest.mark.parametrize(("change", "message"), MALFORMED)
def test_a_malformed_entry_stops_start_up_with_one_line_naming_the_file_and_the_entry(
    tmp_path: Path, change: Callable[[dict[str, Any]], None], message: str
) -> None:
    path = tmp_path / "keys.json"
    write_keys(path)
    edited(path, change)
    with pytest.raises(KeyFileError) as caught:
        KeyRing.load(path)
    assert isinstance(caught.value, StartupError)  # what the CLI and the Scripts/ shim turn into exit 2
    text = str(caught.value)
    assert text.startswith(f"{path}: ")
    assert message in text
    assert text.isprintable()


def test_a_hot_reload_of_a_bad_file_keeps_the_keys_in_force_and_logs_once_per_change(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    path = tmp_path / "keys.json"
    keys, admin, producer = write_keys(path)
    clock = FakeClock()
    ring = KeyRing(KeyFile.load(path), clock=clock)
    caplog.set_level(logging.ERROR, logger="ordergate.security.keys")

    edited(path, entry(0, "hash", "zz" * 32))
    for _ in range(5):  # five seconds of requests against the bad file
        clock.now += 1.5
        assert ring.authenticate(admin) is not None
        assert ring.authenticate(producer) is not None
    errors = [r.getMessage() for r in caplog.records if r.levelno >= logging.ERROR]
    assert len(errors) == 1, errors
    assert '$["keys"][0]["hash"]' in errors[0]
    assert "stay in force" in errors[0]

    edited(path, entry(1, "hash", "yy" * 32))  # a second bad change: logged again, once
    for _ in range(3):
        clock.now += 1.5
        assert ring.authenticate(admin) is not None
    assert len([r for r in caplog.records if r.levelno >= logging.ERROR]) == 2

    revoked, _ = keys.revoke("ops", now=NOW)  # a good file again: it is taken
    revoked.save()
    clock.now += 1.5
    assert ring.authenticate(admin) is None
    assert ring.authenticate(producer) is not None


def test_a_good_reload_takes_new_keys_and_revocations(tmp_path: Path) -> None:
    path = tmp_path / "keys.json"
    keys, admin, _ = write_keys(path)
    clock = FakeClock()
    ring = KeyRing(KeyFile.load(path), clock=clock)
    keys, _, viewer = keys.create(Role.VIEWER, name="risk", user="Ann", now=NOW)
    keys.save()
    principal = ring.authenticate(viewer)  # a key the ring does not know: it looks at the file at once
    assert principal is not None
    assert (principal.role, principal.user) == (Role.VIEWER, "Ann")
    assert ring.authenticate(admin) is not None
