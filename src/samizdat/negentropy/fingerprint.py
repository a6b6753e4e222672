"""Range fingerprints: an incremental hash of the ids in a range.

``fingerprint = sha256(sum_le256(ids) mod 2**256 || varint(count))[:16]``

The sum is what makes it incremental: the sum over ``[a, b)`` is a difference of two
prefix sums, so a storage can answer any range in O(1) (the vector storage keeps
prefix sums; a database can keep running totals). The count is hashed in so that
sets whose sums collide by construction (e.g. adding a pair of ids that cancel mod
2**256) still differ.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable

from .types import FINGERPRINT_SIZE
from .varint import encode_varint

SUM_MODULUS = 1 << 256
SUM_MASK = SUM_MODULUS - 1


def id_to_int(item_id: bytes) -> int:
    """A 32-byte id as the little-endian 256-bit integer the sum is taken over."""
    return int.from_bytes(item_id, "little")


def sum_ids(ids: Iterable[bytes]) -> int:
    """The sum of ids mod 2**256."""
    total = 0
    for item_id in ids:
        total += int.from_bytes(item_id, "little")
    return total & SUM_MASK


def fingerprint_from_sum(id_sum: int, count: int) -> bytes:
    """The 16-byte fingerprint of a range whose ids add up to ``id_sum`` (any int; reduced mod 2**256)."""
    data = (id_sum & SUM_MASK).to_bytes(32, "little") + encode_varint(count)
    return hashlib.sha256(data).digest()[:FINGERPRINT_SIZE]


def fingerprint_of_ids(ids: Iterable[bytes]) -> bytes:
    """The fingerprint of a collection of ids (straightforward, for tests and simple storages)."""
    total = 0
    count = 0
    for item_id in ids:
        total += int.from_bytes(item_id, "little")
        count += 1
    return fingerprint_from_sum(total, count)
