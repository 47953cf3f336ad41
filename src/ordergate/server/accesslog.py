"""Keeps API keys and webhook tokens out of the access log.

The dashboard's event stream carries its key as ``?api_key=`` (a browser's EventSource cannot send
headers), and uvicorn's access log writes every request's query string. :class:`RedactApiKeys`, a
filter on the ``uvicorn.access`` logger, replaces the value of every ``api_key`` query field (however
its name is percent-encoded, as the guard decodes it) with ``[redacted]`` before any handler sees it,
and so the token of an alert webhook's path (``/v1/hooks/<token>``: the path is its credential).
"""

from __future__ import annotations

import logging
import re
from urllib.parse import unquote_plus

ACCESS_LOGGER = "uvicorn.access"
REDACTED = "[redacted]"
KEY_FIELD = "api_key"
_QUERY = re.compile(r"\?([^\s\"]*)")
HOOKS_PREFIX = "/v1/hooks/"
_HOOK_TOKEN = re.compile(r"(/v1/hooks/)[^\s\"?]+")


def redact_query(query: str) -> str:
    """``query`` (``a=1&api_key=SECRET``) with the value of every ``api_key`` field replaced."""
    fields = query.split("&")
    for index, field in enumerate(fields):
        name, equals, _value = field.partition("=")
        if equals and unquote_plus(name).lower() == KEY_FIELD:
            fields[index] = f"{name}={REDACTED}"
    return "&".join(fields)


def redact(text: str) -> str:
    """``text`` with the query string of any path in it redacted, and any webhook token."""
    if HOOKS_PREFIX in text:
        text = _HOOK_TOKEN.sub(lambda match: match.group(1) + REDACTED, text)
    if "?" not in text:
        return text
    return _QUERY.sub(lambda match: "?" + redact_query(match.group(1)), text)


def _might_hold_key(text: str) -> bool:
    lowered = text.lower()
    return HOOKS_PREFIX in text or ("?" in text and ("api" in lowered or "%" in text))


class RedactApiKeys(logging.Filter):
    """Redacts ``api_key`` query values and webhook tokens in a record's arguments and message."""

    def filter(self, record: logging.LogRecord) -> bool:
        if isinstance(record.args, tuple):
            record.args = tuple(
                redact(arg) if isinstance(arg, str) and _might_hold_key(arg) else arg for arg in record.args
            )
        if isinstance(record.msg, str) and _might_hold_key(record.msg):
            record.msg = redact(record.msg)
        return True


def install_access_log_redaction() -> None:
    """Add :class:`RedactApiKeys` to the ``uvicorn.access`` logger (once; later calls do nothing)."""
    logger = logging.getLogger(ACCESS_LOGGER)
    if not any(isinstance(existing, RedactApiKeys) for existing in logger.filters):
        logger.addFilter(RedactApiKeys())
