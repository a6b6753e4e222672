"""Read-only SQLite connections, one per thread, closed together.

SQLite connections must not be shared between threads that use them at once, and in
WAL mode every reader sees a consistent snapshot without blocking the writer, so each
reading thread (the store's reader pool, aiohttp's executor) gets its own connection.
"""

from __future__ import annotations

import sqlite3
import threading
from collections.abc import Callable


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
