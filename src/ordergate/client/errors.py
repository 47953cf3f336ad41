"""The client's exceptions: every call either returns a typed result or raises one of these.

::

    OrdergateError               anything the client could not do
    ├── GatewayUnreachable       no answer: connection refused or lost, or a timeout, after the retries
    │   └── AnswerLost           a request not safe to repeat was sent, and its answer lost: it may have run
    ├── ApiError                 the gateway answered with an error; ``status`` and the server's ``detail``
    │   ├── RequestRefused       a 4xx the caller must fix (never retried)
    │   │   ├── InvalidRequest   400, 413, 422: the body or a parameter is wrong; ``detail`` names it
    │   │   ├── Unauthorized     401: no key, or an unknown or revoked one
    │   │   ├── Forbidden        403: the key's role or bounds do not allow it
    │   │   ├── NotFound         404
    │   │   └── Conflict         409: the client order id was used for a different order
    │   └── Unavailable          429, 502, 503, 504 still answered when the retries ran out
    └── StreamEnded              the event stream cannot go on by itself
        ├── StreamResync         the resume token is not of this log: reload, then follow from ``token``
        └── StreamRevoked        the stream's key was revoked

A rejected order is not an exception: it is a result whose ``status`` is ``REJECTED``.
"""

from __future__ import annotations


class OrdergateError(Exception):
    """The call did not succeed; ``str()`` is one line saying what happened."""


class GatewayUnreachable(OrdergateError):
    """No answer came back from ``base_url`` (``cause`` names the last network error)."""

    def __init__(self, base_url: str, cause: str, attempts: int) -> None:
        super().__init__(self.describe(base_url, cause))
        self.base_url = base_url
        self.cause = cause
        self.attempts = attempts

    @staticmethod
    def describe(base_url: str, cause: str) -> str:
        return f"no gateway answers at {base_url} ({cause})"


class AnswerLost(GatewayUnreachable):
    """A request that is not safe to repeat (a flatten) went out and its answer was lost: it may have
    been carried out. Look (``controls()``, the listings) before sending it again."""

    @staticmethod
    def describe(base_url: str, cause: str) -> str:
        return f"the answer of {base_url} was lost ({cause}) after the request was sent; it may have been done"


class ApiError(OrdergateError):
    """The gateway answered ``status``; ``detail`` is its message, ``body`` its JSON (or ``None``)."""

    def __init__(self, method: str, url: str, status: int, detail: str, body: object = None) -> None:
        super().__init__(f"{method} {url} answered HTTP {status}: {detail}")
        self.method = method
        self.url = url
        self.status = status
        self.detail = detail
        self.body = body


class RequestRefused(ApiError):
    """A 4xx: sending the same request again cannot succeed, so it is never retried."""


class InvalidRequest(RequestRefused):
    pass


class Unauthorized(RequestRefused):
    pass


class Forbidden(RequestRefused):
    pass


class NotFound(RequestRefused):
    pass


class Conflict(RequestRefused):
    """The client order id (or ``Idempotency-Key``) was already used for a different order."""


class Unavailable(ApiError):
    """The gateway kept answering "not now" (nothing was stored) until the retries ran out."""


class StreamEnded(OrdergateError):
    """The event stream stopped for a reason a reconnect cannot fix."""


class StreamResync(StreamEnded):
    """The resume token is not of this gateway's log (``ahead_of_log``): reload, then follow from ``token``."""

    def __init__(self, reason: str, token: str) -> None:
        super().__init__(f"the event stream asks for a resync ({reason}): reload, then follow from {token}")
        self.reason = reason
        self.token = token


class StreamRevoked(StreamEnded):
    """The stream's API key was revoked while it was open."""


_BY_STATUS: dict[int, type[RequestRefused]] = {
    400: InvalidRequest,
    401: Unauthorized,
    403: Forbidden,
    404: NotFound,
    409: Conflict,
    413: InvalidRequest,
    422: InvalidRequest,
}


def api_error(method: str, url: str, status: int, detail: str, body: object = None) -> ApiError:
    """The exception for an error answer: a refusal for a 4xx, :class:`Unavailable` or a plain one otherwise."""
    if 400 <= status < 500 and status != 429:
        return _BY_STATUS.get(status, RequestRefused)(method, url, status, detail, body)
    if status in (429, 502, 503, 504):
        return Unavailable(method, url, status, detail, body)
    return ApiError(method, url, status, detail, body)
