"""Random user profiles as the original kit makes them (SPEC section 5), and writing them safely.

A profile document is ``{user: {strategy: [instrument, ...]}}``. Each strategy of the catalogue gets
one instrument list, drawn once and shared by every subscriber of that strategy; each user subscribes
to a few strategies. When more users are asked for than the catalogue names, synthetic names such as
``User 000041`` fill the rest, so the generator scales to load tests with 100,000 users.
"""

from __future__ import annotations

import contextlib
import os
import random
import stat
import tempfile
from collections.abc import Sequence
from pathlib import Path

import orjson

from ordergate.tools.catalogue import Catalogue

MAX_STRATEGIES_PER_USER = 7
MAX_INSTRUMENTS_PER_STRATEGY = 10
PRETTY_PRINT_MAX_USERS = 1000
_NEW_FILE_MODE = 0o644


def generate_profiles(catalogue: Catalogue, users: int, seed: int | None) -> dict[str, dict[str, list[str]]]:
    """Draw ``users`` distinct profiles; the same catalogue and seed always give the same document.

    ``seed=None`` draws from fresh entropy. Strategies and instruments keep catalogue order inside a
    profile so files are easy to read and diff.
    """
    if users < 1:
        raise ValueError(f"the number of users must be at least 1 (got {users})")
    rng = random.Random(seed)
    strategies = catalogue.strategies
    most_instruments = min(MAX_INSTRUMENTS_PER_STRATEGY, len(catalogue.instruments))
    shared_lists = [_sample_in_order(rng, catalogue.instruments, most_instruments) for _ in strategies]
    most_strategies = min(MAX_STRATEGIES_PER_USER, len(strategies))
    indices = range(len(strategies))
    profiles: dict[str, dict[str, list[str]]] = {}
    for name in _user_names(rng, catalogue.users, users):
        chosen = sorted(rng.sample(indices, rng.randint(1, most_strategies)))
        profiles[name] = {strategies[index]: list(shared_lists[index]) for index in chosen}
    return profiles


def write_profiles(profiles: dict[str, dict[str, list[str]]], path: Path) -> None:
    """Replace ``path`` with ``profiles`` atomically: readers see the old file or the new one, never half.

    Small documents are indented for people; large ones are compact, which keeps a 100,000-user file
    a few megabytes smaller and several times faster to write and to load.
    """
    option = orjson.OPT_INDENT_2 if len(profiles) <= PRETTY_PRINT_MAX_USERS else 0
    _replace_atomically(path, orjson.dumps(profiles, option=option) + b"\n")


def _sample_in_order(rng: random.Random, names: Sequence[str], most: int) -> list[str]:
    chosen = sorted(rng.sample(range(len(names)), rng.randint(1, most)))
    return [names[index] for index in chosen]


def _user_names(rng: random.Random, known: Sequence[str], count: int) -> list[str]:
    """Catalogue names first (a random sample, or all of them shuffled), then synthetic ones."""
    if count <= len(known):
        return rng.sample(known, count)
    names = rng.sample(known, len(known))
    taken = set(known)
    number = len(known)
    while len(names) < count:
        number += 1
        synthetic = f"User {number:06d}"
        if synthetic not in taken:
            names.append(synthetic)
    return names


def _replace_atomically(path: Path, payload: bytes) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    try:
        mode = stat.S_IMODE(path.stat().st_mode)
    except FileNotFoundError:
        mode = _NEW_FILE_MODE
    descriptor, temporary = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(descriptor, "wb") as file:
            file.write(payload)
            file.flush()
            os.fsync(file.fileno())
        os.chmod(temporary, mode)
        os.replace(temporary, path)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(temporary)
        raise
    _fsync_directory(path.parent)


def _fsync_directory(directory: Path) -> None:
    """Make the rename itself durable; Windows cannot open directories and does not need it."""
    if os.name == "nt":
        return
    descriptor = os.open(directory, os.O_RDONLY)
    try:
        os.fsync(descriptor)
    finally:
        os.close(descriptor)
