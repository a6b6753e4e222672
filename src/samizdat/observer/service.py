"""``Observer(data_dir)``: the observer's one entry point (docs/observer.md, "Service").

It owns the three stores of an observer directory (events, blobs, the derived index),
keeps the index up to date (:meth:`Observer.update_index`, :meth:`Observer.reindex`) and
answers: :meth:`check`, :meth:`reports`, :meth:`clusters`, :meth:`cluster`,
:meth:`timeline`, :meth:`stats`, :meth:`event`, :meth:`proof`. The web console, the
evidence export and the CLI use only this class (and the dataclasses it returns).
Synchronous; not thread-safe (use one instance per thread, or serialise calls).
"""

from __future__ import annotations

import contextlib
import logging
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import orjson

from ..nostr.event import HEX64, Event, InvalidEvent
from ..receipts import merkle
from ..receipts.leaves import InvalidLeaves, LeafPart, check_leaves
from ..receipts.receipt import Receipt
from ..store.observer import ObserverIndex
from . import analysis, cluster, parse
from .media import MAX_BYTES, MediaFacts, media_facts
from .model import KeyHistory, Label, MediaMatch, ReceiptFacts, Report, Verdict

log = logging.getLogger(__name__)

EVENTS_DB = "events.sqlite3"
INDEX_DB = "observer.sqlite3"
IMAGE_SUFFIXES = {".jpg", ".jpeg", ".png", ".webp", ".gif", ".bmp", ".tif", ".tiff"}


@dataclass
class IndexCounts:
    """What one index update added."""

    events: int = 0
    reports: int = 0
    labels: int = 0
    receipts: int = 0
    leaf_parts: int = 0
    leaves_accepted: int = 0
    leaves_refused: int = 0
    media_facts: int = 0

    def as_json(self) -> dict[str, int]:
        return dict(self.__dict__)


def _event(d: dict) -> Event:
    return Event(d["id"], d["pubkey"], d["created_at"], d["kind"], d["tags"], d["content"],
                 d["sig"])


def _receipt_facts(row: tuple) -> ReceiptFacts:
    return ReceiptFacts(*row[:9])


class Observer:
    """An observer directory: ``events.sqlite3``, ``blobs/`` + ``blobs.sqlite3``,
    ``observer.sqlite3``. ``create`` makes the directory and stores if missing."""

    def __init__(self, data_dir: str | Path, *, create: bool = True,
                 tolerances: analysis.Tolerances = analysis.DEFAULT,
                 synchronous: str = "NORMAL"):
        from ..blobs.store import BlobStore
        from ..store import SQLiteStore
        from ..store.blobs import BlobIndex

        self.data_dir = Path(data_dir)
        if not create and not (self.data_dir / EVENTS_DB).exists():
            raise FileNotFoundError(f"no observer data in {self.data_dir.resolve()}: run "
                                    f"`samizdat observe ingest SOURCE --data {self.data_dir}`")
        self.data_dir.mkdir(parents=True, exist_ok=True)
        self.tolerances = tolerances
        self.events_path = self.data_dir / EVENTS_DB
        self.store = SQLiteStore(self.events_path, synchronous)
        self.blob_index = BlobIndex(self.data_dir / "blobs.sqlite3", synchronous)
        self.blobs = BlobStore(self.data_dir, self.blob_index)
        self.index = ObserverIndex(self.data_dir / INDEX_DB)
        self._phash_cache: list[tuple[int, str]] | None = None

    def close(self) -> None:
        self.index.close()
        self.blob_index.close()
        self.store.close()

    def __enter__(self) -> Observer:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # --- keeping the index ----------------------------------------------------------------

    def update_index(self, progress: Callable[[int], None] | None = None,
                     media: bool = True) -> IndexCounts:
        """Index the events stored since the last update, settle receipt leaf lists, and
        compute facts of media not yet examined. ``progress(n)`` gets event counts."""
        counts = IndexCounts()
        after = int(self.index.get_meta("rid", "0") or 0)
        for batch in ObserverIndex.scan_events(self.events_path, after):
            with self.index.transaction():
                self._index_batch(batch, counts)
                self.index.set_meta("rid", batch[-1][0])
            if progress:
                progress(len(batch))
        self._settle_leaves(counts)
        if media:
            self.update_media(counts)
        self._phash_cache = None
        return counts

    def reindex(self, progress: Callable[[int], None] | None = None) -> IndexCounts:
        """Rebuild the derived index from the stores (the reference set is kept)."""
        self.index.clear()
        return self.update_index(progress)

    def _index_batch(self, batch: list[tuple[int, bytes]], c: IndexCounts) -> None:
        reports, rmedia, labels, receipts, parts = [], [], [], [], []
        keys: dict[str, list[int]] = {}
        dumps = ObserverIndex.dumps
        for _rid, js in batch:
            try:
                ev = _event(orjson.loads(js))
            except (orjson.JSONDecodeError, KeyError, TypeError):
                continue
            c.events += 1
            k = keys.get(ev.pubkey)
            if k is None:
                k = keys[ev.pubkey] = [ev.created_at, ev.created_at, 0, 0, 0]
            k[0] = min(k[0], ev.created_at)
            k[1] = max(k[1], ev.created_at)
            k[2] += 1
            if ev.kind == parse.REPORT_KIND:
                r = parse.report(ev)
                if r is None:
                    continue
                k[3] += 1
                reports.append((r.id, r.pubkey, r.created_at, r.observed_at, r.claimed_time,
                                r.geohash, dumps(r.as_json())))
                rmedia += [(m.sha256, r.id) for m in r.media if m.sha256]
            elif ev.kind == parse.LABEL_KIND:
                lab = parse.label(ev)
                if lab is not None:
                    k[4] += 1
                    labels.append((lab.id, lab.pubkey, lab.created_at, lab.report, lab.value))
            elif (rf := parse.receipt(ev)) is not None:
                receipts.append((rf.id, rf.hub, rf.created_at, rf.start, rf.end, rf.count,
                                 rf.root, rf.place, rf.prev))
            elif (p := parse.leaf_part(ev)) is not None:
                parts.append((p.id, p.receipt, p.hub, p.index, p.total, b"".join(p.ids)))
        self.index.add_reports(reports, rmedia)
        self.index.add_labels(labels)
        self.index.add_keys(keys)
        self.index.add_receipts(receipts)
        self.index.add_leaf_parts(parts)
        c.reports += len(reports)
        c.labels += len(labels)
        c.receipts += len(receipts)
        c.leaf_parts += len(parts)

    def _settle_leaves(self, c: IndexCounts) -> None:
        for row in self.index.pending_leaf_receipts():
            rid, hub, created_at, start, end, count, root, place, prev = row
            r = Receipt(rid, hub, created_at, start, end, count, bytes.fromhex(root), place,
                        prev)
            parts = [LeafPart(pid, phub, rec, idx, total,
                              tuple(ids[k:k + 32] for k in range(0, len(ids), 32)))
                     for pid, rec, phub, idx, total, ids in self.index.leaf_parts(rid)]
            try:
                ids = check_leaves(r, parts)
            except InvalidLeaves as exc:
                if "missing" in str(exc):
                    continue  # wait for the other parts
                with self.index.transaction():
                    self.index.settle_leaves(rid, None, str(exc))
                c.leaves_refused += 1
                log.warning("receipt %s: leaf list refused: %s", rid, exc)
                continue
            with self.index.transaction():
                self.index.settle_leaves(rid, ids, None)
            c.leaves_accepted += 1

    def update_media(self, c: IndexCounts | None = None) -> int:
        """Facts (perceptual hash, EXIF) of stored media that reports claim and that
        were not examined yet."""
        rows = []
        for sha in self.index.media_without_facts():
            rec = self.blobs.get(sha)
            if rec is None or rec.size > MAX_BYTES:
                continue
            opened = self.blobs.open(sha)
            if opened is None:
                continue
            with opened[1] as f:
                data = f.read()
            facts = media_facts(data)
            rows.append((sha, facts.phash, ObserverIndex.dumps(facts.as_dict())))
            if len(rows) >= 200:
                with self.index.transaction():
                    self.index.put_media(rows)
                rows = []
        if rows:
            with self.index.transaction():
                self.index.put_media(rows)
        n = len(rows)
        if c is not None:
            c.media_facts += n
        self._phash_cache = None
        return n

    def put_media_facts(self, facts: list[MediaFacts]) -> None:
        """Record facts computed elsewhere (the benchmark, a trusted batch job)."""
        with self.index.transaction():
            self.index.put_media([(f.sha256, f.phash, ObserverIndex.dumps(f.as_dict()))
                                  for f in facts])
        self._phash_cache = None

    def load_reference(self, folder: str | Path) -> int:
        """Add every image under ``folder`` to the reference set (known earlier media that
        a report's photo must not match). Returns how many were added."""
        rows = []
        root = Path(folder)
        for path in sorted(root.rglob("*")):
            if not path.is_file() or path.suffix.lower() not in IMAGE_SUFFIXES:
                continue
            if path.stat().st_size > MAX_BYTES:
                continue
            facts = media_facts(path.read_bytes())
            rows.append((facts.sha256, str(path.relative_to(root)), facts.phash,
                         ObserverIndex.dumps(facts.as_dict())))
        with self.index.transaction():
            self.index.put_reference(rows)
        self._phash_cache = None
        return len(rows)

    # --- answers ----------------------------------------------------------------------------

    def event(self, event_id: str) -> Event | None:
        """The stored signed event (not re-verified)."""
        if not HEX64.fullmatch(event_id):
            return None
        rows = self.store.get_json([bytes.fromhex(event_id)])
        return _event(orjson.loads(rows[0])) if rows else None

    def report(self, report_id: str) -> Report | None:
        doc = self.index.report_doc(report_id)
        return Report.from_json(orjson.loads(doc)) if doc else None

    def key_history(self, pubkey: str) -> KeyHistory:
        row = self.index.key(pubkey)
        if row is None:
            return KeyHistory(pubkey)
        per_report: dict[str, list[Label]] = {}
        for lab in self.index.labels_on_author(pubkey):
            per_report.setdefault(lab[3], []).append(Label(*lab))
        cor = dis = 0
        for labs in per_report.values():
            c, d = analysis.count_labels(labs, pubkey)
            cor += len(c)
            dis += len(d)
        _, first, last, events, reports, labels = row
        return KeyHistory(pubkey, first, last, events, reports, labels, cor, dis)

    def receipts_for(self, event_id: str) -> list[ReceiptFacts]:
        return sorted((_receipt_facts(r) for r in self.index.receipts_including(event_id)),
                      key=lambda r: (r.end, r.id))

    def proof(self, event_id: str, receipt_id: str) -> merkle.Proof | None:
        """The Merkle inclusion proof of ``event_id`` in a receipt whose leaf list was
        accepted (``samizdat verify-proof`` format via ``Proof.as_json``)."""
        ids = self.index.receipt_ids(receipt_id)
        if not ids:
            return None
        tree = merkle.MerkleTree(ids)
        i = tree.index_of(bytes.fromhex(event_id))
        return None if i is None else tree.proof(i)

    def _phashes(self) -> list[tuple[int, str, str, str | None]]:
        """(phash as int, sha256, source, reference name) of archive and reference."""
        if self._phash_cache is None:
            out = []
            for sha, ph in self.index.phashes():
                with contextlib.suppress(ValueError):
                    out.append((int(ph, 16), sha, "archive", None))
            for sha, name, ph in self.index.reference_phashes():
                with contextlib.suppress(ValueError):
                    out.append((int(ph, 16), sha, "reference", name))
            self._phash_cache = out  # type: ignore[assignment]
        return self._phash_cache  # type: ignore[return-value]

    def _matches(self, report: Report, facts: dict[str, MediaFacts], own_time: int
                 ) -> list[MediaMatch]:
        threshold = self.tolerances.match_threshold
        found: list[tuple[str, str, int, str, str | None]] = []  # (own, other, d, src, name)
        own_shas = [m.sha256 for m in report.media if m.sha256]
        for sha in own_shas:
            found.append((sha, sha, 0, "archive", None))  # the same file in other reports
            f = facts.get(sha)
            if f is None or not f.phash:
                continue
            try:
                mine = int(f.phash, 16)
            except ValueError:
                continue
            for ph, other, src, name in self._phashes():
                if other != sha and (mine ^ ph).bit_count() <= threshold:
                    found.append((sha, other, (mine ^ ph).bit_count(), src, name))
        archive_shas = sorted({o for _, o, _, s, _ in found if s == "archive"})
        carriers: dict[str, list[tuple[str, int]]] = {}
        for sha, rid, created in self.index.reports_with_media(archive_shas):
            if rid != report.id:
                carriers.setdefault(sha, []).append((rid, created))
        ends = self.index.earliest_receipt_ends(
            sorted({rid for v in carriers.values() for rid, _ in v}))
        out = []
        for own, other, d, src, name in found:
            if src == "reference":
                out.append(MediaMatch(own, other, d, "reference", reference=name))
                continue
            for rid, created in carriers.get(other, ()):
                t = min(ends.get(rid, created), created)
                out.append(MediaMatch(own, other, d, "archive", other_report=rid,
                                      other_time=t, earlier=t < own_time))
        return out

    def check(self, event_id: str) -> Verdict:
        """Everything the archive says about one event (docs/observer.md, "check")."""
        event_id = event_id.lower()
        ev = self.event(event_id)
        if ev is None:
            return Verdict(event_id, False)
        try:
            ev.verify()
            sig_ok = True
        except InvalidEvent:
            sig_ok = False
        report = parse.report(ev)
        receipts = self.receipts_for(event_id)
        labels = [Label(*row) for row in self.index.labels_on(event_id)]
        author = self.key_history(ev.pubkey)
        cor, _ = analysis.count_labels(labels, ev.pubkey)
        histories = {}
        for row in self.index.keys(cor):
            pk, first, last, events, reports, nlabels = row
            histories[pk] = KeyHistory(pk, first, last, events, reports, nlabels)
        facts: dict[str, MediaFacts] = {}
        matches: list[MediaMatch] = []
        if report is not None and report.media:
            shas = [m.sha256 for m in report.media if m.sha256]
            for sha, js in self.index.media_facts(shas).items():
                facts[sha] = MediaFacts.from_dict(orjson.loads(js))
            first_end = min((r.end for r in receipts), default=ev.created_at)
            matches = self._matches(report, facts, min(first_end, ev.created_at))
        return analysis.check(
            event_id, kind=ev.kind, signature_valid=sig_ok, report=report, author=author,
            receipts=receipts, labels=labels, histories=histories, media=facts,
            matches=matches, tol=self.tolerances)

    def reports(self, *, since: int | None = None, until: int | None = None,
                cell: str | None = None, author: str | None = None, limit: int = 100,
                offset: int = 0, newest_first: bool = True) -> list[Report]:
        """Reports by claimed time (newest first), filtered by geohash prefix ``cell``,
        ``author`` (hex pubkey) and claimed time ``[since, until)``."""
        return [Report.from_json(orjson.loads(d)) for d in self.index.query_reports(
            since=since, until=until, cell=cell, author=author, limit=limit, offset=offset,
            newest_first=newest_first)]

    def points(self) -> list[cluster.Point]:
        return [cluster.Point(*row) for row in self.index.points()]

    def clusters(self, precision: int = cluster.DEFAULT_PRECISION,
                 window: int = cluster.DEFAULT_WINDOW, min_keys: int = 1
                 ) -> list[cluster.Cluster]:
        """Reports grouped by geohash cell and time window, most independent keys first."""
        return cluster.clusters((cluster.Point(*p) for p in self.index.points()), precision,
                                window, min_keys)

    def cluster(self, cluster_id: str, window: int = cluster.DEFAULT_WINDOW,
                precision: int = cluster.DEFAULT_PRECISION
                ) -> tuple[cluster.Cluster, list[Report]] | None:
        """One cluster (``CELL@START``, as :meth:`clusters` with the same ``precision``
        and ``window`` named it) and its reports, oldest first; None if empty."""
        parsed = cluster.parse_cluster_id(cluster_id)
        if parsed is None:
            return None
        cell, start = parsed
        reps = [r for r in self.reports(since=start, until=start + window, cell=cell,
                                        limit=1_000_000, newest_first=False)
                if r.geohash[:precision] == cell]
        if not reps:
            return None
        c = cluster.Cluster(cell, start, start + window, tuple(sorted(r.id for r in reps)),
                            len({r.pubkey for r in reps}))
        return c, reps

    def timeline(self, region_precision: int = 4, bucket: int = 3600
                 ) -> list[cluster.TimelineRow]:
        return cluster.timeline((cluster.Point(*p) for p in self.index.points()),
                                region_precision, bucket)

    def receipts(self) -> list[dict]:
        """Every receipt in the archive with its leaf-list state."""
        out = []
        for row in self.index.receipts():
            d = _receipt_facts(row).as_json()
            d["leaves"] = {1: "accepted", 0: "pending", -1: "refused"}[row[9]]
            d["leaves_error"] = row[10]
            out.append(d)
        return out

    def stats(self) -> dict[str, int]:
        return {"events": self.store.stats()["events"], **self.index.counts()}  # type: ignore[dict-item]

