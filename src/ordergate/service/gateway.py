"""A gateway: the profiles, the store and the sequencer of one process, opened and closed together.

It is built by the composition root (:func:`ordergate.bootstrap.prepare_gateway`), which does the
synchronous checks that must stop start-up with one clear line (profiles, store lock) before any
server starts, and hands over the store and how to build the sequencer that suits it. The gateway
only knows their interfaces. :meth:`Gateway.start` restores the committed state inside the server's
event loop and registers the sequencer's commit listeners: the decision log, the telemetry behind
``/v1/stats`` and ``/metrics``, and the feed of the log's committed orders (this process's commits on
the embedded store, the shared log's tail on PostgreSQL) that keeps the telemetry's counters and the
event hub behind ``/v1/events`` describing the whole log.

A start is the restore of possibly a million positions, so it does only what it must: the collector
stays paused until the gateway is ready (a :class:`~ordergate.service.runtime.StartPause`, given back
on a failed start too), and profiles whose fingerprint the store already keeps are not encoded and
recorded again.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Protocol

import orjson

from ordergate.config import LogFormat, Settings
from ordergate.domain.registry import Registry
from ordergate.service.clock import Clock, utc_now
from ordergate.service.decision_log import DecisionLog
from ordergate.service.events import EventHub
from ordergate.service.exit_signals import ExitSignalHook
from ordergate.service.feeds import Feed, FeedFactory
from ordergate.service.runtime import StartPause
from ordergate.service.sequencing import Sequencing
from ordergate.service.telemetry import Telemetry, totals_from_rows
from ordergate.store.base import Snapshot, Store, StreamPosition
from ordergate.store.metered import StoreErrors

log = logging.getLogger(__name__)

SequencerFactory = Callable[[Snapshot, Registry], Sequencing]
"""Builds the sequencer of a store from the committed state the store was opened with."""


class Door(Protocol):
    """An entrypoint besides HTTP that runs in the gateway's event loop (the FIX acceptor)."""

    async def start(self) -> None: ...

    async def stop(self) -> None:
        """Stop taking orders and answer those in flight (the sequencer still runs meanwhile)."""
        ...


DoorFactory = Callable[[Sequencing], Door]
"""Builds a door over the started sequencer (the composition root knows which doors are on)."""


@dataclass
class Gateway:
    settings: Settings
    registry: Registry
    store: Store
    new_sequencer: SequencerFactory = field(repr=False)
    new_feed: FeedFactory = field(repr=False)
    store_errors: StoreErrors = field(default_factory=StoreErrors, repr=False)
    clock: Clock = field(default=utc_now, repr=False)
    """Stamps orders (in the sequencer) and operator changes: one clock, so tests can move it."""
    doors: Sequence[DoorFactory] = field(default=(), repr=False)
    """Opened once the sequencer runs, before the gateway is ready; stopped before the sequencer."""
    sequencer: Sequencing | None = None
    ready: bool = False
    telemetry: Telemetry | None = None
    events: EventHub | None = None
    _decision_log: DecisionLog | None = field(default=None, repr=False)
    _exit_hook: ExitSignalHook | None = field(default=None, repr=False)
    _history: asyncio.Task[None] | None = field(default=None, repr=False)
    _feed: Feed | None = field(default=None, repr=False)
    _open_doors: list[Door] = field(default_factory=list, repr=False)

    async def start(self) -> Sequencing:
        """Restore the committed state and start the sequencer: ready once this returns."""
        pause = StartPause()
        try:
            sequencer = await self._start()
        except BaseException:
            pause.resume(freeze=False)
            raise
        pause.resume(freeze=True)
        return sequencer

    async def _start(self) -> Sequencing:
        store, registry = self.store, self.registry
        snapshot = await store.open(self.settings.scope)
        if registry.fingerprint not in snapshot.profiles:  # the same fingerprint: the same content, kept
            await store.record_profiles(registry.fingerprint, orjson.dumps(registry.to_document()).decode())
        origin = snapshot.origin
        telemetry = Telemetry(
            snapshot.last_order_id, snapshot.open_at_origin, store_errors=self.store_errors, origin=origin
        )
        self._history = asyncio.create_task(self._read_history(telemetry, origin))
        events = EventHub(origin, self.settings.event_buffer)
        feed = self._feed = self.new_feed(store, events, (telemetry.on_logged,))
        sequencer = self.new_sequencer(snapshot, registry)
        self._decision_log = DecisionLog(self.settings.logs_dir, json_lines=self.settings.log_format is LogFormat.JSON)
        sequencer.on_commit(self._decision_log)
        sequencer.on_commit(telemetry.on_commit)
        sequencer.on_commit(feed)  # last: the counters and the stream see an order after everything else
        self._exit_hook = ExitSignalHook(events.close)
        self._exit_hook.install()
        self.telemetry, self.events = telemetry, events
        sequencer.start()
        feed.start()
        self.sequencer = sequencer
        for new_door in self.doors:
            door = new_door(sequencer)
            await door.start()
            self._open_doors.append(door)
        self.ready = True
        return sequencer

    async def _read_history(self, telemetry: Telemetry, until: StreamPosition) -> None:
        """Give the telemetry the log's totals before the start, read on a thread while serving."""
        try:
            totals = totals_from_rows(await self.store.order_totals(until), until)
        except Exception as exc:
            log.exception("cannot read the order log's totals for /v1/stats")
            telemetry.history_failed(f"{type(exc).__name__}: {exc}")
        else:
            telemetry.set_history(totals)

    async def stop(self) -> None:
        self.ready = False
        while self._open_doors:
            await self._open_doors.pop().stop()
        if self._history is not None and not self._history.done():
            self._history.cancel()
        if self._exit_hook is not None:
            self._exit_hook.uninstall()
        if self.events is not None:
            self.events.close()
        if self.sequencer is not None:
            await self.sequencer.stop()
        if self._feed is not None:
            await self._feed.stop()
        await self.store.close()
        if self._decision_log is not None:
            self._decision_log.close()
