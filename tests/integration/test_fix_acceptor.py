"""The acceptor over a real gateway with a journal that fails: nothing is sent that was not journaled, and
the counterparty's resend of the order gets the decision the order log already holds."""

from __future__ import annotations

import asyncio
import re
from collections.abc import Sequence
from datetime import UTC, datetime
from pathlib import Path

import pytest

from ordergate.errors import StoreUnavailable
from ordergate.fix.codec import sending_time
from ordergate.fix.journal import MemoryJournal, SentMessage
from ordergate.fix.server import FixAcceptor, listening_socket
from ordergate.fix.session import SessionKey, SessionState
from tests.conftest import SEED_PROFILES, write_home
from tests.integration.conftest import running_gateway

pytestmark = pytest.mark.anyio


class BrokenJournal(MemoryJournal):
    """Stores the Logon's counters, then fails every record (a disk that filled up)."""

    def __init__(self) -> None:
        super().__init__()
        self.records = 0

    async def record(self, key: SessionKey, state: SessionState, sent: Sequence[SentMessage]) -> None:
        self.records += 1
        if self.records > 1:
            raise StoreUnavailable("disk full")
        await super().record(key, state, sent)


def _frame(msg_type: str, seq: int, *body: tuple[int, str], poss_dup: bool = False) -> bytes:
    fields = [(35, msg_type), (49, "DESK"), (56, "ORDERGATE"), (34, str(seq)), (52, sending_time(datetime.now(UTC)))]
    if poss_dup:
        fields += [(43, "Y"), (122, sending_time(datetime.now(UTC)))]
    content = "".join(f"{tag}={value}\x01" for tag, value in [*fields, *body]).encode()
    head = f"8=FIX.4.4\x019={len(content)}\x01".encode() + content
    return head + f"10={sum(head) % 256:03d}\x01".encode()


async def _receive(reader: asyncio.StreamReader) -> dict[int, str] | None:
    """The next frame's fields, or ``None`` once the acceptor closed the connection."""
    data = b""
    while re.search(rb"\x0110=\d{3}\x01$", data) is None:
        chunk = await asyncio.wait_for(reader.read(1), 5)
        if not chunk:
            return None
        data += chunk
    return {int(t): v for t, _, v in (p.partition("=") for p in data.decode().split("\x01") if p)}


ORDER = ((11, "kept-1"), (55, "GRASIM"), (54, "1"), (1, "STRATEGY_A"))


async def test_a_report_the_journal_cannot_store_is_never_sent_and_the_resend_gets_the_stored_decision(
    tmp_path: Path,
) -> None:
    home = write_home(tmp_path / "home", SEED_PROFILES)
    async with running_gateway(home) as (client, gateway):
        assert gateway.sequencer is not None
        broken = BrokenJournal()
        acceptor = FixAcceptor(gateway.sequencer, broken, listening_socket("127.0.0.1", 0))
        await acceptor.start()
        try:
            reader, writer = await asyncio.open_connection(acceptor.host, acceptor.port)
            writer.write(_frame("A", 1, (98, "0"), (108, "30")))
            logon = await _receive(reader)
            assert logon is not None
            assert logon[35] == "A"
            writer.write(_frame("D", 2, *ORDER))
            assert await _receive(reader) is None  # closed, and the report never went out
            writer.close()
        finally:
            await acceptor.stop()
        decided = (await client.get("/v1/orders", params={"limit": 10})).json()["items"]
        assert [(o["client_order_id"], o["door"]) for o in decided] == [("kept-1", "fix")]  # the decision is durable

        # the journal works again (it kept the counters of the Logon): the counterparty logs on with 3,
        # is asked for 2, and sends the order again as a possible duplicate
        healthy = MemoryJournal()
        healthy.states, healthy.messages = broken.states, broken.messages
        acceptor = FixAcceptor(gateway.sequencer, healthy, listening_socket("127.0.0.1", 0))
        await acceptor.start()
        try:
            reader, writer = await asyncio.open_connection(acceptor.host, acceptor.port)
            writer.write(_frame("A", 3, (98, "0"), (108, "30")))
            logon, resend = await _receive(reader), await _receive(reader)
            assert logon is not None
            assert resend is not None
            assert (logon[35], logon[34]) == ("A", "2")  # ordergate's 2 was never used
            assert (resend[35], resend[7]) == ("2", "2")
            writer.write(_frame("D", 2, *ORDER, poss_dup=True))
            writer.write(_frame("4", 3, (123, "Y"), (36, "4"), poss_dup=True))
            report = await _receive(reader)
            assert report is not None
            assert (report[35], report[11], report[37], report[97]) == ("8", "kept-1", str(decided[0]["order_id"]), "Y")
            writer.close()
        finally:
            await acceptor.stop()
