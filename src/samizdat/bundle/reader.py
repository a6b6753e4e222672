"""Opening what a carrier brings: bundle parts, or plain JSONL dumps (optionally zstd).

Nothing here trusts the file. A bundle is checked from the outside in, cheapest first,
and every failure names the file, the part and the section:

1. structure: every part is a clean sequence of zstd frames in the expected order
   (header, events, blobs, manifest); a frame cut off is reported as truncation;
2. the manifest: a Nostr event signed by the exporting hub, verified with
   :meth:`~samizdat.nostr.event.Event.verify`, signed by the hub the parts name;
3. completeness and sizes: every part present, sizes as signed, no section that would
   decompress more than :data:`~.format.MAX_RATIO` times its size (a bomb);
4. hashes: every section of every part against the signed manifest.

Only then are events decompressed, one bounded frame at a time. ``salvage`` turns the
failures of steps 1-4 into notes and keeps whatever frames are intact: the events are
still verified one by one, so salvage never lets a forged event in.
"""

from __future__ import annotations

import hashlib
import struct
from collections import defaultdict
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, BinaryIO

import orjson
import zstandard

from ..nostr.event import InvalidEvent, parse_event
from ..nostr.keys import npub
from . import format as fmt
from .errors import BombError, BundleError
from .frames import SAMIZDAT_MAGIC, ZSTD_MAGIC, Frame, FrameError, read_frame, walk

READ_CHUNK = 4 * 1024 * 1024
SALVAGE_HINT = ("get a fresh copy of this file, or import with --salvage to take only the "
                "events that verify on their own")


def _decompressor() -> zstandard.ZstdDecompressor:
    return zstandard.ZstdDecompressor(max_window_size=fmt.MAX_WINDOW)


# --- bundle parts -------------------------------------------------------------------------


@dataclass
class PartFile:
    path: Path
    size: int
    header: fmt.Header | None = None
    header_frame: Frame | None = None
    events: list[Frame] = field(default_factory=list)
    blobs: list[Frame] = field(default_factory=list)
    manifest: Frame | None = None
    label: str = ""

    def section_bytes(self, frames: list[Frame]) -> int:
        return sum(f.length for f in frames)


def _layout(path: Path, fh: BinaryIO, size: int, salvage: bool, notes: list[str]) -> PartFile:
    """Walk the frames of one part and sort them into sections."""
    part = PartFile(path, size, label=str(path))
    stage = 0  # 0 header, 1 events, 2 blobs, 3 manifest (nothing may follow)
    try:
        for frame in walk(fh, size):
            if stage == 0:
                if frame.tag != fmt.TAG_HEADER:
                    raise BundleError(str(path), "not a samizdat bundle part (no part header)")
                part.header_frame = frame
                stage = 1
            elif not frame.skippable and stage == 1:
                part.events.append(frame)
            elif frame.tag == fmt.TAG_BLOB and stage in (1, 2):
                part.blobs.append(frame)
                stage = 2
            elif frame.tag == fmt.TAG_MANIFEST and stage in (1, 2):
                part.manifest = frame
                stage = 3
            else:
                raise FrameError(frame.offset, f"unexpected frame at byte {frame.offset:,}")
    except FrameError as exc:
        what = (f"truncated at byte {size:,} ({exc})" if exc.truncated
                else f"damaged: {exc}")
        if not salvage or part.header_frame is None:
            raise BundleError(str(path), what, SALVAGE_HINT) from None
        notes.append(f"{path}: {what}; kept the {len(part.events)} complete events frames "
                     "before that point")
    if part.header_frame is None:
        raise BundleError(str(path), "empty file", "get a fresh copy of this file")
    if part.header_frame.length - 12 > fmt.MAX_HEADER:
        raise BundleError(str(path), "the part header is too large", "get a fresh copy")
    body = read_frame(fh, part.header_frame)[12:]
    part.header = fmt.parse_header(body, str(path))
    return part


def _sha256_frames(fh: BinaryIO, frames: list[Frame]) -> str:
    h = hashlib.sha256()
    for f in frames:
        fh.seek(f.offset)
        left = f.length
        while left:
            data = fh.read(min(left, READ_CHUNK))
            if not data:
                raise BundleError("", "file shrank while being read", "do not modify it now")
            h.update(data)
            left -= len(data)
    return h.hexdigest()


class BundleSource:
    """The parts of one bundle, checked against its signed manifest."""

    kind = "bundle"

    def __init__(self, parts: list[PartFile], salvage: bool, notes: list[str]):
        self.salvage = salvage
        self.notes = notes
        self.manifest: fmt.Manifest | None = None
        self.hub = parts[0].header.hub if parts[0].header else ""
        self.bundle = parts[0].header.bundle if parts[0].header else ""
        first = parts[0].path
        self.label = (str(first) if len(parts) == 1
                      else f"{first.with_suffix('') if first.suffix[1:].isdigit() else first} "
                           f"({len(parts)} parts)")
        self.blobs_verified = 0
        self._check(parts)

    @staticmethod
    def _bomb_check(p: PartFile) -> None:
        """Refuse a part whose frames would decompress to far more than honest JSON."""
        ev_bytes = p.section_bytes(p.events)
        raw = sum(f.content_size or 0 for f in p.events)
        longest = fmt.MAX_FRAME_RAW + (fmt.MAX_FRAME_RAW >> 7) + 4096  # zstd's worst case
        if any(f.content_size is None or f.content_size > fmt.MAX_FRAME_RAW
               or f.length > longest for f in p.events) \
                or raw > fmt.MAX_RATIO * ev_bytes + fmt.BOMB_SLACK:
            raise BombError(f"{p.label}, events section", f"{raw:,} bytes would come out of "
                            f"{ev_bytes:,} compressed; refusing a likely decompression bomb",
                            "do not open this file with other tools either")

    # Steps 2-4 of the module docstring.
    def _check(self, parts: list[PartFile]) -> None:
        holders = [p for p in parts if p.manifest is not None]
        manifest = None
        if len(holders) == 1:
            try:
                manifest = self._read_manifest(holders[0])
            except BundleError as exc:
                if not self.salvage:
                    raise
                self.notes.append(f"{exc}; the bundle is not authenticated, every event "
                                  "is still verified on its own")
        elif not self.salvage:
            if not holders:
                names = ", ".join(str(p.path) for p in parts)
                raise BundleError(self.label, "the part holding the signed manifest (the last "
                                  f"part) is missing; given: {names}",
                                  "pass every part of the bundle, e.g. `samizdat import "
                                  "news.szb.*`")
            raise BundleError(self.label, "two parts hold a manifest",
                              "the bundle was tampered with; import with --salvage")
        else:
            self.notes.append(f"{self.label}: no signed manifest found; the bundle is not "
                              "authenticated, every event is still verified on its own")
        self.manifest = manifest
        by_index: dict[int, PartFile] = {}
        for p in parts:
            assert p.header is not None
            if p.header.part in by_index:
                if by_index[p.header.part].size != p.size or not self.salvage:
                    raise BundleError(str(p.path), f"part {p.header.part} was given twice "
                                      f"(also as {by_index[p.header.part].path})",
                                      "pass each part once")
                continue
            by_index[p.header.part] = p
        if manifest is None:
            self.parts = [by_index[i] for i in sorted(by_index)]
            for p in self.parts:
                p.label = f"{p.path} (part {p.header.part})"
                self._bomb_check(p)
            return
        n = len(manifest.parts)
        for i, p in by_index.items():
            p.label = f"{p.path} (part {i} of {n})"
            self._bomb_check(p)
            if i > n:
                raise BundleError(p.label, f"part {i} does not belong to a bundle of {n} parts",
                                  "it comes from another export; leave it out")
        missing = [r for r in manifest.parts if r.part not in by_index]
        if missing and not self.salvage:
            r = missing[0]
            raise BundleError(self.label, f"part {r.part} of {n} ({r.name}) is missing",
                              "pass every part, e.g. `samizdat import "
                              f"{manifest.parts[0].name.rsplit('.', 1)[0]}.*`")
        for r in missing:
            self.notes.append(f"part {r.part} of {n} ({r.name}) is missing: its "
                              f"{r.events_count:,} events are not imported")
        self.parts = [by_index[i] for i in sorted(by_index)]
        for p in self.parts:
            try:
                self._check_part(p, manifest.parts[p.header.part - 1])
            except BundleError as exc:
                if not self.salvage or isinstance(exc, BombError):
                    raise
                self.notes.append(str(exc))

    def _read_manifest(self, holder: PartFile) -> fmt.Manifest:
        where = f"{holder.path}, manifest"
        frame = holder.manifest
        assert frame is not None and holder.header is not None
        if frame.length - 12 > fmt.MAX_MANIFEST:
            raise BundleError(where, "the manifest is too large", "refusing the bundle")
        with holder.path.open("rb") as fh:
            body = read_frame(fh, frame)[12:]
        try:
            ev = parse_event(orjson.loads(body))
        except (orjson.JSONDecodeError, InvalidEvent):
            raise BundleError(where, "the manifest is damaged (not a signed event)",
                              SALVAGE_HINT) from None
        if ev.kind != fmt.MANIFEST_KIND:
            raise BundleError(where, f"not a bundle manifest (event kind {ev.kind})",
                              SALVAGE_HINT)
        try:
            ev.verify()
        except InvalidEvent:
            raise BundleError(where, "the manifest signature does not verify (the manifest "
                              "was altered or damaged)", SALVAGE_HINT) from None
        manifest = fmt.parse_manifest_body(ev.content, where)
        if manifest.hub != ev.pubkey or holder.header.hub != ev.pubkey:
            raise BundleError(where, f"the manifest is signed by {npub(ev.pubkey)} but the "
                              f"bundle says it comes from hub {npub(holder.header.hub)}",
                              "someone re-signed it, so it is refused. Import with --salvage "
                              "to take only the events that verify on their own")
        if manifest.bundle != holder.header.bundle:
            raise BundleError(where, "the manifest belongs to another bundle", SALVAGE_HINT)
        self.hub = ev.pubkey
        return manifest

    def _check_part(self, p: PartFile, r: fmt.PartRecord) -> None:
        assert self.manifest is not None and p.header is not None and p.header_frame is not None
        if p.header.hub != self.manifest.hub:
            raise BundleError(p.label, f"this part comes from hub {npub(p.header.hub)}, the "
                              f"manifest from {npub(self.manifest.hub)}",
                              "it belongs to another export; leave it out")
        with p.path.open("rb") as fh:
            if _sha256_frames(fh, [p.header_frame]) != r.header:
                raise BundleError(f"{p.label}, header section", "damaged or altered (sha256 "
                                  "does not match the signed manifest)", SALVAGE_HINT)
            size = p.size - (p.manifest.length if p.manifest else 0)
            if size != r.bytes:
                raise BundleError(p.label, f"the file has {size:,} bytes where the manifest "
                                  f"says {r.bytes:,}", "the copy is truncated or padded: "
                                  + SALVAGE_HINT)
            ev_bytes = p.section_bytes(p.events)
            raw = sum(f.content_size or 0 for f in p.events)
            where = f"{p.label}, events section"
            if ev_bytes != r.events_bytes or raw != r.events_raw:
                raise BundleError(where, "sizes do not match the signed manifest", SALVAGE_HINT)
            if _sha256_frames(fh, p.events) != r.events_sha256:
                raise BundleError(where, "damaged or altered (sha256 does not match the "
                                  "signed manifest)", SALVAGE_HINT)
            if (p.section_bytes(p.blobs) != r.blobs_bytes
                    or _sha256_frames(fh, p.blobs) != r.blobs_sha256):
                raise BundleError(f"{p.label}, blobs section", "damaged or altered (sha256 "
                                  "does not match the signed manifest)", SALVAGE_HINT)

    # --- reading events ---------------------------------------------------------------------

    def chunks(self) -> Iterator[tuple[int, str, bytes]]:
        """(part, where, JSON lines) per events frame, in part order.

        The frames are hashed again as they are read: if a part's events differ from what
        was checked against the signed manifest (the file changed since), this raises
        after its last frame, which rolls back an import in progress."""
        dctx = _decompressor()
        for p in self.parts:
            assert p.header is not None
            where = f"{p.label}, events section"
            digest = hashlib.sha256()
            with p.path.open("rb") as fh:
                for k, frame in enumerate(p.events, 1):
                    try:
                        data = read_frame(fh, frame)
                    except FrameError:
                        raise BundleError(where, "the file shrank while being read",
                                          "do not modify it during the import") from None
                    digest.update(data)
                    raw = self._decompress(dctx, data, frame, f"{where}, frame {k}")
                    if raw is not None:
                        yield p.header.part, where, raw
            if (self.manifest is not None and not self.salvage
                    and digest.hexdigest() != self.manifest.parts[p.header.part - 1].events_sha256):
                raise BundleError(where, "the file changed while it was being imported; "
                                  "nothing was imported", "run the import again")

    def _decompress(self, dctx: zstandard.ZstdDecompressor, data: bytes, frame: Frame,
                    where: str) -> bytes | None:
        problem = None
        if frame.content_size is None or frame.content_size > fmt.MAX_FRAME_RAW:
            problem = "the frame does not declare a bounded size; refusing a likely bomb"
        else:
            try:
                raw = dctx.decompress(data)
                if raw and not raw.endswith(b"\n"):
                    problem = "the frame does not end at a line boundary"
                else:
                    return raw
            except zstandard.ZstdError as exc:
                problem = f"damaged zstd data ({exc})"
        if not self.salvage:
            raise BundleError(where, problem, SALVAGE_HINT)
        self.notes.append(f"{where}: {problem}; skipped its events")
        return None

    def verify_blobs(self, sink: Any = None) -> int:
        """Check every blob's chunks and sha256; returns how many verified.

        With a ``sink`` (:class:`~samizdat.bundle.media.StoreSink`) the blobs are also
        written into the media store as they are checked; one that fails its hash is
        discarded, never made visible.
        """
        ok = 0
        # A blob may continue from one part into the next: the state runs across parts.
        current: tuple[bytes, int] | None = None
        h = None
        tmp = None
        expect = 0
        try:
            for p in self.parts:
                with p.path.open("rb") as fh:
                    for frame in p.blobs:
                        if not 12 + 48 <= frame.length <= 12 + 48 + fmt.MAX_BLOB_CHUNK:
                            self._blob_problem(p, "a blob frame has a bad size")
                            break
                        body = read_frame(fh, frame)[12:]
                        digest, total, offset = body[:32], *struct.unpack("<QQ", body[32:48])
                        if current is None or current[0] != digest:
                            if tmp is not None:
                                tmp.discard()
                            h, current, expect = hashlib.sha256(), (digest, total), 0
                            tmp = sink.open(digest.hex(), total) if sink is not None else None
                        if offset != expect or offset + len(body) - 48 > total:
                            self._blob_problem(p, f"blob {digest.hex()} has chunks out of order")
                            break
                        h.update(body[48:])
                        if tmp is not None:
                            tmp.write([body[48:]])
                        expect = offset + len(body) - 48
                        if expect == total:
                            if h.digest() != digest:
                                self._blob_problem(p, f"blob {digest.hex()} does not match its "
                                                   "sha256")
                            else:
                                ok += 1
                                if tmp is not None:
                                    sink.done(digest.hex(), tmp)
                                    tmp = None
                            current = None
            if current is not None:
                self._blob_problem(self.parts[-1], f"blob {current[0].hex()} is incomplete")
        finally:
            if tmp is not None:
                tmp.discard()
        self.blobs_verified = ok
        return ok

    def _blob_problem(self, p: PartFile, problem: str) -> None:
        if not self.salvage:
            raise BundleError(f"{p.label}, blobs section", problem, SALVAGE_HINT)
        self.notes.append(f"{p.label}, blobs section: {problem}")

    def expected_counts(self) -> dict[int, int]:
        """Events per part as signed (only when the manifest verified and not salvaging)."""
        if self.manifest is None or self.salvage:
            return {}
        return {p.header.part: self.manifest.parts[p.header.part - 1].events_count
                for p in self.parts if p.header is not None}


# --- plain dumps ----------------------------------------------------------------------------


class _CountingReader:
    """File wrapper that counts what the decompressor reads (for the bomb check)."""

    def __init__(self, fh: BinaryIO):
        self.fh = fh
        self.count = 0

    def read(self, n: int = -1) -> bytes:
        data = self.fh.read(n)
        self.count += len(data)
        return data


class DumpSource:
    """A JSONL file of events (``strfry export``, other relays' dumps), maybe zstd."""

    kind = "jsonl"

    def __init__(self, path: Path, compressed: bool, salvage: bool, notes: list[str]):
        self.path = path
        self.label = str(path)
        self.compressed = compressed
        self.salvage = salvage
        self.notes = notes
        self.manifest = None
        self.hub = ""
        self.blobs_verified = 0

    def expected_counts(self) -> dict[int, int]:
        return {}

    def chunks(self) -> Iterator[tuple[int, str, bytes]]:
        """(0, where, JSON lines) in slices of about 4 MiB."""
        where = str(self.path)
        with self.path.open("rb") as fh:
            src = _CountingReader(fh)
            reader = (_decompressor().stream_reader(src, read_size=1 << 20,
                                                    read_across_frames=True)
                      if self.compressed else src)
            carry = b""
            produced = 0
            while True:
                try:
                    data = reader.read(READ_CHUNK)
                except zstandard.ZstdError as exc:
                    if not self.salvage:
                        raise BundleError(where, f"damaged zstd data ({exc})",
                                          SALVAGE_HINT) from None
                    self.notes.append(f"{where}: damaged zstd data ({exc}); stopped there")
                    break
                if not data:
                    break
                produced += len(data)
                if self.compressed and produced > fmt.MAX_RATIO * src.count + fmt.BOMB_SLACK:
                    raise BombError(where, f"{produced:,} bytes came out of {src.count:,} "
                                      "compressed; refusing a likely decompression bomb",
                                      "do not open this file with other tools either")
                buf = carry + data
                cut = buf.rfind(b"\n") + 1
                carry = buf[cut:]
                if len(carry) > fmt.MAX_LINE:
                    raise BundleError(where, f"a line longer than {fmt.MAX_LINE:,} bytes "
                                      "(not an event dump?)", "check the file")
                if cut:
                    yield 0, where, buf[:cut]
            if carry.strip():
                yield 0, where, carry + b"\n"

    def verify_blobs(self, sink: Any = None) -> int:
        return 0  # a plain dump carries no media


# --- opening ------------------------------------------------------------------------------


Source = BundleSource | DumpSource


def open_sources(paths: list[Path], salvage: bool = False) -> tuple[list[Source], list[str]]:
    """Sort the given files into bundles (parts grouped by bundle) and dumps, and check
    each bundle up to its hashes. Returns the sources and notes (salvage findings)."""
    notes: list[str] = []
    sources: list[Source] = []
    groups: dict[str, list[PartFile]] = defaultdict(list)
    seen: set[Path] = set()
    for path in paths:
        real = path.resolve()
        if real in seen:
            continue
        seen.add(real)
        if not path.is_file():
            raise BundleError(str(path), "no such file", "check the name")
        size = path.stat().st_size
        with path.open("rb") as fh:
            head = fh.read(4)
            magic = struct.unpack("<I", head)[0] if len(head) == 4 else None
            if magic == SAMIZDAT_MAGIC:
                part = _layout(path, fh, size, salvage, notes)
                assert part.header is not None
                groups[part.header.bundle].append(part)
                continue
        if magic == ZSTD_MAGIC:
            sources.append(DumpSource(path, True, salvage, notes))
        elif head[:1] in (b"{", b"\n", b" ", b"\r", b"\t") or size == 0:
            sources.append(DumpSource(path, False, salvage, notes))
        else:
            raise BundleError(str(path), "neither a samizdat bundle nor a JSONL file of "
                              "events (optionally zstd-compressed)", "check the file name")
    bundles = [BundleSource(parts, salvage, notes) for parts in groups.values()]
    return [*bundles, *sources], notes
