"""The hash chain over the stored columns is the hash chain as it always was.

Stores now link an order over the ``applied`` and ``rejected_for`` bytes they write (encoded once);
every hash ever stored must still come out the same, or ``verify`` would fail on every store written
before. The reference below is the canonical content exactly as it was computed before, from Python
objects; it is compared with the new way on random records, names with quotes, backslashes and
non-ASCII letters included.
"""

from __future__ import annotations

import hashlib

import orjson
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from ordergate.domain.chain import GENESIS_HASH, Chains, canonical_content, canonical_effects, chain_hash, single_chain
from ordergate.domain.model import Action, Decision, Door, Effect, Order, Origin, Reason, Refusal, Scope, Side, Status
from ordergate.domain.record import OrderRecord
from ordergate.errors import StoredRowError
from ordergate.store.codec import decode_record, encode_and_link, encode_applied, encode_rejected_for


def content_as_before(record: OrderRecord) -> bytes:
    """``canonical_content`` as it was before the hash was taken over the encoded columns."""
    decision = record.decision
    return orjson.dumps(
        [
            record.order_id,
            record.received_at,
            record.order.strategy,
            record.order.instrument,
            record.order.side.value,
            decision.status.value,
            decision.reason.value if decision.reason is not None else None,
            record.scope.value,
            record.profile_fingerprint,
            record.controls_fingerprint,
            record.client_order_id,
            [[e.user, e.action.value, e.position_strategy] for e in decision.applied],
            [[r.user, r.reason.value] for r in decision.rejected_for],
        ]
    )


def hash_as_before(previous: str, record: OrderRecord) -> str:
    return hashlib.sha256(previous.encode("ascii") + b"\n" + content_as_before(record)).hexdigest()


names = st.text(st.characters(codec="utf-8", exclude_categories=("Cs",)), min_size=1, max_size=12)
records = st.builds(
    OrderRecord,
    order_id=st.integers(1, 2**62),
    received_at=names,
    order=st.builds(Order, names, names, st.sampled_from(list(Side))),
    decision=st.builds(
        Decision,
        st.sampled_from(list(Status)),
        st.none() | st.sampled_from(list(Reason)),
        st.lists(st.builds(Effect, names, st.sampled_from(list(Action)), names), max_size=8).map(tuple),
        st.lists(st.builds(Refusal, names, st.sampled_from(list(Reason))), max_size=8).map(tuple),
    ),
    scope=st.sampled_from(list(Scope)),
    profile_fingerprint=names,
    client_order_id=st.none() | names,
    controls_fingerprint=st.none() | names,
    opened=st.just(()),
    closed=st.just(()),  # the row does not keep positions (the log re-derives them): not hashed either
    chain_hash=st.none(),
    origin=st.just(Origin.STRATEGY),  # orders stored before SPEC section 10: none of its fields
    actor=st.none(),
    risk_fingerprint=st.none(),
    signal_time=st.none(),
    control_change=st.none(),  # not in the row (the stores keep it with the control changes)
    door=st.none(),  # orders stored before SPEC section 11
)
entry_records = st.builds(
    lambda record, origin, actor, risk, signal: record._replace(
        origin=origin, actor=actor, risk_fingerprint=risk, signal_time=signal
    ),
    records,
    st.sampled_from(list(Origin)),
    st.none() | names,
    st.none() | names,
    st.none() | names,
).filter(lambda record: record.has_entry_fields)
door_records = st.builds(
    lambda record, door, origin, actor: record._replace(door=door, origin=origin, actor=actor),
    records,
    st.sampled_from(list(Door)),
    st.sampled_from(list(Origin)),
    st.none() | names,
)


def content_with_entry(record: OrderRecord) -> bytes:
    """The canonical content of an order with fields of SPEC section 10: the four follow ``client_order_id``."""
    before = orjson.loads(content_as_before(record))
    entry = [record.origin.value, record.actor, record.risk_fingerprint, record.signal_time]
    return orjson.dumps([*before[:11], *entry, *before[11:]])


@settings(max_examples=200, deadline=None)
@given(record=entry_records)
def test_an_order_with_entry_fields_hashes_them_after_the_client_order_id(record: OrderRecord) -> None:
    assert canonical_content(record) == content_with_entry(record)
    (encoded,) = encode_and_link([record], Chains(single_chain))
    expected = hashlib.sha256(GENESIS_HASH.encode("ascii") + b"\n" + content_with_entry(record)).hexdigest()
    assert encoded.chain_hash == expected


@settings(max_examples=400, deadline=None)
@given(record=records, previous=st.just(GENESIS_HASH) | st.text("0123456789abcdef", min_size=64, max_size=64))
def test_the_hash_over_the_encoded_columns_is_the_hash_computed_the_old_way(record: OrderRecord, previous: str) -> None:
    assert canonical_content(record) == content_as_before(record)
    assert chain_hash(previous, record) == hash_as_before(previous, record)
    (encoded,) = encode_and_link([record], Chains(single_chain, {"": previous}))
    assert encoded.chain_hash == hash_as_before(previous, record)
    assert (encoded.applied, encoded.rejected_for) == (
        encode_applied(record.decision),
        encode_rejected_for(record.decision),
    )
    assert canonical_effects(record.decision) == (encoded.applied.encode(), encoded.rejected_for.encode())
    # what is stored reads back as the record it was (and so verify hashes it the same way again)
    o, d = record.order, record.decision
    stored = decode_record(
        record.order_id, record.received_at, o.strategy, o.instrument, o.side.value, d.status.value,
        d.reason.value if d.reason is not None else None, record.scope.value, record.profile_fingerprint,
        record.client_order_id, encoded.applied, encoded.rejected_for, record.controls_fingerprint, encoded.chain_hash,
    )  # fmt: skip
    assert stored == record._replace(chain_hash=encoded.chain_hash)
    assert Chains(single_chain, {"": previous}).expected(stored) == encoded.chain_hash


def test_a_group_is_linked_in_order_each_order_to_the_one_before() -> None:
    effects = tuple(Effect(f"User {n}", Action.OPENED, "S1") for n in range(3))
    group = [
        OrderRecord(n, f"t{n}", Order("S1", "ACC", Side.BUY), Decision(Status.ACCEPTED, None, effects, ()),
                    Scope.ACCOUNT, "f", None)
        for n in (1, 2, 3)
    ]  # fmt: skip
    chains = Chains(single_chain)
    encoded = encode_and_link(group, chains)
    previous = GENESIS_HASH
    for record, row in zip(group, encoded, strict=True):
        assert row.chain_hash == hash_as_before(previous, record)
        previous = row.chain_hash
    assert chains.head("") == previous


def content_with_door(record: OrderRecord) -> bytes:
    """The canonical content of an order that says its door: the door follows the four entry fields."""
    assert record.door is not None
    before = orjson.loads(content_with_entry(record))
    return orjson.dumps([*before[:15], record.door.value, *before[15:]])


@settings(max_examples=200, deadline=None)
@given(record=door_records)
def test_an_order_with_a_door_hashes_it_after_the_entry_fields_and_reads_back_as_it_was(record: OrderRecord) -> None:
    assert record.door is not None
    assert canonical_content(record) == content_with_door(record)
    (encoded,) = encode_and_link([record], Chains(single_chain))
    expected = hashlib.sha256(GENESIS_HASH.encode("ascii") + b"\n" + content_with_door(record)).hexdigest()
    assert encoded.chain_hash == expected
    o, d = record.order, record.decision
    columns = (
        record.order_id, record.received_at, o.strategy, o.instrument, o.side.value, d.status.value,
        d.reason.value if d.reason is not None else None, record.scope.value, record.profile_fingerprint,
        record.client_order_id, encoded.applied, encoded.rejected_for, record.controls_fingerprint, encoded.chain_hash,
        record.origin.value, record.actor, record.risk_fingerprint, record.signal_time,
    )  # fmt: skip
    stored = decode_record(*columns, record.door.value)
    assert stored == record._replace(chain_hash=encoded.chain_hash)
    assert Chains(single_chain).expected(stored) == encoded.chain_hash
    other = next(door for door in Door if door is not record.door)
    assert Chains(single_chain).expected(stored._replace(door=other)) != encoded.chain_hash
    assert Chains(single_chain).expected(stored._replace(door=None)) != encoded.chain_hash


def test_a_stored_door_that_no_ordergate_writes_names_the_column() -> None:
    with pytest.raises(StoredRowError) as raised:
        decode_record(1, "t", "S1", "ACC", "BUY", "REJECTED", "UNKNOWN_STRATEGY", "account", "f", None, "[]", "[]",
                      None, None, "strategy", "anonymous", None, None, "telegram")  # fmt: skip
    assert raised.value.row.column == "door"
    assert "telegram" in raised.value.row.problem


def test_the_door_values_are_the_stable_wire_values() -> None:
    assert [door.value for door in Door] == ["api", "legacy", "hook", "fix", "gateway"]
