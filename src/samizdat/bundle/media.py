"""Which media blobs a bundle carries, and how imported blobs reach the media store.

Events name their media by sha256: NIP-92 ``imeta`` tags (``x <sha256>``, ``m <type>``)
on reports, and ``x``/``m`` tags on NIP-94 file metadata events (kind 1063). An export
carries the blobs its events name that the hub has; an import stores the blobs it
carries (after checking each one against its sha256) when the receiving hub accepts
their type and size, owned by the authors of the events that name them.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

import orjson

from ..blobs.media import type_allowed
from ..nostr.event import HEX64

if TYPE_CHECKING:
    from ..blobs.store import BlobStore, TempBlob

log = logging.getLogger(__name__)

FILE_METADATA = 1063  # NIP-94


def media_of(kind: int, tags: Iterable[list[str]]) -> list[tuple[str, str]]:
    """(sha256, MIME type or "") for each blob an event names."""
    out: list[tuple[str, str]] = []
    x = m = ""
    for tag in tags:
        if not tag:
            continue
        if tag[0] == "imeta":
            fields = dict(item.split(" ", 1) for item in tag[1:] if " " in item)
            sha = fields.get("x", "")
            if HEX64.fullmatch(sha):
                out.append((sha, fields.get("m", "")))
        elif kind == FILE_METADATA and len(tag) >= 2:
            if tag[0] == "x":
                x = tag[1]
            elif tag[0] == "m":
                m = tag[1]
    if x and HEX64.fullmatch(x):
        out.append((x, m))
    return out


def media_of_json(js: bytes) -> list[tuple[str, str]]:
    """:func:`media_of` for an event's JSON; cheap for the many events with no media."""
    if b"imeta" not in js and b'"kind":1063' not in js:
        return []
    obj = orjson.loads(js)
    return media_of(obj["kind"], obj["tags"])


@dataclass
class MediaRefs:
    """What the imported events say about each blob: its type and who named it."""

    types: dict[str, str] = field(default_factory=dict)
    owners: dict[str, list[str]] = field(default_factory=dict)

    def add(self, pubkey: str, kind: int, tags: list[list[str]]) -> None:
        for sha, mime in media_of(kind, tags):
            if mime and sha not in self.types:
                self.types[sha] = mime
            who = self.owners.setdefault(sha, [])
            if pubkey not in who and len(who) < 32:
                who.append(pubkey)


class StoreSink:
    """Receives a bundle's verified blobs into the hub's media store, under its rules
    (allowed types, largest size). Blobs no imported event names are kept too, owned by
    the exporting hub's key, since the bundle's signature vouches for them."""

    def __init__(self, store: BlobStore, refs: MediaRefs, allowed_types: list[str],
                 max_size: int, default_owner: str):
        self.store = store
        self.refs = refs
        self.allowed_types = allowed_types
        self.max_size = max_size
        self.default_owner = default_owner
        self.stored = 0
        self.present = 0
        self.skipped: list[str] = []

    def open(self, sha256: str, size: int) -> TempBlob | None:
        """A temporary file to write the blob into, or None to only verify it."""
        mime = self.refs.types.get(sha256, "application/octet-stream")
        if size > self.max_size:
            self.skipped.append(f"blob {sha256}: {size:,} bytes, more than this hub's "
                                f"blobs.max_size ({self.max_size:,})")
            return None
        if not type_allowed(mime, self.allowed_types):
            self.skipped.append(f"blob {sha256}: type {mime} is not in blobs.allowed_types")
            return None
        if self.store.get(sha256) is not None:
            for owner in self.refs.owners.get(sha256, [self.default_owner]):
                self.store.add_owner(sha256, owner)
            self.present += 1
            return None
        return self.store.new_temp()

    def done(self, sha256: str, tmp: TempBlob) -> None:
        """Make a fully written blob visible (its hash is checked again here)."""
        if tmp.finish() != sha256:
            tmp.discard()
            raise ValueError(f"blob {sha256} changed while it was being stored")
        owners = self.refs.owners.get(sha256, [self.default_owner])
        mime = self.refs.types.get(sha256, "application/octet-stream")
        self.store.commit(tmp, mime, owners[0])
        for owner in owners[1:]:
            self.store.add_owner(sha256, owner)
        self.stored += 1
