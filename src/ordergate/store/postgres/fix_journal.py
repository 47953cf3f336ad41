"""The FIX acceptor's journal in the PostgreSQL store's database (schema version 10).

One connection of its own, with ordergate's session settings (:func:`~ordergate.store.postgres.connection.conninfo`:
``synchronous_commit`` on under ``full`` durability, so a recorded message is durable before it is
sent), opened on first use and opened again after it broke. Each record is one transaction. The tables
are created by the store's migrations, which have run when the gateway opened the store. Every failure
is :class:`~ordergate.errors.StoreUnavailable`: the acceptor then sends nothing.

Several gateway processes share the database, so a session logged on at one must be refused at the
others: :meth:`PostgresFixJournal.claim` takes a session-level advisory lock on the session's name, on
a connection of its own held while the session is logged on (closing it, or the process dying, lets
the lock go). A claim connection that breaks loses its lock; the session goes on (its writes still
go through the journal connection) until its connection closes.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Sequence
from typing import Any, TypeVar

import psycopg

from ordergate.errors import StoreUnavailable
from ordergate.fix.journal import SentMessage
from ordergate.fix.session import FRESH, SessionKey, SessionState
from ordergate.store.base import Durability
from ordergate.store.postgres.connection import conninfo, display_url, lock_key, problem_of

R = TypeVar("R")
Connection = psycopg.AsyncConnection[Any]
LOCK_SPACE_FIX_SESSION = 0x4F470010
"""The advisory-lock space of FIX sessions, apart from the store's (``LOCK_SPACE_SCHEMA`` + 0 to 2)."""


class PostgresFixJournal:
    """The :class:`~ordergate.fix.journal.FixJournal` of a PostgreSQL store."""

    def __init__(self, url: str, durability: Durability = Durability.FULL) -> None:
        self._conninfo = conninfo(url, durability)
        self._where = display_url(url)
        self._conn: Connection | None = None
        self._lock = asyncio.Lock()
        self._closed = False
        self._claims: dict[SessionKey, Connection] = {}

    async def open(self) -> None:
        self._closed = False

    async def close(self) -> None:
        self._closed = True
        for key in list(self._claims):
            await self.release(key)
        async with self._lock:
            conn, self._conn = self._conn, None
            if conn is not None:
                await conn.close()

    async def load(self, key: SessionKey) -> SessionState:
        async def load(conn: Connection) -> SessionState:
            cursor = await conn.execute(
                "SELECT next_in, next_out FROM fix_sessions WHERE counterparty = %s AND acceptor = %s", key
            )
            row = await cursor.fetchone()
            return SessionState(int(row[0]), int(row[1])) if row is not None else FRESH

        return await self._run(load)

    async def record(self, key: SessionKey, state: SessionState, sent: Sequence[SentMessage]) -> None:
        async def record(conn: Connection) -> None:
            async with conn.transaction():
                await conn.execute(
                    "INSERT INTO fix_sessions (counterparty, acceptor, next_in, next_out) VALUES (%s, %s, %s, %s)"
                    " ON CONFLICT (counterparty, acceptor) DO UPDATE"
                    " SET next_in = excluded.next_in, next_out = excluded.next_out",
                    (*key, *state),
                )
                if sent:
                    async with conn.cursor() as cursor:
                        await cursor.executemany(
                            "INSERT INTO fix_messages (counterparty, acceptor, seq, frame) VALUES (%s, %s, %s, %s)"
                            " ON CONFLICT (counterparty, acceptor, seq) DO UPDATE SET frame = excluded.frame",
                            [(*key, seq, frame) for seq, frame in sent],
                        )

        await self._run(record)

    async def sent_between(self, key: SessionKey, begin: int, end: int) -> list[SentMessage]:
        async def read(conn: Connection) -> list[SentMessage]:
            cursor = await conn.execute(
                "SELECT seq, frame FROM fix_messages WHERE counterparty = %s AND acceptor = %s"
                " AND seq BETWEEN %s AND %s ORDER BY seq",
                (*key, begin, end),
            )
            return [(int(seq), bytes(frame)) for seq, frame in await cursor.fetchall()]

        return await self._run(read)

    async def reset(self, key: SessionKey) -> None:
        async def reset(conn: Connection) -> None:
            async with conn.transaction():
                await conn.execute("DELETE FROM fix_messages WHERE counterparty = %s AND acceptor = %s", key)
                await conn.execute("DELETE FROM fix_sessions WHERE counterparty = %s AND acceptor = %s", key)

        await self._run(reset)

    async def claim(self, key: SessionKey) -> bool:
        if key in self._claims:
            return True
        try:
            conn = await psycopg.AsyncConnection.connect(self._conninfo, autocommit=True)
            cursor = await conn.execute(
                "SELECT pg_try_advisory_lock(%s, %s)", (LOCK_SPACE_FIX_SESSION, lock_key(str(key)))
            )
            row = await cursor.fetchone()
        except psycopg.Error as exc:
            raise StoreUnavailable(f"the FIX journal of {self._where} cannot claim {key}: {problem_of(exc)}") from exc
        if row is None or not row[0]:
            await conn.close()
            return False
        self._claims[key] = conn
        return True

    async def release(self, key: SessionKey) -> None:
        conn = self._claims.pop(key, None)
        if conn is not None:
            await conn.close()  # the lock is the connection's: closing it lets the session go

    async def _run(self, work: Callable[[Connection], Awaitable[R]]) -> R:
        if self._closed:
            raise StoreUnavailable(f"the FIX journal of {self._where} is closed")
        async with self._lock:
            try:
                if self._conn is None or self._conn.closed:
                    self._conn = await psycopg.AsyncConnection.connect(self._conninfo, autocommit=True)
                return await work(self._conn)
            except psycopg.Error as exc:
                conn, self._conn = self._conn, None
                if conn is not None:
                    await conn.close()
                raise StoreUnavailable(f"the FIX journal of {self._where} cannot store: {problem_of(exc)}") from exc
