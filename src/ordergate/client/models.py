"""Typed results of the client: the v1 answers of the gateway, as frozen pydantic models.

Each model mirrors one response schema of the gateway's OpenAPI document (named in its docstring;
``tests/unit/test_client_models.py`` holds the field names to that document, so the two cannot drift
apart). Fields the server adds later are kept (``extra="allow"``) rather than refused, so an older
client keeps working against a newer gateway, and :meth:`~pydantic.BaseModel.model_dump` with
``mode="json", by_alias=True`` gives back the server's JSON. Reasons and origins are plain strings for
the same reason; status, side and action are the domain's enums (``StrEnum``: they compare equal to
their string values).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Generic, TypeVar

from pydantic import BaseModel, ConfigDict, Field

from ordergate.domain.model import Action, Side, Status

ItemT = TypeVar("ItemT")
CursorT = TypeVar("CursorT", int, str)


class Answer(BaseModel):
    model_config = ConfigDict(frozen=True, extra="allow", populate_by_name=True)


class Applied(Answer):
    """``AppliedOut``: a position the order opened or closed for one user."""

    user: str
    action: Action
    position_strategy: str


class RejectedFor(Answer):
    """``RejectedForOut``: a subscriber the order was not applied for, and why."""

    user: str
    reason: str


class OrderResult(Answer):
    """``OrderOut``: the decision on one order, as placing it, listing it or streaming it answers.

    ``replayed`` is true when the client order id had been decided before: this is the stored
    decision, and nothing changed.
    """

    order_id: int
    status: Status
    reason: str | None
    strategy: str
    instrument: str
    side: Side
    client_order_id: str | None
    received_at: str
    applied: list[Applied]
    rejected_for: list[RejectedFor]
    replayed: bool = False
    origin: str = "strategy"
    actor: str | None = None
    risk_fingerprint: str | None = None
    signal_time: str | None = None

    @property
    def accepted(self) -> bool:
        return self.status is Status.ACCEPTED


class CheckResult(Answer):
    """``CheckOut``: the decision an order would get now (nothing was stored)."""

    status: Status
    reason: str | None
    strategy: str
    instrument: str
    side: Side
    applied: list[Applied]
    rejected_for: list[RejectedFor]

    @property
    def accepted(self) -> bool:
        return self.status is Status.ACCEPTED


@dataclass(frozen=True, slots=True)
class OrderError:
    """An order of a batch that got no decision (``BatchError``): ``status`` 409 (its client order id was
    used for a different order) or 503 (not stored; the client retried it until the policy ran out)."""

    status: int
    detail: str
    client_order_id: str


@dataclass(frozen=True, slots=True)
class NewOrder:
    """One order for :meth:`~ordergate.client.Client.place_many`; ``client_order_id`` is generated when
    left out. ``signal_time`` is ISO 8601 with a UTC offset, or epoch milliseconds."""

    strategy: str
    instrument: str
    side: Side | str
    client_order_id: str | None = None
    signal_time: str | int | None = None


class Page(Answer, Generic[ItemT, CursorT]):
    """``OrderPage``, ``PositionPage``, ...: one page of a listing; ``next`` is the ``after`` of the
    following page, and only ``None`` ends the listing (a page may be short, even empty, with more to come)."""

    items: list[ItemT]
    next: CursorT | None


class Position(Answer):
    """``PositionOut``: an open position; ``strategy`` is the one that opened it."""

    user: str
    strategy: str
    instrument: str
    opened_order_id: int
    opened_at: str


class Trade(Answer):
    """``TradeOut``: a closed round trip."""

    trade_id: int
    user: str
    strategy: str
    instrument: str
    opened_order_id: int
    opened_at: str
    closed_order_id: int
    closed_at: str
    closing_strategy: str


class User(Answer):
    """``UserOut``: a user and the instruments it trades under each strategy it subscribes to."""

    user: str
    strategies: dict[str, list[str]]


class Strategy(Answer):
    """``StrategyOut``: a strategy, its subscribers and the union of their instruments."""

    strategy: str
    subscribers: list[str]
    instruments: list[str]


class ControlChange(Answer):
    """``ControlChangeOut``: one change of a trading control."""

    at: str
    level: str
    target: str | None
    state: str
    by: str | None
    reason: str | None = None
    order_id: int | None = None


class Controls(Answer):
    """``ControlsOut``: the gateway's state (``global_``, ``"global"`` in JSON) and every strategy and
    user that is not ACTIVE."""

    global_: str = Field(alias="global")
    strategies: dict[str, str]
    users: dict[str, str]
    fingerprint: str
    changes: list[ControlChange]


class FlattenResult(Answer):
    """``FlattenOut``: the orders of origin ``flatten`` (one per strategy and instrument) and the controls."""

    orders: list[OrderResult]
    controls: Controls


class RiskChange(Answer):
    """``RiskChangeOut``: one change of the risk policy."""

    at: str
    kind: str
    level: str | None
    target: str | None
    change: Any
    by: str | None


class RiskLimits(Answer):
    """``RiskOut``: every limit in force by level and target, the trading session, the latest changes."""

    global_: dict[str, Any] = Field(alias="global")
    strategies: dict[str, dict[str, Any]]
    users: dict[str, dict[str, Any]]
    session: dict[str, Any] | None
    fingerprint: str
    changes: list[RiskChange]


class WhoAmI(Answer):
    """``GET /v1/whoami``: the key the client uses (``auth`` false: the gateway runs without keys)."""

    auth: bool
    name: str | None
    role: str | None
    strategies: list[str] | None
    user: str | None


@dataclass(frozen=True, slots=True)
class OrderEvent:
    """One committed order of the event stream; ``token`` resumes the stream right after it."""

    token: str
    order: OrderResult
