"""A compact storage for large sets: two flat buffers instead of a tuple per item.

A hub reconciling a million events with :class:`~.storage.VectorStorage` would hold a
million tuples, a million ``bytes`` and a million prefix-sum integers (~250 MB of
Python objects). :class:`PackedStorage` keeps the timestamps in an ``array('Q')``
(8 bytes each) and the ids in one ``bytes`` (32 each), and keeps running id sums only
every :data:`CHUNK` items, adding at most ``CHUNK - 1`` ids at each end of a range when
a fingerprint is asked for. About 41 bytes per item in all.
"""

from __future__ import annotations

from array import array
from collections.abc import Iterator

from .errors import NegentropyError
from .fingerprint import SUM_MASK, fingerprint_from_sum
from .storage import Storage
from .types import ID_SIZE, INFINITY, Bound, Item

#: Items per stored running sum: a fingerprint costs at most ~2×CHUNK id additions.
CHUNK = 32


class PackedStorage(Storage):
    """Sorted items in flat buffers. Build with :meth:`from_sorted` (already ordered)."""

    __slots__ = ("_ids", "_n", "_sums", "_ts")

    def __init__(self, timestamps: array, ids: bytes) -> None:
        if timestamps.typecode != "Q":
            raise NegentropyError("timestamps must be an array('Q')")
        if len(ids) != len(timestamps) * ID_SIZE:
            raise NegentropyError("ids buffer does not hold one 32-byte id per timestamp")
        self._ts = timestamps
        self._ids = bytes(ids)
        self._n = len(timestamps)
        self._check_order()
        self._sums = self._chunk_sums()

    @classmethod
    def from_sorted(cls, items: Iterator[tuple[int, bytes]] | list[tuple[int, bytes]]
                    ) -> PackedStorage:
        ts = array("Q")
        buf = bytearray()
        for t, i in items:
            ts.append(t)
            buf += i
        return cls(ts, bytes(buf))

    def _check_order(self) -> None:
        ts, ids = self._ts, self._ids
        prev: Item | None = None
        for i in range(self._n):
            t = ts[i]
            if t >= INFINITY:
                raise NegentropyError(f"timestamp {t} is reserved")
            cur = (t, ids[i * ID_SIZE:(i + 1) * ID_SIZE])
            if prev is not None and cur <= prev:
                raise NegentropyError("items are not strictly sorted by (timestamp, id)")
            prev = cur

    def _chunk_sums(self) -> list[int]:
        ids = self._ids
        sums = [0]
        total = 0
        for start in range(0, self._n, CHUNK):
            stop = min(start + CHUNK, self._n)
            for i in range(start, stop):
                total += int.from_bytes(ids[i * ID_SIZE:(i + 1) * ID_SIZE], "little")
            total &= SUM_MASK
            sums.append(total)
        return sums

    def size(self) -> int:
        return self._n

    def get_item(self, i: int) -> Item:
        if not 0 <= i < self._n:
            raise NegentropyError(f"item index {i} out of range")
        return (self._ts[i], self._ids[i * ID_SIZE:(i + 1) * ID_SIZE])

    def iterate(self, begin: int, end: int) -> Iterator[Item]:
        self._check_range(begin, end)
        ts, ids = self._ts, self._ids
        for i in range(begin, end):
            yield (ts[i], ids[i * ID_SIZE:(i + 1) * ID_SIZE])

    def find_lower_bound(self, begin: int, end: int, bound: Bound) -> int:
        self._check_range(begin, end)
        key = bound.key()
        ts, ids = self._ts, self._ids
        lo, hi = begin, end
        while lo < hi:
            mid = (lo + hi) // 2
            if (ts[mid], ids[mid * ID_SIZE:(mid + 1) * ID_SIZE]) < key:
                lo = mid + 1
            else:
                hi = mid
        return lo

    def _prefix(self, i: int) -> int:
        """Sum of the first ``i`` ids (mod 2**256)."""
        chunk, rest = divmod(i, CHUNK)
        total = self._sums[chunk]
        ids = self._ids
        base = chunk * CHUNK
        for j in range(base, base + rest):
            total += int.from_bytes(ids[j * ID_SIZE:(j + 1) * ID_SIZE], "little")
        return total

    def fingerprint(self, begin: int, end: int) -> bytes:
        self._check_range(begin, end)
        return fingerprint_from_sum((self._prefix(end) - self._prefix(begin)) & SUM_MASK,
                                    end - begin)
