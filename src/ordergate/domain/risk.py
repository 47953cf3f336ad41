"""Pre-trade risk (SPEC section 10): limits, the trading session, and the state they are checked against.

(work in progress: the rest of this module lands with the sequencer integration)
"""

from __future__ import annotations

from typing import NamedTuple


class RiskChange(NamedTuple):
    """One change of the risk policy, as recorded: when, what, by which key, and the policy it put in force.

    ``kind`` is ``limits`` (``level``/``target`` name where, ``change`` is the JSON object of the limits
    given: a value sets, ``null`` clears) or ``session`` (``level``/``target`` are ``None``, ``change`` is
    the session's JSON, or ``null`` when the session was removed).
    """

    at: str
    kind: str
    level: str | None
    target: str | None
    change: str
    by: str | None
    fingerprint: str
    """The fingerprint of the whole risk policy in force after the change."""
