"""``ordergate risk list | set | apply``: the risk policy of a running gateway, as a table or a file.

A policy file is the answer of ``GET /v1/risk/limits`` (``ordergate risk list --json``) trimmed to what
it says: ``{"global": {...}, "strategies": {NAME: {...}}, "users": {NAME: {...}}, "session": {...} | null}``.
:func:`plan` turns it into the API calls that make the gateway's policy exactly the file's: limits the
file sets are set, limits in force that the file leaves out are cleared, a session the file leaves out
(or gives as ``null``) is removed. Keys ``fingerprint`` and ``changes`` are ignored, so a saved answer
applies as it is. The file is checked whole before anything is sent.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import orjson
from rich.table import Table

from ordergate.domain.risk import RiskError, RiskLevel, RiskPolicy

Call = tuple[str, str, Any]
"""``(method, path, body)`` of one API call."""

_LEVELS = (("global", None), ("strategy", "strategies"), ("user", "users"))


def parse_assignments(assignments: list[str]) -> dict[str, object]:
    """``NAME=VALUE`` pairs of ``ordergate risk set``: VALUE is an integer, ``null``, ``N/W`` for a breaker,
    or JSON; raises ``ValueError`` naming the pair."""
    limits: dict[str, object] = {}
    for assignment in assignments:
        name, sep, raw = assignment.partition("=")
        if not sep or not name:
            raise ValueError(f"{assignment!r}: write NAME=VALUE, e.g. max_open_positions=3 or cooldown_seconds=null")
        if name == "breaker" and "/" in raw:
            rejects, _, window = raw.partition("/")
            if not (rejects.isdigit() and window.isdigit()):
                raise ValueError(f"{assignment!r}: a breaker is MAX_REJECTS/WINDOW_SECONDS, e.g. breaker=5/60")
            limits[name] = {"max_rejects": int(rejects), "window_seconds": int(window)}
            continue
        try:
            limits[name] = orjson.loads(raw)
        except orjson.JSONDecodeError:
            hint = " (a breaker is MAX_REJECTS/WINDOW_SECONDS, e.g. breaker=5/60)" if name == "breaker" else ""
            raise ValueError(f"{assignment!r}: {raw!r} is not an integer, null or JSON{hint}") from None
    return limits


def load_policy(text: bytes, source: str) -> RiskPolicy:
    """The policy a file describes; raises ``ValueError`` with one line naming the file and the problem."""
    try:
        document = orjson.loads(text)
    except orjson.JSONDecodeError as exc:
        raise ValueError(f"{source}: not JSON ({exc})") from None
    if not isinstance(document, dict):
        raise ValueError(f"{source}: must be a JSON object with global, strategies, users and session")
    unknown = set(document) - {"global", "strategies", "users", "session", "fingerprint", "changes"}
    if unknown:
        raise ValueError(f"{source}: {sorted(unknown)[0]}: not a part of a risk policy")
    try:
        policy = RiskPolicy.from_document({k: v for k, v in document.items() if k not in ("fingerprint", "changes")})
        # each level as the API will check it: targets are names, per-order limits only where they belong
        RiskPolicy().with_limits(RiskLevel.GLOBAL, None, policy.gateway.to_document())
        for level, table in ((RiskLevel.STRATEGY, policy.strategies), (RiskLevel.USER, policy.users)):
            for target, limits in table.items():
                RiskPolicy().with_limits(level, target, limits.to_document())
    except RiskError as exc:
        raise ValueError(f"{source}: {exc}") from None
    return policy


def plan(current: Mapping[str, Any], wanted: RiskPolicy) -> list[Call]:
    """The calls that turn the policy ``current`` (an API answer) into ``wanted``, in a stable order."""
    calls: list[Call] = []
    goal = wanted.to_document()
    for level, key in _LEVELS:
        have_by_target: dict[str | None, dict[str, Any]] = (
            {None: current.get("global") or {}} if key is None else dict(current.get(key) or {})
        )
        want_by_target: dict[str | None, dict[str, Any]] = {None: goal["global"]} if key is None else goal[key]
        for target in sorted(set(have_by_target) | set(want_by_target), key=lambda t: t or ""):
            have, want = have_by_target.get(target, {}), want_by_target.get(target, {})
            change = {name: value for name, value in want.items() if have.get(name) != value}
            change.update({name: None for name in have if name not in want})
            if change:
                calls.append(("PUT", "/v1/risk/limits", {"level": level, "target": target, "limits": change}))
    session = goal["session"]
    if session != current.get("session"):
        calls.append(
            ("PUT", "/v1/risk/session", session) if session is not None else ("DELETE", "/v1/risk/session", None)
        )
    return calls


def render_risk(answer: Mapping[str, Any]) -> Table:
    """The answer of ``GET``/``PUT /v1/risk/limits``: every limit in force, then the session."""
    table = Table(title="risk limits")
    table.add_column("level")
    table.add_column("target", overflow="fold")
    table.add_column("limit")
    table.add_column("value", justify="right")
    rows = [("global", "-", answer.get("global") or {})]
    for level, key in (("strategy", "strategies"), ("user", "users")):
        rows.extend((level, target, limits) for target, limits in (answer.get(key) or {}).items())
    for level, target, limits in rows:
        for name, value in limits.items():
            shown = f"{value['max_rejects']} in {value['window_seconds']} s" if name == "breaker" else str(value)
            table.add_row(level, target, name, shown)
    session = answer.get("session")
    if session is None:
        where = "no trading session: orders are taken at any time"
    else:
        square_off = f", square-off {session['square_off']}" if session.get("square_off") else ""
        where = (
            f"session {session['open']}-{session['close']} {session['timezone']} "
            f"{','.join(session['days'])}{square_off}"
        )
    changes = answer.get("changes") or []
    last = ""
    if changes:
        change = changes[-1]
        by = f" by {change['by']}" if change.get("by") else ""
        last = f"; last change {change['at'][:19]} ({change['kind']}){by}"
    table.caption = f"{where}{last}"
    return table
