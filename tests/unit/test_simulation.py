"""The deterministic simulation of the sequencers (``tests/sim``), run for a few hundred seeds.

``make sim SEEDS=N`` runs more; a failing seed prints the command that replays it. The last tests
prove the simulator can fail: each puts back the code of a defect it must find (issue 9: a client
order id decided twice, a premature 409, one busy instrument failing unrelated orders) and expects a
broken invariant within a bounded number of seeds; the event stream ordered by order id with
each process's hub fed by its own commits (defect 2); (issue 10) a SQLite writer process that
died with a group in hand taken to mean that nothing of the group was stored; and (SPEC section 10)
a rolled-back group left counted in the risk state, a breaker that keeps its strategy's rejections
after it tripped, and a flatten whose orders are committed one by one.
"""

from __future__ import annotations

import os
from collections.abc import Awaitable, Callable, Sequence

import pytest

from ordergate.domain import risk
from ordergate.domain.controls import BREAKER
from ordergate.domain.model import Order, Origin
from ordergate.domain.record import OrderRecord
from ordergate.errors import ClientOrderIdConflict, StoreUnavailable
from ordergate.service import sequencer, shared_sequencer
from ordergate.service.committer import Result
from ordergate.service.events import EventHub
from ordergate.service.feeds import CommitFeed
from ordergate.service.idempotency import IdempotencyWindow
from ordergate.service.sequencing import Outcome, Ticket
from ordergate.service.shared_sequencer import SharedSequencer
from ordergate.store.base import StreamPage, StreamPosition
from ordergate.store.sqlite.writer import CommitPath, WriterLost, WriterRefused
from tests.sim import world
from tests.sim.fakes import FakeSharedStore
from tests.sim.world import VARIANTS, SimulationFailure, simulate

SEEDS = int(os.environ.get("SIM_SEEDS", "150"))
SEARCH = 400
"""Seeds a reverted fix may take to be found, at most (each was found within a few dozen)."""


@pytest.mark.heavy
@pytest.mark.parametrize("variant", VARIANTS)
def test_every_invariant_holds_for_every_seed(variant: str) -> None:
    answers = 0
    risk_reasons: set[str] = set()
    for seed in range(SEEDS):
        run = simulate(seed, variant)
        answers += run.answers
        risk_reasons |= {r for record in run.db.orders.values() if record.risk_fingerprint for r in _reasons(record)}
        risk_reasons |= {r for record in run.db.orders.values() for r in _features(record)}
    assert answers > SEEDS * 50  # the runs did real work
    if variant == "local" and SEEDS >= 100:  # the risk it draws reached every limit, the session, the breaker
        limits = {"POSITION_LIMIT", "DAILY_LIMIT", "COOLDOWN", "RATE_LIMIT", "STALE_SIGNAL", "MARKET_CLOSED"}
        features = {"breaker trip", "flatten", "flatten then"}
        assert limits | features <= risk_reasons, (limits | features) - risk_reasons


def _features(record: OrderRecord) -> set[str]:
    """What of the breaker and flatten an order shows: a trip, a flatten's order, a flatten's ``then``."""
    found = {"flatten"} if record.origin is Origin.FLATTEN else set()
    if record.control_change is not None:
        found.add("breaker trip" if record.control_change[0].reason == BREAKER else "flatten then")
    return found


def _reasons(record: OrderRecord) -> set[str]:
    found = {r.reason.value for r in record.decision.rejected_for}
    if record.decision.reason is not None:
        found.add(record.decision.reason.value)
    return found


@pytest.mark.parametrize("variant", VARIANTS)
def test_a_seed_replays_exactly(variant: str) -> None:
    first, second = simulate(9, variant), simulate(9, variant)  # a long run (local: a breaker in force)
    assert first.trace == second.trace
    assert len(first.trace) > 100


def first_failure(variant: str) -> SimulationFailure:
    for seed in range(SEARCH):
        try:
            simulate(seed, variant)
        except SimulationFailure as failure:
            return failure
    pytest.fail(f"no seed of {SEARCH} found the reverted defect ({variant})")


async def find_ending_the_lookup_first(
    self: IdempotencyWindow, client_order_id: str, lookup: Callable[[str], Awaitable[OrderRecord | None]]
) -> Ticket | OrderRecord | None:
    """Defect 1 as it was: the lookup counted as ended before the window was checked again."""
    began = self._begin()
    try:
        stored = await lookup(client_order_id)
    finally:
        self._end(began)
    return stored if stored is not None else self._held.get(client_order_id)


async def find_many_ending_the_lookup_first(
    self: IdempotencyWindow,
    client_order_ids: Sequence[str],
    lookup: Callable[[Sequence[str]], Awaitable[dict[str, OrderRecord]]],
) -> dict[str, Ticket | OrderRecord]:
    began = self._begin()
    try:
        found: dict[str, Ticket | OrderRecord] = dict(await lookup(client_order_ids))
    finally:
        self._end(began)
    for key in client_order_ids:
        held = self._held.get(key)
        if key not in found and held is not None:
            found[key] = held
    return found


def test_the_simulator_finds_an_id_decided_twice_when_the_lookup_ends_before_its_recheck(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(IdempotencyWindow, "find", find_ending_the_lookup_first)
    monkeypatch.setattr(IdempotencyWindow, "find_many", find_many_ending_the_lookup_first)
    failure = first_failure("local")
    assert "stored twice" in failure.problem or "decided twice" in failure.problem, failure


async def conflict_at_once(known: Ticket, order: Order) -> Outcome | None:
    """Defect 11 as it was: an id only pending made a 409 for another order."""
    if known.order == order:
        outcome = await known.future
        return Outcome(outcome.record, True)
    raise ClientOrderIdConflict(
        f"client_order_id {known.client_order_id!r} is already in use by an order being decided"
    )


@pytest.mark.parametrize("variant", VARIANTS)
def test_the_simulator_finds_a_409_made_by_an_uncommitted_order(monkeypatch: pytest.MonkeyPatch, variant: str) -> None:
    monkeypatch.setattr(sequencer, "outcome_after", conflict_at_once)
    monkeypatch.setattr(shared_sequencer, "outcome_after", conflict_at_once)
    failure = first_failure(variant)
    assert "409 for" in failure.problem, failure


async def commit_the_whole_group_or_nothing(self: SharedSequencer, group: list[Ticket]) -> Sequence[Result]:
    """Defect 9 as it was: one transaction waits for every lock of the group, and fails whole."""
    decided, _ = await self._decide_and_commit(group, patient=True)
    return decided if decided is not None else [None] * len(group)


def test_the_simulator_finds_a_busy_instrument_failing_the_orders_of_others(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(SharedSequencer, "commit", commit_the_whole_group_or_nothing)
    failure = first_failure("shared")
    assert "503 for an order on" in failure.problem, failure


class ProcessCommits(CommitFeed):
    """Defect 2 as it was: each process's hub fed by its own commits, positioned by order id."""

    def __init__(self, store: object, hub: EventHub, listeners: Sequence[object], *, interval: float = 0.0) -> None:
        super().__init__(store, hub, listeners)  # type: ignore[arg-type]


async def stream_by_order_id(self: FakeSharedStore, after: StreamPosition, limit: int) -> StreamPage:
    rows = sorted(
        (StreamPosition(0, order_id), r) for order_id, r in self.db.orders.items() if order_id > after.order_id
    )
    rows = rows[:limit]
    return StreamPage(rows, rows[-1][0] if rows else after, more=len(rows) == limit)


async def head_by_order_id(self: FakeSharedStore) -> StreamPosition:
    return StreamPosition(0, self.db.last_order_id)


def test_the_simulator_finds_a_stream_resumed_on_another_process_missing_or_repeating_orders(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(world, "LogTail", ProcessCommits)
    monkeypatch.setattr(FakeSharedStore, "stream_page", stream_by_order_id)
    monkeypatch.setattr(FakeSharedStore, "stream_head", head_by_order_id)
    failure = first_failure("shared")
    assert "watcher" in failure.problem, failure


async def commit_answering_a_lost_writer_503(
    self: CommitPath, statements: object, first_order_id: int, last_order_id: int
) -> None:
    """The naive out-of-process writer: a writer that died with a group in hand means "not stored"."""
    try:
        await self.request("tx", statements)
    except (WriterLost, WriterRefused) as exc:
        raise StoreUnavailable(f"the writer failed: {exc}") from None


def test_the_simulator_finds_a_group_answered_503_that_its_dying_writer_had_stored(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(CommitPath, "commit", commit_answering_a_lost_writer_503)
    failure = first_failure("local")
    assert "stored twice" in failure.problem or "differs from the store" in failure.problem, failure


def discard_leaving_the_risk_state(self: sequencer.LocalSequencer, victims: Sequence[Ticket]) -> None:
    """A rollback that undoes the book but leaves the failed orders counted by the limits."""
    for ticket in reversed(victims):
        self._book.undo(ticket.undo)
    assert victims[0].record is not None
    self._next_id = victims[0].record.order_id


def test_the_simulator_finds_a_rolled_back_group_still_counted_by_the_limits(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(sequencer.LocalSequencer, "discard", discard_leaving_the_risk_state)
    failure = first_failure("local")
    problem = failure.problem
    assert "the model says" in problem or "verify" in problem or "breaker by the model" in problem, failure


def keep_the_rejections(self: risk.RiskState, folded: risk.Folded, strategy: str) -> None:
    """A trip that leaves the strategy's counted rejections in place (the next one trips again at once)."""


def test_the_simulator_finds_a_breaker_that_keeps_counting_after_it_tripped(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(risk.RiskState, "trip", keep_the_rejections)
    failure = first_failure("local")
    assert "breaker" in failure.problem or "verify" in failure.problem, failure


async def commit_a_flatten_order_by_order(self: sequencer.LocalSequencer, group: list[Ticket]) -> Sequence[Result]:
    """A flatten's orders each in a transaction of their own: a failure leaves some of them stored."""
    plain = [ticket.record for ticket in group if not ticket.also and ticket.record is not None]
    if plain:
        await self._store.commit(plain)
    for ticket in group:
        if ticket.also and ticket.record is not None:
            for record in (ticket.record, *ticket.also):
                await self._store.commit([record])
    return [Outcome(ticket.record, False, ticket.also) for ticket in group if ticket.record is not None]


def test_the_simulator_finds_a_flatten_committed_order_by_order(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(sequencer.LocalSequencer, "commit", commit_a_flatten_order_by_order)
    failure = first_failure("local")
    assert "stored" in failure.problem or "flatten" in failure.problem, failure
