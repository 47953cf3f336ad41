"""Alert webhooks through real gateway processes (SPEC section 11): what TradingView, ChartInk and
Amibroker post, as they post it, to ``POST /v1/hooks/<token>``, and the ``ordergate hooks`` commands.

Each test starts ``ordergate serve`` on its own home and creates hooks with the CLI as an operator
does (a subprocess), mostly while the gateway runs, so every hook in use was picked up by the running
process from the file. Answers are checked as a sender sees them, and the stored orders through the
API: door ``hook``, actor the hook's name. ``verify`` passes over every log.
"""

from __future__ import annotations

import statistics
import time
from pathlib import Path
from typing import Any

import httpx
import orjson
import pytest

from tests.e2e.conftest import GatewayProcess, StartGateway, assert_verified, run_ordergate

pytestmark = pytest.mark.e2e

RELOAD_WITHIN = 1.0
"""SPEC section 11: a running gateway picks up a new or revoked hook within a second."""
TEXT = {"content-type": "text/plain; charset=utf-8"}
"""What TradingView sends with every alert, JSON-looking or not."""


def create_hook(home: Path, strategy: str, *more: str) -> str:
    """``ordergate hooks create``: the secret path it prints, alone on the last line of stdout."""
    done = run_ordergate("hooks", "create", "--home", str(home), "--strategy", strategy, *more)
    assert done.returncode == 0, done.stderr
    lines = done.stdout.splitlines()
    assert len(lines) == 1, done.stdout
    assert lines[0].startswith("/v1/hooks/wh_"), done.stdout
    return lines[0]


def alert(
    gateway: GatewayProcess, path: str, body: str | dict[str, Any], headers: dict[str, str] = TEXT
) -> httpx.Response:
    content = body if isinstance(body, str) else orjson.dumps(body).decode()
    return httpx.post(gateway.url + path, content=content.encode(), headers=headers, timeout=10)


def stored_orders(gateway: GatewayProcess, api_key: str | None = None) -> list[dict[str, Any]]:
    headers = {"authorization": f"Bearer {api_key}"} if api_key else {}
    listed = httpx.get(gateway.url + "/v1/orders", headers=headers, timeout=10)
    assert listed.status_code == 200, listed.text
    items: list[dict[str, Any]] = listed.json()["items"]
    return items


def tradingview(ticker: str, action: str, order_id: str, at: str) -> dict[str, str]:
    """The README's TradingView message template, as TradingView fills it in."""
    return {"ticker": ticker, "action": action, "id": f"{order_id}-{at}"}


def test_tradingview_json_and_text_alerts_place_orders_through_the_hook_door(
    home: Path, start_gateway: StartGateway
) -> None:
    gateway = start_gateway(home)
    path = create_hook(home, "STRATEGY_A", "--name", "tv-grasim")  # made while the gateway runs

    bought = alert(gateway, path, tradingview("NSE:GRASIM", "buy", "Long Entry", "2026-12-03T09:15:00Z"))
    assert bought.status_code == 201, bought.text
    answer = bought.json()
    assert (answer["status"], answer["strategy"], answer["instrument"], answer["side"]) == (
        "ACCEPTED", "STRATEGY_A", "GRASIM", "BUY"
    )  # fmt: skip
    assert answer["applied"] == [{"user": "Holland Proctor", "action": "OPENED", "position_strategy": "STRATEGY_A"}]
    assert answer["client_order_id"] == "Long_Entry-2026-12-03T09:15:00Z"  # whitespace in an id becomes _
    assert (answer["door"], answer["actor"], answer["origin"], answer["replayed"]) == (
        "hook", "tv-grasim", "strategy", False
    )  # fmt: skip

    sold = alert(gateway, path, "sell NSE:GRASIM id=exit-1")
    assert sold.status_code == 201, sold.text
    assert (sold.json()["status"], sold.json()["side"], sold.json()["client_order_id"]) == (
        "ACCEPTED",
        "SELL",
        "exit-1",
    )
    bare = alert(gateway, path, "BUY BIRLASOFT", headers={})  # no content type, no id
    assert (bare.status_code, bare.json()["status"], bare.json()["client_order_id"]) == (201, "ACCEPTED", None)
    as_json = alert(gateway, path, {"symbol": "BSE:EICHER", "side": "Buy", "strategy": "STRATEGY_A"},
                    headers={"content-type": "application/json"})  # fmt: skip
    assert (as_json.status_code, as_json.json()["instrument"]) == (201, "EICHER")

    orders = stored_orders(gateway)
    assert [(o["instrument"], o["side"], o["door"], o["actor"]) for o in orders] == [
        ("GRASIM", "BUY", "hook", "tv-grasim"),
        ("GRASIM", "SELL", "hook", "tv-grasim"),
        ("BIRLASOFT", "BUY", "hook", "tv-grasim"),
        ("EICHER", "BUY", "hook", "tv-grasim"),
    ]
    gateway.terminate()
    assert_verified(home)


def test_a_repeated_alert_is_a_replay_of_the_same_order(home: Path, start_gateway: StartGateway) -> None:
    gateway = start_gateway(home)
    path = create_hook(home, "STRATEGY_B")
    message = tradingview("MINDA", "buy", "L1", "2026-12-03T09:15:00Z")
    first = alert(gateway, path, message)
    again = alert(gateway, path, message)
    text_again = alert(gateway, path, "BUY MINDA id=L1-2026-12-03T09:15:00Z")
    assert (first.status_code, again.status_code, text_again.status_code) == (201, 200, 200)
    assert again.json() == {**first.json(), "replayed": True} == {**text_again.json(), "replayed": True}
    other = alert(gateway, path, tradingview("MINDA", "sell", "L1", "2026-12-03T09:15:00Z"))
    assert other.status_code == 409, other.text  # the same id for a different order
    assert "L1-2026-12-03T09:15:00Z" in other.json()["detail"]
    assert len(stored_orders(gateway)) == 1


def test_unknown_and_revoked_hooks_get_the_same_404_and_a_revoke_is_in_force_within_a_second(
    home: Path, start_gateway: StartGateway
) -> None:
    gateway = start_gateway(home)
    path = create_hook(home, "STRATEGY_A", "--name", "soon-gone")
    assert alert(gateway, path, "BUY GRASIM").status_code == 201

    done = run_ordergate("hooks", "revoke", "soon-gone", "--home", str(home))
    assert done.returncode == 0, done.stderr
    revoked_at = time.monotonic()
    answer = alert(gateway, path, "SELL GRASIM")
    sold_before_the_revoke_was_seen = 0
    while answer.status_code != 404 and time.monotonic() - revoked_at < RELOAD_WITHIN:
        assert answer.status_code == 201, answer.text  # at most the old hook, never anything else
        sold_before_the_revoke_was_seen += 1
        time.sleep(0.2)
        answer = alert(gateway, path, "SELL GRASIM")
    assert answer.status_code == 404, f"the revoked hook still answers {answer.status_code} after {RELOAD_WITHIN}s"

    unknown = alert(gateway, "/v1/hooks/wh_000000000000_" + "A" * 43, "SELL GRASIM")
    junk = alert(gateway, "/v1/hooks/nothing-like-a-token", "SELL GRASIM")
    no_route = httpx.post(gateway.url + "/v1/nothing-here", content=b"SELL GRASIM", headers=TEXT, timeout=10)
    assert answer.content == unknown.content == junk.content == no_route.content == b'{"detail":"Not Found"}'
    assert answer.status_code == unknown.status_code == junk.status_code == 404
    sides = sorted(o["side"] for o in stored_orders(gateway))
    assert sides == ["BUY"] + ["SELL"] * sold_before_the_revoke_was_seen  # nothing after the 404s


def test_a_hook_created_while_the_gateway_runs_answers_within_a_second(home: Path, start_gateway: StartGateway) -> None:
    gateway = start_gateway(home)
    first = create_hook(home, "STRATEGY_A")
    assert alert(gateway, first, "BUY GRASIM").status_code == 201  # the gateway has looked at the file now
    second = create_hook(home, "STRATEGY_D", "--name", "chartink")
    created_at = time.monotonic()
    answer = alert(gateway, second, "BUY ACC")
    while answer.status_code == 404 and time.monotonic() - created_at < RELOAD_WITHIN:
        time.sleep(0.2)
        answer = alert(gateway, second, "BUY ACC")
    assert answer.status_code == 201, answer.text
    assert (answer.json()["actor"], answer.json()["strategy"]) == ("chartink", "STRATEGY_D")


def test_guessing_tokens_is_refused_after_a_few_misses_even_for_a_valid_token(
    home: Path, start_gateway: StartGateway
) -> None:
    gateway = start_gateway(home)
    path = create_hook(home, "STRATEGY_A")
    answers = [alert(gateway, f"/v1/hooks/wh_guess{n:06d}_secret", "BUY GRASIM").status_code for n in range(10)]
    assert answers == [404] * 10
    refused = alert(gateway, "/v1/hooks/wh_guess_more", "BUY GRASIM")
    assert refused.status_code == 429
    assert int(refused.headers["retry-after"]) >= 1
    held = alert(gateway, path, "BUY GRASIM")  # while held back, a valid token is not told apart
    assert held.status_code == 429
    assert stored_orders(gateway) == []
    assert httpx.get(gateway.url + "/v1/orders", timeout=10).status_code == 200  # the rest of the API is not held


def test_with_auth_on_the_secret_path_is_the_credential_and_acts_for_its_strategy_only(
    home: Path, start_gateway: StartGateway
) -> None:
    keyfile = home / "data" / "keys.json"
    made = run_ordergate("keys", "create", "--role", "admin", "--name", "ops", "--file", str(keyfile))
    assert made.returncode == 0, made.stderr
    admin = made.stdout.strip()
    gateway = start_gateway(home, "--auth", str(keyfile))
    path = create_hook(home, "STRATEGY_A", "--name", "tv")
    assert httpx.post(gateway.url + "/v1/orders", json={"strategy": "STRATEGY_A", "instrument": "GRASIM",
                                                        "side": "BUY"}, timeout=10).status_code == 401  # fmt: skip
    bought = alert(gateway, path, tradingview("GRASIM", "BUY", "a", "1"))
    assert bought.status_code == 201, bought.text
    assert (bought.json()["actor"], bought.json()["door"]) == ("tv", "hook")
    mismatch = alert(gateway, path, {"ticker": "MINDA", "action": "buy", "strategy": "STRATEGY_B"})
    assert mismatch.status_code == 403, mismatch.text
    assert "STRATEGY_A" in mismatch.json()["detail"]
    assert "STRATEGY_B" in mismatch.json()["detail"]
    text_mismatch = alert(gateway, path, "buy MINDA strategy=STRATEGY_B")
    assert text_mismatch.status_code == 403
    with_bearer = alert(gateway, path, "SELL GRASIM", headers={**TEXT, "authorization": "Bearer og_x_y"})
    assert with_bearer.status_code == 201  # a header the hook does not need changes nothing
    assert [(o["side"], o["actor"]) for o in stored_orders(gateway, admin)] == [("BUY", "tv"), ("SELL", "tv")]


def test_without_auth_a_strategy_mismatch_is_refused_too(home: Path, start_gateway: StartGateway) -> None:
    gateway = start_gateway(home)
    path = create_hook(home, "STRATEGY_D")
    mismatch = alert(gateway, path, {"ticker": "MINDA", "action": "buy", "strategy": "STRATEGY_B"})
    assert mismatch.status_code == 403
    assert mismatch.json()["detail"].startswith("strategy: this hook sends orders for STRATEGY_D only")
    assert stored_orders(gateway) == []


BAD_ALERTS: list[tuple[str | dict[str, Any], int, str]] = [
    ("", 422, "the alert is empty"),
    ("   \n", 422, "the alert is empty"),
    ("HOLD GRASIM", 422, "side must be buy or sell (any letter case), not 'HOLD'"),
    ({"ticker": "GRASIM", "action": "long"}, 422, "action must be buy or sell"),
    ({"ticker": "GRASIM"}, 422, "the alert names no side (or action)"),
    ({"action": "buy"}, 422, "the alert names no instrument (or ticker, symbol)"),
    ('{"ticker": "GRASIM", "action": ', 422, "is not valid JSON"),
    ("[1, 2]", 422, "the alert must be a JSON object"),
    ("BUY", 422, "needs a side and an instrument"),
    ("BUY GRASIM qty=5", 422, "'qty=5' is not an option of the text form"),
    ({"ticker": "GRASIM", "action": "buy", "id": "x" * 129}, 422, "id must be 1 to 128 printable ASCII"),
    ({"ticker": "GRASIM", "symbol": "EICHER", "action": "buy"}, 422, "gives the instrument more than once"),
    ({"ticker": "GRASIM", "action": "buy", "signal_time": "yesterday"}, 422, "signal_time"),
    ({"ticker": "", "action": "buy"}, 422, "ticker"),
    ({"ticker": 5, "action": "buy"}, 422, "ticker must be a string"),
]
BAD_ALERT_NAMES = [
        "empty", "blank", "bad-side-text", "bad-side-json", "no-side", "no-instrument", "broken-json",
        "json-array", "side-alone", "unknown-option", "long-id", "two-instruments", "bad-signal-time",
        "empty-ticker", "number-ticker",
]  # fmt: skip


def test_a_bad_alert_is_a_4xx_naming_the_problem_and_stores_nothing(home: Path, start_gateway: StartGateway) -> None:
    gateway = start_gateway(home)
    path = create_hook(home, "STRATEGY_A")
    for name, (body, status, says) in zip(BAD_ALERT_NAMES, BAD_ALERTS, strict=True):
        answer = alert(gateway, path, body)
        assert answer.status_code == status, (name, answer.text)
        detail = answer.json()
        assert says in str(detail.get("message", detail["detail"])), (name, detail)
        assert stored_orders(gateway) == [], name


def test_unknown_instruments_get_the_normal_rejection_and_oversize_bodies_a_413(
    home: Path, start_gateway: StartGateway
) -> None:
    gateway = start_gateway(home)
    path = create_hook(home, "STRATEGY_A")
    rejected = alert(gateway, path, "BUY NSE:INFY")
    assert rejected.status_code == 201, rejected.text
    assert (rejected.json()["status"], rejected.json()["reason"]) == ("REJECTED", "INSTRUMENT_NOT_TRADED")
    no_position = alert(gateway, path, "SELL GRASIM")
    assert (no_position.json()["status"], no_position.json()["reason"]) == ("REJECTED", "NO_OPEN_POSITION")
    oversize = alert(gateway, path, "BUY GRASIM " + "x" * 70_000)  # over the 64 KiB default of --max-body-bytes
    assert oversize.status_code == 413, oversize.text
    assert [o["status"] for o in stored_orders(gateway)] == ["REJECTED", "REJECTED"]


def test_hook_answers_take_milliseconds(home: Path, start_gateway: StartGateway) -> None:
    gateway = start_gateway(home)
    path = create_hook(home, "STRATEGY_A")
    with httpx.Client(base_url=gateway.url, headers=TEXT, timeout=10) as client:
        timings = []
        for n in range(40):
            started = time.perf_counter()
            answer = client.post(path, content=f"{'BUY' if n % 2 == 0 else 'SELL'} GRASIM id=t{n}".encode())
            timings.append(time.perf_counter() - started)
            assert answer.status_code == 201, answer.text
    assert max(timings) < 3.0  # SPEC section 11: well within 3 s
    assert statistics.median(timings) < 0.1, timings  # in practice a few milliseconds


def test_the_hooks_commands_keep_only_hashes_and_fail_with_one_line(tmp_path: Path) -> None:
    home = tmp_path / "home"
    path = create_hook(home, "STRATEGY_A", "--name", "tv")
    token = path.removeprefix("/v1/hooks/")
    hooks_file = home / "Jsons" / "hooks.json"
    assert hooks_file.stat().st_mode & 0o777 == 0o600
    assert token not in hooks_file.read_text()

    listed = run_ordergate("hooks", "list", "--home", str(home), "--json")
    assert listed.returncode == 0, listed.stderr
    (row,) = orjson.loads(listed.stdout)
    assert (row["name"], row["strategy"], row["revoked_at"]) == ("tv", "STRATEGY_A", None)
    assert "hash" not in row
    assert token not in listed.stdout
    table = run_ordergate("hooks", "list", "--home", str(home))
    assert table.returncode == 0
    assert "tv" in table.stdout
    assert token not in table.stdout

    taken = run_ordergate("hooks", "create", "--home", str(home), "--strategy", "STRATEGY_B", "--name", "tv")
    bad_name = run_ordergate("hooks", "create", "--home", str(home), "--strategy", "BAD\tNAME")
    missing = run_ordergate("hooks", "revoke", "nope", "--home", str(home))
    no_file = run_ordergate("hooks", "list", "--file", str(tmp_path / "absent.json"))
    for done, says in [
        (taken, "an active hook is named 'tv' already"),
        (bad_name, "strategy"),
        (missing, "no hook has the id or name 'nope'"),
        (no_file, "hooks file not found"),
    ]:
        assert done.returncode == 2, done
        assert len(done.stderr.strip().splitlines()) == 1, done.stderr
        assert says in done.stderr
        assert "Traceback" not in done.stderr
        assert done.stdout == ""

    revoked = run_ordergate("hooks", "revoke", row["id"], "--home", str(home))
    assert revoked.returncode == 0
    assert "revoked hook" in revoked.stdout
    again = run_ordergate("hooks", "revoke", "tv", "--home", str(home))
    assert again.returncode == 2
    assert "already revoked" in again.stderr
    renamed = create_hook(home, "STRATEGY_B", "--name", "tv")  # a revoked hook's name may be used again
    assert renamed != path


def test_a_broken_hooks_file_stops_start_up_with_one_line(home: Path) -> None:
    (home / "Jsons" / "hooks.json").write_text('{"version": 1, "secret": "00", "hooks": []}')
    done = run_ordergate("serve", "--home", str(home), "--port", "0")
    assert done.returncode == 2, done
    assert 'hooks.json: $["secret"]: must be a hex string of at least 16 bytes' in done.stderr
    assert "Traceback" not in done.stderr
