"""Scenario H1 (issue 12): alert webhooks at a fixed open-loop rate, beside ``POST /v1/orders`` at the same rate.

One hook is made with ``ordergate hooks create`` for the strategy with the most subscribers of S1w's
home shape, and TradingView-shaped alerts (``{"ticker": "NSE:...", "action": "buy", "id": ...}``, a
client order id each, the strategy's own instruments) are posted to its secret path at
:data:`HOOK_RATE` a second, latency from each alert's due time (:func:`benchmarks.harness.open_loop`).
In the same server, the same orders as ``/v1/orders`` bodies at the same rate give the row it is
compared with (H1o): what reading the alert and finding the hook add to order entry, which has targets
of its own (S1, O1k...). The target is that the hook door adds next to nothing (p99 within 1.5x of
H1o's, or 3 ms), and SPEC section 11's answers well within 3 s.
"""

from __future__ import annotations

import random
from pathlib import Path

import orjson

from benchmarks.harness import OpenLoop, Row, open_loop, ordergate, verify
from benchmarks.scenarios import WIDE_USERS, Plan, _result, fmt_ms, fmt_rate, new_home, serve

HOOK_RATE = 500
"""Alerts a second: far above what alerting platforms send, low enough to leave the machine idle."""
SPEC_LIMIT_MS = 3000.0


def _strategy_of(home: Path) -> tuple[str, list[str]]:
    """The strategy with the most subscribers, and every instrument one of them trades under it."""
    profiles: dict[str, dict[str, list[str]]] = orjson.loads((home / "Jsons" / "user_profile.json").read_bytes())
    subscribers: dict[str, set[str]] = {}
    for strategies in profiles.values():
        for strategy, instruments in strategies.items():
            subscribers.setdefault(strategy, set()).update(instruments)
    strategy = max(sorted(subscribers), key=lambda s: sum(1 for p in profiles.values() if s in p))
    return strategy, sorted(subscribers[strategy])


def _bodies(home: Path, strategy: str, instruments: list[str], count: int) -> tuple[Path, Path]:
    """The same orders twice: as TradingView alerts and as ``/v1/orders`` bodies (ids of their own)."""
    draw = random.Random(29)
    alerts, orders = home / "alerts.jsonl", home / "orders.jsonl"
    with alerts.open("wb") as hook_out, orders.open("wb") as order_out:
        for n in range(count):
            instrument, side = draw.choice(instruments), draw.choice(("buy", "sell"))
            alert = {"ticker": f"NSE:{instrument}", "action": side, "id": f"tv-{n}-2026-12-03T09:15:00Z"}
            order = {"strategy": strategy, "instrument": instrument, "side": side, "client_order_id": f"v1-{n}"}
            hook_out.write(orjson.dumps(alert) + b"\n")
            order_out.write(orjson.dumps(order) + b"\n")
    return alerts, orders


def h1(plan: Plan) -> list[Row]:
    home = new_home(plan, "hooks", WIDE_USERS)
    strategy, instruments = _strategy_of(home)
    made = ordergate("hooks", "create", "--home", str(home), "--strategy", strategy, "--name", "bench")
    if made.returncode != 0:
        raise RuntimeError(f"hooks create failed: {made.stderr.strip()}")
    path = made.stdout.strip()
    count = int(HOOK_RATE * plan.seconds)
    alerts, orders = _bodies(home, strategy, instruments, count)
    with serve(home) as server:
        hooked = open_loop(server.url, path, alerts, rate=HOOK_RATE, seconds=plan.seconds, retry=True)
        plain = open_loop(server.url, "/v1/orders", orders, rate=HOOK_RATE, seconds=plan.seconds, retry=True)
    checked = verify(home)
    what = f"at {HOOK_RATE}/s open loop, durability full, {WIDE_USERS} users, strategy {strategy}"

    def row(scenario: str, door: str, load: OpenLoop, ratios: str, target: str, met: bool) -> Row:
        return Row(
            scenario,
            f"{door} {what}",
            fmt_rate(load.sent / plan.seconds, "orders/s"),
            fmt_ms(load.p50_ms),
            fmt_ms(load.p99_ms),
            str(load.errors),
            ratios,
            target,
            _result(met, checked),
        )

    ratio = hooked.p99_ms / plain.p99_ms if plain.p99_ms else float("inf")
    close = ratio <= 1.5 or hooked.p99_ms - plain.p99_ms <= 3
    rows = [
        row(
            "H1",
            "POST /v1/hooks/<token> (TradingView JSON)",
            hooked,
            f"p99 {ratio:.2f}x H1o, p99.9 {fmt_ms(hooked.p999_ms)}",
            "p99 <= 1.5x H1o (or + 3 ms), max < 3 s, 0 errors",
            close and hooked.max_ms < SPEC_LIMIT_MS and hooked.errors == 0,
        ),
        row("H1o", "POST /v1/orders (the same orders)", plain, "-", "-", plain.errors == 0),
    ]
    rows[0].notes.append(
        f"latency from each alert's due time (no coordinated omission); max {hooked.max_ms:.1f} ms; "
        f"statuses {hooked.statuses}"
    )
    return rows
