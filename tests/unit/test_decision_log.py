"""The decision log's writer: the bounded queue, what it says about lines it could not write, big orders.

The file is a fake here (:class:`MemoryFile`), which can hold the writer in a write or fail part way,
so the bound and the accounting of torn writes are tested exactly; ``tests/integration`` writes real
files (``/dev/full`` included).
"""

from __future__ import annotations

import errno
import re
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path

import orjson
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from ordergate.domain.model import Action, Decision, Effect, Order, Reason, Scope, Side, Status
from ordergate.domain.record import OrderRecord
from ordergate.service import decision_log
from ordergate.service.decision_log import (
    CHUNK_USERS,
    DecisionLog,
    LineFormat,
    json_line,
    json_pieces,
    text_line,
    text_pieces,
)
from ordergate.service.log_file import WriteFailed

STAMP = "2027-01-15T08:00:00.000000Z"
NOWHERE = Path("/nonexistent/Logs")  # never touched: every log here writes to a MemoryFile


def record(order_id: int, users: int = 1) -> OrderRecord:
    applied = tuple(Effect(f"user {n:06d}", Action.OPENED, "S1") for n in range(users))
    return OrderRecord(
        order_id,
        STAMP,
        Order("S1", "ACC", Side.BUY),
        Decision(Status.ACCEPTED, None, applied, ()),
        Scope.ACCOUNT,
        "f",
        None,
    )


def group(first: int, last: int) -> list[OrderRecord]:
    return [record(order_id) for order_id in range(first, last + 1)]


class MemoryFile:
    """A log file in memory that can hold the writer in ``write`` (``held``) or take only ``room`` more bytes."""

    def __init__(self, *, held: bool = False) -> None:
        self.data = bytearray()
        self.attempts = 0
        self.room: int | None = None
        self._permits = threading.Semaphore(0) if held else None
        self.reopened = 0
        self.closed = False

    def let_through(self, writes: int = 1) -> None:
        assert self._permits is not None
        self._permits.release(writes)

    def write(self, data: bytes) -> None:
        self.attempts += 1
        if self._permits is not None:
            assert self._permits.acquire(timeout=10), "the test never let the writer through"
        taken = len(data) if self.room is None else min(len(data), self.room)
        self.data += data[:taken]
        if self.room is not None:
            self.room -= taken
        if taken < len(data):
            raise WriteFailed(taken, OSError(errno.ENOSPC, "No space left on device"))

    def reopen(self) -> None:
        self.reopened += 1

    def close(self) -> None:
        self.closed = True

    def lines(self) -> list[str]:
        return self.data.decode().splitlines()


def wait_until(condition: Callable[[], bool]) -> None:
    deadline = time.monotonic() + 10
    while not condition():
        assert time.monotonic() < deadline, "the writer did not get there"
        time.sleep(0.001)


def order_ids(lines: Sequence[str]) -> list[int | str]:
    """Each line as its order id, or as the ``NOT_LOGGED orders=A-B count=N`` part of a note."""
    found: list[int | str] = []
    for line in lines:
        note = re.search(r"NOT_LOGGED orders=\d+-\d+ count=\d+", line)
        found.append(note.group(0) if note else int(re.search(r"order=(\d+) ", line).group(1)))  # type: ignore[union-attr]
    return found


def test_a_full_queue_never_holds_the_caller_and_the_log_says_which_orders_it_skipped() -> None:
    file = MemoryFile(held=True)
    log = DecisionLog(NOWHERE, file=file, queue_limit=10)
    log(group(1, 5))
    wait_until(lambda: file.attempts == 1)  # the writer is held in its write of orders 1-5
    for first in (6, 11, 16, 21):  # room for ten more orders: 6-15 are queued, 16-22 are not
        log(group(first, min(first + 4, 22)))
    assert file.attempts == 1  # every call above returned while the writer was held
    file.let_through(10)
    log.close()
    lines = file.lines()
    assert order_ids(lines) == [*range(1, 16), "NOT_LOGGED orders=16-22 count=7"]
    assert "the log fell 10 orders behind -- the order log in the store has them" in lines[-1]


def test_the_note_comes_before_the_orders_queued_once_there_is_room_again() -> None:
    file = MemoryFile(held=True)
    log = DecisionLog(NOWHERE, file=file, queue_limit=4)
    log(group(1, 2))
    wait_until(lambda: file.attempts == 1)
    log(group(3, 6))  # queued: the writer has taken 1-2
    log(group(7, 8))  # skipped
    file.let_through()
    wait_until(lambda: file.attempts == 2)  # the writer took 3-6 and is held writing them
    log(group(9, 10))  # there is room: the note of 7-8 is queued ahead of 9-10
    file.let_through(10)
    log.close()
    assert order_ids(file.lines()) == [1, 2, 3, 4, 5, 6, "NOT_LOGGED orders=7-8 count=2", 9, 10]


def test_the_event_loop_side_formats_nothing(monkeypatch: pytest.MonkeyPatch) -> None:
    formatted_on: set[str] = set()

    def line(r: OrderRecord) -> str:
        formatted_on.add(threading.current_thread().name)
        return text_line(r)

    monkeypatch.setattr(decision_log, "TEXT", LineFormat(line, text_pieces, decision_log.text_note))
    file = MemoryFile()
    log = DecisionLog(NOWHERE, file=file)
    for first in range(1, 100, 10):
        log(group(first, first + 9))
    log.close()
    assert formatted_on == {"ordergate-decision-log"}
    assert len(file.lines()) == 100


def test_a_write_that_fails_part_way_counts_the_torn_line_and_ends_it_before_the_note() -> None:
    file = MemoryFile()
    line_size = len(text_line(record(1))) + 1
    file.room = 2 * line_size + 10  # orders 1 and 2 fit, order 3 is torn after 10 bytes
    log = DecisionLog(NOWHERE, file=file, retry_seconds=60)  # no retry before close
    log(group(1, 5))
    wait_until(lambda: file.attempts == 1)
    log(group(6, 7))  # counted while the file fails
    file.room = None  # the disk has room again: closing retries, and the retry writes the note
    log.close()
    lines = file.lines()
    assert lines[:2] == [text_line(record(1)), text_line(record(2))]
    assert lines[2] == text_line(record(3))[:10]
    assert order_ids(lines[3:]) == ["NOT_LOGGED orders=3-7 count=5"]
    assert "cause=cannot write decisions.log: No space left on device --" in lines[3]
    assert file.reopened == 1


def test_what_the_log_skipped_stays_counted_until_a_retry_can_write_it() -> None:
    file = MemoryFile(held=True)
    log = DecisionLog(NOWHERE, file=file, queue_limit=2, retry_seconds=0.01)
    log(group(1, 2))
    wait_until(lambda: file.attempts == 1)
    log(group(3, 4))  # queued
    log(group(5, 6))  # skipped: the queue is full
    file.room = 0  # the disk is full: 1-2 fail, 3-4 and the note of 5-6 are counted, retries fail
    file.let_through(1000)
    wait_until(lambda: file.attempts >= 3)  # the first write and at least two retries failed
    file.room = None
    wait_until(lambda: b"NOT_LOGGED" in file.data)
    log(group(7, 7))
    log.close()
    lines = file.lines()
    assert order_ids(lines) == ["NOT_LOGGED orders=1-6 count=6", 7]
    assert "cause=cannot write decisions.log: No space left on device; the log fell 2 orders behind --" in lines[0]


@pytest.mark.parametrize(("whole", "pieces"), [(text_line, text_pieces), (json_line, json_pieces)])
def test_an_order_for_100000_users_is_formatted_in_pieces_of_the_same_line(whole, pieces) -> None:  # type: ignore[no-untyped-def]
    big = record(7, users=100_000)
    parts = list(pieces(big))
    assert "".join(parts) == whole(big)
    assert len(parts) >= 100_000 // CHUNK_USERS
    assert max(part.count("user ") for part in parts) <= CHUNK_USERS
    if whole is json_line:
        assert len(orjson.loads("".join(parts))["applied"]) == 100_000


@pytest.mark.parametrize("json_lines", [False, True], ids=["text", "json"])
def test_a_big_order_reaches_the_file_as_one_line_among_the_others(json_lines: bool) -> None:
    file = MemoryFile()
    log = DecisionLog(NOWHERE, file=file, json_lines=json_lines)
    log([record(1), record(2, users=100_000), record(3)])
    rejected = record(4)._replace(decision=Decision(Status.REJECTED, Reason.ALREADY_HOLDING, (), ()))
    log([rejected])
    log.close()
    lines = file.lines()
    line = json_line if json_lines else text_line
    assert lines == [line(record(1)), line(record(2, users=100_000)), line(record(3)), line(rejected)]
    assert file.closed


effects = st.lists(
    st.builds(Effect, st.text(min_size=1, max_size=8), st.sampled_from(list(Action)), st.just("S1")), max_size=40
)


@settings(max_examples=200, deadline=None)
@given(applied=effects)
def test_lines_joined_in_c_are_the_lines_written_user_by_user(applied: list[Effect], monkeypatch_chunk: None) -> None:
    """The format is what it was when each user was formatted in Python (mixed actions, any names)."""
    line = record(9)._replace(decision=Decision(Status.ACCEPTED, None, tuple(applied), ()))
    users = ", ".join(f"{e.user} {e.action}" for e in applied)
    assert text_line(line) == f"{STAMP} order=9 ACCEPTED S1 ACC BUY users={users}"
    assert "".join(text_pieces(line)) == text_line(line)
    as_json = orjson.loads(json_line(line))
    assert as_json["applied"] == [[e.user, e.action.value] for e in applied]
    assert json_line(line) == orjson.dumps({**as_json, "applied": [[e.user, e.action] for e in applied]}).decode()
    assert "".join(json_pieces(line)) == json_line(line)


@pytest.fixture(scope="module")
def monkeypatch_chunk() -> Iterator[None]:
    """Pieces of 3 users, so that short random lines are cut into several pieces too."""
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(decision_log, "CHUNK_USERS", 3)
        yield


@pytest.mark.parametrize("action", list(Action))
def test_an_order_whose_effects_share_one_action_reads_as_if_written_user_by_user(action: Action) -> None:
    applied = tuple(Effect(f"user {n}", action, "S1") for n in range(50))
    line = record(9)._replace(decision=Decision(Status.ACCEPTED, None, applied, ()))
    users = ", ".join(f"{e.user} {e.action}" for e in applied)
    assert text_line(line) == f"{STAMP} order=9 ACCEPTED S1 ACC BUY users={users}"
