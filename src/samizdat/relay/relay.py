"""The relay's shared state: store, verifier, live subscriptions, per-IP accounting."""

from __future__ import annotations

import asyncio
import logging
import time
from collections import Counter
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import orjson
from coincurve import PrivateKey

from ..config import Config
from ..nostr import messages as m
from ..nostr.event import Event, parse_event
from ..nostr.keys import pubkey_of
from ..nostr.policy import sync_refusal
from ..store.service import StoreService
from ..store.sqlite import SaveResult, SQLiteStore
from .connection import Connection, Subscription, normalise_url_host
from .ingest import Verifier
from .ratelimit import PerIP

log = logging.getLogger(__name__)


class Relay:
    def __init__(self, cfg: Config, hub_key: PrivateKey, loop: asyncio.AbstractEventLoop):
        self.cfg = cfg
        self.hub_key = hub_key
        self.pubkey = pubkey_of(hub_key)
        self.loop = loop
        self.started = time.time()
        lim = cfg.limits
        self.codec_limits = m.Limits(
            max_subid_length=lim.max_subid_length,
            max_filters=lim.max_filters,
            max_filter_values=lim.max_filter_values,
            max_limit=lim.max_limit,
            default_limit=lim.default_limit,
            max_event_tags=lim.max_event_tags,
            max_content_length=lim.max_content_length,
            max_tag_value_length=lim.max_tag_value_length,
        )
        self.store = StoreService(SQLiteStore(cfg.db_path, cfg.store.synchronous), loop,
                                  readers=cfg.store.readers)
        self.verifier = Verifier(loop)
        # Negentropy reconciliation is pure Python: one thread keeps it off the loop.
        self.neg_pool = ThreadPoolExecutor(1, thread_name_prefix="negentropy")
        self.connections: set[Connection] = set()
        self.subscriptions: set[Subscription] = set()
        self.per_ip: dict[str, PerIP] = {}
        self.allowed_pubkeys = frozenset(cfg.auth.allowed_pubkeys)
        self.auth_hosts = {h for h in map(normalise_url_host, cfg.server.public_urls) if h}
        self.stats: Counter[str] = Counter()
        self.listeners: list[Callable[[Event, object | None], None]] = []
        self.peers: Any = None  # sync.peers.PeerManager when peers are configured
        self.tls_ca_der: bytes | None = None  # the hub's CA certificate, served at /ca.crt
        self.access: Any = None  # lan.Access: addresses, URLs, TLS fingerprint (set by hub.py)
        self.receipts: Any = None  # receipts.service.ReceiptService (set by hub.py)
        # Called when another process stored more events than pass_on_outside_writes
        # replays (the receipts log then records them by a scan of the store).
        self.missed_writes_hooks: list[Callable[[], None]] = []

    # --- connections --------------------------------------------------------------------------

    def admit(self, ip: str) -> PerIP | str:
        """Per-IP state for a new connection, or the reason it is refused."""
        if len(self.connections) >= self.cfg.limits.max_connections:
            return "this hub has too many connections; try again in a minute"
        rate = self.cfg.rate
        state = self.per_ip.get(ip)
        if state is None:
            state = self.per_ip[ip] = PerIP(rate.ip_events_per_second, rate.ip_events_burst)
        if rate.ip_max_connections and state.connections >= rate.ip_max_connections:
            return "too many connections from your address"
        state.connections += 1
        return state

    def register(self, conn: Connection) -> None:
        self.connections.add(conn)
        self.stats["connections_total"] += 1

    async def unregister(self, conn: Connection) -> None:
        self.connections.discard(conn)
        await conn.finish()
        state = self.per_ip.get(conn.ip)
        if state is not None:
            state.connections -= 1
            if state.connections <= 0:
                del self.per_ip[conn.ip]

    # --- live subscriptions ------------------------------------------------------------------

    def subscribe(self, sub: Subscription) -> None:
        self.subscriptions.add(sub)

    def unsubscribe(self, sub: Subscription) -> None:
        self.subscriptions.discard(sub)

    async def accept(self, ev: Event, origin: object | None = None) -> SaveResult:
        """Verify, store and broadcast an event that did not come from a client frame
        (sync from a peer hub). ``origin`` is passed to listeners so a peer link does not
        echo an event back to where it came from."""
        refusal = sync_refusal(ev, int(time.time()))
        if refusal:
            return SaveResult(False, refusal)
        fut: asyncio.Future[SaveResult] = self.loop.create_future()

        def saved(res: SaveResult) -> None:
            if res.stored:
                self.stats["events_synced"] += 1
                self.broadcast(ev, None, origin)
            fut.set_result(res)

        def verified(_: Event, error: str | None) -> None:
            if error is not None:
                fut.set_result(SaveResult(False, error))
            else:
                self.store.submit(ev, saved)

        self.verifier.submit(ev, verified)
        return await fut

    async def pass_on_outside_writes(self, interval: float = 2.0, limit: int = 5000) -> None:
        """Forever: hand events that another process stored (``samizdat import`` while the
        hub runs) to live subscribers and peer links, as if they had just arrived. A very
        large import is not replayed live; clients see it when they query and peers when
        they reconcile."""
        while True:
            await asyncio.sleep(interval)
            try:
                rows = await self.store.outside_writes(limit)
            except Exception:  # logged on the writer thread; try again next round
                continue
            if rows is None:
                log.info("more than %d events were imported by another process: not passed "
                         "on live (clients and peers catch up by querying and syncing)", limit)
                for hook in self.missed_writes_hooks:
                    hook()
                continue
            for i, js in enumerate(rows):
                ev = parse_event(orjson.loads(js))
                self.stats["events_imported"] += 1
                self.broadcast(ev, js)
                if i % 500 == 499:
                    await asyncio.sleep(0)

    def broadcast(self, ev: Event, js: str | None, origin: object | None = None) -> None:
        """Send a newly accepted event to every live subscription it matches, and tell the
        listeners (peer links) about it."""
        for listener in self.listeners:
            listener(ev, origin)
        for sub in self.subscriptions:
            if not sub.matches(ev):
                continue
            if js is None:
                js = orjson.dumps(ev.to_dict()).decode()
            if sub.buffer is not None:
                sub.buffer.append((ev.id, js))
            else:
                sub.conn.send(m.event_frame(sub.subid, js))

    # --- lifecycle ----------------------------------------------------------------------------

    def status(self) -> dict[str, object]:
        return {
            "name": self.cfg.relay.name,
            "pubkey": self.pubkey,
            "events_stored": self.store.store.event_count,
            "connections": len(self.connections),
            "subscriptions": len(self.subscriptions),
            "uptime_seconds": int(time.time() - self.started),
            "events_accepted_since_start": self.stats["events_stored"],
            "events_rejected_since_start": self.stats["events_rejected"],
            "clients_cut_off_since_start": self.stats["disconnected_abusive"],
            "events_synced_since_start": self.stats["events_synced"],
            "write_transactions_since_start": self.store.batches,
            "peers": self.peers.status() if self.peers is not None else [],
            "receipts": self.receipts.status() if self.receipts is not None else None,
            "access": self.access.refresh().as_dict() if self.access is not None else None,
        }

    def close(self) -> None:
        self.neg_pool.shutdown(wait=True, cancel_futures=True)
        self.verifier.close()
        self.store.close()
