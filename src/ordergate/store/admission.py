"""Admission control of the API's reads, for every engine: a lane of its own, and a bounded one.

The reads behind ``GET /v1/orders``, ``/v1/positions``, ``/v1/trades`` and ``/v1/orders/{id}`` run on
connections of their own (SQLite: threads, each with its read connection; PostgreSQL: a small pool of
its own), never on the ones order entry waits for (idempotency lookups, the group transactions, the
readiness probe). However many viewers ask at once, at most :data:`READ_CONNECTIONS` of these reads run
and :data:`READ_QUEUE` wait; the next one is refused at once with
:class:`~ordergate.errors.ReadsBusy` (HTTP 503 with ``Retry-After``), so a storm of reads costs its
own lane its latency and never order entry its connections.
"""

from __future__ import annotations

from ordergate.errors import ReadsBusy

READ_CONNECTIONS = 2
"""API reads running at once per gateway process (each on its own connection)."""
READ_QUEUE = 32
"""API reads waiting for a connection; past these, a read is answered 503 at once."""


class Admission:
    """Counts the reads admitted to a lane (running or waiting) and refuses those past its capacity.

    Used from the event loop only: :meth:`admit` before a read is queued, :meth:`release` once it has
    finished (on the loop), whatever its outcome.
    """

    def __init__(self, running: int, waiting: int) -> None:
        self.running = running
        self.waiting = waiting
        self.admitted = 0

    @property
    def capacity(self) -> int:
        return self.running + self.waiting

    def admit(self) -> None:
        if self.admitted >= self.capacity:
            raise ReadsBusy(
                f"too many reads at once ({self.running} running, {self.waiting} waiting); "
                "narrow the query or retry shortly"
            )
        self.admitted += 1

    def release(self) -> None:
        self.admitted -= 1
