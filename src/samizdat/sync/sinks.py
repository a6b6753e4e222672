"""Where synced events come from and go to: a store opened by a command, or a running relay.

The sync client only needs four things from the local side: the (created_at, id)
snapshot for negentropy, stored JSON by id, a way to verify-and-store events, and (for
continuous sync) a way to learn about new local events. Two implementations:
:class:`StoreSink` for ``samizdat sync`` (a store file, maybe while a hub runs on it)
and :class:`RelaySink` inside ``samizdat serve --peer`` (events go through the relay's
own verifier and writer, so live subscribers see synced events at once).
"""

from __future__ import annotations

import asyncio
import time
from array import array
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from typing import TYPE_CHECKING, Protocol

from ..nostr.event import Event, InvalidEvent
from ..nostr.filters import Filter
from ..nostr.policy import sync_refusal
from ..store.sqlite import SaveResult, SQLiteStore

if TYPE_CHECKING:
    from ..relay.relay import Relay


class Sink(Protocol):
    async def sync_items(self, f: Filter) -> tuple[array, bytes]: ...

    async def get_json(self, ids: list[bytes]) -> list[str]: ...

    async def ingest(self, events: list[Event]) -> list[SaveResult]:
        """Verify and store; a result per event (``invalid:`` for a bad signature)."""
        ...


def _verify_and_save(store: SQLiteStore, events: list[Event]) -> list[SaveResult]:
    results: list[SaveResult | None] = []
    good: list[Event] = []
    now = int(time.time())
    for ev in events:
        refusal = sync_refusal(ev, now)
        if refusal:
            results.append(SaveResult(False, refusal))
            continue
        try:
            ev.verify()
            results.append(None)
            good.append(ev)
        except InvalidEvent as exc:
            results.append(SaveResult(False, str(exc)))
    saved = iter(store.save_many(good)) if good else iter(())
    return [r if r is not None else next(saved) for r in results]


class StoreSink:
    """A store file used directly (the ``samizdat sync`` command)."""

    def __init__(self, store: SQLiteStore):
        self.store = store
        self._pool = ThreadPoolExecutor(1, thread_name_prefix="sync-store")

    async def _run(self, fn: Callable, *args: object):
        return await asyncio.get_running_loop().run_in_executor(self._pool, fn, *args)

    async def sync_items(self, f: Filter) -> tuple[array, bytes]:
        items = await self._run(self.store.sync_items, f)
        assert items is not None
        return items

    async def get_json(self, ids: list[bytes]) -> list[str]:
        return await self._run(self.store.get_json, ids)

    async def ingest(self, events: list[Event]) -> list[SaveResult]:
        return await self._run(_verify_and_save, self.store, events)

    def close(self) -> None:
        self._pool.shutdown(wait=True)


class RelaySink:
    """The running hub's own pipeline (``samizdat serve --peer``)."""

    def __init__(self, relay: Relay):
        self.relay = relay

    async def sync_items(self, f: Filter) -> tuple[array, bytes]:
        items = await self.relay.store.sync_items(f)
        assert items is not None
        return items

    async def get_json(self, ids: list[bytes]) -> list[str]:
        return await self.relay.store.get_json(ids)

    async def ingest(self, events: list[Event]) -> list[SaveResult]:
        return await asyncio.gather(*(self.relay.accept(ev, origin=self) for ev in events))
