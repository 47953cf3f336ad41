"""``GET /v1/stats`` (the dashboard's counters and throughput) and ``GET /metrics`` (Prometheus).

Both read the gateway's :class:`~ordergate.service.telemetry.Telemetry`, which counts committed
orders only, over the whole log. ``/metrics`` adds the event-stream clients and the standard
process metrics of prometheus-client; it is built per application, never in the global registry,
so several gateways in one process (tests) do not mix.
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

from ordergate.api.deps import GatewayDep
from ordergate.api.http import json_response
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
    last_order_id: int = Field(description="The counters include every order up to this id, and no other.")
    users: int
    strategies: int
    instruments: int = Field(description="Distinct instruments traded under any strategy.")
    scope: str
    started_at: str
    event_clients: int
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
        "throughput": telemetry.throughput(),
    }


@router.get(
    "/v1/stats",
    tags=["stats"],
    response_model=StatsOut,
    summary="Counters of the committed order log",
    responses={503: {"description": "The store could not be read; see Retry-After."}},
)
async def get_stats(gateway: GatewayDep) -> Response:
    return json_response(await stats_answer(gateway))


@router.get(
    "/metrics",
    tags=["stats"],
    summary="Prometheus metrics",
    response_class=Response,
    responses={200: {"content": {CONTENT_TYPE_LATEST: {}}, "description": "Prometheus text format."}},
)
async def get_metrics(request: Request) -> Response:
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
