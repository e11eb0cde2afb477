"""A bounded map that forgets its least recently stored key: the one bounded LRU.

Storing a key (new or again) makes it the most recent; past ``max_entries`` the least recent
key is dropped and counted in :attr:`BoundedLRU.evicted`. Reading (``[]``, :meth:`get`,
``in``) does not reorder, so a cache of finished results keeps its oldest-first order while a
rate limiter, which stores on every use, keeps its most active keys.
"""

from __future__ import annotations

from collections import OrderedDict
from typing import Generic, Iterator, TypeVar

from ..errors import ConfigError

K = TypeVar("K")
V = TypeVar("V")


class BoundedLRU(Generic[K, V]):
    """At most ``max_entries`` keys; storing one more drops the least recently stored."""

    __slots__ = ("max_entries", "evicted", "_items")

    def __init__(self, max_entries: int) -> None:
        if isinstance(max_entries, bool) or not isinstance(max_entries, int) or max_entries < 1:
            raise ConfigError(f"max_entries {max_entries!r} is invalid; expected an int >= 1")
        self.max_entries = max_entries
        self.evicted = 0
        self._items: OrderedDict[K, V] = OrderedDict()

    def __setitem__(self, key: K, value: V) -> None:
        items = self._items
        items[key] = value
        items.move_to_end(key)
        while len(items) > self.max_entries:
            items.popitem(last=False)
            self.evicted += 1

    def __getitem__(self, key: K) -> V:
        return self._items[key]

    def get(self, key: K, default: V | None = None) -> V | None:
        return self._items.get(key, default)

    def pop(self, key: K, default: V | None = None) -> V | None:
        return self._items.pop(key, default)

    def __contains__(self, key: object) -> bool:
        return key in self._items

    def __len__(self) -> int:
        return len(self._items)

    def __iter__(self) -> Iterator[K]:
        """Keys from the least to the most recently stored."""
        return iter(self._items)

    def items(self):
        return self._items.items()
