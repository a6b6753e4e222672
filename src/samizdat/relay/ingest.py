"""Signature verification off the event loop, in batches.

Verifying a BIP-340 signature is the most expensive step of accepting an
event (~35 µs). libsecp256k1 runs without the GIL (coincurve calls it through
cffi), so verification in a worker thread uses the second core while the loop
keeps reading sockets. Handing one event at a time to an executor would cost
about as much as the verification itself, so events that arrive within one
loop iteration travel together as a batch.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor

from ..nostr.event import Event, InvalidEvent
from ..nostr.filters import index_words

VerifyCallback = Callable[[Event, str | None], None]


def verify_batch(events: list[Event]) -> list[str | None]:
    """For each event: None when the id and signature hold, else the rejection reason.

    Valid events also get their search index words here, so the single writer thread,
    the pipeline's one sequential stage, does not have to.
    """
    out: list[str | None] = []
    for ev in events:
        try:
            ev.verify()
            ev.words = index_words(ev.content)
            out.append(None)
        except InvalidEvent as exc:
            out.append(str(exc))
    return out


class Verifier:
    def __init__(self, loop: asyncio.AbstractEventLoop, threads: int = 2, max_batch: int = 512):
        self.loop = loop
        self.max_batch = max_batch
        self._pool = ThreadPoolExecutor(threads, thread_name_prefix="verify")
        self._pending: list[tuple[Event, VerifyCallback]] = []
        self._urgent: list[tuple[Event, VerifyCallback]] = []
        self._scheduled = False

    def submit(self, event: Event, callback: VerifyCallback, priority: bool = False) -> None:
        """``callback(event, error)`` runs on the loop once the event is checked.

        ``priority`` events travel in their own small batch, so they are not queued
        behind a flooding client's hundreds.
        """
        (self._urgent if priority else self._pending).append((event, callback))
        if len(self._pending) >= self.max_batch:
            self._flush()
        elif not self._scheduled:
            self._scheduled = True
            self.loop.call_soon(self._flush)

    def _flush(self) -> None:
        self._scheduled = False
        for batch in (self._urgent, self._pending):
            if batch:
                self._send(batch)
        self._urgent, self._pending = [], []

    def _send(self, batch: list[tuple[Event, VerifyCallback]]) -> None:
        fut = self.loop.run_in_executor(self._pool, verify_batch, [ev for ev, _ in batch])
        fut.add_done_callback(lambda f: self._done(batch, f))

    @staticmethod
    def _done(batch: list[tuple[Event, VerifyCallback]], fut: asyncio.Future) -> None:
        if fut.cancelled():
            return
        exc = fut.exception()
        results = [f"error: verification failed ({exc})"] * len(batch) if exc else fut.result()
        for (ev, cb), err in zip(batch, results, strict=True):
            cb(ev, err)

    def close(self) -> None:
        self._pool.shutdown(wait=True, cancel_futures=True)
