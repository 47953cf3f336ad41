"""Trading controls (SPEC section 9): halt or reduce-only, for the whole gateway, a strategy or a user.

A control holds users back from an order that would otherwise apply to them: ``HALTED`` lets no
order apply, ``REDUCE_ONLY`` lets only SELLs apply (they close positions). The state that holds for
one user under one order is the strictest of the gateway's, the order's strategy's and the user's.
:class:`Controls` is an immutable value; :meth:`Controls.fingerprint` names it in the order log so
that every stored decision can be derived again with the controls that were in force.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterator, Mapping
from enum import StrEnum
from typing import Any, NamedTuple

import orjson

from ordergate.domain.names import name_problem


class ControlState(StrEnum):
    ACTIVE = "ACTIVE"
    REDUCE_ONLY = "REDUCE_ONLY"
    HALTED = "HALTED"


class ControlLevel(StrEnum):
    GLOBAL = "global"
    STRATEGY = "strategy"
    USER = "user"


_RANK = {ControlState.ACTIVE: 0, ControlState.REDUCE_ONLY: 1, ControlState.HALTED: 2}


def strictest(a: ControlState, b: ControlState) -> ControlState:
    return a if _RANK[a] >= _RANK[b] else b


class ControlSetting(NamedTuple):
    level: ControlLevel
    target: str | None
    state: ControlState


class ControlError(ValueError):
    """A control setting that makes no sense (a target where none belongs, an invalid name)."""


class Controls:
    """The controls in force: only levels that are not ``ACTIVE`` are kept."""

    __slots__ = ("fingerprint", "gateway", "strategies", "users")

    def __init__(
        self,
        gateway: ControlState = ControlState.ACTIVE,
        strategies: Mapping[str, ControlState] | None = None,
        users: Mapping[str, ControlState] | None = None,
    ) -> None:
        self.gateway = gateway
        self.strategies = {s: v for s, v in (strategies or {}).items() if v is not ControlState.ACTIVE}
        self.users = {u: v for u, v in (users or {}).items() if v is not ControlState.ACTIVE}
        self.fingerprint = hashlib.sha256(orjson.dumps(self.to_document(), option=orjson.OPT_SORT_KEYS)).hexdigest()[
            :16
        ]

    @property
    def restricts_anything(self) -> bool:
        return self.gateway is not ControlState.ACTIVE or bool(self.strategies) or bool(self.users)

    def for_strategy(self, strategy: str) -> ControlState:
        """The strictest of the gateway's and ``strategy``'s states (before the user's own)."""
        return strictest(self.gateway, self.strategies.get(strategy, ControlState.ACTIVE))

    def state_of(self, level: ControlLevel, target: str | None) -> ControlState:
        if level is ControlLevel.GLOBAL:
            return self.gateway
        table = self.strategies if level is ControlLevel.STRATEGY else self.users
        return table.get(target or "", ControlState.ACTIVE)

    def with_setting(self, setting: ControlSetting) -> Controls:
        """These controls with one level set (``ACTIVE`` lifts it); raises :class:`ControlError`."""
        level, target, state = check_setting(setting)
        if level is ControlLevel.GLOBAL:
            return Controls(state, self.strategies, self.users)
        assert target is not None
        if level is ControlLevel.STRATEGY:
            return Controls(self.gateway, {**self.strategies, target: state}, self.users)
        return Controls(self.gateway, self.strategies, {**self.users, target: state})

    def settings(self) -> Iterator[ControlSetting]:
        """Every level that is not ``ACTIVE``: the gateway first, then strategies and users by name."""
        if self.gateway is not ControlState.ACTIVE:
            yield ControlSetting(ControlLevel.GLOBAL, None, self.gateway)
        for strategy in sorted(self.strategies):
            yield ControlSetting(ControlLevel.STRATEGY, strategy, self.strategies[strategy])
        for user in sorted(self.users):
            yield ControlSetting(ControlLevel.USER, user, self.users[user])

    def to_document(self) -> dict[str, Any]:
        return {
            "global": self.gateway.value,
            "strategies": {s: v.value for s, v in sorted(self.strategies.items())},
            "users": {u: v.value for u, v in sorted(self.users.items())},
        }

    @classmethod
    def from_document(cls, document: Any) -> Controls:
        """Rebuild controls from :meth:`to_document`; raises ``ValueError`` on anything else."""
        if not isinstance(document, dict):
            raise ValueError("controls must be an object")
        strategies = document.get("strategies", {})
        users = document.get("users", {})
        if not isinstance(strategies, dict) or not isinstance(users, dict):
            raise ValueError("controls: strategies and users must be objects")
        return cls(
            ControlState(document.get("global", "ACTIVE")),
            {str(s): ControlState(v) for s, v in strategies.items()},
            {str(u): ControlState(v) for u, v in users.items()},
        )

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Controls) and self.fingerprint == other.fingerprint

    def __hash__(self) -> int:
        return hash(self.fingerprint)

    def __repr__(self) -> str:
        return f"Controls({self.to_document()!r})"


NO_CONTROLS = Controls()

BREAKER = "BREAKER"
"""The reason of a control change the circuit breaker made (SPEC section 10)."""
FLATTEN = "FLATTEN"
"""The reason of the control a flatten set with its orders (its ``then``)."""
RISK_ACTOR = "risk"
"""Who made a change the gateway made itself (a breaker trip): the ``by`` of the change, the ``actor`` of an order."""


class ControlChange(NamedTuple):
    """One change of a trading control, as recorded: when, what, by which key, and the result.

    ``by`` is the name of the API key that made it (``None`` with auth off; :data:`RISK_ACTOR` for the
    breaker); ``fingerprint`` names the whole set of controls in force after the change. A change the
    breaker made has ``reason`` :data:`BREAKER` and ``order_id`` the order that tripped it, stored in the
    same transaction as that order.
    """

    at: str
    setting: ControlSetting
    by: str | None
    fingerprint: str
    reason: str | None = None
    order_id: int | None = None

    @classmethod
    def from_row(
        cls,
        at: str,
        level: str,
        target: str | None,
        state: str,
        by: str | None,
        fingerprint: str,
        reason: str | None = None,
        order_id: int | None = None,
    ) -> ControlChange:
        return cls(
            at, ControlSetting(ControlLevel(level), target, ControlState(state)), by, fingerprint, reason, order_id
        )


def check_setting(setting: ControlSetting) -> ControlSetting:
    """The setting if it is well formed: no target for ``global``, a valid name for the others."""
    level, target, state = setting
    if level is ControlLevel.GLOBAL:
        if target is not None:
            raise ControlError("target: must be null for level 'global' (it controls the whole gateway)")
        return setting
    if target is None:
        raise ControlError(f"target: level '{level.value}' needs the name of a {level.value}")
    problem = name_problem(target)
    if problem is not None:
        raise ControlError(f"target: {level.value} name {problem}")
    return ControlSetting(level, target, state)
