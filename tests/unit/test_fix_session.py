"""The FIX session state machine on its own: frames in, frames out, with an injected clock."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from ordergate.fix.codec import FrameReader, Garbled, Message, Tag, decode, encode, sending_time
from ordergate.fix.session import (
    FRESH,
    Outbound,
    Pending,
    Phase,
    Session,
    SessionKey,
    SessionState,
    Step,
)
from ordergate.security.keys import Principal, Role

T0 = datetime(2026, 12, 3, 10, 0, 0, tzinfo=UTC)
PRODUCER = Principal("k1", "alpha", Role.PRODUCER, frozenset({"STRATEGY_A"}), None)


class Counterparty:
    """The initiator side, hand-driven: builds its frames with its own MsgSeqNum."""

    def __init__(self, comp_id: str = "CLIENT", seq: int = 1) -> None:
        self.comp_id = comp_id
        self.seq = seq

    def frame(
        self,
        msg_type: str,
        body: list[tuple[int, str]] | None = None,
        *,
        seq: int | None = None,
        sent: str | None = sending_time(T0),
        originally: str | None = sending_time(T0),
        **header: str,
    ) -> Message:
        """``sent``: its SendingTime (``None``: none); ``originally``: a possible duplicate's OrigSendingTime."""
        number = self.seq if seq is None else seq
        if seq is None:
            self.seq += 1
        fields = [
            (Tag.MSG_TYPE, msg_type),
            (Tag.SENDER_COMP_ID, header.get("sender", self.comp_id)),
            (Tag.TARGET_COMP_ID, header.get("target", "ORDERGATE")),
            (Tag.MSG_SEQ_NUM, str(number)),
        ]
        if sent is not None:
            fields.append((Tag.SENDING_TIME, sent))
        if header.get("poss_dup"):
            fields.append((Tag.POSS_DUP_FLAG, "Y"))
            if originally is not None:
                fields.append((Tag.ORIG_SENDING_TIME, originally))
        return decode(encode(fields, body or []))

    def logon(
        self, heartbeat: str = "30", password: str | None = None, *, seq: int | None = None, **header: str
    ) -> Message:
        body = [(Tag.ENCRYPT_METHOD, "0"), (Tag.HEART_BT_INT, heartbeat)]
        if password is not None:
            body.append((Tag.PASSWORD, password))
        if header.pop("reset", None):
            body.append((Tag.RESET_SEQ_NUM_FLAG, "Y"))
        return self.frame("A", body, seq=seq, **header)


def sent(step: Step) -> list[Message]:
    """The frames a step sends, decoded (pending application messages left out)."""
    return [decode(item.frame) for item in step.out if isinstance(item, Outbound)]


def types(step: Step) -> list[str | None]:
    return [m.msg_type for m in sent(step)]


def logged_on(state: SessionState = FRESH, client: Counterparty | None = None) -> tuple[Session, Counterparty]:
    client = client or Counterparty()
    session = Session(T0)
    step = session.receive(client.logon(), T0)
    assert step.load == SessionKey("CLIENT")
    reply = session.resume(state, T0)
    assert "A" in types(reply)
    return session, client


def test_logon_to_ordergate_is_answered_with_a_logon_carrying_the_heartbeat_interval() -> None:
    session = Session(T0)
    step = session.receive(Counterparty().logon(heartbeat="20"), T0)
    assert step.load == SessionKey("CLIENT", "ORDERGATE")
    assert step.out == []
    reply = sent(session.resume(FRESH, T0))
    assert [m.msg_type for m in reply] == ["A"]
    assert reply[0].get(Tag.HEART_BT_INT) == "20"
    assert reply[0].get(Tag.SENDER_COMP_ID) == "ORDERGATE"
    assert reply[0].get(Tag.TARGET_COMP_ID) == "CLIENT"
    assert reply[0].get(Tag.MSG_SEQ_NUM) == "1"
    assert session.state == SessionState(2, 2)


def test_logon_resumes_the_stored_sequence_numbers() -> None:
    session, _ = logged_on(SessionState(1, 7))
    assert session.next_out == 8


def test_logon_to_another_target_comp_id_is_refused_with_a_logout_naming_the_tag() -> None:
    session = Session(T0)
    step = session.receive(Counterparty().logon(target="BROKER"), T0)
    assert types(step) == ["5"]
    assert "TargetCompID (56) must be ORDERGATE" in (sent(step)[0].get(Tag.TEXT) or "")
    assert step.close is not None
    assert step.load is None
    assert session.phase is Phase.CLOSED


def test_logon_with_a_bad_heartbeat_interval_is_refused() -> None:
    step = Session(T0).receive(Counterparty().logon(heartbeat="abc"), T0)
    assert types(step) == ["5"]
    assert "HeartBtInt (108)" in (sent(step)[0].get(Tag.TEXT) or "")


def test_logon_password_is_checked_and_a_bad_key_refused() -> None:
    seen: list[str | None] = []

    def check(password: str | None) -> tuple[Principal | None, str | None]:
        seen.append(password)
        return (PRODUCER, None) if password == "og_k1_good" else (None, "Password (554) is not an active API key")

    refused = Session(T0, check)
    step = refused.receive(Counterparty().logon(password="og_k1_bad"), T0)
    assert types(step) == ["5"]
    assert sent(step)[0].get(Tag.TEXT) == "Password (554) is not an active API key"
    assert step.close is not None

    admitted = Session(T0, check)
    assert admitted.receive(Counterparty().logon(password="og_k1_good"), T0).load == SessionKey("CLIENT")
    assert admitted.principal == PRODUCER
    assert seen == ["og_k1_bad", "og_k1_good"]


def test_a_first_message_that_is_not_a_logon_disconnects_without_an_answer() -> None:
    step = Session(T0).receive(Counterparty().frame("D", [(Tag.CL_ORD_ID, "a")]), T0)
    assert step.out == []
    assert step.close is not None


def test_a_logon_with_reset_seq_num_flag_starts_both_sides_at_one() -> None:
    client = Counterparty()
    session = Session(T0)
    session.receive(client.logon(reset="Y"), T0)
    step = session.resume(SessionState(40, 90), T0)
    assert step.reset
    reply = sent(step)[0]
    assert reply.get(Tag.RESET_SEQ_NUM_FLAG) == "Y"
    assert reply.get(Tag.MSG_SEQ_NUM) == "1"
    assert session.state == SessionState(2, 2)


def test_a_heartbeat_is_sent_after_heartbeat_interval_of_our_silence() -> None:
    session, client = logged_on()
    assert session.tick(T0 + timedelta(seconds=29)).out == []
    session.receive(client.frame("0"), T0 + timedelta(seconds=29))
    assert types(session.tick(T0 + timedelta(seconds=30))) == ["0"]
    assert session.tick(T0 + timedelta(seconds=31)).out == []


def test_silence_brings_a_test_request_and_no_answer_a_disconnect() -> None:
    session, _client = logged_on()
    # the counterparty is silent: 30 s + a grace of 6 s, then a TestRequest
    session.tick(T0 + timedelta(seconds=30))
    assert "1" not in types(session.tick(T0 + timedelta(seconds=35)))
    step = session.tick(T0 + timedelta(seconds=36))
    assert "1" in types(step)
    test_id = next(m for m in sent(step) if m.msg_type == "1").get(Tag.TEST_REQ_ID)
    assert test_id
    # still no answer after another interval and grace: Logout and disconnect
    late = session.tick(T0 + timedelta(seconds=72))
    assert types(late) == ["5"]
    assert late.close is not None
    assert "TestRequest" in late.close


def test_an_answered_test_request_keeps_the_session() -> None:
    session, client = logged_on()
    step = session.tick(T0 + timedelta(seconds=36))
    test_id = next(m for m in sent(step) if m.msg_type == "1").get(Tag.TEST_REQ_ID)
    assert test_id is not None
    session.receive(client.frame("0", [(Tag.TEST_REQ_ID, test_id)]), T0 + timedelta(seconds=37))
    assert session.tick(T0 + timedelta(seconds=72)).close is None
    assert session.phase is Phase.ACTIVE


def test_a_test_request_is_answered_with_a_heartbeat_carrying_its_id() -> None:
    session, client = logged_on()
    step = session.receive(client.frame("1", [(Tag.TEST_REQ_ID, "ping-7")]), T0)
    assert [(m.msg_type, m.get(Tag.TEST_REQ_ID)) for m in sent(step)] == [("0", "ping-7")]


def test_a_gap_brings_a_resend_request_and_the_queued_message_is_processed_once_the_gap_is_filled() -> None:
    session, client = logged_on()  # next expected: 2
    order = client.frame("D", [(Tag.CL_ORD_ID, "late")], seq=4)
    step = session.receive(order, T0)
    resend = sent(step)
    assert [(m.msg_type, m.get(Tag.BEGIN_SEQ_NO), m.get(Tag.END_SEQ_NO)) for m in resend] == [("2", "2", "0")]
    assert not any(isinstance(item, Pending) for item in step.out)
    # the counterparty fills 2..3 with a gap fill; the queued order (4) is handed out now
    fill = client.frame("4", [(Tag.GAP_FILL_FLAG, "Y"), (Tag.NEW_SEQ_NO, "4")], seq=2, poss_dup="Y")
    step = session.receive(fill, T0)
    pending = [item for item in step.out if isinstance(item, Pending)]
    assert [p.message.get(Tag.CL_ORD_ID) for p in pending] == ["late"]
    assert session.next_in == 5


def test_a_resend_request_sends_stored_messages_as_possible_duplicates_and_gap_fills_admin_ones() -> None:
    session, client = logged_on(SessionState(1, 1))
    # ours so far: 1 Logon; then an execution report (2), a heartbeat (3), another report (4)
    order = client.frame("D", [(Tag.CL_ORD_ID, "a")])
    pending = session.receive(order, T0).out[0]
    assert isinstance(pending, Pending)
    report = session.answer(pending, "8", [(Tag.ORDER_ID, "1"), (Tag.EXEC_ID, "1")], T0)
    assert report.journal
    heartbeat = session.tick(T0 + timedelta(seconds=30)).out
    assert [o.msg_type for o in heartbeat if isinstance(o, Outbound)] == ["0"]
    pending = session.receive(client.frame("D", [(Tag.CL_ORD_ID, "b")]), T0).out[0]
    assert isinstance(pending, Pending)
    second = session.answer(pending, "8", [(Tag.ORDER_ID, "2"), (Tag.EXEC_ID, "2")], T0)

    step = session.receive(client.frame("2", [(Tag.BEGIN_SEQ_NO, "1"), (Tag.END_SEQ_NO, "0")]), T0)
    assert step.resend == (1, 4)
    later = T0 + timedelta(seconds=40)
    resent = sent(session.resent([(report.seq, report.frame), (second.seq, second.frame)], 1, 4, later))
    assert [(m.msg_type, m.seq_num) for m in resent] == [("4", 1), ("8", 2), ("4", 3), ("8", 4)]
    assert [m.get(Tag.NEW_SEQ_NO) for m in resent if m.msg_type == "4"] == ["2", "4"]
    assert all(m.get(Tag.POSS_DUP_FLAG) == "Y" for m in resent)
    assert all(m.get(Tag.GAP_FILL_FLAG) == "Y" for m in resent if m.msg_type == "4")
    assert resent[1].get(Tag.ORIG_SENDING_TIME) == sending_time(T0)
    assert resent[1].get(Tag.SENDING_TIME) == sending_time(later)
    assert resent[1].get(Tag.ORDER_ID) == "1"
    assert session.next_out == 5  # a resend takes no new numbers


def test_sequence_reset_in_reset_mode_moves_the_expected_number_whatever_msg_seq_num_says() -> None:
    session, client = logged_on()
    step = session.receive(client.frame("4", [(Tag.NEW_SEQ_NO, "20")], seq=99), T0)
    assert step.out == []
    assert session.next_in == 20


def test_sequence_reset_to_a_lower_number_is_rejected_naming_new_seq_no() -> None:
    session, client = logged_on(SessionState(10, 1), Counterparty(seq=10))
    step = session.receive(client.frame("4", [(Tag.NEW_SEQ_NO, "5")], seq=11), T0)
    reject = sent(step)[0]
    assert reject.msg_type == "3"
    assert reject.get(Tag.REF_TAG_ID) == "36"
    assert reject.get(Tag.SESSION_REJECT_REASON) == "5"
    assert session.phase is Phase.ACTIVE


def test_a_message_with_a_seq_num_too_low_and_no_poss_dup_is_a_logout() -> None:
    session, client = logged_on(SessionState(5, 1), Counterparty(seq=5))  # the logon was 5; 6 expected
    step = session.receive(client.frame("0", seq=3), T0)
    assert types(step) == ["5"]
    assert "MsgSeqNum too low, expecting 6 but received 3" in (sent(step)[0].get(Tag.TEXT) or "")
    assert step.close is not None


def test_a_possible_duplicate_below_the_expected_number_is_ignored() -> None:
    session, client = logged_on(SessionState(5, 1), Counterparty(seq=5))
    step = session.receive(client.frame("D", [(Tag.CL_ORD_ID, "x")], seq=3, poss_dup="Y"), T0)
    assert step.out == []
    assert step.close is None


def test_a_logon_with_a_seq_num_too_low_is_a_logout() -> None:
    session = Session(T0)
    session.receive(Counterparty(seq=2).logon(), T0)
    step = session.resume(SessionState(8, 3), T0)
    assert types(step) == ["5"]
    assert step.close is not None


def test_a_logon_with_a_seq_num_too_high_is_answered_then_the_gap_asked_for() -> None:
    session = Session(T0)
    session.receive(Counterparty(seq=9).logon(), T0)
    step = session.resume(SessionState(4, 3), T0)
    assert [(m.msg_type, m.get(Tag.BEGIN_SEQ_NO)) for m in sent(step)] == [("A", None), ("2", "4")]
    # the counterparty gap-fills 4..8; the Logon (9) then counts and 10 is expected
    session.receive(Counterparty().frame("4", [(Tag.GAP_FILL_FLAG, "Y"), (Tag.NEW_SEQ_NO, "9")], seq=4), T0)
    assert session.next_in == 10


def test_a_malformed_message_gets_a_reject_naming_the_tag_and_the_session_goes_on() -> None:
    session, client = logged_on()
    step = session.receive(client.frame("1"), T0)  # a TestRequest without its TestReqID
    reject = sent(step)[0]
    assert reject.msg_type == "3"
    assert reject.get(Tag.REF_TAG_ID) == "112"
    assert reject.get(Tag.SESSION_REJECT_REASON) == "1"
    assert reject.get(Tag.REF_SEQ_NUM) == "2"
    assert step.close is None
    assert session.next_in == 3
    assert types(session.receive(client.frame("1", [(Tag.TEST_REQ_ID, "t")]), T0)) == ["0"]


def test_a_tag_without_a_value_is_rejected_naming_the_tag() -> None:
    session, _ = logged_on()
    raw = encode(
        [(35, "0"), (49, "CLIENT"), (56, "ORDERGATE"), (34, "2"), (52, sending_time(T0))],
        [(Tag.TEST_REQ_ID, "")],
    )
    [message] = FrameReader().feed(raw)
    assert isinstance(message, Message)
    reject = sent(session.receive(message, T0))[0]
    assert (reject.msg_type, reject.get(Tag.REF_TAG_ID), reject.get(Tag.SESSION_REJECT_REASON)) == ("3", "112", "4")
    assert session.next_in == 3


def test_an_unsupported_message_type_gets_a_business_message_reject() -> None:
    session, client = logged_on()
    step = session.receive(client.frame("F", [(Tag.CL_ORD_ID, "c")]), T0)
    reject = sent(step)[0]
    assert reject.msg_type == "j"
    assert reject.get(Tag.REF_MSG_TYPE) == "F"
    assert reject.get(Tag.BUSINESS_REJECT_REASON) == "3"
    assert reject.get(Tag.REF_SEQ_NUM) == "2"
    assert step.close is None


def test_a_new_order_single_is_handed_out_with_the_number_its_answer_will_carry() -> None:
    session, client = logged_on()
    first = session.receive(client.frame("D", [(Tag.CL_ORD_ID, "a")]), T0).out
    second = session.receive(client.frame("D", [(Tag.CL_ORD_ID, "b")]), T0).out
    assert [p.seq for p in first + second if isinstance(p, Pending)] == [2, 3]
    # answered out of order, each keeps its own number
    assert isinstance(second[0], Pending)
    assert isinstance(first[0], Pending)
    late = session.answer(second[0], "8", [(Tag.ORDER_ID, "2")], T0)
    early = session.answer(first[0], "8", [(Tag.ORDER_ID, "1")], T0)
    assert (early.seq, late.seq) == (2, 3)
    assert decode(late.frame).seq_num == 3


def test_a_logout_is_answered_and_the_connection_closed() -> None:
    session, client = logged_on()
    step = session.receive(client.frame("5"), T0)
    assert types(step) == ["5"]
    assert step.close is not None


def test_our_logout_waits_for_the_answer_then_closes() -> None:
    session, client = logged_on()
    step = session.logout("the gateway is stopping", T0)
    assert types(step) == ["5"]
    assert step.close is None
    assert session.receive(client.frame("5"), T0).close == "Logout answered"


def test_our_logout_without_an_answer_closes_after_the_timeout() -> None:
    session, _ = logged_on()
    session.logout("the gateway is stopping", T0)
    assert session.tick(T0 + timedelta(seconds=1)).close is None
    assert session.tick(T0 + timedelta(seconds=3)).close is not None


def test_no_logon_within_the_timeout_disconnects() -> None:
    session = Session(T0)
    assert session.tick(T0 + timedelta(seconds=5)).close is None
    assert session.tick(T0 + timedelta(seconds=11)).close is not None


def test_a_wrong_comp_id_inside_a_session_is_rejected_and_logged_out() -> None:
    session, client = logged_on()
    step = session.receive(client.frame("0", sender="OTHER"), T0)
    assert types(step) == ["3", "5"]
    assert sent(step)[0].get(Tag.SESSION_REJECT_REASON) == "9"


@pytest.mark.parametrize(
    ("data", "reason"),
    [
        (b"8=FIX.4.4\x019=5\x0135=0\x0110=000\x01", "CheckSum"),
        (b"8=FIX.4.4\x019=500\x0135=0\x01" + b"x" * 500 + b"10=000\x01", "CheckSum (10)"),
        (b"8=FIX.4.4\x0135=0\x0134=2\x01" + b"x" * 40, "BodyLength"),
    ],
)
def test_garbled_frames_are_ignored_and_the_reader_resynchronises(data: bytes, reason: str) -> None:
    good = encode([(35, "0"), (49, "CLIENT"), (56, "ORDERGATE"), (34, "2"), (52, sending_time(T0))], [])
    items = FrameReader().feed(data + good)
    assert isinstance(items[0], Garbled)
    assert reason in items[0].reason
    assert isinstance(items[-1], Message)
    assert items[-1].seq_num == 2
    session, _ = logged_on()
    assert session.receive(items[0], T0).out == []
    assert session.next_in == 2


def test_a_frame_split_across_reads_is_put_back_together() -> None:
    good = encode([(35, "0"), (49, "CLIENT"), (56, "ORDERGATE"), (34, "2"), (52, sending_time(T0))], [])
    reader = FrameReader()
    assert reader.feed(good[:7]) == []
    assert reader.feed(good[7:30]) == []
    [message] = reader.feed(good[30:])
    assert isinstance(message, Message)
    assert message.msg_type == "0"


def test_a_resend_request_behind_a_gap_is_answered_at_once_and_only_once() -> None:
    session, client = logged_on(SessionState(1, 1))  # ours so far: the Logon (1)
    step = session.receive(client.frame("2", [(Tag.BEGIN_SEQ_NO, "1"), (Tag.END_SEQ_NO, "0")], seq=4), T0)
    assert step.resend == (1, 1)
    assert [m.msg_type for m in sent(step)] == ["2"]  # and ours for the gap 2..3
    filled = session.receive(client.frame("4", [(Tag.GAP_FILL_FLAG, "Y"), (Tag.NEW_SEQ_NO, "4")], seq=2), T0)
    assert filled.resend is None
    assert filled.out == []
    assert session.next_in == 5


# -- SendingTime accuracy and a reset inside a session ----------------------------------------------


@pytest.mark.parametrize(
    ("off", "says"), [(timedelta(minutes=-3), "behind"), (timedelta(minutes=2, seconds=1), "ahead")]
)
def test_a_message_sent_more_than_two_minutes_off_our_clock_is_rejected_with_reason_10_and_logged_out(
    off: timedelta, says: str
) -> None:
    session, client = logged_on()
    step = session.receive(client.frame("0", sent=sending_time(T0 + off)), T0)
    reject, logout = sent(step)
    assert (reject.msg_type, reject.get(373), reject.get(371), reject.get(45)) == ("3", "10", "52", "2")
    assert says in (reject.get(Tag.TEXT) or "")
    assert logout.msg_type == "5"
    assert session.state.next_in == 3  # it counted
    assert session.phase is Phase.LOGOUT_SENT
    assert session.tick(T0 + timedelta(seconds=3)).close is not None


def test_a_message_within_two_minutes_of_our_clock_is_taken() -> None:
    session, client = logged_on()
    step = session.receive(
        client.frame("1", [(Tag.TEST_REQ_ID, "t")], sent=sending_time(T0 - timedelta(seconds=119))), T0
    )
    assert types(step) == ["0"]


@pytest.mark.parametrize(
    ("sent_at", "reason", "says"),
    [(None, "1", "SendingTime (52) is missing"), ("2026-12-03 10:00:00", "6", "is not a UTCTimestamp")],
)
def test_a_missing_or_malformed_sending_time_is_rejected_naming_tag_52_and_the_session_goes_on(
    sent_at: str | None, reason: str, says: str
) -> None:
    session, client = logged_on()
    step = session.receive(client.frame("0", sent=sent_at), T0)
    [reject] = sent(step)
    assert (reject.msg_type, reject.get(373), reject.get(371)) == ("3", reason, "52")
    assert says in (reject.get(Tag.TEXT) or "")
    assert session.phase is Phase.ACTIVE
    assert types(session.receive(client.frame("1", [(Tag.TEST_REQ_ID, "t")]), T0)) == ["0"]


def test_a_possible_duplicate_needs_an_orig_sending_time_no_later_than_its_sending_time() -> None:
    session, client = logged_on()
    [missing] = sent(session.receive(client.frame("0", poss_dup="Y", originally=None), T0))
    assert (missing.get(373), missing.get(371)) == ("1", "122")
    assert session.phase is Phase.ACTIVE
    later = sending_time(T0 + timedelta(seconds=5))
    reject, logout = sent(session.receive(client.frame("0", poss_dup="Y", originally=later), T0))
    assert (reject.get(373), reject.get(371), logout.msg_type) == ("10", "122", "5")


def test_a_logon_sent_far_off_our_clock_is_refused_naming_sending_time() -> None:
    session = Session(T0)
    step = session.receive(Counterparty().logon(sent=sending_time(T0 - timedelta(hours=1))), T0)
    assert step.load is None
    assert step.close is not None
    [logout] = sent(step)
    assert logout.msg_type == "5"
    assert "SendingTime (52)" in (logout.get(Tag.TEXT) or "")


def test_a_logon_with_reset_seq_num_flag_inside_a_session_starts_both_sides_at_one_again() -> None:
    session, client = logged_on(SessionState(40, 90), Counterparty(seq=40))
    session.receive(client.frame("0"), T0)
    assert session.state == SessionState(42, 91)
    client.seq = 1
    step = session.receive(client.logon(heartbeat="20", reset="Y"), T0)
    assert step.reset
    [reply] = sent(step)
    assert (reply.msg_type, reply.get(Tag.MSG_SEQ_NUM), reply.get(Tag.RESET_SEQ_NUM_FLAG)) == ("A", "1", "Y")
    assert reply.get(Tag.HEART_BT_INT) == "20"
    assert session.state == SessionState(2, 2)
    order = session.receive(client.frame("D", [(11, "o-1"), (55, "GRASIM"), (54, "1")]), T0)
    [pending] = order.out
    assert isinstance(pending, Pending)
    assert pending.seq == 2


def test_a_logon_with_reset_seq_num_flag_inside_a_session_must_carry_seq_num_one() -> None:
    session, client = logged_on()
    step = session.receive(client.logon(reset="Y"), T0)
    assert not step.reset
    [reject] = sent(step)
    assert (reject.msg_type, reject.get(373), reject.get(371)) == ("3", "5", "34")
    assert session.state == SessionState(3, 3)
