"""A small client of a running gateway's operator endpoints, for the CLI (controls, reloads).

Every failure is a :class:`GatewayCallError` whose message says what to do, in one line: no gateway
at the URL, a missing or refused key, or the gateway's own ``detail``.
"""

from __future__ import annotations

from typing import Any

import httpx
import orjson


class GatewayCallError(Exception):
    """The call did not succeed; ``str()`` is the message for the user."""


def auth_headers(api_key: str | None) -> dict[str, str]:
    return {"Authorization": f"Bearer {api_key}"} if api_key else {}


def call(
    method: str,
    url: str,
    path: str,
    *,
    api_key: str | None = None,
    document: Any = None,
    params: dict[str, str] | None = None,
    timeout: float = 10.0,
) -> Any:
    """``method`` ``url + path`` with an optional JSON body; the JSON answer of a 2xx, else an error."""
    endpoint = f"{url.rstrip('/')}{path}"
    content = orjson.dumps(document) if document is not None else None
    headers = {**auth_headers(api_key), **({"Content-Type": "application/json"} if content is not None else {})}
    try:
        response = httpx.request(method, endpoint, content=content, headers=headers, params=params, timeout=timeout)
    except httpx.TransportError as exc:
        raise GatewayCallError(
            f"no gateway answers at {url} ({type(exc).__name__}); start one with 'ordergate serve' or pass --url"
        ) from None
    try:
        body = orjson.loads(response.content) if response.content else None
    except orjson.JSONDecodeError:
        body = None
    if response.is_success:
        return body
    hint = ""
    if response.status_code == 401:
        hint = " (pass --api-key or set ORDERGATE_API_KEY)"
    elif response.status_code == 403:
        hint = " (this needs an admin key)" if path.startswith(("/v1/controls", "/v1/admin", "/v1/risk")) else ""
    raise GatewayCallError(
        f"{method} {endpoint} answered HTTP {response.status_code}: {detail(body, response.text)}{hint}"
    )


def detail(body: object, text: str) -> str:
    if isinstance(body, dict):
        value = body.get("message") or body.get("detail")
        if isinstance(value, str):
            return value
        if value is not None:
            return orjson.dumps(value).decode()
    return text[:200] or "no body"
