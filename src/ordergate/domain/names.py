"""What a valid user, strategy or instrument name is (SPEC section 1), in one place.

Names are matched exactly (case-sensitive); they may contain spaces and ``&`` (``L&T``) but must be
non-empty, at most 64 characters long and free of control characters. The same check guards
profiles at load time and orders at the API, so a name that can be stored can always be ordered.
"""

from __future__ import annotations

import re

MAX_NAME_LENGTH = 64
_CONTROL = re.compile(r"[\x00-\x1f\x7f-\x9f]")


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
    return None
