"""Import: verify everything first, then write everything in one short transaction.

Pass 1 reads every source (bundles checked by :mod:`.reader` up to their hashes first),
decompresses frame by frame and checks every event on all cores
(:mod:`.verify`), keeping one status byte per event. Pass 2 opens the write transaction
and reads the sources again, storing the events whose status is OK through
:meth:`SQLiteStore.import_events` (the same rules as every other write). Pass 2 also
re-hashes what it reads; if a file changed in between, the transaction is rolled back.

Two reads instead of one keep memory flat (a million events are never held at once)
and keep the write lock short: the hub running on the same database waits only for
the inserts, not for the signature checks.
"""

from __future__ import annotations

import time
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

import orjson

from ..nostr.event import Event, InvalidEvent, parse_event
from ..nostr.filters import index_words
from ..store.sqlite import ACCEPTED, DELETED, DUPLICATE, OLDER, SQLiteStore
from .errors import BundleError
from .reader import BundleSource, Source, open_sources
from .verify import OK, Checker, check_chunk, event_lines

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
    verify_seconds: float = 0.0
    write_seconds: float = 0.0

    def as_dict(self) -> dict[str, Any]:
        return {
            "sources": self.sources, "events": self.events, "imported": self.imported,
            "already_present": self.already_present, "superseded": self.superseded,
            "deleted": self.deleted, "rejected": self.rejected, "reasons": self.reasons,
            "skipped": self.skipped, "blobs_verified": self.blobs_verified,
            "blobs_stored": 0, "verify_seconds": round(self.verify_seconds, 3),
            "write_seconds": round(self.write_seconds, 3),
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


def parse_chunk(raw: bytes, statuses: bytes) -> list[Event] | None:
    """Pass 2, in a worker: the chunk's events that passed pass 1, parsed again and with
    their search index words; None if the chunk is not what pass 1 saw."""
    lines = list(event_lines(raw))
    if len(lines) != len(statuses):
        return None
    out: list[Event] = []
    for line, status in zip(lines, statuses, strict=True):
        if status == OK:
            try:
                ev = parse_event(orjson.loads(line))
            except (orjson.JSONDecodeError, InvalidEvent):
                return None
            ev.words = index_words(ev.content)
            out.append(ev)
    return out


def import_files(store: SQLiteStore, paths: list[Path], *, salvage: bool = False,
                 workers: int | None = None, mode: str = "process",
                 progress: Progress | None = None, now: int | None = None,
                 on_write: Any = None) -> ImportReport:
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

    # Pass 1: verify.
    t0 = time.monotonic()
    progress.phase("verifying", total)
    statuses: list[bytearray] = []
    chunk_sizes: list[list[int]] = []
    digests: list[str] = []
    reasons: Counter[str] = Counter()
    checker = Checker(workers, mode)
    try:
        for src in sources:
            st = bytearray()
            sizes: list[int] = []
            per_part: Counter[int] = Counter()
            items = (((part, where), (raw, now)) for part, where, raw in src.chunks())
            for (part, where), res in checker.map(check_chunk, items):
                base = per_part[part]
                per_part[part] += len(res.statuses)
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
                reasons.update(res.reasons)
                st += res.statuses
                sizes.append(len(res.statuses))
                progress.advance(len(res.statuses))
            labels = ({p.header.part: p.label for p in src.parts if p.header}
                      if isinstance(src, BundleSource) else {})
            for part, expect in src.expected_counts().items():
                if per_part[part] != expect:
                    raise BundleError(f"{labels.get(part, part)}, events section", f"holds "
                                      f"{per_part[part]:,} events where the manifest says "
                                      f"{expect:,}", FORGED_HINT)
            report.blobs_verified += src.verify_blobs()
            statuses.append(st)
            chunk_sizes.append(sizes)
            digests.append(src.digest)
    except BaseException:
        checker.close()
        raise
    report.verify_seconds = time.monotonic() - t0
    report.events = sum(len(s) for s in statuses)
    report.rejected = sum(len(s) - s.count(OK) for s in statuses)

    # Pass 2: write, in one transaction. Workers parse the events again and compute their
    # search index words (the costliest part of storing one); the main process only
    # reads, re-hashes and runs the SQL.
    def changed(src: Source) -> BundleError:
        return BundleError(src.label, "the file changed while it was being imported; "
                           "nothing was imported", "run the import again")

    def chunks() -> Iterator[tuple[tuple[int, int], tuple[bytes, bytes]]]:
        for si, src in enumerate(sources):
            st, sizes, pos, k = statuses[si], chunk_sizes[si], 0, 0
            for _, _, raw in src.chunks():
                if k >= len(sizes):
                    raise changed(src)
                yield (si, sizes[k]), (raw, bytes(st[pos:pos + sizes[k]]))
                pos += sizes[k]
                k += 1
            if k != len(sizes) or src.digest != digests[si]:
                raise changed(src)

    def events() -> Iterator[Event]:
        for (si, n), parsed in checker.map(parse_chunk, chunks()):
            if parsed is None:
                raise changed(sources[si])
            yield from parsed
            progress.advance(n)

    t1 = time.monotonic()
    progress.phase("writing", report.events)
    if on_write is not None:
        on_write(report)
    try:
        checker.start()  # the workers exist before the write transaction begins
        results = store.import_events(events(), now)
    finally:
        checker.close()
    report.write_seconds = time.monotonic() - t1
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
    report.skipped = notes
    return report
