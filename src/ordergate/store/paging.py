"""Cursor paging shared by every engine: a page of at most ``limit`` items and the cursor after it."""

from __future__ import annotations

from collections.abc import Callable
from typing import TypeVar

from ordergate.store.base import Page

T = TypeVar("T")


def page_of(items: list[T], limit: int, cursor_of: Callable[[T], int], bound: int | None = None) -> Page[T]:
    """The page of ``items`` fetched with ``LIMIT limit + 1``: one item more means there is a next page.

    ``bound`` is the id where a bounded walk stopped before the end of its candidates
    (:mod:`ordergate.store.queries`): a page that is not full then ends there, ``next`` = ``bound``,
    however few items it holds (none, perhaps); the next page goes on from there.
    """
    if len(items) > limit:
        items = items[:limit]
        return Page(items, cursor_of(items[-1]))
    return Page(items, bound)
