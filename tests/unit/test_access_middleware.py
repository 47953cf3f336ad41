"""The guard and the origin check are plain ASGI middleware: each is tested here alone, around a tiny app.

No web framework is involved: a request is an ASGI scope, the answer the messages the middleware
sends. The tiny app answers 200 and reports the principal the guard left in the scope.
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path
from typing import Any

import orjson
import pytest

from ordergate.api.access import PRINCIPAL, Guard
from ordergate.api.origins import OriginCheck
from ordergate.security.keys import KeyFile, KeyRing, Role
from ordergate.security.ratelimit import RateLimiter

pytestmark = pytest.mark.anyio
NOW = "2026-11-24T10:00:00Z"


class TinyApp:
    """Answers 200 ``{"principal": name or null}`` and counts the requests that reached it."""

    def __init__(self) -> None:
        self.calls: list[dict[str, Any]] = []

    async def __call__(self, scope: dict[str, Any], receive: Any, send: Any) -> None:
        self.calls.append(scope)
        if scope["type"] != "http":
            return
        principal = scope.get(PRINCIPAL)
        body = orjson.dumps({"principal": principal.name if principal is not None else None})
        await send({"type": "http.response.start", "status": 200, "headers": [(b"content-type", b"application/json")]})
        await send({"type": "http.response.body", "body": body})


class Answer:
    def __init__(self, messages: list[dict[str, Any]]) -> None:
        start = messages[0]
        self.status: int = start["status"]
        self.headers = {name.decode(): value.decode() for name, value in start["headers"]}
        self.body = b"".join(m.get("body", b"") for m in messages[1:])

    def json(self) -> Any:
        return orjson.loads(self.body)


async def request(
    app: Any,
    method: str,
    path: str,
    headers: dict[str, str] | None = None,
    *,
    scheme: str = "http",
    client: tuple[str, int] = ("10.0.0.1", 5000),
) -> Answer:
    """Send one HTTP request through ``app`` as an ASGI server would, and collect the answer."""
    scope = {
        "type": "http",
        "method": method,
        "path": path,
        "scheme": scheme,
        "query_string": b"",
        "headers": [(k.lower().encode("latin-1"), v.encode("latin-1")) for k, v in (headers or {}).items()],
        "client": client,
    }
    sent: list[dict[str, Any]] = []

    async def receive() -> dict[str, Any]:
        return {"type": "http.request", "body": b"", "more_body": False}

    async def send(message: dict[str, Any]) -> None:
        sent.append(message)

    await app(scope, receive, send)
    return Answer(sent)


# -- the origin check -----------------------------------------------------------------------------


HOST = {"Host": "127.0.0.1:8080"}


async def test_requests_without_an_origin_pass_as_curl_and_the_kits_producer_send_them() -> None:
    inner = TinyApp()
    check = OriginCheck(inner)
    for method in ("POST", "PUT", "DELETE", "PATCH"):
        assert (await request(check, method, "/create_order", HOST)).status == 200
    assert (await request(check, "POST", "/v1/orders", {})).status == 200  # no Host either
    assert len(inner.calls) == 5


@pytest.mark.parametrize(
    ("origin", "host", "scheme"),
    [
        ("http://127.0.0.1:8080", "127.0.0.1:8080", "http"),
        ("http://LOCALHOST:8080", "localhost:8080", "http"),
        ("http://gateway.example", "gateway.example:80", "http"),
        ("http://gateway.example:80", "gateway.example", "http"),
        ("https://gateway.example", "gateway.example", "https"),
        ("https://gateway.example:443", "Gateway.Example:443", "https"),
        ("http://[::1]:8080", "[::1]:8080", "http"),
    ],
)
async def test_the_gateways_own_origin_may_change_state(origin: str, host: str, scheme: str) -> None:
    check = OriginCheck(TinyApp())
    answer = await request(check, "POST", "/v1/orders", {"Host": host, "Origin": origin}, scheme=scheme)
    assert answer.status == 200, answer.body


@pytest.mark.parametrize(
    ("origin", "host", "scheme"),
    [
        ("https://evil.example", "127.0.0.1:8080", "http"),
        ("http://127.0.0.1:9999", "127.0.0.1:8080", "http"),  # another port is another origin
        ("https://127.0.0.1:8080", "127.0.0.1:8080", "http"),  # another scheme too
        ("http://localhost:8080", "127.0.0.1:8080", "http"),  # the same machine by another name
        ("http://gateway.example.evil.example", "gateway.example", "http"),
        ("null", "127.0.0.1:8080", "http"),  # a sandboxed frame or a file:// page
        ("http://127.0.0.1:8080/path", "127.0.0.1:8080", "http"),  # not an origin
        ("http://127.0.0.1:notaport", "127.0.0.1:8080", "http"),
        ("http://127.0.0.1:8080", "", "http"),  # no Host: the gateway's own origin is unknown
    ],
)
async def test_a_state_changing_request_from_another_origin_is_refused_403_saying_how_to_allow_it(
    origin: str, host: str, scheme: str
) -> None:
    inner = TinyApp()
    check = OriginCheck(inner)
    headers = {"Origin": origin, **({"Host": host} if host else {})}
    for method in ("POST", "PUT", "DELETE"):
        answer = await request(check, method, "/create_order", headers, scheme=scheme)
        assert answer.status == 403
        assert answer.headers["content-type"] == "application/json"
        assert answer.headers["x-content-type-options"] == "nosniff"
        detail = answer.json()["detail"]
        assert origin in detail
        assert "--allow-origin" in detail
        assert "ORDERGATE_ALLOWED_ORIGINS" in detail
    assert inner.calls == []


async def test_reads_from_another_origin_pass_the_origin_check() -> None:
    check = OriginCheck(TinyApp())
    for method in ("GET", "HEAD", "OPTIONS"):
        headers = {**HOST, "Origin": "https://evil.example", "Sec-Fetch-Site": "cross-site"}
        assert (await request(check, method, "/v1/positions", headers)).status == 200


async def test_a_cross_site_fetch_without_an_origin_is_refused() -> None:
    check = OriginCheck(TinyApp())
    answer = await request(check, "POST", "/create_order", {**HOST, "Sec-Fetch-Site": "cross-site"})
    assert answer.status == 403
    assert "Sec-Fetch-Site: cross-site" in answer.json()["detail"]
    for site in ("same-origin", "same-site", "none"):
        assert (await request(check, "POST", "/create_order", {**HOST, "Sec-Fetch-Site": site})).status == 200


async def test_a_configured_origin_may_change_state_and_others_still_may_not() -> None:
    check = OriginCheck(TinyApp(), allowed_origins=["https://desk.example", "http://ops.example:9000/"])
    for origin in ("https://desk.example", "https://DESK.example:443", "http://ops.example:9000"):
        assert (await request(check, "POST", "/v1/orders", {**HOST, "Origin": origin})).status == 200, origin
    for origin in ("http://desk.example", "https://desk.example:8443", "http://ops.example"):
        assert (await request(check, "POST", "/v1/orders", {**HOST, "Origin": origin})).status == 403, origin


def test_a_configured_origin_must_be_an_origin() -> None:
    for bad in ("desk.example", "ftp://desk.example", "https://desk.example/app", "https://", "null", "*"):
        with pytest.raises(ValueError, match="http"):
            OriginCheck(TinyApp(), allowed_origins=[bad])


async def test_the_origin_check_lets_lifespan_and_other_scopes_through() -> None:
    inner = TinyApp()
    await OriginCheck(inner)({"type": "lifespan"}, None, None)
    assert inner.calls == [{"type": "lifespan"}]


# -- the guard ------------------------------------------------------------------------------------


@pytest.fixture
def ring(tmp_path: Path) -> tuple[KeyRing, dict[str, str]]:
    keys, _, admin = KeyFile.new(tmp_path / "keys.json").create(Role.ADMIN, name="ops", now=NOW)
    keys, _, producer = keys.create(Role.PRODUCER, name="algo", now=NOW)
    keys, _, viewer = keys.create(Role.VIEWER, name="risk", user="Ann", now=NOW)
    return KeyRing(keys), {"admin": admin, "producer": producer, "viewer": viewer}


def bearer(key: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {key}"}


async def test_the_guard_asks_for_a_key_and_leaves_the_principal_for_the_app(
    ring: tuple[KeyRing, dict[str, str]],
) -> None:
    keys, issued = ring
    inner = TinyApp()
    guard = Guard(inner, keys=keys)
    missing = await request(guard, "GET", "/v1/positions")
    assert (missing.status, missing.headers["www-authenticate"]) == (401, "Bearer")
    assert (await request(guard, "GET", "/v1/positions", bearer("og_0000_nope"))).status == 401
    answer = await request(guard, "GET", "/v1/positions", {"X-API-Key": issued["viewer"]})
    assert (answer.status, answer.json()) == (200, {"principal": "risk"})
    assert len(inner.calls) == 1


async def test_the_guard_refuses_a_role_outside_its_rights_with_403(ring: tuple[KeyRing, dict[str, str]]) -> None:
    keys, issued = ring
    guard = Guard(TinyApp(), keys=keys)
    cases = [
        ("viewer", "POST", "/v1/orders", 403),
        ("producer", "GET", "/v1/positions", 403),
        ("producer", "PUT", "/v1/controls", 403),
        ("viewer", "POST", "/v1/admin/reload-profiles", 403),
        ("producer", "POST", "/create_order", 200),
        ("admin", "PUT", "/v1/controls", 200),
    ]
    for role, method, path, status in cases:
        answer = await request(guard, method, path, bearer(issued[role]))
        assert answer.status == status, (role, method, path)
        if status == 403:
            assert f"role {role}" in answer.json()["detail"]


async def test_open_paths_pass_the_guard_without_a_key(ring: tuple[KeyRing, dict[str, str]]) -> None:
    keys, _ = ring
    guard = Guard(TinyApp(), keys=keys)
    for path in ("/healthz", "/readyz", "/", "/ui/main.js", "/docs", "/openapi.json"):
        assert (await request(guard, "GET", path)).status == 200, path


async def test_hook_paths_pass_the_guard_without_a_key_and_with_no_principal(
    ring: tuple[KeyRing, dict[str, str]],
) -> None:
    keys, issued = ring
    guard = Guard(TinyApp(), keys=keys)
    for headers in (None, bearer("og_not_valid"), bearer(issued["viewer"])):
        answer = await request(guard, "POST", "/v1/hooks/wh_abc_def", headers)
        assert answer.status == 200, headers
        assert answer.json() == {"principal": None}  # the hook route, not a key, says who it is
    assert (await request(guard, "POST", "/v1/hooksx")).status == 401


class FakeClock:
    def __init__(self) -> None:
        self.now = 50.0

    def __call__(self) -> float:
        return self.now


async def test_the_guard_limits_each_client_address_with_auth_off_and_never_the_probes() -> None:
    clock = FakeClock()
    guard = Guard(TinyApp(), limiter=RateLimiter(1.0, burst=2, clock=clock))
    statuses = [(await request(guard, "GET", "/v1/stats")).status for _ in range(3)]
    assert statuses == [200, 200, 429]
    limited = await request(guard, "GET", "/v1/stats")
    assert limited.headers["retry-after"] == "1"
    assert "rate limit" in limited.json()["detail"]
    assert (await request(guard, "GET", "/v1/stats", client=("10.0.0.2", 1))).status == 200
    assert (await request(guard, "GET", "/healthz")).status == 200
    clock.now += 1.0
    assert (await request(guard, "GET", "/v1/stats")).status == 200


async def test_the_chain_checks_the_origin_before_the_key() -> None:
    inner = TinyApp()
    limiter = RateLimiter(1.0, burst=1, clock=FakeClock())
    chain = OriginCheck(Guard(inner, limiter=limiter))
    refused = await request(chain, "POST", "/create_order", {**HOST, "Origin": "https://evil.example"})
    assert refused.status == 403
    assert (await request(chain, "POST", "/create_order", HOST)).status == 200  # no token was taken above
    assert len(inner.calls) == 1


def test_the_middleware_needs_no_web_framework() -> None:
    code = "import sys, ordergate.api.access, ordergate.api.origins; print('fastapi' in sys.modules)"
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True, timeout=60)
    assert result.stdout.strip() == "False"
