"""The composition root: the one module that names the concrete stores and sequencers.

From the settings it builds the gateway of one process: the profiles, the store (behind the one
metering wrapper), and the sequencer that suits the store:

- no database URL (or ``sqlite:///PATH``): the embedded SQLite store, owned by this process alone
  (an exclusive lock refuses a second one), with the :class:`~ordergate.service.sequencer.LocalSequencer`
  that decides against the in-memory book;
- ``postgresql://...``: the shared PostgreSQL store with the
  :class:`~ordergate.service.shared_sequencer.SharedSequencer`, which decides inside locked
  transactions so that any number of processes can share the database. psycopg is imported only
  here, only in that case, so the SQLite default runs without the ``postgres`` extra.

Everything else (the service, the API, the CLI) sees the interfaces: :class:`~ordergate.store.base.Store`,
:class:`~ordergate.store.base.LogReader` and :class:`~ordergate.service.sequencing.Sequencing`.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING

from ordergate.config import Settings
from ordergate.domain.book import Book
from ordergate.domain.registry import Registry
from ordergate.errors import StartupError
from ordergate.profiles import load_registry
from ordergate.service.clock import Clock, utc_now
from ordergate.service.feeds import CommitFeed, LogTail
from ordergate.service.gateway import DoorFactory, Gateway
from ordergate.service.runtime import StartPause
from ordergate.service.sequencer import LocalSequencer
from ordergate.service.sequencing import Sequencing
from ordergate.service.shared_sequencer import SharedSequencer
from ordergate.store.base import LogReader, Snapshot
from ordergate.store.metered import MeteredSharedStore, MeteredStore, StoreErrors
from ordergate.store.sqlite import SQLiteLogReader, SQLiteStore

if TYPE_CHECKING:
    from ordergate.fix.journal import FixJournal
    from ordergate.store.postgres import PostgresStore

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


def open_log_reader(settings: Settings, *, audit: bool = True) -> LogReader:
    """A read-only reader of one consistent snapshot of the configured store's whole log.

    ``audit`` (``verify``) refuses a store from before the hash chain; exports read any version.
    """
    if uses_postgres(settings):
        assert settings.db is not None
        postgres_store(settings)  # the same clear message when the extra is missing
        from ordergate.store.postgres import PostgresLogReader

        return PostgresLogReader(settings.db, audit=audit)
    return SQLiteLogReader(sqlite_path(settings), audit=audit)


def prepare_gateway(settings: Settings, *, clock: Clock = utc_now) -> Gateway:
    """Load the profiles and lock (SQLite) or probe (PostgreSQL) the store, or raise :class:`StartupError`.

    Everything here runs before any server starts, so that a problem is one line and exit code 2.
    The collector is paused meanwhile, and the registry frozen once built: it lives as long as the
    process, and no collection need walk its 100,000 users while the server starts
    (:mod:`ordergate.service.runtime`). ``clock`` stamps every order and change (tests move it: the
    limits and the session are decided at each order's ``received_at``).
    """
    pause = StartPause()
    try:
        gateway = _gateway(settings, clock)
    except BaseException:
        pause.resume(freeze=False)
        raise
    pause.resume(freeze=True)
    return gateway


def fix_doors(settings: Settings, journal: Callable[[], FixJournal]) -> tuple[DoorFactory, ...]:
    """The FIX acceptor of ``--fix-port`` (none without it), journaled in the gateway's own store."""
    port = settings.fix_port
    if port is None:
        return ()
    from ordergate.fix.server import FixAcceptor, listening_socket
    from ordergate.security.keys import KeyRing

    keys = KeyRing.load(settings.auth) if settings.auth is not None else None
    listening = listening_socket(settings.host, port)  # a port in use stops the start here, in one line

    def acceptor(sequencer: Sequencing) -> FixAcceptor:
        return FixAcceptor(sequencer, journal(), listening, keys=keys)

    return (acceptor,)


def _gateway(settings: Settings, clock: Clock) -> Gateway:
    registry = load_registry(settings.profile_path)
    errors = StoreErrors()
    scope = settings.scope
    if uses_postgres(settings):
        shared = postgres_store(settings)
        shared.probe(scope)
        metered_shared = MeteredSharedStore(shared, errors)

        def shared_sequencer(snapshot: Snapshot, registry: Registry) -> Sequencing:
            return SharedSequencer(metered_shared, registry, scope, snapshot.opened, clock=clock)

        def postgres_journal() -> FixJournal:
            from ordergate.store.postgres.fix_journal import PostgresFixJournal

            assert settings.db is not None
            return PostgresFixJournal(settings.db, settings.durability)

        doors = fix_doors(settings, postgres_journal)
        return Gateway(settings, registry, metered_shared, shared_sequencer, LogTail, errors, clock=clock, doors=doors)

    embedded = SQLiteStore(sqlite_path(settings), settings.durability)
    embedded.lock()
    metered = MeteredStore(embedded, errors)

    def local_sequencer(snapshot: Snapshot, registry: Registry) -> Sequencing:
        book = Book.restore(scope, snapshot.opened)
        return LocalSequencer(metered, registry, book, snapshot.last_order_id, clock=clock)

    path = sqlite_path(settings)

    def sqlite_journal() -> FixJournal:
        from ordergate.store.sqlite.fix_journal import SQLiteFixJournal

        return SQLiteFixJournal(path, settings.durability)

    doors = fix_doors(settings, sqlite_journal)
    return Gateway(settings, registry, metered, local_sequencer, CommitFeed, errors, clock=clock, doors=doors)
