"""Merkle trees over sorted 32-byte event ids, RFC 6962 (Certificate Transparency) style.

Pure code: no I/O. A hub receipt commits to the ids it stored in a window with the root
of this tree; an inclusion proof shows one id is among them without revealing the others.

Construction (RFC 6962 section 2.1, the same as RFC 9162 section 2.1.1), with SHA-256:

- the leaves are the ids as 32 raw bytes, sorted ascending (byte order = hex order) and
  without duplicates;
- ``leaf = SHA-256(0x00 || id)`` and ``node = SHA-256(0x01 || left || right)``: the
  prefixes keep a leaf from ever being read as an inner node (second-preimage defence);
- for ``n > 1`` leaves, the root is ``node(MTH(first k), MTH(rest))`` where ``k`` is the
  largest power of two below ``n``. Built bottom-up this means: at each level pair the
  nodes left to right, and an odd last node moves up *unchanged* (it is never paired
  with a copy of itself, the duplication that lets Bitcoin's trees give two lists the
  same root);
- a tree of one leaf has that leaf's hash as root; the empty tree is ``SHA-256("")``
  (receipts never commit to an empty window).

An inclusion proof is the list of sibling hashes from the leaf up, each with the side it
sits on. :func:`verify` also recomputes those sides from the leaf's index and the tree
size (the algorithm of RFC 9162 section 2.1.3.2), so a proof for one position cannot be
passed off as a proof for another, and a path of the wrong length fails.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from itertools import pairwise

LEAF_PREFIX = b"\x00"
NODE_PREFIX = b"\x01"
ID_LENGTH = 32
EMPTY_ROOT = hashlib.sha256(b"").digest()

LEFT = "left"
RIGHT = "right"


class MerkleError(ValueError):
    """Ids or a proof are malformed (not a failed verification: that returns False)."""


def leaf_hash(event_id: bytes) -> bytes:
    return hashlib.sha256(LEAF_PREFIX + event_id).digest()


def node_hash(left: bytes, right: bytes) -> bytes:
    return hashlib.sha256(NODE_PREFIX + left + right).digest()


def sorted_ids(ids: Iterable[bytes]) -> list[bytes]:
    """The leaf order: ascending, duplicates removed; every id must be 32 bytes."""
    out = sorted(set(ids))
    for i in out:
        if len(i) != ID_LENGTH:
            raise MerkleError(f"an event id is {ID_LENGTH} bytes, not {len(i)}")
    return out


@dataclass(frozen=True, slots=True)
class Step:
    """One step up the tree: the sibling's hash and the side it is on."""

    side: str  # LEFT: the sibling is the left input of the node; RIGHT: the right one
    hash: bytes

    def as_json(self) -> dict[str, str]:
        return {"side": self.side, "hash": self.hash.hex()}


@dataclass(frozen=True, slots=True)
class Proof:
    leaf_index: int
    tree_size: int
    path: tuple[Step, ...]

    def as_json(self) -> dict[str, object]:
        return {"leaf_index": self.leaf_index, "tree_size": self.tree_size,
                "path": [s.as_json() for s in self.path]}


class MerkleTree:
    """The whole tree, level by level (the leaves' hashes first, the root last).

    ``ids`` must already be in leaf order (see :func:`sorted_ids`); this is checked.
    Memory: about two hashes per id (64 bytes plus Python's object overhead).
    """

    def __init__(self, ids: Sequence[bytes]):
        for a, b in pairwise(ids):
            if not a < b:
                raise MerkleError("ids must be sorted ascending without duplicates")
        if any(len(i) != ID_LENGTH for i in ids):
            raise MerkleError(f"every event id must be {ID_LENGTH} bytes")
        self.ids = ids
        self._index = {i: n for n, i in enumerate(ids)}
        sha = hashlib.sha256
        level = [sha(LEAF_PREFIX + i).digest() for i in ids]
        self.levels: list[list[bytes]] = [level]
        while len(level) > 1:
            nxt = [sha(NODE_PREFIX + level[k] + level[k + 1]).digest()
                   for k in range(0, len(level) - 1, 2)]
            if len(level) % 2:
                nxt.append(level[-1])  # the odd node moves up unchanged
            self.levels.append(nxt)
            level = nxt

    def __len__(self) -> int:
        return len(self.ids)

    @property
    def root(self) -> bytes:
        return self.levels[-1][0] if self.ids else EMPTY_ROOT

    def index_of(self, event_id: bytes) -> int | None:
        return self._index.get(event_id)

    def proof(self, index: int) -> Proof:
        if not 0 <= index < len(self.ids):
            raise MerkleError(f"leaf index {index} is outside a tree of {len(self.ids)}")
        path: list[Step] = []
        pos = index
        for level in self.levels[:-1]:
            sibling = pos ^ 1
            if sibling < len(level):
                path.append(Step(LEFT if pos & 1 else RIGHT, level[sibling]))
            pos >>= 1
        return Proof(index, len(self.ids), tuple(path))


def merkle_root(ids: Sequence[bytes]) -> bytes:
    return MerkleTree(ids).root


def expected_sides(leaf_index: int, tree_size: int) -> list[str] | None:
    """The sides of the siblings on the path of ``leaf_index`` in a tree of ``tree_size``
    leaves (RFC 9162 section 2.1.3.2, steps 2-4), or None if the index is out of range."""
    if not 0 <= leaf_index < tree_size:
        return None
    fn, sn = leaf_index, tree_size - 1
    sides: list[str] = []
    while sn > 0:
        if fn & 1 or fn == sn:
            sides.append(LEFT)
            if not fn & 1:
                while not fn & 1 and fn != 0:
                    fn >>= 1
                    sn >>= 1
        else:
            sides.append(RIGHT)
        fn >>= 1
        sn >>= 1
    return sides


def root_from_path(event_id: bytes, path: Iterable[Step]) -> bytes:
    """Fold a path from the leaf up; the result must equal the published root."""
    h = leaf_hash(event_id)
    for step in path:
        h = node_hash(step.hash, h) if step.side == LEFT else node_hash(h, step.hash)
    return h


def verify(event_id: bytes, proof: Proof, root: bytes) -> bool:
    """Does ``proof`` show ``event_id`` at ``proof.leaf_index`` in the tree of
    ``proof.tree_size`` leaves whose root is ``root``?"""
    if len(event_id) != ID_LENGTH or len(root) != 32:
        return False
    sides = expected_sides(proof.leaf_index, proof.tree_size)
    if sides is None or len(sides) != len(proof.path):
        return False
    for want, step in zip(sides, proof.path, strict=True):
        if step.side != want or len(step.hash) != 32:
            return False
    return root_from_path(event_id, proof.path) == root


def proof_from_json(obj: object) -> Proof:
    """Parse :meth:`Proof.as_json` output; raises :class:`MerkleError` on a bad shape."""
    if not isinstance(obj, dict):
        raise MerkleError("a proof is a JSON object")
    index, size, path = obj.get("leaf_index"), obj.get("tree_size"), obj.get("path")
    if type(index) is not int or type(size) is not int or not isinstance(path, list):
        raise MerkleError("a proof needs integer leaf_index and tree_size and a path list")
    steps = []
    for s in path:
        if not isinstance(s, dict) or s.get("side") not in (LEFT, RIGHT):
            raise MerkleError('each path step is {"side": "left"|"right", "hash": HEX}')
        h = s.get("hash")
        try:
            raw = bytes.fromhex(h) if isinstance(h, str) else b""
        except ValueError:
            raw = b""
        if len(raw) != 32:
            raise MerkleError("each path hash is 64 hex characters")
        steps.append(Step(s["side"], raw))
    return Proof(index, size, tuple(steps))
