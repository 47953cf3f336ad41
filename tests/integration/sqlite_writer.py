"""Faults on the embedded store's real writer connection, in the writer process itself.

The tests reach the SQLite store behind the gateway's metering wrapper on purpose: capping the file's
size fills the disk for real (``SQLITE_FULL``), ``query_only`` makes every commit fail for real.
"""

from __future__ import annotations

from ordergate.service.gateway import Gateway
from ordergate.store.metered import MeteredStore
from ordergate.store.sqlite import SQLiteStore


def embedded_store(gateway: Gateway) -> SQLiteStore:
    metered = gateway.store
    assert isinstance(metered, MeteredStore)
    assert isinstance(metered.inner, SQLiteStore)
    return metered.inner


async def cap_database_size(gateway: Gateway, pages: int | None) -> None:
    """Limit the file to its current size (``None``) or to ``pages`` pages."""
    store = embedded_store(gateway)
    limit = pages if pages is not None else (await store.run_on_writer("PRAGMA page_count"))[0][0]
    await store.run_on_writer(f"PRAGMA max_page_count = {int(limit)}")


async def refuse_writes(gateway: Gateway, refuse: bool) -> None:
    """Make every commit fail (SQLITE_READONLY), or work again."""
    await embedded_store(gateway).run_on_writer(f"PRAGMA query_only = {int(refuse)}")
