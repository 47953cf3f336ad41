"""A gateway: the profiles, the store and the sequencer, opened and closed together.

:meth:`Gateway.prepare` does the synchronous checks that must stop start-up with one clear line
(profiles, store lock) before any server starts; :meth:`Gateway.start` restores the committed state
inside the server's event loop.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import orjson

from ordergate.config import LogFormat, Settings
from ordergate.domain.book import Book
from ordergate.domain.registry import Registry
from ordergate.errors import StartupError
from ordergate.profiles import load_registry
from ordergate.service.decision_log import DecisionLog
from ordergate.service.sequencer import Sequencer
from ordergate.store.sqlite import SQLiteStore


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
    _decision_log: DecisionLog | None = field(default=None, repr=False)

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
        sequencer = Sequencer(self.store, self.registry, book, snapshot.last_order_id)
        self._decision_log = DecisionLog(self.settings.logs_dir, json_lines=self.settings.log_format is LogFormat.JSON)
        sequencer.on_commit(self._decision_log)
        sequencer.start()
        self.sequencer = sequencer
        self.ready = True
        return sequencer

    async def stop(self) -> None:
        self.ready = False
        if self.sequencer is not None:
            await self.sequencer.stop()
        await self.store.close()
        if self._decision_log is not None:
            self._decision_log.close()
