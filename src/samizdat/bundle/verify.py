"""Checking every event of a chunk of JSON lines, on every core.

A chunk is a few MiB of JSON lines (one zstd frame of a bundle, or a slice of a dump).
For each line: JSON, shape (:func:`~samizdat.nostr.event.parse_event`), id, BIP-340
signature, and the copy policy (:func:`~samizdat.nostr.policy.sync_refusal`). The
result is one status byte per event, so the write pass can later skip the bad ones
without anybody holding a million Event objects.

Signature checks dominate (~30 µs each). libsecp256k1 runs without the GIL, so threads
can use both cores; processes avoid the GIL for the Python part too. Both are offered;
docs/decisions.md has the measurement that picked the default. Public keys are cached
per worker: lifting an x-only key onto the curve costs a square root, and a dump holds
many events per author.
"""

from __future__ import annotations

import os
from collections import Counter
from collections.abc import Callable, Iterable, Iterator
from concurrent.futures import Executor, Future, ProcessPoolExecutor, ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any

import orjson
from coincurve import PublicKeyXOnly

from ..nostr.event import InvalidEvent, parse_event, public_key
from ..nostr.filters import index_words
from ..nostr.policy import sync_refusal

OK, INVALID, REFUSED = 0, 1, 2
MAX_EXAMPLES = 5


def event_lines(raw: bytes) -> Iterator[bytes]:
    """The non-blank lines of a chunk; both passes must number events the same way."""
    for line in raw.split(b"\n"):
        if line and not line.isspace():
            yield line


def _key(pubkey: str) -> PublicKeyXOnly:
    try:
        return public_key(pubkey)
    except (ValueError, TypeError) as exc:
        raise InvalidEvent("invalid: pubkey is not a valid secp256k1 x-only key") from exc


@dataclass(slots=True)
class ChunkCheck:
    statuses: bytes
    reasons: dict[str, int] = field(default_factory=dict)
    #: (index of the event within the chunk, event id or "", reason) for the first few.
    examples: list[tuple[int, str, str]] = field(default_factory=list)
    #: With ``words=True``: the search index words of each OK event, in order. Computing
    #: them is the costliest Python step of storing an event, so the workers do it.
    words: list[str] = field(default_factory=list)

    @property
    def invalid(self) -> int:
        return self.statuses.count(INVALID)


def check_chunk(raw: bytes, now: int, words: bool = False) -> ChunkCheck:
    """Status of every event line in ``raw`` (see :func:`event_lines`), and with
    ``words`` the search index words of the good ones."""
    statuses = bytearray()
    reasons: Counter[str] = Counter()
    examples: list[tuple[int, str, str]] = []
    index: list[str] = []
    for i, line in enumerate(event_lines(raw)):
        eid = ""
        try:
            try:
                obj = orjson.loads(line)
            except orjson.JSONDecodeError:
                raise InvalidEvent("invalid: not a JSON event") from None
            ev = parse_event(obj)
            eid = ev.id
            ev.check_id()
            if not _key(ev.pubkey).verify(bytes.fromhex(ev.sig), bytes.fromhex(ev.id)):
                raise InvalidEvent("invalid: signature does not verify")
            refusal = sync_refusal(ev, now)
            if refusal:
                statuses.append(REFUSED)
                reasons[refusal] += 1
                continue
            statuses.append(OK)
            if words:
                index.append(index_words(ev.content))
        except InvalidEvent as exc:
            statuses.append(INVALID)
            reasons[str(exc)] += 1
            if len(examples) < MAX_EXAMPLES:
                examples.append((i, eid, str(exc)))
    return ChunkCheck(bytes(statuses), dict(reasons), examples, index)


def default_workers() -> int:
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except AttributeError:  # not Linux
        return max(1, os.cpu_count() or 1)


class Checker:
    """Runs :func:`check_chunk` over a stream of chunks, in order, a few chunks in flight."""

    def __init__(self, workers: int | None = None, mode: str = "process"):
        self.workers = workers or default_workers()
        self.mode = mode
        self._pool: Executor | None = None

    def _executor(self) -> Executor:
        if self._pool is None:
            if self.mode == "process" and self.workers > 1:
                import multiprocessing

                self._pool = ProcessPoolExecutor(self.workers,
                                                 mp_context=multiprocessing.get_context("fork"))
            else:
                self._pool = ThreadPoolExecutor(self.workers, thread_name_prefix="verify")
        return self._pool

    def start(self) -> None:
        """Create the workers now (processes fork here, not later inside a transaction)."""
        pool = self._executor()
        for f in [pool.submit(int) for _ in range(self.workers)]:
            f.result()

    def map(self, fn: Callable[..., Any], items: Iterable[tuple[Any, tuple[Any, ...]]]
            ) -> Iterator[tuple[Any, Any]]:
        """For each ``(meta, args)``: ``(meta, fn(*args))`` in input order, with at most
        ``2 * workers + 1`` calls in flight (so memory stays a few chunks, whatever the size)."""
        pool = self._executor()
        window: list[tuple[Any, Future]] = []
        try:
            for meta, args in items:
                window.append((meta, pool.submit(fn, *args)))
                if len(window) > 2 * self.workers:
                    head, fut = window.pop(0)
                    yield head, fut.result()
            while window:
                head, fut = window.pop(0)
                yield head, fut.result()
        finally:
            for _, fut in window:
                fut.cancel()

    def close(self) -> None:
        if self._pool is not None:
            self._pool.shutdown(wait=True, cancel_futures=True)
            self._pool = None
