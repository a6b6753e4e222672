"""Hub receipts, pure parts: the Merkle tree and proofs, the receipt event, proof
documents, and OpenTimestamps proofs built locally (no network)."""

from __future__ import annotations

import base64
import hashlib
import os
import time

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from samizdat.nostr.event import Event, sign_event
from samizdat.receipts import ots
from samizdat.receipts.merkle import (
    EMPTY_ROOT,
    LEFT,
    RIGHT,
    MerkleError,
    MerkleTree,
    Proof,
    Step,
    expected_sides,
    merkle_root,
    proof_from_json,
    sorted_ids,
    verify,
)
from samizdat.receipts.proof import ProofError, check_doc, make_doc
from samizdat.receipts.receipt import (
    RECEIPT_KIND,
    InvalidReceipt,
    build_receipt,
    check_place,
    parse_receipt,
    place_tags,
)

from .helpers import Keys

# --- an independent reference: RFC 6962 section 2.1, recursively, as written there ------------


def rfc6962_root(leaves: list[bytes]) -> bytes:
    n = len(leaves)
    if n == 0:
        return hashlib.sha256(b"").digest()
    if n == 1:
        return hashlib.sha256(b"\x00" + leaves[0]).digest()
    k = 1
    while k * 2 < n:
        k *= 2
    return hashlib.sha256(b"\x01" + rfc6962_root(leaves[:k]) + rfc6962_root(leaves[k:])).digest()


def third_party_check(event_id_hex: str, path: list[dict], root_hex: str) -> bool:
    """What docs/report-format.md tells a third party to run: hashlib only."""
    h = hashlib.sha256(b"\x00" + bytes.fromhex(event_id_hex)).digest()
    for step in path:
        sib = bytes.fromhex(step["hash"])
        h = hashlib.sha256(b"\x01" + (sib + h if step["side"] == "left" else h + sib)).digest()
    return h.hex() == root_hex


def ids_of(n: int, seed: int = 0) -> list[bytes]:
    return sorted_ids(hashlib.sha256(f"{seed}:{i}".encode()).digest() for i in range(n))


def flip(b: bytes, bit: int = 0) -> bytes:
    return bytes([b[0] ^ (1 << bit)]) + b[1:]


# --- Merkle tree --------------------------------------------------------------------------------


def test_every_leaf_of_every_tree_up_to_300_proves_and_matches_the_reference():
    for n in range(1, 301):
        ids = ids_of(n, n)
        tree = MerkleTree(ids)
        assert tree.root == rfc6962_root(ids), n
        for i, eid in enumerate(ids):
            p = tree.proof(i)
            assert verify(eid, p, tree.root), (n, i)
            assert third_party_check(eid.hex(), p.as_json()["path"], tree.root.hex())


def test_every_alteration_fails_for_every_leaf_up_to_64():
    for n in range(1, 65):
        ids = ids_of(n, 1000 + n)
        tree = MerkleTree(ids)
        root = tree.root
        for i, eid in enumerate(ids):
            p = tree.proof(i)
            assert not verify(flip(eid), p, root)  # altered id
            assert not verify(eid, p, flip(root))  # wrong root
            for j, step in enumerate(p.path):  # altered sibling, or its side swapped
                bad = list(p.path)
                bad[j] = Step(step.side, flip(step.hash, 7))
                assert not verify(eid, Proof(i, n, tuple(bad)), root)
                bad[j] = Step(RIGHT if step.side == LEFT else LEFT, step.hash)
                assert not verify(eid, Proof(i, n, tuple(bad)), root)
            for other in {i - 1, i + 1, n, -1} - {i}:  # wrong index
                assert not verify(eid, Proof(other, n, p.path), root)
            # a wrong size fails where it changes the path's shape; where it does not (leaf
            # 0 of 3 or of 4), the receipt's count tag binds the size (check_doc)
            if expected_sides(i, n + 1) != expected_sides(i, n):
                assert not verify(eid, Proof(i, n + 1, p.path), root)
            if n > 1:
                assert not verify(ids[(i + 1) % n], p, root)  # another leaf's proof
                assert not verify(eid, Proof(i, n, p.path[:-1]), root)  # truncated


@settings(max_examples=200, deadline=None)
@given(n=st.integers(1, 3000), data=st.data())
def test_random_trees_and_alterations(n, data):
    ids = ids_of(n, data.draw(st.integers(0, 10**6)))
    tree = MerkleTree(ids)
    i = data.draw(st.integers(0, n - 1))
    p = tree.proof(i)
    assert verify(ids[i], p, tree.root)
    bit = data.draw(st.integers(0, 255))
    altered = bytearray(ids[i])
    altered[bit // 8] ^= 1 << (bit % 8)
    assert not verify(bytes(altered), p, tree.root)
    if p.path:
        j = data.draw(st.integers(0, len(p.path) - 1))
        sib = bytearray(p.path[j].hash)
        sib[bit // 8] ^= 1 << (bit % 8)
        path = list(p.path)
        path[j] = Step(p.path[j].side, bytes(sib))
        assert not verify(ids[i], Proof(i, n, tuple(path)), tree.root)
    other = data.draw(st.integers(0, n))
    if other != i:
        assert not verify(ids[i], Proof(other, n, p.path), tree.root)


def test_construction_byte_by_byte():
    a, b, c = (bytes([x]) * 32 for x in (1, 2, 3))
    sha = hashlib.sha256
    la, lb, lc = (sha(b"\x00" + x).digest() for x in (a, b, c))
    assert merkle_root([a]) == la
    assert merkle_root([a, b]) == sha(b"\x01" + la + lb).digest()
    # RFC 6962: the odd node moves up unchanged; it is never paired with itself
    assert merkle_root([a, b, c]) == sha(b"\x01" + sha(b"\x01" + la + lb).digest() + lc).digest()
    assert merkle_root([a, b, c]) != sha(
        b"\x01" + sha(b"\x01" + la + lb).digest() + sha(b"\x01" + lc + lc).digest()).digest()
    assert merkle_root([]) == EMPTY_ROOT == sha(b"").digest()


def test_leaves_and_nodes_cannot_be_confused():
    ids = ids_of(2)
    tree = MerkleTree(ids)
    # the two leaf hashes concatenated are 64 bytes: never an id
    with pytest.raises(MerkleError):
        MerkleTree([tree.levels[0][0] + tree.levels[0][1]])
    # and a one-leaf tree whose id is the root of a two-leaf tree has a different root
    assert MerkleTree([tree.root]).root != tree.root


def test_ids_must_be_sorted_unique_32_bytes():
    a, b = ids_of(2)
    with pytest.raises(MerkleError):
        MerkleTree([b, a])
    with pytest.raises(MerkleError):
        MerkleTree([a, a])
    with pytest.raises(MerkleError):
        MerkleTree([a[:31]])
    assert sorted_ids([b, a, b]) == [a, b]
    with pytest.raises(MerkleError):
        MerkleTree([a]).proof(1)


def test_expected_sides_agree_with_the_tree():
    for n in range(1, 130):
        tree = MerkleTree(ids_of(n))
        for i in range(n):
            assert [s.side for s in tree.proof(i).path] == expected_sides(i, n)
    assert expected_sides(5, 5) is None and expected_sides(-1, 5) is None


def test_a_tree_of_100000_ids_builds_quickly():
    ids = sorted_ids(os.urandom(32) for _ in range(100_000))
    t0 = time.perf_counter()
    tree = MerkleTree(ids)
    p = tree.proof(54_321)
    elapsed = time.perf_counter() - t0
    assert verify(ids[54_321], p, tree.root)
    assert len(p.path) == 17
    assert elapsed < 3.0, elapsed


def test_proof_json_round_trip_and_bad_shapes():
    tree = MerkleTree(ids_of(7))
    p = tree.proof(6)
    assert proof_from_json(p.as_json()) == p
    for bad in ([], {"leaf_index": "1", "tree_size": 7, "path": []},
                {"leaf_index": 1, "tree_size": 7, "path": [{"side": "up", "hash": "00" * 32}]},
                {"leaf_index": 1, "tree_size": 7, "path": [{"side": "left", "hash": "zz"}]}):
        with pytest.raises(MerkleError):
            proof_from_json(bad)


# --- the receipt event --------------------------------------------------------------------------


def test_receipt_round_trip():
    hub = Keys()
    root = MerkleTree(ids_of(3)).root
    prev = "ab" * 32
    ev = build_receipt(hub.key, 600, 1200, 3, root, place="v9msx", prev=prev, created_at=1201)
    ev.verify()
    assert ev.kind == RECEIPT_KIND == 3041
    r = parse_receipt(ev)
    assert (r.hub, r.start, r.end, r.count, r.root, r.place, r.prev, r.created_at) == (
        hub.pubkey, 600, 1200, 3, root, "v9msx", prev, 1201)
    assert ["g", "v9"] in ev.tags and ["g", "v9msx"] in ev.tags
    assert ["root", root.hex(), "rfc6962-sha256"] in ev.tags
    assert "3 events" in ev.content and root.hex() in ev.content
    bare = parse_receipt(build_receipt(hub.key, 0, 1, 1, root, created_at=5))
    assert bare.place == "" and bare.prev is None


def test_place_rules():
    assert place_tags("") == []
    assert place_tags("v") == [["g", "v"]]
    assert place_tags("v9m") == [["g", "v9m"], ["g", "v9"]]
    assert check_place("v9ms") is None
    assert "geohash" in check_place("V9MS")
    assert "geohash" in check_place("v9ai")  # a and i are not in the alphabet
    assert "precise" in check_place("v9msx3z")


def _tampered(ev: Event, key, tags=None, kind=None, created_at=None) -> Event:
    return sign_event(key, kind if kind is not None else ev.kind, ev.content,
                      tags if tags is not None else ev.tags,
                      created_at if created_at is not None else ev.created_at)


@pytest.mark.parametrize(("change", "reason"), [
    (lambda t: [x for x in t if x[0] != "version"], "exactly one 'version'"),
    (lambda t: [x if x[0] != "version" else ["version", "2"] for x in t], "upgrade"),
    (lambda t: [x if x[0] != "window" else ["window", "10", "10"] for x in t], "empty"),
    (lambda t: [x if x[0] != "window" else ["window", "-1", "10"] for x in t], "decimal"),
    (lambda t: [x if x[0] != "count" else ["count", "0"] for x in t], "at least one"),
    (lambda t: [x if x[0] != "root" else ["root", "AB" * 32, "rfc6962-sha256"] for x in t],
     "root tag"),
    (lambda t: [x if x[0] != "root" else [x[0], x[1], "bitcoin"] for x in t], "scheme"),
    (lambda t: [*t, ["count", "3"]], "exactly one 'count'"),
    (lambda t: [*t, ["prev", "xyz"]], "prev"),
    (lambda t: [*t, ["g", "V9"]], "geohash"),
])
def test_malformed_receipts_are_refused(change, reason):
    hub = Keys()
    ev = build_receipt(hub.key, 600, 1200, 3, b"\x01" * 32, created_at=1300)
    bad = _tampered(ev, hub.key, tags=change([list(t) for t in ev.tags]))
    with pytest.raises(InvalidReceipt, match=reason):
        parse_receipt(bad)


def test_receipt_dated_before_its_window_closed_or_wrong_kind():
    hub = Keys()
    ev = build_receipt(hub.key, 600, 1200, 3, b"\x01" * 32, created_at=1300)
    with pytest.raises(InvalidReceipt, match="before its window closed"):
        parse_receipt(_tampered(ev, hub.key, created_at=1199))
    with pytest.raises(InvalidReceipt, match="kind 3041"):
        parse_receipt(_tampered(ev, hub.key, kind=1))
    with pytest.raises(InvalidReceipt):
        build_receipt(hub.key, 600, 1200, 3, b"\x01" * 32, created_at=1100)
    with pytest.raises(InvalidReceipt):
        build_receipt(hub.key, 600, 1200, 0, b"\x01" * 32, created_at=1300)


# --- proof documents ---------------------------------------------------------------------------


def _doc(n: int = 9, i: int = 4, hub: Keys | None = None):
    hub = hub or Keys()
    ids = ids_of(n, 77)
    tree = MerkleTree(ids)
    ev = build_receipt(hub.key, 600, 1200, n, tree.root, created_at=1300)
    return make_doc(ids[i].hex(), ev.to_json(), tree.proof(i), 700), hub


def test_proof_document_checks():
    doc, hub = _doc()
    checked = check_doc(doc, hub=hub.pubkey)
    assert checked.receipt.count == 9 and checked.proof.leaf_index == 4


@pytest.mark.parametrize(("alter", "reason"), [
    (lambda d: d.update(event_id=flip(bytes.fromhex(d["event_id"])).hex()), "does not lead"),
    (lambda d: d["path"][0].update(hash=flip(bytes.fromhex(d["path"][0]["hash"])).hex()),
     "does not lead"),
    (lambda d: d["path"][0].update(side="left" if d["path"][0]["side"] == "right" else "right"),
     "does not lead"),
    (lambda d: d.update(leaf_index=d["leaf_index"] + 1), "does not lead"),
    (lambda d: d.update(tree_size=10), "tree of 10"),
    (lambda d: d["receipt"].update(content="forged"), "not authentic"),
    (lambda d: d["receipt"]["tags"][3].__setitem__(1, "10"), "not authentic"),
    (lambda d: d.update(type="other"), "not a samizdat"),
    (lambda d: d.update(version=2), "version"),
    (lambda d: d["path"].pop(), "does not lead"),
])
def test_any_alteration_of_a_proof_document_fails(alter, reason):
    doc, _ = _doc()
    alter(doc)
    with pytest.raises(ProofError, match=reason):
        check_doc(doc)


def test_proof_from_another_hub_is_refused_when_a_hub_is_expected():
    doc, _ = _doc()
    with pytest.raises(ProofError, match="not by the expected hub"):
        check_doc(doc, hub=Keys().pubkey)


# --- OpenTimestamps (proofs built locally; no calendar is contacted) ---------------------------


def _local_ots(digest: bytes, height: int = 800_000):
    """A proof like a calendar returns after Bitcoin confirmation: digest -> append nonce ->
    sha256 -> prepend -> sha256 -> Bitcoin attestation, plus a pending branch."""
    from opentimestamps.core.notary import BitcoinBlockHeaderAttestation, PendingAttestation
    from opentimestamps.core.op import OpAppend, OpPrepend, OpSHA256
    from opentimestamps.core.timestamp import Timestamp

    ts = Timestamp(digest)
    a = ts.ops.add(OpAppend(b"nonce-0123456789"))
    b = a.ops.add(OpSHA256())
    c = b.ops.add(OpPrepend(b"\x42" * 32))
    d = c.ops.add(OpSHA256())
    d.attestations.add(BitcoinBlockHeaderAttestation(height))
    e = ts.ops.add(OpPrepend(b"other"))
    f = e.ops.add(OpSHA256())
    f.attestations.add(PendingAttestation("https://alice.btc.calendar.opentimestamps.org"))
    return ots.dump(ots.detached(ts)), d.msg


def _header(merkle_root_internal: bytes, when: int) -> str:
    return (b"\x00\x00\x00\x20" + b"\x11" * 32 + merkle_root_internal
            + when.to_bytes(4, "little") + b"\xff\xff\x00\x1d" + b"\x00" * 4).hex()


def test_ots_proof_commits_to_the_receipt_id_offline():
    hub = Keys()
    receipt = build_receipt(hub.key, 0, 60, 1, b"\x01" * 32, created_at=61)
    digest = bytes.fromhex(receipt.id)
    data, block_root = _local_ots(digest)
    report = ots.inspect(data, digest)
    kinds = sorted(a.kind for a in report.attestations)
    assert kinds == ["bitcoin", "pending"]
    btc = next(a for a in report.attestations if a.kind == "bitcoin")
    assert btc.height == 800_000 and btc.merkle_root == block_root[::-1].hex()
    assert btc.status.startswith("not checked") and report.verified_time is None
    # with the block header at that height: verified, and the block's time
    report = ots.inspect(data, digest, {800_000: _header(block_root, 1_790_000_000)})
    assert report.verified_time == 1_790_000_000
    # a header whose Merkle root differs: refused
    report = ots.inspect(data, digest, {800_000: _header(flip(block_root), 1_790_000_000)})
    assert next(a for a in report.attestations if a.kind == "bitcoin").status.startswith("FAILED")
    # the same proof does not prove another receipt
    with pytest.raises(ots.OtsError, match="not for the receipt"):
        ots.inspect(data, flip(digest))
    with pytest.raises(ots.OtsError, match="not a valid"):
        ots.inspect(data[:-3], digest)


def test_nip03_event_carries_only_the_bitcoin_attestation():
    hub = Keys()
    digest = hashlib.sha256(b"receipt").digest()
    data, _ = _local_ots(digest, height=812_345)
    btc = ots.bitcoin_only(data)
    assert btc is not None
    report = ots.inspect(btc, digest)
    assert [(a.kind, a.height) for a in report.attestations] == [("bitcoin", 812_345)]
    ev = ots.build_nip03(hub.key, digest.hex(), RECEIPT_KIND, btc)
    ev.verify()
    assert ev.kind == 1040
    assert ["e", digest.hex()] in ev.tags and ["k", "3041"] in ev.tags
    assert base64.b64decode(ev.content) == btc
    pending_only = _local_ots(digest)[0]
    assert ots.bitcoin_only(ots.dump(_strip_bitcoin(pending_only))) is None


def _strip_bitcoin(data: bytes):
    from opentimestamps.core.notary import PendingAttestation

    f = ots.load(data)

    def prune(ts) -> bool:
        ts.attestations = {a for a in ts.attestations if isinstance(a, PendingAttestation)}
        for op, sub in list(ts.ops.items()):
            if not prune(sub):
                del ts.ops[op]
        return bool(ts.attestations or ts.ops)

    prune(f.timestamp)
    return f


def test_verify_proof_command_on_damaged_files(tmp_path):
    import json

    from click.testing import CliRunner

    from samizdat.cli import main

    doc, _ = _doc()
    f = tmp_path / "p.json"
    f.write_text(json.dumps(doc))
    assert CliRunner().invoke(main, ["verify-proof", str(f)]).exit_code == 0
    f.write_text(json.dumps({**doc, "opentimestamps": {"ots": "not base64!"}}))
    res = CliRunner().invoke(main, ["verify-proof", str(f)])
    assert res.exit_code == 1 and "OpenTimestamps" in res.output
    f.write_text("{ not json")
    res = CliRunner().invoke(main, ["verify-proof", str(f)])
    assert res.exit_code == 1 and "not JSON" in res.output
    f.write_text(json.dumps([doc, {**doc, "tree_size": 3}]))
    res = CliRunner().invoke(main, ["verify-proof", str(f)])
    assert res.exit_code == 1 and res.output.startswith("OK") and "FAILED" in res.output
