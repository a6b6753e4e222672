"""SQLite connections as the store opens them, and read-only ones per thread.

SQLite connections must not be shared between threads that use them at once, and in
WAL mode every reader sees a consistent snapshot without blocking the writer, so each
reading thread (the store's reader pool, aiohttp's executor) gets its own connection.
"""

from __future__ import annotations

import sqlite3
import threading
from collections.abc import Callable
from pathlib import Path


def connect(path: Path, readonly: bool, cache_kib: int | None = None) -> sqlite3.Connection:
    """A connection in autocommit mode (transactions are explicit), usable from any
    thread (each is used by one at a time), waiting up to 30 s for a lock; read-only
    connections refuse writes at the SQLite level too."""
    uri = f"file:{path}?mode={'ro' if readonly else 'rwc'}"
    conn = sqlite3.connect(uri, uri=True, isolation_level=None, check_same_thread=False,
                           timeout=30)
    conn.execute("PRAGMA busy_timeout=30000")
    if cache_kib is not None:
        conn.execute(f"PRAGMA cache_size=-{cache_kib}")
        conn.execute("PRAGMA temp_store=MEMORY")
    if readonly:
        conn.execute("PRAGMA query_only=ON")
    return conn


class ReaderPool:
    def __init__(self, connect: Callable[[], sqlite3.Connection]):
        self._connect = connect
        self._local = threading.local()
        self._all: list[sqlite3.Connection] = []
        self._lock = threading.Lock()

    def get(self) -> sqlite3.Connection:
        """This thread's connection, opened on first use."""
        conn = getattr(self._local, "conn", None)
        if conn is None:
            conn = self._connect()
            self._local.conn = conn
            with self._lock:
                self._all.append(conn)
        return conn

    def close(self) -> None:
        with self._lock:
            for c in self._all:
                c.close()
            self._all.clear()
