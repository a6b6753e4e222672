"""Bundle format version 1: constants, and strict checks of the header and manifest.

The full description is docs/bundle-format.md; this module is its executable half.
Every number that bounds what a reader will do with a hostile file lives here.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any

import orjson

from .errors import BundleError

FORMAT = "samizdat-bundle"
VERSION = 1
#: Kind of the manifest event. In the ephemeral range (NIP-01: 20000-29999), so a relay
#: that is ever handed a manifest forwards it at most and never stores it.
MANIFEST_KIND = 21210

TAG_HEADER = b"SZHD"
TAG_BLOB = b"SZBL"
TAG_MANIFEST = b"SZMF"

# What a reader accepts, whoever signed the file.
MAX_HEADER = 64 * 1024
MAX_MANIFEST = 16 * 1024 * 1024
MAX_PARTS = 999
MAX_LINE = 16 * 1024 * 1024  # one event as JSON; parse_event's own limits are far below
MAX_FRAME_RAW = 32 * 1024 * 1024  # decompressed size of one events frame
MAX_WINDOW = 1 << 25  # zstd window the decoder may allocate (the writer uses 2 MiB)
#: Decompressed/compressed. News JSON compresses about 3:1; far beyond 100:1 is a bomb.
MAX_RATIO = 100
BOMB_SLACK = 16 * 1024 * 1024  # ratio allowance for small inputs
MAX_BLOB_CHUNK = 64 * 1024 * 1024

# What the writer produces.
FRAME_RAW_TARGET = 4 * 1024 * 1024
LEVEL = 3
MIN_PART_SIZE = 64 * 1024

HEX32 = re.compile(r"[0-9a-f]{32}")
HEX64 = re.compile(r"[0-9a-f]{64}")
SAFE_NAME = re.compile(r"[A-Za-z0-9_][A-Za-z0-9._-]{0,254}")


def safe_name(name: object) -> bool:
    """A plain file name: no directories, no ``..``, nothing a shell or a path could abuse."""
    return type(name) is str and bool(SAFE_NAME.fullmatch(name)) and ".." not in name


def part_name(base: str, index: int) -> str:
    return f"{base}.{index:03d}"


@dataclass(slots=True, frozen=True)
class Header:
    """The first frame of every part: enough to group and order parts before anything else."""

    bundle: str
    part: int
    hub: str
    created_at: int

    def encode(self) -> bytes:
        return orjson.dumps({"format": FORMAT, "version": VERSION, "bundle": self.bundle,
                             "part": self.part, "hub": self.hub, "created_at": self.created_at})


def parse_header(body: bytes, where: str) -> Header:
    try:
        obj = orjson.loads(body)
    except orjson.JSONDecodeError:
        raise BundleError(where, "the part header is damaged (not valid JSON)",
                          "get a fresh copy of this file") from None
    if type(obj) is not dict or obj.get("format") != FORMAT:
        raise BundleError(where, "the part header is damaged (no samizdat-bundle format)",
                          "get a fresh copy of this file")
    version = obj.get("version")
    if version != VERSION:
        raise BundleError(where, f"unknown bundle format version {version!r}; this samizdat "
                          f"reads version {VERSION}", "upgrade samizdat to import it")
    bundle, part, hub, ts = (obj.get(k) for k in ("bundle", "part", "hub", "created_at"))
    if (type(bundle) is not str or not HEX32.fullmatch(bundle) or type(part) is not int
            or not 1 <= part <= MAX_PARTS or type(hub) is not str or not HEX64.fullmatch(hub)
            or type(ts) is not int):
        raise BundleError(where, "the part header is damaged (bad field)",
                          "get a fresh copy of this file")
    return Header(bundle, part, hub, ts)


# --- the manifest -------------------------------------------------------------------------


@dataclass(slots=True)
class PartRecord:
    part: int
    name: str
    bytes: int  # size of the part before the manifest frame
    header: str  # sha256 hex of the header frame
    events_sha256: str
    events_bytes: int  # compressed
    events_raw: int  # decompressed
    events_count: int
    blobs_sha256: str
    blobs_bytes: int

    def as_dict(self) -> dict[str, Any]:
        return {"part": self.part, "name": self.name, "bytes": self.bytes,
                "header": self.header,
                "events": {"sha256": self.events_sha256, "bytes": self.events_bytes,
                           "raw_bytes": self.events_raw, "count": self.events_count},
                "blobs": {"sha256": self.blobs_sha256, "bytes": self.blobs_bytes}}


@dataclass(slots=True)
class BlobRecord:
    sha256: str
    size: int


@dataclass(slots=True)
class Manifest:
    bundle: str
    hub: str
    created_at: int
    parts: list[PartRecord]
    blobs: list[BlobRecord]
    events_count: int
    events_raw: int
    events_bytes: int
    first: int | None
    last: int | None
    selection: dict[str, Any]

    def body(self) -> dict[str, Any]:
        return {
            "format": FORMAT, "version": VERSION, "bundle": self.bundle, "hub": self.hub,
            "created_at": self.created_at,
            "events": {"count": self.events_count, "raw_bytes": self.events_raw,
                       "bytes": self.events_bytes, "first": self.first, "last": self.last},
            "blobs": {"count": len(self.blobs), "bytes": sum(b.size for b in self.blobs),
                      "items": [{"sha256": b.sha256, "size": b.size} for b in self.blobs]},
            "selection": self.selection,
            "parts": [p.as_dict() for p in self.parts],
        }


def _int(v: object, lo: int = 0, hi: int = 2**62) -> bool:
    return type(v) is int and lo <= v <= hi


def parse_manifest_body(content: str, where: str) -> Manifest:
    """Check every field of a (signature-verified) manifest; names are checked for safety."""

    def bad(what: str) -> BundleError:
        return BundleError(where, f"the manifest is malformed ({what})",
                           "the exporting samizdat is broken or the file was forged")

    try:
        obj = orjson.loads(content)
    except orjson.JSONDecodeError:
        raise bad("content is not JSON") from None
    if type(obj) is not dict or obj.get("format") != FORMAT:
        raise bad("not a samizdat-bundle manifest")
    if obj.get("version") != VERSION:
        raise BundleError(where, f"unknown bundle format version {obj.get('version')!r}; this "
                          f"samizdat reads version {VERSION}", "upgrade samizdat to import it")
    ev, bl, parts = obj.get("events"), obj.get("blobs"), obj.get("parts")
    if type(ev) is not dict or type(bl) is not dict or type(parts) is not list:
        raise bad("missing events, blobs or parts")
    if not 1 <= len(parts) <= MAX_PARTS:
        raise bad(f"{len(parts)} parts")
    records: list[PartRecord] = []
    for i, p in enumerate(parts, 1):
        if type(p) is not dict:
            raise bad(f"part {i}")
        name = p.get("name")
        if not safe_name(name):
            raise BundleError(where, f"part {i} has an unsafe name {str(name)[:80]!r}",
                              "refusing the bundle: it was made to trick the reader")
        pe, pb = p.get("events"), p.get("blobs")
        if (p.get("part") != i or not _int(p.get("bytes")) or type(pe) is not dict
                or type(pb) is not dict):
            raise bad(f"part {i}")
        fields = (p.get("header"), pe.get("sha256"), pb.get("sha256"))
        if not all(type(h) is str and HEX64.fullmatch(h) for h in fields):
            raise bad(f"part {i} hashes")
        nums = (pe.get("bytes"), pe.get("raw_bytes"), pe.get("count"), pb.get("bytes"))
        if not all(_int(n) for n in nums):
            raise bad(f"part {i} sizes")
        records.append(PartRecord(i, name, p["bytes"], fields[0], fields[1], nums[0], nums[1],
                                  nums[2], fields[2], nums[3]))
    items = bl.get("items")
    if type(items) is not list:
        raise bad("blob list")
    blobs: list[BlobRecord] = []
    for it in items:
        h = it.get("sha256") if type(it) is dict else None
        if type(h) is not str or not HEX64.fullmatch(h):
            raise BundleError(where, f"blob name {str(h)[:80]!r} is not a sha256 digest",
                              "refusing the bundle: it was made to trick the reader")
        if not _int(it.get("size")):
            raise bad("blob size")
        blobs.append(BlobRecord(h, it["size"]))
    count, raw, size = ev.get("count"), ev.get("raw_bytes"), ev.get("bytes")
    if not (_int(count) and _int(raw) and _int(size)):
        raise bad("event totals")
    if (count != sum(r.events_count for r in records) or raw != sum(r.events_raw for r in records)
            or size != sum(r.events_bytes for r in records)):
        raise bad("event totals do not add up over the parts")
    bundle, hub, created = obj.get("bundle"), obj.get("hub"), obj.get("created_at")
    if not (type(bundle) is str and HEX32.fullmatch(bundle) and type(hub) is str
            and HEX64.fullmatch(hub) and _int(created)):
        raise bad("bundle, hub or created_at")
    first, last = ev.get("first"), ev.get("last")
    selection = obj.get("selection")
    return Manifest(bundle, hub, created, records, blobs, count, raw, size,
                    first if _int(first) else None, last if _int(last) else None,
                    selection if type(selection) is dict else {})
