"""Bring evidence into an observer directory: bundles, hubs, plain relays, then media.

- files (bundle parts, JSONL dumps): :func:`samizdat.bundle.import_files`, with media going
  to the observer's blob store (every event and blob verified by the importer);
- ``ws://`` / ``wss://`` URLs: NIP-77 reconciliation (:func:`samizdat.sync.session.sync_once`,
  download only); a relay that does not speak NIP-77 is read with ``REQ`` paged backwards
  by ``until``; every event is verified before it is stored;
- then, for every hub URL, the media that reports claim (``imeta`` ``x``) and that the
  observer lacks: Blossom ``GET http(s)://<same host>/<sha256>``, bounded in size and
  stored only if the bytes hash to the claim;
- finally the index update (:meth:`Observer.update_index`).
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit, urlunsplit

import aiohttp
import orjson

from ..nostr.event import InvalidEvent, parse_event
from ..nostr.filters import Filter
from .service import IndexCounts, Observer

REQ_PAGE = 500
MEDIA_MAX_BYTES = 64 * 1024 * 1024
MEDIA_PARALLEL = 4


@dataclass
class SourceResult:
    source: str
    method: str  # "bundle", "nip77", "req"
    received: int = 0  # events newly stored
    already_had: int = 0
    rejected: int = 0
    media_fetched: int = 0
    media_failed: int = 0
    problems: list[str] = field(default_factory=list)
    seconds: float = 0.0

    def as_json(self) -> dict[str, Any]:
        return dict(self.__dict__)


@dataclass
class IngestReport:
    sources: list[SourceResult] = field(default_factory=list)
    index: IndexCounts = field(default_factory=IndexCounts)
    seconds: float = 0.0

    def as_json(self) -> dict[str, Any]:
        return {"sources": [s.as_json() for s in self.sources], "index": self.index.as_json(),
                "seconds": round(self.seconds, 3)}


class Progress:
    """Callbacks an ingest reports to (the CLI draws rich bars); all optional."""

    def stage(self, text: str) -> None: ...

    def events(self, n: int) -> None: ...


def is_url(source: str) -> bool:
    return source.startswith(("ws://", "wss://", "http://", "https://"))


def ws_url(source: str) -> str:
    p = urlsplit(source)
    scheme = {"http": "ws", "https": "wss"}.get(p.scheme, p.scheme)
    return urlunsplit((scheme, p.netloc, p.path or "", p.query, ""))


def http_base(source: str) -> str:
    p = urlsplit(source)
    scheme = {"ws": "http", "wss": "https"}.get(p.scheme, p.scheme)
    return urlunsplit((scheme, p.netloc, "", "", "")).rstrip("/")


def ingest_files(obs: Observer, paths: Sequence[Path], progress: Any = None,
                 salvage: bool = False, workers: int | None = None) -> SourceResult:
    from ..bundle import import_files
    from ..bundle.importer import BlobRules
    from ..config import Config

    t0 = time.monotonic()
    cfg = Config(data_dir=obs.data_dir)
    rules = BlobRules(obs.blobs, cfg.blobs.allowed_types, cfg.blobs.max_size)
    rep = import_files(obs.store, list(paths), salvage=salvage, workers=workers,
                       progress=progress, blobs=rules)
    return SourceResult(", ".join(str(p) for p in paths), "bundle", rep.imported,
                        rep.already_present, rep.rejected, rep.blobs_stored, 0,
                        list(rep.skipped), time.monotonic() - t0)


def _save(obs: Observer, raw: list[dict], res: SourceResult) -> set[str]:
    """Verify and store; returns the ids newly stored."""
    good = []
    for d in raw:
        try:
            ev = parse_event(d)
            ev.verify()
        except InvalidEvent:
            res.rejected += 1
            continue
        good.append(ev)
    new = set()
    for ev, r in zip(good, obs.store.save_many(good), strict=True):
        if r.stored:
            res.received += 1
            new.add(ev.id)
        else:
            res.already_had += 1
    return new


async def _req_paging(obs: Observer, url: str, res: SourceResult, timeout: float,
                      progress: Progress) -> None:
    """Read everything from a relay without NIP-77: REQ pages going back by ``until``."""
    until: int | None = None
    seen: set[str] = set()
    async with aiohttp.ClientSession() as http:
        ws = await http.ws_connect(url, max_msg_size=64 * 1024 * 1024, heartbeat=30)
        try:
            page_no = 0
            while True:
                page_no += 1
                flt: dict[str, Any] = {"limit": REQ_PAGE}
                if until is not None:
                    flt["until"] = until
                sub = f"obs{page_no}"
                await ws.send_str(orjson.dumps(["REQ", sub, flt]).decode())
                page: list[dict] = []
                while True:
                    msg = await asyncio.wait_for(ws.receive(), timeout)
                    if msg.type != aiohttp.WSMsgType.TEXT:
                        raise ConnectionError(f"{url} closed the connection")
                    frame = orjson.loads(msg.data)
                    if frame[0] == "EVENT" and frame[1] == sub and isinstance(frame[2], dict):
                        page.append(frame[2])
                    elif frame[0] in ("EOSE", "CLOSED") and frame[1] == sub:
                        break
                await ws.send_str(orjson.dumps(["CLOSE", sub]).decode())
                fresh = [d for d in page if d.get("id") not in seen]
                if not fresh:
                    return
                seen.update(d.get("id") for d in fresh)
                await asyncio.to_thread(_save, obs, fresh, res)
                progress.events(len(fresh))
                times = [d["created_at"] for d in fresh if isinstance(d.get("created_at"), int)]
                if not times:
                    return
                # ``until`` is inclusive: keep the oldest second (ties), step past it when a
                # page holds nothing older
                oldest = min(times)
                until = oldest if until != oldest else oldest - 1
                if until < 0:
                    return
        finally:
            await ws.close()


async def ingest_url(obs: Observer, url: str, *, timeout: float = 30.0,
                     progress: Progress | None = None, media: bool = True) -> SourceResult:
    from ..sync.session import PeerError, sync_once
    from ..sync.sinks import StoreSink

    progress = progress or Progress()
    t0 = time.monotonic()
    wurl = ws_url(url)
    res = SourceResult(url, "nip77")
    sink = StoreSink(obs.store)
    try:
        progress.stage(f"{wurl}: NIP-77 reconciliation")
        rep = await sync_once(sink, wurl, flt=Filter(), filter_json={}, direction="down",
                              timeout=timeout)
        res.received, res.already_had = rep.received, rep.already_had
        res.rejected = rep.rejected_from_peer
        res.problems += rep.problems
        progress.events(rep.received)
    except PeerError as exc:
        if "cannot connect" in str(exc):
            res.problems.append(str(exc))
            res.seconds = time.monotonic() - t0
            return res
        progress.stage(f"{wurl}: no NIP-77 ({exc}); reading with REQ")
        res.method = "req"
        try:
            await _req_paging(obs, wurl, res, timeout, progress)
        except (aiohttp.ClientError, OSError, TimeoutError, ConnectionError) as exc2:
            res.problems.append(f"{wurl}: {exc2}")
    finally:
        sink.close()
    if media:
        progress.stage(f"{http_base(url)}: media (Blossom)")
        await fetch_media(obs, http_base(url), res)
    res.seconds = time.monotonic() - t0
    return res


def _missing_media(obs: Observer) -> list[tuple[str, str, str | None]]:
    """(sha256, owner pubkey, mime) claimed by reports and not stored, from the index
    after an update."""
    out: dict[str, tuple[str, str, str | None]] = {}
    for doc in obs.index.report_docs(_report_ids_with_media(obs)):
        d = orjson.loads(doc)
        for m in d.get("media") or ():
            sha = m.get("sha256")
            if sha and sha not in out and obs.blobs.get(sha) is None:
                out[sha] = (sha, d["pubkey"], m.get("mime"))
    return list(out.values())


def _report_ids_with_media(obs: Observer) -> list[str]:
    return sorted({rid for sha in obs.index.media_without_facts()
                   for _, rid, _ in obs.index.reports_with_media([sha])})


async def fetch_media(obs: Observer, base: str, res: SourceResult,
                      max_bytes: int = MEDIA_MAX_BYTES) -> None:
    """Blossom GET of every claimed, missing blob from ``base``; hash-verified."""
    await asyncio.to_thread(obs.update_index, None, False)
    wanted = await asyncio.to_thread(_missing_media, obs)
    if not wanted:
        return
    limit = asyncio.Semaphore(MEDIA_PARALLEL)

    async def one(http: aiohttp.ClientSession, sha: str, owner: str, mime: str | None) -> None:
        async with limit:
            tmp = obs.blobs.new_temp()
            try:
                async with http.get(f"{base}/{sha}") as resp:
                    if resp.status != 200:
                        raise ValueError(f"HTTP {resp.status}")
                    if (resp.content_length or 0) > max_bytes:
                        raise ValueError(f"larger than {max_bytes} bytes")
                    async for chunk in resp.content.iter_chunked(1 << 16):
                        tmp.write([chunk])
                        if tmp.size > max_bytes:
                            raise ValueError(f"larger than {max_bytes} bytes")
                got = tmp.finish()
                if got != sha:
                    raise ValueError(f"the bytes hash to {got}, not the claimed {sha}")
                ctype = mime or resp.headers.get("Content-Type", "application/octet-stream")
                await asyncio.to_thread(obs.blobs.commit, tmp, ctype.split(";")[0], owner)
                res.media_fetched += 1
            except (aiohttp.ClientError, OSError, TimeoutError, ValueError) as exc:
                tmp.discard()
                res.media_failed += 1
                res.problems.append(f"media {sha[:12]}… from {base}: {exc}")

    timeout = aiohttp.ClientTimeout(total=600, sock_connect=10, sock_read=60)
    async with aiohttp.ClientSession(timeout=timeout) as http:
        await asyncio.gather(*(one(http, *w) for w in wanted))


def ingest(obs: Observer, sources: Sequence[str], *, progress: Progress | None = None,
           bundle_progress: Any = None, timeout: float = 30.0, media: bool = True,
           reference: str | Path | None = None) -> IngestReport:
    """Ingest every source (files first, then URLs one by one), then update the index."""
    progress = progress or Progress()
    t0 = time.monotonic()
    report = IngestReport()
    files = [Path(s) for s in sources if not is_url(s)]
    urls = [s for s in sources if is_url(s)]
    if files:
        progress.stage(f"importing {len(files)} file(s)")
        report.sources.append(ingest_files(obs, files, bundle_progress))
    for url in urls:
        report.sources.append(asyncio.run(ingest_url(obs, url, timeout=timeout,
                                                     progress=progress, media=media)))
    if reference is not None:
        progress.stage(f"reference set {reference}")
        obs.load_reference(reference)
    progress.stage("updating the index")
    report.index = obs.update_index(progress.events)
    report.seconds = time.monotonic() - t0
    return report
