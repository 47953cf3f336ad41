"""The hooks file and the hooks a running gateway holds: only hashes are kept, a token is found in memory
by its id and checked in constant time, and a change of the file (a new hook, a revoked one, a broken
file) is picked up at the next look (every half second, and at once for a token the ring does not know),
without reading an unchanged file per request."""

from __future__ import annotations

import logging
from pathlib import Path

import orjson
import pytest

from ordergate.security.hooks import HookFile, HookFileError, HookRing, default_hooks_file
from ordergate.security.keys import Role
from ordergate.security.secrets_file import RELOAD_CHECK_SECONDS

NOW = "2026-12-03T09:00:00Z"


class FakeClock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def test_a_hook_is_kept_as_a_hash_and_acts_as_a_producer_of_its_strategy_named_as_the_hook(tmp_path: Path) -> None:
    path = default_hooks_file(tmp_path)
    hooks, hook, token = HookFile.new(path).create("S1", name="tv", now=NOW)
    hooks.save()
    assert path == tmp_path / "Jsons" / "hooks.json"
    assert path.stat().st_mode & 0o777 == 0o600
    assert token not in path.read_text()
    assert token.startswith(f"wh_{hook.hook_id}_")
    ring = HookRing(path)
    assert ring.find(token) == hook
    principal = hook.principal()
    assert (principal.name, principal.role, principal.strategies) == ("tv", Role.PRODUCER, frozenset({"S1"}))
    assert principal.may_order("S1")
    assert not principal.may_order("S2")
    other = token[:-1] + ("A" if token[-1] != "A" else "B")
    for wrong in (other, f"wh_{hook.hook_id}_", "wh__x", "og_" + token[3:], "", token + "x"):
        assert ring.find(wrong) is None, wrong


def test_no_file_is_no_hooks_and_a_hook_made_later_answers_on_its_first_use(tmp_path: Path) -> None:
    path = tmp_path / "hooks.json"
    clock = FakeClock()
    ring = HookRing(path, clock=clock)
    assert ring.active_hooks == 0
    hooks, hook, token = HookFile.new(path).create("S1", now=NOW)
    hooks.save()
    # the ring looked at the file a moment ago, but a token it does not know makes it look again at once
    assert ring.find(token) == hook
    assert hook.name == f"hook-{hook.hook_id}"
    hooks, second, second_token = HookFile.load(path).create("S2", now=NOW)
    hooks.save()
    assert ring.find(second_token) == second  # no time passed at all
    assert ring.find(token) == hook


def test_a_revoked_hook_is_refused_at_the_next_look_and_others_stay(tmp_path: Path) -> None:
    path = tmp_path / "hooks.json"
    hooks, _, gone_token = HookFile.new(path).create("S1", name="a", now=NOW)
    hooks, kept, kept_token = hooks.create("S2", name="b", now=NOW)
    hooks.save()
    clock = FakeClock()
    ring = HookRing(path, clock=clock)
    revoked_file, revoked = HookFile.load(path).revoke("a", now=NOW)
    revoked_file.save()
    assert revoked.revoked_at == NOW
    clock.now += RELOAD_CHECK_SECONDS
    assert ring.find(gone_token) is None
    assert ring.find(kept_token) == kept
    assert [h.is_active for h in HookFile.load(path).hooks] == [False, True]


def test_a_broken_file_stops_start_up_naming_the_entry_and_on_reload_keeps_the_hooks_and_logs_once(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    path = tmp_path / "hooks.json"
    hooks, hook, token = HookFile.new(path).create("S1", now=NOW)
    hooks.save()
    clock = FakeClock()
    ring = HookRing(path, clock=clock)
    document = orjson.loads(path.read_bytes())
    document["hooks"][0]["strategy"] = "bad\nname"
    path.write_bytes(orjson.dumps(document))
    with pytest.raises(HookFileError) as raised:
        HookRing(path)
    assert str(raised.value).startswith(f'{path}: $["hooks"][0]["strategy"]: strategy ')
    caplog.set_level(logging.ERROR, logger="ordergate.security.hooks")
    for _ in range(3):
        clock.now += RELOAD_CHECK_SECONDS
        assert ring.find(token) == hook  # the hooks loaded before stay in force
    assert len([r for r in caplog.records if "cannot be used" in r.getMessage()]) == 1


@pytest.mark.parametrize(
    ("document", "where"),
    [
        ([], "$: must be an object"),
        ({"version": 2, "secret": "00" * 32, "hooks": []}, '$["version"]: must be 1'),
        ({"version": 1, "secret": "zz", "hooks": []}, '$["secret"]: must be a hex string'),
        ({"version": 1, "secret": "00" * 32, "hooks": {}}, '$["hooks"]: must be a list'),
        ({"version": 1, "secret": "00" * 32, "hooks": [{"id": "a b"}]}, '$["hooks"][0]["id"]: must be 1 to 64'),
        (
            {"version": 1, "secret": "00" * 32, "hooks": [
                {"id": "a", "name": "n", "strategy": "S", "hash": "00", "created_at": NOW}]},
            '$["hooks"][0]["hash"]: must be 64 hex characters',
        ),
        (
            {"version": 1, "secret": "00" * 32, "hooks": [
                {"id": "a", "name": "n", "strategy": "S", "hash": "0" * 64}]},
            '$["hooks"][0]["created_at"]: must be a string',
        ),
    ],
)  # fmt: skip
def test_every_malformed_file_is_one_line_naming_the_place(tmp_path: Path, document: object, where: str) -> None:
    path = tmp_path / "hooks.json"
    path.write_bytes(orjson.dumps(document))
    with pytest.raises(HookFileError) as raised:
        HookFile.load(path)
    assert str(raised.value).startswith(f"{path}: {where}")


def test_names_must_be_names_and_an_active_name_is_unique(tmp_path: Path) -> None:
    hooks, _, _ = HookFile.new(tmp_path / "h.json").create("S1", name="tv", now=NOW)
    with pytest.raises(ValueError, match="an active hook is named 'tv' already"):
        hooks.create("S2", name="tv", now=NOW)
    with pytest.raises(ValueError, match="strategy"):
        hooks.create("", now=NOW)
    with pytest.raises(ValueError, match="no hook has the id or name 'x'"):
        hooks.revoke("x", now=NOW)
    revoked, _ = hooks.revoke("tv", now=NOW)
    again, second, _ = revoked.create("S2", name="tv", now=NOW)
    assert again.revoke("tv", now=NOW)[1].hook_id == second.hook_id  # the active one of that name


def test_unknown_tokens_look_at_the_file_but_read_it_only_once_per_change(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    path = tmp_path / "hooks.json"
    hooks, hook, token = HookFile.new(path).create("S1", now=NOW)
    hooks.save()
    ring = HookRing(path, clock=FakeClock())
    loads: list[Path] = []
    load = HookFile.load
    monkeypatch.setattr(HookFile, "load", lambda p: loads.append(p) or load(p))
    for guess in range(100):  # a guesser's misses: one stat each, no read of an unchanged file
        assert ring.find(f"wh_{guess:012x}_x") is None
    assert loads == []
    hooks, made, made_token = HookFile.load(path).create("S2", now=NOW)
    hooks.save()
    loads.clear()
    for _ in range(3):
        assert ring.find(made_token) == made
        assert ring.find("wh_000000000000_x") is None
    assert ring.find(token) == hook
    assert loads == [path]
