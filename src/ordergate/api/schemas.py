"""Request and response schemas of the HTTP API, the single source of its OpenAPI document.

Requests are validated with these pydantic models straight from the raw body bytes (one pass in
pydantic-core), so the documented schema and the enforced one cannot drift apart. Responses are
documented here and built by :mod:`ordergate.api.answers`.
"""

from __future__ import annotations

import re
from typing import Annotated, Any, Literal

from pydantic import (
    AfterValidator,
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    StrictStr,
    WithJsonSchema,
)

from ordergate.domain.controls import ControlLevel, ControlState
from ordergate.domain.model import Action, Door, Origin, Reason, Side, Status
from ordergate.domain.names import MAX_NAME_LENGTH, name_pattern, name_problem, side_of
from ordergate.domain.risk import RiskLevel, parse_signal_time

_CLIENT_ORDER_ID = re.compile(r"[\x21-\x7e]{1,128}")
CLIENT_ORDER_ID_PATTERN = r"^[\x21-\x7e]{1,128}$"
NAME_DESCRIPTION = (
    "1 to 64 characters, matched exactly: no control characters, no whitespace at either end, no invisible "
    "format characters (zero-width, bidirectional controls), line or paragraph separators."
)


def valid_name(value: str) -> str:
    """A pydantic validator: ``value`` if it is a name, else a ``ValueError`` saying what is wrong."""
    problem = name_problem(value)
    if problem is not None:
        raise ValueError(problem)
    return value


def _document_name(schema: dict[str, Any]) -> None:
    schema["pattern"] = name_pattern()  # computed when the API document is built, not at import


def _ascii_side(value: object) -> object:
    """``buy``, ``Sell`` -> the side; anything else (a long-s ``sell`` included) is left for the enum to refuse."""
    if isinstance(value, str):
        side = side_of(value)
        return side if side is not None else value
    return value


def client_order_id_problem(value: str) -> str | None:
    if _CLIENT_ORDER_ID.fullmatch(value) is None:
        return "must be 1 to 128 printable ASCII characters without spaces"
    return None


def _valid_client_order_id(value: str) -> str:
    problem = client_order_id_problem(value)
    if problem is not None:
        raise ValueError(problem)
    return value


Name = Annotated[
    StrictStr,
    Field(
        min_length=1,
        max_length=MAX_NAME_LENGTH,
        examples=["STRATEGY_A"],
        description=NAME_DESCRIPTION,
        json_schema_extra=_document_name,  # documented; valid_name enforces it with a clear message
    ),
    AfterValidator(valid_name),
]
SideIn = Annotated[Side, BeforeValidator(_ascii_side), Field(description="BUY or SELL, in any ASCII letter case.")]
ClientOrderId = Annotated[
    StrictStr,
    Field(
        min_length=1,
        max_length=128,
        description="Your id for this order: resending it returns the stored decision.",
        json_schema_extra={"pattern": CLIENT_ORDER_ID_PATTERN},
    ),
    AfterValidator(_valid_client_order_id),
]


class LegacyOrderIn(BaseModel):
    """The original kit's order body; extra fields are ignored as the original handler did."""

    model_config = ConfigDict(extra="ignore")

    STRATEGY: Name
    INSTRUMENT: Name
    POSITION: SideIn


class LegacyOrderOut(BaseModel):
    RESPONSE: Status
    ORDER_ID: int
    REASON: Reason | None
    USERS: list[str] = Field(description="The users the order was applied for.")


class LegacyInvalidOut(BaseModel):
    RESPONSE: Literal["REJECTED"]
    REASON: Literal["INVALID_ORDER"]
    DETAIL: str


def _signal_time(value: object) -> str | None:
    """``signal_time`` in the log's form (UTC, milliseconds), from ISO 8601 with an offset or epoch ms."""
    if value is None:
        return None
    try:
        return parse_signal_time(value)
    except ValueError as exc:
        raise ValueError(str(exc).removeprefix("signal_time: ")) from None


class OrderIn(BaseModel):
    model_config = ConfigDict(extra="forbid")

    strategy: Name
    instrument: Name
    side: SideIn
    client_order_id: ClientOrderId | None = None
    signal_time: Annotated[
        str | None,
        BeforeValidator(_signal_time),
        WithJsonSchema(
            {
                "anyOf": [
                    {"type": "string", "format": "date-time"},
                    {"type": "integer", "minimum": 0, "maximum": 253_402_300_799_999},
                    {"type": "null"},
                ]
            }
        ),
    ] = Field(
        default=None,
        description="When the strategy's signal fired: ISO 8601 with a UTC offset, or epoch milliseconds "
        "(an integer). Checked against max_signal_age_seconds (SPEC section 10).",
    )


class BatchIn(BaseModel):
    model_config = ConfigDict(extra="forbid")

    orders: list[OrderIn] = Field(min_length=1, max_length=1000)


class AppliedOut(BaseModel):
    user: str
    action: Action
    position_strategy: str = Field(description="The strategy that opened the position.")


class RejectedForOut(BaseModel):
    user: str
    reason: Reason


class OrderOut(BaseModel):
    order_id: int
    status: Status
    reason: Reason | None
    strategy: str
    instrument: str
    side: Side
    client_order_id: str | None
    received_at: str
    applied: list[AppliedOut]
    rejected_for: list[RejectedForOut]
    replayed: bool = False
    origin: Origin = Field(default=Origin.STRATEGY, description="`strategy`, `flatten` or `square_off`.")
    actor: str | None = Field(
        default=None, description="The key name that sent it, `anonymous` with auth off, `risk` (null: stored before)."
    )
    risk_fingerprint: str | None = Field(default=None, description="The risk policy it was decided under.")
    signal_time: str | None = None
    door: Door | None = Field(
        default=None,
        description="The entrypoint it came through: `api`, `legacy` (/create_order), `hook` (a webhook), `fix`, "
        "`gateway` (the square-off); null: stored before doors were recorded.",
    )


class BatchError(BaseModel):
    status: int = Field(description="409: client_order_id reused for another order; 503: not stored, retry.")
    detail: str


class BatchErrorOut(BaseModel):
    error: BatchError


class BatchOut(BaseModel):
    results: list[OrderOut | BatchErrorOut] = Field(description="One result per order, in the order sent.")


class CheckOut(BaseModel):
    status: Status
    reason: Reason | None
    strategy: str
    instrument: str
    side: Side
    applied: list[AppliedOut]
    rejected_for: list[RejectedForOut]


class OrderPage(BaseModel):
    items: list[OrderOut]
    next: int | None


class PositionOut(BaseModel):
    user: str
    strategy: str = Field(description="The strategy that opened the position.")
    instrument: str
    opened_order_id: int
    opened_at: str


class PositionPage(BaseModel):
    items: list[PositionOut]
    next: int | None


class TradeOut(BaseModel):
    trade_id: int
    user: str
    strategy: str = Field(description="The strategy that opened the position.")
    instrument: str
    opened_order_id: int
    opened_at: str
    closed_order_id: int
    closed_at: str
    closing_strategy: str


class TradePage(BaseModel):
    items: list[TradeOut]
    next: int | None


class Problem(BaseModel):
    detail: str


class FieldProblem(BaseModel):
    loc: list[str | int]
    msg: str
    type: str


class InvalidOut(BaseModel):
    """A request that cannot be used (422): one line, or one item per wrong field with a summary."""

    detail: str | list[FieldProblem]
    message: str | None = None


class UserOut(BaseModel):
    user: str
    strategies: dict[str, list[str]]


class StrategyOut(BaseModel):
    strategy: str
    subscribers: list[str]
    instruments: list[str] = Field(description="Union of the instruments its subscribers trade under it.")


NAME_CURSOR = "The cursor of the next page (its `after`): the last name of this page; null on the last page."


class UserPage(BaseModel):
    """Users in code point order of their names."""

    items: list[UserOut]
    next: str | None = Field(description=NAME_CURSOR)


class StrategyPage(BaseModel):
    """Strategies in code point order of their names."""

    items: list[StrategyOut]
    next: str | None = Field(description=NAME_CURSOR)


class ControlIn(BaseModel):
    """One trading control: ``target`` is null for ``global``, a strategy or user name otherwise."""

    model_config = ConfigDict(extra="forbid")

    level: ControlLevel
    target: Name | None = None
    state: ControlState


class RiskLimitsIn(BaseModel):
    """Limits at one level: a field given sets that limit, ``null`` clears it, a field left out keeps it."""

    model_config = ConfigDict(extra="forbid")

    level: RiskLevel
    target: Name | None = None
    limits: dict[str, Any] = Field(
        description="max_open_positions, max_opens_per_day, max_orders_per_minute, cooldown_seconds, "
        'max_signal_age_seconds (integers) and breaker ({"max_rejects": N, "window_seconds": W}).'
    )


_COUNT = Annotated[int, Field(ge=0, le=1_000_000)]
_SECONDS = Annotated[int, Field(ge=0, le=86_400)]


class BreakerIn(BaseModel):
    model_config = ConfigDict(extra="forbid")

    max_rejects: Annotated[int, Field(ge=1, le=1_000_000)]
    window_seconds: Annotated[int, Field(ge=1, le=86_400)]


class UserLimits(BaseModel):
    """The limits a user can have (each one: a value sets it, null clears it, left out keeps it)."""

    model_config = ConfigDict(extra="forbid")

    max_open_positions: _COUNT | None = None
    max_opens_per_day: _COUNT | None = None
    cooldown_seconds: _SECONDS | None = None


class OrderLimits(UserLimits):
    """The limits of the gateway and of a strategy: a user's, and those on whole orders."""

    max_orders_per_minute: _COUNT | None = None
    max_signal_age_seconds: _SECONDS | None = None
    breaker: BreakerIn | None = None


class GlobalLimitsIn(BaseModel):
    model_config = ConfigDict(extra="forbid")

    level: Literal["global"]
    target: None = None
    limits: OrderLimits


class StrategyLimitsIn(BaseModel):
    model_config = ConfigDict(extra="forbid")

    level: Literal["strategy"]
    target: Name
    limits: OrderLimits


class UserLimitsIn(BaseModel):
    model_config = ConfigDict(extra="forbid")

    level: Literal["user"]
    target: Name
    limits: UserLimits


class FlattenEverythingIn(BaseModel):
    model_config = ConfigDict(extra="forbid")

    level: Literal["global"]
    target: None = None
    then: ControlState | None = None


class FlattenOneIn(BaseModel):
    model_config = ConfigDict(extra="forbid")

    level: Literal["strategy", "user"]
    target: Name
    then: ControlState | None = None


LIMITS_BODY = {
    "oneOf": [{"$ref": f"#/components/schemas/{m}"} for m in ("GlobalLimitsIn", "StrategyLimitsIn", "UserLimitsIn")]
}
"""``PUT /v1/risk/limits`` as documented: which limits each level takes (the route reads the body as
:class:`RiskLimitsIn` and names any problem in the words of the domain)."""
FLATTEN_BODY = {"oneOf": [{"$ref": f"#/components/schemas/{m}"} for m in ("FlattenEverythingIn", "FlattenOneIn")]}
"""``POST /v1/controls/flatten`` as documented (the route reads it as :class:`FlattenIn`)."""


class RiskChangeOut(BaseModel):
    at: str
    kind: str = Field(description="`limits` or `session`.")
    level: RiskLevel | None
    target: str | None
    change: Any = Field(description="The limits given (null clears one), or the session (null: removed).")
    by: str | None


class RiskOut(BaseModel):
    """Every limit in force by level and target, the trading session, and the latest changes."""

    model_config = ConfigDict(populate_by_name=True)

    global_: dict[str, Any] = Field(alias="global")
    strategies: dict[str, dict[str, Any]]
    users: dict[str, dict[str, Any]]
    session: dict[str, Any] | None
    fingerprint: str = Field(description="Recorded with every order decided under this policy.")
    changes: list[RiskChangeOut] = Field(description="The latest changes, oldest first.")


class FlattenIn(BaseModel):
    """A flatten: close every open position in the scope; ``then`` sets that control in the same transaction."""

    model_config = ConfigDict(extra="forbid")

    level: ControlLevel
    target: Name | None = None
    then: ControlState | None = Field(
        default=None, description="HALTED (a kill switch) or REDUCE_ONLY, set with the orders; null: none."
    )


class ControlChangeOut(BaseModel):
    at: str
    level: ControlLevel
    target: str | None
    state: ControlState
    by: str | None = Field(
        description="The name of the API key that made the change (null with auth off; `risk`: the breaker)."
    )
    reason: str | None = Field(default=None, description="`BREAKER` for a halt by the circuit breaker.")
    order_id: int | None = Field(default=None, description="The order whose rejection tripped the breaker.")


class ControlsOut(BaseModel):
    """The controls in force: the gateway's state, and every strategy and user that is not ACTIVE."""

    model_config = ConfigDict(populate_by_name=True)

    global_: ControlState = Field(alias="global")
    strategies: dict[str, ControlState]
    users: dict[str, ControlState]
    fingerprint: str = Field(description="Recorded with every order decided under these controls.")
    changes: list[ControlChangeOut] = Field(description="The latest changes, oldest first.")


class FlattenOut(BaseModel):
    orders: list[OrderOut] = Field(description="The orders of origin `flatten`, one per strategy and instrument.")
    controls: ControlsOut


class ReloadOut(BaseModel):
    fingerprint: str = Field(description="The fingerprint of the profiles now in force.")
    previous_fingerprint: str
    changed: bool
    users: int
    strategies: int
