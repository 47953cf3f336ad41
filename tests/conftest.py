"""Shared fixtures: profile documents and homes on disk."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import orjson
import pytest

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
