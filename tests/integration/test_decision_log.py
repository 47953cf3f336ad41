"""The decision log in Logs/: one line per committed decision, none for orders whose commit failed."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.integration.conftest import OpenGateway
from tests.integration.sqlite_writer import refuse_writes

pytestmark = pytest.mark.anyio


async def test_only_committed_decisions_are_logged_one_line_each(seed_home: Path, open_gateway: OpenGateway) -> None:
    async with open_gateway(seed_home) as (client, gateway):
        await client.post("/create_order", json={"STRATEGY": "STRATEGY_B", "INSTRUMENT": "MINDA", "POSITION": "BUY"})
        await refuse_writes(gateway, True)
        failed = await client.post(
            "/create_order", json={"STRATEGY": "STRATEGY_A", "INSTRUMENT": "MINDA", "POSITION": "SELL"}
        )
        await refuse_writes(gateway, False)
        await client.post("/create_order", json={"STRATEGY": "STRATEGY_D", "INSTRUMENT": "INFY", "POSITION": "BUY"})
    assert failed.status_code == 503
    lines = (seed_home / "Logs" / "decisions.log").read_text(encoding="utf-8").splitlines()
    assert len(lines) == 2
    assert "order=1 ACCEPTED STRATEGY_B MINDA BUY users=Holland Proctor OPENED" in lines[0]
    assert "order=2 REJECTED STRATEGY_D INFY BUY reason=INSTRUMENT_NOT_TRADED" in lines[1]
