"""Faults on the embedded store's real writer connection, run on the writer's own thread.

The tests reach the SQLite store behind the gateway's metering wrapper on purpose: capping the file's
size fills the disk for real (``SQLITE_FULL``), ``query_only`` makes every commit fail for real.
"""

from __future__ import annotations

import asyncio
import sqlite3
from collections.abc import Callable

from ordergate.service.gateway import Gateway
from ordergate.store.metered import MeteredStore
from ordergate.store.sqlite import SQLiteStore


def embedded_store(gateway: Gateway) -> SQLiteStore:
    metered = gateway.store
    assert isinstance(metered, MeteredStore)
    assert isinstance(metered.inner, SQLiteStore)
    return metered.inner


async def on_writer(gateway: Gateway, change: Callable[[sqlite3.Connection], None]) -> None:
    store = embedded_store(gateway)

    def run() -> None:
        assert store._writer is not None
        change(store._writer)

    await asyncio.get_running_loop().run_in_executor(store._write_thread, run)


async def cap_database_size(gateway: Gateway, pages: int | None) -> None:
    """Limit the file to its current size (``None``) or to ``pages`` pages."""

    def cap(conn: sqlite3.Connection) -> None:
        limit = pages if pages is not None else conn.execute("PRAGMA page_count").fetchone()[0]
        conn.execute(f"PRAGMA max_page_count = {limit}")

    await on_writer(gateway, cap)


async def refuse_writes(gateway: Gateway, refuse: bool) -> None:
    """Make every commit fail (SQLITE_READONLY), or work again."""
    await on_writer(gateway, lambda conn: conn.execute(f"PRAGMA query_only = {int(refuse)}") and None)
