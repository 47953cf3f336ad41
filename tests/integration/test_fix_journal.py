"""The FIX journal in both stores (SQLite schema 8, PostgreSQL schema 10), and a session resumed across a
restart of an in-process gateway on each store."""

from __future__ import annotations

import asyncio
import re
import socket
from collections.abc import AsyncIterator, Iterator
from datetime import UTC, datetime
from pathlib import Path

import pytest

from ordergate.domain.model import Scope
from ordergate.fix.codec import sending_time
from ordergate.fix.journal import FixJournal
from ordergate.fix.session import FRESH, SessionKey, SessionState
from ordergate.store.base import Durability
from tests.conftest import SEED_PROFILES, write_home
from tests.integration.conftest import running_gateway
from tests.postgres import fresh_database

pytestmark = pytest.mark.anyio

KEY = SessionKey("DESK1")
OTHER = SessionKey("DESK2")


@pytest.fixture(params=["sqlite", "postgresql"])
def store(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    """``sqlite:///PATH`` or the URL of a fresh PostgreSQL database."""
    if request.param == "sqlite":
        yield f"sqlite:///{tmp_path / 'store.sqlite3'}"
        return
    with fresh_database() as url:
        yield url


@pytest.fixture
async def journal(store: str) -> AsyncIterator[FixJournal]:
    """A journal over a store its gateway opened (and so migrated) first."""
    if store.startswith("sqlite"):
        from ordergate.store.sqlite import SQLiteStore
        from ordergate.store.sqlite.fix_journal import SQLiteFixJournal

        path = Path(store.removeprefix("sqlite:///"))
        sqlite = SQLiteStore(path, Durability.FULL)
        await sqlite.open(Scope.ACCOUNT)
        opened: FixJournal = SQLiteFixJournal(path)
        await opened.open()
        yield opened
        await opened.close()
        await sqlite.close()
        return
    from ordergate.store.postgres import PostgresStore
    from ordergate.store.postgres.fix_journal import PostgresFixJournal

    postgres = PostgresStore(store)
    await postgres.open(Scope.ACCOUNT)
    opened = PostgresFixJournal(store)
    await opened.open()
    yield opened
    await opened.close()
    await postgres.close()


async def test_a_new_session_starts_at_one(journal: FixJournal) -> None:
    assert await journal.load(KEY) == FRESH


async def test_recorded_counters_and_messages_are_read_back_per_session(journal: FixJournal) -> None:
    await journal.record(KEY, SessionState(3, 4), [(2, b"report-2"), (3, b"report-3")])
    await journal.record(KEY, SessionState(5, 6), [(5, b"report-5")])
    await journal.record(OTHER, SessionState(2, 2), [(1, b"other-1")])
    assert await journal.load(KEY) == SessionState(5, 6)
    assert await journal.sent_between(KEY, 3, 10) == [(3, b"report-3"), (5, b"report-5")]
    assert await journal.sent_between(OTHER, 1, 1) == [(1, b"other-1")]
    await journal.reset(KEY)
    assert await journal.load(KEY) == FRESH
    assert await journal.sent_between(KEY, 1, 10) == []
    assert await journal.load(OTHER) == SessionState(2, 2)


def _port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _frame(msg_type: str, seq: int, *body: tuple[int, str]) -> bytes:
    fields = [
        (35, msg_type),
        (49, "DESK1"),
        (56, "ORDERGATE"),
        (34, str(seq)),
        (52, sending_time(datetime.now(UTC))),
        *body,
    ]
    content = "".join(f"{tag}={value}\x01" for tag, value in fields).encode()
    head = f"8=FIX.4.4\x019={len(content)}\x01".encode() + content
    return head + f"10={sum(head) % 256:03d}\x01".encode()


async def _receive(reader: asyncio.StreamReader) -> dict[int, str]:
    data = await asyncio.wait_for(reader.readuntil(b"\x01"), 5)
    while re.search(rb"\x0110=\d{3}\x01$", data) is None:
        data += await asyncio.wait_for(reader.readuntil(b"\x01"), 5)
    return {int(t): v for t, _, v in (p.partition("=") for p in data.decode().split("\x01") if p)}


async def test_a_session_resumes_its_numbers_after_the_gateway_restarts(store: str, tmp_path: Path) -> None:
    home = write_home(tmp_path / "home", SEED_PROFILES)
    port = _port()
    settings = {"fix_port": port, "db": store}
    async with running_gateway(home, **settings):
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
        writer.write(_frame("A", 1, (98, "0"), (108, "30")))
        assert (await _receive(reader))[34] == "1"
        order = ((11, "resume-1"), (55, "GRASIM"), (54, "1"), (1, "STRATEGY_A"))
        writer.write(_frame("D", 2, *order))
        report = await _receive(reader)
        assert (report[35], report[34], report[11]) == ("8", "2", "resume-1")
        writer.write(_frame("5", 3))
        logout = await _receive(reader)
        assert (logout[35], logout[34]) == ("5", "3")
        writer.close()
    async with running_gateway(home, **settings):
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
        writer.write(_frame("A", 4, (98, "0"), (108, "30")))
        logon = await _receive(reader)
        assert (logon[35], logon[34]) == ("A", "4")  # 3 was the answer to the Logout
        # it asks for the report again: the stored one comes back as a possible duplicate
        writer.write(_frame("2", 5, (7, "2"), (16, "2")))
        again = await _receive(reader)
        assert (again[35], again[34], again[43], again[37]) == ("8", "2", "Y", report[37])
        writer.close()


async def test_a_session_claimed_by_one_gateway_process_is_refused_to_another_on_postgresql() -> None:
    from ordergate.store.postgres import PostgresStore
    from ordergate.store.postgres.fix_journal import PostgresFixJournal

    with fresh_database() as url:
        store = PostgresStore(url)
        await store.open(Scope.ACCOUNT)
        first, second = PostgresFixJournal(url), PostgresFixJournal(url)  # as two processes have them
        try:
            assert await first.claim(KEY)
            assert not await second.claim(KEY)
            assert await second.claim(OTHER)
            await first.release(KEY)
            assert await second.claim(KEY)
        finally:
            await first.close()
            await second.close()
            await store.close()
