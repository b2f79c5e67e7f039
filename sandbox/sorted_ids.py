"""`SortedIds`: a set of string ids kept in sorted order, for paging without sorting per request.

Inserting or removing one id moves part of a list of pointers (a fast memmove, even at a
million entries); adding a batch that sorts after everything present is an append.
"""

from __future__ import annotations

from bisect import bisect_left
from collections.abc import Iterable


class SortedIds:
    """Not thread-safe: its owner holds the lock."""

    def __init__(self) -> None:
        self._ids: list[str] = []

    def __len__(self) -> int:
        return len(self._ids)

    def __contains__(self, item: object) -> bool:
        if not isinstance(item, str):
            return False
        index = bisect_left(self._ids, item)
        return index < len(self._ids) and self._ids[index] == item

    def add(self, item: str) -> None:
        index = bisect_left(self._ids, item)
        if index == len(self._ids) or self._ids[index] != item:
            self._ids.insert(index, item)

    def discard(self, item: str) -> None:
        index = bisect_left(self._ids, item)
        if index < len(self._ids) and self._ids[index] == item:
            del self._ids[index]

    def update(self, items: Iterable[str]) -> None:
        """Add many ids at once; the caller guarantees none is present yet."""
        new = sorted(items)
        if not new:
            return
        if not self._ids or new[0] > self._ids[-1]:
            self._ids.extend(new)
        else:
            # Two sorted runs: Timsort merges them in linear time.
            self._ids.extend(new)
            self._ids.sort()

    def remove_many(self, items: set[str]) -> None:
        if len(items) < 64:
            for item in items:
                self.discard(item)
        elif items:
            # One pass instead of a memmove per id.
            self._ids = [i for i in self._ids if i not in items]

    def page(self, offset: int, limit: int) -> list[str]:
        return self._ids[offset : offset + limit]

    def clear(self) -> None:
        self._ids.clear()
