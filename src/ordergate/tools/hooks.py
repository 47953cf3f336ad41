"""``ordergate hooks list``: the hooks of a hooks file as a table or JSON, never their tokens nor hashes."""

from __future__ import annotations

from typing import Any

from rich.table import Table

from ordergate.security.hooks import HookFile


def hook_rows(hooks: HookFile) -> list[dict[str, Any]]:
    return [hook.listed() for hook in hooks.hooks]


def render_hooks(hooks: HookFile) -> Table:
    table = Table(title=f"Alert webhooks in {hooks.path}")
    for column in ("id", "name", "strategy", "created (UTC)", "status"):
        table.add_column(column, overflow="fold")
    for row in hook_rows(hooks):
        status = f"[red]revoked {row['revoked_at'][:19]}[/]" if row["revoked_at"] else "[green]active[/]"
        table.add_row(row["id"], row["name"], row["strategy"], row["created_at"][:19], status)
    active = sum(1 for hook in hooks.hooks if hook.is_active)
    table.caption = f"{active} active, {len(hooks.hooks) - active} revoked"
    return table
