"""What an operator changes on a running gateway: trading controls and the profiles in force.

:class:`Operations` wraps a started :class:`~ordergate.service.gateway.Gateway`:

- **controls** (SPEC section 9): a change is stored durably first (the change itself, who made it,
  and the whole set of controls it puts in force, named by fingerprint), then the sequencer decides
  every later order under the controls the store says are in force (on a shared store another
  process may have changed them since this one last read them: the change is applied to those);
  each order records the fingerprint of the controls it was decided under, so ``verify`` can derive
  it again. At start the controls in force are restored from the store. Both stores keep controls.
- **risk** (SPEC section 10): limits and the trading session change like controls: the change and
  the whole risk policy it puts in force (named by fingerprint) are stored first, then later orders
  are decided under it; each order records the policy's fingerprint. When limits come into force
  where none were, the sequencer first rebuilds the risk state from the log. At start the policy in
  force is restored. On a shared store the change is applied to the policy in force in the database
  (another process may have changed it since this one last read it), and every process decides
  under the policy its group transactions read (:mod:`ordergate.service.shared_sequencer`).
- **profile reload** (``POST /v1/admin/reload-profiles`` and SIGHUP): the profile file is read and
  checked exactly as at start-up; a bad file is refused with the same message and the profiles in
  force stay. A good one is recorded in the store (by fingerprint) before any order is decided
  against it. Open positions are untouched.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import signal
from dataclasses import dataclass
from datetime import date

import orjson

from ordergate.domain.controls import (
    NO_CONTROLS,
    ControlLevel,
    Controls,
    ControlSetting,
    ControlState,
    check_setting,
)
from ordergate.domain.record import OrderRecord
from ordergate.domain.registry import Registry
from ordergate.domain.risk import NO_RISK, RiskChange, RiskLevel, RiskPolicy, TradingSession, epoch_of
from ordergate.errors import OrdergateError, StartupError, StoreUnavailable
from ordergate.profiles import load_registry
from ordergate.service.clock import Clock, utc_now
from ordergate.service.gateway import Gateway
from ordergate.service.sequencing import Sequencing
from ordergate.store.base import ControlChange

log = logging.getLogger(__name__)

RECENT_CHANGES = 20
SQUARE_OFF_EVERY = 1.0
"""Seconds between two looks at whether the session's square-off is due."""


class ProfilesRefused(OrdergateError):
    """The profile file cannot be used; the message is the start-up message, naming file and JSON path."""


class RiskRefused(OrdergateError):
    """A risk change this gateway cannot put in force (answered 409 with the message)."""


@dataclass(frozen=True, slots=True)
class Reload:
    fingerprint: str
    previous_fingerprint: str
    users: int
    strategies: int

    @property
    def changed(self) -> bool:
        return self.fingerprint != self.previous_fingerprint


class Operations:
    def __init__(self, gateway: Gateway, *, clock: Clock = utc_now, square_off_every: float = SQUARE_OFF_EVERY) -> None:
        self._gateway = gateway
        self._clock = clock
        self._square_off_every = square_off_every
        self._squared_off = date.min  # the last day this process knows was squared off
        self._square_offs: asyncio.Task[None] | None = None
        self._lock = asyncio.Lock()  # one change at a time: each is stored before the next is built
        self._sighup_loop: asyncio.AbstractEventLoop | None = None
        self._reloads: set[asyncio.Task[None]] = set()

    @property
    def _sequencer(self) -> Sequencing:
        sequencer = self._gateway.sequencer
        if sequencer is None:
            raise StoreUnavailable("the gateway is still starting")
        return sequencer

    async def start(self) -> None:
        """Restore the controls in force from the store (call once the gateway has started)."""
        document = await self._gateway.store.current_controls()
        if document is not None:
            controls = Controls.from_document(orjson.loads(document))
            self._sequencer.use_controls(controls)
            if controls.restricts_anything:
                log.warning("trading controls in force: %s", orjson.dumps(controls.to_document()).decode())
        risk = await self._gateway.store.current_risk()
        if risk is not None:
            policy = RiskPolicy.from_document(orjson.loads(risk))
            if policy.restricts_anything:
                if not self._sequencer.decides_risk:
                    log.error("the store holds a risk policy, which this sequencer cannot decide: it is not in force")
                    return
                await self._sequencer.use_risk(policy)
                log.warning("risk policy in force: %s", orjson.dumps(policy.to_document()).decode())
        await self.square_off_if_due()  # a square-off missed while the gateway was down happens now
        self._square_offs = asyncio.get_running_loop().create_task(self._square_off_loop(), name="square-off")

    async def stop(self) -> None:
        if self._square_offs is not None:
            self._square_offs.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._square_offs
            self._square_offs = None

    # -- controls -------------------------------------------------------------------------------

    @property
    def controls(self) -> Controls:
        sequencer = self._gateway.sequencer
        return sequencer.controls if sequencer is not None else NO_CONTROLS

    async def recent_changes(self) -> list[ControlChange]:
        return await self._gateway.store.control_changes(RECENT_CHANGES)

    async def set_control(self, setting: ControlSetting, by: str | None) -> Controls:
        """Put ``setting`` in force for every order decided from now on; raises ``ControlError`` if invalid."""
        async with self._lock:
            controls = await self._set_control(setting, by)
        return controls

    async def _set_control(self, setting: ControlSetting, by: str | None) -> Controls:
        sequencer = self._sequencer
        # a breaker trip changes the controls in its order's transaction: with no order decided meanwhile,
        # this change is built on every trip before it and stored after them, and none comes between
        async with sequencer.quiesced():
            built = sequencer.controls.with_setting(setting)
            change = ControlChange(self._clock(), setting, by, built.fingerprint)
            document = orjson.dumps(built.to_document()).decode()
            stored = await self._gateway.store.record_control_change(change, document)
            # the store's answer: another process may have changed the controls this one last saw
            controls = Controls.from_document(orjson.loads(stored))
            sequencer.use_controls(controls)
        target = f" {setting.target}" if setting.target is not None else ""
        log.warning("trading control: %s%s -> %s (by %s)", setting.level, target, setting.state, by or "anonymous")
        return controls

    async def flatten(
        self, level: ControlLevel, target: str | None, then: ControlState | None, by: str | None
    ) -> tuple[list[OrderRecord], Controls]:
        """Close every open position in the scope in one transaction, then set ``then`` in that same
        transaction; an empty scope closes nothing (and still sets ``then``). Raises ``ControlError`` for a
        bad scope."""
        check_setting(ControlSetting(level, target, then or ControlState.ACTIVE))
        async with self._lock:
            records, controls = await self._sequencer.flatten(level, target, then, by)
            if not records and then is not None:
                controls = await self._set_control(ControlSetting(level, target, then), by)
        log.warning(
            "flatten %s%s: %d orders closed %d positions%s (by %s)",
            level.value,
            f" {target}" if target is not None else "",
            len(records),
            sum(len(r.decision.applied) for r in records),
            f", then {then.value}" if then is not None else "",
            by or "anonymous",
        )
        return records, controls

    # -- risk -----------------------------------------------------------------------------------

    @property
    def risk(self) -> RiskPolicy:
        sequencer = self._gateway.sequencer
        return sequencer.risk if sequencer is not None else NO_RISK

    async def recent_risk_changes(self) -> list[RiskChange]:
        return await self._gateway.store.risk_changes(RECENT_CHANGES)

    async def set_limits(
        self, level: RiskLevel, target: str | None, limits: dict[str, object], by: str | None
    ) -> RiskPolicy:
        """Apply ``limits`` at one level (a value sets, ``None`` clears); raises ``RiskError`` if invalid."""
        async with self._lock:
            built = self._sequencer.risk.with_limits(level, target, limits)
            change = RiskChange(
                self._clock(), "limits", level.value, target, orjson.dumps(limits).decode(), by, built.fingerprint
            )
            policy = await self._put_risk(change, built)
        log.warning("risk limits: %s %s <- %s (by %s)", level.value, target or "", change.change, by or "anonymous")
        return policy

    async def set_session(self, session: TradingSession | None, by: str | None) -> RiskPolicy:
        """Put a trading session in force (``None``: remove it, orders are taken at any time)."""
        async with self._lock:
            built = self._sequencer.risk.with_session(session)
            document = orjson.dumps(session.to_document() if session is not None else None).decode()
            change = RiskChange(self._clock(), "session", None, None, document, by, built.fingerprint)
            policy = await self._put_risk(change, built)
        log.warning("trading session: %s (by %s)", document, by or "anonymous")
        return policy

    async def _put_risk(self, change: RiskChange, built: RiskPolicy) -> RiskPolicy:
        sequencer = self._sequencer
        if not sequencer.decides_risk and built.restricts_anything:
            raise RiskRefused("this gateway's sequencer decides without risk limits and trading sessions")
        document = orjson.dumps(built.to_document()).decode()
        stored = await self._gateway.store.record_risk_change(change, document)
        # the store's answer: on a shared store another process may have changed the policy this one saw
        policy = built if stored == document else RiskPolicy.from_document(orjson.loads(stored))
        await self._sequencer.use_risk(policy)
        return policy

    async def square_off_if_due(self) -> list[OrderRecord]:
        """Flatten everything if the session's square-off moment has come and this day was not squared off
        yet (a mark in the store says so, so it is once a day across restarts, and across the processes of
        a shared store, whose sequencer checks the mark under its locks); returns the orders."""
        session = self.risk.session
        if session is None:
            return []
        day = session.square_off_day(epoch_of(self._clock()))
        if day is None or day <= self._squared_off:
            return []
        async with self._lock:
            if day <= self._squared_off:
                return []
            records = await self._sequencer.square_off(day)
            self._squared_off = day
        if records is None:
            return []  # done already (before a restart, or by another process)
        log.warning(
            "square-off of %s: %d orders closed %d positions",
            day,
            len(records),
            sum(len(r.decision.applied) for r in records),
        )
        return records

    async def _square_off_loop(self) -> None:
        while True:
            await asyncio.sleep(self._square_off_every)
            try:
                await self.square_off_if_due()
            except StoreUnavailable as exc:  # tried again at the next look
                log.error("square-off not done yet: %s", exc)
            except Exception:
                log.exception("square-off failed; it is tried again")

    # -- profiles -------------------------------------------------------------------------------

    async def reload_profiles(self, by: str | None = None) -> Reload:
        """Load the profile file again and decide later orders against it; raises :class:`ProfilesRefused`."""
        async with self._lock:
            path = self._gateway.settings.profile_path
            try:
                registry: Registry = await asyncio.to_thread(load_registry, path)
            except StartupError as exc:
                log.error("profile reload refused; the profiles in force stay: %s", exc)
                raise ProfilesRefused(str(exc)) from None
            sequencer = self._sequencer
            previous = sequencer.registry.fingerprint
            if registry.fingerprint != previous:
                document = orjson.dumps(registry.to_document()).decode()
                await self._gateway.store.record_profiles(registry.fingerprint, document)
                sequencer.use_registry(registry)
                self._gateway.registry = registry
        log.warning(
            "profiles reloaded from %s by %s: %d users, %d strategies (fingerprint %s, was %s)",
            path,
            by or "SIGHUP",
            len(registry.users),
            len(registry.strategies),
            registry.fingerprint,
            previous,
        )
        return Reload(registry.fingerprint, previous, len(registry.users), len(registry.strategies))

    def install_sighup(self) -> None:
        """Reload the profiles on SIGHUP (main thread of a Unix process only; elsewhere nothing)."""
        loop = asyncio.get_running_loop()
        try:
            loop.add_signal_handler(signal.SIGHUP, self._on_sighup)
        except (RuntimeError, ValueError, AttributeError):  # RuntimeError also covers a loop without signal support
            return
        self._sighup_loop = loop

    def uninstall_sighup(self) -> None:
        if self._sighup_loop is not None:
            with contextlib.suppress(Exception):
                self._sighup_loop.remove_signal_handler(signal.SIGHUP)
            self._sighup_loop = None

    def _on_sighup(self) -> None:
        task = asyncio.get_running_loop().create_task(self._reload_quietly())
        self._reloads.add(task)
        task.add_done_callback(self._reloads.discard)

    async def _reload_quietly(self) -> None:
        try:
            await self.reload_profiles()
        except ProfilesRefused:
            pass  # logged
        except Exception:
            log.exception("profile reload on SIGHUP failed; the profiles in force stay")
