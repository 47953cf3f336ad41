"""The Python client of ordergate (SPEC section 11): ``from ordergate.client import Client, AsyncClient``.

:class:`Client` (blocking) and :class:`AsyncClient` (asyncio) speak the gateway's v1 API over httpx
and return typed results (:mod:`~ordergate.client.models`). Orders get a client order id when none is
given, kept across retries, so the retries on 503, 429 and lost connections
(:mod:`~ordergate.client.retry`) can never decide an order twice; the event stream resumes with its
token after a lost connection or a restart (:mod:`~ordergate.client.stream`); the listings have
iterators that walk every page. Failures are the exceptions of :mod:`~ordergate.client.errors`,
whose docstring draws their hierarchy. The modules: ``transport`` (sending with retries), ``retry``
(the policy and its schedule), ``calls`` (the requests), ``models``, ``stream``, ``sync`` and ``aio``.
"""

from ordergate.client.aio import AsyncClient
from ordergate.client.errors import (
    AnswerLost,
    ApiError,
    Conflict,
    Forbidden,
    GatewayUnreachable,
    InvalidRequest,
    NotFound,
    OrdergateError,
    RequestRefused,
    StreamEnded,
    StreamResync,
    StreamRevoked,
    Unauthorized,
    Unavailable,
)
from ordergate.client.models import (
    Applied,
    CheckResult,
    ControlChange,
    Controls,
    FlattenResult,
    NewOrder,
    OrderError,
    OrderEvent,
    OrderResult,
    Page,
    Position,
    RejectedFor,
    RiskChange,
    RiskLimits,
    Strategy,
    Trade,
    User,
    WhoAmI,
)
from ordergate.client.retry import NO_RETRIES, RetryPolicy
from ordergate.client.stream import AsyncEventStream, EventStream
from ordergate.client.sync import Client

__all__ = [
    "NO_RETRIES",
    "AnswerLost",
    "ApiError",
    "Applied",
    "AsyncClient",
    "AsyncEventStream",
    "CheckResult",
    "Client",
    "Conflict",
    "ControlChange",
    "Controls",
    "EventStream",
    "FlattenResult",
    "Forbidden",
    "GatewayUnreachable",
    "InvalidRequest",
    "NewOrder",
    "NotFound",
    "OrderError",
    "OrderEvent",
    "OrderResult",
    "OrdergateError",
    "Page",
    "Position",
    "RejectedFor",
    "RequestRefused",
    "RetryPolicy",
    "RiskChange",
    "RiskLimits",
    "Strategy",
    "StreamEnded",
    "StreamResync",
    "StreamRevoked",
    "Trade",
    "Unauthorized",
    "Unavailable",
    "User",
    "WhoAmI",
]
