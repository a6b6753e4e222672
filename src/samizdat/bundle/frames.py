"""zstd frames, read and written without trusting the file.

A bundle part is a plain sequence of zstd frames (RFC 8878): ordinary frames hold the
events, *skippable* frames hold everything else (part header, media blobs, the signed
manifest). `zstd -d` and `zstdcat` skip skippable frames, which is why a bundle part
decompresses with standard tools to exactly the events as JSON lines.

To find where each frame ends without decompressing it, :func:`walk` follows the frame
format itself (header, then block headers): it reads a few bytes per 128 KiB block,
never allocates what a header claims, and reports a frame that runs past the end of the
file as truncation at that offset.
"""

from __future__ import annotations

import struct
from collections.abc import Iterator
from dataclasses import dataclass
from typing import BinaryIO

ZSTD_MAGIC = 0xFD2FB528
SKIPPABLE_LOW, SKIPPABLE_HIGH = 0x184D2A50, 0x184D2A5F
#: The skippable-frame magic samizdat writes (the seekable-format tools use ...5E).
SAMIZDAT_MAGIC = 0x184D2A5D
MAX_BLOCK = 128 * 1024  # RFC 8878: a block never regenerates more than 128 KiB


class FrameError(ValueError):
    """The byte stream is not a well-formed sequence of zstd frames."""

    def __init__(self, offset: int, problem: str, truncated: bool = False):
        self.offset = offset
        self.truncated = truncated
        super().__init__(problem)


@dataclass(slots=True, frozen=True)
class Frame:
    """One frame of a file: where it starts and how long it is (header included)."""

    offset: int
    length: int
    skippable: bool
    content_size: int | None = None  # ordinary frames: declared decompressed size
    tag: bytes = b""  # samizdat skippable frames: the 4-byte payload type

    @property
    def end(self) -> int:
        return self.offset + self.length

    @property
    def payload_offset(self) -> int:
        return self.offset + 8


def skippable(tag: bytes, body: bytes) -> bytes:
    """A samizdat skippable frame: magic, length, 4-byte tag, body."""
    assert len(tag) == 4
    if len(body) + 4 > 0xFFFFFFFF:
        raise ValueError("a skippable frame holds at most 4 GiB")
    return struct.pack("<II", SAMIZDAT_MAGIC, len(body) + 4) + tag + body


def _read_exact(fh: BinaryIO, offset: int, n: int, size: int, what: str) -> bytes:
    if offset + n > size:
        raise FrameError(offset, f"{what} at byte {offset:,} needs {n:,} bytes but the file "
                         f"ends at byte {size:,}", truncated=True)
    fh.seek(offset)
    data = fh.read(n)
    if len(data) != n:
        raise FrameError(offset, f"could not read {what} at byte {offset:,}", truncated=True)
    return data


def _zstd_frame(fh: BinaryIO, offset: int, size: int) -> Frame:
    head = _read_exact(fh, offset, 6, size, "a zstd frame header")
    fhd = head[4]
    fcs_flag, single, reserved = fhd >> 6, (fhd >> 5) & 1, (fhd >> 3) & 1
    checksum, dict_flag = (fhd >> 2) & 1, fhd & 3
    if reserved:
        raise FrameError(offset, f"zstd frame at byte {offset:,} has a reserved bit set")
    if dict_flag:
        raise FrameError(offset, f"zstd frame at byte {offset:,} needs a dictionary; "
                         "samizdat never writes those")
    pos = offset + 5 + (0 if single else 1)
    fcs_len = (1 if single else 0, 2, 4, 8)[fcs_flag]
    content_size = None
    if fcs_len:
        raw = _read_exact(fh, pos, fcs_len, size, "a zstd frame header")
        content_size = int.from_bytes(raw, "little") + (256 if fcs_len == 2 else 0)
        pos += fcs_len
    while True:
        bh = int.from_bytes(_read_exact(fh, pos, 3, size, "a zstd block header"), "little")
        last, btype, bsize = bh & 1, (bh >> 1) & 3, bh >> 3
        if btype == 3:
            raise FrameError(pos, f"zstd block at byte {pos:,} has the reserved type")
        if bsize > MAX_BLOCK:
            raise FrameError(pos, f"zstd block at byte {pos:,} claims {bsize:,} bytes (more "
                             "than the 128 KiB maximum)")
        pos += 3 + (1 if btype == 1 else bsize)
        if pos > size:
            raise FrameError(pos, f"a zstd block runs past the end of the file (byte {size:,})",
                             truncated=True)
        if last:
            break
    if checksum:
        pos += 4
        if pos > size:
            raise FrameError(pos, "a zstd frame's checksum is cut off at the end of the file",
                             truncated=True)
    return Frame(offset, pos - offset, False, content_size)


def walk(fh: BinaryIO, size: int, max_frames: int = 10_000_000) -> Iterator[Frame]:
    """Every frame of ``fh`` (``size`` bytes) in order; :class:`FrameError` on anything else."""
    offset = 0
    count = 0
    while offset < size:
        count += 1
        if count > max_frames:
            raise FrameError(offset, f"more than {max_frames:,} frames")
        head = _read_exact(fh, offset, 4, size, "a frame header")
        (magic,) = struct.unpack("<I", head)
        if magic == ZSTD_MAGIC:
            frame = _zstd_frame(fh, offset, size)
        elif SKIPPABLE_LOW <= magic <= SKIPPABLE_HIGH:
            (length,) = struct.unpack("<I", _read_exact(fh, offset + 4, 4, size,
                                                        "a skippable frame header"))
            if offset + 8 + length > size:
                raise FrameError(offset, f"a frame at byte {offset:,} needs {8 + length:,} "
                                 f"bytes but the file ends at byte {size:,}", truncated=True)
            tag = b""
            if magic == SAMIZDAT_MAGIC and length >= 4:
                tag = _read_exact(fh, offset + 8, 4, size, "a frame tag")
            frame = Frame(offset, 8 + length, True, None, tag)
        else:
            raise FrameError(offset, f"unexpected data at byte {offset:,} (not a zstd frame)")
        yield frame
        offset = frame.end


def read_frame(fh: BinaryIO, frame: Frame) -> bytes:
    fh.seek(frame.offset)
    data = fh.read(frame.length)
    if len(data) != frame.length:
        raise FrameError(frame.offset, f"could not read the frame at byte {frame.offset:,}",
                         truncated=True)
    return data
