"""Kind ranges (NIP-01) and proof of work (NIP-13)."""

from __future__ import annotations

from enum import Enum

DELETION = 5  # NIP-09
AUTH = 22242  # NIP-42


class Storage(Enum):
    """How a relay keeps an event of a given kind."""

    REGULAR = "regular"
    REPLACEABLE = "replaceable"  # one per (pubkey, kind)
    EPHEMERAL = "ephemeral"  # never stored, only forwarded
    ADDRESSABLE = "addressable"  # one per (pubkey, kind, d tag)


def storage_of(kind: int) -> Storage:
    if kind in (0, 3) or 10000 <= kind < 20000:
        return Storage.REPLACEABLE
    if 20000 <= kind < 30000:
        return Storage.EPHEMERAL
    if 30000 <= kind < 40000:
        return Storage.ADDRESSABLE
    return Storage.REGULAR


def pow_difficulty(event_id: str) -> int:
    """Number of leading zero bits of the hex id (NIP-13)."""
    bits = 0
    for ch in event_id:
        nibble = int(ch, 16)
        if nibble == 0:
            bits += 4
            continue
        return bits + 4 - nibble.bit_length()
    return bits


def committed_target(tags: list[list[str]]) -> int | None:
    """The difficulty the miner committed to in the ``nonce`` tag, if any."""
    for t in tags:
        if len(t) >= 3 and t[0] == "nonce":
            return int(t[2]) if t[2].isdigit() and len(t[2]) < 4 else None
    return None
