"""The writer's work that no answer waits for: ``later`` transactions and checkpoints run between
requests, never before an answer, and a failed one is dropped without harming what was answered.

Real writer code on real files: ``serve()`` reads frames off a real pipe, as it does in its process.
"""

from __future__ import annotations

import io
import os
import pickle
import sqlite3
import threading
from pathlib import Path
from typing import Any

import pytest

from ordergate.store.sqlite.pragmas import open_connection
from ordergate.store.sqlite.writer_process import (
    CHECKPOINT_BYTES,
    HEADER,
    LATER_AT_MOST,
    Chores,
    Requests,
    frame,
    serve,
)

SCHEMA = "CREATE TABLE IF NOT EXISTS t (n INTEGER PRIMARY KEY, note TEXT)"


def insert(n: int, note: str = "x") -> list[tuple[str, list[Any], int | None]]:
    return [("INSERT INTO t (n, note) VALUES (?, ?)", [n, note], None)]


def database(path: Path) -> Path:
    with open_connection(path, fsync_every_commit=False) as conn:
        conn.execute(SCHEMA)
    return path


def rows(path: Path) -> list[int]:
    with sqlite3.connect(path) as conn:
        return [n for (n,) in conn.execute("SELECT n FROM t ORDER BY n")]


def answers_of(data: bytes) -> list[tuple[str, Any]]:
    stream, found = io.BytesIO(data), []
    while header := stream.read(HEADER.size):
        (size,) = HEADER.unpack(header)
        found.append(pickle.loads(stream.read(size)))
    return found


def served(path: Path, *requests: tuple[str, Any]) -> list[tuple[str, Any]]:
    """Run ``serve()`` over a pipe holding ``requests`` then end of input; the answers it wrote."""
    read_end, write_end = os.pipe()
    data = b"".join(frame(request) for request in requests)
    writer = threading.Thread(target=lambda: (os.write(write_end, data), os.close(write_end)))
    writer.start()
    answers = io.BytesIO()
    with os.fdopen(read_end, "rb") as stream:
        serve(str(path), False, stream, answers)
    writer.join()
    return answers_of(answers.getvalue())


def test_later_work_is_never_answered_and_is_done_by_end_of_input(tmp_path: Path) -> None:
    path = database(tmp_path / "db.sqlite3")
    answers = served(path, ("tx", insert(1)), ("later", insert(2)), ("sql", ("SELECT count(*) FROM t", [])))
    assert [status for status, _ in answers] == ["ok", "ok"]  # the tx and the sql: nothing for the later work
    assert rows(path) == [1, 2]


def test_later_work_that_fails_is_dropped_and_what_was_answered_stays(tmp_path: Path) -> None:
    path = database(tmp_path / "db.sqlite3")
    answers = served(path, ("tx", insert(1)), ("later", insert(1)), ("tx", insert(3)))
    assert answers == [("ok", None), ("ok", None)]
    assert rows(path) == [1, 3]


def test_later_work_waits_while_requests_wait_but_not_past_its_bound(tmp_path: Path) -> None:
    conn = open_connection(database(tmp_path / "db.sqlite3"), fsync_every_commit=False)
    chores = Chores(conn)
    chores.add_later(insert(1))
    assert not chores.due(idle=False)
    for _ in range(LATER_AT_MOST - 1):
        chores.committed(100)
        assert not chores.due(idle=False)
    chores.committed(100)
    assert chores.due(idle=False)
    chores.run()
    assert rows(tmp_path / "db.sqlite3") == [1]
    assert not chores.due(idle=True)
    conn.close()


def test_the_writer_checkpoints_between_requests_not_inside_a_commit(tmp_path: Path) -> None:
    """With SQLite's automatic checkpoint a commit past 1,000 WAL pages copies them into the database
    before it returns; the writer's copy waits for its own turn, once enough was written."""
    path = database(tmp_path / "db.sqlite3")
    conn = open_connection(path, fsync_every_commit=False)
    conn.execute("PRAGMA wal_autocheckpoint = 0")
    before = path.stat().st_size
    note = "y" * 3000
    conn.execute("BEGIN IMMEDIATE")
    conn.executemany("INSERT INTO t (n, note) VALUES (?, ?)", [(n, note) for n in range(2000)])
    conn.execute("COMMIT")  # about 2,000 pages into the WAL
    assert path.stat().st_size == before, "the commit copied nothing into the database"
    chores = Chores(conn)
    chores.committed(CHECKPOINT_BYTES - 1)
    assert not chores.due(idle=True)
    chores.committed(1)
    assert chores.due(idle=True)
    chores.run()
    assert path.stat().st_size > before + 2000 * 3000, "the checkpoint copied the WAL into the database"
    assert not chores.due(idle=True)
    conn.close()


def test_the_writer_reads_a_frame_that_arrives_in_pieces_and_stops_at_one_cut_short(tmp_path: Path) -> None:
    read_end, write_end = os.pipe()
    whole = frame(("sql", ("SELECT 1", [])))
    with os.fdopen(read_end, "rb") as stream:
        requests = Requests(stream)
        assert not requests.waiting()
        os.write(write_end, whole[:3])
        assert requests.waiting()
        threading.Timer(0.05, lambda: os.write(write_end, whole[3:] + whole[:5])).start()
        assert pickle.loads(requests.next() or b"") == ("sql", ("SELECT 1", []))
        assert requests.waiting()
        os.close(write_end)
        assert requests.next() is None


@pytest.mark.parametrize("kind", ["later", "tx"])
def test_a_writer_that_cannot_open_its_database_does_no_chores(tmp_path: Path, kind: str) -> None:
    missing = tmp_path / "no such directory" / "db.sqlite3"
    answers = served(missing, (kind, insert(1)), ("sql", ("SELECT 1", [])))
    assert all(status == "error" for status, _ in answers)
    assert len(answers) == (1 if kind == "later" else 2)


def test_chores_run_one_at_a_time_so_a_waiting_group_goes_between_them(tmp_path: Path) -> None:
    path = database(tmp_path / "db.sqlite3")
    conn = open_connection(path, fsync_every_commit=False)
    chores = Chores(conn)
    chores.add_later(insert(1))
    chores.add_later(insert(2))
    chores.run()
    assert rows(path) == [1]
    assert chores.due(idle=True)
    assert not chores.due(idle=False), "a waiting request goes before the second half"
    chores.run()
    assert rows(path) == [1, 2]
    assert not chores.due(idle=True)
    conn.close()
