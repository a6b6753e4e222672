"""Bundles from an enemy: every kind of bad input is refused with a message naming the
failing part and section, nothing is imported, and nothing is written anywhere."""

from __future__ import annotations

import hashlib
from pathlib import Path

import orjson
import pytest
import zstandard
from coincurve import PrivateKey
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from samizdat.bundle import BundleError, BundleWriter, import_files
from samizdat.bundle import format as fmt
from samizdat.bundle.frames import skippable, walk
from samizdat.bundle.reader import SALVAGE_HINT
from samizdat.nostr.event import parse_event, sign_event
from samizdat.nostr.keys import npub
from samizdat.store.sqlite import SQLiteStore

from .helpers import Keys

T0 = 1_790_000_000
DAMAGED = "damaged or altered (sha256 does not match the signed manifest). " + SALVAGE_HINT


def notes(n: int, seed: int = 0) -> list:
    k = Keys(bytes([seed + 1]) * 32)
    return [k.sign(1, f"note {i} " + "words and more words " * (i % 7), [["t", "x"]], T0 + i)
            for i in range(n)]


def write_bundle(path: Path, key: PrivateKey, events: list, *, blob: bytes | None = None,
                 max_part_size: int | None = None, lines: list[bytes] | None = None) -> dict:
    w = BundleWriter(path, key, max_part_size=max_part_size)
    for ev, line in zip(events, lines or [e.to_json().encode() for e in events], strict=True):
        w.add(ev.created_at, line)
    if blob is not None:
        w.add_blob(blob)
    return w.close()


def sections(path: Path) -> dict[str, list]:
    data = path.read_bytes()
    with path.open("rb") as fh:
        frames = list(walk(fh, len(data)))
    return {"header": [f for f in frames if f.tag == fmt.TAG_HEADER],
            "events": [f for f in frames if not f.skippable],
            "blobs": [f for f in frames if f.tag == fmt.TAG_BLOB],
            "manifest": [f for f in frames if f.tag == fmt.TAG_MANIFEST]}


def reseal(path: Path, key: PrivateKey, *, header: bytes | None = None,
           events: list[bytes] | None = None, body=lambda b: b, signer=None) -> None:
    """Rebuild a one-part bundle with some section replaced and a freshly signed manifest:
    what an attacker holding (or replacing) the signing key can produce."""
    data = path.read_bytes()
    s = sections(path)
    cut = lambda fs: [data[f.offset:f.end] for f in fs]  # noqa: E731
    head = header if header is not None else cut(s["header"])[0]
    evs = events if events is not None else cut(s["events"])
    blobs = b"".join(cut(s["blobs"]))
    m = s["manifest"][0]
    old = parse_event(orjson.loads(data[m.offset + 12:m.end]))
    b = orjson.loads(old.content)
    p = b["parts"][0]
    joined = b"".join(evs)
    raw = sum(zstandard.frame_content_size(e) for e in evs)
    p["header"] = hashlib.sha256(head).hexdigest()
    p["events"].update(sha256=hashlib.sha256(joined).hexdigest(), bytes=len(joined),
                       raw_bytes=raw)
    p["bytes"] = len(head) + len(joined) + len(blobs)
    b["events"].update(bytes=len(joined), raw_bytes=raw)
    b = body(b)
    ev = sign_event(signer or key, fmt.MANIFEST_KIND, orjson.dumps(b).decode(), old.tags,
                    old.created_at)
    path.write_bytes(head + joined + blobs + skippable(fmt.TAG_MANIFEST,
                                                       orjson.dumps(ev.to_dict())))


def flip(path: Path, offset: int, value: int | None = None) -> None:
    data = bytearray(path.read_bytes())
    data[offset] = value if value is not None else data[offset] ^ 0x01
    path.write_bytes(bytes(data))


def refused(tmp_path: Path, *files: Path, salvage: bool = False) -> str:
    store = SQLiteStore(tmp_path / "hub" / "events.sqlite3")
    before = sorted(p.name for p in tmp_path.rglob("*"))
    with pytest.raises(BundleError) as exc:
        import_files(store, list(files), salvage=salvage, workers=1, mode="thread")
    assert store.event_count == 0
    assert sorted(p.name for p in tmp_path.rglob("*")) == before  # nothing written anywhere
    store.close()
    return str(exc.value)


@pytest.fixture
def key() -> PrivateKey:
    return PrivateKey()


def test_flipped_byte_in_the_header(tmp_path, key):
    path = tmp_path / "b.szb"
    write_bundle(path, key, notes(30))
    h = sections(path)["header"][0]
    data = path.read_bytes()
    at = data.index(b"}", data.index(b'"created_at":', h.offset)) - 1  # last digit
    flip(path, at)  # a digit changes: still valid JSON, but not what was signed
    assert refused(tmp_path, path) == f"{path} (part 1 of 1), header section: {DAMAGED}"


def test_flipped_byte_in_the_events(tmp_path, key):
    path = tmp_path / "b.szb"
    write_bundle(path, key, notes(30))
    f = sections(path)["events"][0]
    flip(path, f.end - 5)  # inside the last block's content, before the checksum
    assert refused(tmp_path, path) == f"{path} (part 1 of 1), events section: {DAMAGED}"


def test_flipped_byte_in_the_blobs(tmp_path, key):
    path = tmp_path / "b.szb"
    write_bundle(path, key, notes(5), blob=b"photo bytes " * 100)
    f = sections(path)["blobs"][0]
    flip(path, f.end - 1)
    assert refused(tmp_path, path) == f"{path} (part 1 of 1), blobs section: {DAMAGED}"


def test_flipped_byte_in_the_manifest(tmp_path, key):
    path = tmp_path / "b.szb"
    write_bundle(path, key, notes(5))
    m = sections(path)["manifest"][0]
    data = path.read_bytes()
    at = data.index(b'"sig":"', m.offset) + 7
    flip(path, at, ord("0") if data[at] != ord("0") else ord("1"))
    assert refused(tmp_path, path) == (
        f"{path}, manifest: the manifest signature does not verify (the manifest was altered "
        f"or damaged). {SALVAGE_HINT}")


def test_flipped_byte_in_one_part_then_salvage(tmp_path, key):
    events = notes(1500)
    s = write_bundle(tmp_path / "m.szb", key, events, max_part_size=64 * 1024)
    files = [Path(f) for f in s["files"]]
    assert len(files) >= 3
    f = sections(files[1])["events"][0]
    flip(files[1], f.end - 5)
    n = len(files)
    assert refused(tmp_path, *files) == \
        f"{files[1]} (part 2 of {n}), events section: {DAMAGED}"
    store = SQLiteStore(tmp_path / "salvaged.db")
    report = import_files(store, files, salvage=True, workers=1, mode="thread")
    assert 0 < report.imported < 1500 and report.rejected == 0
    assert any("part 2 of" in note and "sha256" in note for note in report.skipped)
    assert any("damaged zstd data" in note and "skipped its events" in note
               for note in report.skipped)
    good = {e.id for e in events}
    with store._reader() as db:
        stored = {r[0].hex() for r in db.execute("SELECT id FROM events")}
    assert stored <= good


def test_forged_event_inside_a_validly_signed_manifest(tmp_path, key):
    events = notes(20)
    lines = [e.to_json().encode() for e in events]
    forged = events[7].to_dict() | {"sig": events[8].sig}  # valid id, someone else's sig
    lines[7] = orjson.dumps(forged)
    path = tmp_path / "f.szb"
    write_bundle(path, key, events, lines=lines)
    assert refused(tmp_path, path) == (
        f"{path} (part 1 of 1), events section: event 8 (id {events[7].id}) is refused: "
        "invalid: signature does not verify. the bundle holds a forged or damaged event "
        "although its manifest is validly signed; nothing was imported. Import with "
        "--salvage to take only the events that verify on their own")
    store = SQLiteStore(tmp_path / "s.db")
    report = import_files(store, [path], salvage=True, workers=1, mode="thread")
    assert report.imported == 19 and report.rejected == 1
    assert report.reasons == {"invalid: signature does not verify": 1}
    assert f"skipped event 8 (id {events[7].id})" in report.skipped[0]


def test_manifest_signed_by_another_key(tmp_path, key):
    path = tmp_path / "r.szb"
    write_bundle(path, key, notes(10))
    other = PrivateKey()
    reseal(path, key, signer=other)
    assert refused(tmp_path, path) == (
        f"{path}, manifest: the manifest is signed by {npub(other.public_key_xonly.format().hex())}"
        f" but the bundle says it comes from hub {npub(key.public_key_xonly.format().hex())}. "
        "someone re-signed it, so it is refused. Import with --salvage to take only the "
        "events that verify on their own")


def test_zstd_bomb_in_a_signed_bundle(tmp_path, key):
    path = tmp_path / "bomb.szb"
    write_bundle(path, key, notes(3))
    bomb = zstandard.ZstdCompressor(level=1).compress(b"\n" * (30 << 20))
    reseal(path, key, events=[bomb, bomb])
    msg = refused(tmp_path, path)
    assert msg == (f"{path} (part 1 of 1), events section: 62,914,560 bytes would come out "
                   f"of {2 * len(bomb):,} compressed; refusing a likely decompression bomb. "
                   "do not open this file with other tools either")
    # even --salvage does not open it
    assert "decompression bomb" in refused(tmp_path, path, salvage=True)


def test_zstd_bomb_as_a_jsonl_dump(tmp_path):
    path = tmp_path / "dump.jsonl.zst"
    path.write_bytes(zstandard.ZstdCompressor(level=1).compress(b"\n" * (200 << 20)))
    msg = refused(tmp_path, path)
    assert msg.startswith(f"{path}: ") and "refusing a likely decompression bomb" in msg


def test_path_traversal_in_part_names(tmp_path, key):
    path = tmp_path / "t.szb"
    write_bundle(path, key, notes(3))

    def evil(body):
        body["parts"][0]["name"] = "../../etc/passwd"
        return body

    reseal(path, key, body=evil)
    assert refused(tmp_path, path) == (
        f"{path}, manifest: part 1 has an unsafe name '../../etc/passwd'. refusing the "
        "bundle: it was made to trick the reader")


def test_path_traversal_in_blob_names(tmp_path, key):
    path = tmp_path / "t.szb"
    write_bundle(path, key, notes(3))

    def evil(body):
        body["blobs"]["items"] = [{"sha256": "../../.ssh/authorized_keys", "size": 10}]
        return body

    reseal(path, key, body=evil)
    assert refused(tmp_path, path) == (
        f"{path}, manifest: blob name '../../.ssh/authorized_keys' is not a sha256 digest. "
        "refusing the bundle: it was made to trick the reader")


def test_unknown_format_version(tmp_path, key):
    path = tmp_path / "v.szb"
    write_bundle(path, key, notes(3))
    head = orjson.loads(path.read_bytes()[12:sections(path)["header"][0].end])
    reseal(path, key, header=skippable(fmt.TAG_HEADER, orjson.dumps(head | {"version": 2})))
    assert refused(tmp_path, path) == (
        f"{path}: unknown bundle format version 2; this samizdat reads version 1. upgrade "
        "samizdat to import it")


def test_not_a_bundle_and_missing_files(tmp_path):
    junk = tmp_path / "photo.jpg"
    junk.write_bytes(b"\xff\xd8\xff\xe0 not a bundle")
    assert refused(tmp_path, junk) == (f"{junk}: neither a samizdat bundle nor a JSONL file of "
                                       "events (optionally zstd-compressed). check the file name")
    assert "no such file" in refused(tmp_path, tmp_path / "nope.szb")


def test_salvage_without_the_last_part(tmp_path, key):
    events = notes(1500)
    s = write_bundle(tmp_path / "m.szb", key, events, max_part_size=64 * 1024)
    files = [Path(f) for f in s["files"]]
    msg = refused(tmp_path, *files[:-1])
    assert "the part holding the signed manifest (the last part) is missing" in msg
    store = SQLiteStore(tmp_path / "s.db")
    report = import_files(store, files[:-1], salvage=True, workers=1, mode="thread")
    assert 0 < report.imported < 1500 and not report.sources[0]["authenticated"]
    assert any("no signed manifest found" in n for n in report.skipped)


# --- truncation anywhere -----------------------------------------------------------------

_TRUNC = {}


def _truncation_source(tmp_path_factory) -> bytes:
    if "data" not in _TRUNC:
        d = tmp_path_factory.mktemp("trunc")
        s = write_bundle(d / "whole.szb", PrivateKey(), notes(150), max_part_size=64 * 1024)
        assert s["parts"] == 1
        _TRUNC["data"] = Path(s["files"][0]).read_bytes()
    return _TRUNC["data"]


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(cut=st.floats(min_value=0.0, max_value=1.0, exclude_max=True))
def test_truncation_at_any_offset_is_refused(tmp_path_factory, cut):
    data = _truncation_source(tmp_path_factory)
    d = tmp_path_factory.mktemp("t")
    path = d / "cut.szb"
    k = max(1, int(cut * len(data)))
    path.write_bytes(data[:k])
    msg = refused(d, path)
    assert msg.startswith(str(path))
    assert (f"truncated at byte {k:,} (" in msg or "the part holding the signed manifest (the last part) is "
            "missing" in msg or "neither a samizdat bundle" in msg), msg


def test_a_line_with_a_repeated_key_is_stored_as_verified(tmp_path):
    """JSON parsers disagree on repeated keys (orjson keeps the last, others the first).
    The importer verifies what it parsed, so it must store that, not the line as it came."""
    import orjson

    from samizdat.bundle import import_files
    from samizdat.store.sqlite import SQLiteStore

    from .helpers import Keys

    ev = Keys().sign(1, "the real text")
    d = ev.to_dict()
    line = orjson.dumps(d).decode().replace('{"id"', '{"content":"forged text","id"', 1)
    assert orjson.loads(line)["content"] == "the real text"  # the last one wins here
    (tmp_path / "dup.jsonl").write_text(line + "\n")
    store = SQLiteStore(tmp_path / "s.db")
    assert import_files(store, [tmp_path / "dup.jsonl"], workers=1, mode="thread").imported == 1
    stored = store._w.execute("SELECT json FROM events").fetchone()[0]
    assert "forged" not in stored and orjson.loads(stored) == d
    store.close()
