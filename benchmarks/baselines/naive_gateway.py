"""Baseline 2, the naive gateway: correct, and built the way a typical first version would be.

FastAPI with pydantic models, one global lock around the whole decision, open positions kept in a
JSON file that is rewritten and fsync'ed after every accepted order, and an order log in a JSON file
that grows by one line (fsync'ed) per order. Same rules as ordergate's default ``account`` scope.
Configured by ``NAIVE_HOME`` (a folder holding Jsons/user_profile.json).
"""

from __future__ import annotations

import asyncio
import json
import os
from pathlib import Path
from typing import Literal

from fastapi import FastAPI
from pydantic import BaseModel

HOME = Path(os.environ.get("NAIVE_HOME", "."))
PROFILES: dict[str, dict[str, list[str]]] = json.loads((HOME / "Jsons" / "user_profile.json").read_text())
STATE = HOME / "naive_positions.json"
LOG = HOME / "naive_orders.jsonl"

app = FastAPI()
lock = asyncio.Lock()
positions: dict[str, str] = json.loads(STATE.read_text()) if STATE.exists() else {}
next_id = sum(1 for _ in LOG.open()) + 1 if LOG.exists() else 1


class OrderIn(BaseModel):
    STRATEGY: str
    INSTRUMENT: str
    POSITION: Literal["BUY", "SELL"]


def write_durably(path: Path, text: str, mode: str) -> None:
    with path.open(mode) as handle:
        handle.write(text)
        handle.flush()
        os.fsync(handle.fileno())


@app.post("/create_order")
async def create_order(order: OrderIn) -> dict[str, object]:
    global next_id
    async with lock:
        subscribers = [u for u, p in PROFILES.items() if order.STRATEGY in p]
        applied = []
        for user in subscribers:
            key = f"{user}|{order.INSTRUMENT}"
            if (
                order.POSITION == "BUY" and order.INSTRUMENT in PROFILES[user][order.STRATEGY] and key not in positions
            ) or (order.POSITION == "SELL" and key in positions):
                applied.append(user)
        reason = None
        if not applied:
            if not subscribers:
                reason = "UNKNOWN_STRATEGY"
            elif order.POSITION == "SELL":
                reason = "NO_OPEN_POSITION"
            elif any(order.INSTRUMENT in PROFILES[u][order.STRATEGY] for u in subscribers):
                reason = "ALREADY_HOLDING"
            else:
                reason = "INSTRUMENT_NOT_TRADED"
        for user in applied:
            key = f"{user}|{order.INSTRUMENT}"
            if order.POSITION == "BUY":
                positions[key] = order.STRATEGY
            else:
                del positions[key]
        order_id = next_id
        next_id += 1
        if applied:
            write_durably(STATE, json.dumps(positions), "w")
        entry = {"order_id": order_id, **order.model_dump(), "users": applied, "reason": reason}
        write_durably(LOG, json.dumps(entry) + "\n", "a")
    return {"RESPONSE": "ACCEPTED" if applied else "REJECTED", "ORDER_ID": order_id, "REASON": reason, "USERS": applied}
