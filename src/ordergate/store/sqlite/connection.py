"""How every connection to an ordergate SQLite file is opened, migrated and, once, chained.

The pragmas (WAL, ``synchronous``, busy timeout, foreign keys) live in :mod:`.pragmas`, which the
writer process imports alone; this module adds what needs the rest of ordergate.
"""

from __future__ import annotations

import sqlite3
from pathlib import Path

from ordergate.domain.chain import Chains, single_chain
from ordergate.errors import StartupError
from ordergate.store.base import Durability
from ordergate.store.codec import decode_record
from ordergate.store.sqlite.pragmas import open_connection
from ordergate.store.sqlite.schema import CATCH_UP, LATEST_VERSION, MIGRATIONS

ORDER_COLUMNS = (
    "order_id, received_at, strategy, instrument, side, status, reason, scope, "
    "profile_fingerprint, client_order_id, applied, rejected_for, controls_fingerprint, chain_hash, "
    "origin, actor, risk_fingerprint, signal_time, door"
)
"""Every column of an order row, in :func:`~ordergate.store.codec.decode_record`'s order (each schema
version's columns after those of the versions before it)."""

CHAIN_VERSION = 3
"""The schema version from which every order carries its hash-chain link."""
ENTRY_VERSION = 6
"""The schema version from which an order can say its origin, actor, risk policy and signal time."""
DOOR_VERSION = 7
"""The schema version from which an order can say the door it came through."""


def connect(path: Path, durability: Durability, *, read_only: bool = False) -> sqlite3.Connection:
    """A connection configured the way every ordergate connection must be (:mod:`.pragmas`)."""
    return open_connection(path, fsync_every_commit=durability is Durability.FULL, read_only=read_only)


def migrate(conn: sqlite3.Connection) -> int:
    """Bring the schema to the latest version, one transaction per migration; returns the version found."""
    version: int = conn.execute("PRAGMA user_version").fetchone()[0]
    if version > LATEST_VERSION:
        raise StartupError(
            f"the store's schema version {version} is newer than this ordergate knows ({LATEST_VERSION}); "
            "upgrade ordergate"
        )
    for target, script in MIGRATIONS:
        if target <= version:
            continue
        conn.execute("BEGIN IMMEDIATE")
        try:
            for statement in script.split(";"):
                if statement.strip():
                    conn.execute(statement)
            conn.execute(f"PRAGMA user_version = {target}")
            conn.execute("COMMIT")
        except BaseException:
            conn.execute("ROLLBACK")
            raise
    return version


def catch_up(conn: sqlite3.Connection) -> None:
    """Bring the side index (orders by strategy and by instrument) up to the last order stored, in a
    transaction of its own: the store does it when it opens, so its listings start with no tail."""
    conn.execute("BEGIN IMMEDIATE")
    try:
        for statement in CATCH_UP:
            conn.execute(statement)
        conn.execute("COMMIT")
    except BaseException:
        conn.execute("ROLLBACK")
        raise


def link_unchained_orders(conn: sqlite3.Connection) -> int:
    """Give the orders written before the hash chain existed their links, in order_id order, at once.

    Runs once, when a store is upgraded to the chain's schema version; returns how many orders it linked.
    It runs after every migration (:func:`migrate`), so every column of :data:`ORDER_COLUMNS` exists;
    the orders it links are older than origins and actors, which read as none and hash as before.
    """
    conn.execute("BEGIN IMMEDIATE")
    try:
        chains = Chains(single_chain)
        linked: list[tuple[str, int]] = []
        for row in conn.execute(f"SELECT {ORDER_COLUMNS} FROM orders ORDER BY order_id").fetchall():
            record = decode_record(*row)
            if record.chain_hash is None:
                linked.append((chains.link(record), record.order_id))
            else:
                chains.advance(record, record.chain_hash)
        conn.executemany("UPDATE orders SET chain_hash = ? WHERE order_id = ?", linked)
        conn.execute("COMMIT")
    except BaseException:
        conn.execute("ROLLBACK")
        raise
    return len(linked)


def chain_head(conn: sqlite3.Connection) -> str | None:
    row = conn.execute("SELECT chain_hash FROM orders ORDER BY order_id DESC LIMIT 1").fetchone()
    return str(row[0]) if row is not None and row[0] is not None else None
