"""Pure helpers of the media store: byte ranges, MIME types, blob names."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from samizdat.blobs.media import (
    Unsatisfiable,
    extension_for,
    normalise_type,
    parse_blob_name,
    parse_range,
    type_allowed,
    type_for_extension,
)

SHA = "ab" * 32
DEFAULT = ["image/*", "video/*", "audio/*", "application/pdf"]


@pytest.mark.parametrize("header, size, expected", [
    (None, 100, None),
    ("bytes=0-9", 100, (0, 9)),
    ("bytes=10-", 100, (10, 99)),
    ("bytes=-10", 100, (90, 99)),
    ("bytes=-1000", 100, (0, 99)),
    ("bytes=90-1000", 100, (90, 99)),
    ("bytes=99-99", 100, (99, 99)),
    (" bytes=0-0 ", 100, (0, 0)),
    ("bytes=5-4", 100, None),          # invalid: ignored, whole blob
    ("bytes=0-1,5-6", 100, None),      # several ranges: whole blob
    ("items=0-1", 100, None),
    ("bytes=", 100, None),
    ("bytes=-", 100, None),
    ("bytes=a-b", 100, None),
    ("bytes=1-2-3", 100, None),
])
def test_ranges(header, size, expected):
    assert parse_range(header, size) == expected


@pytest.mark.parametrize("header, size", [
    ("bytes=100-", 100), ("bytes=100-200", 100), ("bytes=-0", 100), ("bytes=0-", 0),
    ("bytes=-5", 0),
])
def test_unsatisfiable_ranges(header, size):
    with pytest.raises(Unsatisfiable):
        parse_range(header, size)


@settings(max_examples=500)
@given(st.integers(0, 10_000), st.one_of(st.none(), st.integers(0, 20_000)),
       st.one_of(st.none(), st.integers(0, 20_000)))
def test_ranges_against_rfc9110(size, first, last):
    """Every answer selects exactly the bytes RFC 9110 section 14.1.2 says."""
    header = f"bytes={'' if first is None else first}-{'' if last is None else last}"
    blob = range(size)
    if first is None and last is None:
        assert parse_range(header, size) is None
        return
    if first is not None and last is not None and last < first:
        assert parse_range(header, size) is None
        return
    if first is None:
        wanted = blob[-last:] if last else blob[0:0]
    else:
        wanted = blob[first:(last + 1 if last is not None else None)]
    if not wanted:
        with pytest.raises(Unsatisfiable):
            parse_range(header, size)
        return
    start, end = parse_range(header, size)
    assert blob[start:end + 1] == wanted


def test_type_rules():
    assert type_allowed("image/jpeg", DEFAULT)
    assert type_allowed("video/mp4", DEFAULT)
    assert type_allowed("audio/ogg", DEFAULT)
    assert type_allowed("application/pdf", DEFAULT)
    assert not type_allowed("application/pdfx", DEFAULT)
    assert not type_allowed("text/html", DEFAULT)
    assert not type_allowed("application/octet-stream", DEFAULT)
    assert not type_allowed("imagex/png", DEFAULT)
    # SVG can carry script: a wildcard never admits it, its full name does
    assert not type_allowed("image/svg+xml", DEFAULT)
    assert type_allowed("image/svg+xml", [*DEFAULT, "image/svg+xml"])
    assert not type_allowed("text/html", ["text/*"])
    assert type_allowed("text/plain", ["text/*"])


@pytest.mark.parametrize("value, expected", [
    ("image/jpeg", "image/jpeg"),
    ("Image/JPEG; charset=binary", "image/jpeg"),
    ("  video/mp4 ", "video/mp4"),
    ("", None), (None, None), ("jpeg", None), ("image/", None), ("/png", None),
    ("image/png\r\nX-Evil: 1", None), ("image/p ng", None),
])
def test_normalise_type(value, expected):
    assert normalise_type(value) == expected


def test_extensions():
    assert extension_for("image/jpeg") == "jpg"
    assert extension_for("video/mp4") == "mp4"
    assert extension_for("application/x-unknown") == "bin"
    assert type_for_extension("/a/b/photo.JPG") == "image/jpeg"
    assert type_for_extension("clip.mov") == "video/quicktime"
    assert type_for_extension("noext") is None
    assert type_for_extension("x.unknown") is None


@pytest.mark.parametrize("name, expected", [
    (SHA, SHA), (SHA + ".jpg", SHA), (SHA + ".JPEG", SHA), (SHA + ".a1", SHA),
    (SHA.upper(), None), (SHA[:63], None), (SHA + "0", None), (SHA + ".", None),
    (SHA + "..jpg", None), (SHA + ".jp/g", None), (SHA + ".x" * 10, None),
    ("../" + SHA, None), (SHA + "/..", None), ("", None), (SHA + ".%2e", None),
])
def test_blob_names(name, expected):
    assert parse_blob_name(name) == expected
