"""``ordergate keys list``: the keys of a key file as a table or JSON, never the keys nor their hashes."""

from __future__ import annotations

from typing import Any

from rich.table import Table

from ordergate.security.keys import KeyFile


def key_rows(keys: KeyFile) -> list[dict[str, Any]]:
    return [
        {
            "id": e.key_id,
            "name": e.name,
            "role": e.role.value,
            "strategies": list(e.strategies) if e.strategies is not None else None,
            "user": e.user,
            "created_at": e.created_at,
            "revoked_at": e.revoked_at,
        }
        for e in keys.entries
    ]


def render_keys(keys: KeyFile) -> Table:
    table = Table(title=f"API keys in {keys.path}")
    for column in ("id", "name", "role", "limited to", "created (UTC)", "status"):
        table.add_column(column, overflow="fold")
    for row in key_rows(keys):
        limits = ", ".join(row["strategies"] or ()) or (f"user {row['user']}" if row["user"] else "-")
        status = f"[red]revoked {row['revoked_at'][:19]}[/]" if row["revoked_at"] else "[green]active[/]"
        table.add_row(row["id"], row["name"], row["role"], limits, row["created_at"][:19], status)
    active = sum(1 for e in keys.entries if e.is_active)
    table.caption = f"{active} active, {len(keys.entries) - active} revoked"
    return table
