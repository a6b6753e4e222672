"""Export: events from the store, in time order, into a bundle (store → :mod:`.writer`)."""

from __future__ import annotations

import queue
import threading
import time
from collections.abc import Callable, Iterator
from itertools import islice
from pathlib import Path
from typing import Any

import orjson
from coincurve import PrivateKey

from ..nostr.filters import Filter
from ..store.sqlite import SQLiteStore
from .importer import Progress, _Quiet
from .media import media_of_json
from .state import HubState
from .writer import BundleWriter

BATCH = 4096
PROTECTED = b'["-"]'  # NIP-70 tag as orjson writes it (a string value would be escaped)


def _protected(js: bytes) -> bool:
    return any(t == ["-"] for t in orjson.loads(js)["tags"])


def _prefetch(rows: Callable[[], Iterator[tuple[int, bytes, bytes]]]
              ) -> Iterator[list[tuple[int, bytes, bytes]]]:
    """Batches of ``rows()``, read by a second thread while this one works on the last.

    SQLite releases the GIL while it steps through the index and the table, so reading
    overlaps with filtering here and with compression in the writer's thread: with two
    cores, export is otherwise bound by reading and writing one after the other.
    """
    q: queue.Queue = queue.Queue(maxsize=4)
    stop = threading.Event()

    def put(item: object) -> None:
        while not stop.is_set():  # never block for good once the consumer has gone
            try:
                q.put(item, timeout=0.1)
                return
            except queue.Full:
                continue

    def produce() -> None:
        try:
            it = rows()  # created in this thread: the store's reader connection is per thread
            while not stop.is_set() and (batch := list(islice(it, BATCH))):
                put(batch)
            put(None)
        except BaseException as exc:  # handed to the consumer
            put(exc)

    reader = threading.Thread(target=produce, name="export-read", daemon=True)
    reader.start()
    try:
        while (item := q.get()) is not None:
            if isinstance(item, BaseException):
                raise item
            yield item
    finally:
        stop.set()
        reader.join(timeout=5)


def export_bundle(store: SQLiteStore, path: Path, key: PrivateKey, *, flt: Filter,
                  filter_json: Any = None, state: HubState | None = None,
                  max_part_size: int | None = None, progress: Progress | None = None,
                  now: int | None = None, blobs: Any = None) -> dict[str, Any]:
    """Write the events matching ``flt`` (minus those ``state`` says the destination has).

    NIP-70 protected events are left out: only their author may publish them elsewhere.
    With ``blobs`` (the hub's :class:`~samizdat.blobs.store.BlobStore`) the media the
    written events name follow them, after all events, so a carrier whose stick fills up
    has the text first.
    """
    progress = progress or _Quiet()
    now = int(time.time()) if now is None else now
    t0 = time.monotonic()
    progress.phase("exporting", store.count([flt], now) if not flt.is_empty() else 0)
    selection = {"filter": filter_json, "since": flt.since,
                 "for": state.describe() if state else None}
    protected = present = 0
    wanted: dict[str, None] = {}  # blobs named by written events, in order
    with BundleWriter(path, key, max_part_size=max_part_size, selection=selection) as writer:
        for batch in _prefetch(lambda: store.export_rows(flt, now)):
            if state is None:
                lines = [js for _, _, js in batch if PROTECTED not in js or not _protected(js)]
                protected += len(batch) - len(lines)
            else:
                keep = [(eid, js) for _, eid, js in batch
                        if PROTECTED not in js or not _protected(js)]
                protected += len(batch) - len(keep)
                lines = [js for eid, js in keep if not state.contains(eid)]
                present += len(keep) - len(lines)
            writer.add_many(lines, batch[0][0], batch[-1][0])
            if blobs is not None:
                for js in lines:
                    for sha, _ in media_of_json(js):
                        wanted.setdefault(sha, None)
            progress.advance(len(batch))
        missing = 0
        for sha in wanted:
            opened = blobs.open(sha) if blobs is not None else None
            if opened is None:
                missing += 1
                continue
            record, fh = opened
            with fh:
                writer.add_blob_file(fh, sha, record.size)
        summary = writer.close()
    summary["blobs_missing"] = missing
    seconds = time.monotonic() - t0
    summary.update(skipped_protected=protected, skipped_present=present,
                   seconds=round(seconds, 3),
                   events_per_second=round(summary["events"] / seconds) if seconds else None)
    return summary
