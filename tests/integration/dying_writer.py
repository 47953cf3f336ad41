"""A SQLite writer process that dies on purpose: ``python -m tests.integration.dying_writer DB full|fast``.

``DYING_WRITER=before:N`` makes it exit (as ``kill -9`` would: no answer, no clean-up) when its N-th
transaction arrives, before running it; ``after:N`` runs and commits it, then exits before answering.
The fence every new writer runs first is its transaction 1. Every other request is the real writer's.
"""

from __future__ import annotations

import os
import sqlite3
import sys
from typing import Any

from ordergate.store.sqlite import writer_process

real_answer = writer_process.answer
transactions = 0


def dying_answer(
    conn: sqlite3.Connection | None, opening: Exception | None, kind: str, payload: Any
) -> tuple[str, Any]:
    global transactions
    when, _, count = os.environ.get("DYING_WRITER", "never:0").partition(":")
    if kind == "tx":
        transactions += 1
        if transactions == int(count) and when == "before":
            os._exit(9)
        if transactions == int(count) and when == "after":
            real_answer(conn, opening, kind, payload)
            os._exit(9)
    return real_answer(conn, opening, kind, payload)


if __name__ == "__main__":
    writer_process.answer = dying_answer  # type: ignore[assignment]
    sys.exit(writer_process.main(sys.argv))
