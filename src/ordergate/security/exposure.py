"""Whether a gateway is about to listen where others can reach it without asking for keys."""

from __future__ import annotations

import ipaddress
from collections.abc import Sequence
from pathlib import Path

LOOPBACK_NAMES = frozenset({"localhost", "localhost.localdomain", "ip6-localhost"})


def is_loopback(host: str) -> bool:
    """``True`` for 127.0.0.0/8, ::1 and localhost; an unknown name or a wildcard (0.0.0.0, ::) is not."""
    name = host.strip().strip("[]").lower()
    if name in LOOPBACK_NAMES:
        return True
    try:
        return ipaddress.ip_address(name).is_loopback
    except ValueError:
        return False


def exposure_warning(host: str, auth: Path | None) -> str | None:
    """The warning to print when serving on a non-loopback address without ``--auth``, else ``None``."""
    if auth is not None or is_loopback(host):
        return None
    return (
        f"listening on {host} without --auth: anyone who can reach this address can send orders and read "
        "every position; create keys with 'ordergate keys create' and restart with --auth KEYFILE"
    )


def host_from_argv(argv: Sequence[str]) -> str | None:
    """The ``--host`` of a uvicorn command line (``--host H`` or ``--host=H``), or ``None``."""
    for index, arg in enumerate(argv):
        if arg == "--host" and index + 1 < len(argv):
            return argv[index + 1]
        if arg.startswith("--host="):
            return arg.split("=", 1)[1]
    return None
