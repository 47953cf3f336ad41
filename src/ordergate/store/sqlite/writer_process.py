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

It ignores SIGINT and SIGTERM: stopping is the gateway's call, which commits what it queued first
and then closes stdin; on end of input the writer exits. If the gateway dies, end of input comes
too, after the request in hand (whose outcome the next gateway reads from the file).
"""

from __future__ import annotations

import io
import os
import pickle
import signal
import sqlite3
import struct
import sys
from typing import Any, BinaryIO

from ordergate.store.sqlite.pragmas import open_connection

HEADER = struct.Struct("<I")
"""The length of each frame, before its pickle."""


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


def serve(path: str, fsync_every_commit: bool, requests: BinaryIO, answers: BinaryIO) -> None:
    """Answer requests until end of input."""
    conn: sqlite3.Connection | None = None
    opening: Exception | None = None
    try:
        conn = open_connection(path, fsync_every_commit=fsync_every_commit)
    except sqlite3.Error as exc:
        opening = exc
    try:
        while True:
            header = requests.read(HEADER.size)
            if len(header) < HEADER.size:
                return
            (size,) = HEADER.unpack(header)
            body = requests.read(size)
            if len(body) < size:
                return
            try:
                kind, payload = PlainUnpickler(io.BytesIO(body)).load()
            except (pickle.UnpicklingError, ValueError, TypeError) as exc:
                reply = frame(("error", f"a request the writer cannot read: {exc}"))
            else:
                reply = frame(answer(conn, opening, kind, payload))
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
