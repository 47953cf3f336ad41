"""End long-lived streams as soon as the process is asked to stop (SIGINT, SIGTERM).

A server stopping gracefully waits for open responses to finish before it shuts the application
down, and an event stream never finishes by itself: without help, every connected dashboard would
hold a Ctrl-C for the server's whole graceful timeout. While installed, :class:`ExitSignalHook`
sits in front of the signal handlers already in place (the server's own): it schedules ``callback``
on the event loop, then hands the signal to the previous handler unchanged. Outside the main thread
(where signals cannot be handled) it does nothing.
"""

from __future__ import annotations

import asyncio
import signal
import threading
from collections.abc import Callable
from types import FrameType
from typing import Any

SIGNALS = (signal.SIGINT, signal.SIGTERM)


class ExitSignalHook:
    def __init__(self, callback: Callable[[], None]) -> None:
        self._callback = callback
        self._loop: asyncio.AbstractEventLoop | None = None
        self._previous: dict[int, Any] = {}
        self._armed = False

    def install(self) -> None:
        """Chain in front of the current SIGINT and SIGTERM handlers (main thread, inside the loop)."""
        if threading.current_thread() is not threading.main_thread() or self._armed:
            return
        self._loop = asyncio.get_running_loop()
        for sig in SIGNALS:
            self._previous[sig] = signal.signal(sig, self._handle)
        self._armed = True

    def uninstall(self) -> None:
        """Put the previous handlers back where this hook is still the current one; forward otherwise."""
        if not self._armed:
            return
        self._armed = False
        for sig, previous in self._previous.items():
            if signal.getsignal(sig) == self._handle:
                signal.signal(sig, previous)

    def _handle(self, sig: int, frame: FrameType | None) -> None:
        if self._armed and self._loop is not None and not self._loop.is_closed():
            self._loop.call_soon_threadsafe(self._callback)
        previous = self._previous.get(sig)
        if callable(previous):
            previous(sig, frame)
        elif previous == signal.SIG_DFL:
            signal.signal(sig, signal.SIG_DFL)
            signal.raise_signal(sig)


def exit_zero_after_graceful_sigterm() -> None:
    """Let a server stopped by SIGTERM exit with code 0 once its graceful shutdown is done.

    uvicorn handles SIGTERM itself (stop accepting, finish the requests in flight, run the shutdown)
    and then raises the signal again for the handler that was in place before it started: with the
    default handler the process would die of the signal (exit status -15) after a clean stop. Call
    this just before ``uvicorn.run`` in the main thread; SIGINT keeps its usual meaning.
    """
    if threading.current_thread() is threading.main_thread():
        signal.signal(signal.SIGTERM, _stopped)


def _stopped(sig: int, frame: FrameType | None) -> None:
    """The handler uvicorn hands SIGTERM back to after its graceful shutdown: nothing left to do."""
