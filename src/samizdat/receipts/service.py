"""The running hub's receipts: record when each event was stored, publish a receipt at
the end of every window, and (optionally) anchor receipts with OpenTimestamps.

- Every event the relay accepts (from clients, peers, and imports it replays) reaches
  :meth:`ReceiptService.on_event` through ``Relay.listeners``; the id and the time are
  queued on the loop and appended to the receipts log by one thread every half second.
- At each multiple of the interval the window since the last receipt is closed: its ids
  are sorted, the Merkle root computed and the receipt signed, in the same transaction
  that records it (one thread, off the loop); then the receipt goes through
  ``Relay.accept`` like a synced event, so it is stored, sent to subscribers and peers,
  and exported in bundles; right after it, its leaf list (kind 3042, :mod:`.leaves`:
  the ids behind the root, so observers need not ask this hub) goes the same way.
- Receipts and leaf lists (this hub's or other hubs') are recorded as "receipts": a
  window holding only those gets no receipt, else syncing hubs would answer each other.
- At start, and whenever another process stored more events than the relay replays
  live, a catch-up scan records every stored id the log does not know, at the time of
  the scan (later than their real arrival, never earlier).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import threading
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from typing import TYPE_CHECKING, TypeVar

import orjson

from ..nostr.event import Event, parse_event
from ..nostr.filters import Filter
from ..nostr.kinds import Storage, storage_of
from ..store.receipts import RECEIPTS_FILE, ReceiptLog, ReceiptRow
from . import ots
from .leaves import LEAVES_KIND, build_leaf_events
from .merkle import MerkleTree
from .receipt import RECEIPT_KIND, build_receipt

if TYPE_CHECKING:
    from coincurve import PrivateKey

    from ..relay.relay import Relay

T = TypeVar("T")
log = logging.getLogger(__name__)
#: Kinds recorded as "receipts" in the log: a window holding only these gets no receipt.
RECEIPT_KINDS = frozenset({RECEIPT_KIND, LEAVES_KIND})


def sign_window(key: PrivateKey, place: str, start: int, end: int, ids: list[bytes],
                prev: ReceiptRow | None, created_at: int) -> tuple[Event, bytes, list[Event]]:
    """A window's receipt, its Merkle root and its leaf list, for ``ids`` in leaf order.
    What a hub publishes at the end of a window (also used by ``samizdat demo scenario``,
    which plays hubs on a simulated clock)."""
    tree = MerkleTree(ids)
    ev = build_receipt(key, start, end, len(ids), tree.root, place=place,
                       prev=prev.id if prev else None, created_at=created_at)
    return ev, tree.root, build_leaf_events(key, ev, ids)


class ReceiptService:
    FLUSH_SECONDS = 0.5
    #: OpenTimestamps: how often queued receipts are submitted (when calendars fail, this
    #: is the retry period) and how often pending proofs are upgraded (a Bitcoin
    #: attestation takes a few hours to appear).
    OTS_SUBMIT_SECONDS = 300.0
    OTS_UPGRADE_SECONDS = 3600.0
    OTS_TIMEOUT = 10.0

    def __init__(self, relay: Relay):
        self.relay = relay
        self.cfg = relay.cfg.receipts
        self.interval = self.cfg.interval_seconds
        self.path = relay.cfg.data_dir / RECEIPTS_FILE
        self.loop = relay.loop
        self._pool = ThreadPoolExecutor(1, thread_name_prefix="receipts")
        self._pending: list[tuple[bytes, int, int]] = []
        self._tasks: list[asyncio.Task] = []
        self._catch_up: asyncio.Task | None = None
        self._catch_up_again = False
        self._ots_failing = False
        self._ots_upgraded = 0.0
        self._clock_warned = False
        self.log: ReceiptLog | None = None
        self.last: ReceiptRow | None = None
        self.published = 0
        self._leaves: dict[str, list[Event]] = {}  # receipt id -> leaf list, until accepted

    def _run(self, fn: Callable[..., T], *args: object) -> asyncio.Future[T]:
        return self.loop.run_in_executor(self._pool, fn, *args)

    # --- lifecycle ----------------------------------------------------------------------------

    async def start(self) -> None:
        self.log = await self._run(ReceiptLog, self.path)
        await self._run(self.log.set_interval, self.interval)
        self.last = await self._run(self.log.last_receipt)
        self.relay.listeners.append(self.on_event)
        self.relay.missed_writes_hooks.append(self.request_catch_up)
        if self.last is not None:  # stored before a crash that came before its accept?
            await self._accept(self.last.json)
            # Its leaf list again (same ids: an event id does not depend on the signature).
            last = self.last
            ids = await self._run(self.log.window_ids, last.start, last.end)
            await self._accept_leaves(self._leaf_events(last.json, ids))
        self._tasks = [self.loop.create_task(self._flush_loop()),
                       self.loop.create_task(self._tick_loop())]
        if self.cfg.opentimestamps:
            self._tasks.append(self.loop.create_task(self._ots_loop()))
        self.request_catch_up()

    async def stop(self) -> None:
        tasks = [*self._tasks, *([self._catch_up] if self._catch_up else [])]
        for t in tasks:
            t.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        with contextlib.suppress(ValueError):
            self.relay.listeners.remove(self.on_event)
        if self.log is not None:
            with contextlib.suppress(Exception):
                await self.flush()
            self._pool.submit(self.log.close)
        self._pool.shutdown(wait=True)

    def status(self) -> dict[str, object]:
        return {"interval_seconds": self.interval, "place": self.cfg.place,
                "published_since_start": self.published,
                "last_receipt": self.last.id if self.last else None,
                "last_window_end": self.last.end if self.last else None}

    # --- recording ----------------------------------------------------------------------------

    def on_event(self, ev: Event, origin: object | None) -> None:
        """Relay listener: an event was just committed (or broadcast, if ephemeral)."""
        if storage_of(ev.kind) is Storage.EPHEMERAL:
            return
        self._pending.append((bytes.fromhex(ev.id), int(time.time()),
                              int(ev.kind in RECEIPT_KINDS)))

    async def flush(self) -> None:
        if self._pending and self.log is not None:
            rows, self._pending = self._pending, []
            await self._run(self.log.append, rows)

    async def _flush_loop(self) -> None:
        while True:
            await asyncio.sleep(self.FLUSH_SECONDS)
            try:
                await self.flush()
            except Exception:
                log.exception("could not record stored events in the receipts log")

    def request_catch_up(self) -> None:
        """Run :meth:`catch_up` soon; once more after the current one if it is running
        (its snapshot of the store may predate what prompted this request)."""
        self._catch_up_again = True
        if self._catch_up is None or self._catch_up.done():
            self._catch_up = self.loop.create_task(self._catch_up_loop())

    async def _catch_up_loop(self) -> None:
        while self._catch_up_again:
            self._catch_up_again = False
            try:
                await self.catch_up()
            except Exception:
                log.exception("receipts: the catch-up scan failed; it runs again at the "
                              "next start")

    async def catch_up(self) -> int:
        """Record every stored event the log lacks (stored while the hub was not running,
        or by a large import), as stored now."""
        assert self.log is not None
        started = time.monotonic()
        items = await self.relay.store.sync_items(None)
        at = int(time.time())
        receipts = await self.relay.store.sync_items(Filter(kinds=RECEIPT_KINDS))
        if items is None or receipts is None:
            return 0
        rids = receipts[1]
        receipt_ids = {rids[k:k + 32] for k in range(0, len(rids), 32)}
        n = await self._run(self.log.catch_up, items[1], receipt_ids, at)
        if n:
            log.info("receipts: recorded %d stored events that the receipts log did not "
                     "know (%.1fs); the next receipt includes them", n,
                     time.monotonic() - started)
        return n

    # --- publishing ---------------------------------------------------------------------------

    async def _tick_loop(self) -> None:
        next_due: int | None = None
        while True:
            now = time.time()
            # Nothing recorded yet: look again soon (the first event starts the window).
            wait = (next_due - now + 0.05) if next_due is not None else min(self.interval, 5)
            await asyncio.sleep(max(wait, 0.05))
            try:
                _, next_due = await self.publish()
            except Exception:
                next_due = None
                log.exception("could not publish a receipt; trying again shortly")

    async def publish(self, now: float | None = None) -> tuple[ReceiptRow | None, int | None]:
        """Close the open window at the last whole interval before ``now`` if it holds
        events; returns the receipt published (or None) and when the next window closes.
        Windows are contiguous and ``interval`` long, counted from this hub's first
        recorded event (not aligned to the wall clock)."""
        assert self.log is not None
        now = int(time.time() if now is None else now)
        rows, self._pending = self._pending, []
        log_ = self.log

        def job() -> tuple[ReceiptRow | None, int | None, int, list[Event]]:
            if rows:
                log_.append(rows)
            try:
                row, next_due = log_.close_window(now, self.interval, self._sign)
            except BaseException:
                self._leaves.clear()
                raise
            leaves = self._leaves.pop(row.id, []) if row is not None else []
            self._leaves.clear()
            return row, next_due, log_.closed_until, leaves

        row, next_due, closed_until, leaves = await self._run(job)
        if now < closed_until and not self._clock_warned:
            self._clock_warned = True
            log.warning("the system clock (%s) is behind the end of the last receipt's window; "
                        "receipts pause until it passes it. Is the clock right?",
                        time.strftime("%Y-%m-%d %H:%M:%S UTC", time.gmtime(now)))
        if row is None:
            return None, next_due
        self.last = row
        self.published += 1
        log.info("receipt %s: %d events stored in [%d, %d)", row.id[:12], row.count,
                 row.start, row.end)
        await self._accept(row.json)
        await self._accept_leaves(leaves)
        if self.cfg.opentimestamps:
            await self._run(self.log.ots_queue, row.id, int(time.time()))
        return row, next_due

    def _sign(self, start: int, end: int, ids: list[bytes], prev: ReceiptRow | None
              ) -> tuple[str, int, bytes, str]:
        ev, root, leaves = sign_window(self.relay.hub_key, self.cfg.place, start, end, ids,
                                       prev, max(int(time.time()), end))
        # The leaf list is signed here too (same thread), and published after the receipt.
        self._leaves[ev.id] = leaves
        return ev.id, ev.created_at, root, ev.to_json()

    def _leaf_events(self, receipt_json: str, ids: list[bytes]) -> list[Event]:
        if not ids:
            return []
        return build_leaf_events(self.relay.hub_key, parse_event(orjson.loads(receipt_json)),
                                 ids)

    async def _accept_leaves(self, leaves: list[Event]) -> None:
        for ev in leaves:
            await self._accept_event(ev)

    async def _accept(self, js: str) -> None:
        await self._accept_event(parse_event(orjson.loads(js)))

    async def _accept_event(self, ev: Event) -> None:
        res = await self.relay.accept(ev)
        if not res.accepted:
            log.error("the hub's own event %s was refused by its store: %s", ev.id,
                      res.message)

    # --- OpenTimestamps -----------------------------------------------------------------------

    async def _ots_loop(self) -> None:
        while True:
            try:
                await self.ots_round()
            except Exception:
                log.exception("OpenTimestamps round failed")
            await asyncio.sleep(self.OTS_SUBMIT_SECONDS)

    async def ots_round(self, upgrade: bool | None = None) -> None:
        """Submit the newest queued receipt (older queued ones are covered by its ``prev``
        chain) and, at most every OTS_UPGRADE_SECONDS (or if ``upgrade``), upgrade
        pending proofs; a proof that reached Bitcoin is published as a NIP-03 event."""
        assert self.log is not None
        calendars = self.cfg.ots_calendars
        queued = await self._run(self.log.ots_rows, "queued")
        if queued:
            newest = queued[0]
            proof, errors = await self._network(
                ots.submit, bytes.fromhex(newest.receipt), calendars, self.OTS_TIMEOUT)
            now = int(time.time())
            if proof is None:
                if not self._ots_failing:
                    log.warning("OpenTimestamps: no calendar reachable (%s). %d receipt(s) "
                                "wait; the newest is submitted when a calendar answers "
                                "(trying every %d s)", "; ".join(errors), len(queued),
                                self.OTS_SUBMIT_SECONDS)
                self._ots_failing = True
            else:
                if self._ots_failing:
                    log.info("OpenTimestamps: calendars reachable again")
                self._ots_failing = False
                log.info("OpenTimestamps: receipt %s submitted to %d of %d calendars",
                         newest.receipt[:12], len(calendars) - len(errors), len(calendars))

                def store(newest=newest, proof=proof, older=queued[1:]) -> None:
                    self.log.ots_set(newest.receipt, "pending", now, proof=proof)
                    for row in older:
                        self.log.ots_set(row.receipt, "covered", now, note=newest.receipt)

                await self._run(store)
        due = time.monotonic() - self._ots_upgraded >= self.OTS_UPGRADE_SECONDS
        if upgrade or (upgrade is None and due):
            self._ots_upgraded = time.monotonic()
            for row in await self._run(self.log.ots_rows, "pending"):
                await self._ots_upgrade(row.receipt, row.proof or b"")

    def _network(self, fn: Callable[..., T], *args: object) -> asyncio.Future[T]:
        """Run a blocking calendar request in a daemon thread: a calendar that does not
        answer (packets dropped at the border) must not hold up the hub's shutdown."""
        fut: asyncio.Future[T] = self.loop.create_future()

        def done(setter: Callable[[object], None], value: object) -> None:
            if not fut.done():
                setter(value)

        def run() -> None:
            try:
                outcome: tuple = (fut.set_result, fn(*args))
            except Exception as exc:
                outcome = (fut.set_exception, exc)
            with contextlib.suppress(RuntimeError):  # the hub stopped meanwhile
                self.loop.call_soon_threadsafe(done, *outcome)

        threading.Thread(target=run, name="opentimestamps", daemon=True).start()
        return fut

    async def _ots_upgrade(self, receipt_id: str, proof: bytes) -> None:
        assert self.log is not None
        new, changed, errors = await self._network(
            ots.upgrade, proof, self.cfg.ots_calendars, self.OTS_TIMEOUT)
        if not changed:
            log.debug("OpenTimestamps: receipt %s not anchored yet (%s)", receipt_id[:12],
                      "; ".join(errors))
            return
        btc = ots.bitcoin_only(new)
        now = int(time.time())
        if btc is None:
            await self._run(lambda: self.log.ots_set(receipt_id, "pending", now, proof=new))
            return
        ev = ots.build_nip03(self.relay.hub_key, receipt_id, RECEIPT_KIND, btc)
        await self._run(lambda: self.log.ots_set(receipt_id, "complete", now, proof=new,
                                                 nip03=ev.id))
        await self._accept(ev.to_json())
        heights = [h for h, _ in ots.bitcoin_attestations(btc)]
        log.info("OpenTimestamps: receipt %s anchored in Bitcoin block %s; NIP-03 event %s",
                 receipt_id[:12], heights[0], ev.id[:12])
