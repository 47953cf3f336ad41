"""FIX 4.4 on the wire: frames cut out of a byte stream, checked, split into fields; messages built.

A frame is cut by its ``BodyLength (9)`` (not by the first ``10=`` seen), its ``CheckSum (10)`` is
verified, and after garbage the reader resynchronises on the next ``8=FIX``. A frame that fails those
checks is :class:`Garbled`: the FIX session layer ignores it (no Reject, no sequence number consumed),
which is what lets a counterparty's resend fix it. A frame whose envelope is sound but whose fields are
not (a tag that is not a number, an empty value) is a :class:`Message` with a ``problem``: the session
answers it with a Reject naming it.

simplefix (the well-kept pure-Python FIX codec) supplies what is easy to get wrong: which tags are
the length of a data field whose value may hold SOH (``RawDataLength (95)`` and 66 more), and the
parser that reads such frames. It is not on the hot path: its parser walks a frame byte by byte in
Python (about 110 microseconds for a 150-byte NewOrderSingle) and its encoder appends bytes field by
field (about 75), which at a thousand orders a second would take a good part of a core. So a frame
without data fields (every NewOrderSingle ordergate takes) is split on SOH in a few microseconds, and
messages are encoded by one join; frames with data fields go through simplefix's parser.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import NamedTuple

import simplefix
from simplefix import errors as fix_errors
from simplefix.data import RAW_LEN_TAGS

BEGIN_STRING = "FIX.4.4"
SOH = b"\x01"
MAX_BODY_LENGTH = 64 * 1024
"""Longest body accepted; a frame announcing more is garbage (no order message comes near it)."""
_START = b"8=FIX"
_LENGTH = re.compile(rb"8=[^\x01]{1,16}\x019=(\d{1,9})\x01")
_ENVELOPE = frozenset({8, 9, 10})
_DATA_LENGTH_TAGS = frozenset(RAW_LEN_TAGS)
"""Tags whose value is the length of the next field, a data field that may hold SOH (simplefix's list)."""


class Tag:
    """The tag numbers ordergate reads or writes (FIX 4.4 names)."""

    ACCOUNT = 1
    AVG_PX = 6
    BEGIN_SEQ_NO = 7
    BEGIN_STRING = 8
    BODY_LENGTH = 9
    CHECK_SUM = 10
    CL_ORD_ID = 11
    CUM_QTY = 14
    END_SEQ_NO = 16
    EXEC_ID = 17
    MSG_SEQ_NUM = 34
    MSG_TYPE = 35
    NEW_SEQ_NO = 36
    ORDER_ID = 37
    ORDER_QTY = 38
    ORD_STATUS = 39
    ORD_TYPE = 40
    POSS_DUP_FLAG = 43
    REF_SEQ_NUM = 45
    SENDER_COMP_ID = 49
    SENDING_TIME = 52
    SIDE = 54
    SYMBOL = 55
    TARGET_COMP_ID = 56
    TEXT = 58
    TRANSACT_TIME = 60
    POSS_RESEND = 97
    ENCRYPT_METHOD = 98
    ORD_REJ_REASON = 103
    HEART_BT_INT = 108
    TEST_REQ_ID = 112
    ORIG_SENDING_TIME = 122
    GAP_FILL_FLAG = 123
    RESET_SEQ_NUM_FLAG = 141
    EXEC_TYPE = 150
    LEAVES_QTY = 151
    REF_TAG_ID = 371
    REF_MSG_TYPE = 372
    SESSION_REJECT_REASON = 373
    BUSINESS_REJECT_REF_ID = 379
    BUSINESS_REJECT_REASON = 380
    PASSWORD = 554


Field = tuple[int, str]


class FieldProblem(NamedTuple):
    """Why a frame's fields cannot be read: the tag at fault (if known) and ``SessionRejectReason (373)``."""

    tag: int | None
    reason: int
    text: str


@dataclass(frozen=True, slots=True)
class Message:
    """One received frame with a sound envelope (length and checksum), as its fields in wire order."""

    fields: tuple[Field, ...]
    raw: bytes
    problem: FieldProblem | None = None

    def get(self, tag: int) -> str | None:
        """The first value of ``tag``, or ``None``."""
        for number, value in self.fields:
            if number == tag:
                return value
        return None

    def count(self, tag: int) -> int:
        return sum(1 for number, _ in self.fields if number == tag)

    @property
    def msg_type(self) -> str | None:
        return self.get(Tag.MSG_TYPE)

    @property
    def seq_num(self) -> int | None:
        """``MsgSeqNum (34)`` when it is a positive integer, else ``None``."""
        return positive_int(self.get(Tag.MSG_SEQ_NUM))

    @property
    def is_poss_dup(self) -> bool:
        return self.get(Tag.POSS_DUP_FLAG) == "Y"


class Garbled(NamedTuple):
    """Bytes that are no usable frame (the reason is for the log); the session ignores them."""

    reason: str


def positive_int(value: str | None) -> int | None:
    """``value`` as a positive integer (ASCII digits only), or ``None``."""
    if value is None or not value.isascii() or not value.isdigit():
        return None
    number = int(value)
    return number if number > 0 else None


def sending_time(at: datetime) -> str:
    """A UTCTimestamp with milliseconds (``YYYYMMDD-HH:MM:SS.sss``), as FIX 4.4 writes times."""
    return at.astimezone(UTC).strftime("%Y%m%d-%H:%M:%S.%f")[:-3]


_UTC_TIMESTAMP = re.compile(r"(\d{4})(\d{2})(\d{2})-(\d{2}):(\d{2}):(\d{2})(?:\.(\d{1,9}))?")


def utc_timestamp(value: str) -> datetime | None:
    """A UTCTimestamp (``YYYYMMDD-HH:MM:SS``, with up to nine digits of a second after a ``.``: FIX 4.4
    writes milliseconds, later versions more) as a datetime in UTC, or ``None`` when it is not one."""
    match = _UTC_TIMESTAMP.fullmatch(value) if value.isascii() else None
    if match is None:
        return None
    *parts, fraction = match.groups()
    year, month, day, hour, minute, second = (int(part) for part in parts)
    try:
        at = datetime(year, month, day, hour, minute, min(second, 59), tzinfo=UTC)  # 60: a leap second
    except ValueError:
        return None
    if fraction is None:
        return at
    return at.replace(microsecond=int(fraction[:6].ljust(6, "0")))


class FrameReader:
    """Cuts a TCP byte stream into frames: feed it what was read, take what is complete."""

    def __init__(self, max_body_length: int = MAX_BODY_LENGTH) -> None:
        self._buffer = b""
        self._max = max_body_length

    @property
    def pending_bytes(self) -> int:
        return len(self._buffer)

    def feed(self, data: bytes) -> list[Message | Garbled]:
        """Every complete frame (or garbage) in the stream so far, in order."""
        self._buffer += data
        found: list[Message | Garbled] = []
        while True:
            item = self._next()
            if item is None:
                return found
            found.append(item)

    def _next(self) -> Message | Garbled | None:
        buffer = self._buffer
        if not buffer:
            return None
        start = buffer.find(_START)
        if start != 0:
            if start < 0:  # keep a tail that may be the start of "8=FIX"
                keep = len(buffer) - len(_START) + 1
                if keep <= 0:
                    return None
                self._buffer = buffer[keep:]
                return Garbled(f"{keep} bytes before any BeginString (8)")
            self._buffer = buffer[start:]
            return Garbled(f"{start} bytes before BeginString (8)")
        match = _LENGTH.match(buffer)
        if match is None:
            if buffer.count(SOH, 0, 40) >= 2 or len(buffer) >= 40:
                return self._skip("no BodyLength (9) after BeginString (8)")
            return None
        length = int(match.group(1))
        if length > self._max:
            return self._skip(f"BodyLength (9) {length} is over the limit of {self._max}")
        body_end = match.end() + length
        if len(buffer) < body_end + 7:
            return None
        trailer = buffer[body_end : body_end + 7]
        if not (trailer.startswith(b"10=") and trailer[3:6].isdigit() and trailer.endswith(SOH)):
            return self._skip(f"no CheckSum (10) where BodyLength (9) {length} ends the body")
        if buffer[body_end - 1 : body_end] != SOH:
            return self._skip(f"BodyLength (9) {length} does not end on a field")
        frame = buffer[: body_end + 7]
        self._buffer = buffer[body_end + 7 :]
        expected = sum(frame[:body_end]) % 256
        if int(trailer[3:6]) != expected:
            return Garbled(f"CheckSum (10) {trailer[3:6].decode()} is wrong (the bytes sum to {expected:03d})")
        return decode(frame)

    def _skip(self, reason: str) -> Garbled:
        """Drop the frame start that failed and resynchronise on the next ``8=FIX``."""
        after = self._buffer.find(_START, 1)
        self._buffer = self._buffer[after:] if after > 0 else b""
        return Garbled(reason)


def decode(frame: bytes) -> Message:
    """The fields of one frame whose envelope has been checked."""
    fields: list[Field] = []
    for part in frame.split(SOH)[:-1]:
        tag, equals, value = part.partition(b"=")
        if not equals or not tag.isdigit():
            return Message(_lenient_fields(frame), frame, FieldProblem(None, 0, "Invalid tag number"))
        number = int(tag)
        if number in _DATA_LENGTH_TAGS:
            return _decode_data_fields(frame)
        if not value:
            return Message(_lenient_fields(frame), frame, FieldProblem(number, 4, "Tag specified without a value"))
        fields.append((number, value.decode("utf-8", "replace")))
    return Message(tuple(fields), frame)


def _decode_data_fields(frame: bytes) -> Message:
    """A frame with a data field (its length in the field before it), split by simplefix's parser."""
    parser = simplefix.FixParser(allow_empty_values=False)
    parser.append_buffer(frame)
    try:
        parsed = parser.get_message()
    except fix_errors.EmptyValueError as exc:
        tag = int(exc.args[0]) if exc.args and str(exc.args[0]).isdigit() else None
        return Message(_lenient_fields(frame), frame, FieldProblem(tag, 4, "Tag specified without a value"))
    except (fix_errors.TagNotNumberError, fix_errors.RawLengthNotNumberError, ValueError):
        return Message(_lenient_fields(frame), frame, FieldProblem(None, 0, "Invalid tag number"))
    if parsed is None:
        return Message(_lenient_fields(frame), frame, FieldProblem(None, 6, "Data field longer than the message"))
    fields = tuple((int(tag), value.decode("utf-8", "replace")) for tag, value in parsed.pairs)
    return Message(fields, frame)


def _lenient_fields(frame: bytes) -> tuple[Field, ...]:
    """The fields that can be read of a frame simplefix refused (to find its MsgSeqNum and MsgType)."""
    fields: list[Field] = []
    for part in frame.split(SOH):
        tag, equals, value = part.partition(b"=")
        if equals and tag.isdigit():
            fields.append((int(tag), value.decode("utf-8", "replace")))
    return tuple(fields)


def encode(header: Sequence[Field], body: Iterable[Field], begin_string: str = BEGIN_STRING) -> bytes:
    """A complete frame: ``header`` (MsgType first) and ``body``; BodyLength and CheckSum computed.

    A value never holds SOH (it would end the field early): any is written as a space.
    """
    pairs = (*header, *body)
    content = "".join([f"{tag}={value}\x01" for tag, value in pairs])
    if content.count("\x01") != len(pairs):  # a value held SOH
        content = "".join([f"{tag}={value.replace(chr(1), ' ')}\x01" for tag, value in pairs])
    encoded = content.encode()
    head = f"8={begin_string}\x019={len(encoded)}\x01".encode() + encoded
    return head + b"10=%03d\x01" % (sum(head) % 256)


def possible_duplicate(frame: bytes, at: datetime) -> bytes:
    """``frame`` (one we sent) sent again: ``PossDupFlag (43)=Y``, ``OrigSendingTime (122)`` its first time.

    The message keeps its MsgSeqNum; its SendingTime becomes ``at``.
    """
    sent = decode(frame)
    header: list[Field] = []
    body: list[Field] = []
    original = sent.get(Tag.SENDING_TIME) or sending_time(at)
    for tag, value in sent.fields:
        if tag in _ENVELOPE or tag in (Tag.POSS_DUP_FLAG, Tag.ORIG_SENDING_TIME):
            continue
        if tag == Tag.SENDING_TIME:
            header.append((Tag.SENDING_TIME, sending_time(at)))
            header.append((Tag.POSS_DUP_FLAG, "Y"))
            header.append((Tag.ORIG_SENDING_TIME, original))
        elif tag in (Tag.MSG_TYPE, Tag.SENDER_COMP_ID, Tag.TARGET_COMP_ID, Tag.MSG_SEQ_NUM):
            header.append((tag, value))
        else:
            body.append((tag, value))
    return encode(header, body, sent.get(Tag.BEGIN_STRING) or BEGIN_STRING)


def shown(frame: bytes) -> str:
    """A frame for a log line: ``|`` for SOH, the ``Password (554)`` masked."""
    text = frame.replace(SOH, b"|").decode("utf-8", "replace")
    return re.sub(r"(^|\|)554=[^|]*", r"\g<1>554=***", text)
