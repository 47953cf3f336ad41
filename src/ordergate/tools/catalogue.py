"""The catalogue (``Jsons/raw_details.json``): the names the generator and the producer draw from.

It is the original kit's ``{"USERS": [...], "STRATEGIES": [...], "INSTRUMENTS": [...]}``. This module
owns reading and validating it, and locating the copy packaged with ordergate that ``ordergate init``
installs. Problems are reported the way profile problems are: one line naming the file, the JSON path
and what to fix.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from importlib.resources import files
from pathlib import Path

from ordergate.domain.names import name_problem
from ordergate.domain.registry import ProfileError, json_path, json_type
from ordergate.errors import StartupError

_SECTIONS = (("USERS", "user"), ("STRATEGIES", "strategy"), ("INSTRUMENTS", "instrument"))


@dataclass(frozen=True, slots=True)
class Catalogue:
    """Every name the tools may draw, in file order (order matters for seeded reproducibility)."""

    users: tuple[str, ...]
    strategies: tuple[str, ...]
    instruments: tuple[str, ...]


def parse_catalogue(document: object) -> Catalogue:
    """Validate a parsed catalogue document, or raise :class:`ProfileError` with the JSON path at fault.

    Keys other than the three sections are ignored so that a catalogue may carry notes of its own.
    """
    if not isinstance(document, dict):
        raise ProfileError("$", f"must be an object with USERS, STRATEGIES and INSTRUMENTS, not {json_type(document)}")
    sections = [_parse_section(document, key, what) for key, what in _SECTIONS]
    return Catalogue(users=sections[0], strategies=sections[1], instruments=sections[2])


def load_catalogue(path: Path) -> Catalogue:
    """Read and validate the catalogue at ``path``; any problem is a one-line :class:`StartupError`."""
    try:
        raw = path.read_bytes()
    except FileNotFoundError:
        raise StartupError(f"{path}: catalogue not found; run 'ordergate init' to create it") from None
    except OSError as exc:
        raise StartupError(f"{path}: cannot read the catalogue: {exc.strerror or exc}") from None
    try:
        text = raw.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        raise StartupError(f"{path}: not UTF-8 text (invalid byte at offset {exc.start})") from None
    try:
        document = json.loads(text)
    except json.JSONDecodeError as exc:
        raise StartupError(f"{path}: not valid JSON: {exc.msg} (line {exc.lineno}, column {exc.colno})") from None
    try:
        return parse_catalogue(document)
    except ProfileError as exc:
        raise StartupError(f"{path}: {exc}") from None


def default_catalogue_path() -> Path:
    """The catalogue shipped inside the package, which ``ordergate init`` copies into a new home.

    ordergate is always installed as plain files (never zipped), so the resource is a real path.
    """
    return Path(str(files("ordergate").joinpath("data", "raw_details.json")))


def _parse_section(document: dict[object, object], key: str, what: str) -> tuple[str, ...]:
    if key not in document:
        raise ProfileError("$", f'missing "{key}" (a list of {what} names)')
    values = document[key]
    if not isinstance(values, list):
        raise ProfileError(json_path(key), f"must be a list of {what} names, not {json_type(values)}")
    if not values:
        raise ProfileError(json_path(key), f"must list at least one {what} name")
    first_seen: dict[str, int] = {}
    for index, value in enumerate(values):
        problem = name_problem(value)
        if problem is not None or not isinstance(value, str):
            raise ProfileError(json_path(key, index), f"{what} name {problem}")
        if value in first_seen:
            raise ProfileError(
                json_path(key, index), f"{what} name {value!r} repeats {json_path(key, first_seen[value])}"
            )
        first_seen[value] = index
    return tuple(first_seen)
