"""One sync connection to a peer relay: NIP-77 reconciliation, transfer, and live forwarding.

The flow over a single WebSocket:

1. ``NEG-OPEN`` with our negentropy message for the filter; rounds of ``NEG-MSG``
   until our side has nothing more to ask. Each round reports ids we have and the peer
   lacks ("have") and the reverse ("need").
2. Transfers start as soon as ids are known, alongside further rounds: ``REQ`` by ids
   for what we need (every event is verified, and must be one we asked for), ``EVENT``
   for what we have, text first and events that reference media last, since a short
   link should carry the words before the pictures.
3. For continuous sync, a ``REQ`` for new events on the peer and forwarding of new
   local events, until the link drops.

Every event that arrives is committed before the next round trip, so an interrupted
session loses nothing: the next reconciliation simply no longer lists what arrived.
"""

from __future__ import annotations

import asyncio
import logging
import time
from dataclasses import dataclass, field
from typing import Any

import aiohttp
import orjson
from coincurve import PrivateKey

from ..negentropy import Negentropy, NegentropyError, PackedStorage
from ..nostr.event import Event, InvalidEvent, parse_event, sign_event
from ..nostr.filters import Filter
from ..nostr.kinds import AUTH
from .sinks import Sink

log = logging.getLogger(__name__)

DOWNLOAD_BATCH = 250  # ids per REQ: within every relay's filter limits we know of
PARALLEL_DOWNLOADS = 4
UPLOAD_WINDOW = 200  # EVENTs in flight without an OK
MEDIA_TAGS = frozenset({"imeta", "url", "x", "image", "thumb"})


class PeerError(RuntimeError):
    """The peer failed, refused, or lied; the message says which and what to do."""


@dataclass
class SyncReport:
    url: str
    direction: str
    have: int = 0  # ids we hold that the peer lacked
    need: int = 0  # ids the peer holds that we lacked
    rounds: int = 0
    sent: int = 0  # events the peer accepted from us
    send_rejected: int = 0
    received: int = 0  # events from the peer newly stored here
    already_had: int = 0
    rejected_from_peer: int = 0  # bad signatures, unasked-for events, refused by policy
    missing: int = 0  # ids the peer claimed but did not send
    bytes_up: int = 0
    bytes_down: int = 0
    seconds: float = 0.0
    problems: list[str] = field(default_factory=list)
    rejections: dict[str, int] = field(default_factory=dict)

    def as_dict(self) -> dict[str, Any]:
        return {k: getattr(self, k) for k in self.__dataclass_fields__}


class _Closed(Exception):
    pass


def media_last(js: str) -> tuple[int, int]:
    """Sort key for uploads: events that reference media go after plain text."""
    ev = orjson.loads(js)
    has_media = any(t and t[0] in MEDIA_TAGS for t in ev.get("tags", ()))
    return (1 if has_media else 0, ev.get("created_at", 0))


class PeerSession:
    """One open WebSocket to a peer, with request/response plumbing."""

    def __init__(self, ws: aiohttp.ClientWebSocketResponse, url: str, sink: Sink,
                 report: SyncReport, *, signer: PrivateKey | None = None,
                 timeout: float = 30.0, progress: Any = None):
        self.ws = ws
        self.url = url
        self.sink = sink
        self.report = report
        self.signer = signer
        self.timeout = timeout
        self.progress = progress
        self._neg: asyncio.Queue[list[Any]] = asyncio.Queue()
        self._reqs: dict[str, tuple[list[dict], asyncio.Future]] = {}
        self._oks: dict[str, asyncio.Future] = {}
        self._live: asyncio.Queue[dict] | None = None
        self._counter = 0
        self._closed = False
        self._auth_task: asyncio.Task | None = None
        self.authed = False
        self.notices: list[str] = []
        self._reader = asyncio.get_running_loop().create_task(self._read_loop())

    # --- plumbing -----------------------------------------------------------------------------

    def _id(self, prefix: str) -> str:
        self._counter += 1
        return f"{prefix}{self._counter}"

    async def send(self, text: str) -> None:
        if self._closed:
            raise PeerError(f"the connection to {self.url} closed")
        self.report.bytes_up += len(text.encode())
        await self.ws.send_str(text)

    async def _read_loop(self) -> None:
        try:
            async for msg in self.ws:
                if msg.type is not aiohttp.WSMsgType.TEXT:
                    continue
                self.report.bytes_down += len(msg.data.encode())
                try:
                    frame = orjson.loads(msg.data)
                except orjson.JSONDecodeError:
                    self.report.problems.append("the peer sent a frame that is not JSON")
                    continue
                if type(frame) is list and frame and type(frame[0]) is str:
                    await self._dispatch(frame)
        finally:
            self._closed = True
            err = _Closed()
            for _, fut in self._reqs.values():
                if not fut.done():
                    fut.set_exception(err)
            for fut in self._oks.values():
                if not fut.done():
                    fut.set_exception(err)
            self._neg.put_nowait(["CLOSED"])
            if self._live is not None:
                self._live.put_nowait({})

    async def _dispatch(self, frame: list[Any]) -> None:
        verb = frame[0]
        if verb in ("NEG-MSG", "NEG-ERR"):
            self._neg.put_nowait(frame)
        elif verb == "EVENT" and len(frame) == 3:
            if frame[1] == "live" and self._live is not None and type(frame[2]) is dict:
                self._live.put_nowait(frame[2])
            elif frame[1] in self._reqs and type(frame[2]) is dict:
                self._reqs[frame[1]][0].append(frame[2])
        elif verb in ("EOSE", "CLOSED") and len(frame) >= 2 and frame[1] in self._reqs:
            fut = self._reqs[frame[1]][1]
            if not fut.done():
                fut.set_result(frame[2] if verb == "CLOSED" and len(frame) > 2 else None)
        elif verb == "OK" and len(frame) >= 3:
            fut = self._oks.pop(frame[1], None) if type(frame[1]) is str else None
            if fut is not None and not fut.done():
                fut.set_result((frame[2] is True, str(frame[3]) if len(frame) > 3 else ""))
        elif verb == "AUTH" and len(frame) >= 2 and type(frame[1]) is str:
            # not awaited here: the OK that completes it arrives through this very loop
            self._auth_task = asyncio.get_running_loop().create_task(
                self._authenticate(frame[1]))
        elif verb == "NOTICE" and len(frame) >= 2:
            self.notices.append(str(frame[1])[:300])

    async def _authenticate(self, challenge: str) -> None:
        """Answer a NIP-42 challenge with the hub key, so private hub networks can allow
        each other by key."""
        if self.signer is None:
            return
        ev = sign_event(self.signer, AUTH, "", [["relay", self.url], ["challenge", challenge]])
        fut = asyncio.get_running_loop().create_future()
        self._oks[ev.id] = fut
        await self.send(orjson.dumps(["AUTH", ev.to_dict()]).decode())
        try:
            ok, _ = await asyncio.wait_for(fut, self.timeout)
            self.authed = ok
        except (TimeoutError, _Closed):
            pass

    async def close(self) -> None:
        if not self.ws.closed:
            await self.ws.close()
        self._reader.cancel()

    # --- reconciliation -------------------------------------------------------------------------

    async def reconcile(self, flt: Filter, filter_json: dict, direction: str,
                        frame_limit: int = 60_000) -> None:
        report = self.report
        items = await self.sink.sync_items(flt)
        loop = asyncio.get_running_loop()
        storage = await loop.run_in_executor(None, PackedStorage, *items)
        ne = Negentropy(storage, frame_limit)
        subid = self._id("neg")
        await self.send(orjson.dumps(["NEG-OPEN", subid, filter_json, ne.initiate().hex()])
                        .decode())
        seen_have: set[bytes] = set()
        seen_need: set[bytes] = set()
        transfers: list[asyncio.Task] = []
        downloads = asyncio.Semaphore(PARALLEL_DOWNLOADS)
        while True:
            try:
                frame = await asyncio.wait_for(self._neg.get(), self.timeout)
            except TimeoutError:
                raise PeerError(f"{self.url} did not answer for {self.timeout:.0f} s during "
                                "negentropy sync (does it support NIP-77?)") from None
            if frame[0] == "CLOSED":
                raise PeerError(f"{self.url} closed the connection during reconciliation")
            if len(frame) < 3 or frame[1] != subid:
                continue
            if frame[0] == "NEG-ERR":
                raise PeerError(f"{self.url} refused the sync: {frame[2]}")
            try:
                msg = bytes.fromhex(frame[2]) if type(frame[2]) is str else b""
                res = await loop.run_in_executor(None, ne.process_reply, msg)
            except (NegentropyError, ValueError) as exc:
                raise PeerError(f"{self.url} sent a malformed negentropy message: {exc}") from None
            report.rounds += 1
            have = [i for i in res.have_ids if i not in seen_have]
            need = [i for i in res.need_ids if i not in seen_need]
            seen_have.update(have)
            seen_need.update(need)
            report.have, report.need = len(seen_have), len(seen_need)
            if self.progress:
                self.progress.found(report)
            if have and direction in ("both", "up"):
                transfers.append(loop.create_task(self._upload(have)))
            if need and direction in ("both", "down"):
                for start in range(0, len(need), DOWNLOAD_BATCH):
                    batch = need[start:start + DOWNLOAD_BATCH]
                    transfers.append(loop.create_task(self._download(batch, downloads)))
            if res.reply is None:
                break
            await self.send(f'["NEG-MSG",{orjson.dumps(subid).decode()},"{res.reply.hex()}"]')
        await self.send(orjson.dumps(["NEG-CLOSE", subid]).decode())
        if transfers:
            results = await asyncio.gather(*transfers, return_exceptions=True)
            for r in results:
                if isinstance(r, _Closed):
                    raise PeerError(f"the connection to {self.url} closed during the transfer")
                if isinstance(r, BaseException):
                    raise r
        if report.missing:
            report.problems.append(f"{self.url} listed {report.missing} events it then did not "
                                   "send: it may be lying or broken")

    # --- transfers ------------------------------------------------------------------------------

    async def _wait_for_auth(self) -> bool:
        """After an ``auth-required:`` answer: True once our AUTH (if any) has succeeded."""
        for _ in range(int(self.timeout * 10)):
            if self.authed:
                return True
            if self.signer is None or self._closed:
                return False
            await asyncio.sleep(0.1)
        return False

    async def _download(self, ids: list[bytes], limit: asyncio.Semaphore) -> None:
        async with limit:
            for attempt in range(2):
                closed = await self._request(ids)
                if closed is None:
                    return
                if attempt == 0 and closed.startswith("auth-required:") \
                        and await self._wait_for_auth():
                    continue
                raise PeerError(f"{self.url} refused to send events: {closed}")

    async def _request(self, ids: list[bytes]) -> str | None:
        """Fetch, check and store the events with these ids; the CLOSED reason if refused."""
        want = {i.hex() for i in ids}
        subid = self._id("get")
        events: list[dict] = []
        fut = asyncio.get_running_loop().create_future()
        self._reqs[subid] = (events, fut)
        try:
            await self.send(orjson.dumps(
                ["REQ", subid, {"ids": sorted(want), "limit": len(want)}]).decode())
            try:
                closed = await asyncio.wait_for(fut, self.timeout)
            except TimeoutError:
                raise PeerError(f"{self.url} did not answer a request for "
                                f"{len(want)} events within {self.timeout:.0f} s") from None
            if closed is not None:
                return str(closed)
            await self.send(orjson.dumps(["CLOSE", subid]).decode())
        finally:
            self._reqs.pop(subid, None)
        parsed: list[Event] = []
        got: set[str] = set()
        for raw in events:
            try:
                ev = parse_event(raw)
            except InvalidEvent as exc:
                self._reject(str(exc))
                continue
            if ev.id not in want or ev.id in got:
                self._reject("invalid: the peer sent an event that was not asked for")
                continue
            got.add(ev.id)
            parsed.append(ev)
        self.report.missing += len(want - got)
        await self._store(parsed)
        return None

    async def _store(self, events: list[Event]) -> None:
        if not events:
            return
        for res in await self.sink.ingest(events):
            if res.stored:
                self.report.received += 1
            elif res.accepted or res.message.startswith(("duplicate:", "blocked:")):
                self.report.already_had += 1
            else:
                self._reject(res.message)
        if self.progress:
            self.progress.moved(self.report)

    def _reject(self, reason: str) -> None:
        self.report.rejected_from_peer += 1
        key = reason.split(":", 1)[0] + ": " + reason.split(":", 1)[-1].strip()[:60]
        self.report.rejections[key] = self.report.rejections.get(key, 0) + 1

    async def _upload(self, ids: list[bytes]) -> None:
        jsons = sorted(await self.sink.get_json(ids), key=media_last)
        window = asyncio.Semaphore(UPLOAD_WINDOW)

        async def one(js: str) -> None:
            async with window:
                eid = orjson.loads(js)["id"]
                for attempt in range(6):
                    fut = asyncio.get_running_loop().create_future()
                    self._oks[eid] = fut
                    await self.send(f'["EVENT",{js}]')
                    try:
                        ok, msg = await asyncio.wait_for(fut, self.timeout)
                    except TimeoutError:
                        raise PeerError(f"{self.url} did not acknowledge an event within "
                                        f"{self.timeout:.0f} s") from None
                    if ok:
                        self.report.sent += 1
                        break
                    if msg.startswith("rate-limited:") and attempt < 5:
                        await asyncio.sleep(0.5 * 2 ** attempt)
                        continue
                    if msg.startswith("auth-required:") and attempt < 5 \
                            and await self._wait_for_auth():
                        continue
                    self.report.send_rejected += 1
                    key = "peer refused: " + msg[:60]
                    self.report.rejections[key] = self.report.rejections.get(key, 0) + 1
                    break
                if self.progress:
                    self.progress.moved(self.report)

        await asyncio.gather(*(one(js) for js in jsons))

    # --- continuous -------------------------------------------------------------------------

    async def live(self, flt_json: dict, since: int, outbox: asyncio.Queue[str]) -> None:
        """Receive the peer's new events and forward ours until the link drops."""
        self._live = asyncio.Queue()
        await self.send(orjson.dumps(["REQ", "live", {**flt_json, "since": since}]).decode())

        async def forward() -> None:
            while True:
                js = await outbox.get()
                await self.send(f'["EVENT",{js}]')

        fwd = asyncio.get_running_loop().create_task(forward())
        try:
            while not self._closed:
                raw = await self._live.get()
                if not raw:
                    break
                try:
                    ev = parse_event(raw)
                except InvalidEvent as exc:
                    self._reject(str(exc))
                    continue
                await self._store([ev])
        finally:
            fwd.cancel()


async def connect(http: aiohttp.ClientSession, url: str, timeout: float
                  ) -> aiohttp.ClientWebSocketResponse:
    try:
        return await http.ws_connect(url, timeout=aiohttp.ClientWSTimeout(ws_close=5),
                                     max_msg_size=64 * 1024 * 1024, heartbeat=30,
                                     autoping=True)
    except (aiohttp.ClientError, OSError, TimeoutError) as exc:
        raise PeerError(f"cannot connect to {url}: {exc or type(exc).__name__}. Check the "
                        "address and that the peer hub is running and reachable.") from None


async def sync_once(sink: Sink, url: str, *, flt: Filter, filter_json: dict,
                    direction: str = "both", signer: PrivateKey | None = None,
                    timeout: float = 30.0, frame_limit: int = 60_000,
                    progress: Any = None) -> SyncReport:
    """Reconcile ``sink`` with the relay at ``url`` once and move the difference."""
    report = SyncReport(url, direction)
    start = time.monotonic()
    async with aiohttp.ClientSession() as http:
        ws = await asyncio.wait_for(connect(http, url, timeout), timeout)
        session = PeerSession(ws, url, sink, report, signer=signer, timeout=timeout,
                              progress=progress)
        try:
            await session.reconcile(flt, filter_json, direction, frame_limit)
        finally:
            report.seconds = time.monotonic() - start
            await session.close()
    return report
