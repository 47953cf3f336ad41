"""How every connection to an ordergate SQLite file is configured, with nothing but the standard library.

The writer process (:mod:`ordergate.store.sqlite.writer_process`) imports this module alone, so that
it starts in tens of milliseconds; :func:`ordergate.store.sqlite.connection.connect` uses the same
function, so the writer, the readers, ``verify`` and exports all see the file the same way.
"""

from __future__ import annotations

import sqlite3
from pathlib import Path

BUSY_TIMEOUT_MS = 5000


def open_connection(path: Path | str, *, fsync_every_commit: bool, read_only: bool = False) -> sqlite3.Connection:
    """A connection with ordergate's pragmas: WAL, ``synchronous`` FULL or NORMAL, busy timeout, foreign keys.

    ``synchronous=FULL`` makes every commit survive power loss; ``NORMAL`` in WAL mode still survives
    a killed process.
    """
    if read_only:
        conn = sqlite3.connect(f"file:{path}?mode=ro", uri=True, isolation_level=None, check_same_thread=False)
    else:
        conn = sqlite3.connect(path, isolation_level=None, check_same_thread=False, cached_statements=2048)
    conn.execute(f"PRAGMA busy_timeout = {BUSY_TIMEOUT_MS}")
    if not read_only:
        conn.execute("PRAGMA journal_mode = WAL")
    conn.execute(f"PRAGMA synchronous = {'FULL' if fsync_every_commit else 'NORMAL'}")
    conn.execute("PRAGMA foreign_keys = ON")
    return conn
