"""``verify``: replay the order log in order_id order and compare it with the stored book.

Five checks, stopping at the first difference so an operator knows where to look:

1. every stored row decodes: a row holding what no ordergate writes (a side ``HOLD``, an unknown
   reason or action, ``applied`` that is not its JSON array) was altered, and is named with its
   column (the log readers hand it over as a :class:`~ordergate.store.base.TamperedRow`);
2. the hash chain: each order's stored hash is the hash of its content and of the previous order's
   hash, so an order altered, inserted or removed after the fact is named. "The previous order" is
   the previous one in order_id order of the same chain, by the store's chain policy
   (:mod:`ordergate.domain.chain`): the whole log is one chain on SQLite; on PostgreSQL each
   instrument is its own chain. The report's anchor is one digest over every chain head;
3. the profiles, the trading controls and the risk policy each order names by fingerprint are in the
   store, readable, and match their fingerprint (every version stores them before deciding under them:
   a missing one is a difference, never a reason to skip the order), and ``decide()`` run again under
   them (an order of origin ``flatten`` or ``square_off`` is checked instead to close exactly positions
   its strategy opened: :func:`~ordergate.domain.flatten.flatten_decision`), at the order's
   ``received_at`` and against the risk state folded from the log replayed so far
   (:func:`~ordergate.domain.risk.fold`: the counts per day, last closes, the rolling minute, the
   rejection windows, exactly as the gateway folded them), gives
   the stored decision: the same status and reason, the same effects and refusals (compared in any
   order, which carries no meaning: orders stored before subscribers were sorted by user list them
   in the profile file's order; the hash chain still covers the order as stored);
4. every order's effects are possible on the book replayed so far (no double open, no close of
   nothing), and order ids strictly increase;
5. the replayed book equals the stored open positions.

``until`` checks the log up to and including one order and gives the anchor there, so an anchor
written down earlier can be checked later, after more orders came; the stored positions describe
the whole log, so check 5 is left out then.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Protocol, TypeVar

import orjson

from ordergate.domain.book import Book, Position
from ordergate.domain.chain import Chains
from ordergate.domain.controls import BREAKER, NO_CONTROLS, ControlChange, Controls
from ordergate.domain.flatten import flatten_decision
from ordergate.domain.model import Decision, Origin
from ordergate.domain.record import OrderRecord
from ordergate.domain.registry import ProfileError, Registry
from ordergate.domain.risk import Folded, RiskContext, RiskError, RiskPolicy, RiskState, epoch_of, tripped
from ordergate.domain.rules import decide
from ordergate.store.base import LogReader, TamperedRow


@dataclass(frozen=True, slots=True)
class VerifyReport:
    orders: int
    open_positions: int
    """The open positions of the book replayed (with ``until``: as they were after that order)."""
    redecided: int
    """How many orders were decided again against their own profiles and matched."""
    problem: str | None
    """The first difference found, or ``None`` when the log and the book agree."""
    anchor: str | None = None
    """The anchor of the log checked: one digest over the head of every hash chain (with one chain,
    its head itself); ``None`` for an empty log.

    Writing it down somewhere else (a ticket, another machine), with :attr:`last_order_id`, lets a
    later ``verify --until`` that order prove that the log up to there was not rewritten."""
    last_order_id: int | None = None
    """The last order checked (``None`` for an empty log)."""
    until: int | None = None
    """The order the check stopped at, when it was asked to (the stored positions were not compared)."""

    @property
    def ok(self) -> bool:
        return self.problem is None


def verify_log(reader: LogReader, *, until: int | None = None) -> VerifyReport:
    book: Book | None = None
    registries: dict[str, Registry | str] = {}
    controls: dict[str, Controls | str] = {}
    policies: dict[str, RiskPolicy | str] = {}
    risk_state = RiskState()
    caused = reader.caused_changes()
    chains = Chains(reader.chain_key)
    count = redecided = 0
    last_id = 0

    def report(problem: str | None) -> VerifyReport:
        return VerifyReport(
            count,
            len(book) if book is not None else 0,
            redecided,
            problem,
            chains.anchor(),
            last_id or None,
            until,
        )

    for record in reader.iter_orders():
        if until is not None and isinstance(record.order_id, int) and record.order_id > until:
            break
        if isinstance(record, TamperedRow):
            altered = f"column {record.column} {record.problem}"
            return report(f"order {record.order_id}: the stored row was altered: {altered}")
        count += 1
        if record.order_id <= last_id:
            return report(f"order {record.order_id}: order ids go backwards (after {last_id})")
        last_id = record.order_id
        if record.chain_hash != chains.expected(record):
            key = reader.chain_key(record)
            chain, previous = (f" of {key}", f"{key} order") if key else ("", "order")
            return report(
                f"order {record.order_id}: the hash chain{chain} breaks here: the stored order does not match "
                f"its hash and the previous {previous}'s; it (or the {previous} before it) was altered, inserted "
                "or removed"
            )
        chains.advance(record, record.chain_hash)
        if book is None or book.scope is not record.scope:
            if book is not None and len(book):
                return report(
                    f"order {record.order_id}: scope changes to {record.scope} while {len(book)} positions are open"
                )
            book = Book(record.scope)
        registry = _registry(reader, registries, record.profile_fingerprint)
        if isinstance(registry, str):
            return report(f"order {record.order_id}: {registry}")
        in_force: Controls | None = None
        if record.controls_fingerprint is not None:
            found = _controls(reader, controls, record.controls_fingerprint)
            if isinstance(found, str):
                return report(f"order {record.order_id}: {found}")
            in_force = found
        risk: RiskContext | None = None
        if record.risk_fingerprint is not None:
            policy = _risk(reader, policies, record.risk_fingerprint)
            if isinstance(policy, str):
                return report(f"order {record.order_id}: {policy}")
            signal_at = epoch_of(record.signal_time) if record.signal_time is not None else None
            risk = RiskContext(policy, risk_state, epoch_of(record.received_at), signal_at, record.origin)
        if record.origin is Origin.STRATEGY:
            expected = decide(record.order, registry, book, in_force, risk)
            if _canonical(expected) != _canonical(record.decision):
                return report(
                    f"order {record.order_id}: stored decision {_show(record.decision)} "
                    f"but the rules give {_show(expected)}"
                )
        else:  # the gateway's own order (a flatten, the square-off): it closes exactly what it names
            wrong = flatten_decision(record.order, record.decision, book)
            if wrong is not None:
                return report(f"order {record.order_id}: a {record.origin.value} order, but {wrong}")
        redecided += 1
        try:
            book.apply(record.order, record.decision.applied, record.order_id, record.received_at)
        except ValueError as exc:
            return report(f"order {record.order_id}: its effects do not fit the replayed book: {exc}")
        decision = record.decision
        folded = risk_state.record(
            record.order,
            decision.status,
            decision.reason,
            decision.applied,
            epoch_of(record.received_at),
            record.origin,
        )
        stored_trip = caused.get(record.order_id)
        problem = _breaker_problem(record, risk, in_force, folded, stored_trip)
        if problem is not None:
            return report(f"order {record.order_id}: {problem}")

    if until is not None:
        if last_id != until:
            where = f"the last order up to it is {last_id}" if last_id else "no order comes before it"
            return report(f"order {until} is not in the log ({where}): it was removed, or never stored")
        return report(None)
    replayed = {_row(p) for p in book} if book is not None else set()
    stored = {_row(p) for p in reader.open_positions()}
    for row in sorted(stored - replayed):
        return report(f"position {_show_row(row)} is open in the store but not in the replayed log")
    for row in sorted(replayed - stored):
        return report(f"position {_show_row(row)} is open in the replayed log but missing from the store")
    return report(None)


class _Fingerprinted(Protocol):
    fingerprint: str


D = TypeVar("D", bound=_Fingerprinted)


def _registry(reader: LogReader, cache: dict[str, Registry | str], fingerprint: str) -> Registry | str:
    """The profiles a fingerprint names, or what keeps them from deciding the order again."""
    what = f"the profiles it was decided against (fingerprint {fingerprint})"
    return _document(cache, fingerprint, what, reader.profiles, Registry.from_document, (ProfileError, ValueError))


def _controls(reader: LogReader, cache: dict[str, Controls | str], fingerprint: str) -> Controls | str:
    """The trading controls a fingerprint names, or what keeps them from deciding the order again."""
    what = f"the trading controls it was decided under (fingerprint {fingerprint})"
    return _document(cache, fingerprint, what, reader.controls, Controls.from_document, (ValueError, TypeError))


def _breaker_problem(
    record: OrderRecord,
    risk: RiskContext | None,
    in_force: Controls | None,
    folded: Folded,
    stored: ControlChange | None,
) -> str | None:
    """What is wrong with the breaker trip the log holds for ``record`` (or its absence), or ``None``.

    ``folded`` is the order just folded into the replayed risk state; a trip, derived or stored, starts
    the strategy's counted rejections over, as the gateway did.
    """
    trip = tripped(record, risk, in_force or NO_CONTROLS, folded) if risk is not None else None
    if trip is None:
        if stored is not None and stored.reason == BREAKER:
            return "a breaker trip is stored for it, but its strategy's rejections do not reach the breaker"
        return None
    if stored is None:
        return f"it trips the breaker of {record.order.strategy}, but no halt by the breaker is stored for it"
    _, change = trip
    if (stored.setting, stored.by, stored.reason, stored.fingerprint) != (
        change.setting,
        change.by,
        change.reason,
        change.fingerprint,
    ):
        return f"the stored breaker trip {stored.setting} by {stored.by} does not match the derived {change.setting}"
    return None


def _risk(reader: LogReader, cache: dict[str, RiskPolicy | str], fingerprint: str) -> RiskPolicy | str:
    """The risk policy a fingerprint names, or what keeps it from deciding the order again."""
    what = f"the risk limits it was decided under (fingerprint {fingerprint})"
    return _document(
        cache, fingerprint, what, reader.risk, RiskPolicy.from_document, (RiskError, ValueError, TypeError)
    )


def _document(
    cache: dict[str, D | str],
    fingerprint: str,
    what: str,
    fetch: Callable[[str], str | None],
    build: Callable[[Any], D],
    refused: tuple[type[Exception], ...],
) -> D | str:
    """The stored document a fingerprint names, built, or why it cannot be used (once per fingerprint).

    ``refused`` are the errors ``build`` raises for a document of the wrong shape (a JSON error is a
    ``ValueError``); a document that builds to another fingerprint was altered.
    """
    if fingerprint not in cache:
        document = fetch(fingerprint)
        if document is None:
            cache[fingerprint] = f"{what} are missing from the store, so its decision cannot be derived again"
        else:
            try:
                found = build(orjson.loads(document))
            except refused as exc:
                cache[fingerprint] = f"{what} cannot be read from the store: {_unreadable(exc)}"
            else:
                cache[fingerprint] = (
                    found
                    if found.fingerprint == fingerprint
                    else f"{what} were altered in the store: the document there has fingerprint {found.fingerprint}"
                )
    return cache[fingerprint]


def _unreadable(exc: Exception) -> str:
    return f"not JSON ({exc})" if isinstance(exc, orjson.JSONDecodeError) else str(exc)


def _canonical(decision: Decision) -> tuple[object, ...]:
    """A decision with its per-user entries sorted: their order carries no meaning.

    ``decide()`` lists subscribers by user name; orders stored before it did follow the order of the
    profile file, and the document kept under a fingerprint may be ordered differently from the file
    an order was decided against (same content, same fingerprint).
    """
    return (decision.status, decision.reason, sorted(decision.applied), sorted(decision.rejected_for))


def _row(p: Position) -> tuple[str, str, str, int, str]:
    return (p.user, p.strategy, p.instrument, p.opened_order_id, p.opened_at)


def _show_row(row: tuple[str, str, str, int, str]) -> str:
    user, strategy, instrument, opened_order_id, _ = row
    return f"{user} / {instrument} (opened by {strategy}, order {opened_order_id})"


def _show(decision: Decision) -> str:
    users = ", ".join(f"{e.user} {e.action}" for e in decision.applied) or "nobody"
    return f"{decision.status}({decision.reason or users})"
