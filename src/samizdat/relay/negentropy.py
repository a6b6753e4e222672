"""NIP-77 on the relay side: NEG-OPEN / NEG-MSG / NEG-CLOSE for one connection.

Each session holds a snapshot of the (created_at, id) pairs its filter selects, in a
:class:`~samizdat.negentropy.PackedStorage` (~41 bytes per event), and a responder
:class:`~samizdat.negentropy.Negentropy`. Building the snapshot reads SQLite in a
reader thread; reconciling is pure Python and runs in the relay's negentropy thread,
so the event loop keeps serving other clients meanwhile.
"""

from __future__ import annotations

import asyncio
import logging
import time
from typing import TYPE_CHECKING, Any

import orjson

from ..negentropy import Negentropy, NegentropyError, PackedStorage, decode_hex_message
from ..nostr.filters import Filter, InvalidFilter, parse_filter

if TYPE_CHECKING:
    from .connection import Connection

log = logging.getLogger(__name__)


def neg_err(subid: str, reason: str) -> str:
    return orjson.dumps(["NEG-ERR", subid, reason]).decode()


def neg_msg(subid: str, payload: bytes) -> str:
    return f'["NEG-MSG",{orjson.dumps(subid).decode()},"{payload.hex()}"]'


class _Session:
    __slots__ = ("busy", "last_used", "ne")

    def __init__(self) -> None:
        self.ne: Negentropy | None = None
        self.busy = True
        self.last_used = time.monotonic()


class NegentropySessions:
    """The NIP-77 sessions of one connection."""

    def __init__(self, conn: Connection):
        self.conn = conn
        self.relay = conn.relay
        self.limits = conn.cfg.limits
        self.sessions: dict[str, _Session] = {}

    def _send_err(self, subid: str, reason: str) -> None:
        self.sessions.pop(subid, None)
        self.conn.send(neg_err(subid, reason))

    def on_message(self, verb: str, args: list[Any]) -> None:
        subid = args[0] if args and type(args[0]) is str else None
        if subid is None or not 0 < len(subid) <= self.limits.max_subid_length:
            self.conn.send(neg_err("", f"invalid: {verb} needs a subscription id of 1 to "
                                       f"{self.limits.max_subid_length} characters"))
            self.conn.strike("invalid NIP-77 messages")
            return
        if verb == "NEG-CLOSE":
            self.sessions.pop(subid, None)
            return
        if verb == "NEG-OPEN":
            self._open(subid, args)
        else:
            self._continue(subid, args)

    def _decode(self, subid: str, value: Any) -> bytes | None:
        try:
            if type(value) is not str:
                raise NegentropyError("the message must be a hex string")
            return decode_hex_message(value, self.limits.max_message_length)
        except NegentropyError as exc:
            self._send_err(subid, f"invalid: {exc}")
            self.conn.strike("invalid NIP-77 messages")
            return None

    def _open(self, subid: str, args: list[Any]) -> None:
        conn = self.conn
        if len(args) != 3:
            self._send_err(subid, "invalid: NEG-OPEN takes a subscription id, a filter and "
                                  "a hex message")
            conn.strike("invalid NIP-77 messages")
            return
        if conn.cfg.auth.required_for_read and not conn.authed:
            conn.send_auth_challenge()
            self._send_err(subid, "auth-required: this hub syncs only after AUTH")
            return
        self.sessions.pop(subid, None)  # a repeated id replaces the old session
        self.expire_idle()
        if len(self.sessions) >= self.limits.max_negentropy_sessions:
            self._send_err(subid, f"blocked: at most {self.limits.max_negentropy_sessions} "
                                  "sync sessions per connection; NEG-CLOSE one first")
            conn.strike("too many sync sessions")
            return
        flt = args[1]
        # NDK's NDKSync sends [filter] where NIP-77 has a bare filter; accept one-element
        # arrays for compatibility with that common client library.
        if type(flt) is list and len(flt) == 1:
            flt = flt[0]
        try:
            f = parse_filter(flt, max_values=self.limits.max_filter_values,
                             max_limit=self.limits.max_limit)
        except InvalidFilter as exc:
            self._send_err(subid, str(exc))
            conn.strike("invalid NIP-77 messages")
            return
        msg = self._decode(subid, args[2])
        if msg is None:
            return
        session = _Session()
        self.sessions[subid] = session
        asyncio.get_running_loop().create_task(self._start(subid, session, f, msg))

    async def _start(self, subid: str, session: _Session, f: Filter, msg: bytes) -> None:
        max_items = self.limits.negentropy_max_items
        try:
            items = await self.relay.store.sync_items(f, max_items)
            if self.sessions.get(subid) is not session:
                return
            if items is None:
                self._send_err(subid, f"blocked: more than {max_items} events match this "
                                      "filter; sync a narrower one")
                return
            loop = asyncio.get_running_loop()
            storage = await loop.run_in_executor(self.relay.neg_pool, PackedStorage, *items)
            session.ne = Negentropy(storage, self.limits.negentropy_frame_size_limit,
                                    max_message_size=self.limits.max_message_length)
        except Exception as exc:
            log.exception("NEG-OPEN failed")
            if self.sessions.get(subid) is session:
                self._send_err(subid, f"error: could not prepare the sync ({type(exc).__name__})")
            return
        await self._reconcile(subid, session, msg)

    def _continue(self, subid: str, args: list[Any]) -> None:
        session = self.sessions.get(subid)
        if session is None:
            self.conn.send(neg_err(subid, "closed: no open sync session with this id"))
            return
        if len(args) != 2:
            self._send_err(subid, "invalid: NEG-MSG takes a subscription id and a hex message")
            return
        if session.busy:
            self._send_err(subid, "invalid: NEG-MSG sent before the previous reply")
            self.conn.strike("invalid NIP-77 messages")
            return
        msg = self._decode(subid, args[1])
        if msg is None:
            return
        session.busy = True
        asyncio.get_running_loop().create_task(self._reconcile(subid, session, msg))

    async def _reconcile(self, subid: str, session: _Session, msg: bytes) -> None:
        assert session.ne is not None
        loop = asyncio.get_running_loop()
        try:
            reply = await loop.run_in_executor(self.relay.neg_pool, session.ne.respond, msg)
        except NegentropyError as exc:
            if self.sessions.get(subid) is session:
                self._send_err(subid, f"invalid: {exc}")
                self.conn.strike("invalid NIP-77 messages")
            return
        except Exception as exc:
            log.exception("negentropy reconcile failed")
            if self.sessions.get(subid) is session:
                self._send_err(subid, f"error: reconciliation failed ({type(exc).__name__})")
            return
        if self.sessions.get(subid) is not session:
            return
        session.busy = False
        session.last_used = time.monotonic()
        self.conn.send(neg_msg(subid, reply))

    def expire_idle(self) -> None:
        limit = self.limits.negentropy_idle_seconds
        if not limit:
            return
        now = time.monotonic()
        for subid, s in list(self.sessions.items()):
            if not s.busy and now - s.last_used > limit:
                self._send_err(subid, "closed: sync session idle for too long")

    def close(self) -> None:
        self.sessions.clear()
