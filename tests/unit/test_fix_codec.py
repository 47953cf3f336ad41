"""The FIX codec: frames cut by BodyLength and checked by CheckSum, fields split, messages built."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest
import simplefix

from ordergate.fix.codec import FrameReader, Message, decode, encode, sending_time, shown, utc_timestamp

HEADER = [(35, "D"), (49, "DESK"), (56, "ORDERGATE"), (34, "7"), (52, "20261203-10:00:00.000")]
BODY = [(11, "ord-1"), (55, "L&T"), (54, "1"), (1, "STRATEGY_A"), (58, "ünïcode text")]


def test_a_message_is_encoded_byte_for_byte_as_simplefix_encodes_it() -> None:
    reference = simplefix.FixMessage()
    reference.append_pair(8, "FIX.4.4", header=True)
    for tag, value in HEADER:
        reference.append_pair(tag, value, header=True)
    for tag, value in BODY:
        reference.append_pair(tag, value)
    assert encode(HEADER, BODY) == reference.encode()


def test_an_encoded_message_reads_back_field_for_field() -> None:
    [message] = FrameReader().feed(encode(HEADER, BODY))
    assert isinstance(message, Message)
    assert message.problem is None
    assert message.fields[2:-1] == (*HEADER, *BODY)


def test_a_data_field_holding_soh_is_read_whole_through_simplefix() -> None:
    logon = encode([(35, "A"), *HEADER[1:]], [(98, "0"), (108, "30"), (95, "5"), (96, "ab\x01cd")])
    # the encoder writes a value's SOH as a space; a counterparty's data field may hold one: put it back
    # (the same length, so BodyLength holds) and sum the frame again
    head = logon.replace(b"96=ab cd", b"96=ab\x01cd")[: logon.rindex(b"10=")]
    raw = head + b"10=%03d\x01" % (sum(head) % 256)
    [message] = FrameReader().feed(raw)
    assert isinstance(message, Message)
    assert message.problem is None
    assert message.get(96) == "ab\x01cd"
    assert message.get(108) == "30"


def test_a_value_never_carries_soh_into_the_frame() -> None:
    frame = encode(HEADER, [(58, "a\x01b")])
    assert decode(frame).get(58) == "a b"


def test_a_logged_frame_masks_the_password() -> None:
    frame = encode([(35, "A"), *HEADER[1:]], [(554, "og_abc_secret"), (108, "30")])
    assert "secret" not in shown(frame)
    assert "554=***" in shown(frame)


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("20261203-10:00:00", datetime(2026, 12, 3, 10, 0, 0, tzinfo=UTC)),
        ("20261203-10:00:00.250", datetime(2026, 12, 3, 10, 0, 0, 250_000, tzinfo=UTC)),
        ("20261203-10:00:00.123456789", datetime(2026, 12, 3, 10, 0, 0, 123_456, tzinfo=UTC)),
        ("20261231-23:59:60", datetime(2026, 12, 31, 23, 59, 59, tzinfo=UTC)),  # a leap second
        ("20261203-24:00:00", None),
        ("20261332-10:00:00", None),
        ("20261203 10:00:00", None),
        ("20261203-10:00:00.", None),
        ("2026120\uff13-10:00:00", None),  # a full-width digit
        ("", None),
    ],
)
def test_a_utc_timestamp_is_read_as_fix_writes_it(text: str, expected: datetime | None) -> None:
    assert utc_timestamp(text) == expected


def test_what_ordergate_writes_as_a_sending_time_reads_back_to_the_millisecond() -> None:
    at = datetime(2026, 12, 3, 10, 0, 0, 250_000, tzinfo=UTC)
    assert utc_timestamp(sending_time(at)) == at
