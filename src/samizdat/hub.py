"""The hub: wires the relay, the store and peer sync into one process on one port (and
the same app with TLS on a second port).

This is the top of the stack (the CLI calls :func:`run_hub`); lower layers never import
it.
"""

from __future__ import annotations

import asyncio
import logging
import signal
import ssl
import time
from collections.abc import Callable

from aiohttp import web
from coincurve import PrivateKey

from . import lan, tls
from .config import Config
from .receipts.service import ReceiptService
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
    cert = prepare_tls(cfg)
    ssl_context = tls.server_context(cert) if cert is not None else None
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
        https_port = None
        if ssl_context is not None:
            https_port = await _start_https(runner, cfg, ssl_context)
        relay.access = lan.Access.discover(
            cfg.server.host, port, https_port, cert.fingerprint if cert else None,
            cfg.server.public_url)
        if cert is not None:
            relay.access.ca_fingerprint = cert.ca_fingerprint
            relay.tls_ca_der = tls.ca_der(cert)
        purge_task = loop.create_task(_purge_loop(relay))
        outside_task = loop.create_task(relay.pass_on_outside_writes())
        if cfg.receipts.enabled:
            relay.receipts = ReceiptService(relay)
            await relay.receipts.start()
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
        if relay.receipts is not None:
            await relay.receipts.stop()
        relay.close()
        if install_signals:
            for sig in (signal.SIGINT, signal.SIGTERM):
                loop.remove_signal_handler(sig)


def prepare_tls(cfg: Config) -> tls.Certificate | None:
    """The HTTPS certificate: the operator's own files, or the hub's, made on first run for
    localhost, this machine's names and LAN addresses and the configured names."""
    srv = cfg.server
    if not srv.https:
        return None
    if srv.tls_cert:
        return tls.load_operator(srv.tls_cert, srv.tls_key)
    wanted = lan.configured_names(srv.host, srv.public_url, srv.public_urls)
    lan_ips = [str(a.ip) for a in lan.lan_addresses()]
    cert = tls.load_or_create(cfg.data_dir, tls.default_names(lan_ips, wanted))
    missing = cert.uncovered([*wanted, *lan_ips])
    if missing:
        log.warning("the HTTPS certificate %s does not name %s (it was made for other "
                    "addresses): browsers will also warn about the name. To make a new one, "
                    "remove %s and %s and restart; its fingerprint changes.",
                    cert.cert_path, ", ".join(missing), cert.cert_path, cert.key_path)
    return cert


async def _start_https(runner: web.AppRunner, cfg: Config, ctx: ssl.SSLContext) -> int:
    """The same app with TLS on ``server.https_port``; returns the bound port."""
    before = len(runner.addresses)
    site = web.TCPSite(runner, cfg.server.host, cfg.server.https_port, ssl_context=ctx,
                       reuse_address=True)
    try:
        await site.start()
    except OSError as exc:
        raise tls.TLSError(
            f"cannot listen for HTTPS on {cfg.server.host}:{cfg.server.https_port}: "
            f"{exc.strerror or exc}. Choose another port with --https-port, or run without "
            "HTTPS (--no-https)") from None
    return runner.addresses[before][1]


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
