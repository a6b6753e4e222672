"""Evidence packages: ``samizdat observe export`` writes one, ``samizdat verify-package``
checks one offline. Layout and checks: docs/observer.md ("The evidence package").

A package is a zip a third party can check without samizdat and without the network:

    README.md            how to check each claim with standard tools
    summary.html         what the observer concluded, for people (not evidence itself)
    summary.pdf          the same, for printing and filing
    manifest.json        what the package is about and the list of its files
    events/reports.jsonl the reports, as their authors signed them (NIP-01 JSON, one a line)
    events/labels.jsonl  corroborations and disputes of those reports (NIP-32, signed)
    events/receipts.jsonl         hub receipts (kind 3041) that include a packaged event
    events/receipt-leaves.jsonl   their leaf lists (kind 3042): every id each receipt holds
    proofs/<event id>.json        Merkle inclusion proofs of that event, one per receipt
    media/<sha256>.<ext>          the media files, named by their SHA-256
    SHA256SUMS           the SHA-256 of every other file (``sha256sum -c SHA256SUMS``)

Everything that is evidence is signed by someone else (authors, hubs) or named by its own
hash, so the observer who made the package need not be trusted: :func:`verify_package`
recomputes every hash, every event id and signature, every receipt's leaf list against its
root and every proof against its receipt. The summaries are the observer's reading of that
evidence and are covered only by SHA256SUMS.
"""

from __future__ import annotations

import hashlib
import re
import stat
import time
import zipfile
from collections import defaultdict
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import orjson
from coincurve import PrivateKey

from ..nostr.event import HEX64, Event, InvalidEvent, parse_event, sign_event
from ..nostr.keys import load_or_create_hub_key, npub, pubkey_of
from ..receipts.leaves import InvalidLeaves, LeafPart, check_leaves, parse_leaf_event
from ..receipts.merkle import MerkleTree
from ..receipts.proof import ProofError, check_doc, load_docs, make_doc
from ..receipts.receipt import InvalidReceipt, Receipt, parse_receipt, utc

PACKAGE_TYPE = "samizdat-evidence-package"
PACKAGE_VERSION = 1

REPORTS = "events/reports.jsonl"
LABELS = "events/labels.jsonl"
RECEIPTS = "events/receipts.jsonl"
LEAVES = "events/receipt-leaves.jsonl"
PROFILES = "events/profiles.jsonl"
EVENT_FILES = (REPORTS, LABELS, PROFILES, RECEIPTS, LEAVES)
SUMS = "SHA256SUMS"
MANIFEST = "manifest.json"
SIGNATURE = "SIGNATURE.json"
#: Kind of the signature event: in the ephemeral range like bundle manifests (21210), so a
#: relay handed one never stores it; it only ever travels inside a package.
SIGNATURE_KIND = 21211

#: verify-package refuses packages larger than this when unpacked (a zip bomb defence).
MAX_UNPACKED = 4 * 1024**3
MAX_FILES = 100_000
MAX_RATIO = 200  # compressed → uncompressed, per file, for files over 1 MiB

_SAFE_NAME = re.compile(r"[A-Za-z0-9._-]+")
_MEDIA_NAME = re.compile(r"media/([0-9a-f]{64})(\.[a-z0-9]{1,8})?")
_PROOF_NAME = re.compile(r"proofs/([0-9a-f]{64})\.json")
_SUM_LINE = re.compile(r"([0-9a-f]{64}) [ *](.+)")

_EXT = {"image/jpeg": ".jpg", "image/png": ".png", "image/webp": ".webp", "image/gif": ".gif",
        "video/mp4": ".mp4", "video/webm": ".webm", "audio/ogg": ".ogg", "audio/mpeg": ".mp3",
        "application/pdf": ".pdf"}


class PackageError(Exception):
    """The package could not be written (the message says why)."""


# --------------------------------------------------------------------------- writing

@dataclass
class Material:
    """Everything a package holds, gathered by the caller (see :func:`gather`)."""

    subject: dict[str, Any]  # {"kind": "report"|"cluster", "id": ..., "title": ...}
    reports: list[Event]
    labels: list[Event] = field(default_factory=list)
    profiles: list[Event] = field(default_factory=list)
    receipts: list[Event] = field(default_factory=list)
    leaves: list[Event] = field(default_factory=list)
    media: dict[str, tuple[str, bytes]] = field(default_factory=dict)  # sha256 -> (mime, bytes)
    summary_html: str = ""
    summary_pdf: bytes = b""
    notes: list[str] = field(default_factory=list)  # what could not be included, and why


def media_claims(ev: Event) -> list[dict[str, str]]:
    """The NIP-92 ``imeta`` claims of an event: ``[{"x": sha256, "m": mime, ...}]``."""
    out = []
    for t in ev.tags:
        if not t or t[0] != "imeta":
            continue
        claim: dict[str, str] = {}
        for part in t[1:]:
            if isinstance(part, str) and " " in part:
                k, v = part.split(" ", 1)
                claim.setdefault(k, v)
        if HEX64.fullmatch(claim.get("x", "")):
            out.append(claim)
    return out


def _leaf_parts(leaf_events: Iterable[Event]) -> dict[str, list[LeafPart]]:
    parts: dict[str, list[LeafPart]] = defaultdict(list)
    for ev in leaf_events:
        p = parse_leaf_event(ev)
        if p is not None:
            parts[p.receipt].append(p)
    return parts


def build_proofs(events: Iterable[Event], receipts: Iterable[Event],
                 leaf_events: Iterable[Event]) -> dict[str, list[dict[str, Any]]]:
    """Inclusion proof documents (the format of ``samizdat prove --json``) of each event
    in each receipt whose verified leaf list holds it."""
    wanted = {bytes.fromhex(ev.id): ev.id for ev in events}
    parts = _leaf_parts(leaf_events)
    out: dict[str, list[dict[str, Any]]] = defaultdict(list)
    for rev in receipts:
        try:
            receipt = parse_receipt(rev)
            ids = check_leaves(receipt, parts.get(rev.id, []))
        except (InvalidReceipt, InvalidLeaves):
            continue
        members = set(ids)
        tree = None
        for raw, hexid in wanted.items():
            if raw not in members:
                continue
            tree = tree or MerkleTree(ids)
            index = tree.index_of(raw)
            assert index is not None
            out[hexid].append(make_doc(hexid, rev.to_json(), tree.proof(index), None))
    return dict(out)


def _jsonl(events: Iterable[Event]) -> bytes:
    seen: set[str] = set()
    lines = []
    for ev in sorted(events, key=lambda e: (e.created_at, e.id)):
        if ev.id not in seen:
            seen.add(ev.id)
            lines.append(orjson.dumps(ev.to_dict()))
    return b"".join(line + b"\n" for line in lines)


def write_package(material: Material, out: Path, now: int | None = None,
                  key: PrivateKey | None = None) -> dict[str, Any]:
    """Write the zip to ``out`` (atomically: a temporary file renamed into place).

    With ``key`` (the observer's own key) the package is signed: ``SIGNATURE.json`` is a
    Nostr event whose ``x`` tag is the SHA-256 of ``SHA256SUMS``, which lists every other
    file. A recipient who knows the observer's npub can then tell that no file was left
    out or added since, which the signed reports alone cannot show."""
    now = int(time.time()) if now is None else now
    files: dict[str, bytes] = {}
    files[REPORTS] = _jsonl(material.reports)
    files[LABELS] = _jsonl(material.labels)
    if material.profiles:
        files[PROFILES] = _jsonl(material.profiles)
    files[RECEIPTS] = _jsonl(material.receipts)
    files[LEAVES] = _jsonl(material.leaves)
    proofs = build_proofs([*material.reports, *material.labels], material.receipts,
                          material.leaves)
    for eid, docs in sorted(proofs.items()):
        files[f"proofs/{eid}.json"] = orjson.dumps(docs, option=orjson.OPT_INDENT_2) + b"\n"
    media_names: dict[str, str] = {}
    for sha, (mime, data) in sorted(material.media.items()):
        if hashlib.sha256(data).hexdigest() != sha:
            raise PackageError(f"media {sha} does not hash to its name: the observer's blob "
                               "store is damaged")
        name = f"media/{sha}{_EXT.get(mime, '')}"
        files[name] = data
        media_names[sha] = name
    files["summary.html"] = material.summary_html.encode()
    if material.summary_pdf:
        files["summary.pdf"] = material.summary_pdf
    files["README.md"] = readme(material, media_names).encode()
    manifest = {
        "type": PACKAGE_TYPE, "version": PACKAGE_VERSION,
        "created_at": now, "created": utc(now),
        "subject": material.subject,
        "reports": [ev.id for ev in material.reports],
        "media": media_names,
        "notes": material.notes,
        "files": sorted([*files, MANIFEST]),
    }
    files[MANIFEST] = orjson.dumps(manifest, option=orjson.OPT_INDENT_2) + b"\n"
    sums = "".join(f"{hashlib.sha256(data).hexdigest()}  {name}\n"
                   for name, data in sorted(files.items()))
    files[SUMS] = sums.encode()
    if key is not None:
        digest = hashlib.sha256(files[SUMS]).hexdigest()
        sig = sign_event(key, SIGNATURE_KIND, f"samizdat evidence package, SHA256SUMS {digest}",
                         [["x", digest], ["alt", "signature of a samizdat evidence package"]],
                         created_at=now)
        files[SIGNATURE] = orjson.dumps(sig.to_dict(), option=orjson.OPT_INDENT_2) + b"\n"
    out = Path(out)
    tmp = out.with_name(out.name + ".part")
    with zipfile.ZipFile(tmp, "w", zipfile.ZIP_DEFLATED) as z:
        for name in sorted(files):
            info = zipfile.ZipInfo(name, date_time=time.gmtime(now)[:6])
            info.compress_type = (zipfile.ZIP_STORED if name.startswith("media/")
                                  else zipfile.ZIP_DEFLATED)
            info.external_attr = (stat.S_IFREG | 0o644) << 16
            z.writestr(info, files[name])
    tmp.replace(out)
    return {"path": str(out), "files": len(files), "reports": len(material.reports),
            "receipts": len(material.receipts), "proofs": sum(map(len, proofs.values())),
            "media": len(media_names), "bytes": out.stat().st_size}


def readme(material: Material, media_names: dict[str, str]) -> str:
    subject = material.subject
    first = material.reports[0].id if material.reports else "ID"
    notes = "".join(f"- {n}\n" for n in material.notes) or "- none\n"
    return f"""# Evidence package: {subject.get('title', subject.get('id', ''))}

Made by a samizdat observer on {utc(int(time.time()))}. It holds {len(material.reports)}
report(s) as their authors signed them, {len(material.labels)} corroboration/dispute
label(s), {len(material.receipts)} hub receipt(s) with their leaf lists, Merkle inclusion
proofs and {len(media_names)} media file(s). `summary.html` / `summary.pdf` are the
observer's reading; everything under `events/`, `proofs/` and `media/` is evidence you can
check yourself, without trusting the observer and without a network.

## 1. Nothing was altered in transit

    sha256sum -c SHA256SUMS

Every file but SHA256SUMS and SIGNATURE.json is listed; `manifest.json` lists every file
of the package. `SIGNATURE.json` is a Nostr event signed by the observer's key whose `x`
tag is the SHA-256 of SHA256SUMS (`sha256sum SHA256SUMS`): if you know the observer's
npub, it shows that no file was added, swapped or left out since they packed it
(`samizdat verify-package FILE --signer NPUB` checks it). The checks below show the
evidence itself is genuine, whoever packed it.

## 2. Each event is what its key signed

Each line of `events/*.jsonl` is a Nostr event (NIP-01). Its `id` is the SHA-256 of
`[0, pubkey, created_at, kind, tags, content]` serialized as compact JSON (UTF-8, no
escapes but the JSON ones), and `sig` is a BIP-340 Schnorr signature of the id by
`pubkey`. With Python and the `coincurve` package (`pip install coincurve`):

```python
import hashlib, json
from coincurve import PublicKeyXOnly
for line in open("events/reports.jsonl", encoding="utf-8"):
    e = json.loads(line)
    ser = json.dumps([0, e["pubkey"], e["created_at"], e["kind"], e["tags"], e["content"]],
                     separators=(",", ":"), ensure_ascii=False).encode()
    assert hashlib.sha256(ser).hexdigest() == e["id"], e["id"]
    assert PublicKeyXOnly(bytes.fromhex(e["pubkey"])).verify(
        bytes.fromhex(e["sig"]), bytes.fromhex(e["id"])), e["id"]
```

(Content with control characters other than newline and tab needs the exact NIP-01
serializer; `samizdat verify-package` has it.) Any Nostr client shows these events too.

## 3. When each report existed at the latest: hub receipts

`events/receipts.jsonl` holds receipts (kind 3041): a hub's signed statement that it stored
a set of events within a time window, committed by a Merkle root (RFC 6962, SHA-256) over
their sorted ids. `events/receipt-leaves.jsonl` (kind 3042, signed by the same hub) lists
those ids, so you can rebuild the root. `proofs/<event id>.json` holds, for one event, its
inclusion proof in each receipt that holds it (the format of `samizdat prove --json`,
documented with a 15-line checking script in samizdat's docs/report-format.md):

```python
import hashlib, json
for doc in json.load(open("proofs/{first}.json")):
    tags = {{t[0]: t[1:] for t in doc["receipt"]["tags"]}}
    h = hashlib.sha256(b"\\x00" + bytes.fromhex(doc["event_id"])).digest()
    for s in doc["path"]:
        x = bytes.fromhex(s["hash"])
        h = hashlib.sha256(b"\\x01" + (x + h if s["side"] == "left" else h + x)).digest()
    assert h.hex() == tags["root"][0] and int(tags["count"][0]) == doc["tree_size"]
    print(doc["event_id"][:12], "in a receipt of hub", doc["receipt"]["pubkey"][:12],
          "stored before", tags["window"][1])
```

Check the receipt's own id and signature as in step 2. A receipt shows its hub *claimed*
to have stored the event by the window's end, by its own clock; receipts of several
independent hubs, and OpenTimestamps attestations where present, make that bound strong.

## 4. Media are the files the reports name

Each report lists its media in `imeta` tags (NIP-92) with the file's SHA-256 (`x ...`).
`media/<sha256>.<ext>` is named by its hash: `sha256sum media/*` must print each name,
and that hash must appear in a report's `imeta` tag.

## 5. All of it at once

    pip install samizdat   # or from its source
    samizdat verify-package THIS.zip

re-checks every hash, every event id and signature, every leaf list against its receipt's
root and every proof against its receipt, offline, and names the file and the reason of
any failure.

## What this package does not hold

{notes}
"""


# --------------------------------------------------------------------------- checking

@dataclass
class VerifyResult:
    problems: list[tuple[str, str]] = field(default_factory=list)  # (file, reason)
    checked: dict[str, int] = field(default_factory=lambda: defaultdict(int))
    existed_by: dict[str, tuple[int, str]] = field(default_factory=dict)  # report -> (end, hub)
    manifest: dict[str, Any] = field(default_factory=dict)
    signer: str | None = None  # the observer's pubkey (hex) when the signature holds

    @property
    def ok(self) -> bool:
        return not self.problems

    def fail(self, name: str, reason: str) -> None:
        self.problems.append((name, reason))

    def as_json(self) -> dict[str, Any]:
        return {"ok": self.ok, "signed_by": npub(self.signer) if self.signer else None,
                "problems": [{"file": f, "reason": r} for f, r in self.problems],
                "checked": dict(self.checked),
                "existed_no_later_than": {k: {"end": v[0], "utc": utc(v[0]), "hub": v[1]}
                                          for k, v in self.existed_by.items()}}


def _name_problem(info: zipfile.ZipInfo) -> str | None:
    name = info.filename
    if not name or "\\" in name or "\x00" in name or name.startswith("/") or ":" in name:
        return "unsafe file name (absolute, drive or backslash path)"
    parts = name.split("/")
    if any(p in ("", ".", "..") for p in parts[:-1]) or parts[-1] in (".", ".."):
        return "unsafe file name (empty, '.' or '..' path component: path traversal)"
    if not all(_SAFE_NAME.fullmatch(p) for p in parts if p):
        return "unexpected characters in the file name"
    mode = info.external_attr >> 16
    if mode and stat.S_IFMT(mode) not in (0, stat.S_IFREG, stat.S_IFDIR):
        return "not a regular file (a symbolic link or device)"
    if info.flag_bits & 0x1:
        return "encrypted entry"
    return None


def _read_zip(path: Path, result: VerifyResult) -> dict[str, bytes] | None:
    try:
        z = zipfile.ZipFile(path)
    except (zipfile.BadZipFile, OSError) as exc:
        result.fail(str(path), f"not a readable zip file: {exc}")
        return None
    with z:
        infos = z.infolist()
        if len(infos) > MAX_FILES:
            result.fail(str(path), f"more than {MAX_FILES} entries")
            return None
        total = 0
        names: set[str] = set()
        safe = []
        for info in infos:
            why = _name_problem(info)
            if why is None and info.filename in names:
                why = "the name appears twice in the zip"
            names.add(info.filename)
            if why:
                result.fail(info.filename, why)
                continue
            if info.is_dir():
                continue
            total += info.file_size
            if (info.file_size > 1 << 20
                    and info.file_size > MAX_RATIO * max(info.compress_size, 1)):
                result.fail(info.filename, "compression ratio too high (zip bomb?)")
                continue
            safe.append(info)
        if total > MAX_UNPACKED:
            result.fail(str(path), f"unpacks to more than {MAX_UNPACKED} bytes")
            return None
        files: dict[str, bytes] = {}
        for info in safe:
            try:
                with z.open(info) as f:
                    data = f.read(info.file_size + 1)
            except (zipfile.BadZipFile, OSError, RuntimeError, EOFError) as exc:
                result.fail(info.filename, f"cannot be read from the zip: {exc}")
                continue
            if len(data) != info.file_size:
                result.fail(info.filename, "its size differs from the zip directory's")
                continue
            files[info.filename] = data
        return files


def _check_sums(files: dict[str, bytes], result: VerifyResult) -> None:
    raw = files.get(SUMS)
    if raw is None:
        result.fail(SUMS, "missing: the package lists no hashes")
        return
    listed: dict[str, str] = {}
    for n, line in enumerate(raw.decode("utf-8", "replace").splitlines(), 1):
        m = _SUM_LINE.fullmatch(line)
        if not m:
            result.fail(SUMS, f"line {n} is not '<sha256>  <file>'")
            continue
        listed[m.group(2)] = m.group(1)
    for name, want in sorted(listed.items()):
        data = files.get(name)
        if data is None:
            result.fail(name, "listed in SHA256SUMS but missing from the package")
        elif hashlib.sha256(data).hexdigest() != want:
            result.fail(name, "its SHA-256 differs from SHA256SUMS: the file was altered")
        else:
            result.checked["hashes"] += 1
    for name in sorted(set(files) - set(listed) - {SUMS, SIGNATURE}):
        result.fail(name, "not listed in SHA256SUMS: a file was added to the package")


def _events(files: dict[str, bytes], name: str, result: VerifyResult) -> list[Event]:
    out = []
    raw = files.get(name)
    if raw is None:
        return out
    for n, line in enumerate(raw.splitlines(), 1):
        if not line.strip():
            continue
        try:
            ev = parse_event(orjson.loads(line), max_content=8 << 20)
            ev.verify()
        except orjson.JSONDecodeError:
            result.fail(name, f"line {n} is not JSON")
            continue
        except InvalidEvent as exc:
            result.fail(name, f"line {n}: {exc.args[0].removeprefix('invalid: ')} "
                              "(the event was altered or forged)")
            continue
        result.checked["event signatures"] += 1
        out.append(ev)
    return out


def _check_signature(files: dict[str, bytes], result: VerifyResult,
                     signer: str | None) -> None:
    raw = files.get(SIGNATURE)
    if raw is None:
        result.fail(SIGNATURE, "missing: the package is not signed, so nothing shows that "
                               "no file was left out or swapped along with SHA256SUMS")
        return
    try:
        ev = parse_event(orjson.loads(raw))
        ev.verify()
    except (orjson.JSONDecodeError, InvalidEvent) as exc:
        result.fail(SIGNATURE, f"not a valid signed event ({exc})")
        return
    digest = hashlib.sha256(files.get(SUMS, b"")).hexdigest()
    if ev.kind != SIGNATURE_KIND or ev.first_tag("x") != digest:
        result.fail(SIGNATURE, "does not sign this SHA256SUMS: files were changed after "
                               "the observer signed the package")
        return
    if signer is not None and ev.pubkey != signer:
        result.fail(SIGNATURE, f"signed by {npub(ev.pubkey)}, not by the expected "
                               f"{npub(signer)}")
        return
    result.signer = ev.pubkey
    result.checked["package signature"] += 1


def verify_package(path: str | Path, signer: str | None = None) -> VerifyResult:
    """Every check, offline; the result lists each problem as (file, reason). With
    ``signer`` (hex pubkey) the package must be signed by that key."""
    result = VerifyResult()
    files = _read_zip(Path(path), result)
    if files is None:
        return result
    _check_sums(files, result)
    _check_signature(files, result, signer)
    try:
        manifest = orjson.loads(files.get(MANIFEST, b"null"))
    except orjson.JSONDecodeError:
        manifest = None
    if not isinstance(manifest, dict) or manifest.get("type") != PACKAGE_TYPE:
        result.fail(MANIFEST, "missing or not a samizdat evidence package manifest")
        manifest = {}
    elif manifest.get("version") != PACKAGE_VERSION:
        result.fail(MANIFEST, f"package version {manifest.get('version')!r} is not known "
                              f"here (this samizdat reads {PACKAGE_VERSION})")
    result.manifest = manifest
    if manifest:
        listed = manifest.get("files")
        if isinstance(listed, list):
            for name in sorted(set(map(str, listed)) - set(files) - {SUMS}):
                if not any(p[0] == name for p in result.problems):
                    result.fail(name, "listed in manifest.json but missing from the package")

    reports = _events(files, REPORTS, result)
    labels = _events(files, LABELS, result)
    _events(files, PROFILES, result)
    receipt_events = _events(files, RECEIPTS, result)
    leaf_events = _events(files, LEAVES, result)
    by_id = {ev.id: ev for ev in [*reports, *labels]}
    for ev in reports:
        if ev.kind != 1:
            result.fail(REPORTS, f"event {ev.id} is kind {ev.kind}, not a report (kind 1)")
    for rid in manifest.get("reports", []) if manifest else []:
        if rid not in by_id and not any(p[0] == REPORTS for p in result.problems):
            result.fail(REPORTS, f"the manifest's report {rid} is not in the package")

    receipts: dict[str, Receipt] = {}
    for ev in receipt_events:
        try:
            receipts[ev.id] = parse_receipt(ev)
        except InvalidReceipt as exc:
            result.fail(RECEIPTS, f"receipt {ev.id}: {exc}")
    parts: dict[str, list[LeafPart]] = defaultdict(list)
    for ev in leaf_events:
        p = parse_leaf_event(ev)
        if p is None:
            result.fail(LEAVES, f"event {ev.id} is not a well-formed leaf list (kind 3042)")
        else:
            parts[p.receipt].append(p)
    leaf_sets: dict[str, set[bytes]] = {}
    for rid, r in receipts.items():
        if rid not in parts:
            continue
        try:
            leaf_sets[rid] = set(check_leaves(r, parts[rid]))
            result.checked["leaf lists"] += 1
        except InvalidLeaves as exc:
            result.fail(LEAVES, f"receipt {rid}: {exc}")

    for name in sorted(files):
        if not name.startswith("proofs/"):
            continue
        m = _PROOF_NAME.fullmatch(name)
        if not m:
            result.fail(name, "unexpected file in proofs/ (want proofs/<event id>.json)")
            continue
        eid = m.group(1)
        if eid not in by_id:
            result.fail(name, f"proves event {eid}, which is not in the package")
        try:
            docs = load_docs(files[name])
        except ProofError as exc:
            result.fail(name, str(exc))
            continue
        for n, doc in enumerate(docs, 1):
            try:
                checked = check_doc(doc)
            except ProofError as exc:
                result.fail(name, f"proof {n}: {exc}")
                continue
            if checked.event_id != eid:
                result.fail(name, f"proof {n} is for event {checked.event_id}, not {eid}")
                continue
            rid = checked.receipt.id
            if rid not in receipts:
                result.fail(name, f"proof {n}: its receipt {rid} is not in {RECEIPTS}")
                continue
            if rid in leaf_sets and bytes.fromhex(eid) not in leaf_sets[rid]:
                result.fail(name, f"proof {n}: the receipt's leaf list does not hold {eid}")
                continue
            result.checked["proofs"] += 1
            if eid in by_id and by_id[eid].kind == 1:
                end = checked.receipt.end
                if eid not in result.existed_by or end < result.existed_by[eid][0]:
                    result.existed_by[eid] = (end, checked.receipt.hub)

    claimed: dict[str, list[str]] = defaultdict(list)
    for ev in [*reports, *labels]:
        for c in media_claims(ev):
            claimed[c["x"]].append(ev.id)
    for name in sorted(files):
        if not name.startswith("media/"):
            continue
        m = _MEDIA_NAME.fullmatch(name)
        if not m:
            result.fail(name, "unexpected file in media/ (want media/<sha256>.<ext>)")
            continue
        sha = m.group(1)
        if hashlib.sha256(files[name]).hexdigest() != sha:
            result.fail(name, "its content does not hash to its name: the media file was "
                              "altered or replaced")
            continue
        if sha not in claimed:
            result.fail(name, "no report in the package names this file (imeta x)")
            continue
        result.checked["media files"] += 1
    return result


def describe(result: VerifyResult) -> list[str]:
    lines = []
    for k, v in sorted(result.checked.items()):
        lines.append(f"checked {v} {k}")
    for eid, (end, hub) in sorted(result.existed_by.items()):
        lines.append(f"report {eid[:16]}… existed no later than {utc(end)} "
                     f"(receipt of hub {hub[:16]}…)")
    return lines


# --------------------------------------------------------------------------- gathering

class ExportError(LookupError):
    """Nothing to export under that name (the message says why)."""


def _store_of(obs: Any) -> Any:
    """The observer's event store (a :class:`~samizdat.store.sqlite.SQLiteStore`)."""
    for name in ("store", "events", "event_store"):
        st = getattr(obs, name, None)
        if st is not None and hasattr(st, "get_json"):
            return st
    raise ExportError("this observer has no event store to export from")


def read_blob(obs: Any, sha: str) -> tuple[str, bytes] | None:
    """(type, bytes) of a stored media file, or None."""
    fn = getattr(obs, "blob", None)
    if callable(fn):
        return fn(sha)
    blobs = getattr(obs, "blobs", None)
    if blobs is None or not hasattr(blobs, "open"):
        return None
    got = blobs.open(sha)
    if got is None:
        return None
    record, f = got
    with f:
        return record.type, f.read()


def _load(rows: Iterable[str]) -> list[Event]:
    out = []
    for js in rows:
        try:
            out.append(parse_event(orjson.loads(js), max_content=8 << 20))
        except (orjson.JSONDecodeError, InvalidEvent):
            continue
    return out


def gather(obs: Any, target: str, *, pdf: bool = True) -> Material:
    """Collect a report (64-hex id) or a cluster (``CELL@START``) and what proves it."""
    from ..nostr.filters import Filter
    from .cluster import parse_cluster_id

    target = target.strip().lower()
    if HEX64.fullmatch(target):
        verdicts = [obs.check(target)]
        if not verdicts[0].found or verdicts[0].report is None:
            raise ExportError(f"{target} is not a report in this observer's archive")
        subject = {"kind": "report", "id": target, "title": f"report {target}"}
    elif parse_cluster_id(target) is not None:
        found = obs.cluster(target)
        if found is None:
            raise ExportError(f"no cluster {target} (see `samizdat observe serve`, /clusters)")
        c = found[0]
        verdicts = [obs.check(i) for i in c.reports]
        subject = {"kind": "cluster", "id": c.id, "cell": c.cell, "window": [c.start, c.end],
                   "independent_keys": c.keys,
                   "title": f"cluster {c.cell}, {utc(c.start)}, {len(c.reports)} reports "
                            f"from {c.keys} keys"}
    else:
        raise ExportError(f"{target!r} is neither a report id (64 hex characters) nor a "
                          "cluster (CELL@START)")
    store = _store_of(obs)
    ids = [v.id for v in verdicts]
    reports = _load(store.get_json([bytes.fromhex(i) for i in ids]))
    labels = _load(store.query([Filter(kinds=frozenset({1985}),
                                       tags={"e": frozenset(ids)})]))
    authors = {ev.pubkey for ev in reports}
    profiles = _load(store.query([Filter(kinds=frozenset({0}), authors=frozenset(authors))]))
    receipt_ids = sorted({rc.id for v in verdicts for rc in v.receipts})
    receipts = _load(store.get_json([bytes.fromhex(i) for i in receipt_ids]))
    leaves = (_load(store.query([Filter(kinds=frozenset({3042}),
                                        tags={"e": frozenset(receipt_ids)})]))
              if receipt_ids else [])
    material = Material(subject, reports, labels, profiles, receipts, leaves)
    missing = set(ids) - {ev.id for ev in reports}
    for i in sorted(missing):
        material.notes.append(f"report {i}: its signed event is not in the event store")
    for v in verdicts:
        for m in v.media:
            sha = m.claim.sha256
            if not sha or sha in material.media:
                continue
            got = read_blob(obs, sha) if m.stored else None
            if got is None or hashlib.sha256(got[1]).hexdigest() != sha:
                material.notes.append(f"media {sha} (named by report {v.id[:16]}…): the "
                                      "observer does not hold this file")
                continue
            material.media[sha] = got
        if not v.receipts:
            material.notes.append(f"report {v.id[:16]}…: no hub receipt includes it, so "
                                  "nothing bounds when it existed")
    media_names = {sha: f"media/{sha}{_EXT.get(mime, '')}"
                   for sha, (mime, _) in material.media.items()}
    material.summary_html = summary_html(subject, verdicts, media_names)
    if pdf:
        try:
            material.summary_pdf = summary_pdf(subject, verdicts, material.media)
        except ImportError:
            material.notes.append("summary.pdf: not written, this observer lacks fpdf2 and "
                                  "ttf-opensans (pip install 'samizdat[observer]')")
    return material


def export(obs: Any, target: str, out: str | Path) -> dict[str, Any]:
    """Gather and write the package, signed with the observer's key (``hub.key`` in its
    data directory, made on first use, mode 0600)."""
    key = load_or_create_hub_key(Path(obs.data_dir)) if hasattr(obs, "data_dir") else None
    summary = write_package(gather(obs, target), Path(out), key=key)
    summary["signed_by"] = npub(pubkey_of(key)) if key is not None else None
    return summary


def export_to_bytes(obs: Any, target: str) -> bytes:
    import tempfile

    with tempfile.TemporaryDirectory(prefix="samizdat-export-") as d:
        path = Path(d) / "package.zip"
        export(obs, target, path)
        return path.read_bytes()


# --------------------------------------------------------------------------- summaries

def summary_html(subject: dict[str, Any], verdicts: list[Any],
                 media_names: dict[str, str]) -> str:
    from . import pages

    intro = (f"<h1>Evidence package: {pages.esc(subject.get('title'))}</h1>"
             "<p>This page is the observer's reading of the evidence in this package. The "
             "evidence itself is the signed events, receipts, proofs and media beside it; "
             "README.md says how to check each claim with standard tools.</p>")
    bodies = [pages.report_body(v, media_src=media_names.get) for v in verdicts]
    return pages.layout(f"Evidence: {subject.get('title')}",
                        intro + "<hr>".join(bodies), css_href=None, nav=False)


def _pdf_font() -> tuple[str, str]:
    """A TrueType font with Cyrillic (Kazakh included): Open Sans from the ttf-opensans
    package (docs/decisions.md)."""
    import ttf_opensans

    base = Path(ttf_opensans.__file__).parent / "ttf"
    return str(base / "OpenSans-Regular.ttf"), str(base / "OpenSans-Bold.ttf")


def summary_pdf(subject: dict[str, Any], verdicts: list[Any],
                media: dict[str, tuple[str, bytes]]) -> bytes:
    from fpdf import FPDF
    from fpdf.enums import XPos, YPos

    from . import pages

    regular, bold = _pdf_font()
    pdf = FPDF(format="A4")
    pdf.set_auto_page_break(True, margin=15)
    pdf.add_font("Sans", "", regular)
    pdf.add_font("Sans", "B", bold)
    pdf.set_title(f"samizdat evidence: {subject.get('title')}")
    pdf.set_creator("samizdat observer")
    pdf.add_page()
    width = pdf.w - pdf.l_margin - pdf.r_margin

    def para(text: str, size: float = 10, style: str = "", h: float = 5) -> None:
        pdf.set_font("Sans", style, size)
        pdf.multi_cell(width, h, text, new_x=XPos.LMARGIN, new_y=YPos.NEXT, align="L")

    para(f"Evidence package: {subject.get('title')}", 15, "B", 8)
    para(f"Made by a samizdat observer on {utc(int(time.time()))}. This is the observer's "
         "reading; the evidence is the signed events, receipts, proofs and media in the "
         "package (README.md: how to check them; `samizdat verify-package` checks all).", 9)
    for v in verdicts:
        pdf.ln(4)
        para(f"Report {v.id}", 12, "B", 6)
        if v.report is not None and v.report.text:
            para(v.report.text, 10)
        pdf.ln(1)
        if v.flags:
            for f in v.flags:
                para(f"[{f.severity.upper()}] {pages.flag_title(f)}: {f.message}", 10, "B")
        else:
            para("No flags: nothing in the archive contradicts this report.", 10)
        for m in v.media:
            sha = m.claim.sha256
            got = media.get(sha or "")
            if got and got[0] in ("image/jpeg", "image/png"):
                try:
                    import io

                    if pdf.get_y() > pdf.h - 75:
                        pdf.add_page()
                    pdf.image(io.BytesIO(got[1]), w=60)
                except Exception:  # a file fpdf cannot embed: the hash still stands
                    para(f"(media {sha}: no preview)", 8)
        for s in pages.verdict_sections(v):
            pdf.ln(2)
            para(s.title, 11, "B", 6)
            for k, val in s.rows:
                para(f"{k}: {val}", 9, "", 4.5)
            for n in s.notes:
                para(n, 8, "", 4)
    return bytes(pdf.output())
