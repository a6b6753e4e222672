"""The hub: wires the relay, the store and peer sync into one process on one port.

This is the top of the stack (the CLI calls :func:`run_hub`); lower layers never import
it.
"""

from __future__ import annotations

import asyncio
import logging
import signal
import time
from collections.abc import Callable

from aiohttp import web
from coincurve import PrivateKey

from .config import Config
from .relay.http import make_app
from .relay.relay import Relay
from .sync.peers import PeerManager

log = logging.getLogger(__name__)


async def run_hub(cfg: Config, hub_key: PrivateKey, *,
                  on_ready: Callable[[Relay, int], None] | None = None,
                  stop: asyncio.Event | None = None, install_signals: bool = True) -> None:
    """Serve until ``stop`` is set or SIGINT/SIGTERM arrives, then shut down cleanly."""
    loop = asyncio.get_running_loop()
    stop = stop or asyncio.Event()
    if install_signals:
        for sig in (signal.SIGINT, signal.SIGTERM):
            loop.add_signal_handler(sig, stop.set)
    relay = Relay(cfg, hub_key, loop)
    runner = web.AppRunner(make_app(relay), access_log=None, handle_signals=False,
                           shutdown_timeout=2.0)
    purge_task: asyncio.Task | None = None
    outside_task: asyncio.Task | None = None
    try:
        await runner.setup()
        site = web.TCPSite(runner, cfg.server.host, cfg.server.port, reuse_address=True)
        await site.start()
        port = runner.addresses[0][1]
        purge_task = loop.create_task(_purge_loop(relay))
        outside_task = loop.create_task(relay.pass_on_outside_writes())
        if cfg.sync.peers:
            relay.peers = PeerManager(relay, cfg.sync.peers)
            relay.peers.start()
        if on_ready:
            on_ready(relay, port)
        await stop.wait()
        log.info("stopping: closing %d connections", len(relay.connections))
        for conn in list(relay.connections):
            conn.close(1001, "hub is shutting down")
        await asyncio.sleep(0.1)
    finally:
        if purge_task:
            purge_task.cancel()
        if outside_task:
            outside_task.cancel()
        if relay.peers is not None:
            await relay.peers.stop()
        await runner.cleanup()
        relay.close()
        if install_signals:
            for sig in (signal.SIGINT, signal.SIGTERM):
                loop.remove_signal_handler(sig)


async def _purge_loop(relay: Relay) -> None:
    interval = relay.cfg.store.expiry_purge_seconds
    if interval <= 0:
        return
    while True:
        await asyncio.sleep(interval)
        start = time.monotonic()
        n = await relay.store.purge_expired()
        if n:
            log.info("purged %d expired events in %.2fs", n, time.monotonic() - start)
