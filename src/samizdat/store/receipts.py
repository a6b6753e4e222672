"""The receipts log: when this hub stored each event, and the receipts it published (SQLite).

A receipt says "I stored these ids between START and END"; the event store does not
record when an event arrived, so this log does, in its own database
``DATA/receipts.sqlite3`` (WAL). It is written by one thread of the running hub
(:mod:`samizdat.receipts.service`) and read by ``samizdat prove`` from any process.

- ``stored(id, stored_at, receipt)``: the first time (unix seconds, the hub's clock) the
  hub had the event committed; ``receipt`` marks events that are themselves receipts
  (of any hub), which alone never cause a new receipt (two syncing hubs would otherwise
  answer each other's receipts forever).
- ``receipts``: every receipt this hub published, with its window and root.
- ``meta.closed_until``: the end of the last window a receipt covers. Windows are
  contiguous: the next one starts there. A row arriving with an earlier time (the clock
  went back, or it was queued while the window closed) is recorded at ``closed_until``
  instead, so a published window never changes and its proofs stay valid. Recording a
  later time than the real one is always honest: a receipt only bounds when an event
  existed *at the latest*.
- ``ots``: OpenTimestamps state per receipt (docs/report-format.md).

Durability: ``synchronous=NORMAL``. A power cut may lose the last rows appended; those
events then get no receipt from this hub until the next start's catch-up records them
(at that later time).
"""

from __future__ import annotations

import contextlib
import sqlite3
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import TypeVar

from .readers import connect
from .sqlite import StoreError

T = TypeVar("T")

SCHEMA_VERSION = 1
RECEIPTS_FILE = "receipts.sqlite3"

SCHEMA = """
CREATE TABLE IF NOT EXISTS meta(key TEXT PRIMARY KEY, value TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS stored(
    id BLOB PRIMARY KEY,
    stored_at INTEGER NOT NULL,
    receipt INTEGER NOT NULL DEFAULT 0
) WITHOUT ROWID;
CREATE INDEX IF NOT EXISTS stored_time ON stored(stored_at, receipt);
CREATE TABLE IF NOT EXISTS receipts(
    id BLOB PRIMARY KEY,
    start INTEGER NOT NULL,
    end INTEGER NOT NULL,
    count INTEGER NOT NULL,
    root BLOB NOT NULL,
    created_at INTEGER NOT NULL,
    json TEXT NOT NULL
) WITHOUT ROWID;
CREATE INDEX IF NOT EXISTS receipts_end ON receipts(end, start);
CREATE TABLE IF NOT EXISTS ots(
    receipt BLOB PRIMARY KEY,
    state TEXT NOT NULL,            -- queued, pending, complete, covered
    proof BLOB,                     -- the .ots file (DetachedTimestampFile) once submitted
    note TEXT NOT NULL DEFAULT '',  -- covered: the later receipt whose prev chain covers it
    updated_at INTEGER NOT NULL,
    nip03 BLOB                      -- id of the kind-1040 event published when complete
) WITHOUT ROWID;
CREATE INDEX IF NOT EXISTS ots_state ON ots(state);
"""


class ReceiptLogError(StoreError):
    """The log cannot be opened or used; the message says what to do."""


@dataclass(frozen=True, slots=True)
class ReceiptRow:
    id: str
    start: int
    end: int
    count: int
    root: bytes
    created_at: int
    json: str


@dataclass(frozen=True, slots=True)
class OtsRow:
    receipt: str
    state: str
    proof: bytes | None
    note: str
    updated_at: int
    nip03: str | None


def _receipt(row: tuple) -> ReceiptRow:
    return ReceiptRow(row[0].hex(), row[1], row[2], row[3], row[4], row[5], row[6])


class ReceiptLog:
    """One connection. The hub opens it writable and uses it from one thread only;
    ``samizdat prove`` opens it ``readonly`` (WAL: it never waits for the hub)."""

    def __init__(self, path: str | Path, readonly: bool = False):
        self.path = Path(path)
        self.readonly = readonly
        try:
            if readonly:
                if not self.path.exists():
                    raise ReceiptLogError(f"{self.path} does not exist: this hub has not "
                                          "recorded anything for receipts yet")
            else:
                self.path.parent.mkdir(parents=True, exist_ok=True)
            self.conn = connect(self.path, readonly)
            if readonly:
                self._check_version()
                return
            self.conn.execute("PRAGMA journal_mode=WAL")
            self.conn.execute("PRAGMA synchronous=NORMAL")
            self.conn.executescript(SCHEMA)
            if self._meta("schema_version") is None:
                self._set_meta("schema_version", SCHEMA_VERSION)
            self._check_version()
        except sqlite3.DatabaseError as exc:
            raise ReceiptLogError(
                f"cannot open the receipts log {self.path}: {exc}. If it is damaged, move "
                "it aside: the hub starts a new one (published receipts stay valid, but "
                "`samizdat prove` can no longer show their proofs)") from exc

    def _check_version(self) -> None:
        version = self._meta("schema_version")
        if version is not None and int(version) > SCHEMA_VERSION:
            raise ReceiptLogError(f"{self.path} was written by a newer samizdat (schema "
                                  f"{version}); upgrade samizdat")

    def close(self) -> None:
        if not self.readonly:
            with contextlib.suppress(sqlite3.Error):
                self.conn.execute("PRAGMA optimize")
        self.conn.close()

    # --- meta ---------------------------------------------------------------------------------

    def _meta(self, key: str) -> str | None:
        row = self.conn.execute("SELECT value FROM meta WHERE key=?", (key,)).fetchone()
        return row[0] if row else None

    def _set_meta(self, key: str, value: object) -> None:
        self.conn.execute("INSERT INTO meta VALUES (?, ?) ON CONFLICT(key) DO UPDATE SET "
                          "value=excluded.value", (key, str(value)))

    def _transaction(self, body: Callable[[], T]) -> T:
        self.conn.execute("BEGIN IMMEDIATE")
        try:
            result = body()
            self.conn.execute("COMMIT")
        except BaseException:
            if self.conn.in_transaction:
                self.conn.execute("ROLLBACK")
            raise
        return result

    @property
    def closed_until(self) -> int:
        value = self._meta("closed_until")
        return int(value) if value is not None else 0

    @property
    def interval(self) -> int | None:
        """The running hub's receipt interval in seconds (for `prove`'s "next receipt")."""
        value = self._meta("interval")
        return int(value) if value is not None else None

    def set_interval(self, seconds: int) -> None:
        self._set_meta("interval", seconds)

    # --- recording ----------------------------------------------------------------------------

    def append(self, rows: Iterable[tuple[bytes, int, int]]) -> int:
        """Record ``(id, stored_at, is_receipt)`` rows; an id already known keeps its
        first time. Returns how many were new."""
        def body() -> int:
            floor = self.closed_until
            before = self.conn.total_changes
            self.conn.executemany(
                "INSERT OR IGNORE INTO stored(id, stored_at, receipt) VALUES (?, max(?, ?), ?)",
                ((i, t, floor, r) for i, t, r in rows))
            return self.conn.total_changes - before
        return self._transaction(body)

    def catch_up(self, ids: bytes, receipt_ids: set[bytes], at: int,
                 chunk: int = 200_000) -> int:
        """Record every id of ``ids`` (concatenated 32-byte ids) not yet known, as stored
        at ``at`` (a time when they certainly were). Returns how many were new. Each chunk
        is sorted first: the index lookups then walk the B-tree in order (twice as fast
        at a million ids as in time order)."""
        new = 0
        step = 32 * chunk
        for base in range(0, len(ids), step):
            part = sorted(ids[k:k + 32] for k in range(base, min(base + step, len(ids)), 32))
            new += self.append((i, at, int(i in receipt_ids)) for i in part)
        return new

    def open_window_start(self) -> int | None:
        """Where the next receipt's window starts: the end of the last one, or the first
        time recorded; None while nothing is recorded."""
        start = self.closed_until
        if start:
            return start
        return self.conn.execute("SELECT min(stored_at) FROM stored").fetchone()[0]

    def close_window(self, now: int, interval: int,
                     sign: Callable[[int, int, list[bytes], ReceiptRow | None],
                                    tuple[str, int, bytes, str]]
                     ) -> tuple[ReceiptRow | None, int | None]:
        """Close the open window at the last whole ``interval`` before ``now`` if it holds
        at least one event that is not a receipt. ``sign(start, end, sorted ids, previous
        receipt)`` returns the new receipt's ``(id hex, created_at, root, json)``; it is
        recorded in the same transaction that moves ``closed_until`` to ``end``, so a
        window is never closed without its receipt.

        Returns the receipt (None when there is nothing to commit to yet: the window then
        stays open and grows by whole intervals) and when to try next (None while
        nothing is recorded at all).
        """
        def body() -> tuple[ReceiptRow | None, int | None]:
            start = self.open_window_start()
            if start is None:
                return None, None
            if now < start + interval:
                return None, start + interval
            end = start + (now - start) // interval * interval
            if self.conn.execute("SELECT 1 FROM stored WHERE stored_at>=? AND stored_at<? "
                                 "AND receipt=0 LIMIT 1", (start, end)).fetchone() is None:
                return None, end + interval
            ids = self.window_ids(start, end)
            prev = self.last_receipt()
            rid, created_at, root, js = sign(start, end, ids, prev)
            self.conn.execute("INSERT INTO receipts VALUES (?, ?, ?, ?, ?, ?, ?)",
                              (bytes.fromhex(rid), start, end, len(ids), root, created_at, js))
            self._set_meta("closed_until", end)
            return ReceiptRow(rid, start, end, len(ids), root, created_at, js), end + interval
        return self._transaction(body)

    # --- reading ------------------------------------------------------------------------------

    def stored_at(self, event_id: bytes) -> int | None:
        row = self.conn.execute("SELECT stored_at FROM stored WHERE id=?", (event_id,)).fetchone()
        return row[0] if row else None

    def window_ids(self, start: int, end: int) -> list[bytes]:
        """The ids of a window in leaf order (ascending)."""
        return sorted(r[0] for r in self.conn.execute(
            "SELECT id FROM stored WHERE stored_at>=? AND stored_at<?", (start, end)))

    def receipts_covering(self, stored_at: int) -> list[ReceiptRow]:
        """This hub's receipts whose window holds ``stored_at`` (normally one)."""
        return [_receipt(r) for r in self.conn.execute(
            "SELECT id, start, end, count, root, created_at, json FROM receipts "
            "WHERE end>? AND start<=? ORDER BY created_at, id", (stored_at, stored_at))]

    def last_receipt(self) -> ReceiptRow | None:
        row = self.conn.execute(
            "SELECT id, start, end, count, root, created_at, json FROM receipts "
            "ORDER BY end DESC, created_at DESC LIMIT 1").fetchone()
        return _receipt(row) if row else None

    def receipt(self, receipt_id: str) -> ReceiptRow | None:
        row = self.conn.execute(
            "SELECT id, start, end, count, root, created_at, json FROM receipts WHERE id=?",
            (bytes.fromhex(receipt_id),)).fetchone()
        return _receipt(row) if row else None

    def counts(self) -> dict[str, int]:
        stored = self.conn.execute("SELECT count(*) FROM stored").fetchone()[0]
        receipts = self.conn.execute("SELECT count(*) FROM receipts").fetchone()[0]
        return {"recorded": stored, "receipts": receipts}

    # --- OpenTimestamps -----------------------------------------------------------------------

    def ots_queue(self, receipt_id: str, now: int) -> None:
        self.conn.execute("INSERT OR IGNORE INTO ots(receipt, state, updated_at) "
                          "VALUES (?, 'queued', ?)", (bytes.fromhex(receipt_id), now))

    def ots_rows(self, state: str) -> list[OtsRow]:
        """Rows in ``state``, newest receipt first."""
        return [OtsRow(r[0].hex(), r[1], r[2], r[3], r[4], r[5].hex() if r[5] else None)
                for r in self.conn.execute(
                    "SELECT o.receipt, o.state, o.proof, o.note, o.updated_at, o.nip03 "
                    "FROM ots o LEFT JOIN receipts r ON r.id = o.receipt WHERE o.state=? "
                    "ORDER BY r.end DESC, r.created_at DESC", (state,))]

    def ots_get(self, receipt_id: str) -> OtsRow | None:
        r = self.conn.execute(
            "SELECT receipt, state, proof, note, updated_at, nip03 FROM ots WHERE receipt=?",
            (bytes.fromhex(receipt_id),)).fetchone()
        return OtsRow(r[0].hex(), r[1], r[2], r[3], r[4], r[5].hex() if r[5] else None) if r else None

    def ots_set(self, receipt_id: str, state: str, now: int, *, proof: bytes | None = None,
                note: str | None = None, nip03: str | None = None) -> None:
        self.conn.execute(
            "UPDATE ots SET state=?, updated_at=?, proof=coalesce(?, proof), "
            "note=coalesce(?, note), nip03=coalesce(?, nip03) WHERE receipt=?",
            (state, now, proof, note, bytes.fromhex(nip03) if nip03 else None,
             bytes.fromhex(receipt_id)))
