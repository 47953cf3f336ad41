"""Dependencies of the routes: the running gateway's sequencer and store, as ``Annotated`` aliases."""

from __future__ import annotations

from typing import Annotated

from fastapi import Depends, Request

from ordergate.errors import StoreUnavailable
from ordergate.service.gateway import Gateway
from ordergate.service.sequencing import Sequencing
from ordergate.store.base import Store


def gateway(request: Request) -> Gateway:
    gw: Gateway = request.app.state.gateway
    return gw


def sequencer(request: Request) -> Sequencing:
    seq = gateway(request).sequencer
    if seq is None:
        raise StoreUnavailable("the gateway is still starting")
    return seq


def store(request: Request) -> Store:
    return gateway(request).store


GatewayDep = Annotated[Gateway, Depends(gateway)]
SequencerDep = Annotated[Sequencing, Depends(sequencer)]
StoreDep = Annotated[Store, Depends(store)]
