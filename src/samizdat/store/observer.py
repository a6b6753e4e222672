"""The observer's derived index, ``observer.sqlite3`` (docs/observer.md). SQL lives here.

Everything in it is rebuilt from the event store (``events.sqlite3``) and the blob store:
it is a cache. :meth:`ObserverIndex.scan_events` reads new events from the event store by
its row id (which only grows), so an index update reads only what was added since.
"""

from __future__ import annotations

import contextlib
import sqlite3
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import Any

import orjson

SCHEMA_VERSION = 1

SCHEMA = """
CREATE TABLE IF NOT EXISTS meta(key TEXT PRIMARY KEY, value TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS reports(
    id TEXT PRIMARY KEY, pubkey TEXT NOT NULL, created_at INTEGER NOT NULL,
    observed_at INTEGER, claimed INTEGER NOT NULL, geohash TEXT NOT NULL,
    doc TEXT NOT NULL
);
CREATE INDEX IF NOT EXISTS reports_pubkey ON reports(pubkey);
CREATE INDEX IF NOT EXISTS reports_claimed ON reports(claimed);
CREATE INDEX IF NOT EXISTS reports_geohash ON reports(geohash);
CREATE TABLE IF NOT EXISTS labels(
    id TEXT PRIMARY KEY, pubkey TEXT NOT NULL, created_at INTEGER NOT NULL,
    report TEXT NOT NULL, value TEXT NOT NULL
);
CREATE INDEX IF NOT EXISTS labels_report ON labels(report);
CREATE TABLE IF NOT EXISTS keys(
    pubkey TEXT PRIMARY KEY, first_seen INTEGER NOT NULL, last_seen INTEGER NOT NULL,
    events INTEGER NOT NULL, reports INTEGER NOT NULL, labels INTEGER NOT NULL
) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS receipts(
    id TEXT PRIMARY KEY, hub TEXT NOT NULL, created_at INTEGER NOT NULL,
    start INTEGER NOT NULL, end INTEGER NOT NULL, count INTEGER NOT NULL,
    root TEXT NOT NULL, place TEXT NOT NULL, prev TEXT,
    leaves INTEGER NOT NULL DEFAULT 0,  -- 0 pending, 1 accepted, -1 refused
    leaves_error TEXT
);
CREATE TABLE IF NOT EXISTS leaf_parts(
    id TEXT PRIMARY KEY, receipt TEXT NOT NULL, hub TEXT NOT NULL,
    idx INTEGER NOT NULL, total INTEGER NOT NULL, ids BLOB NOT NULL
);
CREATE INDEX IF NOT EXISTS leaf_parts_receipt ON leaf_parts(receipt);
CREATE TABLE IF NOT EXISTS included(
    event BLOB NOT NULL, receipt TEXT NOT NULL, PRIMARY KEY (event, receipt)
) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS report_media(
    sha256 TEXT NOT NULL, report TEXT NOT NULL, PRIMARY KEY (sha256, report)
) WITHOUT ROWID;
CREATE INDEX IF NOT EXISTS report_media_report ON report_media(report);
CREATE TABLE IF NOT EXISTS media(
    sha256 TEXT PRIMARY KEY, phash TEXT, facts TEXT NOT NULL
) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS reference(
    sha256 TEXT PRIMARY KEY, name TEXT NOT NULL, phash TEXT, facts TEXT NOT NULL
) WITHOUT ROWID;
"""


class ObserverIndexError(RuntimeError):
    pass


def _connect(path: Path) -> sqlite3.Connection:
    conn = sqlite3.connect(path, isolation_level=None, check_same_thread=False)
    conn.execute("PRAGMA journal_mode=WAL")
    conn.execute("PRAGMA synchronous=NORMAL")  # a cache: rebuilt from the stores if lost
    conn.execute("PRAGMA busy_timeout=60000")
    return conn


class ObserverIndex:
    """Derived tables of one observer directory. Not thread-safe: one per thread, or
    serialise calls (the web console uses one from its executor)."""

    def __init__(self, path: str | Path):
        self.path = Path(path)
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            self._c = _connect(self.path)
            self._c.executescript(SCHEMA)
            v = self._c.execute("PRAGMA user_version").fetchone()[0]
            if v > SCHEMA_VERSION:
                raise ObserverIndexError(f"{self.path} was written by a newer samizdat")
            self._c.execute(f"PRAGMA user_version={SCHEMA_VERSION}")
        except sqlite3.DatabaseError as exc:
            raise ObserverIndexError(
                f"cannot open {self.path}: {exc}; delete it and run "
                "`samizdat observe reindex`") from exc

    def close(self) -> None:
        with contextlib.suppress(sqlite3.Error):
            self._c.close()

    # --- bookkeeping ----------------------------------------------------------------------

    def get_meta(self, key: str, default: str | None = None) -> str | None:
        row = self._c.execute("SELECT value FROM meta WHERE key=?", (key,)).fetchone()
        return row[0] if row else default

    def set_meta(self, key: str, value: object) -> None:
        self._c.execute("INSERT OR REPLACE INTO meta VALUES (?, ?)", (key, str(value)))

    def clear(self) -> None:
        """Empty every derived table (reindex); reference-set entries are kept."""
        with self.transaction():
            for t in ("meta", "reports", "labels", "keys", "receipts", "leaf_parts",
                      "included", "report_media", "media"):
                self._c.execute(f"DELETE FROM {t}")

    @contextlib.contextmanager
    def transaction(self) -> Iterator[None]:
        self._c.execute("BEGIN IMMEDIATE")
        try:
            yield
        except BaseException:
            self._c.execute("ROLLBACK")
            raise
        self._c.execute("COMMIT")

    # --- reading the event store ----------------------------------------------------------

    @staticmethod
    def scan_events(events_db: Path, after_rid: int, kinds: Iterable[int] | None = None,
                    batch: int = 5000) -> Iterator[list[tuple[int, bytes]]]:
        """Batches of (rid, JSON as UTF-8 bytes) of the event store's rows above
        ``after_rid``, in rid order, read-only."""
        conn = sqlite3.connect(f"file:{events_db}?mode=ro", uri=True)
        try:
            conn.execute(f"PRAGMA mmap_size={1 << 30}")
            sql = "SELECT rid, CAST(json AS BLOB) FROM events WHERE rid > ?"
            params: list[Any] = [after_rid]
            if kinds is not None:
                ks = sorted(set(kinds))
                sql += f" AND kind IN ({','.join('?' * len(ks))})"
                params += ks
            cur = conn.execute(sql + " ORDER BY rid", params)
            while rows := cur.fetchmany(batch):
                yield rows
        finally:
            conn.close()

    @staticmethod
    def max_rid(events_db: Path) -> int:
        conn = sqlite3.connect(f"file:{events_db}?mode=ro", uri=True)
        try:
            return conn.execute("SELECT coalesce(max(rid), 0) FROM events").fetchone()[0]
        finally:
            conn.close()

    # --- writes (inside transaction()) ----------------------------------------------------

    def add_reports(self, rows: list[tuple[str, str, int, int | None, int, str, str]],
                    media: list[tuple[str, str]]) -> None:
        """rows: (id, pubkey, created_at, observed_at, claimed, geohash, doc JSON);
        media: (sha256, report id)."""
        self._c.executemany("INSERT OR IGNORE INTO reports VALUES (?,?,?,?,?,?,?)", rows)
        self._c.executemany("INSERT OR IGNORE INTO report_media VALUES (?,?)", media)

    def add_labels(self, rows: list[tuple[str, str, int, str, str]]) -> None:
        self._c.executemany("INSERT OR IGNORE INTO labels VALUES (?,?,?,?,?)", rows)

    def add_keys(self, agg: dict[str, list[int]]) -> None:
        """agg: pubkey -> [first_seen, last_seen, events, reports, labels] to merge in."""
        self._c.executemany(
            "INSERT INTO keys VALUES (?,?,?,?,?,?) ON CONFLICT(pubkey) DO UPDATE SET "
            "first_seen=min(first_seen, excluded.first_seen), "
            "last_seen=max(last_seen, excluded.last_seen), events=events+excluded.events, "
            "reports=reports+excluded.reports, labels=labels+excluded.labels",
            [(k, *v) for k, v in agg.items()])

    def add_receipts(self, rows: list[tuple[str, str, int, int, int, int, str, str,
                                            str | None]]) -> None:
        self._c.executemany(
            "INSERT OR IGNORE INTO receipts(id, hub, created_at, start, end, count, root, "
            "place, prev) VALUES (?,?,?,?,?,?,?,?,?)", rows)

    def add_leaf_parts(self, rows: list[tuple[str, str, str, int, int, bytes]]) -> None:
        self._c.executemany("INSERT OR IGNORE INTO leaf_parts VALUES (?,?,?,?,?,?)", rows)

    def pending_leaf_receipts(self) -> list[tuple]:
        """Receipts whose leaf list is not settled and that have at least one part:
        (id, hub, created_at, start, end, count, root, place, prev)."""
        return self._c.execute(
            "SELECT id, hub, created_at, start, end, count, root, place, prev FROM receipts "
            "WHERE leaves=0 AND id IN (SELECT receipt FROM leaf_parts)").fetchall()

    def leaf_parts(self, receipt: str) -> list[tuple[str, str, str, int, int, bytes]]:
        return self._c.execute("SELECT id, receipt, hub, idx, total, ids FROM leaf_parts "
                               "WHERE receipt=?", (receipt,)).fetchall()

    def settle_leaves(self, receipt: str, ids: list[bytes] | None, error: str | None) -> None:
        """Accept (ids) or refuse (error) a receipt's leaf list."""
        if ids is not None:
            self._c.executemany("INSERT OR IGNORE INTO included VALUES (?, ?)",
                                ((i, receipt) for i in ids))
            self._c.execute("UPDATE receipts SET leaves=1, leaves_error=NULL WHERE id=?",
                            (receipt,))
        else:
            self._c.execute("UPDATE receipts SET leaves=-1, leaves_error=? WHERE id=?",
                            (error, receipt))

    def put_media(self, rows: list[tuple[str, str | None, str]]) -> None:
        """(sha256, phash, facts JSON)."""
        self._c.executemany("INSERT OR REPLACE INTO media VALUES (?,?,?)", rows)

    def put_reference(self, rows: list[tuple[str, str, str | None, str]]) -> None:
        """(sha256, name, phash, facts JSON)."""
        self._c.executemany("INSERT OR REPLACE INTO reference VALUES (?,?,?,?)", rows)

    # --- reads ----------------------------------------------------------------------------

    def media_without_facts(self) -> list[str]:
        return [r[0] for r in self._c.execute(
            "SELECT DISTINCT sha256 FROM report_media WHERE sha256 NOT IN "
            "(SELECT sha256 FROM media)")]

    def report_doc(self, report_id: str) -> str | None:
        row = self._c.execute("SELECT doc FROM reports WHERE id=?", (report_id,)).fetchone()
        return row[0] if row else None

    def report_docs(self, ids: list[str]) -> list[str]:
        out = []
        for k in range(0, len(ids), 500):
            chunk = ids[k:k + 500]
            out += [r[0] for r in self._c.execute(
                f"SELECT doc FROM reports WHERE id IN ({','.join('?' * len(chunk))})", chunk)]
        return out

    def query_reports(self, *, since: int | None = None, until: int | None = None,
                      cell: str | None = None, author: str | None = None,
                      limit: int = 100, offset: int = 0, newest_first: bool = True
                      ) -> list[str]:
        """Report docs (JSON) filtered by claimed time, geohash prefix and author."""
        where, params = [], []
        if since is not None:
            where.append("claimed >= ?")
            params.append(since)
        if until is not None:
            where.append("claimed < ?")
            params.append(until)
        if cell:
            where.append("geohash >= ? AND geohash < ?")
            params += [cell, cell + "~"]
        if author:
            where.append("pubkey = ?")
            params.append(author)
        sql = "SELECT doc FROM reports"
        if where:
            sql += " WHERE " + " AND ".join(where)
        sql += f" ORDER BY claimed {'DESC' if newest_first else 'ASC'}, id LIMIT ? OFFSET ?"
        return [r[0] for r in self._c.execute(sql, [*params, limit, offset])]

    def points(self) -> Iterator[tuple[str, str, int, str]]:
        """(id, pubkey, claimed time, geohash) of every report: what clustering needs."""
        cur = self._c.execute("SELECT id, pubkey, claimed, geohash FROM reports")
        while rows := cur.fetchmany(10000):
            yield from rows

    def labels_on(self, report: str) -> list[tuple[str, str, int, str, str]]:
        return self._c.execute("SELECT id, pubkey, created_at, report, value FROM labels "
                               "WHERE report=?", (report,)).fetchall()

    def labels_on_author(self, pubkey: str) -> list[tuple[str, str, int, str, str]]:
        """Labels on any report of ``pubkey``."""
        return self._c.execute(
            "SELECT l.id, l.pubkey, l.created_at, l.report, l.value FROM labels l "
            "JOIN reports r ON r.id = l.report WHERE r.pubkey=?", (pubkey,)).fetchall()

    def key(self, pubkey: str) -> tuple[str, int, int, int, int, int] | None:
        return self._c.execute("SELECT * FROM keys WHERE pubkey=?", (pubkey,)).fetchone()

    def keys(self, pubkeys: list[str]) -> list[tuple[str, int, int, int, int, int]]:
        out = []
        for k in range(0, len(pubkeys), 500):
            chunk = pubkeys[k:k + 500]
            out += self._c.execute(
                f"SELECT * FROM keys WHERE pubkey IN ({','.join('?' * len(chunk))})",
                chunk).fetchall()
        return out

    def receipts_including(self, event_id: str) -> list[tuple]:
        return self._c.execute(
            "SELECT r.id, r.hub, r.created_at, r.start, r.end, r.count, r.root, r.place, "
            "r.prev FROM included i JOIN receipts r ON r.id = i.receipt WHERE i.event=?",
            (bytes.fromhex(event_id),)).fetchall()

    def earliest_receipt_ends(self, event_ids: list[str]) -> dict[str, int]:
        out: dict[str, int] = {}
        for k in range(0, len(event_ids), 500):
            chunk = [bytes.fromhex(e) for e in event_ids[k:k + 500]]
            for eid, end in self._c.execute(
                    "SELECT i.event, min(r.end) FROM included i JOIN receipts r "
                    f"ON r.id = i.receipt WHERE i.event IN ({','.join('?' * len(chunk))}) "
                    "GROUP BY i.event", chunk):
                out[eid.hex()] = end
        return out

    def receipt_ids(self, receipt: str) -> list[bytes]:
        """The accepted leaf ids of a receipt, in leaf order."""
        return [r[0] for r in self._c.execute(
            "SELECT event FROM included WHERE receipt=? ORDER BY event", (receipt,))]

    def receipts(self) -> list[tuple]:
        return self._c.execute(
            "SELECT id, hub, created_at, start, end, count, root, place, prev, leaves, "
            "leaves_error FROM receipts ORDER BY end, id").fetchall()

    def media_facts(self, shas: list[str]) -> dict[str, str]:
        out = {}
        for k in range(0, len(shas), 500):
            chunk = shas[k:k + 500]
            out.update(self._c.execute(
                f"SELECT sha256, facts FROM media WHERE sha256 IN "
                f"({','.join('?' * len(chunk))})", chunk).fetchall())
        return out

    def phashes(self) -> Iterator[tuple[str, str]]:
        """(sha256, phash) of every archived media item with a perceptual hash."""
        yield from self._c.execute("SELECT sha256, phash FROM media WHERE phash IS NOT NULL")

    def reference_phashes(self) -> list[tuple[str, str, str]]:
        """(sha256, name, phash) of the reference set."""
        return self._c.execute(
            "SELECT sha256, name, phash FROM reference WHERE phash IS NOT NULL").fetchall()

    def reports_with_media(self, shas: list[str]) -> list[tuple[str, str, int]]:
        """(sha256, report id, report created_at) for reports carrying these media."""
        out = []
        for k in range(0, len(shas), 500):
            chunk = shas[k:k + 500]
            out += self._c.execute(
                "SELECT m.sha256, r.id, r.created_at FROM report_media m JOIN reports r "
                f"ON r.id = m.report WHERE m.sha256 IN ({','.join('?' * len(chunk))})",
                chunk).fetchall()
        return out

    def counts(self) -> dict[str, int]:
        c = self._c
        one = lambda sql: c.execute(sql).fetchone()[0]  # noqa: E731
        return {"reports": one("SELECT count(*) FROM reports"),
                "labels": one("SELECT count(*) FROM labels"),
                "keys": one("SELECT count(*) FROM keys"),
                "receipts": one("SELECT count(*) FROM receipts"),
                "receipts_with_leaves": one("SELECT count(*) FROM receipts WHERE leaves=1"),
                "media": one("SELECT count(*) FROM media"),
                "reference": one("SELECT count(*) FROM reference")}

    @staticmethod
    def dumps(obj: object) -> str:
        return orjson.dumps(obj).decode()
