"""One line per committed decision in ``<home>/Logs/decisions.log``, rotated daily.

Lines are written by a background thread (a ``QueueListener``) so the event loop never waits for
the log file. Plain text by default, JSON lines with ``--log-format json``.
"""

from __future__ import annotations

import logging
import logging.handlers
import queue
from collections.abc import Sequence
from pathlib import Path

import orjson

from ordergate.domain.record import OrderRecord

LOGGER_NAME = "ordergate.decisions"


class DecisionLog:
    def __init__(self, logs_dir: Path, *, json_lines: bool = False, keep_days: int = 30) -> None:
        logs_dir.mkdir(parents=True, exist_ok=True)
        self._json = json_lines
        self._file = logging.handlers.TimedRotatingFileHandler(
            logs_dir / "decisions.log", when="midnight", backupCount=keep_days, encoding="utf-8", utc=True
        )
        self._file.setFormatter(logging.Formatter("%(message)s"))
        messages: queue.SimpleQueue[logging.LogRecord] = queue.SimpleQueue()
        self._listener = logging.handlers.QueueListener(messages, self._file)
        self._logger = logging.getLogger(LOGGER_NAME)
        self._logger.propagate = False
        self._logger.setLevel(logging.INFO)
        self._handler = logging.handlers.QueueHandler(messages)
        self._logger.addHandler(self._handler)
        self._listener.start()

    def __call__(self, records: Sequence[OrderRecord]) -> None:
        for record in records:
            self._logger.info(self._line(record))

    def _line(self, record: OrderRecord) -> str:
        d, o = record.decision, record.order
        if self._json:
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
        outcome = (
            "users=" + ", ".join(f"{e.user} {e.action}" for e in d.applied) if d.is_accepted else f"reason={d.reason}"
        )
        return f"{record.received_at} order={record.order_id} {d.status} {o.strategy} {o.instrument} {o.side} {outcome}"

    def close(self) -> None:
        self._listener.stop()
        self._logger.removeHandler(self._handler)
        self._file.close()
