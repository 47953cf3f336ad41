"""The decision log in Logs/: one line per committed decision, none for orders whose commit failed, and a
line saying which decisions it could not write (a full disk, for real: ``/dev/full``)."""

from __future__ import annotations

import gc
import json
import logging
import os
import threading
import time
from pathlib import Path

import pytest

from ordergate.service.decision_log import DecisionLog
from ordergate.service.log_file import DailyFile
from tests.integration.conftest import OpenGateway
from tests.integration.sqlite_writer import refuse_writes
from tests.unit.test_decision_log import record, wait_until
from tests.unit.test_telemetry import Clock


@pytest.mark.anyio
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


DEV_FULL = Path("/dev/full")
needs_dev_full = pytest.mark.skipif(not DEV_FULL.exists(), reason="needs /dev/full (Linux), which fails every write")


@needs_dev_full
@pytest.mark.anyio
async def test_orders_are_answered_while_the_disk_is_full_and_the_log_says_which_it_missed(
    seed_home: Path, open_gateway: OpenGateway, caplog: pytest.LogCaptureFixture, capfd: pytest.CaptureFixture[str]
) -> None:
    log_path = seed_home / "Logs" / "decisions.log"
    log_path.parent.mkdir(exist_ok=True)
    log_path.symlink_to(DEV_FULL)  # every write fails with ENOSPC, as on a full disk
    orders = [("STRATEGY_B", "MINDA", "BUY"), ("STRATEGY_D", "INFY", "BUY"), ("STRATEGY_B", "MINDA", "SELL")]
    with caplog.at_level(logging.WARNING, logger="ordergate.service.decision_log"):
        async with open_gateway(seed_home) as (client, _):
            for strategy, instrument, side in orders:
                answer = await client.post(
                    "/v1/orders", json={"strategy": strategy, "instrument": instrument, "side": side}
                )
                assert answer.status_code == 201
            log_path.unlink()  # room again: the gateway's last retry, when it stops, writes to a new file
    lines = log_path.read_text(encoding="utf-8").splitlines()
    assert len(lines) == 1
    assert " NOT_LOGGED orders=1-3 count=3 cause=cannot write decisions.log: No space left on device -- " in lines[0]
    warnings = [r.getMessage() for r in caplog.records if r.levelno >= logging.WARNING]
    assert len(warnings) == 2, warnings  # one when it failed, one when it could write again
    assert "cannot write" in warnings[0]
    assert "writable again" in warnings[1]
    assert "Traceback" not in capfd.readouterr().err


@needs_dev_full
@pytest.mark.parametrize("json_lines", [False, True], ids=["text", "json"])
def test_after_a_failing_file_is_replaced_the_note_comes_first_then_the_log_resumes(
    tmp_path: Path, json_lines: bool, caplog: pytest.LogCaptureFixture
) -> None:
    logs = tmp_path / "Logs"
    logs.mkdir()
    (logs / "decisions.log").symlink_to(DEV_FULL)
    with caplog.at_level(logging.WARNING, logger="ordergate.service.decision_log"):
        log = DecisionLog(logs, json_lines=json_lines, retry_seconds=0.02)
        log([record(order_id) for order_id in range(1, 41)])  # one group, one write: it fails
        wait_until(lambda: any("cannot write" in r.getMessage() for r in caplog.records))
        (logs / "decisions.log").unlink()
        wait_until(lambda: (logs / "decisions.log").exists())  # a retry opened a new file and wrote the note
        log([record(41), record(42)])
        log.close()
    lines = (logs / "decisions.log").read_text(encoding="utf-8").splitlines()
    if json_lines:
        note, *rest = (json.loads(line) for line in lines)
        assert (note["event"], note["count"], note["first_order_id"], note["last_order_id"]) == (
            "NOT_LOGGED",
            40,
            1,
            40,
        )
        assert note["detail"] == "the order log in the store has them"
        assert [entry["order_id"] for entry in rest] == [41, 42]
    else:
        assert "NOT_LOGGED orders=1-40 count=40" in lines[0]
        assert [line.split()[1] for line in lines[1:]] == ["order=41", "order=42"]


def test_the_log_is_renamed_by_day_at_the_first_write_of_a_new_utc_day_and_old_days_are_pruned(
    tmp_path: Path,
) -> None:
    day = 86_400
    clock = Clock(1_800_000_000.0)  # 2027-01-15T08:00:00Z
    path = tmp_path / "decisions.log"
    path.write_text("day 0\n")  # left by the last run, on the 15th
    os.utime(path, (clock.now, clock.now))
    file = DailyFile(path, keep_days=2, clock=clock)
    for n in range(1, 4):
        clock.now += day
        file.write(f"day {n}\n".encode())
        file.write(b"same day\n")
    file.close()
    assert path.read_text() == "day 3\nsame day\n"
    kept = sorted(p.name for p in tmp_path.iterdir() if p != path)
    assert kept == ["decisions.log.2027-01-16", "decisions.log.2027-01-17"]  # the 15th was the oldest of three
    assert (tmp_path / "decisions.log.2027-01-16").read_text() == "day 1\nsame day\n"


@pytest.mark.parametrize("json_lines", [False, True], ids=["text", "json"])
def test_a_big_order_never_holds_the_gil_for_long_in_the_writer(tmp_path: Path, json_lines: bool) -> None:
    """The longest single C call of the writer thread, in that thread's CPU time (a C call keeps the GIL
    unless it runs Python code or waits for I/O): the old writer's one ``write`` of three 100,000-user
    JSON lines took 20 ms, its ``extend`` of their text lines 45 ms; the pieces take about 1 ms."""
    records = [record(order_id, users=100_000) for order_id in range(1, 4)]
    longest = 0.0
    started: list[float] = []

    def profile(frame: object, event: str, arg: object) -> None:
        nonlocal longest
        if event == "c_call":
            started.append(time.thread_time())
        elif event in ("c_return", "c_exception") and started:
            longest = max(longest, time.thread_time() - started.pop())

    gc.disable()  # the collector's pauses are not the writer's work
    try:
        threading.setprofile(profile)  # type: ignore[arg-type]
        try:
            log = DecisionLog(tmp_path, json_lines=json_lines)  # its thread starts with the profile
        finally:
            threading.setprofile(None)  # type: ignore[arg-type]
        for big in records:
            log([big])
        log.close()
    finally:
        gc.enable()
    assert len((tmp_path / "decisions.log").read_text(encoding="utf-8").splitlines()) == 3
    assert longest < 0.010, f"a C call held the GIL for {longest * 1000:.1f} ms of CPU"
