"""OpenTimestamps (NIP-03) for receipts: submit a receipt id to calendars, upgrade the
pending proof to a Bitcoin attestation, and check a ``.ots`` proof offline.

The ``.ots`` file is a standard detached timestamp (``ots`` command-line tool format)
whose file hash operation is SHA-256 and whose file digest is the receipt's event id: the
"file" is the receipt's canonical NIP-01 serialization, since the id is its SHA-256.
Uses the ``opentimestamps`` library (python-opentimestamps); the network calls are
blocking (urllib) and run in a thread.

Verifying a Bitcoin attestation needs the block header at its height, which a hub in a
blackout does not have: :func:`inspect` checks everything else offline (the proof
commits to the receipt id through every operation, and what Merkle root the block must
have) and, given the 80-byte header (from one's own Bitcoin node or any explorer), checks
that root and returns the block's time.
"""

from __future__ import annotations

import base64
import hashlib
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

from coincurve import PrivateKey

from ..nostr.event import Event, sign_event

#: NIP-03 OpenTimestamps attestation event.
NIP03_KIND = 1040


class OtsError(ValueError):
    """A proof is malformed or is not for the expected digest; the message says why."""


def _lib() -> Any:
    try:
        from opentimestamps.core import notary, op, serialize, timestamp
    except ImportError:  # pragma: no cover - a declared dependency
        raise OtsError("the opentimestamps package is not installed "
                       "(pip install opentimestamps)") from None

    class Lib:
        pass

    lib = Lib()
    lib.notary, lib.op, lib.serialize, lib.timestamp = notary, op, serialize, timestamp
    return lib


def _why(exc: BaseException) -> str:
    reason = getattr(exc, "reason", None)
    return str(reason or exc) or type(exc).__name__


def dump(detached: Any) -> bytes:
    lib = _lib()
    ctx = lib.serialize.BytesSerializationContext()
    detached.serialize(ctx)
    return ctx.getbytes()


def load(data: bytes) -> Any:
    """Parse a ``.ots`` file; raises :class:`OtsError`."""
    lib = _lib()
    try:
        return lib.timestamp.DetachedTimestampFile.deserialize(
            lib.serialize.BytesDeserializationContext(data))
    except (lib.serialize.DeserializationError, ValueError, TypeError) as exc:
        raise OtsError(f"not a valid OpenTimestamps proof: {exc}") from None


def detached(ts: Any) -> Any:
    lib = _lib()
    return lib.timestamp.DetachedTimestampFile(lib.op.OpSHA256(), ts)


def _nodes(ts: Any) -> Iterator[Any]:
    yield ts
    for sub in ts.ops.values():
        yield from _nodes(sub)


def _allowed(uri: str, calendars: list[str]) -> bool:
    return any(uri.rstrip("/") == c.rstrip("/") or uri.startswith(c.rstrip("/") + "/")
               for c in calendars)


def submit(digest: bytes, calendars: list[str], timeout: float = 10.0
           ) -> tuple[bytes | None, list[str]]:
    """Submit ``digest`` (a receipt id) to every calendar (blocking). Returns the ``.ots``
    file holding their pending attestations, or None if none answered, and one
    message per calendar that failed."""
    lib = _lib()
    from opentimestamps.calendar import RemoteCalendar

    ts = lib.timestamp.Timestamp(digest)
    errors: list[str] = []
    for url in calendars:
        try:
            ts.merge(RemoteCalendar(url, user_agent="samizdat").submit(digest, timeout=timeout))
        except Exception as exc:  # any network or protocol failure: try the next calendar
            errors.append(f"{url}: {_why(exc)}")
    if not ts.attestations and not ts.ops:
        return None, errors
    return dump(detached(ts)), errors


def upgrade(data: bytes, calendars: list[str], timeout: float = 10.0
            ) -> tuple[bytes, bool, list[str]]:
    """Ask the calendars named by the proof's pending attestations (only those in
    ``calendars``) for the rest of the path (blocking). Returns the proof, whether it
    changed, and one message per calendar that failed or has nothing yet."""
    lib = _lib()
    from opentimestamps.calendar import RemoteCalendar

    f = load(data)
    changed = False
    errors: list[str] = []
    for node in list(_nodes(f.timestamp)):
        for att in list(node.attestations):
            if not isinstance(att, lib.notary.PendingAttestation):
                continue
            if not _allowed(att.uri, calendars):
                errors.append(f"{att.uri}: not a configured calendar; not asked")
                continue
            try:
                node.merge(RemoteCalendar(att.uri, user_agent="samizdat")
                           .get_timestamp(node.msg, timeout=timeout))
                changed = True
            except Exception as exc:
                errors.append(f"{att.uri}: {_why(exc)}")
    return (dump(f) if changed else data), changed, errors


def bitcoin_attestations(data: bytes) -> list[tuple[int, bytes]]:
    """``(block height, the Merkle root that block must have)`` for each Bitcoin
    attestation in the proof, lowest height first."""
    lib = _lib()
    f = load(data)
    return sorted((att.height, msg) for msg, att in f.timestamp.all_attestations()
                  if isinstance(att, lib.notary.BitcoinBlockHeaderAttestation))


def bitcoin_only(data: bytes) -> bytes | None:
    """The proof reduced to its earliest Bitcoin attestation, as NIP-03 asks (no pending
    attestations); None if it has none yet."""
    lib = _lib()
    found = bitcoin_attestations(data)
    if not found:
        return None
    keep = lib.notary.BitcoinBlockHeaderAttestation(found[0][0])
    f = load(data)

    def prune(ts: Any) -> bool:
        ts.attestations = {a for a in ts.attestations if a == keep}
        for op, sub in list(ts.ops.items()):
            if not prune(sub):
                del ts.ops[op]
        return bool(ts.attestations or ts.ops)

    prune(f.timestamp)
    return dump(f)


def build_nip03(key: PrivateKey, receipt_id: str, receipt_kind: int, ots_file: bytes,
                created_at: int | None = None) -> Event:
    """The NIP-03 kind-1040 event carrying a receipt's Bitcoin-anchored proof."""
    tags = [["e", receipt_id], ["k", str(receipt_kind)], ["alt", "opentimestamps attestation"]]
    return sign_event(key, NIP03_KIND, base64.b64encode(ots_file).decode(), tags, created_at)


@dataclass
class Attestation:
    kind: str  # "bitcoin", "pending" or "unknown"
    height: int | None = None
    calendar: str | None = None
    #: The Merkle root the Bitcoin block must have, hex in the order explorers show it.
    merkle_root: str | None = None
    #: With a block header: "verified", or why not; the block's hash and time.
    status: str = ""
    block_hash: str | None = None
    block_time: int | None = None

    def as_json(self) -> dict[str, object]:
        return {k: v for k, v in self.__dict__.items() if v not in (None, "")}


@dataclass
class OtsReport:
    digest: str
    attestations: list[Attestation] = field(default_factory=list)

    @property
    def verified_time(self) -> int | None:
        """The earliest block time among attestations verified against a header."""
        times = [a.block_time for a in self.attestations
                 if a.status == "verified" and a.block_time is not None]
        return min(times) if times else None

    def as_json(self) -> dict[str, object]:
        return {"digest": self.digest, "attestations": [a.as_json() for a in self.attestations],
                "verified_time": self.verified_time}


def parse_header(hex_header: str) -> tuple[bytes, bytes, int]:
    """An 80-byte Bitcoin block header (hex, as ``bitcoin-cli getblockheader HASH false``
    prints it): ``(block hash in display order, Merkle root in internal order, time)``."""
    try:
        raw = bytes.fromhex(hex_header.strip())
    except ValueError:
        raw = b""
    if len(raw) != 80:
        raise OtsError("a block header is 80 bytes (160 hex characters)")
    block_hash = hashlib.sha256(hashlib.sha256(raw).digest()).digest()[::-1]
    return block_hash, raw[36:68], int.from_bytes(raw[68:72], "little")


def inspect(data: bytes, digest: bytes, headers: dict[int, str] | None = None) -> OtsReport:
    """Check offline that the ``.ots`` proof commits to ``digest`` (a receipt id), and list
    its attestations. Bitcoin attestations whose height has a header in ``headers`` are
    checked against it. Raises :class:`OtsError` when the proof is not for ``digest``."""
    lib = _lib()
    f = load(data)
    if not isinstance(f.file_hash_op, lib.op.OpSHA256):
        raise OtsError(f"the proof's file hash is {f.file_hash_op}, not SHA-256")
    if f.file_digest != digest:
        raise OtsError(f"the proof is for digest {f.file_digest.hex()}, not for the receipt "
                       f"id {digest.hex()}")
    report = OtsReport(digest.hex())
    for msg, att in sorted(f.timestamp.all_attestations(), key=lambda x: repr(x[1])):
        if isinstance(att, lib.notary.BitcoinBlockHeaderAttestation):
            a = Attestation("bitcoin", height=att.height, merkle_root=msg[::-1].hex())
            header = (headers or {}).get(att.height)
            if header is None:
                a.status = ("not checked: give the block header at this height "
                            "(--block-header HEIGHT:HEX)")
            else:
                block_hash, root, when = parse_header(header)
                a.block_hash = block_hash.hex()
                if len(msg) != 32 or root != msg:
                    a.status = "FAILED: the block's Merkle root is not the proof's"
                else:
                    a.status, a.block_time = "verified", when
            report.attestations.append(a)
        elif isinstance(att, lib.notary.PendingAttestation):
            report.attestations.append(Attestation(
                "pending", calendar=att.uri,
                status="not anchored yet: the calendar has it; upgrade when online"))
        else:
            report.attestations.append(Attestation("unknown", status="not understood here"))
    return report
