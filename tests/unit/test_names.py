"""What a name and a side may be (SPEC section 1 and 4): look-alikes are refused, ordinary names are not."""

from __future__ import annotations

import re
import unicodedata

import pytest
from hypothesis import example, given, settings
from hypothesis import strategies as st

from ordergate.domain.model import Side
from ordergate.domain.names import name_pattern, name_problem, side_of

LOOK_ALIKES = [
    ("   ", "must not start or end with whitespace"),
    (" STRATEGY_A", "must not start or end with whitespace"),
    ("STRATEGY_A ", "must not start or end with whitespace"),
    ("\u00a0GRASIM", "must not start or end with whitespace"),
    ("GRASIM\u3000", "must not start or end with whitespace"),
    ("STRATEGY\u200b_A", "U+200B"),  # zero-width space
    ("STRATEGY_A\u202e", "U+202E"),  # right-to-left override
    ("\u2066GRASIM\u2069", "U+2066"),  # bidi isolate
    ("\ufeffGRASIM", "U+FEFF"),  # byte order mark, zero-width no-break space
    ("GR\u00adASIM", "U+00AD"),  # soft hyphen
    ("STRATEGY_A\u2028order=9 ACCEPTED", "U+2028"),  # a line break for readers that split on it
    ("A\u2029B", "U+2029"),
    ("A\ud800B", "U+D800"),  # a lone surrogate
    ("A\x85B", "control characters"),
    ("A\tB", "control characters"),
]


@pytest.mark.parametrize(("name", "problem"), LOOK_ALIKES)
def test_look_alike_names_are_refused_saying_why(name: str, problem: str) -> None:
    found = name_problem(name)
    assert found is not None
    assert problem in found


@pytest.mark.parametrize(
    "name", ["STRATEGY_A", "L&T", "Holland Proctor", "M&M Ltd.", "Zoë Ægir", "株式会社", "A\u00a0B", "x" * 64, "é"]
)
def test_ordinary_names_with_spaces_ampersands_and_letters_of_any_script_are_valid(name: str) -> None:
    assert name_problem(name) is None


def test_empty_long_and_non_string_names_are_refused() -> None:
    assert name_problem("") == "must not be empty"
    assert name_problem("x" * 65) == "must be at most 64 characters (got 65)"
    assert name_problem(7) == "must be a string, not int"


@pytest.mark.parametrize(
    ("text", "side"), [("BUY", Side.BUY), ("buy", Side.BUY), ("Sell", Side.SELL), ("sElL", Side.SELL)]
)
def test_sides_match_in_any_ascii_letter_case(text: str, side: Side) -> None:
    assert side_of(text) is side


@pytest.mark.parametrize(
    "text", ["\u017fell", "\u017fELL", "SELL\u200b", "\uff22\uff35\uff39", "buy ", "HOLD", "", "BUYS"]
)
def test_look_alike_sides_are_not_sides(text: str) -> None:
    assert side_of(text) is None


@settings(max_examples=300, deadline=None)
@given(st.text(max_size=6))
@example("\u017fell")
@example("bUy")
def test_a_side_is_exactly_an_ascii_spelling_of_buy_or_sell(text: str) -> None:
    expected = Side(text.upper()) if text.isascii() and text.upper() in ("BUY", "SELL") else None
    assert side_of(text) is expected


def test_the_documented_pattern_lists_every_forbidden_character() -> None:
    pattern = re.compile(name_pattern())
    forbidden = [
        chr(code)
        for code in range(0x110000)
        if unicodedata.category(chr(code)) in ("Cc", "Cf", "Zl", "Zp") or chr(code).isspace()
    ]
    for char in forbidden:  # alone, first, last: never valid
        assert pattern.fullmatch(char) is None, f"U+{ord(char):04X}"
        assert pattern.fullmatch(f"{char}A") is None
        assert pattern.fullmatch(f"A{char}") is None


@settings(max_examples=500, deadline=None)
@given(st.text(max_size=8))
@example(" A B ")
@example("A\u00a0B")
@example("A\u200bB")
def test_the_documented_pattern_accepts_exactly_the_valid_names(text: str) -> None:
    assert (re.fullmatch(name_pattern(), text) is not None) == (name_problem(text) is None)
