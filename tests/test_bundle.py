"""Sneakernet bundles, the happy paths: real signed events, real SQLite, real files.

Hub A → bundle → empty hub B; incremental through B's state file; multi-part bundles
reassembled in any order; plain JSONL dumps; the CLI as an operator runs it.
"""

from __future__ import annotations

import json
import random
import shutil
import sqlite3
import subprocess
import sys
from pathlib import Path

import orjson
import pytest
import zstandard
from coincurve import PrivateKey

from samizdat.bundle import (
    BundleError,
    BundleWriter,
    decode_state,
    encode_state,
    export_bundle,
    import_files,
)
from samizdat.bundle import format as fmt
from samizdat.nostr.event import Event
from samizdat.nostr.filters import Filter, parse_filter
from samizdat.store.sqlite import SQLiteStore

from .helpers import Keys

T0 = 1_790_000_000


def make_events(n: int, seed: int = 1) -> list[Event]:
    """Regular notes from a few authors, with replaceable, addressable and deleted ones."""
    rnd = random.Random(seed)
    authors = [Keys(bytes([seed, i + 1]) * 16) for i in range(5)]
    out: list[Event] = []
    for i in range(n):
        k = authors[i % 5]
        text = f"report {i} from the square: " + " ".join(
            rnd.choice(["bread", "bridge", "closed", "open", "café", "мост", "water"])
            for _ in range(rnd.randrange(5, 30)))
        out.append(k.sign(1, text, [["t", "news"], ["p", authors[(i + 1) % 5].pubkey]],
                          T0 + rnd.randrange(86400)))
    for i, k in enumerate(authors):
        out.append(k.sign(0, json.dumps({"name": f"author {i}"}), [], T0 + 10))
        out.append(k.sign(30023, f"article {i}", [["d", "a"]], T0 + 20))
    victim = out[0]
    out.append(authors[0].sign(5, "mistake", [["e", victim.id]], T0 + 90000))
    return out


def store_with(path: Path, events: list[Event]) -> SQLiteStore:
    store = SQLiteStore(path, "NORMAL")
    store.save_many(events, now=T0)
    return store


def dump(store: SQLiteStore) -> list[tuple]:
    with sqlite3.connect(store.path) as db:
        return db.execute("SELECT id, json FROM events ORDER BY id").fetchall()


def ids_of(store: SQLiteStore) -> set[str]:
    return {r[0].hex() for r in dump(store)}


def zstdcat(paths: list[Path]) -> bytes:
    """What `zstdcat FILE...` prints: every ordinary frame, skippable ones skipped."""
    out = bytearray()
    for p in paths:
        with p.open("rb") as fh, zstandard.ZstdDecompressor().stream_reader(
                fh, read_across_frames=True) as r:
            out += r.read()
    return bytes(out)


@pytest.fixture(scope="module")
def events() -> list[Event]:
    return make_events(1500)


def test_round_trip_to_an_empty_hub(tmp_path, events):
    a = store_with(tmp_path / "a.db", events)
    hub = PrivateKey()
    summary = export_bundle(a, tmp_path / "news.szb", hub, flt=Filter())
    assert summary["parts"] == 1 and summary["files"] == [str(tmp_path / "news.szb")]
    assert summary["events"] == a.event_count
    b = SQLiteStore(tmp_path / "b.db")
    report = import_files(b, [tmp_path / "news.szb"], workers=2)
    assert report.imported == a.event_count and report.rejected == 0
    assert report.sources[0]["authenticated"] and report.sources[0]["hub"] == \
        hub.public_key_xonly.format().hex()
    assert dump(b) == dump(a)  # same events, same stored JSON
    for flt in ({"search": "мост bridge"}, {"#t": ["news"]}, {"kinds": [0, 30023]}):
        f = parse_filter(flt, max_limit=2**31)
        assert b.query([f], now=T0) == a.query([f], now=T0)  # same indexes, FTS included
    # the deletion travelled as the deletion request, and B refuses the deleted note too
    assert b.save_many([events[0]])[0].message.startswith("blocked:")
    # the events section is the JSONL of `strfry export`, ascending created_at
    lines = zstdcat([tmp_path / "news.szb"]).splitlines()
    assert len(lines) == a.event_count
    stamps = [orjson.loads(x)["created_at"] for x in lines]
    assert stamps == sorted(stamps)


def test_import_twice_changes_nothing(tmp_path, events):
    a = store_with(tmp_path / "a.db", events[:300])
    export_bundle(a, tmp_path / "x.szb", PrivateKey(), flt=Filter())
    b = SQLiteStore(tmp_path / "b.db")
    first = import_files(b, [tmp_path / "x.szb"], workers=1, mode="thread")
    before = dump(b)
    again = import_files(b, [tmp_path / "x.szb"], workers=1, mode="thread")
    assert first.imported == 300 and again.imported == 0 and again.already_present == 300
    assert dump(b) == before


def test_incremental_through_a_state_file(tmp_path, events):
    a = store_with(tmp_path / "a.db", events)
    b = store_with(tmp_path / "b.db", events[::3])  # B has a third, and one of its own
    own = Keys().sign(1, "only on B", created_at=T0 + 5)
    b.save_many([own], now=T0)
    _, ids = b.sync_items(None)
    state = decode_state(encode_state(ids, "ab" * 32), "b.state")
    assert state.count == b.event_count
    missing = ids_of(a) - ids_of(b)
    summary = export_bundle(a, tmp_path / "diff.szb", PrivateKey(), flt=Filter(), state=state)
    assert summary["events"] == len(missing)
    assert summary["skipped_present"] == a.event_count - len(missing)
    carried = {orjson.loads(x)["id"] for x in zstdcat([tmp_path / "diff.szb"]).splitlines()}
    assert carried == missing  # only the difference travels
    report = import_files(b, [tmp_path / "diff.szb"], workers=1, mode="thread")
    assert report.imported == len(missing)
    assert ids_of(b) == ids_of(a) | {own.id}


def test_state_file_is_small_and_exact(tmp_path):
    rnd = random.Random(7)
    ids = rnd.randbytes(32 * 20_000)
    state = decode_state(encode_state(ids, "cd" * 32), "s")
    assert all(state.contains(ids[i:i + 32]) for i in range(0, len(ids), 32))
    others = rnd.randbytes(32 * 20_000)
    assert not any(state.contains(others[i:i + 32]) for i in range(0, len(others), 32))
    assert len(encode_state(ids, "cd" * 32)) < 7 * 20_000


def test_multi_part_any_order(tmp_path, events):
    a = store_with(tmp_path / "a.db", events)
    limit = 64 * 1024
    summary = export_bundle(a, tmp_path / "n.szb", PrivateKey(), flt=Filter(),
                            max_part_size=limit)
    files = [Path(f) for f in summary["files"]]
    assert len(files) >= 3 and summary["parts"] == len(files)
    assert [f.name for f in files] == [f"n.szb.{i:03d}" for i in range(1, len(files) + 1)]
    assert all(f.stat().st_size <= limit for f in files)
    # each part decompresses on its own; together they are the whole JSONL
    assert zstdcat(files).count(b"\n") == a.event_count
    shuffled = files[:]
    random.Random(3).shuffle(shuffled)
    b = SQLiteStore(tmp_path / "b.db")
    report = import_files(b, shuffled, workers=2)
    assert report.imported == a.event_count and dump(b) == dump(a)
    # a missing part is named
    with pytest.raises(BundleError) as exc:
        import_files(SQLiteStore(tmp_path / "c.db"), files[:1] + files[2:])
    assert f"part 2 of {len(files)} (n.szb.002) is missing" in str(exc.value)


def test_filter_since_and_protected_events(tmp_path, events):
    k = Keys()
    protected = k.sign(1, "only I may publish this", [["-"]], T0 + 50_000)
    a = store_with(tmp_path / "a.db", [*events, protected])
    flt = parse_filter({"kinds": [1]}, max_limit=2**31)
    flt.since = T0 + 43_200
    summary = export_bundle(a, tmp_path / "f.szb", PrivateKey(), flt=flt,
                            filter_json={"kinds": [1]})
    got = [orjson.loads(x) for x in zstdcat([tmp_path / "f.szb"]).splitlines()]
    want = [e for e in events if e.kind == 1 and e.created_at >= flt.since
            and e.id != events[0].id]
    assert {g["id"] for g in got} == {e.id for e in want}
    assert summary["skipped_protected"] == 1


def test_plain_jsonl_and_zstd_dumps(tmp_path, events):
    lines = b"".join(e.to_json().encode() + b"\n" for e in events[:200])
    (tmp_path / "dump.jsonl").write_bytes(lines)
    (tmp_path / "dump.jsonl.zst").write_bytes(zstandard.ZstdCompressor().compress(lines))
    b = SQLiteStore(tmp_path / "b.db")
    r1 = import_files(b, [tmp_path / "dump.jsonl"], workers=1, mode="thread")
    assert r1.imported == 200 and r1.sources[0]["kind"] == "jsonl"
    c = SQLiteStore(tmp_path / "c.db")
    r2 = import_files(c, [tmp_path / "dump.jsonl.zst"], workers=2)
    assert r2.imported == 200 and dump(b) == dump(c)
    # a forged line in a dump stops the import, --salvage takes the rest
    bad = events[300].to_dict() | {"content": "altered"}
    (tmp_path / "bad.jsonl").write_bytes(lines + orjson.dumps(bad) + b"\n")
    d = SQLiteStore(tmp_path / "d.db")
    with pytest.raises(BundleError, match=r"event 201 \(id [0-9a-f]{64}\) is refused: invalid: "
                       "event id does not match"):
        import_files(d, [tmp_path / "bad.jsonl"], workers=1, mode="thread")
    assert d.event_count == 0
    r3 = import_files(d, [tmp_path / "bad.jsonl"], salvage=True, workers=1, mode="thread")
    assert r3.imported == 200 and r3.rejected == 1 and "skipped event 201" in r3.skipped[0]


def test_blob_slot_is_verified_not_stored(tmp_path, events):
    path = tmp_path / "m.szb"
    w = BundleWriter(path, PrivateKey())
    for e in sorted(events[:50], key=lambda e: e.created_at):
        w.add(e.created_at, e.to_json().encode())
    digest = w.add_blob(b"\x89PNG fake photo" * 1000)
    w.close()
    b = SQLiteStore(tmp_path / "b.db")
    report = import_files(b, [path], workers=1, mode="thread")
    assert report.imported == 50 and report.blobs_verified == 1
    assert report.as_dict()["blobs_stored"] == 0
    assert len(digest) == 64
    assert sorted(p.name for p in tmp_path.iterdir()) == ["b.db", "b.db-shm", "b.db-wal",
                                                          "m.szb"]


def samizdat(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "samizdat.cli", *args], capture_output=True,
                          text=True, timeout=60)


@pytest.mark.parametrize("cmd", ["export", "import", "state"])
def test_help(cmd):
    out = samizdat(cmd, "--help")
    assert out.returncode == 0 and "Usage:" in out.stdout


def test_cli_round_trip_with_state_and_parts(tmp_path, events):
    a_dir, b_dir = tmp_path / "A", tmp_path / "B"
    a = store_with(a_dir / "events.sqlite3", events)
    b = store_with(b_dir / "events.sqlite3", events[:500])
    common = len(ids_of(a) & ids_of(b))  # events[0] was deleted on A
    a.close()
    b.close()
    st = samizdat("state", str(tmp_path / "b.state"), "--data", str(b_dir), "--json")
    assert st.returncode == 0, st.stderr
    assert json.loads(st.stdout)["events"] == 500
    ex = samizdat("export", str(tmp_path / "to-b.szb"), "--data", str(a_dir), "--for",
                  str(tmp_path / "b.state"), "--max-part-size", "64K", "--json")
    assert ex.returncode == 0, ex.stderr
    summary = json.loads(ex.stdout)
    assert summary["skipped_present"] == common
    files = summary["files"]
    im = samizdat("import", *reversed(files), "--data", str(b_dir), "--json")
    assert im.returncode == 0, im.stderr
    report = json.loads(im.stdout)
    assert report["imported"] == summary["events"] and report["rejected"] == 0
    again = samizdat("import", *files, "--data", str(b_dir))
    assert again.returncode == 0 and "already here" in again.stdout
    # refuses to overwrite, and says why; bad sizes and filters are usage errors
    assert "already exists" in samizdat("export", files[0], "--data", str(a_dir)).stderr
    bad = samizdat("export", str(tmp_path / "y"), "--data", str(a_dir), "--max-part-size", "1Q")
    assert bad.returncode == 2 and "64K, 700M or 4G" in bad.stderr
    no_hub = samizdat("export", str(tmp_path / "z"), "--data", str(tmp_path / "none"))
    assert no_hub.returncode == 1 and "no hub database" in no_hub.stderr
    typo = samizdat("import", str(tmp_path / "nwes.szb"), "--data", str(tmp_path / "C"))
    assert typo.returncode == 1 and "no such file" in typo.stderr
    assert not (tmp_path / "C").exists()  # a typo does not create a hub


@pytest.mark.skipif(shutil.which("zstdcat") is None, reason="zstd tool not installed")
def test_standard_zstdcat_reads_a_bundle(tmp_path, events):
    a = store_with(tmp_path / "a.db", events[:100])
    s = export_bundle(a, tmp_path / "z.szb", PrivateKey(), flt=Filter(), max_part_size=65536)
    out = subprocess.run(["zstdcat", *s["files"]], capture_output=True, check=True).stdout
    assert out == zstdcat([Path(f) for f in s["files"]])
    assert len(out.splitlines()) == a.event_count


def test_writer_refuses_odd_names_and_tiny_parts(tmp_path):
    with pytest.raises(BundleError, match="plain file name"):
        BundleWriter(tmp_path / "../x/..", PrivateKey())
    with pytest.raises(BundleError, match="at least 65,536 bytes"):
        BundleWriter(tmp_path / "ok.szb", PrivateKey(), max_part_size=1000)
    assert fmt.safe_name("news.szb.001") and not fmt.safe_name("../etc")


def test_interrupted_export_leaves_no_bundle(tmp_path, events):
    with pytest.raises(RuntimeError), BundleWriter(tmp_path / "x.szb", PrivateKey(),
                                                   max_part_size=64 * 1024) as w:
        for e in sorted(events, key=lambda e: e.created_at):
            w.add(e.created_at, e.to_json().encode())
        assert len(w.parts) >= 2
        raise RuntimeError("the stick was pulled out")
    assert list(tmp_path.iterdir()) == []
