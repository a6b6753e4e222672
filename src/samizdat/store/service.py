"""Threads around the store: one batching writer, a pool of readers.

Why a writer thread: SQLite allows one writer at a time, and a commit with
``synchronous=FULL`` costs an fsync. Collecting every event that arrived while
the previous commit was running into the next transaction (group commit) keeps
``OK true`` honest (sent only after the commit) and still ingests thousands of
events per second. sqlite3 releases the GIL while SQLite works, so the writer
runs beside the event loop on the second core.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import queue
import threading
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor

from ..nostr.event import Event
from ..nostr.filters import Filter
from .sqlite import FAILED, SaveResult, SQLiteStore

log = logging.getLogger(__name__)

SaveCallback = Callable[[SaveResult], None]
_STOP = object()
_PURGE = object()


class StoreService:
    """Runs a :class:`SQLiteStore` for an asyncio program."""

    def __init__(self, store: SQLiteStore, loop: asyncio.AbstractEventLoop, *,
                 readers: int = 2, max_batch: int = 2000):
        self.store = store
        self.loop = loop
        self.max_batch = max_batch
        self._q: queue.SimpleQueue = queue.SimpleQueue()
        self._readers = ThreadPoolExecutor(readers, thread_name_prefix="store-read")
        self._thread = threading.Thread(target=self._run, name="store-writer", daemon=True)
        self._thread.start()
        self.batches = 0

    # --- writes -------------------------------------------------------------------------------

    def submit(self, event: Event, callback: SaveCallback) -> None:
        """Queue ``event``; ``callback`` runs on the loop after its transaction committed."""
        self._q.put((event, callback))

    async def save(self, event: Event) -> SaveResult:
        fut = self.loop.create_future()
        self.submit(event, fut.set_result)
        return await fut

    async def purge_expired(self) -> int:
        fut = self.loop.create_future()
        self._q.put((_PURGE, fut.set_result))
        return await fut

    def _run(self) -> None:
        store = self.store
        while True:
            item = self._q.get()
            if item is _STOP:
                return
            if item[0] is _PURGE:
                try:
                    n = store.purge_expired()
                except Exception:
                    log.exception("purging expired events failed")
                    n = 0
                self._deliver([item[1]], [n])
                continue
            batch = [item]
            while len(batch) < self.max_batch:
                try:
                    nxt = self._q.get_nowait()
                except queue.Empty:
                    break
                if nxt is _STOP or nxt[0] is _PURGE:
                    self._q.put(nxt)  # handled after this batch
                    break
                batch.append(nxt)
            try:
                results = store.save_many([ev for ev, _ in batch], int(time.time()))
            except Exception:
                log.exception("a write transaction failed; %d events not stored", len(batch))
                results = [FAILED] * len(batch)
            self.batches += 1
            self._deliver([cb for _, cb in batch], results)

    def _deliver(self, callbacks: list[Callable], results: list) -> None:
        def run() -> None:
            for cb, res in zip(callbacks, results, strict=True):
                try:
                    cb(res)
                except Exception:
                    log.exception("save callback failed")

        # RuntimeError: the loop closed during shutdown and nobody is waiting any more.
        with contextlib.suppress(RuntimeError):
            self.loop.call_soon_threadsafe(run)

    # --- reads --------------------------------------------------------------------------------

    async def query(self, filters: list[Filter], default_limit: int | None = None) -> list[str]:
        return await self.loop.run_in_executor(
            self._readers, lambda: self.store.query(filters, None, default_limit)
        )

    async def stream(self, filters: list[Filter], default_limit: int | None,
                     on_rows: Callable[[list[str]], None], chunk: int = 500) -> None:
        """Like :meth:`query`, but hands rows to ``on_rows`` (on the loop) in chunks as the
        reader thread fetches them, so sending overlaps reading."""
        loop = self.loop

        def work() -> None:
            for rows in self.store.query_chunks(filters, None, default_limit, chunk):
                loop.call_soon_threadsafe(on_rows, rows)

        # The loop runs callbacks in the order they were scheduled, and every chunk was
        # scheduled before the executor future completes: when this await returns, all
        # rows have been handed over, so the caller may send EOSE.
        await loop.run_in_executor(self._readers, work)

    async def count(self, filters: list[Filter]) -> int:
        return await self.loop.run_in_executor(self._readers, self.store.count, filters)

    async def sync_items(self, f: Filter | None, max_items: int = 0):
        return await self.loop.run_in_executor(
            self._readers, lambda: self.store.sync_items(f, None, max_items))

    async def get_json(self, ids: list[bytes]) -> list[str]:
        return await self.loop.run_in_executor(self._readers, self.store.get_json, ids)

    # --- lifecycle ----------------------------------------------------------------------------

    def close(self) -> None:
        """Finish queued writes, then stop the threads and close the database."""
        self._q.put(_STOP)
        self._thread.join()
        self._readers.shutdown(wait=True)
        self.store.close()
