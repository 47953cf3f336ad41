"""The threads an SQLite store reads on, each thread with a connection of its own.

In WAL mode a reader never waits for the writer, nor for another reader; what made order entry wait
behind the API was sharing one thread and one connection. :class:`ReadLane` is a set of threads that
each open their own read connection on first use and keep it, so reads of different lanes (and of
different threads of one lane) run side by side. The store gives order entry's idempotency lookups
and the readiness probe a lane of one thread, and the API's listings a lane of
:data:`~ordergate.store.admission.READ_CONNECTIONS` threads behind admission control, which refuses
reads past its queue instead of letting them pile up (:mod:`ordergate.store.admission`).
"""

from __future__ import annotations

import asyncio
import contextlib
import sqlite3
import threading
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from typing import Any, TypeVar

from ordergate.store.admission import Admission

R = TypeVar("R")


class LaneClosed(Exception):
    """The lane was closed: no read can start on it any more."""


class ReadLane:
    """``threads`` threads named ``name-N``, each reading through its own connection from ``connect``."""

    def __init__(
        self, name: str, threads: int, connect: Callable[[], sqlite3.Connection], admission: Admission | None = None
    ) -> None:
        self.name = name
        self._connect = connect
        self._admission = admission
        self._executor = ThreadPoolExecutor(threads, thread_name_prefix=name)
        self._local = threading.local()
        self._connections: list[sqlite3.Connection] = []
        self._guard = threading.Lock()

    async def run(self, work: Callable[[sqlite3.Connection], R]) -> R:
        """``work(connection)`` on one of the lane's threads; raises :class:`~ordergate.errors.ReadsBusy`
        at once when the lane's admission is full, :class:`LaneClosed` after :meth:`close`."""
        admission = self._admission
        if admission is not None:
            admission.admit()
        try:
            future = self._executor.submit(self._call, work)
        except RuntimeError:  # shut down
            if admission is not None:
                admission.release()
            raise LaneClosed(self.name) from None
        if admission is not None:
            loop = asyncio.get_running_loop()
            # Released when the read has really finished in its thread (or was cancelled before it
            # began), not when its caller stops waiting: the lane never holds more than it admitted.
            future.add_done_callback(lambda _: _on_loop(loop, admission.release))
        try:
            return await asyncio.wrap_future(future)
        except asyncio.CancelledError:
            task = asyncio.current_task()
            if future.cancelled() and (task is None or task.cancelling() == 0):
                raise LaneClosed(self.name) from None  # dropped by close(), not its caller cancelled
            raise

    def _call(self, work: Callable[[sqlite3.Connection], R]) -> R:
        conn: sqlite3.Connection | None = getattr(self._local, "conn", None)
        if conn is None:
            conn = self._connect()
            with self._guard:
                self._connections.append(conn)
            self._local.conn = conn
        return work(conn)

    def close(self) -> None:
        """Interrupt the reads running, drop the waiting ones, and close every connection (blocks)."""
        with self._guard:
            for conn in self._connections:
                conn.interrupt()
        self._executor.shutdown(wait=True, cancel_futures=True)
        with self._guard:
            for conn in self._connections:
                conn.close()
            self._connections.clear()


def _on_loop(loop: asyncio.AbstractEventLoop, callback: Callable[[], Any]) -> None:
    with contextlib.suppress(RuntimeError):  # the loop is closed: nobody is counting any more
        loop.call_soon_threadsafe(callback)
