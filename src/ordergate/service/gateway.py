"""A gateway: the profiles, the store and the sequencer, opened and closed together.

:meth:`Gateway.prepare` does the synchronous checks that must stop start-up with one clear line
(profiles, store lock) before any server starts; :meth:`Gateway.start` restores the committed state
inside the server's event loop and registers the sequencer's commit listeners: the decision log,
the telemetry behind ``/v1/stats`` and ``/metrics``, and the event hub behind ``/v1/events``.

The database URL picks the store and its sequencer: no URL (or ``sqlite:///PATH``) gives the
embedded SQLite store, owned by this process alone, with the in-memory :class:`Sequencer`;
``postgresql://...`` gives the shared PostgreSQL store with the :class:`SharedSequencer`, which
decides inside locked transactions so that any number of processes can share the database. psycopg
is imported only in the second case, so the SQLite default runs without the ``postgres`` extra.
"""

from __future__ import annotations

import asyncio
import logging
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

import orjson

from ordergate.config import LogFormat, Settings
from ordergate.domain.book import Book
from ordergate.domain.registry import Registry
from ordergate.errors import StartupError
from ordergate.profiles import load_registry
from ordergate.service.decision_log import DecisionLog
from ordergate.service.events import EventHub
from ordergate.service.exit_signals import ExitSignalHook
from ordergate.service.runtime import collector_paused
from ordergate.service.sequencer import Sequencer
from ordergate.service.shared_sequencer import SharedSequencer
from ordergate.service.telemetry import LogTotals, MeteredStore, Telemetry, totals_from_rows
from ordergate.store.base import LogReader
from ordergate.store.sqlite import SQLiteLogReader, SQLiteStore
from ordergate.store.sqlite_snapshot import SQLiteSnapshot

if TYPE_CHECKING:
    from ordergate.store.postgres import PostgresStore

log = logging.getLogger(__name__)

POSTGRES_SCHEMES = ("postgresql://", "postgres://")


def uses_postgres(settings: Settings) -> bool:
    return settings.db is not None and settings.db.startswith(POSTGRES_SCHEMES)


def sqlite_path(settings: Settings) -> Path:
    """The SQLite file this configuration uses; refuses database URLs that are not SQLite."""
    if settings.db is None:
        return settings.sqlite_path
    if settings.db.startswith("sqlite:///"):
        return Path(settings.db.removeprefix("sqlite:///")).expanduser().resolve()
    scheme = settings.db.split(":", 1)[0]
    if uses_postgres(settings):
        raise StartupError(f"--db {scheme}://...: this command reads SQLite stores only")
    raise StartupError(
        f"--db {scheme}://...: ordergate stores orders in SQLite (leave --db out, or sqlite:///PATH) "
        "or in PostgreSQL (postgresql://USER@HOST:PORT/DATABASE)"
    )


def postgres_store(settings: Settings) -> PostgresStore:
    """The PostgreSQL store of ``settings.db``, or a :class:`StartupError` if its extra is missing."""
    assert settings.db is not None
    try:
        from ordergate.store.postgres import PostgresStore
    except ImportError:
        raise StartupError(
            "--db postgresql://...: the PostgreSQL driver is not installed; pip install 'ordergate[postgres]'"
        ) from None
    return PostgresStore(settings.db, settings.durability)


def open_log_reader(settings: Settings) -> LogReader:
    """A read-only reader of the whole order log of the configured store (``verify``)."""
    if uses_postgres(settings):
        assert settings.db is not None
        postgres_store(settings)  # the same clear message when the extra is missing
        from ordergate.store.postgres_log import PostgresLogReader

        return PostgresLogReader(settings.db)
    return SQLiteLogReader(sqlite_path(settings))


@dataclass
class Gateway:
    settings: Settings
    registry: Registry
    store: SQLiteStore | PostgresStore
    sequencer: Sequencer | None = None
    ready: bool = False
    telemetry: Telemetry | None = None
    events: EventHub | None = None
    _decision_log: DecisionLog | None = field(default=None, repr=False)
    _exit_hook: ExitSignalHook | None = field(default=None, repr=False)
    _history: asyncio.Task[None] | None = field(default=None, repr=False)

    @classmethod
    def prepare(cls, settings: Settings) -> Gateway:
        """Load the profiles and lock the store, or raise :class:`StartupError` saying what to fix.

        The SQLite store is locked to this process. A PostgreSQL store is shared (no lock): it is
        only probed here, so that an unreachable database or a scope it cannot serve is one line.
        """
        with collector_paused():
            registry = load_registry(settings.profile_path)
        if uses_postgres(settings):
            shared = postgres_store(settings)
            shared.probe(settings.scope)
            return cls(settings, registry, shared)
        store = SQLiteStore(sqlite_path(settings), settings.durability)
        store.lock()
        return cls(settings, registry, store)

    async def start(self) -> Sequencer:
        store = self.store
        with collector_paused():  # nothing else runs before the gateway is ready
            snapshot = await store.open(self.settings.scope)
        await store.record_profiles(self.registry.fingerprint, orjson.dumps(self.registry.to_document()).decode())
        telemetry = Telemetry(snapshot.last_order_id, len(snapshot.positions))
        self._history = asyncio.create_task(self._read_history(telemetry, snapshot.last_order_id))
        events = EventHub(snapshot.last_order_id, self.settings.event_buffer)
        sequencer: Sequencer
        if isinstance(store, SQLiteStore):
            with collector_paused():
                book = Book(self.settings.scope, snapshot.positions)
            sequencer = Sequencer(MeteredStore(store, telemetry), self.registry, book, snapshot.last_order_id)
        else:
            sequencer = SharedSequencer(
                store,
                self.registry,
                self.settings.scope,
                snapshot.positions,
                on_store_error=telemetry.record_store_error,
            )
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
        store = self.store
        try:
            if isinstance(store, SQLiteStore):
                totals = await asyncio.to_thread(_log_totals, store.path, until)
            else:
                totals = totals_from_rows(await store.order_totals(until), until)
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
