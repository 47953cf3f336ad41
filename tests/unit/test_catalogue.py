"""The catalogue file: the shipped copy is valid; a bad one is refused in one line with its JSON path."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from ordergate.domain.registry import ProfileError
from ordergate.errors import StartupError
from ordergate.tools.catalogue import Catalogue, default_catalogue_path, load_catalogue, parse_catalogue

REPOSITORY_CATALOGUE = Path(__file__).resolve().parents[2] / "Jsons" / "raw_details.json"


def _good() -> dict[str, list[str]]:
    return {"USERS": ["Ann Lee", "Bo Chan"], "STRATEGIES": ["STRATEGY_A"], "INSTRUMENTS": ["ACC", "L&T"]}


def _write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "raw_details.json"
    path.write_text(text, encoding="utf-8")
    return path


def test_shipped_catalogue_contains_the_seed_names() -> None:
    catalogue = load_catalogue(default_catalogue_path())

    assert {"Holland Proctor", "Oaklee Wagner"} <= set(catalogue.users)
    assert {"STRATEGY_A", "STRATEGY_B", "STRATEGY_D"} <= set(catalogue.strategies)
    assert {"BIRLASOFT", "GRASIM", "EICHER", "MINDA", "ACC", "INFY", "L&T", "M&M"} <= set(catalogue.instruments)


def test_shipped_catalogue_has_ten_strategies_and_plenty_of_users_and_instruments() -> None:
    catalogue = load_catalogue(default_catalogue_path())

    assert catalogue.strategies == tuple(f"STRATEGY_{letter}" for letter in "ABCDEFGHIJ")
    assert len(catalogue.users) >= 40
    assert len(catalogue.instruments) >= 50


def test_repository_catalogue_is_identical_to_the_packaged_one() -> None:
    assert REPOSITORY_CATALOGUE.read_bytes() == default_catalogue_path().read_bytes()


def test_catalogue_keeps_file_order() -> None:
    catalogue = parse_catalogue(_good())

    assert catalogue == Catalogue(("Ann Lee", "Bo Chan"), ("STRATEGY_A",), ("ACC", "L&T"))


def test_catalogue_ignores_keys_other_than_the_three_sections() -> None:
    document = {**_good(), "NOTES": "hand edited"}

    assert parse_catalogue(document) == parse_catalogue(_good())


def _with(key: str, value: object) -> dict[str, object]:
    document: dict[str, object] = dict(_good())
    document[key] = value
    return document


def _without(key: str) -> dict[str, object]:
    document: dict[str, object] = dict(_good())
    del document[key]
    return document


@pytest.mark.parametrize(
    ("document", "expected"),
    [
        ([], "$: must be an object with USERS, STRATEGIES and INSTRUMENTS, not a list"),
        (_without("USERS"), '$: missing "USERS" (a list of user names)'),
        (_with("USERS", {"Ann": 1}), '$["USERS"]: must be a list of user names, not an object'),
        (_with("STRATEGIES", []), '$["STRATEGIES"]: must list at least one strategy name'),
        (_with("USERS", ["Ann", "Bo", "Cy", ""]), '$["USERS"][3]: user name must not be empty'),
        (_with("INSTRUMENTS", ["ACC", 7]), '$["INSTRUMENTS"][1]: instrument name must be a string, not int'),
        (
            _with("STRATEGIES", ["S\tA"]),
            '$["STRATEGIES"][0]: strategy name must not contain control characters',
        ),
        (
            _with("INSTRUMENTS", ["X" * 65]),
            '$["INSTRUMENTS"][0]: instrument name must be at most 64 characters (got 65)',
        ),
        (
            _with("INSTRUMENTS", ["ACC", "INFY", "ACC"]),
            '$["INSTRUMENTS"][2]: instrument name \'ACC\' repeats $["INSTRUMENTS"][0]',
        ),
    ],
)
def test_bad_catalogue_is_refused_with_the_json_path_in_one_line(
    tmp_path: Path, document: object, expected: str
) -> None:
    path = _write(tmp_path, json.dumps(document))

    with pytest.raises(StartupError) as caught:
        load_catalogue(path)

    assert str(caught.value) == f"{path}: {expected}"
    assert "\n" not in str(caught.value)


def test_parse_catalogue_reports_the_path_and_the_problem_separately() -> None:
    with pytest.raises(ProfileError) as caught:
        parse_catalogue(_with("USERS", ["Ann", ""]))

    assert caught.value.path == '$["USERS"][1]'
    assert caught.value.problem == "user name must not be empty"


def test_missing_catalogue_names_the_file_and_how_to_create_it(tmp_path: Path) -> None:
    path = tmp_path / "Jsons" / "raw_details.json"

    with pytest.raises(StartupError) as caught:
        load_catalogue(path)

    assert str(caught.value) == f"{path}: catalogue not found; run 'ordergate init' to create it"


def test_catalogue_that_is_not_json_gives_the_parser_line_and_column(tmp_path: Path) -> None:
    path = _write(tmp_path, '{\n  "USERS": [\n    "Ann",\n  ]\n}\n')

    with pytest.raises(StartupError) as caught:
        load_catalogue(path)

    message = str(caught.value)
    assert message.startswith(f"{path}: not valid JSON: ")
    assert message.endswith("(line 4, column 3)")
    assert "\n" not in message


def test_catalogue_that_is_not_utf8_is_refused_with_the_byte_offset(tmp_path: Path) -> None:
    path = tmp_path / "raw_details.json"
    path.write_bytes(b'{"USERS": ["\xff"]}')

    with pytest.raises(StartupError, match=r"not UTF-8 text \(invalid byte at offset 12\)"):
        load_catalogue(path)


def test_catalogue_path_that_is_a_directory_is_refused_in_one_line(tmp_path: Path) -> None:
    with pytest.raises(StartupError, match="cannot read the catalogue"):
        load_catalogue(tmp_path)
