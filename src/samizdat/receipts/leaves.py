"""Receipt leaf lists (kind 3042): build, parse and check. Pure code, no I/O.

A receipt (kind 3041, :mod:`.receipt`) commits to the sorted ids it covers with a Merkle
root. So that an observer can tell which receipts include a report *without asking the
hub*, the hub publishes with each receipt the ids themselves, split into parts:

- kind **3042** (regular), signed by the same hub key as the receipt;
- tags ``["e", <receipt id>]``, ``["part", i, n]`` (``0 <= i < n``, decimal) and an
  ``alt`` tag (NIP-31);
- content: base64 (standard alphabet, padded) of the concatenation of the 32-byte ids of
  this part, in leaf order; parts are consecutive slices of the sorted id list, at most
  :data:`MAX_IDS_PER_PART` ids each (about 43 KB of content).

An observer gathers all ``n`` parts of a receipt, concatenates them in part order and
accepts the list only if it has ``count`` ids and rebuilds the receipt's ``root``
(:func:`check_leaves`). Build with :func:`build_leaf_events`, read one event with
:func:`parse_leaf_event`, join parts with :func:`assemble`.

Typical hub use::

    ids = merkle.sorted_ids(raw_ids)
    receipt_ev = build_receipt(key, start, end, len(ids), merkle_root(ids), ...)
    for ev in build_leaf_events(key, receipt_ev, ids):
        store(ev)

Typical observer use::

    parts = [parse_leaf_event(ev) for ev in events_tagging(receipt.id)]
    ids = check_leaves(parse_receipt(receipt_ev), [p for p in parts if p])  # raises
"""

from __future__ import annotations

import base64
import binascii
import re
import time
from collections.abc import Iterable, Sequence
from dataclasses import dataclass

from coincurve import PrivateKey

from ..nostr.event import HEX64, Event, sign_event
from .merkle import ID_LENGTH, MerkleError, merkle_root
from .receipt import Receipt

LEAVES_KIND = 3042
MAX_IDS_PER_PART = 1000
_DECIMAL = re.compile(r"0|[1-9][0-9]{0,8}")


class InvalidLeaves(ValueError):
    """A leaf-list event or set of parts is malformed or does not match its receipt."""


@dataclass(frozen=True, slots=True)
class LeafPart:
    """One kind-3042 event, parsed."""

    id: str  # the leaf event's own id
    hub: str  # its signer (must be the receipt's hub)
    receipt: str  # the receipt id it belongs to
    index: int
    total: int
    ids: tuple[bytes, ...]


def build_leaf_events(hub_key: PrivateKey, receipt_event: Event, sorted_ids: Sequence[bytes],
                      *, per_part: int = MAX_IDS_PER_PART,
                      created_at: int | None = None) -> list[Event]:
    """Sign the leaf list of ``receipt_event``: ``ceil(len/per_part)`` kind-3042 events.

    ``sorted_ids`` are the receipt's leaves in leaf order (as from
    :func:`.merkle.sorted_ids`): 32-byte ids, ascending, no duplicates. ``created_at``
    defaults to the receipt's own ``created_at`` (so rebuilding gives the same ids' content
    but, signatures being randomised, not the same event ids). Raises
    :class:`InvalidLeaves` if the ids are malformed or ``hub_key`` did not sign the receipt.
    """
    if not 1 <= per_part <= MAX_IDS_PER_PART:
        raise InvalidLeaves(f"per_part must be between 1 and {MAX_IDS_PER_PART}")
    if not sorted_ids:
        raise InvalidLeaves("a receipt commits to at least one id")
    for i, x in enumerate(sorted_ids):
        if len(x) != ID_LENGTH:
            raise InvalidLeaves(f"an event id is {ID_LENGTH} bytes, not {len(x)}")
        if i and not sorted_ids[i - 1] < x:
            raise InvalidLeaves("ids must be sorted ascending without duplicates")
    if hub_key.public_key_xonly.format().hex() != receipt_event.pubkey:
        raise InvalidLeaves("the leaf list must be signed by the receipt's hub key")
    ts = receipt_event.created_at if created_at is None else created_at
    ts = int(time.time()) if ts is None else ts
    chunks = [sorted_ids[k:k + per_part] for k in range(0, len(sorted_ids), per_part)]
    n = len(chunks)
    out = []
    for i, chunk in enumerate(chunks):
        tags = [["e", receipt_event.id], ["part", str(i), str(n)],
                ["alt", f"samizdat receipt leaf list, part {i + 1} of {n}"]]
        content = base64.b64encode(b"".join(chunk)).decode("ascii")
        out.append(sign_event(hub_key, LEAVES_KIND, content, tags, ts))
    return out


def parse_leaf_event(ev: Event) -> LeafPart | None:
    """The part an event carries, or None if it is not a well-formed kind-3042 leaf list.

    Checks shape only (not the signature: see ``Event.verify``). Never raises.
    """
    try:
        if ev.kind != LEAVES_KIND:
            return None
        es = [t for t in ev.tags if t and t[0] == "e"]
        parts = [t for t in ev.tags if t and t[0] == "part"]
        if len(es) != 1 or len(parts) != 1 or len(es[0]) < 2 or len(parts[0]) < 3:
            return None
        receipt = es[0][1]
        if not isinstance(receipt, str) or not HEX64.fullmatch(receipt):
            return None
        si, sn = parts[0][1], parts[0][2]
        if not (isinstance(si, str) and isinstance(sn, str)
                and _DECIMAL.fullmatch(si) and _DECIMAL.fullmatch(sn)):
            return None
        index, total = int(si), int(sn)
        if not 0 <= index < total:
            return None
        raw = base64.b64decode(ev.content, validate=True)
        if not raw or len(raw) % ID_LENGTH or len(raw) > ID_LENGTH * MAX_IDS_PER_PART:
            return None
        ids = tuple(raw[k:k + ID_LENGTH] for k in range(0, len(raw), ID_LENGTH))
        return LeafPart(ev.id, ev.pubkey, receipt, index, total, ids)
    except (binascii.Error, ValueError, TypeError, AttributeError):
        return None


def assemble(parts: Iterable[LeafPart]) -> list[bytes] | None:
    """The full id list from one receipt's parts, or None while parts are missing.

    Duplicate parts (the same index published twice) are fine if identical; conflicting
    ones raise :class:`InvalidLeaves`, as do parts of different receipts or totals.
    """
    by_index: dict[int, tuple[bytes, ...]] = {}
    total = receipt = None
    for p in parts:
        if total is None:
            total, receipt = p.total, p.receipt
        elif p.total != total or p.receipt != receipt:
            raise InvalidLeaves("leaf-list parts disagree on their receipt or part count")
        if p.index in by_index and by_index[p.index] != p.ids:
            raise InvalidLeaves(f"two different leaf-list parts claim index {p.index}")
        by_index[p.index] = p.ids
    if total is None or len(by_index) != total:
        return None
    return [x for i in range(total) for x in by_index[i]]


def check_leaves(receipt: Receipt, parts: Iterable[LeafPart]) -> list[bytes]:
    """The receipt's ids, accepted only if every part is signed-by (pubkey of) the
    receipt's hub, names the receipt, and the joined list has ``count`` ids in leaf order
    that rebuild ``root``. Raises :class:`InvalidLeaves` with the reason otherwise."""
    parts = list(parts)
    for p in parts:
        if p.receipt != receipt.id:
            raise InvalidLeaves("a leaf-list part names another receipt")
        if p.hub != receipt.hub:
            raise InvalidLeaves("a leaf-list part is not signed by the receipt's hub")
    ids = assemble(parts)
    if ids is None:
        raise InvalidLeaves("leaf-list parts are missing")
    if len(ids) != receipt.count:
        raise InvalidLeaves(f"the leaf list has {len(ids)} ids, the receipt counts "
                            f"{receipt.count}")
    try:
        root = merkle_root(ids)
    except MerkleError as exc:
        raise InvalidLeaves(f"the leaf list is not in leaf order: {exc}") from None
    if root != receipt.root:
        raise InvalidLeaves("the leaf list does not rebuild the receipt's Merkle root")
    return ids
