"""The observer's ingest on real loopback hubs, real bundles and real signed events:
NIP-77 and REQ paging, Blossom media, receipt leaf lists, then `observe check`."""

from __future__ import annotations

import io
import json
import threading
import time

import orjson
import pytest
from click.testing import CliRunner
from PIL import Image

from samizdat.cli import main
from samizdat.observer.service import Observer
from samizdat.receipts.merkle import verify

from .helpers import Client, Keys
from .test_blobs import upload
from .test_receipts_hub import FAST, wait_receipts


def _photo(seed: int) -> bytes:
    im = Image.effect_noise((96, 64), 40 + seed).convert("RGB")
    buf = io.BytesIO()
    im.save(buf, "PNG")
    return buf.getvalue()


def _scene(h, n_witnesses: int = 3):
    """A report with a photo on hub ``h``, corroborated by ``n_witnesses`` keys; waits
    for the receipts (and leaf lists) that cover everything."""
    alice = Keys()
    photo = _photo(1)
    import hashlib

    digest = hashlib.sha256(photo).hexdigest()
    assert upload(h, alice, photo, "image/png").status in (200, 201)
    now = int(time.time())
    report = alice.sign(1, f"crowd at the square\n{h.http}/{digest}.png", [
        ["t", "almaty"], ["g", "txwts"], ["g", "txwt"], ["g", "txw"], ["g", "tx"],
        ["observed_at", str(now - 60)],
        ["imeta", f"url {h.http}/{digest}.png", "m image/png", f"x {digest}",
         f"size {len(photo)}", "dim 96x64"]], created_at=now)
    witnesses = [Keys() for _ in range(n_witnesses)]
    labels = [w.sign(1985, "", [["L", "samizdat.witness"],
                                ["l", "corroborate", "samizdat.witness"],
                                ["e", report.id], ["p", alice.pubkey]]) for w in witnesses]
    earlier = [w.sign(1, "earlier note from a witness", created_at=now - 86400)
               for w in witnesses]
    with Client(h.url) as c:
        for ev in [report, *labels, *earlier]:
            assert c.publish(ev)[0]
        wait_receipts(c, h.relay.pubkey, 1 + 2 * n_witnesses)
        # the leaf lists follow their receipts
        deadline = time.monotonic() + 5
        while time.monotonic() < deadline and not c.query({"kinds": [3042]}):
            time.sleep(0.1)
    return report, digest


def _check(data, eid):
    res = CliRunner().invoke(main, ["observe", "check", eid, "--data", str(data), "--json"])
    assert res.exit_code in (0, 1), res.output
    return json.loads(res.output)


def test_ingest_hub_by_nip77_with_media_and_leaf_lists(make_hub, tmp_path):
    h = make_hub(**FAST, **{"receipts.place": "txwt"})
    report, _digest = _scene(h)
    obs_dir = tmp_path / "obs"
    res = CliRunner().invoke(main, ["observe", "ingest", h.url, "--data", str(obs_dir),
                                    "--json"])
    assert res.exit_code == 0, res.output
    out = json.loads(res.output[res.output.index("{"):])
    src = out["sources"][0]
    assert src["method"] == "nip77" and src["received"] >= 8 and src["media_fetched"] == 1
    assert out["totals"]["receipts_with_leaves"] >= 1

    v = _check(obs_dir, report.id)
    assert v["found"] and v["signature_valid"] and v["kind"] == 1
    assert v["corroborations"] == 3 and v["disputes"] == 0
    assert v["receipts"] and v["receipts"][0]["hub"] == h.relay.pubkey
    assert v["existed_by"] == min(r["window"][1] for r in v["receipts"])
    assert v["claimed_place"] == "txwts" and v["place_checks"][0]["distance_km"] == 0
    m = v["media"][0]
    assert m["stored"] and m["sha256_ok"] and not m["problems"]
    assert m["facts"]["width"] == 96 and m["facts"]["phash"]
    assert v["author"]["reports"] == 1 and v["author"]["corroborations_received"] == 3
    assert not [f for f in v["flags"] if f["severity"] != "info"], v["flags"]

    # idempotent: a second ingest adds nothing; reindex rebuilds the same answer
    again = CliRunner().invoke(main, ["observe", "ingest", h.url, "--data", str(obs_dir),
                                      "--json"])
    assert again.exit_code == 0, again.output
    assert json.loads(again.output[again.output.index("{"):])["sources"][0]["received"] == 0
    assert CliRunner().invoke(main, ["observe", "reindex", "--data", str(obs_dir)]).exit_code == 0
    v2 = _check(obs_dir, report.id)
    assert v2 == v

    # the service answers the console's questions
    with Observer(obs_dir, create=False) as o:
        assert [r.id for r in o.reports(cell="txw")] == [report.id]
        cl = o.clusters()
        assert cl[0].cell == "txwts" and cl[0].keys == 1
        assert o.cluster(cl[0].id)[1][0].id == report.id
        assert o.timeline()[0].reports >= 1
        rc = v["receipts"][0]["id"]
        p = o.proof(report.id, rc)
        root = next(r[6] for r in o.index.receipts() if r[0] == rc)
        assert p is not None and verify(bytes.fromhex(report.id), p, bytes.fromhex(root))


def test_ingest_bundle_carries_media_and_receipts(make_hub, tmp_path):
    h = make_hub(**FAST, **{"receipts.place": "txwt"})
    report, _digest = _scene(h, 2)
    bundle = tmp_path / "out.szb"
    res = CliRunner().invoke(main, ["export", str(bundle), "--data", str(h.cfg.data_dir)])
    assert res.exit_code == 0, res.output
    parts = sorted(str(p) for p in tmp_path.glob("out*"))
    obs_dir = tmp_path / "obs"
    res = CliRunner().invoke(main, ["observe", "ingest", *parts, "--data", str(obs_dir)])
    assert res.exit_code == 0, res.output
    assert "bundle" in res.output
    v = _check(obs_dir, report.id)
    assert v["receipts"] and v["corroborations"] == 2
    assert v["media"][0]["stored"] and v["media"][0]["sha256_ok"]
    missing = CliRunner().invoke(main, ["observe", "check", "ab" * 32, "--data", str(obs_dir)])
    assert missing.exit_code == 2


@pytest.fixture
def req_only_relay():
    """A relay that knows REQ but not NIP-77 (it answers NEG-OPEN with NEG-ERR), on
    127.0.0.1, built on the `websockets` library."""
    from websockets.sync.server import serve

    events: list[dict] = []

    def handler(ws):
        for msg in ws:
            frame = json.loads(msg)
            if frame[0] == "REQ":
                f = frame[2]
                sel = [e for e in events if e["created_at"] <= f.get("until", 1 << 40)]
                sel.sort(key=lambda e: (-e["created_at"], e["id"]))
                for e in sel[:f.get("limit", 500)]:
                    ws.send(json.dumps(["EVENT", frame[1], e]))
                ws.send(json.dumps(["EOSE", frame[1]]))
            elif frame[0] == "NEG-OPEN":
                ws.send(json.dumps(["NEG-ERR", frame[1], "error: NIP-77 not supported"]))
            elif frame[0] != "CLOSE":
                ws.send(json.dumps(["NOTICE", "unsupported"]))

    server = serve(handler, "127.0.0.1", 0)
    t = threading.Thread(target=server.serve_forever, daemon=True)
    t.start()
    port = server.socket.getsockname()[1]
    yield f"ws://127.0.0.1:{port}", events
    server.shutdown()


def test_ingest_plain_relay_by_req_paging(req_only_relay, tmp_path, monkeypatch):
    import samizdat.observer.ingest as ingest_mod

    monkeypatch.setattr(ingest_mod, "REQ_PAGE", 7)  # many pages, ties across pages
    url, events = req_only_relay
    k = Keys()
    base = int(time.time()) - 1000
    sent = [k.sign(1, f"note {i}", created_at=base + i // 3) for i in range(40)]
    events += [orjson.loads(e.to_json()) for e in sent]
    forged = dict(events[0], content="altered")
    events.append(forged)
    with Observer(tmp_path / "obs") as o:
        rep = ingest_mod.ingest(o, [url], timeout=5)
        src = rep.sources[0]
        assert src.method == "req", src.problems
        assert src.received == 40 and src.rejected >= 1
        assert o.stats()["reports"] == 40
        v = o.check(sent[5].id)
        assert v.found and v.signature_valid and [f.code for f in v.flags] == ["no-receipt"]
