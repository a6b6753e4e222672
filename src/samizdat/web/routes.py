"""Serve the web app's built files (``static/``, built from ``web-src/`` by ``npm run build``).

Everything is read once at start-up and kept in memory with a gzip copy (the whole app is
~100 KB), so a request costs no disk access. Hashed files under ``/assets/`` never change
and are cached by browsers for a year; the page itself is cached for a day (on plain HTTP
there is no service worker, and the browser's cache is what opens the app while the hub is
out of reach), revalidated with an ETag; the app checks ``/build.json`` to offer updates.
"""

from __future__ import annotations

import gzip
import hashlib
import html
import mimetypes
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from aiohttp import web

if TYPE_CHECKING:
    from ..relay.relay import Relay

STATIC_DIR = Path(__file__).resolve().parent / "static"

IMMUTABLE = "public, max-age=31536000, immutable"
CACHE_CONTROL = {
    "/": "public, max-age=86400",
    "/sw.js": "no-cache",
    "/build.json": "no-store",
    "/manifest.webmanifest": "public, max-age=3600",
    "/icon.svg": "public, max-age=86400",
    "/third-party-licenses.txt": "public, max-age=3600",
}
CONTENT_TYPES = {
    ".js": "text/javascript; charset=utf-8",
    ".css": "text/css; charset=utf-8",
    ".html": "text/html; charset=utf-8",
    ".json": "application/json",
    ".webmanifest": "application/manifest+json",
    ".svg": "image/svg+xml",
    ".txt": "text/plain; charset=utf-8",
}
# Only the hub itself: no other host can be reached from the page (ws: and wss: to the
# same host are covered by 'self' in CSP Level 3, which every current browser implements).
CSP = ("default-src 'self'; img-src 'self' blob: data:; media-src 'self' blob:; "
       "connect-src 'self'; style-src 'self'; script-src 'self'; worker-src 'self'; "
       "manifest-src 'self'; object-src 'none'; base-uri 'none'; form-action 'self'; "
       "frame-ancestors 'none'")
GZIP_MIN = 256


@dataclass(frozen=True)
class Asset:
    body: bytes
    gz: bytes | None
    content_type: str
    etag: str
    cache_control: str


def _asset(path: str, body: bytes) -> Asset:
    suffix = Path(path).suffix if path != "/" else ".html"
    ctype = CONTENT_TYPES.get(suffix) or mimetypes.guess_type(path)[0] or "application/octet-stream"
    gz = gzip.compress(body, 9, mtime=0) if len(body) >= GZIP_MIN else None
    if gz is not None and len(gz) >= len(body):
        gz = None
    cache = IMMUTABLE if path.startswith("/assets/") else CACHE_CONTROL.get(path, "no-cache")
    return Asset(body, gz, ctype, '"' + hashlib.sha256(body).hexdigest()[:32] + '"', cache)


def load_assets(static_dir: Path = STATIC_DIR, hub_name: str | None = None) -> dict[str, Asset]:
    """URL path -> asset, for every file of the build; ``/`` is index.html."""
    assets: dict[str, Asset] = {}
    if not (static_dir / "index.html").is_file():
        return assets
    for file in sorted(static_dir.rglob("*")):
        if not file.is_file() or file.name.startswith("."):
            continue
        rel = file.relative_to(static_dir).as_posix()
        body = file.read_bytes()
        if rel == "index.html":
            if hub_name:
                body = body.replace(b"<title>samizdat</title>",
                                    f"<title>{html.escape(hub_name)}</title>".encode(), 1)
            assets["/"] = _asset("/", body)
        else:
            assets["/" + rel] = _asset("/" + rel, body)
    return assets


WEB_ASSETS: web.AppKey[dict[str, Asset]] = web.AppKey("web_assets", dict)

MISSING = """<!doctype html><meta charset="utf-8"><title>samizdat</title>
<p>The web app is not built. Run <code>make web</code> (needs node) or install a release.
The hub's status is at <a href="/status">/status</a>.</p>"""


def respond(request: web.Request, asset: Asset) -> web.Response:
    headers = {
        "Cache-Control": asset.cache_control,
        "ETag": asset.etag,
        "Vary": "Accept-Encoding",
        "X-Content-Type-Options": "nosniff",
    }
    if asset.content_type.startswith("text/html"):
        headers["Content-Security-Policy"] = CSP
        headers["Referrer-Policy"] = "no-referrer"
    inm = request.headers.get("If-None-Match", "")
    if inm and (inm.strip() == "*" or asset.etag in (t.strip() for t in inm.split(","))):
        return web.Response(status=304, headers=headers)
    body = asset.body
    if asset.gz is not None and "gzip" in request.headers.get("Accept-Encoding", "").lower():
        body = asset.gz
        headers["Content-Encoding"] = "gzip"
    headers["Content-Type"] = asset.content_type
    return web.Response(body=body, headers=headers)


async def serve_index(request: web.Request) -> web.Response:
    """The app's page (``GET /`` without WebSocket upgrade or a NIP-11 Accept header)."""
    asset = request.app[WEB_ASSETS].get("/")
    if asset is None:
        return web.Response(text=MISSING, content_type="text/html")
    return respond(request, asset)


def add_web_routes(app: web.Application, relay: Relay | None = None) -> None:
    """Register one GET route per built file; ``/`` itself stays with the relay's handler,
    which calls :func:`serve_index` (the page's title is the hub's configured name)."""
    assets = load_assets(STATIC_DIR, relay.cfg.relay.name if relay is not None else None)
    app[WEB_ASSETS] = assets
    for path, asset in assets.items():
        if path == "/":
            app.router.add_get("/index.html", serve_index)
            continue

        async def handler(request: web.Request, asset: Asset = asset) -> web.Response:
            return respond(request, asset)

        app.router.add_get(path, handler)
