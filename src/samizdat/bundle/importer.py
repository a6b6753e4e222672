"""Import: every event checked, everything written in one transaction, or nothing.

First every bundle is checked up to its hashes and signed manifest (:mod:`.reader`),
so a damaged or altered file is refused before anything is written. Then one pass
opens the write transaction and streams the sources through it: worker processes check
each chunk's events (JSON, shape, id, BIP-340 signature, copy policy) and compute their
search index words a few chunks ahead (:mod:`.verify`), while this process parses the
good ones and stores them through :meth:`SQLiteStore.import_events` (the same rules as
every other write). A bad event (unless ``--salvage``), a count that differs from the
manifest or a file that changed since it was checked raises inside the transaction,
which rolls everything back.

Checking and writing overlap, so an import takes about as long as the slower of the
two rather than their sum (docs/decisions.md has the measurement); memory stays a few
chunks whatever the size. The price is that the write lock is held while signatures
are checked: a hub running on the same database waits for the import to finish.
"""

from __future__ import annotations

import time
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

import orjson

from ..nostr.event import Event
from ..store.sqlite import ACCEPTED, DELETED, DUPLICATE, OLDER, SQLiteStore
from .errors import BundleError
from .media import FILE_METADATA, MediaRefs, StoreSink
from .reader import BundleSource, Source, open_sources
from .verify import OK, Checker, ChunkCheck, check_chunk, event_lines

FORGED_HINT = ("nothing was imported. Import with --salvage to take only the events that "
               "verify on their own")


class Progress(Protocol):
    def phase(self, name: str, total: int | None) -> None: ...

    def advance(self, n: int) -> None: ...


class _Quiet:
    def phase(self, name: str, total: int | None) -> None:
        pass

    def advance(self, n: int) -> None:
        pass


@dataclass
class ImportReport:
    sources: list[dict[str, Any]] = field(default_factory=list)
    events: int = 0
    imported: int = 0
    already_present: int = 0
    superseded: int = 0
    deleted: int = 0
    rejected: int = 0
    reasons: dict[str, int] = field(default_factory=dict)
    skipped: list[str] = field(default_factory=list)
    blobs_verified: int = 0
    blobs_stored: int = 0
    blobs_present: int = 0
    seconds: float = 0.0

    def as_dict(self) -> dict[str, Any]:
        return {
            "sources": self.sources, "events": self.events, "imported": self.imported,
            "already_present": self.already_present, "superseded": self.superseded,
            "deleted": self.deleted, "rejected": self.rejected, "reasons": self.reasons,
            "skipped": self.skipped, "blobs_verified": self.blobs_verified,
            "blobs_stored": self.blobs_stored, "blobs_present": self.blobs_present,
            "seconds": round(self.seconds, 3),
        }


def _describe(src: Source) -> dict[str, Any]:
    d: dict[str, Any] = {"source": src.label, "kind": src.kind}
    if isinstance(src, BundleSource):
        d["bundle"] = src.bundle
        d["hub"] = src.hub
        d["authenticated"] = src.manifest is not None
        d["parts"] = [str(p.path) for p in src.parts]
        if src.manifest is not None:
            d["created_at"] = src.manifest.created_at
            d["selection"] = src.manifest.selection
    return d


#: An import expected to bring at least this many events, and at least as many as the
#: store holds, rebuilds the secondary indexes instead of updating them row by row.
BULK_MIN_EVENTS = 20_000


def _is_bulk(sources: list[Source], total: int | None, stored: int) -> bool:
    """Whether an import is big enough, next to the store, for a sorted index rebuild
    to beat row-by-row index updates. Without manifest counts (plain dumps) the number
    of events is estimated from file sizes (~700 bytes per event raw, ~250 compressed);
    a wrong guess only costs speed."""
    if total is None:
        total = 0
        for src in sources:
            if isinstance(src, BundleSource):
                total += sum(p.size for p in src.parts) // 250
            else:
                total += src.path.stat().st_size // (250 if src.compressed else 700)
    return total >= max(BULK_MIN_EVENTS, stored)


def _store_blobs(sources: list[Source], blobs: BlobRules, refs: MediaRefs,
                 report: ImportReport) -> None:
    """After the events are committed: the bundles' blobs into the media store. They were
    verified before the commit; a problem now (the file changed) leaves the events
    imported and says which media did not follow."""
    for src in sources:
        if not isinstance(src, BundleSource):
            continue
        sink = StoreSink(blobs.store, refs, blobs.allowed_types, blobs.max_size, src.hub)
        try:
            src.verify_blobs(sink)
        except BundleError as exc:
            report.skipped.append(f"media not stored: {exc}; import the bundle again")
        report.blobs_stored += sink.stored
        report.blobs_present += sink.present
        report.skipped += sink.skipped


@dataclass
class BlobRules:
    """Where imported media goes and what the hub accepts (its ``[blobs]`` settings)."""

    store: Any  # samizdat.blobs.store.BlobStore
    allowed_types: list[str]
    max_size: int


def import_files(store: SQLiteStore, paths: list[Path], *, salvage: bool = False,
                 workers: int | None = None, mode: str = "process",
                 progress: Progress | None = None, now: int | None = None,
                 on_write: Any = None, blobs: BlobRules | None = None) -> ImportReport:
    """Verify and import ``paths`` (bundle parts and JSONL dumps) in one transaction.

    Raises :class:`BundleError` (nothing imported) unless every check passes, or with
    ``salvage`` only for what cannot be worked around (a decompression bomb, a file that
    changed during the import).
    """
    progress = progress or _Quiet()
    now = int(time.time()) if now is None else now
    report = ImportReport()
    sources, notes = open_sources(paths, salvage)
    report.sources = [_describe(s) for s in sources]
    totals = [s.manifest.events_count if isinstance(s, BundleSource) and s.manifest else None
              for s in sources]
    total = sum(t or 0 for t in totals) if all(t is not None for t in totals) else None

    checker = Checker(workers, mode)

    def refuse(src: Source, where: str, base: int, res: ChunkCheck) -> None:
        """Fail the import on a bad event, or note what --salvage skips."""
        if res.examples and not salvage:
            i, eid, reason = res.examples[0]
            ident = f" (id {eid})" if eid else ""
            raise BundleError(where, f"event {base + i + 1}{ident} is refused: {reason}",
                              ("the bundle holds a forged or damaged event although its "
                               "manifest is validly signed; " if src.manifest else "")
                              + FORGED_HINT)
        for i, eid, reason in res.examples:
            notes.append(f"{where}: skipped event {base + i + 1}"
                         f"{f' (id {eid})' if eid else ''}: {reason}")

    def events() -> Iterator[Event]:
        """Every good event of every source, checked by the workers a few chunks ahead
        of the writer. Raising here (a bad event, a count that differs from the
        manifest, a file that changed) rolls the whole import back."""
        for src in sources:
            per_part: Counter[int] = Counter()
            items = (((part, where, raw), (raw, now, True)) for part, where, raw in src.chunks())
            for (part, where, raw), res in checker.map(check_chunk, items):
                base = per_part[part]
                per_part[part] += len(res.statuses)
                refuse(src, where, base, res)
                reasons.update(res.reasons)
                report.events += len(res.statuses)
                report.rejected += len(res.statuses) - res.statuses.count(OK)
                words = iter(res.words)
                for line, status in zip(event_lines(raw), res.statuses, strict=True):
                    if status == OK:
                        # A worker checked these very bytes (shape, id, signature), so
                        # they are only decoded here: cheaper than shipping Event objects
                        # back between processes, or checking them twice. The line is
                        # stored as it is only if it is exactly the compact encoding of
                        # the seven fields (a repeated key would let readers that keep
                        # the first value see other content than was verified).
                        o = orjson.loads(line)
                        ev = Event(o["id"], o["pubkey"], o["created_at"], o["kind"], o["tags"],
                                   o["content"], o["sig"], next(words),
                                   line.decode() if len(o) == 7 and orjson.dumps(o) == line
                                   else None)
                        if b"imeta" in line or ev.kind == FILE_METADATA:
                            refs.add(ev.pubkey, ev.kind, ev.tags)
                        yield ev
                progress.advance(len(res.statuses))
            labels = ({p.header.part: p.label for p in src.parts if p.header}
                      if isinstance(src, BundleSource) else {})
            for part, expect in src.expected_counts().items():
                if per_part[part] != expect:
                    raise BundleError(f"{labels.get(part, part)}, events section", f"holds "
                                      f"{per_part[part]:,} events where the manifest says "
                                      f"{expect:,}", FORGED_HINT)
            report.blobs_verified += src.verify_blobs()

    t0 = time.monotonic()
    progress.phase("importing", total)
    if on_write is not None:
        on_write(report)
    reasons: Counter[str] = Counter()
    refs = MediaRefs()
    try:
        checker.start()  # the workers exist before the write transaction begins
        results = store.import_events(events(), now,
                                      bulk=_is_bulk(sources, total, store.event_count))
    finally:
        checker.close()
    report.skipped = notes
    if blobs is not None:
        _store_blobs(sources, blobs, refs, report)
    report.seconds = time.monotonic() - t0
    for res, n in results.items():
        if res == ACCEPTED:
            report.imported += n
        elif res == DUPLICATE:
            report.already_present += n
        elif res == OLDER:
            report.superseded += n
        elif res == DELETED:
            report.deleted += n
        else:
            report.rejected += n
            reasons[res.message] += n
    report.reasons = dict(reasons)
    return report
