"""The FIX 4.4 session layer of one acceptor connection, as a pure state machine: no I/O, no clock.

A :class:`Session` is given each received frame and the time (:meth:`Session.receive`), the passing
of time (:meth:`Session.tick`) and, when it asks for them, the durable state of its counterparty's
session (:meth:`Session.resume`) and the messages it sent before (:meth:`Session.resent`). It answers
with a :class:`Step`: the messages to send, in sequence-number order, and what the connection must do
(load the session's state, read stored messages for a resend, close). The server
(:mod:`ordergate.fix.server`) does the I/O: it journals the step's new messages and counters
durably *before* writing them to the socket, which is what lets a session resume after a crash.

The rules are FIX 4.4's (Volume 2, the session protocol): the first message must be a Logon to
``TargetCompID`` ``ORDERGATE`` (with ``--auth``, its ``Password (554)`` a producer key); a MsgSeqNum
too high queues the message and asks for the gap with a ResendRequest; too low without
``PossDupFlag (43)=Y`` is a Logout; a ResendRequest is answered with the stored application messages
sent again (``PossDupFlag``, ``OrigSendingTime (122)``) and SequenceReset-GapFill in place of admin
messages; silence for HeartBtInt plus a grace brings a TestRequest, and no answer to it a disconnect;
a Logon with ``ResetSeqNumFlag (141)=Y`` inside a session starts both sides again at 1; a
``SendingTime (52)`` more than :data:`MAX_LATENCY` off the clock is a Reject (reason 10) and a Logout.
A message whose fields are wrong gets a Reject (``35=3``) naming the tag and ``SessionRejectReason
(373)``, and the session goes on; an application message type ordergate does not take gets a
BusinessMessageReject (``35=j``). Application messages (NewOrderSingle) are handed out as
:class:`Pending` with the sequence number their answer will carry, so answers keep their place even
when the application answers them concurrently.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from enum import Enum, IntEnum
from typing import NamedTuple

from ordergate.fix.codec import (
    BEGIN_STRING,
    Field,
    Garbled,
    Message,
    Tag,
    encode,
    positive_int,
    possible_duplicate,
    sending_time,
    utc_timestamp,
)
from ordergate.security.keys import Principal

ACCEPTOR_COMP_ID = "ORDERGATE"
ADMIN_TYPES = frozenset({"0", "1", "2", "3", "4", "5", "A"})
"""Session-level message types: never sent again on a resend (gap-filled instead)."""
APPLICATION_TYPES = frozenset({"D"})
"""The application messages ordergate takes: NewOrderSingle."""
MIN_HEARTBEAT, MAX_HEARTBEAT = 1, 3600
LOGON_TIMEOUT = 10.0
"""Seconds a new connection has to send its Logon."""
LOGOUT_TIMEOUT = 2.0
"""Seconds to wait for the answer to a Logout ordergate sent before disconnecting."""
MAX_LATENCY = 120.0
"""Seconds a message's ``SendingTime (52)`` may lie from ordergate's clock, either way (QuickFIX's
``MaxLatency`` default): a message further off is a replay or a counterparty with a broken clock."""


class Reject(IntEnum):
    """``SessionRejectReason (373)`` values used here."""

    INVALID_TAG_NUMBER = 0
    REQUIRED_TAG_MISSING = 1
    UNDEFINED_TAG = 3
    TAG_WITHOUT_VALUE = 4
    VALUE_INCORRECT = 5
    INCORRECT_DATA_FORMAT = 6
    COMP_ID_PROBLEM = 9
    SENDING_TIME_ACCURACY = 10
    OTHER = 99


class SessionKey(NamedTuple):
    """A FIX session as ordergate stores it: the counterparty's SenderCompID and ordergate's (``ORDERGATE``)."""

    counterparty: str
    acceptor: str = ACCEPTOR_COMP_ID

    def __str__(self) -> str:
        return f"{self.acceptor}<-{self.counterparty}"


class SessionState(NamedTuple):
    """The durable counters of a session: the next MsgSeqNum expected from the counterparty, and ours."""

    next_in: int = 1
    next_out: int = 1


FRESH = SessionState()

LogonCheck = Callable[[str | None], "tuple[Principal | None, str | None]"]
"""Checks a Logon's ``Password (554)``: ``(principal, None)`` to admit (``None`` with auth off), or
``(None, why)`` to refuse."""


def open_logon(password: str | None) -> tuple[Principal | None, str | None]:
    """The check with auth off: every Logon is admitted, whatever it carries in Password (554)."""
    return None, None


@dataclass(frozen=True, slots=True)
class Outbound:
    """A frame to send. ``journal``: a new application message, stored durably before it is sent."""

    seq: int
    msg_type: str
    frame: bytes
    journal: bool


@dataclass(frozen=True, slots=True)
class Pending:
    """An application message for the application; its answer will carry MsgSeqNum ``seq``."""

    message: Message
    seq: int


@dataclass(slots=True)
class Step:
    out: list[Outbound | Pending] = field(default_factory=list)
    load: SessionKey | None = None
    """A Logon passed its checks: give :meth:`Session.resume` this session's stored state."""
    resend: tuple[int, int] | None = None
    """The counterparty asked for our messages ``begin..end``: give :meth:`Session.resent` the stored ones."""
    reset: bool = False
    """The counters were reset to 1 (a Logon with ``ResetSeqNumFlag (141)=Y``): forget the stored messages."""
    close: str | None = None
    """Disconnect once ``out`` is sent; the reason is for the log."""

    def then(self, other: Step) -> Step:
        """This step followed by ``other``."""
        self.out.extend(other.out)
        self.load = self.load or other.load
        self.resend = self.resend or other.resend
        self.reset = self.reset or other.reset
        self.close = self.close or other.close
        return self


class Phase(Enum):
    AWAITING_LOGON = "awaiting logon"
    LOADING = "loading"
    ACTIVE = "active"
    LOGOUT_SENT = "logout sent"
    CLOSED = "closed"


def grace(heartbeat: int) -> float:
    """How long past HeartBtInt silence is tolerated: a fifth of it, at least a second."""
    return max(1.0, heartbeat / 5)


class Session:
    """One connection's FIX session (see the module docstring)."""

    def __init__(self, now: datetime, check_logon: LogonCheck = open_logon) -> None:
        self.phase = Phase.AWAITING_LOGON
        self.key: SessionKey | None = None
        self.principal: Principal | None = None
        self.password: str | None = None
        """The key the Logon presented (never logged): checked again per order, so a revoked key stops."""
        self.heartbeat = 30
        self.next_in = 1
        self.next_out = 1
        self._check_logon = check_logon
        self._connected_at = now
        self._last_received = now
        self._last_sent = now
        self._test_request: tuple[str, datetime] | None = None
        self._test_requests = 0
        self._logout_sent_at: datetime | None = None
        self._logon: Message | None = None
        self._answered_early: set[int] = set()
        """Queued messages (behind a gap) already acted on when they came, which only count in their turn:
        the Logon that opened the session and ResendRequests (answered at once, as the counterparty waits)."""
        self._queued: dict[int, Message] = {}
        self._asked_until: int | None = None
        """The highest MsgSeqNum seen while a ResendRequest of ours is outstanding."""

    @property
    def is_logged_on(self) -> bool:
        return self.phase in (Phase.ACTIVE, Phase.LOGOUT_SENT)

    @property
    def state(self) -> SessionState:
        return SessionState(self.next_in, self.next_out)

    # -- input ----------------------------------------------------------------------------------

    def receive(self, item: Message | Garbled, now: datetime) -> Step:
        """Handle one received frame (a :class:`Garbled` one is ignored, as FIX says)."""
        if isinstance(item, Garbled) or self.phase in (Phase.CLOSED, Phase.LOADING):
            return Step()
        self._last_received = now
        if self.phase is Phase.AWAITING_LOGON:
            return self._first(item, now)
        return self._in_session(item, now)

    def resume(self, stored: SessionState, now: datetime) -> Step:
        """Carry on with the Logon that asked for ``load``, from the session's stored counters."""
        logon = self._logon
        assert logon is not None, "resume() answers a step's load"
        self._logon = None
        step = Step()
        seq = logon.seq_num or 1
        if logon.get(Tag.RESET_SEQ_NUM_FLAG) == "Y":
            stored = FRESH
            step.reset = True
        self.next_in, self.next_out = stored
        self.phase = Phase.ACTIVE
        if seq < self.next_in:
            return step.then(
                self._logout(f"MsgSeqNum too low, expecting {self.next_in} but received {seq}", now, close=True)
            )
        reply: list[Field] = [(Tag.ENCRYPT_METHOD, "0"), (Tag.HEART_BT_INT, str(self.heartbeat))]
        if step.reset:
            reply.append((Tag.RESET_SEQ_NUM_FLAG, "Y"))
        step.out.append(self._send("A", reply, now))
        if seq > self.next_in:
            self._queued[seq] = logon
            self._answered_early.add(seq)
            return step.then(self._ask_resend(seq, now))
        self.next_in += 1
        return step

    def resent(self, stored: Sequence[tuple[int, bytes]], begin: int, end: int, now: datetime) -> Step:
        """Our messages ``begin..end`` sent again: the stored ones as possible duplicates, gaps filled."""
        frames = dict(stored)
        step = Step()
        seq = begin
        while seq <= end:
            frame = frames.get(seq)
            if frame is not None:
                step.out.append(Outbound(seq, "resend", possible_duplicate(frame, now), journal=False))
                seq += 1
                continue
            run_end = seq
            while run_end + 1 <= end and run_end + 1 not in frames:
                run_end += 1
            header = [
                *self._header("4", seq, now),
                (Tag.POSS_DUP_FLAG, "Y"),
                (Tag.ORIG_SENDING_TIME, sending_time(now)),
            ]
            body = [(Tag.GAP_FILL_FLAG, "Y"), (Tag.NEW_SEQ_NO, str(run_end + 1))]
            step.out.append(Outbound(seq, "4", encode(header, body), journal=False))
            seq = run_end + 1
        if step.out:
            self._last_sent = now
        return step

    def answer(
        self, pending: Pending, msg_type: str, body: Sequence[Field], now: datetime, header: Sequence[Field] = ()
    ) -> Outbound:
        """The application's answer to ``pending``, with the sequence number kept for it (``header``: more
        header fields, such as ``PossResend (97)``)."""
        self._last_sent = now
        frame = encode([*self._header(msg_type, pending.seq, now), *header], body)
        return Outbound(pending.seq, msg_type, frame, journal=msg_type not in ADMIN_TYPES)

    def tick(self, now: datetime) -> Step:
        """What the passing of time asks for: heartbeats, test requests, timeouts."""
        if self.phase is Phase.AWAITING_LOGON:
            if (now - self._connected_at).total_seconds() >= LOGON_TIMEOUT:
                self.phase = Phase.CLOSED
                return Step(close=f"no Logon within {LOGON_TIMEOUT:.0f} s")
            return Step()
        if self.phase is Phase.LOGOUT_SENT:
            assert self._logout_sent_at is not None
            if (now - self._logout_sent_at).total_seconds() >= LOGOUT_TIMEOUT:
                self.phase = Phase.CLOSED
                return Step(close="no answer to our Logout")
            return Step()
        if self.phase is not Phase.ACTIVE:
            return Step()
        step = Step()
        limit = self.heartbeat + grace(self.heartbeat)
        if self._test_request is not None:
            if (now - self._test_request[1]).total_seconds() >= limit:
                return self._logout(f"no answer to TestRequest {self._test_request[0]}", now, close=True)
        elif (now - self._last_received).total_seconds() >= limit:
            self._test_requests += 1
            test_id = f"TEST{self._test_requests}"
            self._test_request = (test_id, now)
            step.out.append(self._send("1", [(Tag.TEST_REQ_ID, test_id)], now))
        if (now - self._last_sent).total_seconds() >= self.heartbeat:
            step.out.append(self._send("0", [], now))
        return step

    def logout(self, text: str, now: datetime) -> Step:
        """Start the Logout handshake (the gateway is stopping); closes on the answer or a timeout."""
        if not self.is_logged_on:
            self.phase = Phase.CLOSED
            return Step(close=text)
        if self.phase is Phase.LOGOUT_SENT:
            return Step()
        return self._logout(text, now)

    def refuse(self, text: str) -> Step:
        """Refuse the Logon that asked for ``load`` (the session is logged on on another connection)."""
        assert self._logon is not None
        return self._refuse(self._logon, text)

    # -- the first message --------------------------------------------------------------------

    def _first(self, logon: Message, now: datetime) -> Step:
        if logon.msg_type != "A" or logon.problem is not None:
            self.phase = Phase.CLOSED
            return Step(close=f"the first message was not a Logon (35=A) but 35={logon.msg_type}")
        if logon.get(Tag.BEGIN_STRING) != BEGIN_STRING:
            self.phase = Phase.CLOSED
            return Step(close=f"BeginString (8) {logon.get(Tag.BEGIN_STRING)!r} is not {BEGIN_STRING}")
        sender, target = logon.get(Tag.SENDER_COMP_ID), logon.get(Tag.TARGET_COMP_ID)
        if not sender:
            return self._refuse(logon, "SenderCompID (49) is missing")
        if target != ACCEPTOR_COMP_ID:
            return self._refuse(logon, f"TargetCompID (56) must be {ACCEPTOR_COMP_ID}, not {target!r}")
        if logon.seq_num is None:
            return self._refuse(logon, "MsgSeqNum (34) is missing or not a positive integer")
        late = _sending_time_problem(logon, now)
        if late is not None:
            return self._refuse(logon, late[2])
        heartbeat = positive_int(logon.get(Tag.HEART_BT_INT))
        if heartbeat is None or not MIN_HEARTBEAT <= heartbeat <= MAX_HEARTBEAT:
            return self._refuse(
                logon, f"HeartBtInt (108) must be {MIN_HEARTBEAT} to {MAX_HEARTBEAT} seconds, not {logon.get(108)!r}"
            )
        encrypt = logon.get(Tag.ENCRYPT_METHOD)
        if encrypt not in (None, "0"):
            return self._refuse(logon, f"EncryptMethod (98) must be 0 (none), not {encrypt!r}")
        password = logon.get(Tag.PASSWORD)
        principal, refusal = self._check_logon(password)
        if refusal is not None:
            return self._refuse(logon, refusal)
        self.key, self.principal, self.heartbeat = SessionKey(sender), principal, heartbeat
        self.password = password
        self._logon = logon
        self.phase = Phase.LOADING
        return Step(load=self.key)

    def _refuse(self, logon: Message, text: str) -> Step:
        """A Logout outside any session's numbering (MsgSeqNum 1, never stored), then the disconnect."""
        self.phase = Phase.CLOSED
        header: list[Field] = [
            (Tag.MSG_TYPE, "5"),
            (Tag.SENDER_COMP_ID, ACCEPTOR_COMP_ID),
            (Tag.TARGET_COMP_ID, logon.get(Tag.SENDER_COMP_ID) or "UNKNOWN"),
            (Tag.MSG_SEQ_NUM, "1"),
            (Tag.SENDING_TIME, sending_time(self._last_received)),
        ]
        frame = encode(header, [(Tag.TEXT, text)])
        return Step(out=[Outbound(1, "5", frame, journal=False)], close=f"Logon refused: {text}")

    # -- a logged-on session --------------------------------------------------------------------

    def _in_session(self, message: Message, now: datetime) -> Step:
        seq = message.seq_num
        msg_type = message.msg_type
        if message.problem is not None:
            if seq is not None and seq == self.next_in:
                self.next_in += 1
            problem = message.problem
            return self._reject(seq, msg_type, problem.tag, problem.reason, problem.text, now)
        if message.get(Tag.BEGIN_STRING) != BEGIN_STRING:
            return self._logout(f"BeginString (8) must be {BEGIN_STRING}", now, close=True)
        assert self.key is not None
        if (
            message.get(Tag.SENDER_COMP_ID) != self.key.counterparty
            or message.get(Tag.TARGET_COMP_ID) != self.key.acceptor
        ):
            step = self._reject(seq, msg_type, Tag.SENDER_COMP_ID, Reject.COMP_ID_PROBLEM, "CompID problem", now)
            return step.then(self._logout("SenderCompID (49) or TargetCompID (56) is not this session's", now))
        if seq is None:
            return self._logout("MsgSeqNum (34) is missing or not a positive integer", now, close=True)
        late = _sending_time_problem(message, now)
        if late is not None:
            return self._late(message, seq, late, now)
        if msg_type == "A" and message.get(Tag.RESET_SEQ_NUM_FLAG) == "Y":
            return self._reset_in_session(message, seq, now)
        if msg_type == "4" and message.get(Tag.GAP_FILL_FLAG) != "Y":
            return self._sequence_reset(message, now)
        if seq > self.next_in:
            return self._too_high(message, seq, now)
        if seq < self.next_in:
            if message.is_poss_dup:
                return Step()  # already processed: a resend of what we had
            return self._logout(f"MsgSeqNum too low, expecting {self.next_in} but received {seq}", now, close=True)
        step = self._in_sequence(message, now)
        while self.next_in in self._queued and step.close is None and step.load is None:
            step.then(self._in_sequence(self._queued.pop(self.next_in), now))
        for stale in [s for s in self._queued if s < self.next_in]:
            del self._queued[stale]
        if self._asked_until is not None and self.next_in > self._asked_until:
            self._asked_until = None
        return step

    def _late(self, message: Message, seq: int, problem: tuple[int, Reject, str], now: datetime) -> Step:
        """A message whose SendingTime (or OrigSendingTime) is missing, malformed or too far off: a
        Reject naming the tag; it counts if it was the one expected. One too far off (a replay, a broken
        clock) also ends the session with a Logout, as FIX 4.4 says; the counterparty may log on again."""
        tag, reason, text = problem
        if seq == self.next_in:
            self.next_in += 1
        step = self._reject(seq, message.msg_type, tag, reason, text, now)
        if reason is Reject.SENDING_TIME_ACCURACY:
            return step.then(self._logout(text, now))
        return step

    def _reset_in_session(self, logon: Message, seq: int, now: datetime) -> Step:
        """A Logon with ``ResetSeqNumFlag (141)=Y`` inside a session (a daily reset without reconnecting):
        both sides start again at 1, the counterparty's Logon being its 1, ours answering as our 1; the
        messages stored for resends are forgotten (``Step.reset``), like at a Logon that resets."""
        if seq != 1:
            if seq == self.next_in:
                self.next_in += 1
            text = f"a Logon with ResetSeqNumFlag (141)=Y must carry MsgSeqNum (34) 1, not {seq}"
            return self._reject(seq, "A", Tag.MSG_SEQ_NUM, Reject.VALUE_INCORRECT, text, now)
        heartbeat = positive_int(logon.get(Tag.HEART_BT_INT))
        if heartbeat is not None and MIN_HEARTBEAT <= heartbeat <= MAX_HEARTBEAT:
            self.heartbeat = heartbeat
        self.next_in, self.next_out = 2, 1
        self._queued.clear()
        self._answered_early.clear()
        self._asked_until = None
        self._test_request = None
        reply: list[Field] = [
            (Tag.ENCRYPT_METHOD, "0"),
            (Tag.HEART_BT_INT, str(self.heartbeat)),
            (Tag.RESET_SEQ_NUM_FLAG, "Y"),
        ]
        return Step(out=[self._send("A", reply, now)], reset=True)

    def _too_high(self, message: Message, seq: int, now: datetime) -> Step:
        if message.msg_type == "5":
            return self._logout_answer(now)
        step = Step()
        if message.msg_type == "2":  # answered at once: the counterparty waits for it
            step.then(self._dispatch(message, seq, now))
            self._answered_early.add(seq)
        self._queued[seq] = message
        return step.then(self._ask_resend(seq, now))

    def _ask_resend(self, seq: int, now: datetime) -> Step:
        if self._asked_until is not None:
            self._asked_until = max(self._asked_until, seq)
            return Step()
        self._asked_until = seq
        return Step(out=[self._send("2", [(Tag.BEGIN_SEQ_NO, str(self.next_in)), (Tag.END_SEQ_NO, "0")], now)])

    def _in_sequence(self, message: Message, now: datetime) -> Step:
        seq = self.next_in
        if message.msg_type == "4":  # gap fill, in sequence
            new = positive_int(message.get(Tag.NEW_SEQ_NO))
            if new is None or new <= seq:
                self.next_in += 1
                return self._reject(
                    seq, "4", Tag.NEW_SEQ_NO, Reject.VALUE_INCORRECT, "NewSeqNo (36) must be above MsgSeqNum", now
                )
            self.next_in = new
            return Step()
        self.next_in += 1
        if seq in self._answered_early:  # its number comes after a gap: it counts now, once
            self._answered_early.discard(seq)
            return Step()
        return self._dispatch(message, seq, now)

    def _sequence_reset(self, message: Message, now: datetime) -> Step:
        """SequenceReset in reset mode: the expected number moves to NewSeqNo, whatever MsgSeqNum says."""
        new = positive_int(message.get(Tag.NEW_SEQ_NO))
        if new is None:
            return self._reject(
                message.seq_num, "4", Tag.NEW_SEQ_NO, Reject.REQUIRED_TAG_MISSING, "NewSeqNo (36) is missing", now
            )
        if new < self.next_in:
            text = f"NewSeqNo (36) {new} is below the expected MsgSeqNum {self.next_in}"
            return self._reject(message.seq_num, "4", Tag.NEW_SEQ_NO, Reject.VALUE_INCORRECT, text, now)
        self.next_in = new
        self._queued = {s: m for s, m in self._queued.items() if s >= new}
        step = Step()
        while self.next_in in self._queued:
            step.then(self._in_sequence(self._queued.pop(self.next_in), now))
        if self._asked_until is not None and self.next_in > self._asked_until:
            self._asked_until = None
        return step

    def _dispatch(self, message: Message, seq: int, now: datetime) -> Step:
        msg_type = message.msg_type
        if msg_type is None:
            return self._reject(seq, None, Tag.MSG_TYPE, Reject.REQUIRED_TAG_MISSING, "MsgType (35) is missing", now)
        if msg_type == "0":
            test_id = message.get(Tag.TEST_REQ_ID)
            if self._test_request is not None and test_id == self._test_request[0]:
                self._test_request = None
            return Step()
        if msg_type == "1":
            test_id = message.get(Tag.TEST_REQ_ID)
            if test_id is None:
                return self._reject(
                    seq, "1", Tag.TEST_REQ_ID, Reject.REQUIRED_TAG_MISSING, "TestReqID (112) is missing", now
                )
            return Step(out=[self._send("0", [(Tag.TEST_REQ_ID, test_id)], now)])
        if msg_type == "2":
            return self._resend_request(message, seq, now)
        if msg_type == "3":
            return Step()
        if msg_type == "5":
            if self.phase is Phase.LOGOUT_SENT:
                self.phase = Phase.CLOSED
                return Step(close="Logout answered")
            return self._logout_answer(now)
        if msg_type == "A":
            return self._reject(
                seq, "A", Tag.MSG_TYPE, Reject.OTHER, "Logon (35=A) received in a logged-on session", now
            )
        if msg_type in APPLICATION_TYPES:
            pending = Pending(message, self.next_out)
            self.next_out += 1
            return Step(out=[pending])
        body: list[Field] = [
            (Tag.REF_SEQ_NUM, str(seq)),
            (Tag.REF_MSG_TYPE, msg_type),
            (Tag.BUSINESS_REJECT_REASON, "3"),
            (Tag.TEXT, f"MsgType (35) {msg_type} is not supported: ordergate takes NewOrderSingle (35=D)"),
        ]
        return Step(out=[self._send("j", body, now)])

    def _resend_request(self, message: Message, seq: int, now: datetime) -> Step:
        begin = positive_int(message.get(Tag.BEGIN_SEQ_NO))
        end_text = message.get(Tag.END_SEQ_NO)
        end = 0 if end_text == "0" else positive_int(end_text)
        if begin is None:
            return self._reject(
                seq, "2", Tag.BEGIN_SEQ_NO, Reject.VALUE_INCORRECT, "BeginSeqNo (7) must be a positive integer", now
            )
        if end is None:
            return self._reject(
                seq, "2", Tag.END_SEQ_NO, Reject.VALUE_INCORRECT, "EndSeqNo (16) must be 0 or a positive integer", now
            )
        last = self.next_out - 1
        end = last if end == 0 or end > last else end
        if begin > end:
            return Step()
        return Step(resend=(begin, end))

    # -- sending ----------------------------------------------------------------------------------

    def _header(self, msg_type: str, seq: int, now: datetime) -> list[Field]:
        assert self.key is not None
        return [
            (Tag.MSG_TYPE, msg_type),
            (Tag.SENDER_COMP_ID, self.key.acceptor),
            (Tag.TARGET_COMP_ID, self.key.counterparty),
            (Tag.MSG_SEQ_NUM, str(seq)),
            (Tag.SENDING_TIME, sending_time(now)),
        ]

    def _send(self, msg_type: str, body: Sequence[Field], now: datetime) -> Outbound:
        seq = self.next_out
        self.next_out += 1
        self._last_sent = now
        frame = encode(self._header(msg_type, seq, now), body)
        return Outbound(seq, msg_type, frame, journal=msg_type not in ADMIN_TYPES)

    def _reject(
        self, seq: int | None, msg_type: str | None, tag: int | None, reason: int, text: str, now: datetime
    ) -> Step:
        body: list[Field] = [(Tag.REF_SEQ_NUM, str(seq or 0))]
        if tag is not None:
            body.append((Tag.REF_TAG_ID, str(tag)))
        if msg_type is not None:
            body.append((Tag.REF_MSG_TYPE, msg_type))
        body += [(Tag.SESSION_REJECT_REASON, str(int(reason))), (Tag.TEXT, text)]
        return Step(out=[self._send("3", body, now)])

    def _logout(self, text: str, now: datetime, *, close: bool = False) -> Step:
        """Send a Logout; ``close``: disconnect at once, else wait for the answer (or :data:`LOGOUT_TIMEOUT`)."""
        out = self._send("5", [(Tag.TEXT, text)], now)
        if close:
            self.phase = Phase.CLOSED
            return Step(out=[out], close=text)
        self.phase = Phase.LOGOUT_SENT
        self._logout_sent_at = now
        return Step(out=[out])

    def _logout_answer(self, now: datetime) -> Step:
        out = self._send("5", [], now)
        self.phase = Phase.CLOSED
        return Step(out=[out], close="the counterparty logged out")


def _sending_time_problem(message: Message, now: datetime) -> tuple[int, Reject, str] | None:
    """What is wrong with ``message``'s SendingTime (and, on a possible duplicate, its OrigSendingTime):
    the tag, the SessionRejectReason and the text; ``None`` when both are sound."""
    text = message.get(Tag.SENDING_TIME)
    if text is None:
        return Tag.SENDING_TIME, Reject.REQUIRED_TAG_MISSING, "SendingTime (52) is missing"
    sent = utc_timestamp(text)
    if sent is None:
        return Tag.SENDING_TIME, Reject.INCORRECT_DATA_FORMAT, f"SendingTime (52) {text!r} is not a UTCTimestamp"
    off = (sent - now).total_seconds()
    if abs(off) > MAX_LATENCY:
        return (
            Tag.SENDING_TIME,
            Reject.SENDING_TIME_ACCURACY,
            f"SendingTime (52) {text} is {abs(off):.0f} s {'ahead of' if off > 0 else 'behind'} ordergate's clock"
            f" (at most {MAX_LATENCY:.0f} s either way)",
        )
    if not message.is_poss_dup:
        return None
    original_text = message.get(Tag.ORIG_SENDING_TIME)
    if original_text is None:
        return Tag.ORIG_SENDING_TIME, Reject.REQUIRED_TAG_MISSING, "OrigSendingTime (122) is missing (PossDupFlag=Y)"
    original = utc_timestamp(original_text)
    if original is None:
        text = f"OrigSendingTime (122) {original_text!r} is not a UTCTimestamp"
        return Tag.ORIG_SENDING_TIME, Reject.INCORRECT_DATA_FORMAT, text
    if original > sent:
        text = f"OrigSendingTime (122) {original_text} is after SendingTime (52) {text}"
        return Tag.ORIG_SENDING_TIME, Reject.SENDING_TIME_ACCURACY, text
    return None
