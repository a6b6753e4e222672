"""Blossom on the hub's one port: BUD-01 (get), 02 (upload), 04 (mirror), 06 (upload
preflight), 11 (authorization) and 12 (list, delete), as aiohttp routes.

``add_blob_routes(app, cfg)`` is the whole interface to the rest of the hub: it adds the
routes and opens the store when the app starts, closes it when the app stops.

Every response carries ``Access-Control-Allow-Origin: *``; every error an ``X-Reason``
header (exposed to browser scripts) with the same text as the body. Uploads stream: the
body is hashed and written in a thread, 1 MiB at a time, while the next MiB arrives;
nothing is ever held whole in memory.
"""

from __future__ import annotations

import asyncio
import contextlib
import errno
import functools
import ipaddress
import logging
import os
import socket
import time
from collections.abc import Awaitable, Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any, BinaryIO, TypeVar
from urllib.parse import urlsplit

import aiohttp
import orjson
from aiohttp import web
from aiohttp.http_exceptions import HttpProcessingError

from ..config import Config
from ..nostr.event import HEX64
from ..store.blobs import BlobIndex, BlobRecord
from .auth import AuthError, Authorization, authorize
from .media import (
    OCTET_STREAM,
    Unsatisfiable,
    extension_for,
    normalise_type,
    parse_blob_name,
    parse_range,
    type_allowed,
    type_for_extension,
)
from .store import BlobGone, BlobStore, TempBlob

log = logging.getLogger(__name__)
T = TypeVar("T")

CORS = {
    "Access-Control-Allow-Origin": "*",
    "Access-Control-Expose-Headers":
        "X-Reason, Content-Length, Content-Range, Content-Type, Accept-Ranges, ETag",
}
PREFLIGHT = {
    **CORS,
    # "*" alone does not cover Authorization in browsers, hence the explicit names.
    "Access-Control-Allow-Headers": "Authorization, Content-Type, Content-Length, X-SHA-256, "
                                    "X-Content-Type, X-Content-Length, Range, If-None-Match, *",
    "Access-Control-Allow-Methods": "GET, HEAD, PUT, DELETE, OPTIONS",
    "Access-Control-Max-Age": "86400",
}
IMMUTABLE = "public, max-age=31536000, immutable"
# Blobs are opened by browsers on the hub's own origin, where the web app keeps the
# user's key: a script-capable blob (an SVG, HTML) must not run with that origin.
SANDBOX = "sandbox"
# Bytes handed to a thread per write (the next MiB is read meanwhile).
IO_CHUNK = 1 << 20
# An upload or mirror that sends nothing for this long is dropped.
IDLE_TIMEOUT = 60.0
MIRROR_BODY_MAX = 16_384
LIST_LIMIT = 1000
BLOB_PATH = r"/{name:[0-9a-f]{64}(?:\.[A-Za-z0-9]{1,16})?}"


class Refused(Exception):
    """An HTTP error with a human-readable reason (sent as body and ``X-Reason``)."""

    def __init__(self, status: int, reason: str):
        super().__init__(reason)
        self.status = status
        self.reason = reason


class Interrupted(Exception):
    """The byte stream being received broke off."""


def error_response(status: int, reason: str, *, close: bool = False) -> web.Response:
    # Header values must be one line of visible ASCII.
    safe = "".join(c if " " <= c <= "~" else "?" for c in reason)[:300]
    resp = web.Response(status=status, text=safe + "\n", headers={**CORS, "X-Reason": safe})
    if close:
        resp.force_close()
    return resp


def _guard(handler: Callable[[web.Request], Awaitable[web.StreamResponse]]
           ) -> Callable[[web.Request], Awaitable[web.StreamResponse]]:
    """Turn refusals into error responses and give every response the CORS headers."""

    @functools.wraps(handler)
    async def wrapper(request: web.Request) -> web.StreamResponse:
        try:
            resp = await handler(request)
        except (Refused, AuthError) as exc:
            return error_response(exc.status, exc.reason)
        except web.HTTPException as exc:  # e.g. a body over client_max_size
            return error_response(exc.status, exc.reason)
        except ConnectionError:  # the client went away (mid-download): aiohttp's business
            raise
        except OSError as exc:
            if exc.errno in (errno.ENOSPC, errno.EDQUOT):
                log.error("blob store: disk full")
                return error_response(507, "the hub's disk is full")
            log.exception("blob store: %s %s failed", request.method, request.path)
            return error_response(500, "the hub could not read or write its disk")
        except Exception:
            log.exception("blob store: %s %s failed", request.method, request.path)
            return error_response(500, "internal error in the media store")
        if not resp.prepared:
            for k, v in CORS.items():
                resp.headers.setdefault(k, v)
        return resp

    return wrapper


@dataclass(frozen=True, slots=True)
class UploadPlan:
    auth: Authorization
    declared: str | None  # X-SHA-256
    length: int | None
    mime: str


def descriptor(request: web.Request, record: BlobRecord) -> dict[str, Any]:
    """BUD-02 blob descriptor, its URL on the address the client used."""
    return {
        "url": f"{request.scheme}://{request.host}/{record.sha256}.{extension_for(record.type)}",
        "sha256": record.sha256,
        "size": record.size,
        "type": record.type,
        "uploaded": record.uploaded,
    }


def _json(data: Any, status: int = 200) -> web.Response:
    return web.Response(body=orjson.dumps(data), status=status, content_type="application/json",
                        headers=CORS)


def _hostname(host: str) -> str | None:
    try:
        return urlsplit("//" + host).hostname
    except ValueError:
        return None


class BlobService:
    """The media store's state for one app: store, index, thread pool, HTTP client."""

    def __init__(self, cfg: Config):
        self.cfg = cfg
        self.bc = cfg.blobs
        self.allowed_pubkeys = frozenset(cfg.auth.allowed_pubkeys)
        # Names a `server` tag may give for this hub. The Host header is not trusted for
        # this (a token scoped to another server could be replayed with its name in Host).
        urls = [*cfg.server.public_urls, getattr(cfg.server, "public_url", "")]
        self.own_names = {h for h in (_hostname(urlsplit(u).netloc) for u in urls if u) if h}
        machine = socket.gethostname().lower()
        self.own_names |= {machine, f"{machine}.local"}
        self.pool = ThreadPoolExecutor(4, thread_name_prefix="blob-io")
        self.index: BlobIndex | None = None
        self._store: BlobStore | None = None
        self.session: aiohttp.ClientSession | None = None

    @property
    def ready(self) -> bool:
        return self._store is not None

    @property
    def store(self) -> BlobStore:
        if self._store is None:
            raise Refused(503, "the media store is starting or stopping")
        return self._store

    async def start(self) -> None:
        def open_store() -> None:
            self.index = BlobIndex(self.cfg.data_dir / "blobs.sqlite3", self.cfg.store.synchronous)
            store = BlobStore(self.cfg.data_dir, self.index)
            store.clean_temp()
            self._store = store

        await self._run(open_store)
        self.session = aiohttp.ClientSession(auto_decompress=False)

    async def close(self) -> None:
        if self.session is not None:
            await self.session.close()
        self._store = None
        await asyncio.get_running_loop().run_in_executor(None, self._shutdown_pool)

    def _shutdown_pool(self) -> None:
        self.pool.shutdown(wait=True)
        if self.index is not None:
            self.index.close()

    def _run(self, fn: Callable[..., T], *args: Any) -> asyncio.Future[T]:
        return asyncio.get_running_loop().run_in_executor(self.pool, fn, *args)

    async def stats(self) -> dict[str, int]:
        count, size = await self._run(self.store.index.stats)
        return {"blobs": count, "bytes": size}

    # --- authorization and policy -----------------------------------------------------------

    def _hosts(self, request: web.Request) -> set[str]:
        """The configured names, the machine's name, and the address the client reached."""
        hosts = set(self.own_names)
        sock = request.transport.get_extra_info("sockname") if request.transport else None
        if sock:
            ip = ipaddress.ip_address(sock[0].split("%", 1)[0])
            hosts.add(str(ip))
            if ip.is_loopback:
                hosts.add("localhost")
        return hosts

    def _authorize(self, request: web.Request, verb: str, *, blob: str | None = None,
                   blob_required: bool = False) -> Authorization:
        return authorize(request.headers.get("Authorization"), verb, now=int(time.time()),
                         blob=blob, blob_required=blob_required, hosts=self._hosts(request),
                         clock_skew=self.bc.auth_clock_skew)

    def _may_store(self, auth: Authorization) -> None:
        if (self.bc.restrict_to_allowed_pubkeys and self.allowed_pubkeys
                and auth.pubkey not in self.allowed_pubkeys):
            raise Refused(403, "this hub accepts media only from its allowed keys")

    def _check_type(self, mime: str) -> None:
        if not type_allowed(mime, self.bc.allowed_types):
            allowed = ", ".join(self.bc.allowed_types)
            raise Refused(415, f"type {mime} is not accepted here (accepted: {allowed}); "
                               "send the blob's type in Content-Type")

    def _check_size(self, length: int | None, limit: int) -> None:
        if length is not None and length > limit:
            raise Refused(413, f"blob is {length} bytes; the limit is {limit} bytes")

    def _upload_plan(self, request: web.Request, *, preflight: bool = False) -> UploadPlan:
        h = request.headers
        declared = h.get("X-SHA-256")
        if declared is not None:
            declared = declared.strip().lower()
            if not HEX64.fullmatch(declared):
                raise Refused(400, "X-SHA-256 must be 64 hex characters")
        if preflight:
            if declared is None:
                raise Refused(400, "X-SHA-256 is required")
            raw_length = h.get("X-Content-Length")
            if raw_length is None:
                raise Refused(411, "X-Content-Length is required")
            raw_length = raw_length.strip()
            if not raw_length.isascii() or not raw_length.isdigit() or len(raw_length) > 18:
                raise Refused(400, "X-Content-Length must be a number of bytes")
            length: int | None = int(raw_length)
            raw_type = h.get("X-Content-Type")
        else:
            length = request.content_length
            raw_type = h.get("Content-Type")
        mime = normalise_type(raw_type) or OCTET_STREAM
        auth = self._authorize(request, "upload", blob=declared, blob_required=True)
        self._may_store(auth)
        self._check_size(length, self.bc.max_size)
        self._check_type(mime)
        return UploadPlan(auth, declared, length, mime)

    # --- receiving bytes --------------------------------------------------------------------

    async def _receive(self, read: Callable[[], Awaitable[bytes]], tmp: TempBlob,
                       limit: int) -> None:
        """Feed ``read()``'s chunks into ``tmp`` (hash and write in a thread, 1 MiB at a
        time, overlapping with reading) until it returns b"", at most ``limit`` bytes."""
        loop = asyncio.get_running_loop()
        pending: asyncio.Future[None] | None = None
        chunks: list[bytes] = []
        buffered = total = 0
        idle = asyncio.timeout(IDLE_TIMEOUT)
        try:
            async with idle:
                while True:
                    try:
                        chunk = await read()
                    except (OSError, HttpProcessingError, aiohttp.ClientError) as exc:
                        raise Interrupted(str(exc) or type(exc).__name__) from exc
                    if not chunk:
                        break
                    total += len(chunk)
                    if total > limit:
                        raise Refused(413, f"blob is larger than the limit of {limit} bytes")
                    idle.reschedule(loop.time() + IDLE_TIMEOUT)
                    chunks.append(chunk)
                    buffered += len(chunk)
                    if buffered >= IO_CHUNK:
                        if pending is not None:
                            await pending
                        pending = self._run(tmp.write, chunks)
                        chunks, buffered = [], 0
            if pending is not None:
                await pending
                pending = None
            if chunks:
                await self._run(tmp.write, chunks)
        except TimeoutError:
            if idle.expired():
                raise Refused(408, f"no data for {IDLE_TIMEOUT:.0f} s") from None
            raise
        finally:
            if pending is not None and not pending.done():
                # The caller discards tmp next; its lock orders that after this write.
                pending.add_done_callback(lambda f: f.cancelled() or f.exception())

    async def _finish(self, tmp: TempBlob, plan_hashes: frozenset[str], declared: str | None,
                      mime: str, pubkey: str) -> tuple[BlobRecord, bool]:
        sha = await self._run(tmp.finish)
        if declared is not None and sha != declared:
            raise Refused(409, f"the blob hashes to {sha}, not to {declared} as announced")
        if sha not in plan_hashes:
            raise Refused(409, f"the blob {sha} is not named in the authorization's x tags")
        try:
            return await self._run(self.store.commit, tmp, mime, pubkey)
        except BlobGone:
            raise Refused(503, "the blob was deleted while it was uploaded; upload it again"
                          ) from None

    # --- handlers ---------------------------------------------------------------------------

    async def options(self, request: web.Request) -> web.Response:
        return web.Response(status=204, headers=PREFLIGHT)

    async def expect_upload(self, request: web.Request) -> web.StreamResponse | None:
        """``Expect: 100-continue``: refuse before the client sends a byte of the body."""
        try:
            self._upload_plan(request)
        except (Refused, AuthError) as exc:
            return error_response(exc.status, exc.reason, close=True)
        if request.headers.get("Expect", "").lower() != "100-continue":
            return error_response(417, "only Expect: 100-continue is understood", close=True)
        await request.writer.write(b"HTTP/1.1 100 Continue\r\n\r\n")
        request.writer.output_size = 0
        return None

    async def upload_preflight(self, request: web.Request) -> web.StreamResponse:
        """BUD-06 ``HEAD /upload``: would this upload be accepted?"""
        self._upload_plan(request, preflight=True)
        return web.Response(status=200, headers=CORS)

    async def upload(self, request: web.Request) -> web.StreamResponse:
        plan = self._upload_plan(request)
        store = self.store
        hash_only = False
        if plan.declared is not None:
            # Already stored: hash the body to prove the uploader has it, write nothing.
            hash_only = await self._run(store.get, plan.declared) is not None
        tmp = await self._run(store.new_temp, hash_only)
        try:
            try:
                await self._receive(request.content.readany, tmp, self.bc.max_size)
            except Interrupted as exc:
                log.debug("upload interrupted: %s", exc)
                raise Refused(400, "the upload was interrupted") from None
            record, created = await self._finish(tmp, plan.auth.hashes, plan.declared,
                                                 plan.mime, plan.auth.pubkey)
        finally:
            await asyncio.shield(self._run(tmp.discard))
        return _json(descriptor(request, record), 201 if created else 200)

    async def mirror(self, request: web.Request) -> web.StreamResponse:
        """BUD-04 ``PUT /mirror``: fetch ``{"url": ...}`` and store it as if uploaded."""
        limit = min(self.bc.max_size, self.bc.mirror_max_size)
        if limit == 0:
            raise Refused(403, "mirroring is turned off on this hub")
        if (request.content_length or 0) > MIRROR_BODY_MAX:
            raise Refused(400, "the body must be a small JSON object with a url")
        try:
            body = orjson.loads(await request.read())
            url = body["url"]
            parts = urlsplit(url)
            if parts.scheme not in ("http", "https") or not parts.hostname:
                raise ValueError
        except (orjson.JSONDecodeError, KeyError, TypeError, ValueError, AttributeError):
            raise Refused(400, 'the body must be {"url": "http(s)://..."}') from None
        auth = self._authorize(request, "upload", blob_required=True)
        self._may_store(auth)
        named = parse_blob_name(parts.path.rsplit("/", 1)[-1])
        if named is not None:
            if named not in auth.hashes:
                raise Refused(409, "the URL names a blob that the authorization's x tags do not")
            record = await self._run(self.store.add_owner, named, auth.pubkey)
            if record is not None:  # already here: nothing to fetch
                return _json(descriptor(request, record), 200)
        assert self.session is not None
        timeout = aiohttp.ClientTimeout(total=self.bc.mirror_timeout)
        tmp: TempBlob | None = None
        try:
            async with self.session.get(url, timeout=timeout, max_redirects=5,
                                        headers={"Accept-Encoding": "identity"}) as resp:
                if resp.status != 200:
                    raise Refused(502, f"the origin answered HTTP {resp.status}")
                if resp.headers.get("Content-Encoding", "identity").lower() != "identity":
                    raise Refused(502, "the origin sent an encoded (compressed) body")
                self._check_size(resp.content_length, limit)
                mime = normalise_type(resp.headers.get("Content-Type"))
                if mime is None or mime == OCTET_STREAM:
                    mime = (type_for_extension(resp.url.path) or type_for_extension(parts.path)
                            or mime or OCTET_STREAM)
                self._check_type(mime)
                tmp = await self._run(self.store.new_temp)
                await self._receive(resp.content.readany, tmp, limit)
            record, created = await self._finish(tmp, auth.hashes, named, mime, auth.pubkey)
        except Interrupted as exc:
            raise Refused(502, f"the download from the origin broke off: {exc}") from None
        except (aiohttp.ClientError, TimeoutError) as exc:
            raise Refused(502, f"could not fetch the URL: {type(exc).__name__} {exc}") from None
        finally:
            if tmp is not None:
                await asyncio.shield(self._run(tmp.discard))
        return _json(descriptor(request, record), 201 if created else 200)

    async def list_blobs(self, request: web.Request) -> web.StreamResponse:
        """BUD-12 ``GET /list/<pubkey>`` with ``cursor``/``limit`` and ``since``/``until``."""
        pubkey = request.match_info["pubkey"]
        if not HEX64.fullmatch(pubkey):
            raise Refused(400, "the pubkey must be 64 lowercase hex characters")
        q = request.query

        def number(name: str) -> int | None:
            v = q.get(name)
            if v is None or v == "":
                return None
            if not v.isascii() or not v.isdigit() or len(v) > 15:
                raise Refused(400, f"{name} must be a non-negative integer")
            return int(v)

        since, until, limit = number("since"), number("until"), number("limit")
        cursor = q.get("cursor") or None
        if cursor is not None and not HEX64.fullmatch(cursor):
            raise Refused(400, "cursor must be the sha256 of the last blob of the previous page")
        if self.bc.list_requires_auth:
            auth = self._authorize(request, "list")
            if auth.pubkey != pubkey:
                raise Refused(403, "only the owner may list these blobs")
        records = await self._run(functools.partial(
            self.store.index.list, pubkey, since=since, until=until, cursor=cursor,
            limit=min(limit if limit is not None else LIST_LIMIT, LIST_LIMIT)))
        if records is None:
            raise Refused(400, "cursor names no blob of this pubkey")
        return _json([descriptor(request, r) for r in records])

    async def delete(self, request: web.Request) -> web.StreamResponse:
        """BUD-12 ``DELETE /<sha256>``: drop the signer's ownership; the file goes with the
        last owner."""
        sha = parse_blob_name(request.match_info["name"])
        if sha is None:
            raise Refused(400, "not a blob name")
        auth = self._authorize(request, "delete", blob=sha)
        removal = await self._run(self.store.remove_owner, sha, auth.pubkey)
        if not removal.was_owner:
            raise Refused(404, "no such blob of yours here")
        return _json({"deleted": sha})

    async def get(self, request: web.Request) -> web.StreamResponse:
        """BUD-01 ``GET``/``HEAD /<sha256>[.ext]``, with ranges and conditional requests."""
        sha = parse_blob_name(request.match_info["name"])
        if sha is None:
            raise Refused(400, "not a blob name")
        opened = await self._run(self.store.open, sha)
        if opened is None:
            raise Refused(404, "blob not found")
        record, f = opened
        try:
            return await self._send(request, record, f)
        finally:
            f.close()

    async def _send(self, request: web.Request, record: BlobRecord,
                    f: BinaryIO) -> web.StreamResponse:
        etag = f'"{record.sha256}"'
        headers = {
            **CORS,
            "Content-Type": record.type,
            "ETag": etag,
            "Cache-Control": IMMUTABLE,
            "Accept-Ranges": "bytes",
            "X-Content-Type-Options": "nosniff",
        }
        if record.type != "application/pdf":  # browsers refuse to show a sandboxed PDF
            headers["Content-Security-Policy"] = SANDBOX
        inm = request.headers.get("If-None-Match")
        if inm is not None and (inm.strip() == "*" or any(
                t.strip().removeprefix("W/") == etag for t in inm.split(","))):
            del headers["Content-Type"]
            return web.Response(status=304, headers=headers)
        size = record.size
        if_range = request.headers.get("If-Range")
        use_range = if_range is None or if_range.strip() == etag or not if_range.strip(
            ).startswith(('"', "W/"))  # a date: the blob never changes, so the range holds
        try:
            rng = parse_range(request.headers.get("Range"), size) if use_range else None
        except Unsatisfiable:
            headers["Content-Range"] = f"bytes */{size}"
            del headers["Content-Type"]
            return web.Response(status=416, headers={**headers, "X-Reason": "range not satisfiable"})
        start, count, status = 0, size, 200
        if rng is not None:
            start, count, status = rng[0], rng[1] - rng[0] + 1, 206
            headers["Content-Range"] = f"bytes {rng[0]}-{rng[1]}/{size}"
        resp = web.StreamResponse(status=status, headers=headers)
        resp.content_length = count
        await resp.prepare(request)
        if request.method != "HEAD" and count:
            try:
                await self._send_bytes(request, resp, f, start, count)
            except ConnectionError:  # the client went away mid-download: nothing to report
                log.debug("download of %s cut short by the client", record.sha256)
                return resp
        await resp.write_eof()
        return resp

    async def _send_bytes(self, request: web.Request, resp: web.StreamResponse, f: BinaryIO,
                          start: int, count: int) -> None:
        loop = asyncio.get_running_loop()
        transport = request.transport
        if transport is None:
            raise ConnectionResetError("connection lost")
        with contextlib.suppress(NotImplementedError):  # uvloop has no loop.sendfile
            await loop.sendfile(transport, f, start, count)
            return
        fd, pos, end = f.fileno(), start, start + count
        nxt = self._run(os.pread, fd, min(IO_CHUNK, end - pos), pos)
        while pos < end:
            data = await nxt
            if not data:
                raise ConnectionResetError("blob file shrank while it was sent")
            pos += len(data)
            if pos < end:
                nxt = self._run(os.pread, fd, min(IO_CHUNK, end - pos), pos)
            await resp.write(data)


BLOBS_KEY: web.AppKey[BlobService] = web.AppKey("blobs", BlobService)


def add_blob_routes(app: web.Application, cfg: Config) -> BlobService | None:
    """Add the Blossom routes to the hub's app (nothing if ``[blobs] enabled = false``).

    The blob route matches only 64 lowercase hex characters with an optional
    extension, so ``/`` and every other path stay with the rest of the app.
    """
    if not cfg.blobs.enabled:
        return None
    svc = BlobService(cfg)
    app[BLOBS_KEY] = svc

    async def on_startup(_: web.Application) -> None:
        await svc.start()

    async def on_cleanup(_: web.Application) -> None:
        await svc.close()

    app.on_startup.append(on_startup)
    app.on_cleanup.append(on_cleanup)
    router = app.router
    upload = router.add_resource("/upload")
    upload.add_route("PUT", _guard(svc.upload), expect_handler=svc.expect_upload)
    upload.add_route("HEAD", _guard(svc.upload_preflight))
    upload.add_route("OPTIONS", svc.options)
    mirror = router.add_resource("/mirror")
    mirror.add_route("PUT", _guard(svc.mirror))
    mirror.add_route("OPTIONS", svc.options)
    listing = router.add_resource("/list/{pubkey}")
    listing.add_route("GET", _guard(svc.list_blobs))
    listing.add_route("OPTIONS", svc.options)
    blob = router.add_resource(BLOB_PATH)
    blob.add_route("GET", _guard(svc.get))
    blob.add_route("HEAD", _guard(svc.get))
    blob.add_route("DELETE", _guard(svc.delete))
    blob.add_route("OPTIONS", svc.options)
    return svc
