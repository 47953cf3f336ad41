"""Profile files that cannot be used stop start-up with one line naming the file and the JSON path."""

from __future__ import annotations

from pathlib import Path

import pytest

from ordergate.domain.registry import Registry
from ordergate.errors import StartupError
from ordergate.profiles import load_registry


@pytest.mark.parametrize(
    ("content", "message"),
    [
        (b'{"Ann": {"S1": ["ACC"]', "not valid JSON"),
        (b'["Ann"]', "$: must be an object of users, not a list"),
        (b'{"Ann": ["S1"]}', '$["Ann"]: must be an object of strategies, not a list'),
        (b'{"Ann": {"S1": "ACC"}}', '$["Ann"]["S1"]: must be a list of instruments, not a string'),
        (b'{"Ann": {"S1": ["ACC", 7]}}', '$["Ann"]["S1"][1]: instrument name must be a string, not int'),
        (b'{"Ann": {"S1": ["ACC", ""]}}', '$["Ann"]["S1"][1]: instrument name must not be empty'),
        (b'{"": {"S1": ["ACC"]}}', '$[""]: user name must not be empty'),
        (b'{"Ann": {"S\\u0001": []}}', '$["Ann"]["S\\u0001"]: strategy name must not contain control characters'),
        (
            b'{"Ann": {"S1": ["' + b"X" * 65 + b'"]}}',
            '$["Ann"]["S1"][0]: instrument name must be at most 64 characters (got 65)',
        ),
        (b'{"   ": {"S1": ["ACC"]}}', '$["   "]: user name must not start or end with whitespace'),
        (b'{"Ann ": {"S1": ["ACC"]}}', '$["Ann "]: user name must not start or end with whitespace'),
        (b'{"Ann": {"S\\u200b1": ["ACC"]}}', '$["Ann"]["S\\u200b1"]: strategy name must not contain U+200B'),
        (
            b'{"Ann": {"S1": ["ACC", "GRASIM\\u2028order=9"]}}',
            '$["Ann"]["S1"][1]: instrument name must not contain U+2028',
        ),
        (b'{"Ann": {"S1": ["\\u202eACC"]}}', '$["Ann"]["S1"][0]: instrument name must not contain U+202E'),
    ],
)
def test_bad_profile_file_names_the_file_and_the_json_path(tmp_path: Path, content: bytes, message: str) -> None:
    path = tmp_path / "user_profile.json"
    path.write_bytes(content)
    with pytest.raises(StartupError) as caught:
        load_registry(path)
    text = str(caught.value)
    assert text.startswith(f"{path}: ")
    assert message in text
    assert text.isprintable()  # one line, and nothing in it hidden


def test_missing_profile_file_says_how_to_create_it(tmp_path: Path) -> None:
    with pytest.raises(StartupError, match="ordergate generate"):
        load_registry(tmp_path / "user_profile.json")


def test_names_with_spaces_and_ampersands_are_valid(tmp_path: Path) -> None:
    path = tmp_path / "user_profile.json"
    path.write_text('{"Holland Proctor": {"STRATEGY_A": ["L&T", "M&M"]}}')
    registry = load_registry(path)
    assert registry.subscribers("STRATEGY_A")[0].instruments == frozenset({"L&T", "M&M"})


def test_fingerprint_ignores_key_and_list_order() -> None:
    one = Registry.from_document({"A": {"S1": ["X", "Y"]}, "B": {"S2": ["Z"]}})
    two = Registry.from_document({"B": {"S2": ["Z"]}, "A": {"S1": ["Y", "X"]}})
    three = Registry.from_document({"A": {"S1": ["X"]}, "B": {"S2": ["Z"]}})
    assert one.fingerprint == two.fingerprint != three.fingerprint
