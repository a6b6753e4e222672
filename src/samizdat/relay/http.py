"""One port for everything: the WebSocket relay, NIP-11 and the status page (aiohttp)."""

from __future__ import annotations

import asyncio
import html
import logging
import time

import orjson
from aiohttp import WSMsgType, web

from .. import __version__
from ..blobs.http import BLOBS_KEY, add_blob_routes
from ..nostr.keys import npub
from ..web.routes import add_web_routes, serve_index
from .connection import Connection
from .poster import access_html, poster_html
from .relay import Relay

log = logging.getLogger(__name__)

SUPPORTED_NIPS = [1, 9, 11, 13, 40, 42, 45, 50, 70, 77]
CORS = {
    "Access-Control-Allow-Origin": "*",
    "Access-Control-Allow-Headers": "*",
    "Access-Control-Allow-Methods": "GET, HEAD, OPTIONS",
}
RELAY_KEY: web.AppKey[Relay] = web.AppKey("relay", Relay)


def nip11_document(relay: Relay) -> dict[str, object]:
    cfg = relay.cfg
    lim = cfg.limits
    info: dict[str, object] = {
        "name": cfg.relay.name,
        "description": cfg.relay.description,
        "pubkey": relay.pubkey,
        "supported_nips": SUPPORTED_NIPS,
        "software": "samizdat",
        "version": __version__,
        "limitation": {
            "max_message_length": lim.max_message_length,
            "max_subscriptions": lim.max_subscriptions,
            "max_filters": lim.max_filters,
            "max_limit": lim.max_limit,
            "default_limit": lim.default_limit,
            "max_subid_length": lim.max_subid_length,
            "max_event_tags": lim.max_event_tags,
            "max_content_length": lim.max_content_length,
            "min_pow_difficulty": lim.min_pow_difficulty,
            "auth_required": cfg.auth.required_for_read or cfg.auth.required_for_write,
            "payment_required": False,
            "restricted_writes": bool(
                cfg.auth.required_for_write or cfg.auth.allowed_pubkeys or lim.min_pow_difficulty
            ),
            "created_at_lower_limit": lim.created_at_lower_limit,
            "created_at_upper_limit": lim.created_at_upper_limit,
        },
        "samizdat": {
            "max_filter_values": lim.max_filter_values,
            "max_tag_value_length": lim.max_tag_value_length,
            "auth_required_for_read": cfg.auth.required_for_read,
            "auth_required_for_write": cfg.auth.required_for_write,
            "negentropy": {
                "protocol_version": 1,
                "frame_size_limit": lim.negentropy_frame_size_limit,
                "max_sessions_per_connection": lim.max_negentropy_sessions,
                "max_items": lim.negentropy_max_items,
                "idle_seconds": lim.negentropy_idle_seconds,
            },
            "rate_limits": {
                "messages_per_second": cfg.rate.messages_per_second,
                "messages_burst": cfg.rate.messages_burst,
                "events_per_second": cfg.rate.events_per_second,
                "events_burst": cfg.rate.events_burst,
                "ip_events_per_second": cfg.rate.ip_events_per_second,
                "ip_events_burst": cfg.rate.ip_events_burst,
                "ip_max_connections": cfg.rate.ip_max_connections,
            },
        },
    }
    if cfg.relay.contact:
        info["contact"] = cfg.relay.contact
    if cfg.relay.banner:
        info["banner"] = cfg.relay.banner
    return info


def _format_uptime(seconds: int) -> str:
    d, rem = divmod(seconds, 86400)
    h, rem = divmod(rem, 3600)
    mnt, s = divmod(rem, 60)
    return (f"{d}d " if d else "") + f"{h:02d}:{mnt:02d}:{s:02d}"


def status_html(relay: Relay, media: dict[str, int] | None = None) -> str:
    st = relay.status()
    e = html.escape
    rows = [
        ("Events stored", f"{st['events_stored']:,}"),
        ("Connections now", str(st["connections"])),
        ("Subscriptions now", str(st["subscriptions"])),
        ("Uptime", _format_uptime(int(st["uptime_seconds"]))),
        ("Accepted since start", f"{st['events_accepted_since_start']:,}"),
        ("Rejected since start", f"{st['events_rejected_since_start']:,}"),
        ("Hub public key (hex)", str(st["pubkey"])),
        ("Hub public key (npub)", npub(str(st["pubkey"]))),
    ]
    if media is not None:
        rows.insert(1, ("Media stored", f"{media['blobs']:,} files, "
                        f"{media['bytes'] / 1e6:,.1f} MB"))
    receipts = st.get("receipts")
    if isinstance(receipts, dict):
        end = receipts.get("last_window_end")
        last = (time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime(int(end)))  # type: ignore[arg-type]
                if end else "none yet")
        every = float(receipts["interval_seconds"])  # type: ignore[arg-type]
        every_text = f"{every / 60:g} min" if every >= 60 else f"{every:g} s"
        rows.append(("Receipts", f"every {every_text} (place {receipts['place'] or 'not declared'});"
                     f" the last covers up to {last}"))
    for peer in st["peers"]:  # type: ignore[union-attr]
        state = "connected" if peer["connected"] else f"retrying ({peer['last_error'] or 'not yet'})"
        rows.append((f"Peer {peer['url']}",
                     f"{state}; received {peer['received']:,}, sent {peer['sent']:,}"))
    body = "\n".join(f"<tr><th>{e(k)}</th><td><code>{e(v)}</code></td></tr>" for k, v in rows)
    access = relay.access
    ws_example = (access.web_url.replace("http", "ws", 1).rstrip("/") if access is not None
                  else f"ws://{relay.cfg.server.host}:{relay.cfg.server.port}")
    return f"""<!doctype html>
<html lang="en"><head><meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<meta http-equiv="refresh" content="10">
<title>{e(relay.cfg.relay.name)} — status</title>
<style>
body{{font-family:system-ui,sans-serif;margin:1rem auto;max-width:44rem;padding:0 1rem;color:#111}}
table{{border-collapse:collapse;width:100%}} th,td{{text-align:left;padding:.4rem;border-bottom:1px solid #ddd;vertical-align:top}}
code{{word-break:break-all}} th{{width:40%}}
</style></head><body>
<h1>{e(relay.cfg.relay.name)}</h1>
<p>{e(relay.cfg.relay.description)}</p>
<p>This is a Nostr relay. Point any Nostr app at this address with <code>ws://</code> in front
(for example <code>{e(ws_example)}</code>).</p>
{access_html(access) if access is not None else ""}
<table data-testid="status">{body}</table>
<p><small>samizdat {__version__}. Machine-readable: <a href="/status.json">/status.json</a>.</small></p>
</body></html>"""


async def handle_root(request: web.Request) -> web.StreamResponse:
    relay = request.app[RELAY_KEY]
    if request.headers.get("Upgrade", "").lower() == "websocket":
        return await handle_websocket(request)
    if "application/nostr+json" in request.headers.get("Accept", ""):
        return web.Response(body=orjson.dumps(nip11_document(relay)),
                            content_type="application/nostr+json", headers=CORS)
    return await serve_index(request)  # the web app (src/samizdat/web); status: /status


async def handle_options(request: web.Request) -> web.Response:
    return web.Response(status=204, headers=CORS)


async def _media_stats(request: web.Request) -> dict[str, int] | None:
    svc = request.app.get(BLOBS_KEY)
    return await svc.stats() if svc is not None and svc.ready else None


async def handle_status(request: web.Request) -> web.Response:
    return web.Response(text=status_html(request.app[RELAY_KEY], await _media_stats(request)),
                        content_type="text/html")


async def handle_status_json(request: web.Request) -> web.Response:
    st = request.app[RELAY_KEY].status()
    st["media"] = await _media_stats(request)
    return web.Response(body=orjson.dumps(st), content_type="application/json", headers=CORS)


async def handle_ca(request: web.Request) -> web.Response:
    """The hub's certificate authority (DER), for phones to install."""
    der = request.app[RELAY_KEY].tls_ca_der
    if der is None:
        return web.Response(status=404, text="this hub has no certificate authority of its "
                            "own (HTTPS is off, or it uses the operator's certificate)\n")
    return web.Response(body=der, content_type="application/x-x509-ca-cert",
                        headers={"Content-Disposition": 'attachment; filename="samizdat-hub-ca.crt"',
                                 "Cache-Control": "no-cache"})


async def handle_poster(request: web.Request) -> web.Response:
    relay = request.app[RELAY_KEY]
    srv, access = relay.cfg.server, relay.access
    page = poster_html(
        title=relay.cfg.relay.name,
        web_url=access.web_url if access is not None else f"http://127.0.0.1:{srv.port}/",
        wifi_name=srv.wifi_name, wifi_password=srv.wifi_password,
        https_url=access.https_urls[0] if access is not None and access.https_urls else "",
        fingerprint=access.fingerprint if access is not None else None)
    return web.Response(text=page, content_type="text/html")


async def handle_websocket(request: web.Request) -> web.StreamResponse:
    relay = request.app[RELAY_KEY]
    ip = request.remote or "?"
    admitted = relay.admit(ip)
    if isinstance(admitted, str):
        return web.Response(status=429, text=admitted + "\n")
    cfg = relay.cfg
    ws = web.WebSocketResponse(
        # aiohttp refuses sizes >= max_msg_size; NIP-11 announces the largest we accept.
        max_msg_size=cfg.limits.max_message_length + 1,
        compress=cfg.server.websocket_compression,
        heartbeat=60,
    )
    conn: Connection | None = None
    try:
        await ws.prepare(request)
        conn = Connection(relay, ws, ip, request.host, admitted, secure=request.secure)
        relay.register(conn)
        if cfg.auth.required_for_read or cfg.auth.required_for_write:
            conn.send_auth_challenge()
        async for msg in ws:
            if msg.type is WSMsgType.TEXT:
                conn.on_text(msg.data)
            elif msg.type is WSMsgType.BINARY:
                conn.on_binary()
    except (ConnectionError, asyncio.CancelledError):
        pass
    finally:
        if conn is not None:
            await relay.unregister(conn)
        else:
            admitted.connections -= 1
            if admitted.connections <= 0:
                relay.per_ip.pop(ip, None)
    return ws


def make_app(relay: Relay) -> web.Application:
    app = web.Application(client_max_size=relay.cfg.limits.max_message_length)
    app[RELAY_KEY] = relay
    app.router.add_get("/", handle_root)
    app.router.add_route("OPTIONS", "/", handle_options)
    app.router.add_get("/status", handle_status)
    app.router.add_get("/status.json", handle_status_json)
    add_web_routes(app, relay)  # the web app's files: /assets/..., /sw.js, /manifest...
    add_blob_routes(app, relay.cfg)  # Blossom media store: /upload, /<sha256>, /list, /mirror
    app.router.add_get("/poster", handle_poster)
    app.router.add_get("/ca.crt", handle_ca)
    return app
