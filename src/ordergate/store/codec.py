"""How an order is written into one row and read back, shared by every engine.

Effects are stored compactly as JSON arrays (``[[user, action, position_strategy], ...]`` and
``[[user, reason], ...]``) so that one order is one row, whatever its fan-out. That JSON is the
canonical form the hash chain covers (:func:`~ordergate.domain.chain.canonical_effects`):
:func:`encode_and_link` encodes an order's effects once and links the order over those very bytes.

Reading back checks every column: a row holding what no ordergate writes (a side ``HOLD``, an unknown
reason or action, ``applied`` that is not such a JSON array, a blob where text belongs) was altered
outside ordergate, and is reported as :class:`~ordergate.errors.StoredRowError` naming the order and
the column, never as a traceback. Log readers turn it into a :class:`~ordergate.store.base.TamperedRow`
per row (:func:`decode_logged`), which ``verify`` reports; listings leave such a row out and log it
(:func:`decode_page`).
"""

from __future__ import annotations

import logging
from collections.abc import Iterable, Sequence
from enum import StrEnum
from typing import Any, NamedTuple, TypeVar

import orjson

from ordergate.domain.chain import Chains, canonical_effects
from ordergate.domain.model import (
    Action,
    Decision,
    Door,
    Effect,
    Order,
    Origin,
    Reason,
    Refusal,
    Scope,
    Side,
    Status,
)
from ordergate.domain.record import OrderRecord
from ordergate.errors import StoredRowError
from ordergate.store.base import ControlChange, Page, StreamPosition, TamperedRow
from ordergate.store.paging import page_of

log = logging.getLogger(__name__)

E = TypeVar("E", bound=StrEnum)

_ACTIONS: dict[str, Action] = {action.value: action for action in Action}
_REASONS: dict[str, Reason] = {reason.value: reason for reason in Reason}
_SHOWN = 40
"""At most this many characters of an altered value are quoted in a message."""


class EncodedOrder(NamedTuple):
    """The columns of an order row that grow with its fan-out, and its hash-chain link over them."""

    applied: str
    rejected_for: str
    chain_hash: str


def encode_and_link(records: Sequence[OrderRecord], chains: Chains) -> list[EncodedOrder]:
    """Encode each record's ``applied`` and ``rejected_for`` once, and link it (in this order) over them."""
    encoded: list[EncodedOrder] = []
    for record in records:
        effects = canonical_effects(record.decision)
        applied, rejected_for = effects
        encoded.append(EncodedOrder(applied.decode(), rejected_for.decode(), chains.link(record, effects)))
    return encoded


def encode_applied(decision: Decision) -> str:
    return orjson.dumps(decision.applied, default=tuple).decode()


def encode_rejected_for(decision: Decision) -> str:
    return orjson.dumps(decision.rejected_for, default=tuple).decode()


def decode_record(
    order_id: int,
    received_at: str,
    strategy: str,
    instrument: str,
    side: str,
    status: str,
    reason: str | None,
    scope: str,
    fingerprint: str,
    client_order_id: str | None,
    applied: str | bytes,
    rejected_for: str | bytes,
    controls_fingerprint: str | None = None,
    chain_hash: str | None = None,
    origin: str | None = None,
    actor: str | None = None,
    risk_fingerprint: str | None = None,
    signal_time: str | None = None,
    door: str | None = None,
) -> OrderRecord:
    """Rebuild a record from its stored columns (opened/closed positions are not kept in the row).

    Raises :class:`~ordergate.errors.StoredRowError` naming the first column that holds a value no
    ordergate writes.
    """
    if type(order_id) is not int:
        raise _altered(order_id, "order_id", f"holds {_shown(order_id)}, not an integer")
    texts: tuple[tuple[str, object, bool], ...] = (  # (column, value, may it be NULL)
        ("received_at", received_at, False),
        ("strategy", strategy, False),
        ("instrument", instrument, False),
        ("profile_fingerprint", fingerprint, False),
        ("client_order_id", client_order_id, True),
        ("controls_fingerprint", controls_fingerprint, True),
        ("chain_hash", chain_hash, True),
        ("actor", actor, True),
        ("risk_fingerprint", risk_fingerprint, True),
        ("signal_time", signal_time, True),
    )
    for column, value, nullable in texts:
        if type(value) is not str and not (nullable and value is None):
            raise _altered(order_id, column, f"holds {_shown(value)}, not text")
    decision = Decision(
        _member(Status, status, order_id, "status"),
        None if reason is None else _member(Reason, reason, order_id, "reason"),
        _applied(applied, order_id),
        _rejected_for(rejected_for, order_id),
    )
    return OrderRecord(
        order_id=order_id,
        received_at=received_at,
        order=Order(strategy, instrument, _member(Side, side, order_id, "side")),
        decision=decision,
        scope=_member(Scope, scope, order_id, "scope"),
        profile_fingerprint=fingerprint,
        client_order_id=client_order_id,
        controls_fingerprint=controls_fingerprint,
        chain_hash=chain_hash,
        origin=Origin.STRATEGY if origin is None else _member(Origin, origin, order_id, "origin"),
        actor=actor,
        risk_fingerprint=risk_fingerprint,
        signal_time=signal_time,
        door=None if door is None else _member(Door, door, order_id, "door"),
    )


def decode_logged(row: Sequence[Any]) -> OrderRecord | TamperedRow:
    """One row of a log reader: its record, or what is wrong with it (the reader goes on streaming)."""
    try:
        return decode_record(*row)
    except StoredRowError as exc:
        return exc.row


def decode_page(rows: Sequence[Sequence[Any]], limit: int, bound: int | None = None) -> Page[OrderRecord]:
    """A page of orders from rows fetched with ``LIMIT limit + 1``, leaving out rows that do not decode."""
    return logged_page([decode_logged(row) for row in rows], limit, bound)


def logged_page(items: list[OrderRecord | TamperedRow], limit: int, bound: int | None = None) -> Page[OrderRecord]:
    """A page of decoded rows (see :func:`~ordergate.store.paging.page_of` for ``bound``), leaving out the
    rows that do not decode.

    The cursor comes from the rows as stored, so a left-out row never ends the paging early. Each
    one is logged as an error: a listing cannot show an altered row, and must not fail for it.
    """
    page = page_of(items, limit, _stored_id, bound)
    records: list[OrderRecord] = []
    for item in page.items:
        if isinstance(item, TamperedRow):
            log.error("left out of a listing, its stored row was altered (ordergate verify): %s", item.describe())
        else:
            records.append(item)
    return Page(records, page.next)


def _stored_id(item: OrderRecord | TamperedRow) -> int:
    order_id = item.order_id
    return order_id if isinstance(order_id, int) else 0


def _applied(value: object, order_id: int) -> tuple[Effect, ...]:
    items = _json_list(value, order_id, "applied")
    actions = _ACTIONS
    effects: list[Effect] = []
    for n, item in enumerate(items):
        if type(item) is not list or len(item) != 3 or type(item[0]) is not str or type(item[2]) is not str:
            raise _altered(order_id, "applied", f"item {n} is {_shown(item)}, not [user, action, position_strategy]")
        user, action, position_strategy = item
        member = actions.get(action) if type(action) is str else None
        if member is None:
            raise _not_one_of(Action, action, order_id, "applied")
        effects.append(Effect(user, member, position_strategy))
    return tuple(effects)


def _rejected_for(value: object, order_id: int) -> tuple[Refusal, ...]:
    items = _json_list(value, order_id, "rejected_for")
    reasons = _REASONS
    refusals: list[Refusal] = []
    for n, item in enumerate(items):
        if type(item) is not list or len(item) != 2 or type(item[0]) is not str:
            raise _altered(order_id, "rejected_for", f"item {n} is {_shown(item)}, not [user, reason]")
        user, reason = item
        member = reasons.get(reason) if type(reason) is str else None
        if member is None:
            raise _not_one_of(Reason, reason, order_id, "rejected_for")
        refusals.append(Refusal(user, member))
    return tuple(refusals)


def _json_list(value: object, order_id: int, column: str) -> list[Any]:
    if not isinstance(value, str | bytes):
        raise _altered(order_id, column, f"holds {_shown(value)}, not JSON text")
    try:
        items = orjson.loads(value)
    except orjson.JSONDecodeError:
        raise _altered(order_id, column, f"holds {_shown(value)}, not valid JSON") from None
    if type(items) is not list:
        raise _altered(order_id, column, f"holds {_shown(value)}, not a JSON array")
    return items


def _member(enum: type[E], value: object, order_id: int, column: str) -> E:
    if type(value) is str:
        try:
            return enum(value)
        except ValueError:
            pass
    raise _not_one_of(enum, value, order_id, column)


def _not_one_of(enum: type[StrEnum], value: object, order_id: int, column: str) -> StoredRowError:
    allowed = ", ".join(member.value for member in enum)
    return _altered(order_id, column, f"holds {_shown(value)}, not one of {allowed}")


def _altered(order_id: object, column: str, problem: str) -> StoredRowError:
    return StoredRowError(TamperedRow(order_id, column, problem))


def _shown(value: object) -> str:
    text = repr(value)
    return text if len(text) <= _SHOWN else text[: _SHOWN - 3] + "..."


def stream_rows(rows: Iterable[tuple[int, Sequence[Any]]]) -> list[tuple[StreamPosition, OrderRecord]]:
    """``(commit, order row)`` pairs as stream rows, leaving out (and logging) rows that do not decode.

    An altered row cannot be sent; the stream's positions come from the rows as stored, so leaving
    one out never stops the stream or makes it send anything twice.
    """
    stream: list[tuple[StreamPosition, OrderRecord]] = []
    for commit, row in rows:
        decoded = decode_logged(row)
        if isinstance(decoded, TamperedRow):
            log.error(
                "left out of the event stream, its stored row was altered (ordergate verify): %s", decoded.describe()
            )
        else:
            stream.append((StreamPosition(commit, decoded.order_id), decoded))
    return stream


def control_change_row(change: ControlChange) -> tuple[object, ...]:
    """A control change as its row is written, in the column order of :func:`ControlChange.from_row`."""
    setting = change.setting
    return (
        change.at,
        setting.level.value,
        setting.target,
        setting.state.value,
        change.by,
        change.fingerprint,
        change.reason,
        change.order_id,
    )


Caused = dict[int, tuple[ControlChange, str]]
"""The control changes orders caused in their own transactions (a breaker's trip, a flatten's ``then``),
by order id, each with the controls document it put in force."""


def caused_by_order(rows: Iterable[Sequence[Any]]) -> Caused:
    """:data:`Caused` from rows of the eight change columns (``order_id`` last) and the document."""
    return {int(row[7]): (ControlChange.from_row(*row[:8]), str(row[8])) for row in rows}


def with_caused(
    stream: list[tuple[StreamPosition, OrderRecord]], caused: Caused
) -> list[tuple[StreamPosition, OrderRecord]]:
    """Stream rows with the control change each order caused attached, as the order committed it."""
    if not caused:
        return stream
    return [
        (position, record._replace(control_change=caused[record.order_id]) if record.order_id in caused else record)
        for position, record in stream
    ]
