"""Web origins (scheme, host, port) as browsers send them in ``Origin``, parsed and compared.

Two spellings of one origin compare equal (``http://Gateway:80`` is ``http://gateway``); anything
that is not an ``http`` or ``https`` origin (``null`` from a sandboxed frame or a ``file://`` page,
a URL with a path, a bad port) parses to ``None``, which never equals an origin. Used by the
origin check in front of the API (:mod:`ordergate.api.origins`) and by the ``allowed_origins`` setting.
"""

from __future__ import annotations

from typing import NamedTuple
from urllib.parse import urlsplit

DEFAULT_PORTS = {"http": 80, "https": 443}


class Origin(NamedTuple):
    scheme: str
    host: str
    port: int

    def __str__(self) -> str:
        host = f"[{self.host}]" if ":" in self.host else self.host
        port = "" if DEFAULT_PORTS[self.scheme] == self.port else f":{self.port}"
        return f"{self.scheme}://{host}{port}"


def parse_origin(text: str) -> Origin | None:
    """The origin ``text`` names (``https://desk.example:8443``, a trailing ``/`` allowed), or ``None``."""
    try:
        parts = urlsplit(text.strip())
        port = parts.port
    except ValueError:  # a bad port or bracket
        return None
    scheme = parts.scheme.lower()
    if scheme not in DEFAULT_PORTS or not parts.hostname or parts.username is not None or parts.password is not None:
        return None
    if parts.path not in ("", "/") or parts.query or parts.fragment or text.rstrip().endswith(("?", "#")):
        return None
    return Origin(scheme, parts.hostname, port if port is not None else DEFAULT_PORTS[scheme])


def request_origin(scheme: str, host: str | None) -> Origin | None:
    """The origin a request was sent to: its scheme and its ``Host`` header (``None`` without one)."""
    if not host or "/" in host or "@" in host:
        return None
    return parse_origin(f"{scheme}://{host}")


def checked_origin(text: str) -> str:
    """``text`` as a configured origin in its canonical spelling, or a ``ValueError`` saying what one is."""
    origin = parse_origin(text)
    if origin is None:
        raise ValueError(f"{text!r} is not an origin: write it as http://HOST[:PORT] or https://HOST[:PORT]")
    return str(origin)
