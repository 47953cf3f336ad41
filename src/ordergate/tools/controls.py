"""``ordergate control list | set``: the trading controls of a running gateway, as a table."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from rich.table import Table

_STYLE = {"ACTIVE": "green", "REDUCE_ONLY": "yellow", "HALTED": "bold red"}


def render_controls(answer: Mapping[str, Any]) -> Table:
    """The answer of ``GET``/``PUT /v1/controls``: every level that is not ACTIVE, the gateway first."""
    table = Table(title="trading controls")
    table.add_column("level")
    table.add_column("target", overflow="fold")
    table.add_column("state")
    state = answer["global"]
    table.add_row("global", "-", f"[{_STYLE.get(state, '')}]{state}[/]")
    for level, key in (("strategy", "strategies"), ("user", "users")):
        for target, value in answer[key].items():
            table.add_row(level, target, f"[{_STYLE.get(value, '')}]{value}[/]")
    changes = answer.get("changes") or []
    if changes:
        last = changes[-1]
        by = f" by {last['by']}" if last.get("by") else ""
        table.caption = (
            f"last change {last['at'][:19]}: {last['level']} {last['target'] or ''} -> {last['state']}{by}"
        ).replace("  ", " ")
    else:
        table.caption = "no change recorded"
    return table
