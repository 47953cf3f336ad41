"""The embedded engine: one SQLite file owned by one gateway process (:class:`SQLiteStore`), and
read-only snapshots of such a file for ``verify``, exports and totals (:class:`SQLiteLogReader`)."""

from ordergate.store.sqlite.log import SQLiteLogReader
from ordergate.store.sqlite.store import SQLiteStore

__all__ = ["SQLiteLogReader", "SQLiteStore"]
