"""A gateway: the profiles, the store and the sequencer, opened and closed together.

:meth:`Gateway.prepare` does the synchronous checks that must stop start-up with one clear line
(profiles, store lock) before any server starts; :meth:`Gateway.start` restores the committed state
inside the server's event loop and registers the sequencer's commit listeners: the decision log,
the telemetry behind ``/v1/stats`` and ``/metrics``, and the event hub behind ``/v1/events``.
"""

from __future__ import annotations

import asyncio
import logging
from dataclasses import dataclass, field
from pathlib import Path

import orjson

from ordergate.config import LogFormat, Settings
from ordergate.domain.book import Book
from ordergate.domain.registry import Registry
from ordergate.errors import StartupError
from ordergate.profiles import load_registry
from ordergate.service.decision_log import DecisionLog
from ordergate.service.events import EventHub
from ordergate.service.exit_signals import ExitSignalHook
from ordergate.service.sequencer import Sequencer
from ordergate.service.telemetry import LogTotals, MeteredStore, Telemetry, totals_from_rows
from ordergate.store.sqlite import SQLiteStore
from ordergate.store.sqlite_snapshot import SQLiteSnapshot

log = logging.getLogger(__name__)


def sqlite_path(settings: Settings) -> Path:
    """The SQLite file this configuration uses; refuses database URLs this version cannot open."""
    if settings.db is None:
        return settings.sqlite_path
    if settings.db.startswith("sqlite:///"):
        return Path(settings.db.removeprefix("sqlite:///")).expanduser().resolve()
    scheme = settings.db.split(":", 1)[0]
    raise StartupError(
        f"--db {scheme}://...: this version stores orders in SQLite only; leave --db out (or use sqlite:///PATH)"
    )


@dataclass
class Gateway:
    settings: Settings
    registry: Registry
    store: SQLiteStore
    sequencer: Sequencer | None = None
    ready: bool = False
    telemetry: Telemetry | None = None
    events: EventHub | None = None
    _decision_log: DecisionLog | None = field(default=None, repr=False)
    _exit_hook: ExitSignalHook | None = field(default=None, repr=False)
    _history: asyncio.Task[None] | None = field(default=None, repr=False)

    @classmethod
    def prepare(cls, settings: Settings) -> Gateway:
        """Load the profiles and lock the store, or raise :class:`StartupError` saying what to fix."""
        registry = load_registry(settings.profile_path)
        store = SQLiteStore(sqlite_path(settings), settings.durability)
        store.lock()
        return cls(settings, registry, store)

    async def start(self) -> Sequencer:
        snapshot = await self.store.open(self.settings.scope)
        await self.store.record_profiles(self.registry.fingerprint, orjson.dumps(self.registry.to_document()).decode())
        book = Book(self.settings.scope, snapshot.positions)
        telemetry = Telemetry(snapshot.last_order_id, len(snapshot.positions))
        self._history = asyncio.create_task(self._read_history(telemetry, snapshot.last_order_id))
        events = EventHub(snapshot.last_order_id, self.settings.event_buffer)
        sequencer = Sequencer(MeteredStore(self.store, telemetry), self.registry, book, snapshot.last_order_id)
        self._decision_log = DecisionLog(self.settings.logs_dir, json_lines=self.settings.log_format is LogFormat.JSON)
        sequencer.on_commit(self._decision_log)
        sequencer.on_commit(telemetry.on_commit)
        sequencer.on_commit(events.publish)  # last: a client that reads stats then events sees no gap
        self._exit_hook = ExitSignalHook(events.close)
        self._exit_hook.install()
        self.telemetry, self.events = telemetry, events
        sequencer.start()
        self.sequencer = sequencer
        self.ready = True
        return sequencer

    async def _read_history(self, telemetry: Telemetry, until: int) -> None:
        """Give the telemetry the log's totals before the start, read on a thread while serving."""
        try:
            totals = await asyncio.to_thread(_log_totals, self.store.path, until)
        except Exception as exc:
            log.exception("cannot read the order log's totals for /v1/stats")
            telemetry.history_failed(f"{type(exc).__name__}: {exc}")
        else:
            telemetry.set_history(totals)

    async def stop(self) -> None:
        self.ready = False
        if self._history is not None and not self._history.done():
            self._history.cancel()
        if self._exit_hook is not None:
            self._exit_hook.uninstall()
        if self.events is not None:
            self.events.close()
        if self.sequencer is not None:
            await self.sequencer.stop()
        await self.store.close()
        if self._decision_log is not None:
            self._decision_log.close()


def _log_totals(path: Path, until: int) -> LogTotals:
    with SQLiteSnapshot(path) as snapshot:
        return totals_from_rows(snapshot.order_totals(until), until)
