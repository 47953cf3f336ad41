"""The FIX acceptor's journal in the embedded store's SQLite file (schema version 8).

Its own connection, on a thread of its own (a :class:`~ordergate.store.sqlite.lanes.ReadLane` of one
thread, here writing), with the store's pragmas: ``synchronous=FULL`` under ``full`` durability, so a
recorded message survives power loss before it is sent. The tables are created by the store's
migrations, which have run when the gateway opened the store, before any FIX session. Every failure is
:class:`~ordergate.errors.StoreUnavailable`: the acceptor then sends nothing.

Two things keep it from adding much to an order's answer. Records are committed in groups: the
records of every session that arrive while a transaction runs go into the next one (one fsync for
all). And the store's writer process writes orders to the same file, which WAL lets one writer at a
time: SQLite's own busy handler would sleep 1, 2, 5, 10 ms and more between tries, so the journal's
connection takes the write lock with a busy timeout of 0 and tries again every :data:`RETRY_SECONDS`
itself (for at most :data:`LOCK_WAIT_SECONDS`), beginning as soon as a group commit ends.
"""

from __future__ import annotations

import asyncio
import functools
import sqlite3
import time
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
RETRY_SECONDS = 0.0002
LOCK_WAIT_SECONDS = 5.0
Record = tuple[SessionKey, SessionState, Sequence[SentMessage]]


def _connect(path: Path, durability: Durability) -> sqlite3.Connection:
    conn = connect(path, durability)
    conn.execute("PRAGMA busy_timeout = 0")  # the journal waits for the write lock itself (_begin)
    return conn


def _begin(conn: sqlite3.Connection) -> None:
    """``BEGIN IMMEDIATE``, tried again every :data:`RETRY_SECONDS` while another writer holds the lock."""
    deadline = time.monotonic() + LOCK_WAIT_SECONDS
    while True:
        try:
            conn.execute("BEGIN IMMEDIATE")
            return
        except sqlite3.OperationalError as exc:
            if ("locked" not in str(exc) and "busy" not in str(exc)) or time.monotonic() >= deadline:
                raise
            time.sleep(RETRY_SECONDS)


class SQLiteFixJournal:
    """The :class:`~ordergate.fix.journal.FixJournal` of an SQLite store."""

    def __init__(self, path: Path, durability: Durability = Durability.FULL) -> None:
        self.path = path
        self.durability = durability
        self._lane: ReadLane | None = None
        self._waiting: list[tuple[Record, asyncio.Future[None]]] = []
        self._committing: asyncio.Task[None] | None = None

    async def open(self) -> None:
        self._lane = ReadLane("ordergate-fix-journal", 1, lambda: _connect(self.path, self.durability))

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
        future: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self._waiting.append(((key, state, sent), future))
        if self._committing is None or self._committing.done():
            self._committing = asyncio.create_task(self._commit_groups())
        await future

    async def _commit_groups(self) -> None:
        """Commit what is waiting as one transaction, then what came meanwhile, until nothing waits."""
        while self._waiting:
            group, self._waiting = self._waiting, []
            try:
                await self._run(functools.partial(_write, [record for record, _ in group]))
            except Exception as exc:  # StoreUnavailable, or a bug: every waiter learns it, none hangs
                for _, future in group:
                    if not future.done():
                        future.set_exception(exc)
            else:
                for _, future in group:
                    if not future.done():
                        future.set_result(None)

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
            _begin(conn)
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


def _write(records: Sequence[Record], conn: sqlite3.Connection) -> None:
    """The counters and messages of ``records`` (of any sessions, in order), as one transaction."""
    _begin(conn)
    try:
        conn.executemany(
            "INSERT INTO fix_sessions (counterparty, acceptor, next_in, next_out) VALUES (?, ?, ?, ?)"
            " ON CONFLICT (counterparty, acceptor) DO UPDATE"
            " SET next_in = excluded.next_in, next_out = excluded.next_out",
            [(*key, *state) for key, state, _ in records],
        )
        conn.executemany(
            "INSERT OR REPLACE INTO fix_messages (counterparty, acceptor, seq, frame) VALUES (?, ?, ?, ?)",
            [(*key, seq, frame) for key, _, sent in records for seq, frame in sent],
        )
        conn.execute("COMMIT")
    except BaseException:
        if conn.in_transaction:
            conn.execute("ROLLBACK")
        raise
