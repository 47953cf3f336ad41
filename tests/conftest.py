"""Shared fixtures: profile documents and homes on disk."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import orjson
import pytest

# pytest-xdist's workers run with COLUMNS=80, and a Rich console made at import (the CLI's) would fix
# its width from it: without it, each CLI invocation sizes its tables from its own environment.
os.environ.pop("COLUMNS", None)

SEED_PROFILES: dict[str, dict[str, list[str]]] = {
    "Holland Proctor": {"STRATEGY_A": ["BIRLASOFT", "GRASIM", "EICHER"], "STRATEGY_B": ["MINDA"]},
    "Oaklee Wagner": {"STRATEGY_D": ["ACC"]},
}


def write_home(home: Path, profiles: Any) -> Path:
    """A home folder whose Jsons/user_profile.json holds ``profiles`` (written as given)."""
    (home / "Jsons").mkdir(parents=True, exist_ok=True)
    raw = profiles if isinstance(profiles, bytes) else orjson.dumps(profiles)
    (home / "Jsons" / "user_profile.json").write_bytes(raw)
    return home


@pytest.fixture
def seed_home(tmp_path: Path) -> Path:
    return write_home(tmp_path / "home", SEED_PROFILES)


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """The ``heavy`` tests first (a stable sort, otherwise in collection order): with pytest-xdist's
    work stealing the other workers share out the many short tests meanwhile, instead of one worker
    starting a minute-long test when everything else is done."""
    items.sort(key=lambda item: item.get_closest_marker("heavy") is None)
