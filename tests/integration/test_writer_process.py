"""The SQLite writer in its own process: a writer that dies is a 503 or the stored truth, never a wrong answer.

Real writer processes on real files; ``tests.integration.dying_writer`` dies on purpose before or
after its commit point, as ``kill -9`` would.
"""

from __future__ import annotations

import asyncio
import os
import signal
import sqlite3
import sys
from pathlib import Path

import pytest

from ordergate.domain.book import Book
from ordergate.domain.controls import ControlLevel, ControlSetting, ControlState
from ordergate.domain.model import Order, Scope, Side
from ordergate.domain.record import OrderRecord, decided_record
from ordergate.domain.registry import Registry
from ordergate.domain.rules import decide
from ordergate.errors import StoreUnavailable
from ordergate.store.base import ControlChange
from ordergate.store.sqlite import SQLiteStore

DYING = (sys.executable, "-m", "tests.integration.dying_writer")
REGISTRY = Registry.from_document({"Ann": {"S": ["INFY", "TCS"]}, "Bob": {"S": ["INFY"]}})


def records(book: Book, first_id: int, count: int) -> list[OrderRecord]:
    """``count`` orders decided on ``book`` and applied to it, alternating BUY and SELL of INFY."""
    made = []
    for order_id in range(first_id, first_id + count):
        order = Order("S", "INFY", Side.BUY if order_id % 2 else Side.SELL)
        decision = decide(order, REGISTRY, book, None)
        undo = book.apply(order, decision.applied, order_id, f"2026-12-02T00:00:{order_id:02d}Z")
        made.append(
            decided_record(
                order_id,
                f"2026-12-02T00:00:{order_id:02d}Z",
                order,
                decision,
                Scope.ACCOUNT,
                REGISTRY.fingerprint,
                None,
                undo,
                None,
            )
        )
    return made


def stored_ids(path: Path) -> list[int]:
    with sqlite3.connect(path) as conn:
        return [row[0] for row in conn.execute("SELECT order_id FROM orders ORDER BY order_id")]


def ended(pid: int) -> bool:
    """Whether a process exited (gone, or a zombie nobody reaped: an orphan's parent may not reap)."""
    try:
        status = Path(f"/proc/{pid}/status").read_text()
    except FileNotFoundError:
        return True
    return "\nState:\tZ" in status


def open_store(path: Path, dying: str | None, monkeypatch: pytest.MonkeyPatch) -> SQLiteStore:
    if dying is not None:
        monkeypatch.setenv("DYING_WRITER", dying)
        monkeypatch.chdir(Path(__file__).resolve().parents[2])  # where ``tests`` imports from
        return SQLiteStore(path, writer_command=DYING)
    return SQLiteStore(path)


@pytest.mark.parametrize("when", ["before", "after"])
def test_a_writer_that_dies_with_a_group_in_hand_answers_what_the_file_holds(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, when: str
) -> None:
    """Transaction 1 is the fence, 2 the first group; the writer dies at 3, the second group."""
    path = tmp_path / "store.db"
    store = open_store(path, f"{when}:3", monkeypatch)

    async def run() -> tuple[int | None, int | None, bool]:
        book = Book(Scope.ACCOUNT)
        await store.open(Scope.ACCOUNT)
        first = store.writer_pid
        await store.commit(records(book, 1, 3))
        stored = True
        before = Book(Scope.ACCOUNT)
        records(before, 1, 3)
        try:
            await store.commit(records(book, 4, 3))
        except StoreUnavailable:
            stored = False
            book = before  # what the sequencer's undo leaves
        await store.commit(records(book, 7, 1))
        second = store.writer_pid
        await store.close()
        return first, second, stored

    first, second, stored = asyncio.run(run())
    assert first != second, "a new writer took over"
    if when == "before":
        assert not stored, "the group the writer never ran was answered as stored"
        assert stored_ids(path) == [1, 2, 3, 7]
    else:
        assert stored, "the group the writer committed was answered 503"
        assert stored_ids(path) == [1, 2, 3, 4, 5, 6, 7]


def test_a_killed_writer_is_replaced_and_the_next_groups_commit(tmp_path: Path) -> None:
    path = tmp_path / "store.db"
    store = SQLiteStore(path)

    async def run() -> None:
        book = Book(Scope.ACCOUNT)
        await store.open(Scope.ACCOUNT)
        await store.commit(records(book, 1, 2))
        pid = store.writer_pid
        assert pid is not None
        os.kill(pid, signal.SIGKILL)
        await asyncio.sleep(0.2)  # the gateway notices the end of its pipe
        await store.commit(records(book, 3, 2))
        assert store.writer_pid not in (None, pid)
        await store.ping()
        await store.close()

    asyncio.run(run())
    assert stored_ids(path) == [1, 2, 3, 4]


def test_a_control_change_whose_writer_died_after_storing_it_is_answered_as_stored(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    path = tmp_path / "store.db"
    store = open_store(path, "after:2", monkeypatch)
    change = ControlChange(
        "2026-12-02T00:00:00Z", ControlSetting(ControlLevel.STRATEGY, "S", ControlState.HALTED), None, "f" * 64
    )

    async def run() -> str | None:
        await store.open(Scope.ACCOUNT)
        await store.record_control_change(change, '{"doc": 1}')
        current = await store.current_controls()
        await store.close()
        return current

    assert asyncio.run(run()) == '{"doc": 1}'


def test_a_write_the_writer_refuses_stores_nothing_and_the_writer_lives_on(tmp_path: Path) -> None:
    path = tmp_path / "store.db"
    store = SQLiteStore(path)

    async def run() -> None:
        book = Book(Scope.ACCOUNT)
        await store.open(Scope.ACCOUNT)
        pid = store.writer_pid
        await store.run_on_writer("PRAGMA query_only = 1")
        with pytest.raises(StoreUnavailable, match="readonly"):
            await store.commit(records(Book(Scope.ACCOUNT), 1, 2))
        await store.run_on_writer("PRAGMA query_only = 0")
        await store.commit(records(book, 1, 2))
        assert store.writer_pid == pid
        await store.close()

    asyncio.run(run())
    assert stored_ids(path) == [1, 2]


def test_the_writer_refuses_a_request_naming_a_class(tmp_path: Path) -> None:
    """Rows must carry plain values: an enum that leaks into one is refused, not imported in the writer."""
    store = SQLiteStore(tmp_path / "store.db")

    async def run() -> None:
        await store.open(Scope.ACCOUNT)
        with pytest.raises(StoreUnavailable, match="plain values only"):
            await store.run_on_writer("SELECT ?", [Side.BUY])
        await store.close()

    asyncio.run(run())


def test_a_gateway_killed_with_its_writer_busy_lets_the_next_one_in_once_the_writer_is_done(tmp_path: Path) -> None:
    """The writer holds the store's lock too; a new gateway waits for a killed one's writer, not forever."""
    path = tmp_path / "store.db"
    script = (
        "import asyncio, sys\n"
        "from pathlib import Path\n"
        "from ordergate.domain.model import Scope\n"
        "from ordergate.store.sqlite import SQLiteStore\n"
        "async def main():\n"
        "    store = SQLiteStore(Path(sys.argv[1]))\n"
        "    await store.open(Scope.ACCOUNT)\n"
        "    print(store.writer_pid, flush=True)\n"
        "    await asyncio.sleep(60)\n"
        "asyncio.run(main())\n"
    )

    async def run() -> None:
        gateway = await asyncio.create_subprocess_exec(
            sys.executable, "-c", script, str(path), stdout=asyncio.subprocess.PIPE
        )
        assert gateway.stdout is not None
        writer_pid = int(await gateway.stdout.readline())
        gateway.kill()
        await gateway.wait()
        store = SQLiteStore(path)
        await store.open(Scope.ACCOUNT)  # the orphaned writer sees its input end and lets go
        assert ended(writer_pid)
        await store.close()

    asyncio.run(run())
