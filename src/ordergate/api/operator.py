"""What operators use besides order entry: the event stream, stats and metrics, the dashboard, the docs.

:func:`install_operator_routes` adds them to the application built by
:func:`ordergate.api.app.create_app` (which leaves FastAPI's CDN-based ``/docs`` and ``/redoc`` out).
"""

from __future__ import annotations

from fastapi import FastAPI

from ordergate.api.routes import events, stats, web


def install_operator_routes(app: FastAPI) -> None:
    app.include_router(events.router)
    app.include_router(stats.router)
    stats.install_metrics(app)
    web.install_web(app)
