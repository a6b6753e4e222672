"""Writing a bundle: events in, zstd frames out, cut into parts, sealed by a signed manifest.

Events arrive already in ascending ``created_at`` order as JSON lines. They are gathered
into frames of about 4 MiB of JSON (big enough for zstd to find the repetition in keys
and words, small enough that a reader never holds much), and each frame is compressed on
a second thread while the next one is gathered: zstd releases the GIL, so export uses
both cores. Frames never straddle parts, so every part decompresses on its own.

Files are written under temporary names and renamed only when the manifest is signed:
an interrupted export leaves no file that looks like a bundle.
"""

from __future__ import annotations

import hashlib
import os
import secrets
import struct
import time
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, BinaryIO

import orjson
import zstandard
from coincurve import PrivateKey

from ..nostr.event import sign_event
from . import format as fmt
from .errors import BundleError
from .frames import skippable


def _compress(raw: bytes) -> bytes:
    # One compressor per call: ZstdCompressor objects must not be shared across threads.
    return zstandard.ZstdCompressor(level=fmt.LEVEL, write_checksum=True,
                                    write_content_size=True).compress(raw)


@dataclass
class _Part:
    index: int
    tmp: Path
    fh: BinaryIO
    size: int = 0
    header_sha: str = ""
    events: Any = field(default_factory=hashlib.sha256)
    blobs: Any = field(default_factory=hashlib.sha256)
    events_bytes: int = 0
    events_raw: int = 0
    events_count: int = 0
    blobs_bytes: int = 0

    @property
    def empty(self) -> bool:
        return self.events_count == 0 and self.blobs_bytes == 0


class BundleWriter:
    """``add`` every event line, then ``close``; ``abort`` removes what was written."""

    def __init__(self, path: str | Path, key: PrivateKey, *, max_part_size: int | None = None,
                 selection: dict[str, Any] | None = None, created_at: int | None = None):
        self.path = Path(path)
        if not fmt.safe_name(self.path.name):
            raise BundleError(str(self.path), "use a plain file name (letters, digits, . _ -)")
        if max_part_size is not None and max_part_size < fmt.MIN_PART_SIZE:
            raise BundleError("", f"--max-part-size must be at least {fmt.MIN_PART_SIZE:,} bytes")
        self.key = key
        self.hub = key.public_key_xonly.format().hex()
        self.max_part_size = max_part_size
        self.selection = selection or {}
        self.created_at = int(time.time()) if created_at is None else created_at
        self.bundle = secrets.token_hex(16)
        self.parts: list[_Part] = []
        self.blobs: list[fmt.BlobRecord] = []
        self.first: int | None = None
        self.last: int | None = None
        self._buf = bytearray()
        self._lines = 0
        self._pool = ThreadPoolExecutor(1, thread_name_prefix="zstd")
        self._pending: tuple[bytes, int, Future] | None = None
        self._sealed = False
        self._new_part()

    # --- parts ------------------------------------------------------------------------------

    def _final_name(self, index: int, count: int) -> str:
        return self.path.name if count == 1 else fmt.part_name(self.path.name, index)

    def _new_part(self) -> None:
        index = len(self.parts) + 1
        if index > fmt.MAX_PARTS:
            raise BundleError("", f"the bundle would need more than {fmt.MAX_PARTS} parts",
                              "use a larger --max-part-size")
        tmp = self.path.parent / f".{self.path.name}.{index:03d}.partial"
        part = _Part(index, tmp, tmp.open("wb"))
        self.parts.append(part)
        header = skippable(fmt.TAG_HEADER, fmt.Header(self.bundle, index, self.hub,
                                                      self.created_at).encode())
        part.header_sha = hashlib.sha256(header).hexdigest()
        self._write(part, header)

    @staticmethod
    def _write(part: _Part, data: bytes) -> None:
        part.fh.write(data)
        part.size += len(data)

    def _room(self) -> int:
        if self.max_part_size is None:
            return 1 << 62
        return self.max_part_size - self.parts[-1].size

    # --- events -----------------------------------------------------------------------------

    def add(self, created_at: int, line: bytes) -> None:
        """One event as a JSON line (without the newline), in ascending created_at."""
        self.add_many([line], created_at, created_at)

    def add_many(self, lines: list[bytes], first: int, last: int) -> None:
        """Several event lines at once (the export's hot path: one join per batch)."""
        if not lines:
            return
        if self.blobs:
            raise RuntimeError("events must be added before blobs")
        if self.first is None:
            self.first = first
        self.last = last
        self._buf += b"\n".join(lines)
        self._buf += b"\n"
        self._lines += len(lines)
        if len(self._buf) >= self._target():
            self._submit()

    def _target(self) -> int:
        if self.max_part_size is None:
            return fmt.FRAME_RAW_TARGET
        return max(4096, min(fmt.FRAME_RAW_TARGET, self.max_part_size // 4))

    def _submit(self) -> None:
        raw, lines = bytes(self._buf), self._lines
        self._buf.clear()
        self._lines = 0
        fut = self._pool.submit(_compress, raw)
        self._drain()
        self._pending = (raw, lines, fut)

    def _drain(self) -> None:
        if self._pending is not None:
            raw, lines, fut = self._pending
            self._pending = None
            self._place(raw, fut.result(), lines)

    def _place(self, raw: bytes, comp: bytes, lines: int | None = None) -> None:
        """Write ``raw`` (whole lines) as one or more frames, starting parts as needed."""
        while raw:
            room = self._room()
            if len(comp) <= room:
                part = self.parts[-1]
                self._write(part, comp)
                part.events.update(comp)
                part.events_bytes += len(comp)
                part.events_raw += len(raw)
                part.events_count += raw.count(b"\n") if lines is None else lines
                return
            if self.parts[-1].empty:
                # Does not fit even into a fresh part: halve it.
                nl = raw.count(b"\n")
                if nl <= 1:
                    raise BundleError("", f"an event of {len(raw):,} bytes does not fit into "
                                      f"parts of {self.max_part_size:,} bytes",
                                      "use a larger --max-part-size")
                cut = raw.find(b"\n", len(raw) // 2 - 1) + 1
                if cut <= 0 or cut >= len(raw):
                    cut = raw.find(b"\n") + 1
                self._place(raw[:cut], _compress(raw[:cut]))
                raw, lines = raw[cut:], None
                comp = _compress(raw)
                continue
            # Fill the current part with as many lines as fit, then start the next one.
            estimate = int(len(raw) * room / len(comp) * 0.95)
            cut = raw.rfind(b"\n", 0, estimate) + 1
            if cut > 0:
                head = _compress(raw[:cut])
                if len(head) <= room:
                    self._place(raw[:cut], head)
                    raw, lines = raw[cut:], None
                    comp = _compress(raw)
            self._new_part()

    # --- blobs ------------------------------------------------------------------------------

    def add_blob(self, data: bytes) -> str:
        """Add one media blob by content; returns its sha256. Call after every event."""
        import io

        digest = hashlib.sha256(data).hexdigest()
        self.add_blob_file(io.BytesIO(data), digest, len(data))
        return digest

    def add_blob_file(self, fh: BinaryIO, sha256: str, size: int) -> None:
        """Stream one stored blob of ``size`` bytes from ``fh`` into the bundle, chunk by
        chunk (never whole in memory). Its bytes are hashed on the way: a blob that does
        not match ``sha256`` (a damaged disk) raises rather than travel."""
        self._flush_events()
        digest = bytes.fromhex(sha256)
        check = hashlib.sha256()
        offset = 0
        while offset < size or offset == 0:
            room = self._room() - 8 - 4 - 48
            if room < 1024 and not self.parts[-1].empty:
                self._new_part()
                continue
            n = min(size - offset, fmt.MAX_BLOB_CHUNK, max(room, 1))
            chunk = fh.read(n)
            if len(chunk) != n:
                raise BundleError("", f"blob {sha256} is shorter than its {size:,} bytes",
                                  "the media store is damaged; run the export with --no-blobs")
            check.update(chunk)
            body = digest + struct.pack("<QQ", size, offset) + chunk
            frame = skippable(fmt.TAG_BLOB, body)
            part = self.parts[-1]
            self._write(part, frame)
            part.blobs.update(frame)
            part.blobs_bytes += len(frame)
            offset += n
            if not size:
                break
        if check.digest() != digest:
            raise BundleError("", f"blob {sha256} does not match its sha256 on this disk",
                              "the media store is damaged; run the export with --no-blobs")
        self.blobs.append(fmt.BlobRecord(sha256, size))

    def _flush_events(self) -> None:
        if self._buf:
            self._submit()
        self._drain()
        self._pending = None

    # --- sealing ----------------------------------------------------------------------------

    def close(self) -> dict[str, Any]:
        """Sign the manifest, sync the files to disk and give them their final names."""
        self._flush_events()
        self._pool.shutdown()
        manifest_frame = self._manifest_frame(len(self.parts))
        if len(manifest_frame) > self._room():
            self._new_part()
            manifest_frame = self._manifest_frame(len(self.parts))
            if len(manifest_frame) > self._room():
                raise BundleError("", "the manifest does not fit into one part",
                                  "use a larger --max-part-size")
        last = self.parts[-1]
        last.fh.write(manifest_frame)
        count = len(self.parts)
        finals = [self.path.parent / self._final_name(p.index, count) for p in self.parts]
        for final in finals:
            if final.exists():
                self.abort()
                raise BundleError(str(final), "already exists", "choose another name")
        for p in self.parts:
            p.fh.flush()
            os.fsync(p.fh.fileno())
            p.fh.close()
        for p, final in zip(self.parts, finals, strict=True):
            os.replace(p.tmp, final)
        _fsync_dir(self.path.parent)
        self._sealed = True
        total_raw = sum(p.events_raw for p in self.parts)
        return {
            "bundle": self.bundle, "hub": self.hub,
            "files": [str(f) for f in finals],
            "parts": count,
            "events": sum(p.events_count for p in self.parts),
            "raw_bytes": total_raw,
            "bytes": sum(f.stat().st_size for f in finals),
            "blobs": len(self.blobs),
            "first": self.first, "last": self.last,
        }

    def _manifest_frame(self, count: int) -> bytes:
        records = [
            fmt.PartRecord(p.index, self._final_name(p.index, count), p.size, p.header_sha,
                           p.events.hexdigest(), p.events_bytes, p.events_raw, p.events_count,
                           p.blobs.hexdigest(), p.blobs_bytes)
            for p in self.parts
        ]
        manifest = fmt.Manifest(
            self.bundle, self.hub, self.created_at, records, self.blobs,
            sum(r.events_count for r in records), sum(r.events_raw for r in records),
            sum(r.events_bytes for r in records), self.first, self.last, self.selection)
        ev = sign_event(self.key, fmt.MANIFEST_KIND, orjson.dumps(manifest.body()).decode(),
                        [["bundle", self.bundle]], self.created_at)
        return skippable(fmt.TAG_MANIFEST, orjson.dumps(ev.to_dict()))

    def abort(self) -> None:
        """Remove every file this writer made (after an error or an interruption)."""
        if self._sealed:
            return
        self._pool.shutdown(cancel_futures=True)
        for p in self.parts:
            if not p.fh.closed:
                p.fh.close()
            p.tmp.unlink(missing_ok=True)

    def __enter__(self) -> BundleWriter:
        return self

    def __exit__(self, exc_type: object, *rest: object) -> None:
        if exc_type is not None:
            self.abort()


def _fsync_dir(path: Path) -> None:
    try:
        fd = os.open(path, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)
