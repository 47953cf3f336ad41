"""The FIX acceptor's journal in the embedded store's SQLite file (schema version 8).

Its own connection, on a thread of its own (a :class:`~ordergate.store.sqlite.lanes.ReadLane` of one
thread, here writing), with the store's pragmas: ``synchronous=FULL`` under ``full`` durability, so a
recorded message survives power loss before it is sent. The store's writer process writes orders to
the same file; WAL lets one writer at a time, so a journal write waits (busy timeout) behind a group
commit, a few milliseconds at most. The tables are created by the store's migrations, which have run
when the gateway opened the store, before any FIX session. Every failure is
:class:`~ordergate.errors.StoreUnavailable`: the acceptor then sends nothing.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import TypeVar

from ordergate.errors import StoreUnavailable
from ordergate.fix.journal import SentMessage
from ordergate.fix.session import FRESH, SessionKey, SessionState
from ordergate.store.base import Durability
from ordergate.store.sqlite.connection import connect
from ordergate.store.sqlite.lanes import LaneClosed, ReadLane

R = TypeVar("R")


class SQLiteFixJournal:
    """The :class:`~ordergate.fix.journal.FixJournal` of an SQLite store."""

    def __init__(self, path: Path, durability: Durability = Durability.FULL) -> None:
        self.path = path
        self.durability = durability
        self._lane: ReadLane | None = None

    async def open(self) -> None:
        self._lane = ReadLane("ordergate-fix-journal", 1, lambda: connect(self.path, self.durability))

    async def close(self) -> None:
        lane, self._lane = self._lane, None
        if lane is not None:
            lane.close()

    async def load(self, key: SessionKey) -> SessionState:
        def load(conn: sqlite3.Connection) -> SessionState:
            row = conn.execute(
                "SELECT next_in, next_out FROM fix_sessions WHERE counterparty = ? AND acceptor = ?", key
            ).fetchone()
            return SessionState(int(row[0]), int(row[1])) if row is not None else FRESH

        return await self._run(load)

    async def record(self, key: SessionKey, state: SessionState, sent: Sequence[SentMessage]) -> None:
        def record(conn: sqlite3.Connection) -> None:
            conn.execute("BEGIN IMMEDIATE")
            try:
                conn.execute(
                    "INSERT INTO fix_sessions (counterparty, acceptor, next_in, next_out) VALUES (?, ?, ?, ?)"
                    " ON CONFLICT (counterparty, acceptor) DO UPDATE"
                    " SET next_in = excluded.next_in, next_out = excluded.next_out",
                    (*key, *state),
                )
                conn.executemany(
                    "INSERT OR REPLACE INTO fix_messages (counterparty, acceptor, seq, frame) VALUES (?, ?, ?, ?)",
                    [(*key, seq, frame) for seq, frame in sent],
                )
                conn.execute("COMMIT")
            except BaseException:
                if conn.in_transaction:
                    conn.execute("ROLLBACK")
                raise

        await self._run(record)

    async def sent_between(self, key: SessionKey, begin: int, end: int) -> list[SentMessage]:
        def read(conn: sqlite3.Connection) -> list[SentMessage]:
            rows = conn.execute(
                "SELECT seq, frame FROM fix_messages WHERE counterparty = ? AND acceptor = ? AND seq BETWEEN ? AND ?"
                " ORDER BY seq",
                (*key, begin, end),
            ).fetchall()
            return [(int(seq), bytes(frame)) for seq, frame in rows]

        return await self._run(read)

    async def reset(self, key: SessionKey) -> None:
        def reset(conn: sqlite3.Connection) -> None:
            conn.execute("BEGIN IMMEDIATE")
            try:
                conn.execute("DELETE FROM fix_messages WHERE counterparty = ? AND acceptor = ?", key)
                conn.execute("DELETE FROM fix_sessions WHERE counterparty = ? AND acceptor = ?", key)
                conn.execute("COMMIT")
            except BaseException:
                if conn.in_transaction:
                    conn.execute("ROLLBACK")
                raise

        await self._run(reset)

    async def claim(self, key: SessionKey) -> bool:
        return True  # the store is owned by one process (its lock file): the acceptor's registry suffices

    async def release(self, key: SessionKey) -> None:
        return None

    async def _run(self, work: Callable[[sqlite3.Connection], R]) -> R:
        lane = self._lane
        if lane is None:
            raise StoreUnavailable(f"the FIX journal of {self.path} is closed")
        try:
            return await lane.run(work)
        except (sqlite3.Error, LaneClosed) as exc:
            raise StoreUnavailable(f"the FIX journal of {self.path} cannot store: {exc}") from exc
