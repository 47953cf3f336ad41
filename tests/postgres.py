"""A real PostgreSQL server for the tests: a fresh database per test, dropped afterwards.

The server is the one at ``TEST_POSTGRES_URL`` (default: the local one, as CI starts it). Its
databases are created with ``CREATE DATABASE ordergate_test_<random>`` and dropped with ``FORCE``,
so nothing is left behind. Without a reachable server the PostgreSQL tests are skipped on a
developer's machine and fail in CI (``CI=true``), where a silent skip would hide them.
"""

from __future__ import annotations

import contextlib
import functools
import os
import secrets
from collections.abc import Iterator

import pytest

ADMIN_URL = os.environ.get("TEST_POSTGRES_URL", "postgresql://postgres@127.0.0.1:5432/test")


@functools.cache
def unreachable() -> str | None:
    """Why the test server cannot be used, or ``None`` when it can."""
    try:
        import psycopg
    except ImportError:
        return "psycopg is not installed (pip install -e '.[test]')"
    try:
        with psycopg.connect(ADMIN_URL, connect_timeout=3):
            return None
    except psycopg.Error as exc:
        return f"no PostgreSQL at {ADMIN_URL}: {str(exc).strip().splitlines()[0]}"


def require_postgres() -> None:
    """Skip the test without a server, or fail it in CI."""
    problem = unreachable()
    if problem is None:
        return
    if os.environ.get("CI", "").lower() == "true":
        pytest.fail(f"CI needs PostgreSQL for these tests: {problem}")
    pytest.skip(problem)


def database_url(name: str) -> str:
    base, _, _ = ADMIN_URL.rpartition("/")
    return f"{base}/{name}"


def admin(sql: str, *params: object) -> list[tuple[object, ...]]:
    """Run one statement on the server's admin database (autocommit) and return its rows."""
    import psycopg

    with psycopg.connect(ADMIN_URL, autocommit=True) as conn:
        cursor = conn.execute(sql, params or None)
        return cursor.fetchall() if cursor.description is not None else []


@contextlib.contextmanager
def fresh_database() -> Iterator[str]:
    """A new, empty database for one test; its URL. Dropped afterwards, even if sessions remain."""
    require_postgres()
    name = f"ordergate_test_{secrets.token_hex(6)}"
    admin(f"CREATE DATABASE {name}")
    try:
        yield database_url(name)
    finally:
        admin(f"ALTER DATABASE {name} ALLOW_CONNECTIONS true")
        admin(f"DROP DATABASE {name} WITH (FORCE)")


def database_name(url: str) -> str:
    return url.rpartition("/")[2]


def take_database_down(url: str) -> None:
    """Refuse new connections to the database and end every open one: to its clients it is down."""
    name = database_name(url)
    admin(f"ALTER DATABASE {name} ALLOW_CONNECTIONS false")
    kill_connections(url)


def bring_database_back(url: str) -> None:
    admin(f"ALTER DATABASE {database_name(url)} ALLOW_CONNECTIONS true")


def kill_connections(url: str) -> int:
    """``pg_terminate_backend`` on every session of the database; how many there were."""
    rows = admin(
        "SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity WHERE datname = %s AND pid <> pg_backend_pid()",
        database_name(url),
    )
    return int(str(rows[0][0]))
