"""The SQLite writer process: runs every write of one store, one request at a time, in its own interpreter.

Why a process and not a thread: a thread that runs SQLite must win the GIL back from the busy event
loop at every step of every statement, and measured under load it waited for it about half of each
commit cycle while the machine was idle. In its own process the writer has a GIL of its own; the
gateway's loop only sends it whole groups and reads one small answer per group.

It imports nothing but the standard library and :mod:`.pragmas`, so it starts in tens of
milliseconds. It reads requests on stdin and answers on stdout, in order, each a 4-byte little-endian
length and a pickle (its only peer is the gateway process that started it, which also wrote every
byte it reads): ``("tx", statements)`` runs ``(sql, params, must_change)`` statements as one
``BEGIN IMMEDIATE`` ... ``COMMIT`` (a statement that changes another number of rows than
``must_change`` aborts it), ``("sql", (sql, params))`` runs one statement outside a transaction and
answers its rows. An answer is ``("ok", result)`` or ``("error", message)``; an answer to a ``tx`` is
sent only once its ``COMMIT`` (and fsync) returned.

``("later", statements)`` is work that no answer waits for (the side index's catch-up): the writer
answers nothing, and runs it as a transaction of its own once no request is waiting (or after
:data:`LATER_AT_MOST` more requests under sustained load, or at end of input). Checkpoints are the
writer's own chore of the same kind: SQLite's automatic checkpoint would copy the WAL into the
database inside the ``COMMIT`` of whichever group crossed 1,000 pages, before that group's answer, so
the writer turns it off and checkpoints (``PASSIVE``) once about :data:`CHECKPOINT_BYTES` of requests
were committed and no request is waiting, or at :data:`CHECKPOINT_AT_MOST` whatever is waiting. A
chore that fails is reported on stderr and dropped: what it does (an index of the log, the WAL's copy)
is made again by the next one, and by the next store that opens the file.

Its page cache is :data:`CACHE_KIB`: a 100,000-user order dirties thousands of pages of the positions
and their indexes, and SQLite's default 2 MiB cache spilled them into the WAL in the middle of the
transaction and read them back.

It ignores SIGINT and SIGTERM: stopping is the gateway's call, which commits what it queued first
and then closes stdin; on end of input the writer exits. If the gateway dies, end of input comes
too, after the request in hand (whose outcome the next gateway reads from the file).
"""

from __future__ import annotations

import io
import os
import pickle
import select
import signal
import sqlite3
import struct
import sys
from typing import Any, BinaryIO

from ordergate.store.sqlite.pragmas import open_connection

HEADER = struct.Struct("<I")
"""The length of each frame, before its pickle."""

CACHE_KIB = 65_536
"""The writer connection's page cache (``PRAGMA cache_size``), in KiB."""

CHECKPOINT_BYTES = 1 << 20
"""Bytes of committed requests between two checkpoints: a rough count of the WAL pages they wrote (a
group of the kit's orders writes about 3 pages per KiB of its request, a 100,000-user order about 2),
so that the WAL stays near SQLite's default of 1,000 pages."""

CHECKPOINT_AT_MOST = 8 * CHECKPOINT_BYTES
"""Past this many bytes since the last checkpoint, the writer checkpoints even while requests wait."""

LATER_AT_MOST = 16
"""Requests after which ``later`` work runs even while requests wait."""

Statements = list[tuple[str, list[Any], int | None]]


def frame(message: object) -> bytes:
    body = pickle.dumps(message, protocol=pickle.HIGHEST_PROTOCOL)
    return HEADER.pack(len(body)) + body


class PlainUnpickler(pickle.Unpickler):
    """Unpickles built-in values only: a request naming a class (an enum that leaked into a row, say)
    is refused with an answer, instead of importing that class's module here."""

    def find_class(self, module: str, name: str) -> Any:
        raise pickle.UnpicklingError(f"the writer takes plain values only, not {module}.{name}")


def run_transaction(conn: sqlite3.Connection, statements: list[tuple[str, list[Any], int | None]]) -> None:
    conn.execute("BEGIN IMMEDIATE")
    try:
        for sql, params, must_change in statements:
            changed = conn.execute(sql, params).rowcount
            if must_change is not None and changed != must_change:
                raise sqlite3.IntegrityError(f"closed {changed} open positions where the group closes {must_change}")
        conn.execute("COMMIT")
    except BaseException:
        if conn.in_transaction:
            conn.execute("ROLLBACK")
        raise


def answer(conn: sqlite3.Connection | None, opening: Exception | None, kind: str, payload: Any) -> tuple[str, Any]:
    try:
        if conn is None:
            raise sqlite3.OperationalError(f"cannot open the database: {opening}")
        if kind == "tx":
            run_transaction(conn, payload)
            return ("ok", None)
        if kind == "sql":
            sql, params = payload
            return ("ok", conn.execute(sql, params).fetchall())
        return ("error", f"unknown request {kind!r}")
    except sqlite3.Error as exc:
        return ("error", str(exc))


class Requests:
    """Frames off the gateway's pipe, and whether another one is already waiting."""

    def __init__(self, stream: BinaryIO) -> None:
        self._fd = stream.fileno()
        self._buffer = bytearray()

    def waiting(self) -> bool:
        return bool(self._buffer) or bool(select.select([self._fd], [], [], 0)[0])

    def next(self) -> bytes | None:
        """The next frame's body; ``None`` at end of input (a frame cut short included)."""
        if not self._fill(HEADER.size):
            return None
        (size,) = HEADER.unpack_from(self._buffer)
        if not self._fill(HEADER.size + size):
            return None
        body = bytes(self._buffer[HEADER.size : HEADER.size + size])
        del self._buffer[: HEADER.size + size]
        return body

    def _fill(self, size: int) -> bool:
        while len(self._buffer) < size:
            chunk = os.read(self._fd, max(size - len(self._buffer), 1 << 16))
            if not chunk:
                return False
            self._buffer += chunk
        return True


class Chores:
    """Work no answer waits for: ``later`` transactions and checkpoints, done between requests."""

    def __init__(self, conn: sqlite3.Connection | None) -> None:
        self._conn = conn
        self._later: list[Statements] = []
        self._later_waited = 0
        self._unchecked = 0
        """Bytes of requests committed since the last checkpoint."""

    def add_later(self, statements: Statements) -> None:
        self._later.append(statements)

    def committed(self, size: int) -> None:
        self._unchecked += size
        if self._later:
            self._later_waited += 1

    def due(self, idle: bool) -> bool:
        """Whether to do one now: ``idle`` when no request is waiting."""
        if self._conn is None:
            return False
        if idle:
            return bool(self._later) or self._unchecked >= CHECKPOINT_BYTES
        return (bool(self._later) and self._later_waited >= LATER_AT_MOST) or self._unchecked >= CHECKPOINT_AT_MOST

    def run(self) -> None:
        """Do one chore, the oldest ``later`` work first, then the checkpoint: the writer looks for a
        waiting request between two of them, so a group that arrives meanwhile waits for one at most."""
        conn = self._conn
        assert conn is not None
        if self._later and (self._unchecked < CHECKPOINT_AT_MOST or self._later_waited >= LATER_AT_MOST):
            statements = self._later.pop(0)
            if not self._later:
                self._later_waited = 0
            try:
                run_transaction(conn, statements)
            except sqlite3.Error as exc:
                print(f"ordergate writer: work left for later failed and was dropped: {exc}", file=sys.stderr)
            self._unchecked += 1 << 12  # a catch-up writes a few pages: count it
            return
        self._unchecked = 0
        try:
            conn.execute("PRAGMA wal_checkpoint(PASSIVE)").fetchall()
        except sqlite3.Error as exc:
            print(f"ordergate writer: a checkpoint failed: {exc}", file=sys.stderr)


def serve(path: str, fsync_every_commit: bool, requests: BinaryIO, answers: BinaryIO) -> None:
    """Answer requests until end of input."""
    conn: sqlite3.Connection | None = None
    opening: Exception | None = None
    try:
        conn = open_connection(path, fsync_every_commit=fsync_every_commit)
        conn.execute(f"PRAGMA cache_size = -{CACHE_KIB}")
        conn.execute("PRAGMA wal_autocheckpoint = 0")  # Chores checkpoint, after the answers
    except sqlite3.Error as exc:
        opening = exc
    frames, chores = Requests(requests), Chores(conn)
    try:
        while True:
            while chores.due(idle=not frames.waiting()):
                chores.run()
            body = frames.next()
            if body is None:
                while chores.due(idle=True):
                    chores.run()
                return
            try:
                kind, payload = PlainUnpickler(io.BytesIO(body)).load()
            except (pickle.UnpicklingError, ValueError, TypeError) as exc:
                reply = frame(("error", f"a request the writer cannot read: {exc}"))
            else:
                if kind == "later":
                    chores.add_later(payload)
                    continue
                reply = frame(answer(conn, opening, kind, payload))
                if kind == "tx":
                    chores.committed(len(body))
            try:
                answers.write(reply)
                answers.flush()
            except BrokenPipeError:
                return  # the gateway is gone; what was committed is on disk for the next one
    finally:
        if conn is not None:
            conn.close()


def main(argv: list[str]) -> int:
    if len(argv) != 3 or argv[2] not in ("full", "fast"):
        print("usage: python -m ordergate.store.sqlite.writer_process DATABASE full|fast", file=sys.stderr)
        return 2
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    signal.signal(signal.SIGTERM, signal.SIG_IGN)
    # answers go to a private copy of stdout; anything else printed lands on stderr, never in a frame
    answers = os.fdopen(os.dup(1), "wb")
    os.dup2(2, 1)
    serve(argv[1], argv[2] == "full", sys.stdin.buffer, answers)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
