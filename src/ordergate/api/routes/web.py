"""The pages people open: the dashboard at ``/`` and the API documentation at ``/docs``.

Everything is served by this process, so both work without internet. The dashboard is plain HTML,
CSS and JavaScript modules shipped in the package (``ordergate/web``, no build step); its page sets
a Content-Security-Policy that forbids loading anything from another origin. ``/docs`` is Swagger UI
from the assets the ``fastapi-offline`` package ships, instead of a CDN. (There is no ``/redoc``:
the ReDoc bundle fetches its logo from the internet.)
"""

from __future__ import annotations

from importlib import resources
from pathlib import Path

from fastapi import APIRouter, FastAPI, Request
from fastapi.openapi.docs import get_swagger_ui_html, get_swagger_ui_oauth2_redirect_html
from fastapi.responses import HTMLResponse, Response
from fastapi.staticfiles import StaticFiles

WEB_DIR = Path(str(resources.files("ordergate") / "web"))
DOCS_ASSETS_DIR = Path(str(resources.files("fastapi_offline") / "static"))
UI_PATH = "/ui"
DOCS_ASSETS_PATH = "/docs-assets"

CONTENT_SECURITY_POLICY = "; ".join(
    (
        "default-src 'self'",
        "script-src 'self'",
        "style-src 'self'",
        "img-src 'self' data:",
        "connect-src 'self'",
        "base-uri 'none'",
        "form-action 'none'",
        "frame-ancestors 'none'",
    )
)

router = APIRouter(include_in_schema=False)


@router.get("/")
async def dashboard() -> Response:
    return HTMLResponse(
        (WEB_DIR / "index.html").read_bytes(),
        headers={"Content-Security-Policy": CONTENT_SECURITY_POLICY, "Cache-Control": "no-cache"},
    )


@router.get("/docs")
async def swagger_ui(request: Request) -> Response:
    app: FastAPI = request.app
    root = request.scope.get("root_path", "")
    return get_swagger_ui_html(
        openapi_url=f"{root}{app.openapi_url}",
        title=f"{app.title} - API documentation",
        oauth2_redirect_url=f"{root}{app.swagger_ui_oauth2_redirect_url}",
        swagger_js_url=f"{root}{DOCS_ASSETS_PATH}/swagger-ui-bundle.js",
        swagger_css_url=f"{root}{DOCS_ASSETS_PATH}/swagger-ui.css",
        swagger_favicon_url=f"{root}{UI_PATH}/favicon.svg",
        swagger_ui_parameters=app.swagger_ui_parameters,
    )


@router.get("/docs/oauth2-redirect")
async def swagger_ui_redirect() -> Response:
    return get_swagger_ui_oauth2_redirect_html()


def install_web(app: FastAPI) -> None:
    """Serve the dashboard and the offline docs; ``app`` must be built with ``docs_url=None, redoc_url=None``."""
    app.include_router(router)
    app.mount(UI_PATH, StaticFiles(directory=WEB_DIR), name="ui")
    app.mount(DOCS_ASSETS_PATH, StaticFiles(directory=DOCS_ASSETS_DIR), name="docs-assets")
