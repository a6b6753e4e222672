"""Hub receipts on real hubs (127.0.0.1, one-second windows): publishing, reading them
over the relay, `samizdat prove` and `samizdat verify-proof` as commands, catch-up of
events stored while the hub was down, receipts crossing to a peer without echoing back,
and OpenTimestamps against a local stand-in calendar."""

from __future__ import annotations

import asyncio
import json
import logging
import subprocess
import sys
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest
from click.testing import CliRunner

from samizdat.cli import main
from samizdat.nostr.event import parse_event
from samizdat.receipts.leaves import LEAVES_KIND, check_leaves, parse_leaf_event
from samizdat.receipts.merkle import merkle_root
from samizdat.receipts.receipt import RECEIPT_KIND, parse_receipt
from samizdat.store import SQLiteStore

from .helpers import ROOT, Client, Keys, free_port

FAST = {"receipts.interval_minutes": 1 / 60}  # one-second windows


def wait_receipts(client: Client, hub_pubkey: str, covering: int, timeout: float = 8.0):
    """This hub's receipts, once together they commit to at least ``covering`` events."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        found = client.query({"kinds": [RECEIPT_KIND], "authors": [hub_pubkey]})
        if sum(int(dict((t[0], t[1]) for t in r["tags"])["count"]) for r in found) >= covering:
            return found
        time.sleep(0.2)
    raise AssertionError(f"no receipts covering {covering} events within {timeout} s")


def by_hand(proof: Path) -> None:
    """Run the check docs/report-format.md gives for third parties (hashlib only) on
    ``proof``; raises AssertionError if it fails."""
    text = (ROOT / "docs" / "report-format.md").read_text()
    section = text.split("### Checking a proof with standard tools", 1)[1]
    snippet = section.split("```python\n", 1)[1].split("```", 1)[0]
    exec(compile(snippet.replace('"proof.json"', repr(str(proof))), "report-format.md",
                 "exec"), {})


def samizdat(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "samizdat.cli", *args], capture_output=True,
                          text=True, timeout=60)


def test_receipt_published_queried_and_proved(make_hub, tmp_path):
    h = make_hub(**FAST, **{"receipts.place": "v9ms"})
    alice = Keys()
    with Client(h.url) as c:
        events = [alice.sign(1, f"report {i}") for i in range(5)]
        for ev in events:
            assert c.publish(ev)[0]
        receipts = wait_receipts(c, h.relay.pubkey, 5)
    parsed = []
    for js in receipts:
        ev = parse_event(js)
        ev.verify()  # signed by the hub key
        parsed.append(parse_receipt(ev))
    assert {r.hub for r in parsed} == {h.relay.pubkey}
    assert sum(r.count for r in parsed) == 5  # the receipts themselves only in later windows
    assert all(r.place == "v9ms" for r in parsed)
    # each receipt's leaf list (kind 3042) was published with it and rebuilds its root
    with Client(h.url) as c:
        leaf_events = c.query({"kinds": [LEAVES_KIND], "authors": [h.relay.pubkey]})
    listed = set()
    for r in parsed:
        parts = []
        for js in leaf_events:
            ev = parse_event(js)
            ev.verify()
            part = parse_leaf_event(ev)
            if part is not None and part.receipt == r.id:
                parts.append(part)
        ids = check_leaves(r, parts)
        assert merkle_root(ids) == r.root and len(ids) == r.count
        listed.update(x.hex() for x in ids)
    assert {ev.id for ev in events} <= listed

    data = str(h.cfg.data_dir)
    res = samizdat("prove", events[2].id, "--data", data, "--json")
    assert res.returncode == 0, res.stderr
    doc = json.loads(res.stdout)
    assert doc["event_id"] == events[2].id and doc["receipt"]["id"] in {r.id for r in parsed}
    proof_file = tmp_path / "proof.json"
    proof_file.write_text(res.stdout)
    ok = samizdat("verify-proof", str(proof_file), "--hub", h.relay.pubkey)
    assert ok.returncode == 0, ok.stdout + ok.stderr
    assert ok.stdout.startswith("OK: event " + events[2].id)
    by_hand(proof_file)

    # altering the id (or anything else) makes verification fail, with the reason
    other = events[3].id if events[3].id != events[2].id else events[4].id
    for altered in ({**doc, "event_id": other},
                    {**doc, "event_id": events[2].id[:-1] + ("0" if events[2].id[-1] != "0" else "1")}):
        bad = tmp_path / "bad.json"
        bad.write_text(json.dumps(altered))
        res = samizdat("verify-proof", str(bad))
        assert res.returncode == 1
        assert "does not lead to the receipt's root" in res.stdout
        with pytest.raises(AssertionError):
            by_hand(bad)
    wrong_hub = samizdat("verify-proof", str(proof_file), "--hub", Keys().pubkey)
    assert wrong_hub.returncode == 1 and "not by the expected hub" in wrong_hub.stdout

    human = CliRunner().invoke(main, ["prove", events[0].id, "--data", data])
    assert human.exit_code == 0, human.output
    assert "check     OK" in human.output and "place     v9ms" in human.output


def test_leaf_list_republished_at_start_is_the_same_events(make_hub):
    """After a restart the hub publishes its last receipt's leaf list again (in case it
    crashed between the two): the same event ids, so nothing is duplicated, and no new
    receipt follows from it."""
    h = make_hub(**FAST)
    with Client(h.url) as c:
        assert c.publish(Keys().sign(1, "before the restart"))[0]
        wait_receipts(c, h.relay.pubkey, 1)
        time.sleep(0.3)
        before = c.query({"kinds": [RECEIPT_KIND, LEAVES_KIND]})
    h.stop()
    h2 = make_hub(**FAST)  # the same data directory
    assert h2.relay.pubkey == h.relay.pubkey
    time.sleep(1.5)  # one window passes: it holds only the republished list
    with Client(h2.url) as c:
        after = c.query({"kinds": [RECEIPT_KIND, LEAVES_KIND]})
    assert sorted(e["id"] for e in after) == sorted(e["id"] for e in before)
    assert sorted(e["kind"] for e in after) == [RECEIPT_KIND, LEAVES_KIND]


def test_prove_before_the_window_closes_says_when(make_hub):
    h = make_hub(**{"receipts.interval_minutes": 10})
    ev = Keys().sign(1, "just now")
    with Client(h.url) as c:
        assert c.publish(ev)[0]
    time.sleep(0.8)  # the log is written every half second
    res = CliRunner().invoke(main, ["prove", ev.id, "--data", str(h.cfg.data_dir)])
    assert res.exit_code == 1
    assert "in no receipt yet" in res.output and "due at" in res.output
    assert "one every 10 minutes" in res.output
    res = CliRunner().invoke(main, ["prove", "ab" * 32, "--data", str(h.cfg.data_dir)])
    assert res.exit_code == 1 and "no record of storing" in res.output
    res = CliRunner().invoke(main, ["prove", "nonsense", "--data", str(h.cfg.data_dir)])
    assert res.exit_code == 2 and "not an event id" in res.output


def test_events_stored_while_the_hub_was_down_are_caught_up(make_hub, tmp_path):
    data = tmp_path / "hub"
    store = SQLiteStore(data / "events.sqlite3")
    bob = Keys()
    old = [bob.sign(1, f"imported {i}") for i in range(3)]
    store.save_many(old)
    store.close()
    res = CliRunner().invoke(main, ["prove", old[0].id, "--data", str(data)])
    assert res.exit_code == 1 and "does not exist" in res.output

    h = make_hub(**FAST)
    with Client(h.url) as c:
        wait_receipts(c, h.relay.pubkey, 3)
        res = CliRunner().invoke(main, ["prove", old[1].id, "--data", str(data), "--json"])
        assert res.exit_code == 0, res.output
        assert json.loads(res.output)["tree_size"] == 3
        # written by another process while the hub runs (`samizdat import`, `samizdat sync`)
        later = [bob.sign(1, f"imported while running {i}") for i in range(2)]
        other = SQLiteStore(data / "events.sqlite3")
        other.import_events(later)
        other.close()
        wait_receipts(c, h.relay.pubkey, 5)
    res = CliRunner().invoke(main, ["prove", later[0].id, "--data", str(data)])
    assert res.exit_code == 0, res.output


def test_receipts_cross_to_a_peer_and_do_not_echo(make_hub):
    a = make_hub("a", **FAST)
    b = make_hub("b", **FAST, **{"sync.peers": [a.url]})
    with Client(a.url) as ca, Client(b.url) as cb:
        assert ca.publish(Keys().sign(1, "seen at A"))[0]
        wait_receipts(ca, a.relay.pubkey, 1)
        wait_receipts(cb, b.relay.pubkey, 1)  # B stored the report too, and says so
        # A's receipt reached B (and B's reached A) like any event
        deadline = time.monotonic() + 8
        while time.monotonic() < deadline:
            on_b = cb.query({"kinds": [RECEIPT_KIND], "authors": [a.relay.pubkey]})
            on_a = ca.query({"kinds": [RECEIPT_KIND], "authors": [b.relay.pubkey]})
            if on_a and on_b:
                break
            time.sleep(0.2)
        assert on_a and on_b
        # one report, one receipt from each hub; windows holding only receipts make no new
        # receipt, so the two hubs do not answer each other's receipts forever
        time.sleep(1.5)
        assert len(ca.query({"kinds": [RECEIPT_KIND]})) == 2
        assert len(cb.query({"kinds": [RECEIPT_KIND]})) == 2
        # and each receipt's leaf list (one part) crossed too, without causing receipts
        assert len(ca.query({"kinds": [LEAVES_KIND]})) == 2
        assert len(cb.query({"kinds": [LEAVES_KIND]})) == 2


# --- OpenTimestamps against a stand-in calendar on 127.0.0.1 ------------------------------------

class Calendar(ThreadingHTTPServer):
    """Answers like an OpenTimestamps calendar: POST /digest gives a pending attestation;
    GET /timestamp/<commitment> gives the path to a Bitcoin attestation once ``mined``."""

    HEIGHT = 870_123

    def __init__(self):
        super().__init__(("127.0.0.1", 0), CalendarHandler)
        self.url = f"http://127.0.0.1:{self.server_address[1]}"
        self.mined = False
        self.submitted: list[bytes] = []
        threading.Thread(target=self.serve_forever, daemon=True).start()

    @staticmethod
    def serialize(ts) -> bytes:
        from opentimestamps.core.serialize import BytesSerializationContext

        ctx = BytesSerializationContext()
        ts.serialize(ctx)
        return ctx.getbytes()

    @staticmethod
    def block_root(commitment: bytes) -> bytes:
        import hashlib

        return hashlib.sha256(commitment).digest()


class CalendarHandler(BaseHTTPRequestHandler):
    server: Calendar

    def log_message(self, *args) -> None:
        pass

    def _send(self, status: int, body: bytes) -> None:
        self.send_response(status)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def do_POST(self) -> None:
        from opentimestamps.core.notary import PendingAttestation
        from opentimestamps.core.op import OpAppend, OpSHA256
        from opentimestamps.core.timestamp import Timestamp

        digest = self.rfile.read(int(self.headers["Content-Length"]))
        self.server.submitted.append(digest)
        ts = Timestamp(digest)
        ts.ops.add(OpAppend(b"calendar-nonce")).ops.add(OpSHA256()).attestations.add(
            PendingAttestation(self.server.url))
        self._send(200, self.server.serialize(ts))

    def do_GET(self) -> None:
        from opentimestamps.core.notary import BitcoinBlockHeaderAttestation
        from opentimestamps.core.op import OpSHA256
        from opentimestamps.core.timestamp import Timestamp

        commitment = bytes.fromhex(self.path.rsplit("/", 1)[-1])
        if not self.server.mined:
            self._send(404, b"Pending confirmation in Bitcoin blockchain")
            return
        ts = Timestamp(commitment)
        ts.ops.add(OpSHA256()).attestations.add(BitcoinBlockHeaderAttestation(Calendar.HEIGHT))
        self._send(200, self.server.serialize(ts))


def run_on(h, coro, timeout: float = 30):
    return asyncio.run_coroutine_threadsafe(coro, h.loop).result(timeout)


def test_opentimestamps_submit_upgrade_publish_and_verify(make_hub, tmp_path):
    cal = Calendar()
    try:
        h = make_hub(**FAST, **{"receipts.opentimestamps": True,
                                "receipts.ots_calendars": [cal.url]})
        ev = Keys().sign(1, "anchor me")
        with Client(h.url) as c:
            assert c.publish(ev)[0]
            receipt = wait_receipts(c, h.relay.pubkey, 1)[0]
            run_on(h, h.relay.receipts.ots_round(upgrade=True))
            assert cal.submitted == [bytes.fromhex(receipt["id"])]
            assert not c.query({"kinds": [1040]})  # pending: nothing to publish yet
            cal.mined = True
            run_on(h, h.relay.receipts.ots_round(upgrade=True))
            nip03 = c.query({"kinds": [1040], "authors": [h.relay.pubkey]})
        assert len(nip03) == 1 and ["e", receipt["id"]] in nip03[0]["tags"]

        res = CliRunner().invoke(main, ["prove", ev.id, "--data", str(h.cfg.data_dir), "--json"])
        assert res.exit_code == 0, res.output
        doc = json.loads(res.output)
        assert doc["opentimestamps"]["state"] == "complete"
        proof = tmp_path / "p.json"
        proof.write_text(res.output)
        # the commitment the Bitcoin block must carry, computed like the calendar did
        import hashlib

        commitment = hashlib.sha256(bytes.fromhex(receipt["id"]) + b"calendar-nonce").digest()
        root = Calendar.block_root(commitment)
        header = (b"\x00\x00\x00\x20" + b"\x22" * 32 + root + (1_795_000_000).to_bytes(4, "little")
                  + b"\xff\xff\x00\x1d" + b"\x00" * 4).hex()
        res = CliRunner().invoke(main, ["verify-proof", str(proof), "--block-header",
                                        f"{Calendar.HEIGHT}:{header}"])
        assert res.exit_code == 0, res.output
        assert f"Bitcoin block {Calendar.HEIGHT}" in res.output and "verified" in res.output
        # an .ots proof of some other receipt is refused
        other = tmp_path / "other.ots"
        from samizdat.receipts import ots

        other.write_bytes(ots.dump(ots.load(_ots_for(b"\x07" * 32))))
        res = CliRunner().invoke(main, ["verify-proof", str(proof), "--ots", str(other)])
        assert res.exit_code == 1 and "not for the receipt id" in res.output
    finally:
        cal.shutdown()


def _ots_for(digest: bytes) -> bytes:
    from opentimestamps.core.notary import PendingAttestation
    from opentimestamps.core.timestamp import Timestamp

    from samizdat.receipts import ots

    ts = Timestamp(digest)
    ts.attestations.add(PendingAttestation("https://example.org"))
    return ots.dump(ots.detached(ts))


def test_unreachable_calendars_are_logged_and_retried(make_hub, caplog):
    closed = f"http://127.0.0.1:{free_port()}"
    h = make_hub(**FAST, **{"receipts.opentimestamps": True, "receipts.ots_calendars": [closed]})
    ev = Keys().sign(1, "offline")
    with Client(h.url) as c:
        assert c.publish(ev)[0]
        wait_receipts(c, h.relay.pubkey, 1)
    with caplog.at_level(logging.WARNING, logger="samizdat.receipts.service"):
        run_on(h, h.relay.receipts.ots_round(upgrade=True))
    assert any("no calendar reachable" in r.getMessage() and closed in r.getMessage()
               for r in caplog.records)
    res = CliRunner().invoke(main, ["prove", ev.id, "--data", str(h.cfg.data_dir), "--json"])
    assert json.loads(res.output)["opentimestamps"]["state"] == "queued"


def test_receipts_can_be_turned_off(make_hub):
    h = make_hub(**FAST, **{"receipts.enabled": False})
    with Client(h.url) as c:
        assert c.publish(Keys().sign(1, "no receipts here"))[0]
        time.sleep(1.2)
        assert c.query({"kinds": [RECEIPT_KIND]}) == []
    assert not Path(h.cfg.data_dir, "receipts.sqlite3").exists()
