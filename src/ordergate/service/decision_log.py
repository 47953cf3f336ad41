"""One line per committed decision in ``<home>/Logs/decisions.log``, rotated daily.

The event loop only hands each committed group to a queue; a background thread formats the group's
lines and writes them with one ``write`` and one flush, through a ``TimedRotatingFileHandler`` that
rotates at midnight UTC. Per-order logging calls cost a quarter of the gateway's CPU under load,
which is why this is not a plain ``logging`` call per order. Plain text by default, JSON lines with
``--log-format json``.
"""

from __future__ import annotations

import logging
import logging.handlers
import queue
import threading
from collections.abc import Sequence
from pathlib import Path

import orjson

from ordergate.domain.record import OrderRecord

LOGGER_NAME = "ordergate.decisions"


def text_line(record: OrderRecord) -> str:
    d, o = record.decision, record.order
    users = ", ".join(f"{e.user} {e.action}" for e in d.applied)
    outcome = f"users={users}" if d.is_accepted else f"reason={d.reason}"
    return f"{record.received_at} order={record.order_id} {d.status} {o.strategy} {o.instrument} {o.side} {outcome}"


def json_line(record: OrderRecord) -> str:
    d, o = record.decision, record.order
    return orjson.dumps(
        {
            "at": record.received_at,
            "order_id": record.order_id,
            "status": d.status,
            "reason": d.reason,
            "strategy": o.strategy,
            "instrument": o.instrument,
            "side": o.side,
            "client_order_id": record.client_order_id,
            "applied": [[e.user, e.action] for e in d.applied],
        }
    ).decode()


class DecisionLog:
    """A commit listener of the sequencer; :meth:`close` writes what is queued and stops the thread."""

    def __init__(self, logs_dir: Path, *, json_lines: bool = False, keep_days: int = 30) -> None:
        logs_dir.mkdir(parents=True, exist_ok=True)
        self._line = json_line if json_lines else text_line
        self._file = logging.handlers.TimedRotatingFileHandler(
            logs_dir / "decisions.log", when="midnight", backupCount=keep_days, encoding="utf-8", utc=True
        )
        self._file.setFormatter(logging.Formatter("%(message)s"))
        self._groups: queue.SimpleQueue[Sequence[OrderRecord] | None] = queue.SimpleQueue()
        self._writer = threading.Thread(target=self._write_forever, name="ordergate-decision-log", daemon=True)
        self._writer.start()

    def __call__(self, records: Sequence[OrderRecord]) -> None:
        self._groups.put(records)

    def _write_forever(self) -> None:
        while True:
            group = self._groups.get()
            if group is None:
                return
            lines = [self._line(record) for record in group]
            while not self._groups.empty():  # take whatever queued meanwhile: fewer, larger writes
                more = self._groups.get()
                if more is None:
                    self._emit(lines)
                    return
                lines.extend(self._line(record) for record in more)
            self._emit(lines)

    def _emit(self, lines: list[str]) -> None:
        entry = logging.LogRecord(LOGGER_NAME, logging.INFO, __file__, 0, "\n".join(lines), None, None)
        self._file.handle(entry)

    def close(self) -> None:
        self._groups.put(None)
        self._writer.join(timeout=10)
        self._file.close()
