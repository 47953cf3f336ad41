"""A deterministic simulation of the sequencers, checked against an independent model after every step.

Anchors: FoundationDB's simulation testing and TigerBeetle's VOPR. One seed draws everything: the
variant's shape (scope, processes, fault rates), the clients' orders, their retries (same id and
same order, same id and another order, batches), clients that give up waiting, stalled and refused
store calls, commits in doubt, locks another process keeps for seconds, crashes followed by recovery
from what the fake store holds, profile reloads and control changes. The real sequencers run
unchanged on a virtual-time event loop (:mod:`tests.sim.vloop`) over the fakes of
:mod:`tests.sim.fakes`.

Both variants also run pre-trade risk (SPEC section 10): the sequencers stamp orders with a
virtual wall clock (a seeded date, moving with the loop's time and jumping ahead by seconds to hours
so that rolling minutes, cooldowns and trading days roll over), some orders carry a ``signal_time``,
and an operator changes the limits (every level and kind, the circuit breaker included) and the
trading session as :class:`~ordergate.service.operations.Operations` does: the change is recorded in
the store, then ``use_risk``; a restarted process restores the controls and the policy the store holds
before it serves. The model counts only committed orders, so a rolled-back group the risk state did
not forget is found. It also derives every breaker trip from the log (a strategy's counted rejections
since its last trip, within the window) and checks that exactly those orders carry the halt; an admin
flattens a scope now and then (with a ``then``, as ``Operations.flatten``), and lifts halts: a flatten's
orders are the model's for the book before them, back to back, all stored or none (none when answered
503), the last one carrying ``then``; a trip answered while no control change began since its request
finds its strategy halted in the sequencer (the local one) and in the store, and the local sequencer
ends with the controls the store holds. Processes square off a day now and then, two of the shared
variant at once: the marks' days increase, each mark names exactly one back-to-back run of square-off
orders that the model's flatten of everything gives, and on the shared store every run has its mark
(written in its transaction). The shared store's control changes merge into the controls in force
under the controls lock, and its flattens hold every process still, as the PostgreSQL store's do.

Invariants (the list is in CONTRIBUTING):

1. every answered decision is stored, once, exactly as answered;
2. a client order id is decided at most once: every answer for an id names the same order, and at
   most one of them is a fresh decision;
3. a 409 only once the id's order is committed (for another order); no error but
   :class:`~ordergate.errors.StoreUnavailable` and :class:`~ordergate.errors.ClientOrderIdConflict`;
   a 503 of a lock wait only for an order of the instrument waited for (or of an id's instrument);
4. the store never refuses a group for breaking a constraint (the service must not send one);
5. every stored decision is what the independent model gives when the log is replayed in order_id
   order, under the profiles, controls and risk policy the order names, at its ``received_at``
   (so order_id order is a serial order); ``verify`` passes on the stored log;
6. the stored positions equal that replay; each embedded process's in-memory book equals the store
   once it is idle;
7. every request is answered, and the run ends (no deadlock);
8. every event-stream client, following one process then another and resuming from its last token
   (after slow-client drops and crashes too), gets every committed order exactly once, in stream
   order, as stored.

A failure raises :class:`SimulationFailure` naming the seed and the command that replays it.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import random
import re
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from typing import Any

import orjson

from ordergate.domain.book import Book, Position
from ordergate.domain.chain import Chains, single_chain
from ordergate.domain.controls import (
    BREAKER,
    FLATTEN,
    NO_CONTROLS,
    RISK_ACTOR,
    ControlLevel,
    Controls,
    ControlSetting,
    ControlState,
)
from ordergate.domain.model import Order, Origin, Scope, Side
from ordergate.domain.record import DIRECT, Entry, OrderRecord, Trade
from ordergate.domain.registry import Registry
from ordergate.domain.risk import LEVELS_OF, SQUARE_OFF, RiskChange, RiskLevel, RiskPolicy, TradingSession
from ordergate.errors import ClientOrderIdConflict, OrdergateError, StoreUnavailable
from ordergate.service.events import EventHub
from ordergate.service.feeds import CommitFeed, LogTail
from ordergate.service.sequencer import LocalSequencer
from ordergate.service.sequencing import Outcome, Sequencing
from ordergate.service.shared_sequencer import SharedSequencer
from ordergate.service.stream import Orders, Resync, follow
from ordergate.service.verify import verify_log
from ordergate.store.base import START, ControlChange, StreamPosition
from tests.sim import model
from tests.sim.fakes import Database, FakeEmbeddedStore, FakeSharedStore, Faults
from tests.sim.vloop import Deadlock, run

VARIANTS = ("local", "shared")
STRATEGIES = ("S1", "S2", "S3")
INSTRUMENTS = ("ACC", "INFY", "TCS", "WIPRO")
USERS = ("Ann", "Bob", "Cem", "Dee")
LOCK_WAIT = re.compile(r"lock timeout waiting for (instrument|client_order_id) (\S+)")
"""A 503 of a lock wait names what it waited for: it may only answer an order of that instrument or id."""
QUIESCE_SECONDS = 900.0
"""Virtual seconds the run may take to answer everything once the faults stop."""
ZONES = ("Asia/Kolkata", "UTC", "America/New_York", "Europe/London")
FIRST_DAY = datetime(2026, 1, 1, tzinfo=UTC)
"""The virtual wall clock starts on a day drawn from the year after this one (weekends and the
changes of summer time included)."""


class SimulationFailure(AssertionError):
    def __init__(self, seed: int, variant: str, problem: str, trace: list[str]) -> None:
        tail = "\n".join(trace[-25:])
        super().__init__(
            f"simulation seed {seed} ({variant}) broke an invariant: {problem}\n"
            f"replay it: make sim VARIANT={variant} SEED={seed}\nlast steps:\n{tail}"
        )
        self.seed, self.variant, self.problem = seed, variant, problem


def registries(rng: random.Random) -> list[Registry]:
    """A few profile sets over the same names: reloads move users in and out of strategies."""
    found: list[Registry] = []
    for _ in range(3):
        document: dict[str, dict[str, list[str]]] = {}
        for user in USERS:
            strategies = rng.sample(STRATEGIES, rng.randint(0, 2))
            if strategies:
                document[user] = {s: rng.sample(INSTRUMENTS, rng.randint(1, 3)) for s in strategies}
        found.append(Registry.from_document(document))
    return found


@dataclass
class Process:
    """One gateway process: a sequencer, its event hub and feed, and the requests it is serving
    (cancelled by a crash)."""

    number: int
    sequencer: Sequencing
    store: Any
    hub: EventHub
    feed: CommitFeed | LogTail
    requests: dict[asyncio.Task[Any], None] = field(default_factory=dict)
    """In creation order (a set's order would differ from run to run, and so would the replay)."""
    alive: bool = True


@dataclass
class Watcher:
    """An event-stream client: what it was sent, in order, and the token it resumes from."""

    number: int
    token: StreamPosition = START
    delivered: list[tuple[StreamPosition, int]] = field(default_factory=list)
    order_ids: set[int] = field(default_factory=set)


@dataclass
class FlattenAttempt:
    """An admin's flatten (sent as ``Operations.flatten`` does), named by the actor it is sent as."""

    level: ControlLevel
    target: str | None
    then: ControlState | None
    outcome: str = "pending"
    """``pending`` (its process crashed first: it may or may not be stored), ``stored`` or ``unavailable``."""
    records: list[OrderRecord] = field(default_factory=list)
    first: int | None = None
    """The first of its orders in the log (set by the replay)."""
    square_off: bool = False
    """A square-off found in the log (its orders collected in ``records`` by the replay)."""


def flattening_origin(attempt: FlattenAttempt | None) -> Origin:
    return Origin.SQUARE_OFF if attempt is not None and attempt.square_off else Origin.FLATTEN


@dataclass
class IdHistory:
    """What the clients sent under one client order id and what they were answered."""

    orders: list[Order] = field(default_factory=list)
    order_id: int | None = None
    fresh: int = 0


class World:
    def __init__(self, seed: int, variant: str) -> None:
        self.seed, self.variant = seed, variant
        rng = self.rng = random.Random(f"{variant}:{seed}")
        self.scope = rng.choice((Scope.ACCOUNT, Scope.STRATEGY))
        self.db = Database(self.scope)
        self.faults = Faults(rng, fail_rate=rng.choice((0.0, 0.02, 0.1)), stall_rate=rng.choice((0.0, 0.01, 0.05)))
        if variant == "shared":
            self.faults.doubt_rate = rng.choice((0.0, 0.02, 0.05))
        else:
            self.faults.writer_death_rate = rng.choice((0.0, 0.02, 0.1))
        self.registries = registries(rng)
        self.registry = self.registries[0]
        self.controls: Controls = NO_CONTROLS
        self.processes: list[Process] = []
        self.ids: dict[str, IdHistory] = {}
        self.trace: list[str] = []
        self.next_id = 0
        self.answers = 0
        self.clients = rng.randint(2, 8)
        self.steps = rng.randint(20, 60)
        self.foreign: list[asyncio.Task[None]] = []
        self.failure: SimulationFailure | None = None
        self.watchers = [Watcher(n) for n in range(rng.randint(1, 3))]
        self.buffer = rng.choice((3, 50, 10_000))
        self.sending = True
        self.wall_start = 0
        """The virtual wall clock at loop time 0, in microseconds since the epoch."""
        self.jumped = 0
        """How far the virtual wall clock was moved ahead of the loop's time, in microseconds."""
        self.risk_changes = 0
        self.signal_rate = 0.0
        self.flattens: dict[str, FlattenAttempt] = {}
        self.square_offs: list[tuple[date, list[int]]] = []
        self.square_off_runs: list[FlattenAttempt] = []
        """The square-offs the replay of the log found (:meth:`check_log`)."""
        """The square-offs answered with their orders: (day, order ids)."""
        self.control_generation = 0
        """How many control changes (an admin's, a flatten's ``then``) were begun: an answer whose request
        saw no new one must find its breaker's halt still in force."""
        self.trips = 0
        self.history = model.History()
        """What the replay of the log has gone through (:meth:`check_log`)."""
        self.operations = asyncio.Lock()
        """One operation at a time, as ``Operations`` holds its lock over a control change or a flatten."""
        start = FIRST_DAY + timedelta(seconds=rng.randrange(365 * 86_400))
        self.wall_start = int(start.timestamp()) * 1_000_000
        self.signal_rate = rng.choice((0.0, 0.3, 0.8))

    # -- the run ----------------------------------------------------------------------------------

    def fail(self, problem: str) -> SimulationFailure:
        """The failure to raise; the first one is also kept, for a request nobody waits for any more."""
        failure = SimulationFailure(self.seed, self.variant, problem, self.trace)
        if self.failure is None:
            self.failure = failure
        return failure

    def note(self, line: str) -> None:
        now = asyncio.get_running_loop().time()
        self.trace.append(f"{now:10.4f} {line}")

    async def run(self) -> None:
        for profiles in self.registries:
            self.db.profiles[profiles.fingerprint] = orjson.dumps(profiles.to_document()).decode()
        for number in range(1 if self.variant == "local" else self.rng.randint(2, 3)):
            self.processes.append(self.start_process(number))
        loop = asyncio.get_running_loop()
        chaos = loop.create_task(self.chaos(), name="chaos")
        watching = [loop.create_task(self.watch(w), name=f"watcher-{w.number}") for w in self.watchers]
        await asyncio.gather(*(self.client(n) for n in range(self.clients)))
        self.sending = False
        chaos.cancel()
        await asyncio.gather(chaos, *self.foreign, return_exceptions=True)
        self.faults.fail_rate = self.faults.doubt_rate = self.faults.stall_rate = self.faults.writer_death_rate = 0.0
        self.faults.outage = False
        for process in self.processes:
            if not process.alive:
                await self.restart(process)
        try:
            async with asyncio.timeout(QUIESCE_SECONDS):
                for process in self.processes:
                    while process.requests:
                        await asyncio.gather(*process.requests, return_exceptions=True)
                await asyncio.gather(*watching)
                for watcher in self.watchers:  # a last look, on any process: the rest of the log
                    await self.follow_for(self.rng.choice(self.processes), watcher, 5.0)
                for process in self.processes:
                    await process.sequencer.stop()
                    await process.feed.stop()
        except TimeoutError:
            raise self.fail("requests were still unanswered long after the faults stopped") from None
        if self.failure is not None:
            raise self.failure
        self.check_log()
        self.check_verify()
        self.check_streams()
        if self.variant == "local":
            book = {(p.user, p.strategy, p.instrument, p.opened_order_id) for p in self.processes[0].sequencer.book}  # type: ignore[attr-defined]
            stored = {(p.user, p.strategy, p.instrument, p.opened_order_id) for p in self.db.positions.values()}
            if book != stored:
                raise self.fail(f"the in-memory book differs from the store: {sorted(book ^ stored)}")
            self.check_controls(self.processes[0])

    def start_process(self, number: int) -> Process:
        snapshot = self.db.snapshot()
        sequencer: Sequencing
        feed: CommitFeed | LogTail
        if self.variant == "local":
            store: FakeEmbeddedStore | FakeSharedStore = FakeEmbeddedStore(self.db, self.faults, self.note)
            book = Book.restore(self.scope, snapshot.opened)
            sequencer = LocalSequencer(store, self.registry, book, snapshot.last_order_id, clock=self.clock)  # type: ignore[arg-type]
            hub = EventHub(StreamPosition(0, self.db.last_order_id), self.buffer)
            feed = CommitFeed(store, hub, ())  # type: ignore[arg-type]
        else:
            store = FakeSharedStore(self.db, self.faults)
            sequencer = SharedSequencer(store, self.registry, self.scope, snapshot.opened, clock=self.clock)  # type: ignore[arg-type]
            hub = EventHub(StreamPosition(self.db.watermark, 0), self.buffer)
            feed = LogTail(store, hub, (), interval=self.rng.choice((0.05, 0.2, 1.0)))  # type: ignore[arg-type]
        stored = self.db.controls  # as Operations.start: the controls the store holds (a breaker's halt too)
        sequencer.use_controls(Controls.from_document(orjson.loads(stored)) if stored else NO_CONTROLS)
        sequencer.on_commit(feed)
        sequencer.start()
        feed.start()
        self.note(f"process {number} started (last order {snapshot.last_order_id})")
        return Process(number, sequencer, store, hub, feed)

    def crash(self, process: Process) -> None:
        """``kill -9``: everything the process was doing stops; the store keeps what it committed."""
        self.note(f"process {process.number} crashes")
        process.alive = False
        core = process.sequencer._core  # type: ignore[attr-defined]
        tail = getattr(process.feed, "_task", None)
        for task in [core._task, *core._background, tail, *process.requests]:
            if task is not None:
                task.cancel()
        process.hub.close()

    async def restart(self, process: Process) -> None:
        fresh = self.start_process(process.number)
        process.sequencer, process.store, process.hub, process.feed = (
            fresh.sequencer,
            fresh.store,
            fresh.hub,
            fresh.feed,
        )
        process.requests = {}
        await self.restore_risk(process)  # as Operations.start, before the gateway serves
        process.alive = True

    async def restore_risk(self, process: Process) -> None:
        """Put the risk policy the store holds in force (the state rebuilt from the log), retrying while
        the store is down: a gateway that cannot read its log does not start."""
        while True:
            try:
                stored = await process.store.current_risk()
                if stored is None:
                    return
                policy = RiskPolicy.from_document(orjson.loads(stored))
                if policy.restricts_anything:
                    await process.sequencer.use_risk(policy)
                self.note(f"process {process.number} restored risk {policy.fingerprint}")
                return
            except StoreUnavailable as exc:
                self.note(f"process {process.number} cannot restore its risk yet: {exc}")
                await asyncio.sleep(0.1)

    # -- the virtual wall clock -------------------------------------------------------------------

    def clock(self) -> str:
        """The local variant's wall clock, as the log stamps ``received_at``: the loop's time from a seeded
        date, plus the jumps; it never goes back."""
        micros = self.wall_start + round(asyncio.get_running_loop().time() * 1_000_000) + self.jumped
        return _stamp(micros)

    def jump_clock(self) -> None:
        rng = self.rng
        seconds = rng.choice(
            (
                rng.uniform(0.5, 59.0),
                rng.uniform(60.0, 900.0),
                rng.uniform(900.0, 8 * 3600.0),
                rng.uniform(8, 30) * 3600,
            )
        )
        self.jumped += round(seconds * 1_000_000)
        self.note(f"the wall clock jumps {seconds:.1f} s to {self.clock()}")

    # -- clients ----------------------------------------------------------------------------------

    def new_id(self) -> str:
        self.next_id += 1
        return f"c{self.next_id}"

    def draw_order(self) -> Order:
        rng = self.rng
        return Order(rng.choice(STRATEGIES), rng.choice(INSTRUMENTS), rng.choice((Side.BUY, Side.SELL)))

    def draw_item(self) -> tuple[Order, str | None]:
        rng = self.rng
        used = list(self.ids)
        roll = rng.random()
        if used and roll < 0.25:
            key = rng.choice(used)
            return rng.choice(self.ids[key].orders), key  # a retry: the same id, an order sent under it
        if used and roll < 0.35:
            return self.draw_order(), rng.choice(used)  # the same id for another order
        if roll < 0.5:
            return self.draw_order(), None
        return self.draw_order(), self.new_id()

    async def client(self, number: int) -> None:
        rng = self.rng
        for _ in range(self.steps):
            await asyncio.sleep(rng.expovariate(200.0))
            alive = [p for p in self.processes if p.alive]
            if not alive:
                continue
            process = rng.choice(alive)
            items = [self.draw_item() for _ in range(rng.randint(2, 5))] if rng.random() < 0.15 else [self.draw_item()]
            for order, key in items:
                if key is not None:
                    self.ids.setdefault(key, IdHistory()).orders.append(order)
            entries = [self.draw_entry() for _ in items]
            patience = rng.choice((None, None, None, rng.uniform(0.001, 0.5)))
            request = asyncio.get_running_loop().create_task(self.send(process, items, entries))
            process.requests[request] = None
            request.add_done_callback(lambda done, p=process: p.requests.pop(done, None))
            await asyncio.wait([request], timeout=patience)
            if not request.done():
                self.note(f"client {number} gave up waiting")
            elif request.cancelled():
                self.note(f"client {number} lost its connection (its process crashed)")
            elif request.exception() is not None:
                raise request.exception()  # type: ignore[misc]  # a broken invariant

    def draw_entry(self) -> Entry:
        """Some orders say when their signal fired: mostly a little while ago, now and then too far
        back or ahead (the wall clock may also jump while the order waits to be decided)."""
        rng = self.rng
        if rng.random() >= self.signal_rate:
            return DIRECT
        now = datetime.fromisoformat(self.clock())
        fired = now - timedelta(seconds=rng.choice((rng.uniform(-9.0, 3.0), rng.uniform(0.0, 90.0))))
        return Entry(signal_time=fired.strftime("%Y-%m-%dT%H:%M:%S.") + f"{fired.microsecond // 1000:03d}Z")

    async def send(
        self, process: Process, items: list[tuple[Order, str | None]], entries: list[Entry] | None = None
    ) -> None:
        sequencer = process.sequencer
        generation = self.control_generation
        self.note(f"p{process.number} <- {[(o.strategy, o.instrument, o.side.value, k) for o, k in items]}")
        results: list[Outcome | OrdergateError | BaseException]
        if len(items) == 1:
            try:
                if entries is None:
                    results = [await sequencer.submit(*items[0])]
                else:
                    results = [await sequencer.submit(*items[0], entries[0])]
            except asyncio.CancelledError:
                raise
            except BaseException as exc:
                results = [exc]
        else:
            try:
                results = list(await sequencer.submit_many(items, entries))
            except asyncio.CancelledError:
                raise
            except BaseException as exc:
                results = [exc] * len(items)
        for (order, key), result in zip(items, results, strict=True):
            self.check_answer(process, order, key, result)
            if isinstance(result, Outcome) and not result.replayed:
                self.check_trip(process, result.record, generation)

    # -- event-stream clients ---------------------------------------------------------------------

    async def watch(self, watcher: Watcher) -> None:
        """Follow the stream on one process, then another, resuming each time from the last token."""
        rng = self.rng
        while self.sending:
            alive = [p for p in self.processes if p.alive]
            if not alive:
                await asyncio.sleep(0.05)
                continue
            await self.follow_for(rng.choice(alive), watcher, rng.uniform(0.01, 1.5))
            await asyncio.sleep(rng.uniform(0.0, 0.2))

    async def follow_for(self, process: Process, watcher: Watcher, seconds: float) -> None:
        session = asyncio.get_running_loop().create_task(self._follow(process, watcher, seconds))
        process.requests[session] = None  # a crash of the process ends it
        session.add_done_callback(lambda done, p=process: p.requests.pop(done, None))
        await asyncio.wait([session])
        if not session.cancelled() and session.exception() is not None:
            raise session.exception()  # type: ignore[misc]  # a broken invariant

    async def _follow(self, process: Process, watcher: Watcher, seconds: float) -> None:
        self.note(f"watcher {watcher.number} follows p{process.number} after {watcher.token.token()}")
        try:
            async with asyncio.timeout(seconds):
                async for item in follow(process.store, process.hub, watcher.token, heartbeat=0.5):
                    if isinstance(item, Orders):
                        for position, record in item.rows:
                            self.check_event(watcher, position, record)
                    elif isinstance(item, Resync):
                        if item.reason == "ahead_of_log":
                            raise self.fail(
                                f"watcher {watcher.number}'s token {watcher.token} was taken for another log's"
                            )
                        self.note(f"watcher {watcher.number} must resync ({item.reason})")
                        return
        except TimeoutError:
            return
        except StoreUnavailable:
            return  # the store is down: the client reconnects later

    def check_event(self, watcher: Watcher, position: StreamPosition, record: OrderRecord) -> None:
        if position <= watcher.token:
            raise self.fail(f"watcher {watcher.number} got {position} after {watcher.token}: a repeat or out of order")
        if record.order_id in watcher.order_ids:
            raise self.fail(f"watcher {watcher.number} got order {record.order_id} twice")
        stored = self.db.orders.get(record.order_id)
        if stored is None or _content(stored) != _content(record):
            raise self.fail(f"watcher {watcher.number} got order {record.order_id}, which the store does not hold so")
        watcher.token = position
        watcher.delivered.append((position, record.order_id))
        watcher.order_ids.add(record.order_id)

    def check_streams(self) -> None:
        """Every committed order reached every event-stream client exactly once (the last look included)."""
        stored = set(self.db.orders)
        for watcher in self.watchers:
            missing = sorted(stored - watcher.order_ids)
            if missing:
                raise self.fail(f"watcher {watcher.number} never got orders {missing[:10]}")

    # -- chaos ------------------------------------------------------------------------------------

    async def chaos(self) -> None:
        rng, loop = self.rng, asyncio.get_running_loop()
        while True:
            await asyncio.sleep(rng.expovariate(20.0))
            roll = rng.random()
            if roll < 0.05 and any(p.alive for p in self.processes):
                process = rng.choice([p for p in self.processes if p.alive])
                self.crash(process)
                await asyncio.sleep(rng.uniform(0.0, 0.5))
                await self.restart(process)
            elif roll < 0.07:
                self.faults.outage = True
                self.note("the store is down")
                await asyncio.sleep(rng.uniform(0.01, 0.5))
                self.faults.outage = False
                self.note("the store is back")
            elif roll < 0.20:
                await self.reload_profiles()
            elif roll < 0.30:
                await self.change_controls()
            elif roll < 0.40 and self.variant == "shared":
                instrument = rng.choice(INSTRUMENTS)
                seconds = rng.choice((0.05, 1.0, 7.0))
                self.note(f"another process keeps {instrument}'s lock for {seconds} s")
                self.foreign.append(loop.create_task(self.db.hold_foreign([("1", instrument)], seconds)))
            elif roll < 0.48:
                await self.change_risk()
            elif roll < 0.56:
                self.jump_clock()
            elif roll < 0.63 and any(p.alive for p in self.processes):
                process = rng.choice([p for p in self.processes if p.alive])
                request = loop.create_task(self.flatten(process))
                process.requests[request] = None  # a crash of the process ends it
                request.add_done_callback(process.requests.pop)
            elif roll < 0.67 and any(p.alive for p in self.processes):
                day = self.today() - timedelta(days=rng.choice((0, 0, 1)))
                for process in rng.sample([p for p in self.processes if p.alive], rng.randint(1, 2)):
                    request = loop.create_task(self.square_off(process, day))  # two may find it due at once
                    process.requests[request] = None
                    request.add_done_callback(process.requests.pop)

    async def reload_profiles(self) -> None:
        registry = self.rng.choice(self.registries)
        self.note(f"profiles reloaded ({registry.fingerprint})")
        self.registry = registry  # already recorded in the store, as Operations does first
        for process in self.processes:
            if process.alive:
                process.sequencer.use_registry(registry)

    def draw_scope(self) -> tuple[ControlLevel, str | None]:
        level = self.rng.choice(tuple(ControlLevel))
        if level is ControlLevel.GLOBAL:
            return level, None
        return level, self.rng.choice(STRATEGIES if level is ControlLevel.STRATEGY else USERS)

    async def change_controls(self) -> None:
        rng = self.rng
        alive = [p for p in self.processes if p.alive]
        if not alive:
            return
        process = alive[0] if self.variant == "local" else rng.choice(alive)
        halted = [
            s.target
            for s in process.sequencer.controls.settings()
            if s.level is ControlLevel.STRATEGY and s.state is ControlState.HALTED
        ]
        if halted and rng.random() < 0.5:  # an admin lets a strategy the breaker (or someone) halted trade again
            setting = ControlSetting(ControlLevel.STRATEGY, rng.choice(halted), ControlState.ACTIVE)
        else:
            level, target = self.draw_scope()
            state = rng.choice(
                (ControlState.ACTIVE, ControlState.ACTIVE, ControlState.HALTED, ControlState.REDUCE_ONLY)
            )
            setting = ControlSetting(level, target, state)
        async with self.operations:
            await self.set_control(process, setting)

    async def set_control(self, process: Process, setting: ControlSetting) -> None:
        """As ``Operations._set_control`` (the caller holds the operations lock): with the sequencer quiesced
        (no order decided, every decided one committed), build on the controls it has in force (a breaker's
        halt included), record, use the store's answer."""
        self.control_generation += 1
        sequencer = process.sequencer
        async with sequencer.quiesced():
            built = sequencer.controls.with_setting(setting)
            change = ControlChange(self.clock(), setting, None, built.fingerprint)
            try:
                stored = await process.store.record_control_change(change, orjson.dumps(built.to_document()).decode())
            except StoreUnavailable as exc:  # (the shared store's controls lock: groups kept it too long)
                self.note(f"p{process.number}: the control change was not stored: {exc}")
                return
            controls = Controls.from_document(orjson.loads(stored))
            sequencer.use_controls(controls)
        self.controls = controls
        self.note(f"controls now {controls.to_document()}")

    async def flatten(self, process: Process) -> None:
        """An admin flattens a scope as ``Operations.flatten`` does: the sequencer closes every open
        position of the scope in one transaction and sets ``then`` in it; an empty scope sets ``then``
        by a control change of its own."""
        rng = self.rng
        level, target = self.draw_scope()
        then = rng.choice((None, None, ControlState.HALTED, ControlState.REDUCE_ONLY, ControlState.ACTIVE))
        by = f"flatten-{len(self.flattens) + 1}"
        attempt = self.flattens[by] = FlattenAttempt(level, target, then)
        async with self.operations:
            if then is not None:
                self.control_generation += 1
            self.note(f"p{process.number} <- {by} {level.value} {target} then {then}")
            try:
                records, _ = await process.sequencer.flatten(level, target, then, by)
            except StoreUnavailable as exc:  # not stored; or, a shared store's COMMIT in doubt, maybe stored
                attempt.outcome = "pending" if "unknown" in str(exc) else "unavailable"
                self.note(f"p{process.number} -> {by}: {exc}")
                return
            except asyncio.CancelledError:
                raise
            except Exception as exc:
                raise self.fail(f"{by} got {type(exc).__name__}: {exc!r}") from exc
            if not records and then is not None:
                await self.set_control(process, ControlSetting(level, target, then))
        attempt.outcome, attempt.records = "stored", records
        self.note(f"p{process.number} -> {by}: orders {[r.order_id for r in records]}")
        for record in records:
            stored = self.db.orders.get(record.order_id)
            if stored is None or _content(stored) != _content(record) or stored.actor != by:
                raise self.fail(f"{by}'s order {record.order_id} was answered but the store holds {stored}")
        if records and [r.order_id for r in records] != list(range(records[0].order_id, records[-1].order_id + 1)):
            raise self.fail(f"{by}'s orders are not consecutive: {[r.order_id for r in records]}")

    def today(self) -> date:
        return datetime.fromisoformat(self.clock()).date()

    async def square_off(self, process: Process, day: date) -> None:
        """As ``Operations.square_off_if_due`` once the day's moment has come (under the operations lock on
        the local variant, as ``Operations`` holds its own; the shared processes may run it at once)."""
        self.note(f"p{process.number} <- square-off {day}")
        async with self.operations if self.variant == "local" else contextlib.nullcontext():
            try:
                records = await process.sequencer.square_off(day)
            except StoreUnavailable as exc:
                self.note(f"p{process.number} -> square-off {day}: {exc}")
                return
            except asyncio.CancelledError:
                raise
            except Exception as exc:
                raise self.fail(f"the square-off of {day} got {type(exc).__name__}: {exc!r}") from exc
        answered = [r.order_id for r in records] if records is not None else "done already"
        self.note(f"p{process.number} -> square-off {day}: {answered}")
        if records is None:
            return
        self.square_offs.append((day, [r.order_id for r in records]))
        for record in records:
            stored = self.db.orders.get(record.order_id)
            if stored is None or _content(stored) != _content(record) or stored.origin is not Origin.SQUARE_OFF:
                raise self.fail(f"the square-off's order {record.order_id} was answered but the store holds {stored}")

    async def change_risk(self) -> None:
        """An operator changes the limits or the session (now and then lifts every limit, so that the
        next one rebuilds the state from the log)."""
        rng = self.rng
        alive = [p for p in self.processes if p.alive]
        if not alive:
            return
        process = alive[0] if self.variant == "local" else rng.choice(alive)
        in_force = process.sequencer.risk
        roll = rng.random()
        if roll < 0.1:
            for level, target, limits in _every_level(in_force):
                await self.put_risk(process, "limits", level, target, dict.fromkeys(limits.to_document()))
            if process.sequencer.risk.session is not None:
                await self.put_risk(process, "session", None, None, None)
        elif roll < 0.25:
            await self.put_risk(process, "session", None, None, self.draw_session() if rng.random() < 0.7 else None)
        else:
            level = rng.choice(tuple(RiskLevel))
            target = None
            if level is not RiskLevel.GLOBAL:
                target = rng.choice(STRATEGIES if level is RiskLevel.STRATEGY else USERS)
            names = [n for n, levels in LEVELS_OF.items() if level in levels and (n != "breaker" or rng.random() < 0.6)]
            patch = {name: self.draw_limit(name) for name in rng.sample(names, rng.randint(1, min(3, len(names))))}
            await self.put_risk(process, "limits", level, target, patch)

    def draw_limit(self, name: str) -> int | dict[str, int] | None:
        rng = self.rng
        if rng.random() < 0.2:
            return None  # cleared
        if name == "breaker":
            return {"max_rejects": rng.choice((1, 2, 3, 5)), "window_seconds": rng.choice((1, 5, 60, 600))}
        choices = {
            "max_open_positions": (0, 1, 2, 3, 5),
            "max_opens_per_day": (0, 1, 3, 6, 20),
            "max_orders_per_minute": (1, 5, 20, 60, 500),
            "cooldown_seconds": (0, 1, 30, 600, 7200),
            "max_signal_age_seconds": (0, 1, 10, 60),
        }
        return rng.choice(choices[name])

    def draw_session(self) -> dict[str, Any]:
        rng = self.rng
        opens, closes = rng.randrange(24 * 60), rng.randrange(24 * 60)
        if rng.random() < 0.2:
            closes = opens  # round the clock on its days
        days = rng.sample(("MON", "TUE", "WED", "THU", "FRI", "SAT", "SUN"), rng.randint(3, 7))
        return {
            "timezone": rng.choice(ZONES),
            "open": f"{opens // 60:02d}:{opens % 60:02d}",
            "close": f"{closes // 60:02d}:{closes % 60:02d}",
            "days": days,
        }

    async def put_risk(
        self, process: Process, kind: str, level: RiskLevel | None, target: str | None, change: object
    ) -> None:
        """As ``Operations.set_limits`` and ``set_session``: build on the policy in force, record, use."""
        sequencer = process.sequencer
        if kind == "limits":
            assert level is not None
            assert isinstance(change, dict)
            built = sequencer.risk.with_limits(level, target, change)
        else:
            session = TradingSession.from_document(change) if change is not None else None
            built = sequencer.risk.with_session(session)
        text = orjson.dumps(change).decode()
        record = RiskChange(self.clock(), kind, level.value if level else None, target, text, None, built.fingerprint)
        await process.store.record_risk_change(record, orjson.dumps(built.to_document()).decode())
        self.risk_changes += 1
        self.note(f"risk {kind} {level} {target} <- {text}: {built.fingerprint} {built.to_document()}")
        try:
            await sequencer.use_risk(built)
        except StoreUnavailable as exc:  # the change is stored; this process keeps deciding under the old one
            self.note(f"the risk change is not in force yet: {exc}")

    # -- invariants ---------------------------------------------------------------------------------

    def check_answer(self, process: Process, order: Order, key: str | None, result: object) -> None:
        self.answers += 1
        self.note(f"p{process.number} -> {key}: {_show(result)}")
        if isinstance(result, Outcome):
            record = result.record
            stored = self.db.orders.get(record.order_id)
            if stored is None or _content(stored) != _content(record):
                raise self.fail(f"order {record.order_id} was answered but the store holds {stored}")
            if record.order != order:
                raise self.fail(f"order {record.order_id} answers {order} with {record.order}")
            if key is None:
                if result.replayed:
                    raise self.fail(f"order {record.order_id} without a client order id was answered as a replay")
                return
            history = self.ids[key]
            if record.client_order_id != key:
                raise self.fail(
                    f"an order under {key!r} was answered with order {record.order_id} of {record.client_order_id!r}"
                )
            if history.order_id is not None and history.order_id != record.order_id:
                raise self.fail(f"{key!r} was decided twice: orders {history.order_id} and {record.order_id}")
            history.order_id = record.order_id
            if not result.replayed:
                history.fresh += 1
                if history.fresh > 1:
                    raise self.fail(f"{key!r} got two fresh decisions")
        elif isinstance(result, ClientOrderIdConflict):
            stored = self.db.find(key) if key is not None else None
            if stored is None:
                raise self.fail(f"409 for {key!r}, which no committed order holds")
            if stored.order == order:
                raise self.fail(f"409 for {key!r}, whose committed order is this very order {stored.order_id}")
        elif isinstance(result, StoreUnavailable):
            waited = LOCK_WAIT.search(str(result))
            if waited is not None and not self.waited_for(waited.group(1), waited.group(2), order, key):
                raise self.fail(f"503 for an order on {order.instrument} ({key}) because {waited.group(0)}")
        else:
            raise self.fail(f"a request got {type(result).__name__}: {result!r}")
        if self.db.violations:
            raise self.fail(f"the store refused a group: {self.db.violations[0]}")

    def waited_for(self, kind: str, name: str, order: Order, key: str | None) -> bool:
        """Whether a lock wait on ``kind name`` may answer ``order`` 503: it waited for the order's own
        instrument or id, or for the id of another order on the same instrument (one lane, one transaction)."""
        if kind == "instrument":
            return name == order.instrument
        history = self.ids.get(name)
        return name == key or (history is not None and any(o.instrument == order.instrument for o in history.orders))

    def check_trip(self, process: Process, record: OrderRecord, generation: int) -> None:
        """A fresh answer whose rejection tripped the breaker: unless a control change began since its
        request, the strategy is halted in the sequencer and in the store."""
        change = record.control_change
        if change is None or change[0].reason != BREAKER:
            return
        self.trips += 1
        if generation != self.control_generation or not process.alive:
            return
        strategy = record.order.strategy
        in_force = process.sequencer.controls.state_of(ControlLevel.STRATEGY, strategy)
        if self.variant == "shared":  # it decides under the controls each group reads: the store's count
            in_force = ControlState.HALTED
        stored = Controls.from_document(orjson.loads(self.db.controls or "{}"))
        if (
            in_force is not ControlState.HALTED
            or stored.state_of(ControlLevel.STRATEGY, strategy) is not ControlState.HALTED
        ):
            raise self.fail(
                f"order {record.order_id} tripped {strategy}'s breaker, but {strategy} is {in_force} in the "
                f"sequencer and {stored.state_of(ControlLevel.STRATEGY, strategy)} in the store"
            )

    def check_controls(self, process: Process) -> None:
        """The controls the sequencer ends with are those the store holds (its last change's)."""
        stored = Controls.from_document(orjson.loads(self.db.controls)) if self.db.controls else NO_CONTROLS
        if process.sequencer.controls != stored:
            raise self.fail(
                f"the sequencer's controls {process.sequencer.controls.to_document()} differ from the store's "
                f"{stored.to_document()}"
            )
        changes = self.db.control_changes
        if changes and changes[-1].fingerprint != stored.fingerprint:
            raise self.fail(f"the store's controls are not those of its last control change {changes[-1]}")

    def check_log(self) -> None:
        """Invariants 4 to 6 over the whole store: replay it through the independent model."""
        if self.db.violations:
            raise self.fail(f"the store refused a group: {self.db.violations[0]}")
        book: dict[model.Key, model.Held] = {}
        registries = {r.fingerprint: r for r in self.registries}
        history = self.history = model.History()
        policies: dict[str, model.ModelPolicy] = {}
        flattening: FlattenAttempt | None = None  # the flatten whose orders the replay is in
        self.square_off_runs = []
        owed: list[tuple[str, str, model.Canonical]] = []  # the orders it still owes
        for order_id in sorted(self.db.orders):
            record = self.db.orders[order_id]
            if record.origin is not Origin.STRATEGY or owed:
                flattening, owed = self.replay_flatten(record, flattening, owed, book)
                continue
            profiles = registries[record.profile_fingerprint].to_document()
            controls = None
            if record.controls_fingerprint is not None:
                named = self.db.controls_sets.get(record.controls_fingerprint)
                if named is None:
                    raise self.fail(f"order {order_id} names controls {record.controls_fingerprint} never stored")
                controls = orjson.loads(named)
            order = record.order
            at = model.micros_of(record.received_at)
            risk = None
            if record.risk_fingerprint is not None:
                fingerprint = record.risk_fingerprint
                if fingerprint not in policies:
                    policies[fingerprint] = model.policy_from_document(orjson.loads(self.db.risk_sets[fingerprint]))
                signal_at = model.micros_of(record.signal_time) if record.signal_time is not None else None
                risk = model.RiskInput(policies[fingerprint], history, at, signal_at)
            want = model.expected(
                profiles,
                self.scope.value,
                book,
                model.controls_from_document(controls),
                order.strategy,
                order.instrument,
                order.side.value,
                risk,
            )
            got = _canonical(record)
            if want != got:
                raise self.fail(
                    f"order {order_id} ({order}, at {record.received_at}, signal {record.signal_time}, "
                    f"risk {record.risk_fingerprint}) was decided {got}, the model says {want}"
                )
            model.apply(book, self.scope.value, order_id, order.strategy, order.instrument, got[2])
            history.add(at, order.strategy, order.instrument, got[2], True, got[0], got[1])
            self.replay_trip(record, risk)
        if owed:
            raise self.fail(f"{flattening} stored only some of its orders: {len(owed)} missing")
        for by, attempt in self.flattens.items():
            stored_ids = [r.order_id for r in self.db.orders.values() if r.origin is Origin.FLATTEN and r.actor == by]
            if attempt.outcome == "unavailable" and stored_ids:
                raise self.fail(f"{by} was answered StoreUnavailable, but its orders {stored_ids} are stored")
            if attempt.outcome == "stored" and sorted(stored_ids) != [r.order_id for r in attempt.records]:
                raise self.fail(f"{by} was answered with {[r.order_id for r in attempt.records]}, stored {stored_ids}")
        self.check_square_offs()
        replayed = {(h.user, h.strategy, h.instrument, h.opened_order_id) for h in book.values()}
        stored = {(p.user, p.strategy, p.instrument, p.opened_order_id) for p in self.db.positions.values()}
        if replayed != stored:
            raise self.fail(f"the stored positions differ from the replayed log: {sorted(replayed ^ stored)}")

    def replay_flatten(
        self,
        record: OrderRecord,
        flattening: FlattenAttempt | None,
        owed: list[tuple[str, str, model.Canonical]],
        book: dict[model.Key, model.Held],
    ) -> tuple[FlattenAttempt | None, list[tuple[str, str, model.Canonical]]]:
        """One order of a flatten in the replay: its first one draws the orders the model says the scope's
        open positions need; each must be the next of them, back to back, and the last carries ``then``."""
        order_id, by = record.order_id, record.actor or ""
        if record.origin is Origin.STRATEGY or (owed and record.origin is not flattening_origin(flattening)):
            raise self.fail(f"order {order_id} ({record.origin}) comes inside a flatten that owes {len(owed)} orders")
        if not owed and record.origin is Origin.SQUARE_OFF:
            if by != RISK_ACTOR:
                raise self.fail(f"square-off order {order_id} is sent by {by!r}")
            flattening = FlattenAttempt(ControlLevel.GLOBAL, None, None, "stored", first=order_id, square_off=True)
            self.square_off_runs.append(flattening)
            owed = model.flatten_expected(book, "global", None)
            if not owed:
                raise self.fail(f"order {order_id}: a square-off stored orders for a book the model finds empty")
        elif not owed:
            attempt = self.flattens.get(by)
            if attempt is None or attempt.first is not None:
                raise self.fail(f"order {order_id} is a flatten order of {by!r}, which sent no (other) flatten")
            attempt.first, flattening = order_id, attempt
            owed = model.flatten_expected(book, attempt.level.value, attempt.target)
            if not owed:
                raise self.fail(f"order {order_id}: {by} stored orders for a scope the model finds empty")
        assert flattening is not None
        if flattening.square_off:
            flattening.records.append(record)
        elif flattening is not self.flattens.get(by):
            raise self.fail(f"order {order_id} of {by} comes inside another flatten that owes {len(owed)} orders")
        strategy, instrument, want = owed.pop(0)
        got = _canonical(record)
        if (record.order.strategy, record.order.instrument, record.order.side, got) != (
            strategy,
            instrument,
            Side.SELL,
            want,
        ):
            raise self.fail(
                f"order {order_id} of {by} is {record.order} {got}; the model says {strategy} {instrument} SELL {want}"
            )
        change = record.control_change
        if owed or flattening.then is None:
            if change is not None:
                raise self.fail(f"order {order_id} of {by} carries a control change {change[0]}")
        else:
            setting = ControlSetting(flattening.level, flattening.target, flattening.then)
            if change is None or (change[0].setting, change[0].reason, change[0].order_id) != (
                setting,
                FLATTEN,
                order_id,
            ):
                raise self.fail(f"the last order {order_id} of {by} carries {change}, not its then {setting}")
        model.apply(book, self.scope.value, order_id, strategy, instrument, got[2])
        self.history.add(model.micros_of(record.received_at), strategy, instrument, got[2], False)
        return (None if not owed else flattening), owed

    def check_square_offs(self) -> None:
        """Once a day: the stored marks' days increase; each mark names exactly the orders of one square-off
        (back to back in the log, as the replay found them), and each answered square-off has its mark.
        On the shared store the mark is in the orders' transaction, so every square-off has one; the
        embedded store writes it after the orders, so a crash in between leaves a square-off unmarked."""
        marks = [
            (date.fromisoformat(m["day"]), m["orders"])
            for m in (orjson.loads(c.change) for c in self.db.risk_changes if c.kind == SQUARE_OFF)
        ]
        days = [day for day, _ in marks]
        if days != sorted(set(days)):
            raise self.fail(f"the square-off marks' days do not increase: {days}")
        runs = {run.first: [r.order_id for r in run.records] for run in self.square_off_runs}
        marked = set()
        for day, ids in marks:
            if ids and runs.get(ids[0]) != ids:
                raise self.fail(f"the square-off mark of {day} names orders {ids}; the log holds {runs.get(ids[0])}")
            marked.update(ids[:1])
        if self.variant == "shared" and set(runs) - marked:
            raise self.fail(f"square-offs with no mark in their transaction: orders {sorted(set(runs) - marked)}")
        for day, ids in self.square_offs:
            if (day, ids) not in marks:
                raise self.fail(f"the square-off of {day} was answered with orders {ids}, but no mark says so")

    def replay_trip(self, record: OrderRecord, risk: model.RiskInput | None) -> None:
        """Whether the order (just added to the history) trips its strategy's breaker, by the model; the log
        holds the halt in its transaction exactly when it does."""
        strategy, change = record.order.strategy, record.control_change
        want = risk is not None and model.trips(risk, strategy)
        if change is not None and change[0].reason != BREAKER:
            raise self.fail(f"order {record.order_id} of a strategy carries a control change {change[0]}")
        if want != (change is not None):
            raise self.fail(
                f"order {record.order_id} ({record.order}, {_canonical(record)} at {record.received_at}) "
                f"{'trips' if want else 'does not trip'} {strategy}'s breaker by the model, the log holds "
                f"{change[0] if change is not None else 'no halt'}"
            )
        if change is None:
            return
        halt = ControlSetting(ControlLevel.STRATEGY, strategy, ControlState.HALTED)
        stored_change, document = change
        halted = Controls.from_document(orjson.loads(document))
        if (stored_change.setting, stored_change.by, stored_change.order_id) != (halt, RISK_ACTOR, record.order_id) or (
            halted.state_of(ControlLevel.STRATEGY, strategy) is not ControlState.HALTED
            or self.db.controls_sets.get(stored_change.fingerprint) != document
            or halted.fingerprint != stored_change.fingerprint
        ):
            raise self.fail(f"order {record.order_id}'s breaker trip is stored as {stored_change} with {document}")
        self.history.trip(strategy)

    def check_verify(self) -> None:
        """``verify`` over the stored log (chained as the embedded store chains it) finds nothing."""
        report = verify_log(StoredLog(self.db))
        if not report.ok:
            raise self.fail(f"verify: {report.problem}")
        if report.redecided != len(self.db.orders):
            raise self.fail(f"verify decided {report.redecided} of {len(self.db.orders)} orders again")


class StoredLog:
    """The fake embedded store's log as ``verify`` reads a real one: in order_id order, each order linked
    into one hash chain (the fake keeps no hashes; the chain is not what this checks)."""

    def __init__(self, db: Database) -> None:
        self.db = db

    def iter_orders(self) -> Iterator[OrderRecord]:
        chains = Chains(single_chain)
        for order_id in sorted(self.db.orders):
            record = self.db.orders[order_id]
            yield record._replace(chain_hash=chains.link(record))

    def iter_positions(self) -> Iterator[Position]:
        return iter(self.open_positions())

    def iter_trades(self) -> Iterator[Trade]:
        return iter(())

    def open_positions(self) -> list[Position]:
        return list(self.db.positions.values())

    def profiles(self, fingerprint: str) -> str | None:
        return self.db.profiles.get(fingerprint)

    def controls(self, fingerprint: str) -> str | None:
        return self.db.controls_sets.get(fingerprint)

    def risk(self, fingerprint: str) -> str | None:
        return self.db.risk_sets.get(fingerprint)

    def caused_changes(self) -> dict[int, ControlChange]:
        return {r.order_id: r.control_change[0] for r in self.db.orders.values() if r.control_change is not None}

    def chain_key(self, record: OrderRecord) -> str:
        return single_chain(record)

    def close(self) -> None:
        return None


def _every_level(policy: RiskPolicy) -> list[tuple[RiskLevel, str | None, Any]]:
    """Every level and target that sets a limit in ``policy``, with its limits."""
    found: list[tuple[RiskLevel, str | None, Any]] = []
    if not policy.gateway.is_empty:
        found.append((RiskLevel.GLOBAL, None, policy.gateway))
    found.extend((RiskLevel.STRATEGY, s, v) for s, v in policy.strategies.items())
    found.extend((RiskLevel.USER, u, v) for u, v in policy.users.items())
    return found


_STAMPED: dict[int, str] = {}


def _stamp(micros: int) -> str:
    """A log timestamp (``2026-12-02T09:15:00.000000Z``) of microseconds since the epoch (the date and
    time of the last second formatted once, as the gateway's own clock does)."""
    second, fraction = divmod(micros, 1_000_000)
    prefix = _STAMPED.get(second)
    if prefix is None:
        _STAMPED.clear()
        prefix = _STAMPED[second] = datetime.fromtimestamp(second, UTC).strftime("%Y-%m-%dT%H:%M:%S.")
    return f"{prefix}{fraction:06d}Z"


def _content(record: OrderRecord) -> tuple[Any, ...]:
    return (
        record.order_id,
        record.order,
        record.decision,
        record.client_order_id,
        record.profile_fingerprint,
        record.controls_fingerprint,
        record.received_at,
        record.risk_fingerprint,
        record.signal_time,
    )


def _canonical(record: OrderRecord) -> model.Canonical:
    d = record.decision
    return model.canonical(
        d.status.value,
        d.reason.value if d.reason is not None else None,
        [(e.user, e.action.value, e.position_strategy) for e in d.applied],
        [(r.user, r.reason.value) for r in d.rejected_for],
    )


def _show(result: object) -> str:
    if isinstance(result, Outcome):
        r = result.record
        return f"order {r.order_id} {r.decision.status.value}{' (replayed)' if result.replayed else ''}"
    return f"{type(result).__name__}: {result}"


def simulate(seed: int, variant: str) -> World:
    """Run one seed; raise :class:`SimulationFailure` if an invariant breaks."""
    world_box: list[World] = []

    async def main() -> None:
        world = World(seed, variant)
        world_box.append(world)
        await world.run()

    quiet = logging.getLogger("ordergate")
    level = quiet.level
    quiet.setLevel(logging.CRITICAL)  # the faults are on purpose: their log lines are noise here
    try:
        run(main())
    except SimulationFailure:
        raise
    except Deadlock as exc:
        world = world_box[0]
        raise world.failure or world.fail(f"deadlock: {exc}") from None
    finally:
        quiet.setLevel(level)
    return world_box[0]


def seeds(count: int, start: int = 0) -> Callable[[], list[int]]:
    return lambda: list(range(start, start + count))
