"""What a valid user, strategy or instrument name is, and how a side is spelt (SPEC sections 1 and 4), in one place.

Names are matched exactly (case-sensitive); they may contain spaces, ``&`` (``L&T``) and letters of
any script, but must be non-empty, at most 64 characters long and free of control characters. They
must also not be able to pass for another name or forge a line in a log: no whitespace at either
end (so no name of spaces only), no Unicode format characters (category Cf: zero-width characters,
bidirectional overrides and isolates, the soft hyphen), no line or paragraph separators (U+2028,
U+2029) and no surrogates. The same check guards profiles at load time, orders and query filters
at the API and names in the key file, so a name that can be stored can always be ordered, and a
name refused in one place is refused in all.

A side is ``BUY`` or ``SELL`` in any *ASCII* letter case. Python's ``str.upper()`` alone would also
turn look-alikes into ``SELL``, such as ``sell`` spelt with U+017F (the long s), so :func:`side_of`
only folds ASCII text.
"""

from __future__ import annotations

import functools
import re
import unicodedata

from ordergate.domain.model import Side

MAX_NAME_LENGTH = 64
_CONTROL = re.compile(r"[\x00-\x1f\x7f-\x9f]")
_HIDDEN = {
    "Cf": "an invisible format character",
    "Zl": "a line separator",
    "Zp": "a paragraph separator",
    "Cs": "a surrogate",
}
"""Unicode categories a name may not hold (beyond controls), with how the refusal names them."""
_SIDES = {"BUY": Side.BUY, "SELL": Side.SELL}


def name_problem(value: object) -> str | None:
    """Return why ``value`` is not a valid name, or ``None`` when it is one."""
    if not isinstance(value, str):
        return f"must be a string, not {type(value).__name__}"
    if not value:
        return "must not be empty"
    if len(value) > MAX_NAME_LENGTH:
        return f"must be at most {MAX_NAME_LENGTH} characters (got {len(value)})"
    if _CONTROL.search(value):
        return "must not contain control characters"
    if not value.isascii():  # every ASCII character left is printable: most names skip this
        for char in value:
            what = _HIDDEN.get(unicodedata.category(char))
            if what is not None:
                return f"must not contain U+{ord(char):04X} ({what})"
    if value[0].isspace() or value[-1].isspace():
        return "must not start or end with whitespace"
    return None


def side_of(value: str) -> Side | None:
    """The side ``value`` spells in any ASCII letter case (``buy``, ``Sell``), or ``None``."""
    return _SIDES.get(value.upper()) if value.isascii() else None


def shown(text: str) -> str:
    """``text`` as it can be shown inside one line: characters a name may not hold become escapes (``\\u200b``)."""
    if text.isascii() and _CONTROL.search(text) is None:
        return text
    return "".join(_escaped(char) for char in text)


def _escaped(char: str) -> str:
    code = ord(char)
    if not _is_forbidden(char) or char == " ":
        return char
    if code > 0xFFFF:  # as JSON writes it: a surrogate pair
        code -= 0x10000
        return f"\\u{0xD800 + (code >> 10):04x}\\u{0xDC00 + (code & 0x3FF):04x}"
    return f"\\u{code:04x}"


def _is_forbidden(char: str) -> bool:
    """Whether ``char`` may not appear in a name (``whitespace`` counts: it may not start or end one)."""
    return unicodedata.category(char) in ("Cc", *_HIDDEN) or char.isspace()


@functools.cache
def name_pattern() -> str:
    """The rule of :func:`name_problem` but the length, as a regular expression (for the OpenAPI document).

    It is derived from this Python's Unicode database (a scan of every code point, about 0.2 s, done
    once when the API document is first built), so it lists exactly the characters the check refuses.
    Surrogates are left out: no JSON or UTF-8 text can carry one alone, and regex engines that work
    on Unicode scalar values (Rust's, used by JSON Schema validators) refuse them in a pattern.
    """
    hidden: list[int] = []
    spaces: list[int] = []
    for code in range(0x110000):
        char = chr(code)
        category = unicodedata.category(char)
        if category == "Cs":
            continue
        if category in ("Cc", *_HIDDEN):
            hidden.append(code)
        elif char.isspace():
            spaces.append(code)
    never = _char_class(hidden)
    return f"^[^{_char_class(spaces)}{never}](?:[^{never}]*[^{_char_class(spaces)}{never}])?$"


def _char_class(codes: list[int]) -> str:
    """Code points as the inside of a character class, in ranges, written so Python, ECMA and Rust agree."""
    ranges: list[tuple[int, int]] = []
    for code in codes:
        if ranges and ranges[-1][1] == code - 1:
            ranges[-1] = (ranges[-1][0], code)
        else:
            ranges.append((code, code))

    def one(code: int) -> str:
        if code <= 0xFF:
            return f"\\x{code:02x}"
        return f"\\u{code:04x}" if code <= 0xFFFF else chr(code)  # astral: the character itself

    return "".join(one(low) if low == high else f"{one(low)}-{one(high)}" for low, high in ranges)
