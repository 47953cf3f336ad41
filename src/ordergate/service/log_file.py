"""A log file written without buffering and rotated daily: the decision log's file.

Every write reaches the operating system or fails saying how many bytes got through
(:class:`WriteFailed`), so the writer knows exactly which lines are in the file after a full disk or
an I/O error; a failed file is closed and opened again by the next write (which also follows an
operator who moved or replaced it). Rotation names and prunes files as
``logging.handlers.TimedRotatingFileHandler(when="midnight", utc=True)`` does.
"""

from __future__ import annotations

import contextlib
import io
import os
import re
import stat
import time
from collections.abc import Callable
from datetime import UTC, date, datetime
from pathlib import Path
from typing import Protocol


class WriteFailed(Exception):
    """A write that stopped after ``written`` bytes of its data, because of ``error``."""

    def __init__(self, written: int, error: OSError) -> None:
        super().__init__(f"{error} after {written} bytes")
        self.written = written
        self.error = error


class LogFile(Protocol):
    def write(self, data: bytes) -> None:
        """Write all of ``data`` or raise :class:`WriteFailed` saying how much was written."""

    def reopen(self) -> None:
        """Close the file; the next write opens it again."""

    def close(self) -> None: ...


class DailyFile:
    """The log file, appended to without buffering (a write reaches the OS or fails), rotated daily.

    The first write of a new UTC day renames it ``<name>.YYYY-MM-DD`` (the day it covered: that of
    its last change when it is opened) and deletes the oldest such files beyond ``keep_days``. Only a
    regular file is rotated (a device or a pipe is written as it is).
    """

    def __init__(self, path: Path, keep_days: int, clock: Callable[[], float] = time.time) -> None:
        self.path = path
        self._keep_days = keep_days
        self._clock = clock
        self._stream: io.FileIO | None = None
        self._day: date | None = None

    def write(self, data: bytes) -> None:
        written = 0
        try:
            stream = self._stream if self._stream is not None else self._open()
            if self._day is not None:
                today = datetime.fromtimestamp(self._clock(), UTC).date()
                if today > self._day:
                    stream = self._rotate(today)
            view = memoryview(data)
            while written < len(data):
                count = stream.write(view[written:])
                if not count:
                    raise OSError(f"the file took none of {len(data) - written} bytes")
                written += count
        except OSError as exc:
            raise WriteFailed(written, exc) from exc

    def reopen(self) -> None:
        self.close()

    def close(self) -> None:
        if self._stream is not None:
            stream, self._stream = self._stream, None
            with contextlib.suppress(OSError):
                stream.close()

    def _open(self) -> io.FileIO:
        stream = io.FileIO(self.path, "ab")
        status = os.fstat(stream.fileno())
        self._day = datetime.fromtimestamp(status.st_mtime, UTC).date() if stat.S_ISREG(status.st_mode) else None
        self._stream = stream
        return stream

    def _rotate(self, today: date) -> io.FileIO:
        assert self._day is not None
        self.close()
        target = self.path.with_name(f"{self.path.name}.{self._day:%Y-%m-%d}")
        if not target.exists():  # a clock set back and forth again: keep both days in one file
            os.rename(self.path, target)
            self._prune()
        stream = self._open()
        self._day = today
        return stream

    def _prune(self) -> None:
        pattern = re.compile(re.escape(self.path.name) + r"\.\d{4}-\d{2}-\d{2}")
        old = sorted(p for p in self.path.parent.iterdir() if pattern.fullmatch(p.name))
        for path in old[: max(0, len(old) - self._keep_days)]:
            path.unlink(missing_ok=True)
