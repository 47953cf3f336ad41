"""The embedded engine: one SQLite file owned by one gateway process (:class:`SQLiteStore`), and
read-only snapshots of such a file for ``verify``, exports and totals (:class:`SQLiteLogReader`).

The names are imported on first use, so that the writer process
(:mod:`ordergate.store.sqlite.writer_process`) starts without importing the rest of ordergate.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from ordergate.store.sqlite.log import SQLiteLogReader
    from ordergate.store.sqlite.store import SQLiteStore

__all__ = ["SQLiteLogReader", "SQLiteStore"]

_HOMES = {"SQLiteLogReader": "ordergate.store.sqlite.log", "SQLiteStore": "ordergate.store.sqlite.store"}


def __getattr__(name: str) -> Any:
    if name in _HOMES:
        return getattr(importlib.import_module(_HOMES[name]), name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
