"""State files: what a hub holds, small enough to carry, so another hub can export the rest.

The carrier takes the state file from hub B to hub A in one direction only: A cannot ask
B questions (that is what negentropy over a link does). So the file must let A decide,
for each of its own events, "does B have it?", with no false "yes": a false yes means an
event does not travel. It is a set-membership structure over B's event ids:

- every id is hashed with keyed BLAKE2b under a random salt chosen when the file is
  made, so nobody can craft an event id that collides with a victim's in the file;
- the top ``b`` bits of the hash (``2**b >= N``) pick a bucket, the next 48 bits are
  stored (6 bytes); buckets are stored as one count byte each, entries sorted by bucket.

A lookup is wrong with probability (events in its bucket) / 2**48, about 4e-15: for a
million-event export, about one chance in 300 million that a single event stays behind,
and the next state file (new salt) catches it. Size: 6 bytes per event plus ~2 bits per
bucket after zstd (docs/decisions.md has the measurements and the alternatives).
"""

from __future__ import annotations

import hashlib
import os
import secrets
import struct
import time
from array import array
from dataclasses import dataclass
from itertools import accumulate
from pathlib import Path
from typing import Any

import orjson
import zstandard

from .errors import BundleError
from .format import HEX32, HEX64

MAGIC = b"SZSTATE\n"
FORMAT = "samizdat-state"
VERSION = 1
ENTRY = 6  # bytes stored per event (48 bits of the keyed hash)
MIN_BITS, MAX_BITS = 8, 28
MAX_EVENTS = 200_000_000
MAX_HEADER = 64 * 1024


def _bits_for(n: int) -> int:
    return max(MIN_BITS, (max(n, 1) - 1).bit_length())


def _hash(salt: bytes, eid: bytes, bits: int) -> tuple[int, bytes]:
    v = int.from_bytes(hashlib.blake2b(eid, digest_size=16, key=salt).digest(), "big")
    bucket = v >> (128 - bits)
    low = (v >> (128 - bits - 48)) & 0xFFFF_FFFF_FFFF
    return bucket, low.to_bytes(ENTRY, "big")


@dataclass(slots=True)
class HubState:
    """A loaded state file: ``contains(id)`` answers "does that hub have this event?"."""

    hub: str
    created_at: int
    count: int
    bits: int
    salt: bytes
    offsets: array  # entry index where each bucket starts (2**bits + 1 values)
    entries: bytes

    def contains(self, eid: bytes) -> bool:
        bucket, low = _hash(self.salt, eid, self.bits)
        start, stop = self.offsets[bucket] * ENTRY, self.offsets[bucket + 1] * ENTRY
        entries = self.entries
        return any(entries[i:i + ENTRY] == low for i in range(start, stop, ENTRY))

    def describe(self) -> dict[str, Any]:
        return {"hub": self.hub, "created_at": self.created_at, "events": self.count}


def encode_state(ids: bytes, hub: str, created_at: int | None = None,
                 salt: bytes | None = None) -> bytes:
    """The state file for the concatenated 32-byte ``ids``."""
    n = len(ids) // 32
    salt = salt or secrets.token_bytes(16)
    bits = _bits_for(n)
    while True:
        hashed = sorted(_hash(salt, ids[i:i + 32], bits) for i in range(0, len(ids), 32))
        counts = bytearray(1 << bits)
        ok = True
        for bucket, _ in hashed:
            if counts[bucket] == 255:
                ok = False
                break
            counts[bucket] += 1
        if ok:
            break
        bits += 1  # a bucket overflowed (practically never): spread wider
    body = bytes(counts) + b"".join(low for _, low in hashed)
    header = orjson.dumps({"format": FORMAT, "version": VERSION, "hub": hub,
                           "created_at": int(time.time()) if created_at is None else created_at,
                           "events": n, "bits": bits, "salt": salt.hex(),
                           "hash": "blake2b-128-keyed", "entry_bytes": ENTRY})
    comp = zstandard.ZstdCompressor(level=19, write_checksum=True).compress(body)
    return MAGIC + struct.pack("<I", len(header)) + header + comp


def decode_state(data: bytes, where: str) -> HubState:
    """Parse and bound-check a state file (it may come from anybody)."""
    def bad(problem: str) -> BundleError:
        return BundleError(where, problem, "make a new one with `samizdat state` on the "
                           "destination hub")

    if not data.startswith(MAGIC):
        raise bad("not a samizdat state file")
    if len(data) < len(MAGIC) + 4:
        raise bad("the state file is truncated")
    (hlen,) = struct.unpack("<I", data[len(MAGIC):len(MAGIC) + 4])
    start = len(MAGIC) + 4
    if hlen > MAX_HEADER or start + hlen > len(data):
        raise bad("the state file is truncated or damaged")
    try:
        head = orjson.loads(data[start:start + hlen])
    except orjson.JSONDecodeError:
        raise bad("the state file header is damaged") from None
    if type(head) is not dict or head.get("format") != FORMAT:
        raise bad("not a samizdat state file")
    if head.get("version") != VERSION:
        raise BundleError(where, f"unknown state file version {head.get('version')!r}; this "
                          f"samizdat reads version {VERSION}", "upgrade samizdat")
    n, bits, salt, hub = head.get("events"), head.get("bits"), head.get("salt"), head.get("hub")
    if (type(n) is not int or not 0 <= n <= MAX_EVENTS or type(bits) is not int
            or not MIN_BITS <= bits <= MAX_BITS or type(salt) is not str or not HEX32.fullmatch(salt)
            or type(hub) is not str or not HEX64.fullmatch(hub)
            or head.get("entry_bytes") != ENTRY):
        raise bad("the state file header is damaged")
    expect = (1 << bits) + n * ENTRY
    try:
        body = zstandard.ZstdDecompressor(max_window_size=1 << 27).decompress(
            data[start + hlen:], max_output_size=expect)
    except zstandard.ZstdError:
        raise bad("the state file is damaged (zstd)") from None
    if len(body) != expect:
        raise bad("the state file is damaged (wrong size)")
    counts = body[:1 << bits]
    offsets = array("Q", [0])
    offsets.extend(accumulate(counts))
    if offsets[-1] != n:
        raise bad("the state file is damaged (counts)")
    return HubState(hub, int(head.get("created_at") or 0), n, bits, bytes.fromhex(salt),
                    offsets, body[1 << bits:])


def write_state(path: Path, data: bytes) -> None:
    tmp = path.with_name(f".{path.name}.partial")
    with tmp.open("wb") as fh:
        fh.write(data)
        fh.flush()
        os.fsync(fh.fileno())
    os.replace(tmp, path)


def read_state(path: Path) -> HubState:
    try:
        size = path.stat().st_size
    except OSError as exc:
        raise BundleError(str(path), f"cannot read it ({exc.strerror})", "check the name") from None
    if size > MAX_EVENTS * ENTRY + (1 << MAX_BITS) + MAX_HEADER:
        raise BundleError(str(path), "far too large for a state file", "check the name")
    return decode_state(path.read_bytes(), str(path))
