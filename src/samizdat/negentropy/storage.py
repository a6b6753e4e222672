"""Sorted-item storages that the reconciler reads through.

The reconciler never needs the whole set at once: it asks for the size, for single
items at bucket edges, for runs of items (to send or compare id lists), for the
index where a bound falls, and for fingerprints of index ranges. :class:`Storage`
is exactly that surface, so that a view over SQLite's ``(created_at, id)`` index can
implement it later without loading every event; :class:`VectorStorage` is the
in-memory version used by tests, the client side and small sets.

Indexes are positions in the sorted order (timestamp ascending, then id bytewise
ascending). Ranges are half-open ``[begin, end)``.
"""

from __future__ import annotations

import bisect
from abc import ABC, abstractmethod
from collections.abc import Iterable, Iterator

from .errors import NegentropyError
from .fingerprint import SUM_MASK, fingerprint_from_sum
from .types import Bound, Item, check_item


class Storage(ABC):
    """The read interface the protocol needs from a sorted set of items."""

    @abstractmethod
    def size(self) -> int:
        """Number of items."""

    @abstractmethod
    def get_item(self, i: int) -> Item:
        """The item at sorted position ``i`` as ``(timestamp, id)``."""

    @abstractmethod
    def iterate(self, begin: int, end: int) -> Iterator[Item]:
        """Items at positions ``begin .. end-1`` in order."""

    @abstractmethod
    def find_lower_bound(self, begin: int, end: int, bound: Bound) -> int:
        """The first position in ``[begin, end)`` whose item is ``>= bound``, else ``end``."""

    def fingerprint(self, begin: int, end: int) -> bytes:
        """The fingerprint of the items at ``[begin, end)``.

        This default walks the range (O(n)); storages that can keep running sums
        should override it, since the reconciler asks for many overlapping ranges.
        """
        self._check_range(begin, end)
        total = 0
        for _, item_id in self.iterate(begin, end):
            total += int.from_bytes(item_id, "little")
        return fingerprint_from_sum(total, end - begin)

    def _check_range(self, begin: int, end: int) -> None:
        if not 0 <= begin <= end <= self.size():
            raise NegentropyError(f"bad range [{begin}, {end}) for storage of size {self.size()}")


class VectorStorage(Storage):
    """All items in a sorted list, with prefix sums for O(1) fingerprints.

    Fill it with :meth:`insert` (any order), then :meth:`seal`, which sorts, rejects
    duplicates and builds the prefix sums; reading before sealing or inserting after
    it is refused, because the sums would silently go stale.
    """

    __slots__ = ("_items", "_sealed", "_sums")

    def __init__(self, items: Iterable[tuple[int, bytes]] = ()) -> None:
        self._items: list[Item] = []
        self._sums: list[int] = []
        self._sealed = False
        for timestamp, item_id in items:
            self.insert(timestamp, item_id)

    @classmethod
    def from_items(cls, items: Iterable[tuple[int, bytes]]) -> VectorStorage:
        """Build and seal in one go."""
        storage = cls(items)
        storage.seal()
        return storage

    @property
    def sealed(self) -> bool:
        return self._sealed

    def insert(self, timestamp: int, item_id: bytes) -> None:
        """Add one item; only before :meth:`seal`."""
        if self._sealed:
            raise NegentropyError("storage is already sealed")
        check_item(timestamp, item_id)
        self._items.append((timestamp, bytes(item_id)))

    def seal(self) -> None:
        """Sort, refuse duplicates, and precompute prefix sums of the ids."""
        if self._sealed:
            raise NegentropyError("storage is already sealed")
        items = self._items
        items.sort()
        for i in range(1, len(items)):
            if items[i - 1] == items[i]:
                raise NegentropyError(f"duplicate item {items[i][0]},{items[i][1].hex()}")
        # The protocol reports differences by id alone, so one id at two timestamps
        # would make have/need answers ambiguous.
        if len({item_id for _, item_id in items}) != len(items):
            raise NegentropyError("the same id appears with two different timestamps")
        sums = [0] * (len(items) + 1)
        total = 0
        for i, (_, item_id) in enumerate(items, 1):
            total = (total + int.from_bytes(item_id, "little")) & SUM_MASK
            sums[i] = total
        self._sums = sums
        self._sealed = True

    def _check_sealed(self) -> None:
        if not self._sealed:
            raise NegentropyError("storage is not sealed")

    def size(self) -> int:
        self._check_sealed()
        return len(self._items)

    def get_item(self, i: int) -> Item:
        self._check_sealed()
        if not 0 <= i < len(self._items):
            raise NegentropyError(f"item index {i} out of range")
        return self._items[i]

    def iterate(self, begin: int, end: int) -> Iterator[Item]:
        self._check_sealed()
        self._check_range(begin, end)
        return iter(self._items[begin:end])

    def find_lower_bound(self, begin: int, end: int, bound: Bound) -> int:
        self._check_sealed()
        self._check_range(begin, end)
        return bisect.bisect_left(self._items, bound.key(), begin, end)

    def fingerprint(self, begin: int, end: int) -> bytes:
        self._check_sealed()
        self._check_range(begin, end)
        return fingerprint_from_sum(self._sums[end] - self._sums[begin], end - begin)

    def __len__(self) -> int:
        return self.size()

    def __iter__(self) -> Iterator[Item]:
        return self.iterate(0, self.size())
