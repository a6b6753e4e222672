"""Constants and small value types of negentropy protocol version 1.

Kept apart from the codec and the reconciler so that storage back-ends (the
in-memory vector here, an SQLite view later) can share the item and bound
definitions without importing the protocol machinery.
"""

from __future__ import annotations

from enum import IntEnum
from typing import NamedTuple

from .errors import NegentropyError

#: The version byte of protocol V1. Versions are ``0x60 + n``; bytes outside
#: ``0x60..0x6f`` are not negentropy at all.
PROTOCOL_VERSION = 0x61
PROTOCOL_VERSION_MIN_BYTE = 0x60
PROTOCOL_VERSION_MAX_BYTE = 0x6F

ID_SIZE = 32
FINGERPRINT_SIZE = 16

#: The largest u64 is reserved as "infinity": the upper bound of the last range.
#: No item may carry it as its timestamp.
MAX_U64 = (1 << 64) - 1
INFINITY = MAX_U64

_ZERO_ID = bytes(ID_SIZE)


class Mode(IntEnum):
    """What the payload of a range holds."""

    SKIP = 0
    FINGERPRINT = 1
    ID_LIST = 2


#: An item as storage hands it out: ``(timestamp, 32-byte id)``. A plain tuple,
#: because tuples compare in exactly the protocol's sort order (timestamp, then id
#: bytewise) and cost nothing to build in the hot loops.
Item = tuple[int, bytes]


class Bound(NamedTuple):
    """An upper (exclusive) or lower (inclusive) limit in (timestamp, id) space.

    ``id_prefix`` is 0..32 bytes; the missing tail counts as zero bytes. Two bounds
    with prefixes that differ only by trailing zeros are the same point.
    """

    timestamp: int
    id_prefix: bytes = b""

    def key(self) -> Item:
        """The point as an item tuple, directly comparable with stored items."""
        prefix = self.id_prefix
        if len(prefix) == ID_SIZE:
            return (self.timestamp, prefix)
        return (self.timestamp, prefix + _ZERO_ID[len(prefix) :])

    @property
    def is_infinity(self) -> bool:
        return self.timestamp == INFINITY


#: The upper bound of the whole universe, with the empty id the spec recommends.
INFINITY_BOUND = Bound(INFINITY, b"")
#: The lower bound of the whole universe.
ZERO_BOUND = Bound(0, b"")


def check_item(timestamp: int, item_id: bytes) -> None:
    """Refuse items the protocol cannot represent (wrong id size, reserved timestamp)."""
    if not isinstance(timestamp, int) or isinstance(timestamp, bool):
        raise NegentropyError(f"timestamp must be an int, not {type(timestamp).__name__}")
    if not 0 <= timestamp < INFINITY:
        raise NegentropyError(f"timestamp {timestamp} is outside 0..2**64-2")
    if not isinstance(item_id, bytes | bytearray | memoryview):
        raise NegentropyError(f"id must be bytes, not {type(item_id).__name__}")
    if len(item_id) != ID_SIZE:
        raise NegentropyError(f"id must be {ID_SIZE} bytes, got {len(item_id)}")


def minimal_bound(prev: Item, curr: Item) -> Bound:
    """The shortest bound that lies above ``prev`` and at or below ``curr``.

    Different timestamps need no id at all; equal timestamps need the common id
    prefix plus the first differing byte of ``curr``. Shorter bounds are what keep
    messages small, and the exact choice matters for byte-identical output with the
    reference implementations.
    """
    if prev[0] != curr[0]:
        return Bound(curr[0], b"")
    a, b = prev[1], curr[1]
    shared = 0
    while shared < ID_SIZE and a[shared] == b[shared]:
        shared += 1
    return Bound(curr[0], b[: shared + 1])
