"""The observer's data: plain frozen dataclasses, no I/O (docs/observer.md).

Everything :func:`samizdat.observer.analysis.check` says about one report is a
:class:`Verdict`; ``Verdict.as_json()`` is the stable ``samizdat observe check --json``
output (documented field by field in docs/observer.md).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from .media import MediaFacts  # the media module's facts (sha256, phash, exif, ...)

#: Flag severities, weakest first. ``error``: the event is not what it claims to be
#: (a bad signature); ``warning``: the evidence contradicts a claim or undermines it;
#: ``info``: worth knowing, not a contradiction.
SEVERITIES = ("info", "warning", "error")

CORROBORATE = "corroborate"
DISPUTE = "dispute"
LABEL_NAMESPACE = "samizdat.witness"


@dataclass(frozen=True, slots=True)
class MediaClaim:
    """One ``imeta`` tag of a report (NIP-92)."""

    sha256: str | None  # the x field, lowercase hex
    mime: str | None = None
    url: str | None = None
    dim: tuple[int, int] | None = None
    size: int | None = None

    def as_json(self) -> dict[str, Any]:
        return {"sha256": self.sha256, "mime": self.mime, "url": self.url,
                "dim": list(self.dim) if self.dim else None, "size": self.size}


@dataclass(frozen=True, slots=True)
class Report:
    """A kind-1 report as docs/report-format.md describes it."""

    id: str
    pubkey: str
    created_at: int
    observed_at: int | None = None
    geohash: str = ""  # the longest g tag; "" if none
    text: str = ""
    media: tuple[MediaClaim, ...] = ()
    hashtags: tuple[str, ...] = ()

    @property
    def claimed_time(self) -> int:
        """When it says it happened: ``observed_at``, else ``created_at``."""
        return self.observed_at if self.observed_at is not None else self.created_at

    @classmethod
    def from_json(cls, d: dict[str, Any]) -> Report:
        """The inverse of :meth:`as_json`."""
        media = tuple(MediaClaim(m.get("sha256"), m.get("mime"), m.get("url"),
                                 tuple(m["dim"]) if m.get("dim") else None,  # type: ignore[arg-type]
                                 m.get("size")) for m in d.get("media") or ())
        return cls(d["id"], d["pubkey"], d["created_at"], d.get("observed_at"),
                   d.get("geohash") or "", d.get("text") or "", media,
                   tuple(d.get("hashtags") or ()))

    def as_json(self) -> dict[str, Any]:
        return {"id": self.id, "pubkey": self.pubkey, "created_at": self.created_at,
                "observed_at": self.observed_at, "claimed_time": self.claimed_time,
                "geohash": self.geohash or None, "text": self.text,
                "hashtags": list(self.hashtags), "media": [m.as_json() for m in self.media]}


@dataclass(frozen=True, slots=True)
class Label:
    """A NIP-32 ``samizdat.witness`` label: ``value`` is corroborate or dispute."""

    id: str
    pubkey: str
    created_at: int
    report: str
    value: str


@dataclass(frozen=True, slots=True)
class ReceiptFacts:
    """A hub receipt (kind 3041) as the observer keeps it."""

    id: str
    hub: str
    created_at: int
    start: int
    end: int
    count: int
    root: str  # hex
    place: str = ""
    prev: str | None = None

    def as_json(self) -> dict[str, Any]:
        return {"id": self.id, "hub": self.hub, "created_at": self.created_at,
                "window": [self.start, self.end], "count": self.count,
                "place": self.place or None}


@dataclass(frozen=True, slots=True)
class MediaMatch:
    """A perceptual match of one of the report's media with other media."""

    sha256: str  # the report's media item
    other_sha256: str
    distance: int
    source: str  # "archive" (another report) or "reference" (the reference set)
    other_report: str | None = None  # the report that carried it (archive)
    other_time: int | None = None  # when that report existed at the latest
    reference: str | None = None  # the reference set's name for it (a file path)
    earlier: bool = True  # the other item is earlier than this report

    def as_json(self) -> dict[str, Any]:
        return {"sha256": self.sha256, "other_sha256": self.other_sha256,
                "distance": self.distance, "source": self.source,
                "other_report": self.other_report, "other_time": self.other_time,
                "reference": self.reference, "earlier": self.earlier}


@dataclass(frozen=True, slots=True)
class MediaCheck:
    """One claimed media item against the stored blob."""

    claim: MediaClaim
    stored: bool
    sha256_ok: bool | None  # None when not stored
    facts: MediaFacts | None
    problems: tuple[str, ...] = ()
    matches: tuple[MediaMatch, ...] = ()

    def as_json(self) -> dict[str, Any]:
        return {"claim": self.claim.as_json(), "stored": self.stored,
                "sha256_ok": self.sha256_ok,
                "facts": self.facts.as_dict() if self.facts else None,
                "problems": list(self.problems),
                "matches": [m.as_json() for m in self.matches]}


@dataclass(frozen=True, slots=True)
class KeyHistory:
    """What the archive knows of a key."""

    pubkey: str
    first_seen: int | None = None  # earliest created_at of any of its events
    last_seen: int | None = None
    events: int = 0
    reports: int = 0
    labels: int = 0
    corroborations_received: int = 0  # distinct other keys, newest label per key, per report
    disputes_received: int = 0

    def as_json(self) -> dict[str, Any]:
        return {"pubkey": self.pubkey, "first_seen": self.first_seen,
                "last_seen": self.last_seen, "events": self.events,
                "reports": self.reports, "labels": self.labels,
                "corroborations_received": self.corroborations_received,
                "disputes_received": self.disputes_received}


@dataclass(frozen=True, slots=True)
class Flag:
    code: str
    severity: str
    message: str
    evidence: tuple[str, ...] = ()  # event ids (and sha256 of media) that show it

    def as_json(self) -> dict[str, Any]:
        return {"code": self.code, "severity": self.severity, "message": self.message,
                "evidence": list(self.evidence)}


@dataclass(frozen=True, slots=True)
class PlaceCheck:
    """The claimed place against one receiving hub's declared place."""

    receipt: str
    hub: str
    hub_place: str
    distance_km: float | None

    def as_json(self) -> dict[str, Any]:
        return {"receipt": self.receipt, "hub": self.hub, "hub_place": self.hub_place,
                "distance_km": None if self.distance_km is None
                else round(self.distance_km, 1)}


@dataclass(frozen=True, slots=True)
class Verdict:
    """Everything ``check`` says about one event."""

    id: str
    found: bool
    kind: int | None = None
    signature_valid: bool | None = None
    report: Report | None = None
    author: KeyHistory | None = None
    receipts: tuple[ReceiptFacts, ...] = ()
    existed_by: int | None = None  # earliest receipt end: it existed no later than this
    existed_by_receipt: str | None = None
    claimed_time: int | None = None
    claimed_place: str | None = None
    place_checks: tuple[PlaceCheck, ...] = ()
    media: tuple[MediaCheck, ...] = ()
    corroborations: int = 0
    disputes: int = 0
    corroborators: tuple[str, ...] = ()
    disputers: tuple[str, ...] = ()
    flags: tuple[Flag, ...] = ()

    @property
    def worst(self) -> str | None:
        if not self.flags:
            return None
        return max((f.severity for f in self.flags), key=SEVERITIES.index)

    def as_json(self) -> dict[str, Any]:
        return {
            "version": 1,
            "id": self.id,
            "found": self.found,
            "kind": self.kind,
            "signature_valid": self.signature_valid,
            "report": self.report.as_json() if self.report else None,
            "author": self.author.as_json() if self.author else None,
            "receipts": [r.as_json() for r in self.receipts],
            "existed_by": self.existed_by,
            "existed_by_receipt": self.existed_by_receipt,
            "claimed_time": self.claimed_time,
            "claimed_place": self.claimed_place,
            "place_checks": [p.as_json() for p in self.place_checks],
            "media": [m.as_json() for m in self.media],
            "corroborations": self.corroborations,
            "disputes": self.disputes,
            "corroborators": list(self.corroborators),
            "disputers": list(self.disputers),
            "flags": [f.as_json() for f in self.flags],
            "worst": self.worst,
        }
