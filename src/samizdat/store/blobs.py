"""The Blossom blob index: what the media store holds and who owns each blob (SQLite).

The blobs themselves are files (see :mod:`samizdat.blobs.store`); this index is the
source of truth for which of them exist: a file without a row is invisible (a crash
between the file's rename and the commit leaves one; the next upload of the same
bytes takes it over). It lives in its own database, ``DATA/blobs.sqlite3``, so blob
traffic never waits for the event writer and the event store's schema stays its own.

Methods are synchronous and thread-safe: writes go through one connection under a
lock, reads use one read-only connection per thread (WAL: readers never wait for the
writer). Callers in asyncio run them in a thread.
"""

from __future__ import annotations

import contextlib
import sqlite3
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

from .readers import ReaderPool, connect

SCHEMA_VERSION = 1

SCHEMA = """
CREATE TABLE IF NOT EXISTS blobs(
    sha256 BLOB PRIMARY KEY,
    size INTEGER NOT NULL,
    type TEXT NOT NULL,
    uploaded INTEGER NOT NULL
) WITHOUT ROWID;
CREATE INDEX IF NOT EXISTS blobs_uploaded ON blobs(uploaded, sha256);
CREATE TABLE IF NOT EXISTS owners(
    pubkey BLOB NOT NULL,
    sha256 BLOB NOT NULL,
    added INTEGER NOT NULL,
    PRIMARY KEY (pubkey, sha256)
) WITHOUT ROWID;
CREATE INDEX IF NOT EXISTS owners_sha256 ON owners(sha256);
"""


class BlobIndexError(RuntimeError):
    """The index cannot be opened or used; the message says what to do."""


@dataclass(frozen=True, slots=True)
class BlobRecord:
    sha256: str
    size: int
    type: str
    uploaded: int


@dataclass(frozen=True, slots=True)
class Removal:
    """Result of :meth:`BlobIndex.remove_owner`."""

    was_owner: bool
    # No owner is left: the row is gone and the caller removes the file.
    blob_gone: bool


def _record(row: tuple[bytes, int, str, int]) -> BlobRecord:
    return BlobRecord(row[0].hex(), row[1], row[2], row[3])


class BlobIndex:
    def __init__(self, path: str | Path, synchronous: str = "FULL"):
        self.path = Path(path)
        if synchronous.upper() not in ("FULL", "NORMAL", "EXTRA"):
            raise BlobIndexError(f"synchronous must be FULL, NORMAL or EXTRA, not {synchronous!r}")
        self._lock = threading.Lock()
        self._readers = ReaderPool(lambda: connect(self.path, readonly=True))
        self._closed = False
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            self._w = connect(self.path, readonly=False)
            self._w.execute("PRAGMA journal_mode=WAL")
            self._w.execute(f"PRAGMA synchronous={synchronous.upper()}")
            version = self._w.execute("PRAGMA user_version").fetchone()[0]
            if version > SCHEMA_VERSION:
                raise BlobIndexError(
                    f"{self.path} was written by a newer samizdat (schema {version}); "
                    "upgrade samizdat"
                )
            self._w.executescript(SCHEMA)
            self._w.execute(f"PRAGMA user_version={SCHEMA_VERSION}")
        except sqlite3.DatabaseError as exc:
            raise BlobIndexError(
                f"cannot open the blob index {self.path}: {exc}. If it is damaged, move it "
                "aside: the blobs stay on disk but are hidden until uploaded again."
            ) from exc

    def close(self) -> None:
        with self._lock:
            if self._closed:
                return
            self._closed = True
            self._readers.close()
            with contextlib.suppress(sqlite3.Error):
                self._w.execute("PRAGMA optimize")
            self._w.close()

    def _reader(self) -> sqlite3.Connection:
        return self._readers.get()

    # --- reads ------------------------------------------------------------------------------

    @contextlib.contextmanager
    def _transaction(self) -> Iterator[sqlite3.Connection]:
        """The writer connection inside ``BEGIN IMMEDIATE`` … ``COMMIT`` (rolled back on
        any error), one thread at a time."""
        with self._lock:
            w = self._w
            w.execute("BEGIN IMMEDIATE")
            try:
                yield w
                w.execute("COMMIT")
            except BaseException:
                w.execute("ROLLBACK")
                raise

    def get(self, sha256: str) -> BlobRecord | None:
        row = self._reader().execute(
            "SELECT sha256, size, type, uploaded FROM blobs WHERE sha256=?",
            (bytes.fromhex(sha256),),
        ).fetchone()
        return _record(row) if row else None

    def owners(self, sha256: str) -> list[str]:
        rows = self._reader().execute(
            "SELECT pubkey FROM owners WHERE sha256=? ORDER BY pubkey", (bytes.fromhex(sha256),)
        ).fetchall()
        return [r[0].hex() for r in rows]

    def list(self, pubkey: str, *, since: int | None = None, until: int | None = None,
             cursor: str | None = None, limit: int = 100) -> list[BlobRecord] | None:
        """A pubkey's blobs, newest upload first (ties: highest sha256 first).

        ``cursor`` is the sha256 of the last blob of the previous page; it is not
        included. Returns None when the cursor names no blob of this pubkey.
        """
        conn = self._reader()
        pk = bytes.fromhex(pubkey)
        sql = ("SELECT b.sha256, b.size, b.type, b.uploaded FROM owners o "
               "JOIN blobs b ON b.sha256 = o.sha256 WHERE o.pubkey = ?")
        args: list[object] = [pk]
        if cursor is not None:
            row = conn.execute(
                "SELECT b.uploaded FROM owners o JOIN blobs b ON b.sha256 = o.sha256 "
                "WHERE o.pubkey = ? AND o.sha256 = ?", (pk, bytes.fromhex(cursor))
            ).fetchone()
            if row is None:
                return None
            sql += " AND (b.uploaded, b.sha256) < (?, ?)"
            args += [row[0], bytes.fromhex(cursor)]
        if since is not None:
            sql += " AND b.uploaded >= ?"
            args.append(since)
        if until is not None:
            sql += " AND b.uploaded <= ?"
            args.append(until)
        sql += " ORDER BY b.uploaded DESC, b.sha256 DESC LIMIT ?"
        args.append(limit)
        return [_record(r) for r in conn.execute(sql, args).fetchall()]

    def stats(self) -> tuple[int, int]:
        """(number of blobs, their total size in bytes)."""
        row = self._reader().execute("SELECT count(*), coalesce(sum(size), 0) FROM blobs").fetchone()
        return row[0], row[1]

    # --- writes -----------------------------------------------------------------------------

    def add(self, sha256: str, size: int, mime: str, pubkey: str,
            now: int | None = None) -> tuple[BlobRecord, bool]:
        """Record a blob (if new) and ``pubkey`` as one of its owners, in one transaction.

        Returns the stored record (an existing blob keeps its first type and upload
        time) and whether the blob row was created now.
        """
        now = int(time.time()) if now is None else now
        sha = bytes.fromhex(sha256)
        with self._transaction() as w:
            cur = w.execute(
                "INSERT INTO blobs(sha256, size, type, uploaded) VALUES (?, ?, ?, ?) "
                "ON CONFLICT(sha256) DO NOTHING", (sha, size, mime, now))
            created = cur.rowcount == 1
            w.execute("INSERT INTO owners(pubkey, sha256, added) VALUES (?, ?, ?) "
                      "ON CONFLICT DO NOTHING", (bytes.fromhex(pubkey), sha, now))
            row = w.execute("SELECT sha256, size, type, uploaded FROM blobs WHERE sha256=?",
                            (sha,)).fetchone()
        return _record(row), created

    def add_owner(self, sha256: str, pubkey: str, now: int | None = None) -> BlobRecord | None:
        """Add an owner to a blob that is already indexed; None if it is not (any more)."""
        now = int(time.time()) if now is None else now
        sha = bytes.fromhex(sha256)
        with self._transaction() as w:
            row = w.execute("SELECT sha256, size, type, uploaded FROM blobs WHERE sha256=?",
                            (sha,)).fetchone()
            if row is not None:
                w.execute("INSERT INTO owners(pubkey, sha256, added) VALUES (?, ?, ?) "
                          "ON CONFLICT DO NOTHING", (bytes.fromhex(pubkey), sha, now))
        return _record(row) if row else None

    def remove_owner(self, sha256: str, pubkey: str) -> Removal:
        """Drop ``pubkey``'s ownership; the blob's row goes with its last owner."""
        sha = bytes.fromhex(sha256)
        with self._transaction() as w:
            cur = w.execute("DELETE FROM owners WHERE pubkey=? AND sha256=?",
                            (bytes.fromhex(pubkey), sha))
            was_owner = cur.rowcount == 1
            gone = False
            if was_owner and w.execute("SELECT 1 FROM owners WHERE sha256=? LIMIT 1",
                                       (sha,)).fetchone() is None:
                w.execute("DELETE FROM blobs WHERE sha256=?", (sha,))
                gone = True
        return Removal(was_owner, gone)
