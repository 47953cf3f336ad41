"""Pages of ``GET /v1/users`` and ``GET /v1/strategies``: the profiles in force, by name, off the event loop.

Answering a registry of 20,000 users in one piece held the event loop for 300 ms (every order
waited), so both listings are paged like the others: ``{"items": [...], "next": cursor|null}``, at
most ``limit`` (<= 1000) items. The order is the names' code point order and the cursor is a name:
a page holds the names after ``after``, and ``next`` is the last name of the page when more follow.
Being a name, the cursor stays meaningful across a profile reload (a page then continues after it
in the new profiles).

The sorted names of a registry (:class:`ProfileIndex`) are built once per registry fingerprint,
on a worker thread, in short sorts of :data:`SORT_RUN` names merged by a generator, so that thread
never holds the GIL for long either; concurrent first requests share one build. A page is then
looked up and encoded on a worker thread, one ``orjson`` call per item, and only its bytes come back
to the loop.
"""

from __future__ import annotations

import asyncio
import bisect
import heapq
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Annotated

import orjson
from fastapi import Depends, Request

from ordergate.domain.registry import Registry

SORT_RUN = 4096
"""Names sorted in one call (well under a millisecond); the runs are merged by :func:`heapq.merge`."""


@dataclass(frozen=True, slots=True)
class ProfileIndex:
    """The user and strategy names of one registry, in code point order."""

    fingerprint: str
    users: tuple[str, ...]
    strategies: tuple[str, ...]


def sorted_names(names: Iterable[str]) -> tuple[str, ...]:
    """``tuple(sorted(names))``, in steps that each hold the GIL briefly."""
    pool = list(names)
    runs = [sorted(pool[start : start + SORT_RUN]) for start in range(0, len(pool), SORT_RUN)]
    return tuple(heapq.merge(*runs))


def index_of(registry: Registry) -> ProfileIndex:
    return ProfileIndex(registry.fingerprint, sorted_names(registry), sorted_names(registry.strategies))


class ProfileIndexes:
    """The index of the registry in force, built once per fingerprint on a worker thread."""

    def __init__(self) -> None:
        self._index: ProfileIndex | None = None
        self._building: dict[str, asyncio.Future[ProfileIndex]] = {}

    async def of(self, registry: Registry) -> ProfileIndex:
        fingerprint = registry.fingerprint
        index = self._index
        if index is not None and index.fingerprint == fingerprint:
            return index
        build = self._building.get(fingerprint)
        if build is None:
            build = self._building[fingerprint] = asyncio.ensure_future(asyncio.to_thread(index_of, registry))
            build.add_done_callback(lambda _: self._building.pop(fingerprint, None))
        index = await asyncio.shield(build)  # a client that goes away does not cancel the others' build
        self._index = index
        return index


def profile_indexes(request: Request) -> ProfileIndexes:
    """The app's :class:`ProfileIndexes`, made on first use."""
    state = request.app.state
    indexes: ProfileIndexes | None = getattr(state, "profile_indexes", None)
    if indexes is None:
        indexes = state.profile_indexes = ProfileIndexes()
    return indexes


ProfileIndexesDep = Annotated[ProfileIndexes, Depends(profile_indexes)]


def _window(names: Sequence[str], after: str | None, limit: int) -> tuple[Sequence[str], str | None]:
    """The names of the page after ``after``, and the cursor of the next page (``None``: this is the last)."""
    start = 0 if after is None else bisect.bisect_right(names, after)
    chosen = names[start : start + limit]
    return chosen, chosen[-1] if chosen and start + limit < len(names) else None


def _page(items: list[bytes], next_cursor: str | None) -> bytes:
    return b'{"items":[' + b",".join(items) + b'],"next":' + orjson.dumps(next_cursor) + b"}"


def users_page(registry: Registry, names: Sequence[str], after: str | None, limit: int) -> bytes:
    """The encoded page of ``GET /v1/users`` over ``names`` (sorted); run it on a worker thread."""
    chosen, next_cursor = _window(names, after, limit)
    profiles = registry.profiles()
    lists: dict[frozenset[str], list[str]] = {}  # subscribers share instrument sets: sort each once
    items = [
        orjson.dumps({"user": user, "strategies": _sorted_lists(profiles[user], lists)})
        for user in chosen
        if user in profiles
    ]
    return _page(items, next_cursor)


def strategies_page(
    registry: Registry, names: Sequence[str], after: str | None, limit: int, only_user: str | None
) -> bytes:
    """The encoded page of ``GET /v1/strategies`` over ``names`` (sorted); run it on a worker thread.

    With ``only_user`` (a viewer bound to one user) each strategy shows that user alone.
    """
    chosen, next_cursor = _window(names, after, limit)
    items = []
    for strategy in chosen:
        if only_user is not None:
            traded = registry.profiles().get(only_user, {}).get(strategy)
            if traded is None:
                continue
            item = {"strategy": strategy, "subscribers": [only_user], "instruments": sorted(traded)}
        else:
            subscribers = registry.subscribers(strategy)
            distinct = {s.instruments for s in subscribers}
            instruments = sorted(set().union(*distinct))
            item = {"strategy": strategy, "subscribers": [s.user for s in subscribers], "instruments": instruments}
        items.append(orjson.dumps(item))
    return _page(items, next_cursor)


def _sorted_lists(
    strategies: Mapping[str, frozenset[str]], lists: dict[frozenset[str], list[str]]
) -> dict[str, list[str]]:
    answer = {}
    for strategy, instruments in strategies.items():
        found = lists.get(instruments)
        if found is None:
            found = lists[instruments] = sorted(instruments)
        answer[strategy] = found
    return answer
