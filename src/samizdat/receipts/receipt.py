"""The hub receipt event (kind 3041): build, parse and check. Pure code, no I/O.

A receipt is a regular Nostr event signed with the hub's key. It says: "between
``start`` (inclusive) and ``end`` (exclusive), by my clock, I stored these ``count``
events", committing to their ids with the Merkle root of :mod:`.merkle`. Because it is a
signed regular event, it is stored, synced and carried in bundles like any report, and
another hub's receipt that includes it bounds when it existed. The format is specified in
docs/report-format.md ("Hub receipts").
"""

from __future__ import annotations

import re
import time
from dataclasses import dataclass
from datetime import UTC, datetime

from coincurve import PrivateKey

from ..nostr.event import HEX64, Event, sign_event

#: Not in the NIPs' kind list nor the registry-of-kinds (checked 2026-11-28); regular
#: range (1000-9999), so relays store every receipt (docs/decisions.md).
RECEIPT_KIND = 3041
RECEIPT_VERSION = "1"
#: Names the tree construction in the ``root`` tag, so a later one can be told apart.
MERKLE_SCHEME = "rfc6962-sha256"

GEOHASH_ALPHABET = "0123456789bcdefghjkmnpqrstuvwxyz"
GEOHASH = re.compile(f"[{GEOHASH_ALPHABET}]{{1,12}}")
#: A hub declares where it is only coarsely: 6 characters is about 1.2 km x 0.6 km.
MAX_PLACE_PRECISION = 6
_DECIMAL = re.compile(r"0|[1-9][0-9]{0,15}")


class InvalidReceipt(ValueError):
    """The event is not a well-formed receipt; the message says why."""


@dataclass(frozen=True, slots=True)
class Receipt:
    id: str
    hub: str  # the hub's pubkey (hex)
    created_at: int
    start: int
    end: int
    count: int
    root: bytes
    place: str  # the longest g tag, "" if the hub declared none
    prev: str | None  # the id of this hub's previous receipt

    def describe(self) -> str:
        return (f"{self.count} event{'s' * (self.count != 1)} stored between "
                f"{utc(self.start)} and {utc(self.end)}")


def utc(ts: int) -> str:
    return datetime.fromtimestamp(ts, UTC).strftime("%Y-%m-%d %H:%M:%S UTC")


def place_tags(place: str) -> list[list[str]]:
    """``g`` tags for a geohash and every shorter prefix down to 2 characters (the
    convention of reports, docs/report-format.md), longest first."""
    if not place:
        return []
    return [["g", place[:n]] for n in range(len(place), min(2, len(place)) - 1, -1)]


def check_place(place: str) -> str | None:
    """Why ``place`` is not acceptable as a hub's declared place, or None."""
    if place and not GEOHASH.fullmatch(place):
        return f"{place!r} is not a geohash (lowercase, letters {GEOHASH_ALPHABET})"
    if len(place) > MAX_PLACE_PRECISION:
        return (f"{place!r} is more precise than {MAX_PLACE_PRECISION} characters (about "
                "1 km); a hub's place is public in every receipt, so declare the district "
                f"or the city: {place[:4]!r} or {place[:5]!r}")
    return None


def build_receipt(key: PrivateKey, start: int, end: int, count: int, root: bytes, *,
                  place: str = "", prev: str | None = None,
                  created_at: int | None = None) -> Event:
    """Sign a receipt for ``count`` ids stored in ``[start, end)`` with Merkle ``root``."""
    created_at = int(time.time()) if created_at is None else created_at
    if not 0 <= start < end <= created_at:
        raise InvalidReceipt("a receipt's window must be non-empty and closed before it is "
                             "signed (start < end <= created_at)")
    if count < 1 or len(root) != 32:
        raise InvalidReceipt("a receipt commits to at least one id with a 32-byte root")
    if (why := check_place(place)) is not None:
        raise InvalidReceipt(why)
    if prev is not None and not HEX64.fullmatch(prev):
        raise InvalidReceipt("prev must be a receipt id (64 hex characters)")
    summary = (f"{count} event{'s' * (count != 1)} stored between {utc(start)} and "
               f"{utc(end)}")
    tags = [
        ["alt", f"samizdat hub receipt: {summary}"],
        ["version", RECEIPT_VERSION],
        ["window", str(start), str(end)],
        ["count", str(count)],
        ["root", root.hex(), MERKLE_SCHEME],
    ]
    if prev is not None:
        tags.append(["prev", prev])
    tags += place_tags(place)
    content = (f"samizdat hub receipt: {summary}, by this hub's clock. Merkle root "
               f"{root.hex()} ({MERKLE_SCHEME} over the sorted event ids). Anyone holding "
               "one of those events can check it is included: `samizdat prove ID` on the "
               "hub, `samizdat verify-proof FILE` anywhere.")
    return sign_event(key, RECEIPT_KIND, content, tags, created_at)


def _one(ev: Event, name: str) -> list[str]:
    found = [t for t in ev.tags if t and t[0] == name]
    if len(found) != 1:
        raise InvalidReceipt(f"a receipt has exactly one {name!r} tag, this one has "
                             f"{len(found)}")
    return found[0]


def _int(value: str, what: str) -> int:
    if not _DECIMAL.fullmatch(value):
        raise InvalidReceipt(f"{what} must be a decimal integer, not {value!r}")
    return int(value)


def parse_receipt(ev: Event) -> Receipt:
    """Check the shape of a receipt event (not its signature: see ``Event.verify``)."""
    if ev.kind != RECEIPT_KIND:
        raise InvalidReceipt(f"a receipt is kind {RECEIPT_KIND}, not {ev.kind}")
    version = _one(ev, "version")
    if len(version) < 2 or version[1] != RECEIPT_VERSION:
        raise InvalidReceipt(f"receipt version {version[1:2]} is not known here (this "
                             f"samizdat reads version {RECEIPT_VERSION}); upgrade samizdat")
    window = _one(ev, "window")
    if len(window) < 3:
        raise InvalidReceipt("the window tag is [\"window\", START, END]")
    start, end = _int(window[1], "window start"), _int(window[2], "window end")
    if not start < end:
        raise InvalidReceipt("the window is empty or reversed (start >= end)")
    if ev.created_at < end:
        raise InvalidReceipt("the receipt is dated before its window closed")
    count_tag = _one(ev, "count")
    count = _int(count_tag[1] if len(count_tag) > 1 else "", "count")
    if count < 1:
        raise InvalidReceipt("a receipt commits to at least one event")
    root_tag = _one(ev, "root")
    if len(root_tag) < 3 or not HEX64.fullmatch(root_tag[1]):
        raise InvalidReceipt("the root tag is [\"root\", 64 hex characters, SCHEME]")
    if root_tag[2] != MERKLE_SCHEME:
        raise InvalidReceipt(f"unknown Merkle scheme {root_tag[2]!r} (this samizdat knows "
                             f"{MERKLE_SCHEME!r}); upgrade samizdat")
    prev = None
    if any(t and t[0] == "prev" for t in ev.tags):
        tag = _one(ev, "prev")
        if len(tag) < 2 or not HEX64.fullmatch(tag[1]):
            raise InvalidReceipt("the prev tag names a receipt id (64 hex characters)")
        prev = tag[1]
    places = ev.tag_values("g")
    place = max(places, key=len) if places else ""
    if place and not GEOHASH.fullmatch(place):
        raise InvalidReceipt(f"the g tag {place!r} is not a geohash")
    return Receipt(ev.id, ev.pubkey, ev.created_at, start, end, count,
                   bytes.fromhex(root_tag[1]), place, prev)
