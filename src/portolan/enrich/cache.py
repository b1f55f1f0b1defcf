"""The lookup cache in front of every GeoIP lookup: an LRU whose hits cost one
dictionary lookup."""

from __future__ import annotations

from typing import Final, Generic, TypeVar

V = TypeVar("V")

#: Lookups over which the share answered by the cache is measured.
WINDOW: Final = 10_000
#: When the cache answers fewer lookups than this share, only one new entry in
#: :data:`SAMPLE` is admitted.
LOW: Final = 0.2
SAMPLE: Final = 8
#: When the cache answers fewer lookups than this share, it is asked for the keys of only
#: one batch in :data:`ASK_EVERY`.
IDLE: Final = 0.01
ASK_EVERY: Final = 8


class LRU(Generic[V]):
    """A bounded cache that forgets what was not used for the longest time.

    Two generations of plain dictionaries: hits in the young one cost one dictionary
    lookup (the hot path of a skewed stream); a hit in the old one moves the entry to the
    young one; when the young one holds ``size`` entries, the old one is dropped and the
    young one becomes old. The ``size`` most recently used entries are always kept (and
    at most twice as many); the rest is forgotten within two generations.

    When almost every key is new (under :data:`LOW` of the last :data:`WINDOW` lookups
    answered here, after at least ``size`` misses, or idle as below), keeping them all
    costs more than it saves: :meth:`admit` then keeps one new entry in :data:`SAMPLE`,
    until keys come back again. A key that comes back often is soon among those kept.

    When it answers almost nothing (under :data:`IDLE` of the last :data:`WINDOW` lookups,
    full or not), even asking it costs more than it saves: :meth:`ask` then says to ask
    it for one batch of keys in :data:`ASK_EVERY` only, and those batches tell when keys
    come back.
    """

    def __init__(self, size: int) -> None:
        self.size = max(1, size)
        self._young: dict[str, V] = {}
        self._old: dict[str, V] = {}
        self.get_young = self._young.get
        self.hits = 0
        self.misses = 0
        self.sampling = False
        """Whether only a sample of new entries is admitted now."""
        self.idle = False
        """Whether it answers so few lookups that it is asked for few batches."""
        self._skipped = 0
        self._window = (0, 0)  # hits and misses when the current window started
        self._turn = 0

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

    def take(self, keys: list[str], *, young: bool = True) -> tuple[dict[str, V], list[str]]:
        """For distinct ``keys``: the entries found (those of the old generation are
        removed from it; the caller puts them back with :meth:`put_many`), and the keys
        not found. ``young=False``: none is in the young generation (the caller looked)."""
        old = self._old
        if not young:
            common = old.keys() & keys  # one pass in C: most keys of a busy stream are new
            if not common:
                self.misses += len(keys)
                return {}, keys
            found = {key: old.pop(key) for key in keys if key in common}
            missing = [key for key in keys if key not in common]
            self.hits += len(found)
            self.misses += len(missing)
            return found, missing
        pop = old.pop
        found = {}
        missing = []
        get = self._young.get
        for key in keys:
            value = get(key)
            if value is None:
                value = pop(key, None)
                if value is None:
                    missing.append(key)
                    continue
            found[key] = value
        self.hits += len(found)
        self.misses += len(missing)
        return found, missing

    def put_many(self, entries: dict[str, V]) -> None:
        """:meth:`put` for each entry, in order."""
        if len(self._young) + len(entries) < self.size:
            self._young.update(entries)
            return
        for key, value in entries.items():
            self.put(key, value)

    def admit(self, keys: list[str], values: list[V]) -> None:
        """:meth:`put_many` for new entries, given as keys and their values (all of them,
        or a sample; see the class)."""
        kept = self.chosen()
        self.put_many(dict(zip(keys[kept], values[kept], strict=True)))

    def chosen(self) -> slice:
        """Which of the new entries now at hand to admit (all of them, or a sample; see the
        class): the caller puts them with :meth:`put_many`."""
        hits, misses = self._window
        asked = self.hits + self.misses - hits - misses
        if asked >= WINDOW:
            # sampled once the cache could fill up: a stream that is warming up is not one
            # of new keys; but one where almost no key comes back within a window is (the
            # busy keys of a skewed stream come back within one)
            answered = self.hits - hits
            self.idle = answered < IDLE * asked
            self.sampling = answered < LOW * asked and (self.idle or self.misses >= self.size)
            self._window = (self.hits, self.misses)
        if self.sampling:
            self._turn = (self._turn + 1) % SAMPLE
            return slice(self._turn, None, SAMPLE)
        return slice(None)

    def ask(self) -> bool:
        """Whether to ask the cache for the keys of the next batch (always, unless it is
        idle; see the class). A batch not asked does not count as hits or misses, and
        admits nothing."""
        if not self.idle:
            return True
        self._skipped = (self._skipped + 1) % ASK_EVERY
        return self._skipped == 0

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
