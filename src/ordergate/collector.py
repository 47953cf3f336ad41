"""The garbage collector held off through one step that makes many objects at once.

It lives outside the service and the stores because both have such steps: deciding a big fan-out
(the sequencers) and building its rows (the SQLite store).
"""

from __future__ import annotations

import contextlib
import gc
from collections.abc import Iterator

HOLD_FROM = 10_000
"""Objects one step is about to make (positions, effects, rows) from which :func:`held_for` holds the
collector off during it."""


@contextlib.contextmanager
def held_for(size: int) -> Iterator[None]:
    """The collector held off through one step that makes about ``size`` objects, when that is many.

    A 100,000-user order makes some 400,000 tuples in a few hundred milliseconds (positions, keys,
    effects, changes, rows), nearly all of them kept (the book, the record) or immediately dropped, none
    in a cycle; the eight young-generation collections and the older one that so many allocations set off
    walk them, the book's dictionary and each other for 40 to 60 ms of its decision alone. Held off,
    the first collection after the step walks them once (and untracks the plain tuples for good).
    """
    if size < HOLD_FROM or not gc.isenabled():
        yield
        return
    gc.disable()
    try:
        yield
    finally:
        gc.enable()
