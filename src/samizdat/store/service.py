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
import threading
import time
from collections import deque
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from typing import TypeVar

from ..nostr.event import Event
from ..nostr.filters import Filter
from .sqlite import FAILED, SaveResult, SQLiteStore

T = TypeVar("T")

log = logging.getLogger(__name__)

SaveCallback = Callable[[SaveResult], None]


class StoreService:
    """Runs a :class:`SQLiteStore` for an asyncio program."""

    #: Regular-lane events allowed into a transaction that carries priority events, so
    #: that a light client's event never waits behind one huge commit.
    MIXED_BATCH = 200

    def __init__(self, store: SQLiteStore, loop: asyncio.AbstractEventLoop, *,
                 readers: int = 2, max_batch: int = 2000):
        self.store = store
        self.loop = loop
        self.max_batch = max_batch
        self._cv = threading.Condition()
        self._hi: deque[tuple[Event, SaveCallback]] = deque()  # clients with little in flight
        self._lo: deque[tuple[Event, SaveCallback]] = deque()  # bulk and busy clients
        self._jobs: list[tuple[Callable, Callable, Callable]] = []
        self._stopping = False
        self._readers = ThreadPoolExecutor(readers, thread_name_prefix="store-read")
        self._thread = threading.Thread(target=self._run, name="store-writer", daemon=True)
        self._thread.start()
        self.batches = 0

    # --- writes -------------------------------------------------------------------------------

    def submit(self, event: Event, callback: SaveCallback, priority: bool = False) -> None:
        """Queue ``event``; ``callback`` runs on the loop after its transaction committed.

        ``priority`` events (from clients with few events in flight) go into the next
        transaction ahead of bulk traffic, so one client's flood cannot make everybody
        else wait for its backlog.
        """
        with self._cv:
            (self._hi if priority else self._lo).append((event, callback))
            self._cv.notify()

    async def save(self, event: Event) -> SaveResult:
        fut = self.loop.create_future()
        self.submit(event, fut.set_result)
        return await fut

    async def purge_expired(self) -> int:
        try:
            return await self.on_writer(self.store.purge_expired)
        except Exception:  # logged by the writer; the next round tries again
            return 0

    async def outside_writes(self, limit: int) -> list[str] | None:
        """See :meth:`SQLiteStore.outside_writes`."""
        return await self.on_writer(lambda: self.store.outside_writes(limit))

    async def on_writer(self, job: Callable[[], T]) -> T:
        """Run ``job`` on the writer thread, between two write transactions."""
        fut = self.loop.create_future()
        with self._cv:
            self._jobs.append((job, fut.set_result, fut.set_exception))
            self._cv.notify()
        return await fut

    def _next_batch(self) -> tuple[list[tuple[Event, SaveCallback]], list[tuple]] | None:
        with self._cv:
            while not (self._hi or self._lo or self._jobs or self._stopping):
                self._cv.wait()
            if not (self._hi or self._lo or self._jobs):
                return None  # stopping, and everything queued is written
            jobs, self._jobs = self._jobs, []
            batch: list[tuple[Event, SaveCallback]] = []
            while self._hi and len(batch) < self.max_batch:
                batch.append(self._hi.popleft())
            room = self.max_batch - len(batch)
            if batch:
                room = min(room, self.MIXED_BATCH)
            while self._lo and room > 0:
                batch.append(self._lo.popleft())
                room -= 1
            return batch, jobs

    def _run(self) -> None:
        store = self.store
        while (work := self._next_batch()) is not None:
            batch, jobs = work
            if batch:
                try:
                    results = store.save_many([ev for ev, _ in batch], int(time.time()))
                except Exception:
                    log.exception("a write transaction failed; %d events not stored",
                                  len(batch))
                    results = [FAILED] * len(batch)
                self.batches += 1
                self._deliver([cb for _, cb in batch], results)
            for job, done, failed in jobs:
                try:
                    self._deliver([done], [job()])
                except Exception as exc:
                    log.exception("a store job failed")
                    self._deliver([failed], [exc])

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
        with self._cv:
            self._stopping = True
            self._cv.notify()
        self._thread.join()
        self._readers.shutdown(wait=True)
        self.store.close()
