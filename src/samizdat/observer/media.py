"""What an observer can learn from one media file's bytes: perceptual hash, size, type, EXIF.

:func:`media_facts` never raises on hostile input: a non-image, a truncated file, a
decompression bomb or a file Pillow cannot read gives :class:`MediaFacts` with ``phash``
None and ``reason`` saying why. Only images are hashed perceptually (pHash, 64 bits, from
PyPI ``imagehash``); video and audio get their sha256 only (perceptual matching of video
would need frame extraction, i.e. ffmpeg, which samizdat does not depend on).

Pillow and imagehash are the optional extra ``samizdat[observer]`` (docs/decisions.md):
without them this module still imports, and every file gets a ``reason`` instead of a hash.
"""

from __future__ import annotations

import hashlib
import io
import math
from dataclasses import dataclass, field
from typing import Any

HASH_NAME = "phash-64"  # imagehash.phash, hash_size 8: 64 bits, 16 hex characters
# Two pHashes at Hamming distance <= this are "the same picture" (re-encoded, resized,
# lightly cropped). imagehash's authors and the pHash literature use about 10 of 64.
MATCH_THRESHOLD = 10
MAX_BYTES = 64 * 1024 * 1024  # larger files are not decoded (sha256 only)
MAX_PIXELS = 50_000_000  # refuse to decode more pixels than this (a 50 MP camera is plenty)
_DRAFT = (256, 256)  # JPEGs are decoded at reduced scale (DCT scaling): fast, same pHash

_INSTALL_HINT = "perceptual hashing needs Pillow and imagehash: pip install 'samizdat[observer]'"


@dataclass(frozen=True, slots=True)
class MediaFacts:
    """Facts about one file. ``exif`` keys: ``present``, ``has_gps``, ``gps`` ((lat, lon)
    or None), ``make``, ``model``, ``serial``, ``datetime_original`` (strings or None)."""

    sha256: str
    size: int
    mime: str | None = None  # from the bytes (magic / Pillow), not from any claim
    width: int | None = None
    height: int | None = None
    phash: str | None = None  # hex, HASH_NAME
    hash_name: str = HASH_NAME
    reason: str | None = None  # why phash is None
    exif: dict[str, Any] = field(default_factory=lambda: dict(_NO_EXIF))

    @property
    def is_image(self) -> bool:
        return bool(self.mime and self.mime.startswith("image/"))

    def as_dict(self) -> dict[str, Any]:
        """JSON-ready (``gps`` as a list)."""
        exif = dict(self.exif)
        if exif.get("gps") is not None:
            exif["gps"] = list(exif["gps"])
        return {"sha256": self.sha256, "size": self.size, "mime": self.mime,
                "width": self.width, "height": self.height, "phash": self.phash,
                "hash_name": self.hash_name, "reason": self.reason, "exif": exif}

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> MediaFacts:
        exif = dict(_NO_EXIF)
        exif.update(d.get("exif") or {})
        if exif.get("gps") is not None:
            exif["gps"] = (float(exif["gps"][0]), float(exif["gps"][1]))
        return cls(sha256=d["sha256"], size=int(d["size"]), mime=d.get("mime"),
                   width=d.get("width"), height=d.get("height"), phash=d.get("phash"),
                   hash_name=d.get("hash_name") or HASH_NAME, reason=d.get("reason"),
                   exif=exif)


_NO_EXIF: dict[str, Any] = {"present": False, "has_gps": False, "gps": None, "make": None,
                            "model": None, "serial": None, "datetime_original": None}


def hamming(a_hex: str, b_hex: str) -> int:
    """Number of differing bits between two hex hashes of the same length (ValueError else)."""
    if len(a_hex) != len(b_hex):
        raise ValueError("hashes of different lengths")
    return (int(a_hex, 16) ^ int(b_hex, 16)).bit_count()


def matches(a_hex: str | None, b_hex: str | None, threshold: int = MATCH_THRESHOLD) -> bool:
    """Whether two perceptual hashes match; False when either is missing or they differ in size."""
    if not a_hex or not b_hex or len(a_hex) != len(b_hex):
        return False
    try:
        return hamming(a_hex, b_hex) <= threshold
    except ValueError:
        return False


# Containers recognised from their first bytes when Pillow does not know them.
def _sniff(data: bytes) -> str | None:
    if len(data) >= 12 and data[4:8] == b"ftyp":
        brand = data[8:12]
        if brand in (b"heic", b"heix", b"mif1", b"msf1"):
            return "image/heic"
        if brand == b"avif":
            return "image/avif"
        if brand == b"qt  ":
            return "video/quicktime"
        if brand.startswith(b"3g"):
            return "video/3gpp"
        return "video/mp4"
    if data.startswith(b"\x1a\x45\xdf\xa3"):
        return "video/webm"
    if data.startswith(b"OggS"):
        return "audio/ogg"
    if data.startswith(b"ID3") or data[:2] in (b"\xff\xfb", b"\xff\xf3"):
        return "audio/mpeg"
    if data.startswith(b"\xff\xd8\xff"):
        return "image/jpeg"
    if data.startswith(b"\x89PNG\r\n\x1a\n"):
        return "image/png"
    if data[:6] in (b"GIF87a", b"GIF89a"):
        return "image/gif"
    if data[:4] == b"RIFF" and data[8:12] == b"WEBP":
        return "image/webp"
    if data.startswith(b"%PDF-"):
        return "application/pdf"
    return None


def media_facts(data: bytes, *, max_pixels: int = MAX_PIXELS) -> MediaFacts:
    """Facts about ``data``; never raises (hostile input gives a ``reason``)."""
    digest = hashlib.sha256(data).hexdigest()
    sniffed = _sniff(data[:64])
    base = {"sha256": digest, "size": len(data), "mime": sniffed}
    if sniffed and not sniffed.startswith("image/"):
        return MediaFacts(**base, reason=f"{sniffed}: not an image, sha256 only")
    if len(data) > MAX_BYTES:
        return MediaFacts(**base, reason=f"larger than {MAX_BYTES} bytes: not decoded")
    try:
        from PIL import Image, ImageFile
    except ImportError:  # pragma: no cover - the observer extra is missing
        return MediaFacts(**base, reason=_INSTALL_HINT)
    try:
        return _image_facts(data, base, max_pixels, Image, ImageFile)
    except Exception as exc:  # hostile input: anything Pillow or imagehash raises
        return MediaFacts(**base, reason=f"not decodable: {type(exc).__name__}: {exc}"[:300])


def _image_facts(data, base, max_pixels, Image, ImageFile) -> MediaFacts:
    try:
        im = Image.open(io.BytesIO(data))  # reads the header only
    except Image.DecompressionBombError as exc:
        return MediaFacts(**base, reason=f"decompression bomb refused: {exc}"[:300])
    except Exception as exc:
        return MediaFacts(**base, reason=f"not an image Pillow can read: {type(exc).__name__}")
    with im:
        mime = Image.MIME.get(im.format or "") or base["mime"]
        width, height = im.size
        facts = dict(base, mime=mime, width=width, height=height)
        exif = _exif(im)
        if width <= 0 or height <= 0 or width * height > max_pixels:
            return MediaFacts(**facts, exif=exif,
                              reason=f"{width}x{height} pixels: over the {max_pixels} limit "
                                     "(decompression bomb?), not decoded")
        try:
            import imagehash
        except ImportError:  # pragma: no cover - the observer extra is missing
            return MediaFacts(**facts, exif=exif, reason=_INSTALL_HINT)
        if im.format == "JPEG":
            im.draft("RGB", _DRAFT)
        try:
            im.seek(0)
            im.load()  # raises on truncated data (LOAD_TRUNCATED_IMAGES stays False)
        except Image.DecompressionBombError as exc:
            return MediaFacts(**facts, exif=exif, reason=f"decompression bomb refused: {exc}"[:300])
        except Exception as exc:
            return MediaFacts(**facts, exif=exif,
                              reason=f"truncated or damaged image: {type(exc).__name__}"[:300])
        work = im
        if work.mode not in ("L", "RGB"):
            work = work.convert("RGBA").convert("RGB") if "A" in work.getbands() or \
                work.mode == "P" else work.convert("RGB")
        phash = str(imagehash.phash(work))
        return MediaFacts(**facts, exif=exif, phash=phash)


# EXIF tags (TIFF/EXIF 2.3 numbers).
_MAKE, _MODEL, _EXIF_IFD, _GPS_IFD = 0x010F, 0x0110, 0x8769, 0x8825
_DATETIME_ORIGINAL, _BODY_SERIAL, _CAMERA_SERIAL = 0x9003, 0xA431, 0xC62F
_GPS_LAT_REF, _GPS_LAT, _GPS_LON_REF, _GPS_LON = 1, 2, 3, 4


def _text(value: Any) -> str | None:
    if value is None:
        return None
    if isinstance(value, bytes):
        value = value.decode("utf-8", "replace")
    text = str(value).strip("\x00 ").strip()
    return text[:200] or None


def _degrees(value: Any) -> float | None:
    try:
        d, m, s = (float(x) for x in value)
    except Exception:
        try:
            d, m, s = float(value), 0.0, 0.0
        except Exception:
            return None
    result = d + m / 60 + s / 3600
    return result if math.isfinite(result) else None


def _exif(im: Any) -> dict[str, Any]:
    out = dict(_NO_EXIF)
    try:
        exif = im.getexif()
    except Exception:
        return out
    try:
        if not len(exif):
            return out
        out["present"] = True
        out["make"] = _text(exif.get(_MAKE))
        out["model"] = _text(exif.get(_MODEL))
        sub = exif.get_ifd(_EXIF_IFD) or {}
        out["datetime_original"] = _text(sub.get(_DATETIME_ORIGINAL))
        out["serial"] = _text(sub.get(_BODY_SERIAL) or exif.get(_CAMERA_SERIAL))
        gps = exif.get_ifd(_GPS_IFD) or {}
        if gps:
            out["has_gps"] = True
            lat, lon = _degrees(gps.get(_GPS_LAT)), _degrees(gps.get(_GPS_LON))
            if lat is not None and lon is not None:
                if _text(gps.get(_GPS_LAT_REF)) in ("S", "s"):
                    lat = -lat
                if _text(gps.get(_GPS_LON_REF)) in ("W", "w"):
                    lon = -lon
                if -90 <= lat <= 90 and -180 <= lon <= 180:
                    out["gps"] = (round(lat, 7), round(lon, 7))
    except Exception:
        pass  # partial facts are still facts
    return out
