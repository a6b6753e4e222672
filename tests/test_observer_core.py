"""The observer's pure core: receipt leaf lists, parse, geo, cluster, analysis."""

from __future__ import annotations

import hashlib
import os

import pytest
from coincurve import PrivateKey
from hypothesis import given, settings
from hypothesis import strategies as st

from samizdat.nostr.event import sign_event
from samizdat.receipts import leaves
from samizdat.receipts.merkle import merkle_root, sorted_ids
from samizdat.receipts.receipt import build_receipt, parse_receipt

HUB = PrivateKey(hashlib.sha256(b"observer-test-hub").digest())


def _ids(n: int, seed: str = "x") -> list[bytes]:
    return sorted_ids(hashlib.sha256(f"{seed}{i}".encode()).digest() for i in range(n))


def _receipt(ids: list[bytes], key: PrivateKey = HUB):
    return build_receipt(key, 1000, 1600, len(ids), merkle_root(ids), place="v9ms",
                         created_at=1700)


# --- receipt leaf lists (kind 3042) -------------------------------------------------

@pytest.mark.parametrize("n", [1, 999, 1000, 1001, 2500])
def test_leaf_lists_round_trip(n):
    ids = _ids(n)
    rev = _receipt(ids)
    evs = leaves.build_leaf_events(HUB, rev, ids)
    assert len(evs) == -(-n // leaves.MAX_IDS_PER_PART)
    for ev in evs:
        ev.verify()
        assert ev.kind == leaves.LEAVES_KIND and ev.pubkey == rev.pubkey
        assert len(ev.content) <= 43_000
    parts = [leaves.parse_leaf_event(ev) for ev in reversed(evs)]
    assert all(parts)
    assert leaves.check_leaves(parse_receipt(rev), parts) == ids


def test_leaf_lists_refuse_tampering():
    ids = _ids(30)
    rev = _receipt(ids)
    r = parse_receipt(rev)
    evs = leaves.build_leaf_events(HUB, rev, ids, per_part=10)
    parts = [leaves.parse_leaf_event(ev) for ev in evs]
    with pytest.raises(leaves.InvalidLeaves, match="missing"):
        leaves.check_leaves(r, parts[:2])
    # one altered id: the root does not rebuild
    other = sorted_ids([*ids[:29], hashlib.sha256(b"intruder").digest()])
    bad = [leaves.parse_leaf_event(ev)
           for ev in leaves.build_leaf_events(HUB, rev, other, per_part=10)]
    with pytest.raises(leaves.InvalidLeaves, match="root"):
        leaves.check_leaves(r, bad)
    # fewer ids than counted
    short = [leaves.parse_leaf_event(ev)
             for ev in leaves.build_leaf_events(HUB, rev, ids[:29], per_part=10)]
    with pytest.raises(leaves.InvalidLeaves, match="counts"):
        leaves.check_leaves(r, short)
    # another key's list
    mallory = PrivateKey()
    forged = leaves.build_leaf_events(mallory, _receipt(ids, mallory), ids)
    with pytest.raises(leaves.InvalidLeaves):
        leaves.check_leaves(r, [leaves.parse_leaf_event(e) for e in forged])
    with pytest.raises(leaves.InvalidLeaves, match="hub key"):
        leaves.build_leaf_events(mallory, rev, ids)
    with pytest.raises(leaves.InvalidLeaves, match="sorted"):
        leaves.build_leaf_events(HUB, rev, list(reversed(ids)))


@settings(max_examples=200, deadline=None)
@given(tags=st.lists(st.lists(st.text(max_size=70), max_size=4), max_size=6),
       content=st.text(max_size=200))
def test_parse_leaf_event_never_raises(tags, content):
    ev = sign_event(HUB, leaves.LEAVES_KIND, content, tags, 1)
    leaves.parse_leaf_event(ev)


def test_parse_leaf_event_rejects_shapes():
    rid = "ab" * 32
    good = sign_event(HUB, 3042, "A" * 44, [["e", rid], ["part", "0", "1"]], 1)
    assert leaves.parse_leaf_event(good) is None  # 33 bytes: not whole ids
    ok = sign_event(HUB, 3042, __import__("base64").b64encode(os.urandom(64)).decode(),
                    [["e", rid], ["part", "0", "1"]], 1)
    p = leaves.parse_leaf_event(ok)
    assert p and len(p.ids) == 2 and p.receipt == rid
    for tags in ([["e", rid], ["part", "1", "1"]], [["e", rid], ["part", "01", "2"]],
                 [["e", rid]], [["e", "zz"], ["part", "0", "1"]],
                 [["e", rid], ["e", rid], ["part", "0", "1"]]):
        assert leaves.parse_leaf_event(sign_event(HUB, 3042, ok.content, tags, 1)) is None
    assert leaves.parse_leaf_event(sign_event(HUB, 1, ok.content, ok.tags, 1)) is None


# --- geo ------------------------------------------------------------------------------

from samizdat.observer import analysis, cluster, geo, parse  # noqa: E402
from samizdat.observer.media import MediaFacts  # noqa: E402
from samizdat.observer.model import (  # noqa: E402
    KeyHistory,
    Label,
    MediaClaim,
    MediaMatch,
    ReceiptFacts,
    Report,
)

LAT = st.floats(min_value=-89.999, max_value=89.999, allow_nan=False)
LON = st.floats(min_value=-179.999, max_value=179.999, allow_nan=False)


@settings(max_examples=300, deadline=None)
@given(lat=LAT, lon=LON, precision=st.integers(1, 12))
def test_geohash_round_trip(lat, lon, precision):
    gh = geo.encode(lat, lon, precision)
    assert len(gh) == precision and geo.is_geohash(gh)
    s, w, n, e = geo.bbox(gh)
    assert s <= lat <= n and w <= lon <= e
    assert geo.encode(*geo.decode(gh), precision) == gh
    assert geo.cell_distance_km(gh, geo.encode(lat, lon, 12)) == 0


def test_geo_known_values():
    assert geo.encode(57.64911, 10.40744, 11) == "u4pruydqqvj"  # the Wikipedia example
    assert geo.encode(43.2389, 76.8897, 5) == "txwtv"  # Almaty
    s, w, n, e = geo.bbox("txwts")
    for nb in geo.neighbours("txwts"):
        s2, w2, n2, e2 = geo.bbox(nb)
        assert abs(n2 - n) < 1e-9 or abs(s2 - s) < 1e-9 or abs(s2 - n) < 1e-9 \
            or abs(n2 - s) < 1e-9
        assert s2 <= n + 1e-9 and n2 >= s - 1e-9 and w2 <= e + 1e-9 and e2 >= w - 1e-9
    assert len(geo.neighbours("txwts")) == 8
    d = geo.distance_km(geo.decode("txwts"), geo.decode("tzq"))  # Almaty to Astana cell
    assert 900 < d < 1100
    assert geo.cell_distance_km("txwt", "txwts") == 0
    with pytest.raises(ValueError):
        geo.bbox("txwa")  # "a" is not in the alphabet


# --- parse ----------------------------------------------------------------------------

ANY_TAG = st.lists(st.one_of(st.sampled_from(["g", "t", "imeta", "observed_at", "e", "l",
                                              "L", "p", "x"]), st.text(max_size=5)),
                   min_size=0, max_size=1).flatmap(
    lambda head: st.lists(st.text(max_size=80), max_size=5).map(lambda rest: head + rest))


@settings(max_examples=300, deadline=None)
@given(kind=st.sampled_from([1, 1985, 3041, 3042, 7]), tags=st.lists(ANY_TAG, max_size=8),
       content=st.text(max_size=100))
def test_parse_never_raises(kind, tags, content):
    ev = sign_event(HUB, kind, content, tags, 1_700_000_000)
    r = parse.report(ev)
    assert (r is None) == (kind != 1)
    if r is not None:
        assert r.geohash == "" or geo.is_geohash(r.geohash)
        assert Report.from_json(r.as_json()) == r
    lab = parse.label(ev)
    assert lab is None or lab.value in ("corroborate", "dispute")
    parse.receipt(ev)
    parse.leaf_part(ev)


def test_parse_report_and_label():
    sha = "ab" * 32
    ev = sign_event(HUB, 1, "text", [
        ["g", "txwts"], ["g", "txwt"], ["g", "tx"], ["g", "BAD"], ["t", "Almaty"],
        ["observed_at", "1700000000"], ["observed_at", "12"],
        ["imeta", f"url https://h/{sha}.jpg", "m image/jpeg", f"x {sha}", "dim 640x480",
         "size 1234"], ["imeta", "nothing useful"]], 1_700_000_100)
    r = parse.report(ev)
    assert r.geohash == "txwts" and r.observed_at == 1_700_000_000
    assert r.claimed_time == 1_700_000_000 and r.hashtags == ("almaty",)
    assert r.media == (MediaClaim(sha, "image/jpeg", f"https://h/{sha}.jpg", (640, 480), 1234),)
    lab = sign_event(HUB, 1985, "", [["L", "samizdat.witness"],
                                     ["l", "dispute", "samizdat.witness"], ["e", ev.id]])
    assert parse.label(lab).value == "dispute" and parse.label(lab).report == ev.id
    other_ns = sign_event(HUB, 1985, "", [["l", "corroborate", "other"], ["e", ev.id]])
    assert parse.label(other_ns) is None
    ids = _ids(3)
    rf = parse.receipt(_receipt(ids))
    assert rf.count == 3 and rf.place == "v9ms" and rf.root == merkle_root(ids).hex()


# --- cluster --------------------------------------------------------------------------

POINTS = st.lists(st.tuples(st.integers(0, 5), st.sampled_from(["txwts", "txwtt", "txwt",
                                                                 "tzq12", ""]),
                            st.integers(0, 4 * 3600)), max_size=60)


@settings(max_examples=200, deadline=None)
@given(raw=POINTS)
def test_cluster_counts_independent_keys(raw):
    pts = [cluster.Point(f"{i:064x}", f"key{k}", t, g) for i, (k, g, t) in enumerate(raw)]
    cs = cluster.clusters(pts)
    placed = [p for p in pts if p.geohash]
    assert sum(len(c.reports) for c in cs) == len(placed)
    for c in cs:
        mine = [p for p in placed if p.id in set(c.reports)]
        assert c.keys == len({p.pubkey for p in mine})
        assert all(p.geohash[:5] == c.cell and c.start <= p.time < c.end for p in mine)
        assert cluster.members(pts, c.cell, c.start) == sorted(mine, key=pts.index)
    assert [c.keys for c in cs] == sorted((c.keys for c in cs), reverse=True)
    tl = cluster.timeline(pts)
    assert sum(r.reports for r in tl) == len(pts)


# --- analysis -------------------------------------------------------------------------

T0 = 1_800_000_000
AUTHOR = "a" * 64


def rep(**kw) -> Report:
    base = dict(id="1" * 64, pubkey=AUTHOR, created_at=T0, observed_at=None,
                geohash="txwts")
    base.update(kw)
    return Report(**base)


def rcpt(i: int, start: int, end: int, place: str = "txwt", hub: str = "h") -> ReceiptFacts:
    return ReceiptFacts(f"{i:064x}", hub * 64 if len(hub) == 1 else hub, end, start, end, 3,
                        "00" * 32, place)


def codes(v, severity=None):
    return sorted(f.code for f in v.flags if severity is None or f.severity == severity)


def test_honest_report_has_no_warning():
    v = analysis.check(rep().id, signature_valid=True, report=rep(),
                       receipts=[rcpt(1, T0, T0 + 600), rcpt(2, T0 + 600, T0 + 1200, "txwtt",
                                                          "b")])
    assert codes(v) == [] and v.existed_by == T0 + 600 and v.existed_by_receipt == f"{1:064x}"
    assert v.as_json()["worst"] is None


def test_time_contradiction_and_tolerance():
    late = rep(observed_at=T0 + 7200)  # says it happened after a receipt already held it
    v = analysis.check(late.id, signature_valid=True, report=late,
                       receipts=[rcpt(1, T0, T0 + 600)])
    assert codes(v, "warning") == ["time-contradiction"]
    assert f"{1:064x}" in v.flags[0].evidence
    slack = rep(observed_at=T0 + 900)  # within the clock slack (600 s after the end)
    assert codes(analysis.check(slack.id, report=slack, receipts=[rcpt(1, T0, T0 + 600)])) == []
    old = rep(observed_at=T0 - 3 * 86400)  # posted live, claims three days earlier
    v = analysis.check(old.id, report=old, receipts=[rcpt(1, T0, T0 + 600)])
    assert [(f.code, f.severity) for f in v.flags] == [("time-contradiction", "info")]
    strict = analysis.Tolerances(time_slack=0)
    assert codes(analysis.check(slack.id, report=slack, receipts=[rcpt(1, T0, T0 + 600)],
                                tol=strict)) == ["time-contradiction"]


def test_place_contradiction():
    far = rep(geohash=geo.encode(48.0, 68.0, 5))  # ~700 km from Almaty
    receipts = [rcpt(1, T0, T0 + 600, "txwt"), rcpt(2, T0, T0 + 900, "txwv", "b")]
    v = analysis.check(far.id, report=far, receipts=receipts)
    assert codes(v) == ["place-contradiction"]
    assert all(p.distance_km > 500 for p in v.place_checks)
    # one hub near the claim: no contradiction; reaching the hubs days later: none either
    near = [*receipts, rcpt(3, T0, T0 + 600, far.geohash[:4], "c")]
    assert codes(analysis.check(far.id, report=far, receipts=near)) == []
    late = [rcpt(1, T0 + 86400, T0 + 86400 + 600)]
    assert codes(analysis.check(far.id, report=far, receipts=late)) == []
    wide = analysis.Tolerances(place_tolerance_km=2000)
    assert codes(analysis.check(far.id, report=far, receipts=receipts, tol=wide)) == []


def test_corroboration_counting_newest_label_per_key_author_excluded():
    rid = rep().id
    labels = [Label("01" * 32, "k1", T0, rid, "corroborate"),
              Label("02" * 32, "k1", T0 + 5, rid, "dispute"),  # k1 changed its mind
              Label("03" * 32, "k2", T0, rid, "corroborate"),
              Label("04" * 32, "k2", T0 + 1, rid, "corroborate"),
              Label("05" * 32, AUTHOR, T0, rid, "corroborate"),  # the author: not counted
              Label("06" * 32, "k3", T0, "9" * 64, "corroborate")]  # another report
    v = analysis.check(rid, report=rep(), labels=labels, receipts=[rcpt(1, T0, T0 + 60)])
    assert (v.corroborations, v.disputes) == (1, 1)
    assert v.corroborators == ("k2",) and v.disputers == ("k1",)


def test_sybil_burst():
    rid = rep().id
    fresh = [f"f{i}" for i in range(15)]
    old = [f"o{i}" for i in range(3)]
    labels = [Label(f"{i:064x}", k, T0 + 100, rid, "corroborate")
              for i, k in enumerate(fresh + old)]
    hist = {k: KeyHistory(k, T0 + 100 + i * 8, T0 + 200, 1, 0, 1)
            for i, k in enumerate(fresh)}
    hist |= {k: KeyHistory(k, T0 - 90 * 86400, T0, 40, 12, 20) for k in old}
    v = analysis.check(rid, report=rep(), labels=labels, histories=hist,
                       receipts=[rcpt(1, T0, T0 + 60)])
    assert codes(v) == ["sybil-burst"] and len(v.flags[0].evidence) == 16
    # the same keys with histories of their own: no burst
    seasoned = {k: KeyHistory(k, T0 - 86400 * (i + 30), T0, 30, 5, 3)
                for i, k in enumerate(fresh + old)}
    assert codes(analysis.check(rid, report=rep(), labels=labels, histories=seasoned,
                                receipts=[rcpt(1, T0, T0 + 60)])) == []
    # fresh keys spread over days are no burst either
    spread = {k: KeyHistory(k, T0 + i * 86400, T0, 1, 0, 1) for i, k in enumerate(fresh)}
    assert codes(analysis.check(rid, report=rep(), labels=labels, histories=spread | {
        k: hist[k] for k in old}, receipts=[rcpt(1, T0, T0 + 60)])) == []


def test_media_flags():
    sha, other = "ab" * 32, "cd" * 32
    r = rep(media=(MediaClaim(sha, "image/jpeg", f"http://h/{sha}.jpg", (640, 480), 100),))
    good = MediaFacts(sha, 100, "image/jpeg", 640, 480, "f0f0f0f0f0f0f0f0")
    receipts = [rcpt(1, T0, T0 + 60)]
    v = analysis.check(r.id, report=r, media={sha: good}, receipts=receipts)
    assert codes(v) == [] and v.media[0].sha256_ok
    bad = MediaFacts(sha, 100, "image/png", 100, 100, "f0f0f0f0f0f0f0f0")
    v = analysis.check(r.id, report=r, media={sha: bad}, receipts=receipts)
    assert codes(v) == ["media-mismatch"] and len(v.media[0].problems) == 2
    gps = MediaFacts(sha, 100, "image/jpeg", 640, 480, None,
                     exif={"present": True, "has_gps": True, "gps": (43.24, 76.89)})
    v = analysis.check(r.id, report=r, media={sha: gps}, receipts=receipts)
    assert [(f.code, f.severity) for f in v.flags] == [("exif-location", "info")]
    earlier = MediaMatch(sha, other, 4, "archive", other_report="2" * 64,
                         other_time=T0 - 90 * 86400, earlier=True)
    v = analysis.check(r.id, report=r, media={sha: good}, matches=[earlier],
                       receipts=receipts)
    assert codes(v) == ["recycled-media"] and "2" * 64 in v.flags[0].evidence
    later = MediaMatch(sha, other, 4, "archive", other_report="2" * 64,
                       other_time=T0 + 86400, earlier=False)
    assert codes(analysis.check(r.id, report=r, media={sha: good}, matches=[later],
                                receipts=receipts)) == []
    ref = MediaMatch(sha, other, 9, "reference", reference="2022/almaty.jpg")
    v = analysis.check(r.id, report=r, matches=[ref], receipts=receipts)
    assert codes(v) == ["recycled-media"] and "2022/almaty.jpg" in v.flags[0].message
    far = MediaMatch(sha, other, 30, "reference", reference="x")
    assert codes(analysis.check(r.id, report=r, matches=[far], receipts=receipts)) == []


def test_bad_signature_no_receipt_and_json_shape():
    v = analysis.check("1" * 64, signature_valid=False, report=rep())
    assert [(f.code, f.severity) for f in v.flags] == [("bad-signature", "error"),
                                                      ("no-receipt", "info")]
    j = v.as_json()
    assert j["worst"] == "error" and j["version"] == 1
    assert set(j) == {"version", "id", "found", "kind", "signature_valid", "report",
                      "author", "receipts", "existed_by", "existed_by_receipt",
                      "claimed_time", "claimed_place", "place_checks", "media",
                      "corroborations", "disputes", "corroborators", "disputers", "flags",
                      "worst"}
    assert analysis.check("2" * 64, found=False).as_json()["found"] is False
