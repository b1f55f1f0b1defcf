"""The lookup cache in front of every GeoIP lookup: an LRU whose hits cost one
dictionary lookup."""

from __future__ import annotations

from typing import Generic, TypeVar

V = TypeVar("V")


class LRU(Generic[V]):
    """A bounded cache that forgets what was not used for the longest time.

    Two generations of plain dictionaries: hits in the young one cost one dictionary
    lookup (the hot path of a skewed stream); a hit in the old one moves the entry to the
    young one; when the young one holds ``size`` entries, the old one is dropped and the
    young one becomes old. The ``size`` most recently used entries are always kept (and
    at most twice as many); the rest is forgotten within two generations.
    """

    def __init__(self, size: int) -> None:
        self.size = max(1, size)
        self._young: dict[str, V] = {}
        self._old: dict[str, V] = {}
        self.get_young = self._young.get
        self.hits = 0
        self.misses = 0

    def get(self, key: str) -> V | None:
        found = self._young.get(key)
        if found is not None:
            self.hits += 1
            return found
        found = self._old.pop(key, None)
        if found is None:
            self.misses += 1
            return None
        self.hits += 1
        self.put(key, found)
        return found

    def take_old(self, key: str) -> V | None:
        """The entry for ``key`` from the old generation, removed from it (the caller puts
        it back with :meth:`put`), after a miss in the young one."""
        return self._old.pop(key, None)

    def put(self, key: str, value: V) -> None:
        young = self._young
        if len(young) >= self.size:
            self._old = young
            self._young = young = {}
            self.get_young = young.get
        young[key] = value

    def clear(self) -> None:
        self._young = {}
        self._old = {}
        self.get_young = self._young.get

    def __len__(self) -> int:
        return len(self._young) + len(self._old)
