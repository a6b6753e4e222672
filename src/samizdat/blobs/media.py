"""Pure helpers of the media store: MIME types, file extensions, blob names, byte ranges."""

from __future__ import annotations

import re
from collections.abc import Iterable

SHA256 = re.compile(r"[0-9a-f]{64}")
# What may follow the hash in a URL: an extension, ignored for lookup.
EXTENSION = re.compile(r"\.[A-Za-z0-9]{1,16}")
MIME = re.compile(r"[a-z0-9][a-z0-9!#$&^_.+-]{0,63}/[a-z0-9][a-z0-9!#$&^_.+-]{0,127}")
OCTET_STREAM = "application/octet-stream"
# Types a browser may run script in; a wildcard in allowed_types never admits them.
SCRIPTABLE = frozenset({"image/svg+xml", "text/html", "application/xhtml+xml", "text/xml",
                        "application/xml", "text/javascript", "application/javascript"})

# One extension per type for descriptor URLs (mimetypes depends on the system's files).
_EXTENSIONS = {
    "image/jpeg": "jpg", "image/png": "png", "image/gif": "gif", "image/webp": "webp",
    "image/avif": "avif", "image/heic": "heic", "image/heif": "heif", "image/bmp": "bmp",
    "image/tiff": "tiff", "image/svg+xml": "svg", "image/x-icon": "ico",
    "video/mp4": "mp4", "video/webm": "webm", "video/quicktime": "mov", "video/ogg": "ogv",
    "video/3gpp": "3gp", "video/x-matroska": "mkv", "video/mpeg": "mpeg",
    "audio/mpeg": "mp3", "audio/mp4": "m4a", "audio/aac": "aac", "audio/ogg": "ogg",
    "audio/opus": "opus", "audio/webm": "weba", "audio/wav": "wav", "audio/x-wav": "wav",
    "audio/flac": "flac", "audio/3gpp": "3gp", "audio/amr": "amr",
    "application/pdf": "pdf", "application/zip": "zip", "application/json": "json",
    "text/plain": "txt", "text/html": "html",
}
_TYPES_BY_EXTENSION = {ext: mime for mime, ext in reversed(_EXTENSIONS.items())}
_TYPES_BY_EXTENSION.update({"jpeg": "image/jpeg", "wav": "audio/wav", "3gp": "video/3gpp"})


def normalise_type(value: str | None) -> str | None:
    """``image/JPEG; charset=x`` → ``image/jpeg``; None for a missing or malformed type."""
    if not value:
        return None
    mime = value.split(";", 1)[0].strip().lower()
    return mime if MIME.fullmatch(mime) else None


def type_allowed(mime: str, allowed: Iterable[str]) -> bool:
    """Whether ``mime`` is in ``allowed`` (entries ``type/subtype`` or ``type/*``).

    A wildcard never matches a type in :data:`SCRIPTABLE` (``image/*`` does not admit
    SVG, which can carry script): those must be listed by their full name.
    """
    family = mime.split("/", 1)[0]
    for entry in allowed:
        if entry == mime:
            return True
        if entry.endswith("/*") and entry[:-2] == family and mime not in SCRIPTABLE:
            return True
    return False


def extension_for(mime: str) -> str:
    """File extension (without the dot) for descriptor URLs; ``bin`` when unknown."""
    return _EXTENSIONS.get(mime, "bin")


def type_for_extension(name: str) -> str | None:
    """The MIME type a file name's extension suggests, if it is one we know."""
    _, dot, ext = name.rpartition(".")
    return _TYPES_BY_EXTENSION.get(ext.lower()) if dot else None


def parse_blob_name(name: str) -> str | None:
    """``<sha256>`` or ``<sha256>.<ext>`` → the hash; None otherwise."""
    sha, ext = name[:64], name[64:]
    if not SHA256.fullmatch(sha) or (ext and not EXTENSION.fullmatch(ext)):
        return None
    return sha


class Unsatisfiable(Exception):
    """The Range header is valid but selects no byte of the blob (HTTP 416)."""


_RANGE = re.compile(r"bytes=(\d{0,19})-(\d{0,19})")


def parse_range(header: str | None, size: int) -> tuple[int, int] | None:
    """A ``Range`` header as ``(start, end_inclusive)`` for a blob of ``size`` bytes.

    None means "send the whole blob": no header, a syntax we do not serve (several
    ranges, other units, garbage; RFC 9110 lets a server ignore Range). Raises
    :class:`Unsatisfiable` when the range starts past the end or is an empty suffix.
    """
    if header is None:
        return None
    m = _RANGE.fullmatch(header.strip())
    if m is None:
        return None
    first, last = m.group(1), m.group(2)
    if first == "":
        if last == "":
            return None
        suffix = int(last)
        if suffix == 0 or size == 0:
            raise Unsatisfiable
        return max(0, size - suffix), size - 1
    start = int(first)
    end = int(last) if last else size - 1
    if last and end < start:
        return None  # invalid: ignore
    if start >= size:
        raise Unsatisfiable
    return start, min(end, size - 1)
