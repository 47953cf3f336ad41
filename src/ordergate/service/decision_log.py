"""One line per committed decision in ``<home>/Logs/decisions.log``, rotated daily, and a line for any it missed.

The event loop only hands each committed group to a queue (no formatting, no I/O, a few integer
operations); a background thread formats the lines and writes them in large unbuffered writes
(per-order ``logging`` calls cost a quarter of the gateway's CPU under load, which is why this is
not a plain ``logging`` call per order). An order for a great many users is formatted in pieces of
:data:`CHUNK_USERS` users, so the writer never holds the GIL (and the event loop) for long, and each
piece is joined in C (``str.join`` over ``map`` and ``zip``, or orjson over tuples), not user by user
in Python: a 100,000-user line costs the writer a few milliseconds of the GIL in all, not tens.

The log never slows order entry, and says what it missed instead of losing lines silently:

- The queue is bounded (:data:`QUEUE_LIMIT` orders). When the writer is that far behind, further
  groups are not queued but counted, and once there is room again the log gets one ``NOT_LOGGED``
  line naming how many decisions, which order ids, and that the order log in the store has them.
- When a write fails (disk full, I/O error) the writer logs one warning, counts the decisions it
  cannot write, and every :data:`RETRY_SECONDS` reopens the file and tries again; the first write
  that works is the ``NOT_LOGGED`` line for what was skipped, then logging resumes. A line torn by a
  partial write is ended first, and its order is counted as not logged.

Plain text by default, JSON lines with ``--log-format json``. The file is renamed to
``decisions.log.YYYY-MM-DD`` by the first write of a new UTC day, as ``TimedRotatingFileHandler``
names it, and ``keep_days`` such files are kept.
"""

from __future__ import annotations

import logging
import queue
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from operator import itemgetter
from pathlib import Path
from typing import NamedTuple

import orjson

from ordergate.domain.model import Effect
from ordergate.domain.record import OrderRecord
from ordergate.service.log_file import DailyFile, LogFile, WriteFailed

log = logging.getLogger(__name__)

QUEUE_LIMIT = 100_000
"""Orders the writer may be behind by; the decisions of groups beyond it are counted, not queued."""
RETRY_SECONDS = 5.0
"""How often a failing log file is reopened and tried again."""
CHUNK_USERS = 2_000
"""Users of one order formatted in one step."""
FLUSH_CHARS = 1 << 20
"""Characters gathered before a write (fewer, larger writes; a write's data is encoded in one call)."""


# -- lines ----------------------------------------------------------------------------------------

_USER, _ACTION = itemgetter(0), itemgetter(1)


_FEW = 16
"""Up to this many users, a comprehension is quicker than setting up ``map`` and ``zip``."""


def _users_text(effects: Sequence[Effect]) -> str:
    """``user ACTION, user ACTION, ...`` (an action is a ``StrEnum``: its text is its value)."""
    if len(effects) <= _FEW:
        return ", ".join([f"{e.user} {e.action}" for e in effects])
    actions = set(map(_ACTION, effects))
    if len(actions) == 1:  # every effect of an order but a flatten's: one join, no string per user
        (action,) = actions
        return f" {action}, ".join(map(_USER, effects)) + f" {action}"
    return ", ".join(map(" ".join, zip(map(_USER, effects), map(_ACTION, effects), strict=True)))


def _users_pairs(effects: Sequence[Effect]) -> Sequence[Sequence[str]]:
    """``[[user, action], ...]`` for orjson (which writes tuples as arrays)."""
    if len(effects) <= _FEW:
        return [[e.user, e.action] for e in effects]
    return list(zip(map(_USER, effects), map(_ACTION, effects), strict=True))


def text_line(record: OrderRecord) -> str:
    d, o = record.decision, record.order
    users = _users_text(d.applied)
    outcome = f"users={users}" if d.is_accepted else f"reason={d.reason}"
    return f"{record.received_at} order={record.order_id} {d.status} {o.strategy} {o.instrument} {o.side} {outcome}"


def text_pieces(record: OrderRecord) -> Iterator[str]:
    """:func:`text_line` in pieces of :data:`CHUNK_USERS` users."""
    d, o = record.decision, record.order
    if not d.is_accepted:
        yield text_line(record)
        return
    yield f"{record.received_at} order={record.order_id} {d.status} {o.strategy} {o.instrument} {o.side} users="
    applied = d.applied
    for start in range(0, len(applied), CHUNK_USERS):
        users = _users_text(applied[start : start + CHUNK_USERS])
        yield f", {users}" if start else users


def json_line(record: OrderRecord) -> str:
    applied = record.decision.applied
    return orjson.dumps(
        _json_document(record, list(zip(map(_USER, applied), map(_ACTION, applied), strict=True)))
    ).decode()


def json_pieces(record: OrderRecord) -> Iterator[str]:
    """:func:`json_line` in pieces of :data:`CHUNK_USERS` users (``applied`` is its last member)."""
    head = orjson.dumps(_json_document(record, [])).decode()
    yield head.removesuffix("[]}") + "["
    applied = record.decision.applied
    for start in range(0, len(applied), CHUNK_USERS):
        users = orjson.dumps(_users_pairs(applied[start : start + CHUNK_USERS])).decode()[1:-1]
        yield f",{users}" if start else users
    yield "]}"


def _json_document(record: OrderRecord, applied: Sequence[object]) -> dict[str, object]:
    d, o = record.decision, record.order
    return {
        "at": record.received_at,
        "order_id": record.order_id,
        "status": d.status,
        "reason": d.reason,
        "strategy": o.strategy,
        "instrument": o.instrument,
        "side": o.side,
        "client_order_id": record.client_order_id,
        "applied": applied,
    }


@dataclass(slots=True)
class Unlogged:
    """A run of committed decisions that are not in the log: how many, the order ids they lie between, why."""

    count: int = 0
    first: int = 0
    last: int = 0
    causes: list[str] = field(default_factory=list)

    def add(self, first: int, last: int, count: int) -> None:
        low, high = min(first, last), max(first, last)
        if self.count:
            low, high = min(self.first, low), max(self.last, high)
        self.first, self.last = low, high
        self.count += count

    def merge(self, other: Unlogged) -> None:
        if other.count:
            self.add(other.first, other.last, other.count)
        self.causes.extend(cause for cause in other.causes if cause not in self.causes)

    @classmethod
    def of(cls, records: Sequence[OrderRecord], cause: str) -> Unlogged:
        first, last = records[0].order_id, records[-1].order_id
        return cls(len(records), min(first, last), max(first, last), [cause])


STORE_HAS_THEM = "the order log in the store has them"


def text_note(unlogged: Unlogged, at: str) -> str:
    return (
        f"{at} NOT_LOGGED orders={unlogged.first}-{unlogged.last} count={unlogged.count} "
        f"cause={'; '.join(unlogged.causes)} -- {STORE_HAS_THEM} (GET /v1/orders?after={unlogged.first - 1})"
    )


def json_note(unlogged: Unlogged, at: str) -> str:
    return orjson.dumps(
        {
            "at": at,
            "event": "NOT_LOGGED",
            "count": unlogged.count,
            "first_order_id": unlogged.first,
            "last_order_id": unlogged.last,
            "cause": "; ".join(unlogged.causes),
            "detail": STORE_HAS_THEM,
        }
    ).decode()


class LineFormat(NamedTuple):
    line: Callable[[OrderRecord], str]
    pieces: Callable[[OrderRecord], Iterator[str]]
    note: Callable[[Unlogged, str], str]


TEXT = LineFormat(text_line, text_pieces, text_note)
JSON = LineFormat(json_line, json_pieces, json_note)


# -- the log --------------------------------------------------------------------------------------

_CLOSE = object()
_Owner = int | Unlogged | None
"""What a piece of pending text completes: an order's line (its id), a note, or nothing yet."""


def _utc_stamp(now: float) -> str:
    return datetime.fromtimestamp(now, UTC).isoformat(timespec="microseconds").replace("+00:00", "Z")


class DecisionLog:
    """A commit listener of the sequencer; :meth:`close` writes what is queued and stops the thread.

    Calls come from the event loop only. The loop counts what it queued and the writer what it
    handled (each integer written by one thread only), so the bound costs no lock on the way in.
    """

    def __init__(
        self,
        logs_dir: Path,
        *,
        json_lines: bool = False,
        keep_days: int = 30,
        queue_limit: int = QUEUE_LIMIT,
        retry_seconds: float = RETRY_SECONDS,
        file: LogFile | None = None,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.path = logs_dir / "decisions.log"
        if file is None:
            logs_dir.mkdir(parents=True, exist_ok=True)
            file = DailyFile(self.path, keep_days, clock)
        self._file = file
        self._format = JSON if json_lines else TEXT
        self._clock = clock
        self._limit = queue_limit
        self._retry_seconds = retry_seconds
        self._items: queue.SimpleQueue[object] = queue.SimpleQueue()
        # the event loop's side
        self._queued = 0
        self._dropped: Unlogged | None = None
        self._dropped_lock = threading.Lock()  # the loop sets it; the loop or a caught-up writer takes it
        # the writer's side
        self._handled = 0
        self._pending: list[str] = []
        self._owners: list[_Owner] = []
        self._pending_chars = 0
        self._mid_line = False
        self._failure: Unlogged | None = None
        self._failure_error = ""
        self._failed_at = 0.0
        self._writer = threading.Thread(target=self._write_forever, name="ordergate-decision-log", daemon=True)
        self._writer.start()

    # -- the event loop's side --------------------------------------------------------------------

    def __call__(self, records: Sequence[OrderRecord]) -> None:
        count = len(records)
        if not count:
            return
        if self._queued - self._handled + count > self._limit:
            self._drop(records)
            return
        if self._dropped is not None:
            with self._dropped_lock:
                dropped, self._dropped = self._dropped, None
            if dropped is not None:
                self._items.put(dropped)
        self._queued += count
        self._items.put(records)

    def _drop(self, records: Sequence[OrderRecord]) -> None:
        with self._dropped_lock:
            if self._dropped is not None:
                self._dropped.add(records[0].order_id, records[-1].order_id, len(records))
                return
            self._dropped = Unlogged.of(records, f"the log fell {self._limit} orders behind")
        log.warning(
            "%s is %d orders behind: counting the decisions it skips (%s); it will say which",
            self.path,
            self._limit,
            STORE_HAS_THEM,
        )

    def close(self) -> None:
        self._items.put(_CLOSE)
        self._writer.join(timeout=10)

    # -- the writer thread ------------------------------------------------------------------------

    def _write_forever(self) -> None:
        try:
            while True:
                if self._failure is not None:
                    self._retry()
                try:
                    item = self._items.get(timeout=self._retry_seconds)
                except queue.Empty:
                    self._catch_up()
                    continue
                if item is _CLOSE:
                    self._catch_up()
                    if self._failure is not None:
                        self._retry(now=True)
                    return
                if isinstance(item, Unlogged):
                    self._note(item)
                else:
                    self._take(item)  # type: ignore[arg-type]
                if self._pending_chars >= FLUSH_CHARS or self._items.empty():
                    self._flush()
                    if self._items.empty():
                        self._catch_up()
        finally:
            if self._failure is not None:
                log.warning(
                    "%s: %d decisions (orders %d-%d) were not logged; %s",
                    self.path,
                    self._failure.count,
                    self._failure.first,
                    self._failure.last,
                    STORE_HAS_THEM,
                )
            self._file.close()

    def _take(self, records: Sequence[OrderRecord]) -> None:
        line = self._format.line
        for index, record in enumerate(records):
            if self._failure is not None:
                self._skip(records, index)
                break
            if len(record.decision.applied) <= CHUNK_USERS:
                text = line(record) + "\n"
                self._pending.append(text)
                self._owners.append(record.order_id)
                self._pending_chars += len(text)
                if self._pending_chars >= FLUSH_CHARS:
                    self._flush()
            elif not self._take_in_pieces(record):
                self._skip(records, index)
                break
        self._handled += len(records)

    def _skip(self, records: Sequence[OrderRecord], start: int) -> None:
        """Count ``records[start:]`` as not logged (the file is failing)."""
        failure = self._failure
        assert failure is not None
        failure.add(records[start].order_id, records[-1].order_id, len(records) - start)

    def _take_in_pieces(self, record: OrderRecord) -> bool:
        """Format and queue one large line; ``False`` if a write failed on the way (not all of it queued)."""
        for piece in self._format.pieces(record):
            self._pending.append(piece)
            self._owners.append(None)
            self._pending_chars += len(piece)
            if self._pending_chars >= FLUSH_CHARS:
                self._flush()
                if self._failure is not None:
                    return False
        self._pending.append("\n")
        self._owners.append(record.order_id)
        self._pending_chars += 1
        return True

    def _note(self, unlogged: Unlogged) -> None:
        if self._failure is not None:
            self._failure.merge(unlogged)
            return
        text = self._format.note(unlogged, _utc_stamp(self._clock())) + "\n"
        self._pending.append(text)
        self._owners.append(unlogged)
        self._pending_chars += len(text)

    def _catch_up(self) -> None:
        """The writer has nothing queued: write what is gathered, and the note of what the loop skipped."""
        if self._dropped is not None:
            with self._dropped_lock:
                dropped, self._dropped = self._dropped, None
            if dropped is not None:
                self._note(dropped)
        self._flush()

    def _flush(self) -> None:
        if not self._pending:
            return
        pending, owners = self._pending, self._owners
        self._pending, self._owners, self._pending_chars = [], [], 0
        data = "".join(pending).encode()
        try:
            self._file.write(data)
        except WriteFailed as failed:
            self._failed(failed, pending, owners, data)
        else:
            self._mid_line = not data.endswith(b"\n")

    def _failed(self, failed: WriteFailed, pending: list[str], owners: list[_Owner], data: bytes) -> None:
        written = failed.written
        if written:
            self._mid_line = data[written - 1] != ord("\n")
        unlogged = self._failure if self._failure is not None else Unlogged()
        offset = 0
        for piece, owner in zip(pending, owners, strict=True):
            offset += len(piece.encode())
            if offset <= written or owner is None:  # written, or a piece of a line that is counted below
                continue
            if isinstance(owner, Unlogged):
                unlogged.merge(owner)
            else:
                unlogged.add(owner, owner, 1)
        if self._failure is None:
            error = failed.error
            self._failure_error = f"cannot write {self.path.name}: {error.strerror or error}"
            log.warning(
                "cannot write %s (%s): counting the decisions not logged, retrying every %g s; %s",
                self.path,
                error.strerror or error,
                self._retry_seconds,
                STORE_HAS_THEM,
            )
        if self._failure_error not in unlogged.causes:
            unlogged.causes.append(self._failure_error)
        self._failure = unlogged
        self._failed_at = time.monotonic()
        self._file.reopen()

    def _retry(self, *, now: bool = False) -> None:
        """Reopen the failing file and write the note of what was skipped; resume if it worked."""
        if not now and time.monotonic() - self._failed_at < self._retry_seconds:
            return
        failure = self._failure
        assert failure is not None
        self._failed_at = time.monotonic()
        note = self._format.note(failure, _utc_stamp(self._clock())) + "\n" if failure.count else ""
        data = (("\n" if self._mid_line else "") + note).encode()
        try:
            self._file.write(data)
        except WriteFailed as failed:
            if failed.written:
                self._mid_line = data[failed.written - 1] != ord("\n")
            self._file.reopen()
            return
        self._failure = None
        self._mid_line = False
        log.warning(
            "%s is writable again; %d decisions (orders %d-%d) were not logged; %s",
            self.path,
            failure.count,
            failure.first,
            failure.last,
            STORE_HAS_THEM,
        )
