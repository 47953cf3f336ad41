"""The shared engine: one PostgreSQL database behind any number of gateway processes
(:class:`~ordergate.store.postgres.store.PostgresStore`), and a read-only reader of its whole log for
``verify`` (:class:`~ordergate.store.postgres.log.PostgresLogReader`). Importing it needs psycopg."""

from ordergate.store.postgres.log import PostgresLogReader
from ordergate.store.postgres.store import PostgresStore

__all__ = ["PostgresLogReader", "PostgresStore"]
