"""The CLI's side of the Python client: a client per command, and its errors as one line for an operator.

The operator commands (listings, ``control``, ``risk``) talk to a running gateway through
:class:`ordergate.client.Client`. They retry briefly (a gateway that is not there is reported within
moments, not after the library's default half a minute), and turn the client's exceptions into the
message :func:`ordergate.cli.fail` prints: what happened, and what to do about it.
"""

from __future__ import annotations

from urllib.parse import urlsplit

from ordergate.client import (
    AnswerLost,
    Client,
    Forbidden,
    GatewayUnreachable,
    OrdergateError,
    RetryPolicy,
    Unauthorized,
)

CLI_RETRY = RetryPolicy(attempts=3, total_seconds=5.0)
"""Enough to ride over a dropped keep-alive connection or a brief 503; short enough for a person waiting."""
_ADMIN_PATHS = ("/v1/controls", "/v1/admin", "/v1/risk")


def connect(url: str, api_key: str | None) -> Client:
    """A client of the gateway at ``url`` for one command (``api_key`` is the ``--api-key`` option, which
    already falls back to ``ORDERGATE_API_KEY``)."""
    return Client(url, api_key or None, retry=CLI_RETRY)


def problem(exc: OrdergateError) -> str:
    """The one-line message for a failed call, with a hint where the fix is the operator's."""
    if isinstance(exc, AnswerLost):
        return f"{exc}: see 'ordergate control list' and 'ordergate positions' before sending it again"
    if isinstance(exc, GatewayUnreachable):
        return f"{exc}; start one with 'ordergate serve' or pass --url"
    if isinstance(exc, Unauthorized):
        return f"{exc} (pass --api-key or set ORDERGATE_API_KEY)"
    if isinstance(exc, Forbidden) and urlsplit(exc.url).path.startswith(_ADMIN_PATHS):
        return f"{exc} (this needs an admin key)"
    return str(exc)
