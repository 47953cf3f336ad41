"""``GET /v1/stats`` (the dashboard's counters and throughput) and ``GET /metrics`` (Prometheus).

Both read the gateway's :class:`~ordergate.service.telemetry.Telemetry`, which counts committed
orders only, over the whole log. ``/metrics`` adds the event-stream clients and the standard
process metrics of prometheus-client; it is built per application, never in the global registry,
so several gateways in one process (tests) do not mix.

Both are the whole gateway's figures (every user's orders, rejections and open positions), so a
viewer key bound to one user gets 403 on both: what such a key may see is that user's own orders,
positions and trades (:mod:`ordergate.api.routes.queries`), and nothing that counts other users.
Operators (an unbound viewer, an admin, or anyone with auth off) see them.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from fastapi import APIRouter, FastAPI, Request
from fastapi.responses import Response
from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, generate_latest
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric
from prometheus_client.gc_collector import GCCollector
from prometheus_client.platform_collector import PlatformCollector
from prometheus_client.process_collector import ProcessCollector
from pydantic import BaseModel, Field

from ordergate.api.access import principal_of, viewed_user
from ordergate.api.deps import GatewayDep
from ordergate.api.http import ClientError, json_response
from ordergate.api.schemas import Problem
from ordergate.domain.registry import Registry
from ordergate.errors import StoreUnavailable
from ordergate.service.gateway import Gateway

router = APIRouter()


class Throughput(BaseModel):
    until: int = Field(description="Unix second of the last entry (now).")
    seconds: int = Field(description="How many seconds the lists cover.")
    accepted: list[int] = Field(description="Accepted orders per second of decision, oldest first.")
    rejected: list[int] = Field(description="Rejected orders per second of decision, oldest first.")


class StatsOut(BaseModel):
    orders: int
    accepted: int
    rejected: int
    rejected_by_reason: dict[str, int]
    by_side: dict[str, int]
    open_positions: int
    last_order_id: int = Field(
        description="The highest order id counted. On one process (SQLite) the counters include every order up to "
        "this id and no other; on PostgreSQL ids do not follow commit order: use `position`."
    )
    users: int
    strategies: int
    instruments: int = Field(description="Distinct instruments traded under any strategy.")
    scope: str
    started_at: str
    event_clients: int
    position: str = Field(
        description="The event-stream token the counters are complete up to: GET /v1/events?after=<this> sends "
        "exactly the orders they do not count yet."
    )
    throughput: Throughput


_instrument_counts: dict[str, int] = {}


def _instruments(registry: Registry) -> int:
    """Distinct instruments in the profiles, computed once per profile fingerprint."""
    count = _instrument_counts.get(registry.fingerprint)
    if count is None:
        distinct: set[str] = set()
        for strategies in registry.profiles().values():
            for instruments in strategies.values():
                distinct |= instruments
        count = len(distinct)
        _instrument_counts.clear()
        _instrument_counts[registry.fingerprint] = count
    return count


def _whole_gateway(request: Request) -> None:
    """403 for a viewer bound to one user: these figures count every user's orders and positions."""
    principal = principal_of(request)
    only = viewed_user(request)
    if principal is not None and only is not None:
        raise ClientError(
            403,
            f"this key ({principal.name}) may see {only}'s data only, and {request.url.path} counts every user's "
            "orders and positions; use an unbound viewer or admin key",
        )


BOUND_VIEWER_REFUSED: dict[int | str, dict[str, Any]] = {
    403: {"model": Problem, "description": "A viewer key bound to one user (figures of every user)."}
}


async def stats_answer(gateway: Gateway) -> dict[str, Any]:
    telemetry, events, sequencer = gateway.telemetry, gateway.events, gateway.sequencer
    if telemetry is None or events is None or sequencer is None:
        raise StoreUnavailable("the gateway is still starting")
    await telemetry.wait_for_history()
    registry = sequencer.registry
    return {
        **telemetry.totals(),
        "users": len(registry.users),
        "strategies": len(registry.strategies),
        "instruments": _instruments(registry),
        "scope": gateway.settings.scope.value,
        "started_at": telemetry.started_at,
        "event_clients": events.clients,
        "position": events.position.token(),
        "throughput": telemetry.throughput(),
    }


@router.get(
    "/v1/stats",
    tags=["stats"],
    response_model=StatsOut,
    summary="Counters of the committed order log",
    responses={503: {"description": "The store could not be read; see Retry-After."}, **BOUND_VIEWER_REFUSED},
)
async def get_stats(gateway: GatewayDep, request: Request) -> Response:
    _whole_gateway(request)
    return json_response(await stats_answer(gateway))


@router.get(
    "/metrics",
    tags=["stats"],
    summary="Prometheus metrics",
    response_class=Response,
    responses={
        200: {"content": {CONTENT_TYPE_LATEST: {}}, "description": "Prometheus text format."},
        **BOUND_VIEWER_REFUSED,
    },
)
async def get_metrics(request: Request) -> Response:
    _whole_gateway(request)
    registry: CollectorRegistry = request.app.state.metrics_registry
    return Response(generate_latest(registry), media_type=CONTENT_TYPE_LATEST)


class _GatewayCollector:
    """The running gateway's telemetry and event-stream figures, read at scrape time."""

    def __init__(self, app: FastAPI) -> None:
        self._app = app

    def collect(self) -> Iterable[Metric]:
        gateway: Gateway | None = getattr(self._app.state, "gateway", None)
        if gateway is None or gateway.telemetry is None or gateway.events is None:
            return
        yield from gateway.telemetry.collect()
        yield GaugeMetricFamily(
            "ordergate_event_clients", "Clients connected to GET /v1/events.", value=gateway.events.clients
        )
        yield CounterMetricFamily(
            "ordergate_event_clients_dropped",
            "Event-stream clients dropped (sent a resync) for falling too far behind.",
            value=gateway.events.dropped_total,
        )


def install_metrics(app: FastAPI) -> None:
    """Give ``app`` its own Prometheus registry: the gateway's figures and the process metrics."""
    registry = CollectorRegistry()
    registry.register(_GatewayCollector(app))
    ProcessCollector(registry=registry)
    PlatformCollector(registry=registry)
    GCCollector(registry=registry)
    app.state.metrics_registry = registry
