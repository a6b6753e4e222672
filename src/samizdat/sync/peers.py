"""Continuous sync with peer hubs (``samizdat serve --peer URL``).

Per peer, forever: connect, reconcile everything both ways with NIP-77, then stay
connected forwarding new events in both directions; when the link drops, wait
(exponential backoff with jitter, 1 s doubling to 60 s) and start over. Because every
transferred event is committed as it arrives, a reconnect resumes where the last link
stopped instead of sending it all again.
"""

from __future__ import annotations

import asyncio
import logging
import random
import time
from dataclasses import dataclass
from typing import TYPE_CHECKING

import aiohttp
import orjson

from ..nostr.event import Event
from ..nostr.filters import Filter
from .session import PeerError, PeerSession, SyncReport, connect
from .sinks import RelaySink

if TYPE_CHECKING:
    from ..relay.relay import Relay

log = logging.getLogger(__name__)

OUTBOX_LIMIT = 10_000  # queued new events per peer while its link is slow
LIVE_SLACK = 120  # seconds of overlap between the reconciliation and the live feed


@dataclass
class PeerState:
    url: str
    connected: bool = False
    last_sync: float | None = None
    last_error: str | None = None
    attempts: int = 0
    received: int = 0  # over all sessions, including the current one
    sent: int = 0

    def as_dict(self) -> dict[str, object]:
        return dict(self.__dict__)


class PeerLink:
    def __init__(self, relay: Relay, url: str, timeout: float = 30.0):
        self.relay = relay
        self.url = url
        self.timeout = timeout
        self.state = PeerState(url)
        self.sink = RelaySink(relay)
        self.outbox: asyncio.Queue[str] | None = None
        self.dropped = 0
        self._done = {"received": 0, "sent": 0}  # totals of finished sessions
        self._report: SyncReport | None = None

    def status(self) -> dict[str, object]:
        if self._report is not None:
            self.state.received = self._done["received"] + self._report.received
            self.state.sent = self._done["sent"] + self._report.sent
        return self.state.as_dict()

    def on_local_event(self, ev: Event, origin: object | None) -> None:
        """Relay listener: queue new local events for the peer (not ones it sent us)."""
        if origin is self.sink or self.outbox is None:
            return
        if self.outbox.qsize() >= OUTBOX_LIMIT:
            self.dropped += 1  # the next reconciliation will carry it
            return
        self.outbox.put_nowait(orjson.dumps(ev.to_dict()).decode())

    async def run(self) -> None:
        backoff = 1.0
        while True:
            started = time.monotonic()
            self.state.attempts += 1
            try:
                await self._session()
            except asyncio.CancelledError:
                raise
            except PeerError as exc:
                self.state.last_error = str(exc)
                log.warning("peer %s: %s", self.url, exc)
            except Exception as exc:
                self.state.last_error = f"{type(exc).__name__}: {exc}"
                log.exception("peer %s failed", self.url)
            finally:
                self.state.connected = False
                self.outbox = None
            if time.monotonic() - started > 60:
                backoff = 1.0
            await asyncio.sleep(backoff * (0.5 + random.random()))
            backoff = min(backoff * 2, 60.0)

    async def _session(self) -> None:
        started = time.monotonic()
        async with aiohttp.ClientSession() as http:
            ws = await asyncio.wait_for(connect(http, self.url, self.timeout), self.timeout)
            report = self._report = SyncReport(self.url, "both")
            session = PeerSession(ws, self.url, self.sink, report,
                                  signer=self.relay.hub_key, timeout=self.timeout)
            self.state.connected = True
            # Queue local events from now on, so nothing stored during the reconciliation
            # is missed by the live phase.
            self.outbox = asyncio.Queue()
            since = int(time.time()) - LIVE_SLACK
            try:
                await session.reconcile(Filter(), {}, "both",
                                        self.relay.cfg.limits.negentropy_frame_size_limit)
                report.seconds = time.monotonic() - started
                self.state.last_sync = time.time()
                self.state.last_error = None
                log.info("peer %s: reconciled in %.1fs (received %d, sent %d)", self.url,
                         report.seconds, report.received, report.sent)
                await session.live({}, since, self.outbox)
            finally:
                await session.close()
                self.status()
                self._done = {"received": self.state.received, "sent": self.state.sent}
                self._report = None


class PeerManager:
    def __init__(self, relay: Relay, urls: list[str]):
        self.relay = relay
        self.links = [PeerLink(relay, url) for url in dict.fromkeys(urls)]
        self._tasks: list[asyncio.Task] = []

    def start(self) -> None:
        for link in self.links:
            self.relay.listeners.append(link.on_local_event)
            self._tasks.append(asyncio.get_running_loop().create_task(link.run()))

    async def stop(self) -> None:
        for t in self._tasks:
            t.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)

    def status(self) -> list[dict[str, object]]:
        return [link.status() for link in self.links]
