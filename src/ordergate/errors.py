"""The exceptions ordergate raises on purpose, in one tree.

    OrdergateError
    ├── StartupError        configuration, profiles or store cannot be used: exit 2 with one line
    │   └── StoreLocked     another process holds the embedded store
    ├── StoreUnavailable    the store could not commit or answer now: HTTP 503 with Retry-After
    │   └── ReadsBusy       too many API reads running and waiting: this one is refused at once
    ├── StoredRowError      a stored order row holds what ordergate never writes (altered): HTTP 409
    └── ClientOrderIdConflict  a client order id reused for another order: HTTP 409

Order rejections are not exceptions (they are values of the domain); everything else is a bug.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from ordergate.domain.record import OrderRecord
    from ordergate.store.base import TamperedRow


class OrdergateError(Exception):
    """Base of every deliberate ordergate error; ``str()`` is a message for the user."""


class StartupError(OrdergateError):
    """The gateway cannot start; the message says what to fix."""


class StoreLocked(StartupError):
    """The embedded store is already open in another process."""


class StoreUnavailable(OrdergateError):
    """The store failed to commit or to answer; the caller may retry after ``retry_after`` seconds."""

    def __init__(self, message: str, retry_after: int = 1) -> None:
        super().__init__(message)
        self.retry_after = retry_after


class StoredRowError(OrdergateError):
    """A stored order row does not decode; ``row`` names the order, the column and the problem.

    Not a store outage (retrying changes nothing) and not a bug: the row was altered outside
    ordergate, which ``ordergate verify`` reports as the first difference.
    """

    def __init__(self, row: TamperedRow) -> None:
        super().__init__(row.describe())
        self.row = row


class ReadsBusy(StoreUnavailable):
    """The API's read lane is full (its connections busy, its queue too): refused without touching the store."""


class ClientOrderIdConflict(OrdergateError):
    """A client order id was reused for a different order (HTTP 409).

    ``record`` is the stored order that holds the id, when known: the API decides how much of it the
    caller may see (a key limited to some strategies is not told about another strategy's order).
    """

    def __init__(self, message: str, record: OrderRecord | None = None) -> None:
        super().__init__(message)
        self.record = record

    @classmethod
    def of(cls, record: OrderRecord) -> ClientOrderIdConflict:
        o = record.order
        return cls(
            f"client_order_id {record.client_order_id!r} was already used by order {record.order_id} "
            f"({o.strategy} {o.instrument} {o.side.value}); use a new id for a different order",
            record,
        )
