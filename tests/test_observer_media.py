"""observer/media.py: perceptual hashes match the same picture re-encoded, resized and
cropped, not other pictures; EXIF GPS is found; hostile bytes never raise."""

from __future__ import annotations

import io
import random
import struct
import time
import zlib

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from samizdat.observer.media import (
    HASH_NAME,
    MATCH_THRESHOLD,
    MediaFacts,
    hamming,
    matches,
    media_facts,
)

Image = pytest.importorskip("PIL.Image")
ImageDraw = pytest.importorskip("PIL.ImageDraw")


def scene(seed: int, size=(800, 600)):
    """A photo-like picture: a gradient sky, shapes, noise; different for each seed."""
    r = random.Random(seed)
    w, h = size
    im = Image.new("RGB", size)
    top, bottom = [r.randrange(256) for _ in range(3)], [r.randrange(256) for _ in range(3)]
    d = ImageDraw.Draw(im)
    for y in range(h):
        t = y / h
        d.line([(0, y), (w, y)], fill=tuple(int(a + (b - a) * t) for a, b in zip(top, bottom, strict=True)))
    for _ in range(14):
        x, y = r.randrange(w), r.randrange(h)
        box = [x, y, x + r.randrange(40, 320), y + r.randrange(40, 260)]
        fill = tuple(r.randrange(256) for _ in range(3))
        (d.ellipse if r.random() < 0.5 else d.rectangle)(box, fill=fill)
    noise = Image.effect_noise(size, 24).convert("RGB")
    return Image.blend(im, noise, 0.12)


def jpeg(im, quality: int = 88, **kw) -> bytes:
    buf = io.BytesIO()
    im.save(buf, "JPEG", quality=quality, **kw)
    return buf.getvalue()


def test_same_picture_reencoded_resized_cropped_matches():
    im = scene(1)
    original = media_facts(jpeg(im))
    assert original.phash and len(original.phash) == 16 and original.hash_name == HASH_NAME
    assert (original.width, original.height, original.mime) == (800, 600, "image/jpeg")
    w, h = im.size
    variants = {
        "re-encoded": jpeg(im, quality=55),
        "resized": jpeg(im.resize((480, 360))),
        "cropped 4%": jpeg(im.crop((16, 12, w - 16, h - 12))),
        "all three": jpeg(im.crop((20, 10, w - 12, h - 14)).resize((640, 470)), quality=60),
    }
    buf = io.BytesIO()
    im.save(buf, "PNG")
    variants["as PNG"] = buf.getvalue()
    for name, data in variants.items():
        f = media_facts(data)
        assert f.phash, name
        assert hamming(original.phash, f.phash) <= MATCH_THRESHOLD, name
        assert matches(original.phash, f.phash), name


def test_different_pictures_do_not_match():
    hashes = [media_facts(jpeg(scene(seed))).phash for seed in range(2, 14)]
    for i, a in enumerate(hashes):
        for b in hashes[i + 1:]:
            assert hamming(a, b) > MATCH_THRESHOLD
            assert not matches(a, b)


def test_hamming_and_matches_edge_cases():
    assert hamming("ff", "00") == 8 and hamming("0f", "0f") == 0
    with pytest.raises(ValueError):
        hamming("ff", "ffff")
    assert not matches(None, "ff") and not matches("ff", "ffff")


def test_exif_gps_camera_and_time_are_found():
    im = scene(3, (320, 240))
    exif = Image.Exif()
    exif[0x010F] = "Samsung"
    exif[0x0110] = "SM-A515F"
    sub = exif.get_ifd(0x8769)
    sub[0x9003] = "2022:01:05 17:42:10"
    sub[0xA431] = "R58N1234ABC"
    gps = exif.get_ifd(0x8825)
    gps[1], gps[2] = "N", (43.0, 14.0, 18.0)
    gps[3], gps[4] = "E", (76.0, 56.0, 42.0)
    f = media_facts(jpeg(im, exif=exif))
    assert f.exif["present"] and f.exif["has_gps"]
    lat, lon = f.exif["gps"]
    assert abs(lat - 43.238333) < 1e-4 and abs(lon - 76.945) < 1e-4
    assert f.exif["make"] == "Samsung" and f.exif["model"] == "SM-A515F"
    assert f.exif["serial"] == "R58N1234ABC"
    assert f.exif["datetime_original"] == "2022:01:05 17:42:10"
    assert f.phash  # EXIF does not stop hashing
    # round trip through JSON-ready dicts (the index stores them)
    assert MediaFacts.from_dict(f.as_dict()) == f

    clean = media_facts(jpeg(im))
    assert not clean.exif["present"] and not clean.exif["has_gps"] and clean.exif["gps"] is None


def test_non_images_and_video_get_sha256_only():
    f = media_facts(b"just some text, not a picture")
    assert f.phash is None and f.reason and len(f.sha256) == 64 and f.size == 29
    mp4 = b"\x00\x00\x00\x18ftypmp42" + b"\x00" * 100
    v = media_facts(mp4)
    assert v.mime == "video/mp4" and v.phash is None and "sha256 only" in v.reason
    empty = media_facts(b"")
    assert empty.phash is None and empty.reason


def test_truncated_jpegs_never_raise():
    data = jpeg(scene(4, (400, 300)))
    for cut in (2, 3, 10, 100, 600, len(data) // 3, len(data) // 2, len(data) - 10):
        f = media_facts(data[:cut])
        assert f.phash is None and f.reason, cut


def _png_chunk(kind: bytes, body: bytes) -> bytes:
    return struct.pack(">I", len(body)) + kind + body + struct.pack(">I", zlib.crc32(kind + body))


def bomb_png(side: int = 60_000) -> bytes:
    """A PNG header declaring side x side pixels (3.6 gigapixels) with a tiny body."""
    ihdr = struct.pack(">IIBBBBB", side, side, 8, 0, 0, 0, 0)
    idat = zlib.compress(b"\x00" * 4096, 9)
    return b"\x89PNG\r\n\x1a\n" + _png_chunk(b"IHDR", ihdr) + _png_chunk(b"IDAT", idat) + \
        _png_chunk(b"IEND", b"")


def test_decompression_bomb_is_refused_quickly():
    started = time.monotonic()
    f = media_facts(bomb_png())
    assert time.monotonic() - started < 1.0
    assert f.phash is None and "bomb" in f.reason
    # under Pillow's own limit but over ours
    started = time.monotonic()
    g = media_facts(bomb_png(9000))
    assert time.monotonic() - started < 1.0
    assert g.phash is None and g.width == 9000 and "limit" in g.reason


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.binary(max_size=4096))
def test_random_bytes_never_raise(data):
    f = media_facts(data)
    assert isinstance(f, MediaFacts) and len(f.sha256) == 64
    assert (f.phash is None) == (f.reason is not None)


_SMALL = jpeg(scene(5, (160, 120)))
_SMALL_PNG = io.BytesIO()
scene(6, (120, 90)).save(_SMALL_PNG, "PNG")


@settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.sampled_from([_SMALL, _SMALL_PNG.getvalue()]), st.integers(0, 10_000),
       st.lists(st.tuples(st.integers(0, 10_000), st.integers(0, 255)), max_size=8))
def test_damaged_images_never_raise(data, cut, flips):
    raw = bytearray(data[:max(cut, 1)] if cut < len(data) else data)
    for pos, value in flips:
        if raw:
            raw[pos % len(raw)] = value
    f = media_facts(bytes(raw))
    assert isinstance(f, MediaFacts)
