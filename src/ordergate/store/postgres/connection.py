"""How a gateway process connects to PostgreSQL: session settings, advisory-lock keys, messages.

Every connection (the pool's, ``verify``'s, the exports') gets ordergate's session settings
(:func:`conninfo`), so durability and the lock and idle timeouts hold whoever opens it.
"""

from __future__ import annotations

import functools
import hashlib

import psycopg
from psycopg.conninfo import conninfo_to_dict, make_conninfo

from ordergate.errors import StartupError
from ordergate.store.base import Durability

CONNECT_TIMEOUT = 2.0
"""Seconds a request waits for a connection before it is answered 503 (database down)."""
LOCK_TIMEOUT = "5s"
IDLE_IN_TRANSACTION_TIMEOUT = "10s"


@functools.lru_cache(maxsize=65_536)
def lock_key(name: str) -> int:
    """The 32-bit advisory-lock key of a name (signed, as PostgreSQL's ``int4`` wants it)."""
    return int.from_bytes(hashlib.blake2b(name.encode(), digest_size=4).digest(), "big", signed=True)


def display_url(url: str) -> str:
    """The database URL as shown to people: without its password."""
    try:
        params = conninfo_to_dict(url)
    except psycopg.ProgrammingError:
        return url.split("@")[-1]
    host, port, dbname = params.get("host", "localhost"), params.get("port", "5432"), params.get("dbname", "")
    user = f"{params['user']}@" if "user" in params else ""
    return f"postgresql://{user}{host}:{port}/{dbname}"


def problem_of(exc: BaseException) -> str:
    """The first line of a driver error: what went wrong, without the driver's context lines."""
    text = str(exc).strip() or type(exc).__name__
    return text.splitlines()[0]


def conninfo(url: str, durability: Durability) -> str:
    """The URL with ordergate's session settings added to whatever ``options`` it already has."""
    try:
        params = conninfo_to_dict(url)
    except psycopg.ProgrammingError as exc:
        raise StartupError(f"--db: not a valid PostgreSQL URL: {problem_of(exc)}") from None
    settings = (
        f"-c synchronous_commit={'on' if durability is Durability.FULL else 'off'} "
        f"-c lock_timeout={LOCK_TIMEOUT} -c idle_in_transaction_session_timeout={IDLE_IN_TRANSACTION_TIMEOUT}"
    )
    options = str(params.get("options") or "")
    params["options"] = f"{options} {settings}".strip()
    params.setdefault("application_name", "ordergate")
    params.setdefault("connect_timeout", str(max(1, int(CONNECT_TIMEOUT))))
    return make_conninfo("", **params)
