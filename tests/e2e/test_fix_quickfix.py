"""The FIX 4.4 acceptor of ``ordergate serve --fix-port`` against QuickFIX, a real FIX engine, as the initiator.

Every test runs a real gateway process; QuickFIX validates each message it receives against its
FIX 4.4 data dictionary (a bad one would make it send a Reject, which the tests check it never did).
The malformed messages QuickFIX will not emit are sent as raw bytes over a plain socket.
"""

from __future__ import annotations

import re
import socket
import time
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.e2e.conftest import GatewayProcess, Profile, StartGateway, free_port, run_ordergate
from tests.e2e.quickfix_initiator import Initiator, fields_of, require_quickfix
from tests.postgres import fresh_database

PROFILE: Profile = {
    "Holland Proctor": {"STRATEGY_A": ["GRASIM", "EICHER", "BIRLASOFT"], "STRATEGY_B": ["MINDA"]},
    "Oaklee Wagner": {"STRATEGY_A": ["GRASIM", "EICHER"], "STRATEGY_D": ["ACC"]},
}


@pytest.fixture
def profile() -> Profile:
    return PROFILE


@pytest.fixture(autouse=True)
def _quickfix() -> None:
    require_quickfix()


@pytest.fixture
def sender(request: pytest.FixtureRequest) -> str:
    """A SenderCompID of the test's own (QuickFIX keeps sessions by id in one registry per process)."""
    return "C" + str(abs(hash(request.node.name)) % 10**8)


@pytest.fixture
def initiators() -> Iterator[list[Initiator]]:
    started: list[Initiator] = []
    yield started
    for initiator in started:
        initiator.stop()


def fix_gateway(start_gateway: StartGateway, home: Path, *args: str) -> tuple[GatewayProcess, int]:
    port = free_port()
    return start_gateway(home, "--fix-port", str(port), *args), port


def create_key(keyfile: Path, *args: str) -> str:
    result = run_ordergate("keys", "create", "--file", str(keyfile), *args)
    assert result.returncode == 0, result.stderr
    return result.stdout.strip().splitlines()[-1]


def stored_order(gateway: GatewayProcess, order_id: str, key: str | None = None) -> dict[str, Any]:
    headers = {"Authorization": f"Bearer {key}"} if key else {}
    answer = httpx.get(f"{gateway.url}/v1/orders/{order_id}", headers=headers, timeout=5)
    assert answer.status_code == 200, answer.text
    document: dict[str, Any] = answer.json()
    return document


def test_orders_are_decided_and_reported_with_the_spec_tags(
    start_gateway: StartGateway, home: Path, tmp_path: Path, initiators: list[Initiator], sender: str
) -> None:
    gateway, port = fix_gateway(start_gateway, home)
    client = Initiator(tmp_path / "qf", port, sender=sender).start()
    initiators.append(client)
    client.logged_on()

    accepted = client.order("buy-1", "GRASIM", "1", "STRATEGY_A", quantity=25)
    assert accepted[35] == "8"
    assert (accepted[150], accepted[39]) == ("0", "0")
    assert accepted[11] == "buy-1"
    assert (accepted[55], accepted[54], accepted[1]) == ("GRASIM", "1", "STRATEGY_A")
    assert (accepted[38], accepted[40], accepted[151], accepted[14]) == ("25", "1", "25", "0")
    assert accepted[58] == "ACCEPTED for Holland Proctor, Oaklee Wagner"
    assert 103 not in accepted
    stored = stored_order(gateway, accepted[37])
    assert stored["status"] == "ACCEPTED"
    assert stored["client_order_id"] == "buy-1"
    assert (stored["actor"], stored["door"], stored["origin"]) == ("anonymous", "fix", "strategy")

    holding = client.order("buy-2", "GRASIM", "1", "STRATEGY_A")
    assert (holding[150], holding[39], holding[103], holding[58]) == ("8", "8", "99", "ALREADY_HOLDING")
    assert int(holding[37]) == int(accepted[37]) + 1

    untraded = client.order("buy-3", "ACC", "1", "STRATEGY_A")
    assert (untraded[39], untraded[103], untraded[58]) == ("8", "1", "INSTRUMENT_NOT_TRADED")

    sold = client.order("sell-1", "GRASIM", "2", "STRATEGY_A")
    assert (sold[39], sold[54]) == ("0", "2")

    # no Account with auth off: a session Reject naming tag 1, and the session goes on
    client.send_order("no-account", "GRASIM", "1", None)
    deadline = time.monotonic() + 10
    while not client.admin_in_of_type("3") and time.monotonic() < deadline:
        time.sleep(0.05)
    [reject] = client.admin_in_of_type("3")
    assert (reject[371], reject[373], reject[372]) == ("1", "1", "D")
    assert client.order("after-reject", "EICHER", "1", "STRATEGY_A")[39] == "0"
    assert client.rejects_sent() == []


def test_a_repeated_client_order_id_resends_the_stored_report_and_another_order_with_it_is_refused(
    start_gateway: StartGateway, home: Path, tmp_path: Path, initiators: list[Initiator], sender: str
) -> None:
    _, port = fix_gateway(start_gateway, home)
    client = Initiator(tmp_path / "qf", port, sender=sender).start()
    initiators.append(client)
    client.logged_on()

    first = client.order("same-id", "GRASIM", "1", "STRATEGY_A")
    again = client.order("same-id", "GRASIM", "1", "STRATEGY_A")
    assert again[97] == "Y"
    assert 97 not in first
    assert {tag: again[tag] for tag in (37, 17, 39, 150, 58)} == {tag: first[tag] for tag in (37, 17, 39, 150, 58)}

    other = client.order("same-id", "EICHER", "1", "STRATEGY_A")
    assert (other[39], other[150], other[103]) == ("8", "8", "6")
    assert other[37] == "NONE"
    assert "same-id" in other[58]
    assert client.rejects_sent() == []


def test_logon_with_a_producer_key_under_auth_and_a_bad_key_refused(
    start_gateway: StartGateway, home: Path, tmp_path: Path, initiators: list[Initiator], sender: str
) -> None:
    keyfile = tmp_path / "keys.json"
    producer = create_key(keyfile, "--role", "producer", "--strategy", "STRATEGY_A", "--name", "fix-desk")
    admin = create_key(keyfile, "--role", "admin")
    gateway, port = fix_gateway(start_gateway, home, "--auth", str(keyfile))

    intruder = Initiator(tmp_path / "intruder", port, sender=sender + "X", password="og_nope_nope").start()
    initiators.append(intruder)
    intruder.wait_event("logout")
    intruder.stop()
    texts = [m.get(58) for m in intruder.admin_in_of_type("5")]
    assert "Password (554) is not an active API key" in texts

    anonymous = Initiator(tmp_path / "anonymous", port, sender=sender + "Y").start()
    initiators.append(anonymous)
    anonymous.wait_event("logout")
    anonymous.stop()
    assert any(
        "Password (554) must carry a producer API key" in (m.get(58) or "") for m in anonymous.admin_in_of_type("5")
    )

    client = Initiator(tmp_path / "qf", port, sender=sender, password=producer).start()
    initiators.append(client)
    client.logged_on()
    report = client.order("keyed-1", "GRASIM", "1")  # no Account: the key allows STRATEGY_A alone
    assert (report[39], report[1]) == ("0", "STRATEGY_A")
    assert stored_order(gateway, report[37], admin)["actor"] == "fix-desk"

    refused = client.order("keyed-2", "ACC", "1", "STRATEGY_D")
    assert refused[35] == "j"
    assert (refused[380], refused[379], refused[372]) == ("6", "keyed-2", "D")

    # a key revoked while its session is logged on sends no more orders (the key file is re-read)
    revoked = run_ordergate("keys", "revoke", "fix-desk", "--file", str(keyfile))
    assert revoked.returncode == 0, revoked.stderr
    time.sleep(1.2)
    stopped = client.order("keyed-3", "EICHER", "1")
    assert (stopped[35], stopped[380]) == ("j", "6")
    assert "no longer active" in stopped[58]
    assert client.rejects_sent() == []


def test_a_sequence_gap_is_filled_by_a_resend_request_and_a_resend_carries_poss_dup(
    start_gateway: StartGateway, home: Path, tmp_path: Path, initiators: list[Initiator], sender: str
) -> None:
    _, port = fix_gateway(start_gateway, home)
    client = Initiator(tmp_path / "qf", port, sender=sender).start()
    initiators.append(client)
    client.logged_on()
    first = client.order("gap-1", "GRASIM", "1", "STRATEGY_A")

    # the initiator skips five numbers: ordergate asks for them, QuickFIX gap-fills, the order is decided
    session = client.session
    skipped_from = session.getExpectedSenderNum()
    session.setNextSenderMsgSeqNum(skipped_from + 5)
    after_gap = client.order("gap-2", "EICHER", "1", "STRATEGY_A")
    assert after_gap[39] == "0"
    asked = client.admin_in_of_type("2")
    assert [(m[7], m[16]) for m in asked] == [(str(skipped_from), "0")]

    # the initiator forgets our last two messages (the ResendRequest, the report of gap-2): it asks for
    # them when the next one comes, and gets a gap fill for the admin one and the report again
    session.setNextTargetMsgSeqNum(session.getExpectedTargetNum() - 2)
    received = [client.order("gap-3", "BIRLASOFT", "1", "STRATEGY_A"), client.next_app()]
    [duplicate] = [m for m in received if m.get(43) == "Y"]
    assert (duplicate[37], duplicate[11]) == (after_gap[37], "gap-2")
    assert 122 in duplicate
    assert [m[11] for m in received if m.get(43) != "Y"] == ["gap-3"]
    assert first[37] != after_gap[37]
    assert client.rejects_sent() == []


@pytest.fixture(params=["sqlite", "postgresql"])
def store_args(request: pytest.FixtureRequest) -> Iterator[tuple[str, ...]]:
    """``serve`` arguments of the store: the embedded SQLite one, or a fresh PostgreSQL database."""
    if request.param == "sqlite":
        yield ()
        return
    with fresh_database() as url:
        yield ("--db", url)


def test_a_gateway_killed_with_kill_9_resumes_the_session_and_loses_no_answered_order(
    start_gateway: StartGateway,
    home: Path,
    tmp_path: Path,
    initiators: list[Initiator],
    sender: str,
    store_args: tuple[str, ...],
) -> None:
    gateway, port = fix_gateway(start_gateway, home, *store_args)
    client = Initiator(tmp_path / "qf", port, sender=sender).start()
    initiators.append(client)
    client.logged_on()
    reports: dict[str, list[dict[int, str]]] = {}
    for n in range(3):
        report = client.order(f"pre-{n}", ["GRASIM", "EICHER", "BIRLASOFT"][n], "1", "STRATEGY_A")
        reports.setdefault(report[11], []).append(report)
    our_next = int(client.admin_in_of_type("A")[-1][34]) + 4  # the logon, then three reports

    # twenty orders in flight, then SIGKILL while they are answered
    symbols = ["GRASIM", "EICHER", "BIRLASOFT", "MINDA"]
    sent = [f"burst-{n}" for n in range(20)]
    for n, client_order_id in enumerate(sent):
        client.send_order(
            client_order_id, symbols[n % 4], "2" if n % 2 else "1", "STRATEGY_A" if n % 4 < 3 else "STRATEGY_B"
        )
    first = client.next_app()
    reports.setdefault(first[11], []).append(first)
    gateway.kill()
    gateway.start()
    client.wait_event("logon", timeout=20)
    relogon = client.admin_in_of_type("A")[-1]
    assert int(relogon[34]) >= our_next  # ordergate's numbers went on, none was used twice

    deadline = time.monotonic() + 30
    while {cid for cid in sent if cid in reports} != set(sent) and time.monotonic() < deadline:
        try:
            report = client.seen.app.get(timeout=1)
        except Exception:
            continue
        reports.setdefault(report[11], []).append(report)
    assert set(sent) <= set(reports), f"no report for {sorted(set(sent) - set(reports))}"
    after = client.order("post-1", "ACC", "1", "STRATEGY_D")
    assert after[39] == "0"

    # every report agrees with the order log, and each client order id was decided once
    with httpx.Client(base_url=gateway.url, timeout=5) as http:
        for client_order_id, seen in reports.items():
            order_ids = {report[37] for report in seen}
            assert len(order_ids) == 1, f"{client_order_id} was reported as orders {order_ids}"
            stored = http.get(f"/v1/orders/{order_ids.pop()}").json()
            assert stored["client_order_id"] == client_order_id
            assert {"0": "ACCEPTED", "8": "REJECTED"}[seen[0][39]] == stored["status"]
    assert client.rejects_sent() == []


# -- raw bytes: what QuickFIX would never send -------------------------------------------------------


def utc_now_text() -> str:
    """Now as a FIX UTCTimestamp: ordergate refuses a SendingTime more than two minutes off its clock."""
    return datetime.now(UTC).strftime("%Y%m%d-%H:%M:%S.%f")[:-3]


def raw_frame(
    msg_type: str,
    seq: int,
    *body: tuple[int | str, str],
    sender: str = "RAW",
    checksum: str | None = None,
    sent: str | None = None,
) -> bytes:
    """A FIX 4.4 frame built by hand (independently of ordergate's codec); ``sent``: its SendingTime (now)."""
    fields: list[tuple[int | str, str]] = [
        (35, msg_type),
        (49, sender),
        (56, "ORDERGATE"),
        (34, str(seq)),
        (52, sent or utc_now_text()),
        *body,
    ]
    content = "".join(f"{tag}={value}\x01" for tag, value in fields).encode()
    head = f"8=FIX.4.4\x019={len(content)}\x01".encode() + content
    total = checksum if checksum is not None else f"{sum(head) % 256:03d}"
    return head + f"10={total}\x01".encode()


class RawClient:
    def __init__(self, port: int) -> None:
        self.sock = socket.create_connection(("127.0.0.1", port), timeout=5)
        self.buffer = b""

    def send(self, frame: bytes) -> None:
        self.sock.sendall(frame)

    def receive(self) -> dict[int, str]:
        while True:
            match = re.search(rb"\x0110=\d{3}\x01", self.buffer)
            if match is not None:
                frame, self.buffer = self.buffer[: match.end()], self.buffer[match.end() :]
                return fields_of(frame.decode())
            chunk = self.sock.recv(65536)
            assert chunk, "ordergate closed the connection"
            self.buffer += chunk

    def close(self) -> None:
        self.sock.close()


def test_malformed_messages_are_rejected_naming_the_tag_without_dropping_the_session(
    start_gateway: StartGateway, home: Path
) -> None:
    _, port = fix_gateway(start_gateway, home)
    raw = RawClient(port)
    try:
        raw.send(raw_frame("A", 1, (98, "0"), (108, "30")))
        assert raw.receive()[35] == "A"
        order = ((11, "raw-1"), (55, "GRASIM"), (1, "STRATEGY_A"), (38, "1"), (40, "1"), (60, "20261203-10:00:00"))

        raw.send(raw_frame("D", 2, *order, (54, "7")))
        reject = raw.receive()
        assert (reject[35], reject[45], reject[371], reject[373]) == ("3", "2", "54", "5")
        assert "Side (54)" in reject[58]

        raw.send(raw_frame("D", 3, (55, "GRASIM"), (54, "1"), (1, "STRATEGY_A")))
        reject = raw.receive()
        assert (reject[35], reject[371], reject[373]) == ("3", "11", "1")

        raw.send(raw_frame("F", 4, (41, "raw-1"), (11, "cancel-1")))
        business = raw.receive()
        assert (business[35], business[372], business[380]) == ("j", "F", "3")

        raw.send(raw_frame("D", 5, (11, "raw-x"), (55, "GRASIM"), (54, "1"), (1, "STRATEGY_A"), checksum="000"))
        raw.send(b"\x00garbage\x01 that is no frame at all \x01")
        raw.send(raw_frame("0", 5, ("abc", "1")))  # a tag that is not a number
        reject = raw.receive()
        assert (reject[35], reject[373]) == ("3", "0")

        raw.send(raw_frame("D", 6, *order, (54, "1")))  # the garbled order consumed no number
        report = raw.receive()
        assert (report[35], report[39], report[11]) == ("8", "0", "raw-1")

        raw.send(raw_frame("1", 7, (112, "still-there")))
        heartbeat = raw.receive()
        assert (heartbeat[35], heartbeat[112]) == ("0", "still-there")
    finally:
        raw.close()


def test_a_logon_with_reset_seq_num_flag_inside_a_session_resets_both_sides_without_reconnecting(
    start_gateway: StartGateway, home: Path
) -> None:
    _, port = fix_gateway(start_gateway, home)
    raw = RawClient(port)
    order = ((55, "GRASIM"), (54, "1"), (1, "STRATEGY_A"))
    try:
        raw.send(raw_frame("A", 1, (98, "0"), (108, "30")))
        assert raw.receive()[35] == "A"
        raw.send(raw_frame("D", 2, (11, "before-reset"), *order))
        assert raw.receive()[34] == "2"

        raw.send(raw_frame("A", 1, (98, "0"), (108, "30"), (141, "Y")))  # the daily reset, on the same connection
        logon = raw.receive()
        assert (logon[35], logon[34], logon[141]) == ("A", "1", "Y")
        raw.send(raw_frame("D", 2, (11, "after-reset"), (55, "EICHER"), (54, "1"), (1, "STRATEGY_A")))
        report = raw.receive()
        assert (report[35], report[34], report[39], report[11]) == ("8", "2", "0", "after-reset")

        raw.send(raw_frame("2", 3, (7, "1"), (16, "0")))  # what was sent before the reset is forgotten
        gap_fill, resent = raw.receive(), raw.receive()
        assert (gap_fill[35], gap_fill[34], gap_fill[123], gap_fill[36]) == ("4", "1", "Y", "2")
        assert (resent[35], resent[34], resent[43], resent[11]) == ("8", "2", "Y", "after-reset")
    finally:
        raw.close()


def test_a_sending_time_far_off_the_gateways_clock_is_rejected_and_the_session_logged_out(
    start_gateway: StartGateway, home: Path
) -> None:
    _, port = fix_gateway(start_gateway, home)
    an_hour_ago = (datetime.now(UTC) - timedelta(hours=1)).strftime("%Y%m%d-%H:%M:%S.%f")[:-3]

    stale_logon = RawClient(port)
    try:
        stale_logon.send(raw_frame("A", 1, (98, "0"), (108, "30"), sent=an_hour_ago))
        refused = stale_logon.receive()
        assert refused[35] == "5"
        assert "SendingTime (52)" in refused[58]
    finally:
        stale_logon.close()

    raw = RawClient(port)
    try:
        raw.send(raw_frame("A", 1, (98, "0"), (108, "30")))
        assert raw.receive()[35] == "A"
        raw.send(raw_frame("D", 2, (11, "replayed"), (55, "GRASIM"), (54, "1"), (1, "STRATEGY_A"), sent=an_hour_ago))
        reject, logout = raw.receive(), raw.receive()
        assert (reject[35], reject[45], reject[371], reject[373]) == ("3", "2", "52", "10")
        assert (logout[35], logout[58]) == ("5", reject[58])
        assert "behind ordergate's clock" in logout[58]
    finally:
        raw.close()


def test_heartbeats_keep_an_idle_session_logged_on(
    start_gateway: StartGateway, home: Path, tmp_path: Path, initiators: list[Initiator], sender: str
) -> None:
    _, port = fix_gateway(start_gateway, home)
    client = Initiator(tmp_path / "qf", port, sender=sender, heartbeat=1).start()
    initiators.append(client)
    client.logged_on()
    time.sleep(4.5)
    assert client.session.isLoggedOn()
    assert len(client.admin_in_of_type("0")) >= 2  # ordergate's heartbeats, one per second of its silence
    assert client.admin_in_of_type("5") == []
    assert [m for m in client.seen.admin_out if m.get(35) == "2"] == []  # every heartbeat's number was sent
    assert client.order("idle-then-busy", "GRASIM", "1", "STRATEGY_A")[39] == "0"


def test_a_logon_with_reset_seq_num_flag_starts_both_sides_at_one(
    start_gateway: StartGateway, home: Path, tmp_path: Path, initiators: list[Initiator], sender: str
) -> None:
    _, port = fix_gateway(start_gateway, home)
    client = Initiator(tmp_path / "qf", port, sender=sender, reset_on_logon=True).start()
    initiators.append(client)
    client.logged_on()
    assert client.order("before-reset", "GRASIM", "1", "STRATEGY_A")[34] == "2"
    client.session.logout()
    client.wait_event("logout")
    client.session.logon()
    client.wait_event("logon")
    logon = client.admin_in_of_type("A")[-1]
    assert (logon[34], logon[141]) == ("1", "Y")
    report = client.order("after-reset", "EICHER", "1", "STRATEGY_A")
    assert (report[34], report[39]) == ("2", "0")
    assert client.order("before-reset", "GRASIM", "1", "STRATEGY_A")[97] == "Y"  # the order log is not reset
    assert client.rejects_sent() == []


def test_a_stopping_gateway_logs_its_sessions_out(
    start_gateway: StartGateway, home: Path, tmp_path: Path, initiators: list[Initiator], sender: str
) -> None:
    gateway, port = fix_gateway(start_gateway, home)
    client = Initiator(tmp_path / "qf", port, sender=sender).start()
    initiators.append(client)
    client.logged_on()
    assert gateway.terminate() == 0
    client.wait_event("logout")
    assert [m.get(58) for m in client.admin_in_of_type("5")] == ["the gateway is stopping"]
