"""Cursor paging shared by every engine: a page of at most ``limit`` items and the cursor after it."""

from __future__ import annotations

from collections.abc import Callable
from typing import TypeVar

from ordergate.store.base import Page

T = TypeVar("T")


def page_of(items: list[T], limit: int, cursor_of: Callable[[T], int]) -> Page[T]:
    """The page of ``items`` fetched with ``LIMIT limit + 1``: one item more means there is a next page."""
    if len(items) > limit:
        items = items[:limit]
        return Page(items, cursor_of(items[-1]))
    return Page(items, None)
