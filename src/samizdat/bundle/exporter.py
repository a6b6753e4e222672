"""Export: events from the store, in time order, into a bundle (store → :mod:`.writer`)."""

from __future__ import annotations

import time
from itertools import islice
from pathlib import Path
from typing import Any

import orjson
from coincurve import PrivateKey

from ..nostr.filters import Filter
from ..store.sqlite import SQLiteStore
from .importer import Progress, _Quiet
from .state import HubState
from .writer import BundleWriter

BATCH = 4096
PROTECTED = b'["-"]'  # NIP-70 tag as orjson writes it (a string value would be escaped)


def export_bundle(store: SQLiteStore, path: Path, key: PrivateKey, *, flt: Filter,
                  filter_json: Any = None, state: HubState | None = None,
                  max_part_size: int | None = None, progress: Progress | None = None,
                  now: int | None = None) -> dict[str, Any]:
    """Write the events matching ``flt`` (minus those ``state`` says the destination has).

    NIP-70 protected events are left out: only their author may publish them elsewhere.
    """
    progress = progress or _Quiet()
    now = int(time.time()) if now is None else now
    t0 = time.monotonic()
    progress.phase("exporting", store.count([flt], now) if not flt.is_empty() else 0)
    selection = {"filter": filter_json, "since": flt.since,
                 "for": state.describe() if state else None}
    protected = present = 0
    with BundleWriter(path, key, max_part_size=max_part_size, selection=selection) as writer:
        rows = store.export_rows(flt, now)
        while batch := list(islice(rows, BATCH)):
            lines = []
            for _, eid, js in batch:
                if PROTECTED in js and any(t == ["-"] for t in orjson.loads(js)["tags"]):
                    protected += 1
                elif state is not None and state.contains(eid):
                    present += 1
                else:
                    lines.append(js)
            writer.add_many(lines, batch[0][0], batch[-1][0])
            progress.advance(len(batch))
        summary = writer.close()
    seconds = time.monotonic() - t0
    summary.update(skipped_protected=protected, skipped_present=present,
                   seconds=round(seconds, 3),
                   events_per_second=round(summary["events"] / seconds) if seconds else None)
    return summary
