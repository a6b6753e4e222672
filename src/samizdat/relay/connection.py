"""One client connection: message dispatch, subscriptions, limits and the outbound queue.

Nothing here awaits while handling an incoming frame: events go to the
verifier and the writer with callbacks, queries run as tasks. The read loop
therefore keeps draining the socket, and one client's slow query never
stalls its own publishing, let alone anybody else's.
"""

from __future__ import annotations

import asyncio
import logging
import secrets
import time
from collections import deque
from typing import TYPE_CHECKING
from urllib.parse import urlsplit

import orjson

from ..nostr import messages as m
from ..nostr.event import Event, InvalidEvent
from ..nostr.filters import Filter
from ..nostr.kinds import AUTH, Storage, committed_target, pow_difficulty, storage_of
from ..store.sqlite import SaveResult
from .negentropy import NegentropySessions
from .ratelimit import PerIP, TokenBucket

if TYPE_CHECKING:
    from aiohttp import web

    from .relay import Relay

log = logging.getLogger(__name__)

MAX_CONCURRENT_COUNTS = 4
CLOSE_GRACE = 5.0  # seconds a cut-off client has to answer our close frame
# A client with at most this many EVENTs awaiting OK is served ahead of bulk traffic.
PRIORITY_IN_FLIGHT = 8
AUTH_WINDOW = 600  # seconds an AUTH event may differ from now (NIP-42 suggests ~10 minutes)


class Subscription:
    __slots__ = ("buffer", "conn", "filters", "subid", "task")

    def __init__(self, conn: Connection, subid: str, filters: list[Filter]):
        self.conn = conn
        self.subid = subid
        self.filters = filters
        # Live events that arrive while the stored ones are being read; None once live.
        self.buffer: list[tuple[str, str]] | None = []
        self.task: asyncio.Task | None = None

    def matches(self, ev: Event) -> bool:
        return any(f.matches(ev) for f in self.filters)


class _RawFrames:
    """Writes queued text frames to the socket many at a time.

    aiohttp sends every frame with its own ``transport.write``, which is one system call
    per event: for a 10,000-event answer that was most of the event loop's time. Server
    frames are unmasked and, without compression, trivial to build, so we build up to
    256 of them into one write and honour the transport's flow control as aiohttp does.
    Used only when compression is off and aiohttp's writer exposes what we need.
    """

    BATCH = 256
    HIGH_WATER = 1 << 20

    def __init__(self, transport: asyncio.Transport, protocol: object):
        self.transport = transport
        self.protocol = protocol

    @classmethod
    def for_ws(cls, ws: web.WebSocketResponse) -> _RawFrames | None:
        writer = getattr(ws, "_writer", None)
        transport = getattr(writer, "transport", None)
        protocol = getattr(writer, "protocol", None)
        if ws.compress or transport is None or not hasattr(protocol, "_drain_helper"):
            return None
        return cls(transport, protocol)

    async def write(self, queue: deque[str]) -> None:
        parts: list[bytes] = []
        for _ in range(min(len(queue), self.BATCH)):
            data = queue.popleft().encode()
            n = len(data)
            if n < 126:
                parts.append(bytes((0x81, n)))
            elif n < 65536:
                parts.append(b"\x81\x7e" + n.to_bytes(2, "big"))
            else:
                parts.append(b"\x81\x7f" + n.to_bytes(8, "big"))
            parts.append(data)
        if self.transport.is_closing():
            raise ConnectionResetError("connection closed")
        self.transport.write(b"".join(parts))
        if self.transport.get_write_buffer_size() > self.HIGH_WATER:
            await self.protocol._drain_helper()  # type: ignore[attr-defined]


def normalise_url_host(url: str) -> str | None:
    """``host:port`` of a ws/wss/http/https URL, lowercased with the default port filled in."""
    try:
        parts = urlsplit(url.strip())
        host = (parts.hostname or "").lower()
        port = parts.port
    except ValueError:
        return None
    if not host or parts.scheme not in ("ws", "wss", "http", "https"):
        return None
    if port is None:
        port = 443 if parts.scheme in ("wss", "https") else 80
    return f"{host}:{port}"


class Connection:
    def __init__(self, relay: Relay, ws: web.WebSocketResponse, ip: str, host: str,
                 per_ip: PerIP, secure: bool = False):
        self.relay = relay
        self.cfg = relay.cfg
        self.ws = ws
        self.ip = ip
        self.per_ip = per_ip
        self.url_host = normalise_url_host(f"{'wss' if secure else 'ws'}://{host}") if host else None
        self.subs: dict[str, Subscription] = {}
        self.authed: set[str] = set()
        self.challenge = secrets.token_hex(16)
        self.challenge_sent = False
        self.counts_running = 0
        self.in_flight = 0  # EVENTs received and not yet answered
        self.closed = False
        self._out: deque[str] = deque()
        self._wake = asyncio.Event()
        self._close_after: tuple[int, str] | None = None
        rate = self.cfg.rate
        self.messages = TokenBucket(rate.messages_per_second, rate.messages_burst)
        self.events = TokenBucket(rate.events_per_second, rate.events_burst)
        self.strikes = TokenBucket(1.0 if rate.strikes else 0, rate.strikes)
        self.received = 0
        self.neg = NegentropySessions(self)
        self.writer_task = asyncio.get_running_loop().create_task(self._writer())

    # --- outbound -------------------------------------------------------------------------------

    def send(self, frame: str) -> None:
        if self.closed or self._close_after is not None:
            return
        self._out.append(frame)
        if len(self._out) > self.cfg.limits.max_outbound_messages:
            self._out.clear()
            self.close(1008, "too many unread messages: read faster or ask for less")
            return
        self._wake.set()

    def close(self, code: int, reason: str) -> None:
        """Send what is queued, then a close frame with ``reason``."""
        if self._close_after is None and not self.closed:
            self._close_after = (code, reason)
            self._wake.set()

    async def _writer(self) -> None:
        ws = self.ws
        raw = _RawFrames.for_ws(ws)
        try:
            while True:
                await self._wake.wait()
                self._wake.clear()
                while self._out:
                    if raw is not None and not ws.closed:
                        await raw.write(self._out)
                    else:
                        await ws.send_str(self._out.popleft())
                if self._close_after is not None:
                    await self._lingering_close(*self._close_after)
                    return
        except (ConnectionError, RuntimeError, asyncio.CancelledError) as exc:
            log.debug("connection from %s ended while sending: %r", self.ip, exc)
        finally:
            self.closed = True
            self._out.clear()

    async def _lingering_close(self, code: int, reason: str) -> None:
        """Send a close frame but keep reading until the client's own close frame.

        ``WebSocketResponse.close()`` called beside a running ``receive()`` drops the TCP
        connection at once; a client still sending then gets a reset and loses the frames
        that tell it why it was cut off. So only the close frame goes out here; the read
        loop discards input until the client answers, and after CLOSE_GRACE seconds the
        connection is closed regardless.
        """
        frame_writer = getattr(self.ws, "_writer", None)
        if frame_writer is None or not hasattr(frame_writer, "close"):
            await self.ws.close(code=code, message=reason.encode()[:120])
            return
        await frame_writer.close(code, reason.encode()[:120])
        await asyncio.sleep(CLOSE_GRACE)
        await self.ws.close(code=code, message=reason.encode()[:120])

    def strike(self, why: str) -> None:
        """Count one abusive message; past the allowance the client is cut off."""
        if not self.strikes.take():
            log.info("disconnecting %s: %s", self.ip, why)
            self.relay.stats["disconnected_abusive"] += 1
            self.send(m.notice_frame(f"rate-limited: {why}; disconnecting"))
            self.close(1008, "too many invalid or rate-limited messages")

    def send_auth_challenge(self) -> None:
        if not self.challenge_sent:
            self.challenge_sent = True
            self.send(m.auth_frame(self.challenge))

    # --- inbound --------------------------------------------------------------------------------

    def on_binary(self) -> None:
        self.send(m.notice_frame("invalid: binary frames are not supported; send JSON text"))
        self.strike("binary frames")

    def on_text(self, data: str) -> None:
        if self._close_after is not None:
            return
        self.received += 1
        try:
            msg = m.parse_client_message(data, self.relay.codec_limits)
        except m.InvalidMessage as exc:
            self._reject(exc)
            self.strike("invalid messages")
            return
        if not self.messages.take():
            self._reject(m.InvalidMessage("rate-limited: too many messages, slow down",
                                          *_ids_of(msg)))
            self.strike("too many messages")
            return
        if isinstance(msg, m.EventMessage):
            self.on_event(msg.event)
        elif isinstance(msg, m.ReqMessage):
            self.on_req(msg.subid, msg.filters)
        elif isinstance(msg, m.CloseMessage):
            self.on_close(msg.subid)
        elif isinstance(msg, m.CountMessage):
            self.on_count(msg.subid, msg.filters)
        elif isinstance(msg, m.AuthMessage):
            self.on_auth(msg.event)
        elif isinstance(msg, m.NegMessage):
            self.neg.on_message(msg.verb, msg.args)

    def _reject(self, exc: m.InvalidMessage) -> None:
        if exc.verb in ("EVENT", "AUTH") and exc.event_id:
            self.send(m.ok_frame(exc.event_id, False, exc.reason))
        elif exc.verb in ("REQ", "COUNT") and exc.subid:
            self.send(m.closed_frame(exc.subid, exc.reason))
        else:
            self.send(m.notice_frame(exc.reason))

    # EVENT -----------------------------------------------------------------------------------

    def _refuse(self, ev: Event, reason: str) -> None:
        self.relay.stats["events_rejected"] += 1
        self.send(m.ok_frame(ev.id, False, reason))

    def on_event(self, ev: Event) -> None:
        cfg = self.cfg
        if not (self.events.take() and self.per_ip.events.take()):
            self._refuse(ev, "rate-limited: too many events, slow down")
            self.strike("too many events")
            return
        now = int(time.time())
        lim = cfg.limits
        if lim.created_at_upper_limit and ev.created_at > now + lim.created_at_upper_limit:
            self._refuse(ev, "invalid: created_at is too far in the future (check the clock)")
            return
        if lim.created_at_lower_limit and ev.created_at < now - lim.created_at_lower_limit:
            self._refuse(ev, "invalid: created_at is too far in the past")
            return
        if ev.kind == AUTH:
            self._refuse(ev, "invalid: kind 22242 events are sent with AUTH, not EVENT")
            return
        if lim.min_pow_difficulty:
            got = pow_difficulty(ev.id)
            target = committed_target(ev.tags)
            if got < lim.min_pow_difficulty:
                self._refuse(ev, f"pow: difficulty {got} is less than {lim.min_pow_difficulty}")
                return
            if target is not None and target < lim.min_pow_difficulty:
                self._refuse(ev, f"pow: committed target {target} is less than "
                                 f"{lim.min_pow_difficulty}")
                return
        auth = cfg.auth
        if auth.required_for_write or auth.allowed_pubkeys:
            if not self.authed:
                self.send_auth_challenge()
                self._refuse(ev, "auth-required: this hub accepts events only after AUTH")
                return
            if auth.allowed_pubkeys and not self.authed & self.relay.allowed_pubkeys:
                self._refuse(ev, "restricted: your key may not write to this hub")
                return
        if ev.is_protected and ev.pubkey not in self.authed:
            if not self.authed:
                self.send_auth_challenge()
                self._refuse(ev, "auth-required: this event may only be published by its author")
            else:
                self._refuse(ev, "restricted: this event may only be published by its author")
            return
        exp = ev.expiration
        if exp is not None and exp <= now:
            self._refuse(ev, "invalid: event has expired")
            return
        self.in_flight += 1
        self.relay.verifier.submit(ev, self._verified, priority=self.in_flight <= PRIORITY_IN_FLIGHT)

    def _verified(self, ev: Event, error: str | None) -> None:
        if error is not None:
            self.in_flight -= 1
            self._refuse(ev, error)
            self.strike("forged or corrupted events")
            return
        if storage_of(ev.kind) is Storage.EPHEMERAL:
            self.in_flight -= 1
            self.relay.broadcast(ev, orjson.dumps(ev.to_dict()).decode())
            self.send(m.ok_frame(ev.id, True, ""))
            return
        self.relay.store.submit(ev, lambda res: self._saved(ev, res),
                                priority=self.in_flight <= PRIORITY_IN_FLIGHT)

    def _saved(self, ev: Event, res: SaveResult) -> None:
        self.in_flight -= 1
        if res.stored:
            self.relay.stats["events_stored"] += 1
            self.relay.broadcast(ev, None)
        elif not res.accepted:
            self.relay.stats["events_rejected"] += 1
        self.send(m.ok_frame(ev.id, res.accepted, res.message))

    # REQ / CLOSE / COUNT ------------------------------------------------------------------

    def _may_read(self, subid: str) -> bool:
        if self.cfg.auth.required_for_read and not self.authed:
            self.send_auth_challenge()
            self.send(m.closed_frame(subid, "auth-required: this hub serves events only after AUTH"))
            return False
        return True

    def on_req(self, subid: str, filters: list[Filter]) -> None:
        if not self._may_read(subid):
            return
        old = self.subs.pop(subid, None)
        if old is not None:
            self._drop(old)
        elif len(self.subs) >= self.cfg.limits.max_subscriptions:
            self.send(m.closed_frame(
                subid, f"restricted: at most {self.cfg.limits.max_subscriptions} open "
                       "subscriptions per connection; CLOSE one first"))
            self.strike("too many subscriptions")
            return
        sub = Subscription(self, subid, filters)
        self.subs[subid] = sub
        self.relay.subscribe(sub)
        sub.task = asyncio.get_running_loop().create_task(self._initial(sub))

    async def _initial(self, sub: Subscription) -> None:
        prefix = m.event_frame(sub.subid, "")[:-1]  # '["EVENT","<subid>",'
        sent: list[str] = []

        def on_rows(rows: list[str]) -> None:
            # Stored events are sent while the reader thread fetches the next rows.
            if self.subs.get(sub.subid) is sub:
                for js in rows:
                    self.send(prefix + js + "]")
                sent.extend(rows)

        try:
            await self.relay.store.stream(sub.filters, self.cfg.limits.default_limit, on_rows)
        except Exception as exc:
            log.exception("query failed")
            if self.subs.get(sub.subid) is sub:
                self.subs.pop(sub.subid)
                self.relay.unsubscribe(sub)
                self.send(m.closed_frame(sub.subid, f"error: query failed ({type(exc).__name__})"))
            return
        if self.subs.get(sub.subid) is not sub:
            return
        self.send(m.eose_frame(sub.subid))
        buffered, sub.buffer = sub.buffer, None
        if buffered:
            seen = {orjson.loads(js)["id"] for js in sent}
            for eid, js in buffered:
                if eid not in seen:
                    self.send(prefix + js + "]")

    def on_close(self, subid: str) -> None:
        sub = self.subs.pop(subid, None)
        if sub is not None:
            self._drop(sub)

    def _drop(self, sub: Subscription) -> None:
        self.relay.unsubscribe(sub)
        if sub.task is not None and not sub.task.done():
            sub.task.cancel()

    def on_count(self, subid: str, filters: list[Filter]) -> None:
        if not self._may_read(subid):
            return
        if self.counts_running >= MAX_CONCURRENT_COUNTS:
            self.send(m.closed_frame(subid, "rate-limited: too many COUNT requests at once"))
            self.strike("too many COUNT requests")
            return
        self.counts_running += 1
        asyncio.get_running_loop().create_task(self._count(subid, filters))

    async def _count(self, subid: str, filters: list[Filter]) -> None:
        try:
            n = await self.relay.store.count(filters)
            self.send(m.count_frame(subid, n))
        except Exception as exc:
            log.exception("count failed")
            self.send(m.closed_frame(subid, f"error: count failed ({type(exc).__name__})"))
        finally:
            self.counts_running -= 1

    # AUTH ------------------------------------------------------------------------------------

    def on_auth(self, ev: Event) -> None:
        reason = self._check_auth(ev)
        if reason:
            self.send(m.ok_frame(ev.id, False, reason))
            self.strike("failed AUTH")
            return
        self.authed.add(ev.pubkey)
        self.send(m.ok_frame(ev.id, True, ""))

    def _check_auth(self, ev: Event) -> str | None:
        if ev.kind != AUTH:
            return "invalid: AUTH needs a kind 22242 event"
        if abs(ev.created_at - time.time()) > AUTH_WINDOW:
            return "invalid: AUTH event created_at is more than 10 minutes off"
        if not self.challenge_sent or ev.first_tag("challenge") != self.challenge:
            return "invalid: AUTH challenge does not match the one this hub sent"
        relay_tag = ev.first_tag("relay")
        target = normalise_url_host(relay_tag) if relay_tag else None
        if target is None or target not in self.relay.auth_hosts | {self.url_host}:
            return "invalid: AUTH relay tag does not name this hub"
        try:
            ev.verify()
        except InvalidEvent as exc:
            return str(exc)
        return None

    # --- teardown -----------------------------------------------------------------------------

    async def finish(self) -> None:
        """The read loop has ended: drop subscriptions and stop the writer."""
        self.closed = True
        for sub in list(self.subs.values()):
            self._drop(sub)
        self.subs.clear()
        self.neg.close()
        if not self.writer_task.done():
            self.writer_task.cancel()


def _ids_of(msg: m.ClientMessage) -> tuple[str | None, str | None, str | None]:
    """(verb, subid, event_id) of a parsed message, for a rejection frame."""
    if isinstance(msg, m.EventMessage):
        return "EVENT", None, msg.event.id
    if isinstance(msg, m.AuthMessage):
        return "AUTH", None, msg.event.id
    if isinstance(msg, m.ReqMessage | m.CountMessage):
        return ("REQ" if isinstance(msg, m.ReqMessage) else "COUNT"), msg.subid, None
    return None, None, None
