"""The observer's checks (docs/observer.md, "Flags"). Pure: lists in, a Verdict out.

The service gathers the facts about one event from the index (its receipts, the labels on
it, the histories of the keys involved, the stored media's facts and perceptual matches)
and :func:`check` turns them into a :class:`~.model.Verdict` with flags. Every tolerance
is a field of :class:`Tolerances`.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass

from .geo import cell_distance_km, decode, distance_km, is_geohash
from .media import MATCH_THRESHOLD
from .model import (
    CORROBORATE,
    DISPUTE,
    Flag,
    KeyHistory,
    Label,
    MediaCheck,
    MediaFacts,
    MediaMatch,
    PlaceCheck,
    ReceiptFacts,
    Report,
    Verdict,
)
from .parse import _SHA


@dataclass(frozen=True, slots=True)
class Tolerances:
    #: A claimed time may exceed the end of a receipt holding the report by this much
    #: before it is a contradiction (phone and hub clocks drift).
    time_slack: int = 600
    #: A report received live that claims a time more than this before its first receipt
    #: gets an ``info`` flag.
    time_tolerance: int = 24 * 3600
    #: Every receiving hub farther than this from the claimed place: a contradiction...
    place_tolerance_km: float = 200.0
    #: ...if the report reached them early: first receipt end within this of the claim.
    place_early: int = 2 * 3600
    #: Perceptual-hash Hamming distance at or below which two images match.
    match_threshold: int = MATCH_THRESHOLD
    #: Fresh corroborating keys first seen within this many seconds form a burst...
    burst_window: int = 600
    #: ...of at least this many keys...
    burst_min_keys: int = 5
    #: ...making up at least this share of the report's corroborators.
    burst_share: float = 0.5
    #: A key is "fresh" (no other history) with no reports and at most this many events.
    fresh_max_events: int = 3


DEFAULT = Tolerances()


def _ago(seconds: int) -> str:
    s = abs(seconds)
    if s >= 86400 * 2:
        return f"{s / 86400:.0f} days"
    if s >= 7200:
        return f"{s / 3600:.0f} hours"
    if s >= 120:
        return f"{s // 60} minutes"
    return f"{s} seconds"


def latest_labels(labels: Iterable[Label], author: str | None) -> dict[str, Label]:
    """The newest ``samizdat.witness`` label per key (ties: the higher id), the author's
    own labels excluded."""
    out: dict[str, Label] = {}
    for lab in labels:
        if lab.pubkey == author:
            continue
        cur = out.get(lab.pubkey)
        if cur is None or (lab.created_at, lab.id) > (cur.created_at, cur.id):
            out[lab.pubkey] = lab
    return out


def count_labels(labels: Iterable[Label], author: str | None
                 ) -> tuple[list[str], list[str]]:
    """(corroborating keys, disputing keys), each sorted; a key counts once, by its
    newest label; the author is not counted."""
    latest = latest_labels(labels, author)
    cor = sorted(k for k, v in latest.items() if v.value == CORROBORATE)
    dis = sorted(k for k, v in latest.items() if v.value == DISPUTE)
    return cor, dis


def earliest_receipt(receipts: Sequence[ReceiptFacts]) -> ReceiptFacts | None:
    """The receipt with the earliest ``end``: the report existed no later than that."""
    return min(receipts, key=lambda r: (r.end, r.id)) if receipts else None


def time_flags(report: Report, receipts: Sequence[ReceiptFacts],
               tol: Tolerances = DEFAULT) -> list[Flag]:
    claimed = report.claimed_time
    what = "observed_at" if report.observed_at is not None else "created_at"
    late = [r for r in receipts if claimed > r.end + tol.time_slack]
    out = []
    if late:
        first = min(late, key=lambda r: (r.end, r.id))
        out.append(Flag(
            "time-contradiction", "warning",
            f"The report says it happened at {_utc(claimed)} ({what}), but hub "
            f"{first.hub[:12]}… already held it by {_utc(first.end)}, {_ago(claimed - first.end)} "
            f"earlier: it existed before the time it claims"
            + (f" ({len(late)} receipts say so)" if len(late) > 1 else "") + ".",
            (*tuple(sorted(r.id for r in late)), report.id)))
    first = earliest_receipt(receipts)
    if (first is not None and not late and claimed < first.start - tol.time_tolerance
            and report.created_at >= first.start - tol.time_slack):
        out.append(Flag(
            "time-contradiction", "info",
            f"The report was posted around {_utc(report.created_at)} and first received in "
            f"a window starting {_utc(first.start)}, but says it happened "
            f"{_ago(first.start - claimed)} before that ({_utc(claimed)}): old news, or a "
            f"wrong date.", (first.id, report.id)))
    return out


def place_checks(report: Report, receipts: Sequence[ReceiptFacts]) -> list[PlaceCheck]:
    out = []
    for r in sorted(receipts, key=lambda r: (r.end, r.id)):
        if not r.place:
            continue
        d = (cell_distance_km(report.geohash, r.place)
             if is_geohash(report.geohash) and is_geohash(r.place) else None)
        out.append(PlaceCheck(r.id, r.hub, r.place, d))
    return out


def place_flags(report: Report, receipts: Sequence[ReceiptFacts],
                tol: Tolerances = DEFAULT) -> list[Flag]:
    checks = [c for c in place_checks(report, receipts) if c.distance_km is not None]
    if not checks or not report.geohash:
        return []
    first = earliest_receipt(receipts)
    assert first is not None
    if first.end - report.claimed_time > tol.place_early:
        return []  # it reached the hubs late: it may have travelled
    if all(c.distance_km > tol.place_tolerance_km for c in checks):  # type: ignore[operator]
        nearest = min(checks, key=lambda c: c.distance_km)  # type: ignore[arg-type,return-value]
        hubs = len({c.hub for c in checks})
        return [Flag(
            "place-contradiction", "warning",
            f"The report claims to be from {report.geohash}, but the {hubs} "
            f"hub{'s' * (hubs != 1)} that received it within {_ago(tol.place_early)} of its "
            f"claimed time declare places at least {nearest.distance_km:.0f} km away "
            f"(nearest: {nearest.hub_place}).",
            (*tuple(sorted({c.receipt for c in checks})), report.id))]
    return []


def _norm_mime(m: str | None) -> str | None:
    if not m:
        return None
    m = m.split(";")[0].strip().lower()
    return {"image/jpg": "image/jpeg"}.get(m, m)


def media_checks(report: Report, facts: Mapping[str, MediaFacts],
                 matches: Iterable[MediaMatch] = ()) -> list[MediaCheck]:
    by_item: dict[str, list[MediaMatch]] = {}
    for m in matches:
        by_item.setdefault(m.sha256, []).append(m)
    out = []
    for claim in report.media:
        f = facts.get(claim.sha256) if claim.sha256 else None
        problems = []
        if claim.sha256 is None:
            problems.append("the imeta tag has no valid x (sha256) field")
        if claim.url and claim.sha256:
            hexes = set(_SHA.findall(claim.url.lower()))
            if hexes and claim.sha256 not in hexes:
                problems.append("the url names another sha256 than the x field")
        ok = None
        if f is not None:
            ok = f.sha256 == claim.sha256
            if not ok:
                problems.append(f"the stored file hashes to {f.sha256}, not the claimed "
                                f"{claim.sha256}")
            cm, fm = _norm_mime(claim.mime), _norm_mime(f.mime)
            if cm and fm and cm != fm:
                problems.append(f"claimed type {cm}, the file is {fm}")
            if claim.dim and f.width and f.height and claim.dim not in (
                    (f.width, f.height), (f.height, f.width)):
                problems.append(f"claimed {claim.dim[0]}x{claim.dim[1]}, the image is "
                                f"{f.width}x{f.height}")
            if claim.size is not None and f.size is not None and claim.size != f.size:
                problems.append(f"claimed {claim.size} bytes, the file has {f.size}")
        items = sorted(by_item.get(claim.sha256 or "", ()),
                       key=lambda m: (m.distance, m.other_sha256, m.other_report or ""))
        out.append(MediaCheck(claim, f is not None, ok, f, tuple(problems), tuple(items)))
    return out


def media_flags(report: Report, checks: Sequence[MediaCheck],
                tol: Tolerances = DEFAULT) -> list[Flag]:
    out = []
    for c in checks:
        sha = c.claim.sha256 or "?"
        if c.problems:
            out.append(Flag("media-mismatch", "warning",
                            f"Media {sha[:12]}…: " + "; ".join(c.problems) + ".",
                            (report.id, sha)))
        earlier = [m for m in c.matches if m.distance <= tol.match_threshold
                   and (m.source == "reference" or m.earlier)]
        if earlier:
            m = min(earlier, key=lambda m: (m.source != "reference", m.other_time or 0,
                                            m.distance))
            if m.source == "reference":
                src = f"the reference set ({m.reference or m.other_sha256[:12]})"
            else:
                src = (f"report {m.other_report[:12]}… " if m.other_report else "media ") + (
                    f"which existed by {_utc(m.other_time)}" if m.other_time else "")
            out.append(Flag(
                "recycled-media", "warning",
                f"Media {sha[:12]}… looks like earlier media (perceptual distance "
                f"{m.distance} of 64) from {src.strip()}: it may be recycled from another "
                f"event" + (f"; {len(earlier)} earlier matches in all" if len(earlier) > 1
                            else "") + ".",
                (report.id, sha, *tuple(dict.fromkeys(x for e in earlier for x in (e.other_report, e.other_sha256) if x)))))
        exif = c.facts.exif if c.facts else {}
        if exif.get("has_gps"):
            gps = exif.get("gps")
            where = ""
            if gps and is_geohash(report.geohash):
                d = distance_km(tuple(gps), decode(report.geohash))
                where = f" It points {d:.0f} km from the claimed place."
            out.append(Flag(
                "exif-location", "info",
                f"Media {sha[:12]}… still carries a GPS position in its EXIF data: it can "
                f"locate the witness; strip it before sharing further.{where}",
                (report.id, sha)))
    return out


def sybil_flags(report_id: str, corroborators: Sequence[str],
                histories: Mapping[str, KeyHistory], tol: Tolerances = DEFAULT) -> list[Flag]:
    """A burst: at least ``burst_min_keys`` fresh corroborating keys (no reports, few
    events) first seen within ``burst_window`` seconds, making up at least
    ``burst_share`` of the corroborators."""
    fresh = sorted(
        ((h.first_seen, k) for k in corroborators
         if (h := histories.get(k)) is not None and h.first_seen is not None
         and h.reports == 0 and h.events <= tol.fresh_max_events),
    )
    best: list[tuple[int, str]] = []
    lo = 0
    for hi in range(len(fresh)):
        while fresh[hi][0] - fresh[lo][0] > tol.burst_window:
            lo += 1
        if hi - lo + 1 > len(best):
            best = fresh[lo:hi + 1]
    if len(best) < tol.burst_min_keys or len(best) < tol.burst_share * len(corroborators):
        return []
    span = best[-1][0] - best[0][0]
    return [Flag(
        "sybil-burst", "warning",
        f"{len(best)} of the {len(corroborators)} keys corroborating this report were first "
        f"seen within {_ago(span)} of each other ({_utc(best[0][0])}) and have no other "
        f"history: they may be one person's keys.",
        (report_id, *tuple(k for _, k in best)))]


def check(event_id: str, *, found: bool = True, kind: int | None = None,
          signature_valid: bool | None = None, report: Report | None = None,
          author: KeyHistory | None = None, receipts: Sequence[ReceiptFacts] = (),
          labels: Sequence[Label] = (), histories: Mapping[str, KeyHistory] | None = None,
          media: Mapping[str, MediaFacts] | None = None,
          matches: Sequence[MediaMatch] = (), tol: Tolerances = DEFAULT) -> Verdict:
    """Everything the observer says about one event, from facts gathered elsewhere."""
    if not found:
        return Verdict(event_id, False)
    receipts = sorted(receipts, key=lambda r: (r.end, r.id))
    flags: list[Flag] = []
    if signature_valid is False:
        flags.append(Flag("bad-signature", "error",
                          "The event's id or signature does not verify: it is not what its "
                          "author signed (altered or forged).", (event_id,)))
    first = earliest_receipt(receipts)
    if not receipts:
        flags.append(Flag("no-receipt", "info",
                          "No hub receipt in this archive includes this event: nothing "
                          "bounds when it existed (ingest the hubs' receipts and leaf lists).",
                          (event_id,)))
    author_key = report.pubkey if report else (author.pubkey if author else None)
    cor, dis = count_labels([lab for lab in labels if lab.report == event_id], author_key)
    checks: list[MediaCheck] = []
    pchecks: list[PlaceCheck] = []
    if report is not None:
        flags += time_flags(report, receipts, tol)
        pchecks = place_checks(report, receipts)
        flags += place_flags(report, receipts, tol)
        checks = media_checks(report, media or {}, matches)
        flags += media_flags(report, checks, tol)
        flags += sybil_flags(event_id, cor, histories or {}, tol)
    return Verdict(
        id=event_id, found=True, kind=kind, signature_valid=signature_valid, report=report,
        author=author, receipts=tuple(receipts),
        existed_by=first.end if first else None,
        existed_by_receipt=first.id if first else None,
        claimed_time=report.claimed_time if report else None,
        claimed_place=(report.geohash or None) if report else None,
        place_checks=tuple(pchecks), media=tuple(checks),
        corroborations=len(cor), disputes=len(dis),
        corroborators=tuple(cor), disputers=tuple(dis), flags=tuple(flags))


def _utc(ts: int | None) -> str:
    from datetime import UTC, datetime

    if ts is None:
        return "?"
    return datetime.fromtimestamp(ts, UTC).strftime("%Y-%m-%d %H:%M UTC")
