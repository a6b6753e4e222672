"""Inclusion proofs as JSON documents: made by ``samizdat prove``, checked by
``samizdat verify-proof`` (or by hand, docs/report-format.md) without the hub.

A proof document carries the whole signed receipt, so checking it needs nothing else:
the receipt's id and signature, its tags, then the Merkle path from the event id to the
receipt's root. Pure code except :func:`find_proofs`, which reads a receipts log.
"""

from __future__ import annotations

import base64
import time
from dataclasses import dataclass
from typing import Any, Protocol

import orjson

from ..nostr.event import HEX64, InvalidEvent, parse_event
from .merkle import MerkleError, MerkleTree, Proof, proof_from_json, verify
from .receipt import InvalidReceipt, Receipt, parse_receipt

PROOF_TYPE = "samizdat-inclusion-proof"
PROOF_VERSION = 1


class ProofError(ValueError):
    """The proof does not hold, or is malformed; the message says which check failed."""


class NotInReceipt(LookupError):
    """The event is in no receipt (yet); the message says why and when one is due."""


@dataclass(frozen=True)
class CheckedProof:
    event_id: str
    receipt: Receipt
    proof: Proof
    doc: dict[str, Any]


def make_doc(event_id: str, receipt_json: str, proof: Proof, stored_at: int | None,
             ots_info: dict[str, Any] | None = None) -> dict[str, Any]:
    doc: dict[str, Any] = {
        "type": PROOF_TYPE,
        "version": PROOF_VERSION,
        "event_id": event_id,
        "receipt": orjson.loads(receipt_json),
        **proof.as_json(),
    }
    if stored_at is not None:
        doc["stored_at"] = stored_at  # the hub's own record; not part of what is proven
    if ots_info:
        doc["opentimestamps"] = ots_info
    return doc


def check_doc(doc: object, hub: str | None = None) -> CheckedProof:
    """Every check, in order; raises :class:`ProofError` naming the first that fails."""
    if not isinstance(doc, dict) or doc.get("type") != PROOF_TYPE:
        raise ProofError(f"not a samizdat inclusion proof (no \"type\": \"{PROOF_TYPE}\")")
    if doc.get("version") != PROOF_VERSION:
        raise ProofError(f"proof version {doc.get('version')!r} is not known here (this "
                         f"samizdat reads version {PROOF_VERSION})")
    event_id = doc.get("event_id")
    if not isinstance(event_id, str) or not HEX64.fullmatch(event_id):
        raise ProofError("event_id must be 64 lowercase hex characters")
    try:
        ev = parse_event(doc.get("receipt"))
        ev.verify()
    except InvalidEvent as exc:
        raise ProofError(f"the receipt event is not authentic: {exc}") from None
    try:
        receipt = parse_receipt(ev)
    except InvalidReceipt as exc:
        raise ProofError(f"the receipt is malformed: {exc}") from None
    if hub is not None and receipt.hub != hub:
        raise ProofError(f"the receipt is signed by {receipt.hub}, not by the expected hub "
                         f"{hub}")
    try:
        proof = proof_from_json(doc)
    except MerkleError as exc:
        raise ProofError(f"the Merkle path is malformed: {exc}") from None
    if proof.tree_size != receipt.count:
        raise ProofError(f"the proof is for a tree of {proof.tree_size} ids but the receipt "
                         f"commits to {receipt.count}")
    if not verify(bytes.fromhex(event_id), proof, receipt.root):
        raise ProofError("the Merkle path from this event id does not lead to the "
                         "receipt's root: the id, the path or the receipt was altered, or "
                         "the event is not in this receipt")
    return CheckedProof(event_id, receipt, proof, doc)


def load_docs(data: bytes) -> list[object]:
    """A proof file: one document, or a JSON array of them (``prove --json`` when the
    event is in several receipts)."""
    try:
        obj = orjson.loads(data)
    except orjson.JSONDecodeError as exc:
        raise ProofError(f"not JSON: {exc}") from None
    docs = obj if isinstance(obj, list) else [obj]
    if not docs:
        raise ProofError("the file holds no proof")
    return docs


class _Log(Protocol):
    interval: int | None

    def stored_at(self, event_id: bytes) -> int | None: ...
    def open_window_start(self) -> int | None: ...
    def receipts_covering(self, stored_at: int) -> list[Any]: ...
    def window_ids(self, start: int, end: int) -> list[bytes]: ...
    def ots_get(self, receipt_id: str) -> Any: ...


def find_proofs(log: _Log, event_id: str, now: float | None = None) -> list[CheckedProof]:
    """Proofs of ``event_id`` in every receipt of this hub that includes it, each checked
    as :func:`check_doc` would. Raises :class:`NotInReceipt` with the reason."""
    now = time.time() if now is None else now
    raw = bytes.fromhex(event_id)
    stored_at = log.stored_at(raw)
    if stored_at is None:
        raise NotInReceipt(f"this hub has no record of storing event {event_id}")
    rows = log.receipts_covering(stored_at)
    if not rows:
        interval = log.interval
        msg = f"event {event_id} was stored at {_utc(stored_at)} and is in no receipt yet"
        start = log.open_window_start()
        if interval and start is not None:
            due = start + (max(stored_at - start, 0) // interval + 1) * interval
            when = (f"due at {_utc(due)}" if due > now else
                    f"due since {_utc(due)}: it is published when the hub runs (and a "
                    "window holds at least one event that is not a receipt)")
            msg += f"; the receipt for its window is {when} (one every {_span(interval)})"
        raise NotInReceipt(msg)
    out = []
    for row in rows:
        ids = log.window_ids(row.start, row.end)
        tree = MerkleTree(ids)
        if len(ids) != row.count or tree.root != row.root:
            raise NotInReceipt(f"the receipts log no longer matches receipt {row.id} "
                               f"(window {row.start}-{row.end}): it was altered or damaged, "
                               "so no proof can be built from it")
        index = tree.index_of(raw)
        assert index is not None
        ots_row = log.ots_get(row.id)
        ots_info = None
        if ots_row is not None:
            ots_info = {"state": ots_row.state}
            if ots_row.proof:
                ots_info["ots"] = base64.b64encode(ots_row.proof).decode()
            if ots_row.state == "covered":
                ots_info["covered_by"] = ots_row.note
            if ots_row.nip03:
                ots_info["nip03_event"] = ots_row.nip03
        doc = make_doc(event_id, row.json, tree.proof(index), stored_at, ots_info)
        out.append(check_doc(doc))
    return out


def _utc(ts: int) -> str:
    return time.strftime("%Y-%m-%d %H:%M:%S UTC", time.gmtime(ts))


def _span(seconds: int) -> str:
    if seconds % 60 == 0:
        m = seconds // 60
        return f"{m} minute{'s' * (m != 1)}"
    return f"{seconds} second{'s' * (seconds != 1)}"
