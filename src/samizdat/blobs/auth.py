"""Blossom authorization tokens (BUD-11): kind-24242 events in an ``Authorization`` header.

Pure code: no I/O, the clock is a parameter. :func:`authorize` takes the header value
and what the endpoint is about to do, and returns the signer's pubkey or raises
:class:`AuthError` with the HTTP status and a reason a person can read.

The checks, in order (cheapest first; the signature last):

1. the header is ``Nostr <base64>`` (base64url without padding as BUD-11 says; standard
   base64 and padding are accepted too, as older clients send them), at most
   ``MAX_HEADER`` characters, holding one JSON event of the right shape;
2. ``kind`` is 24242;
3. ``created_at`` is not in the future (beyond ``clock_skew`` seconds);
4. an ``expiration`` tag is present, a decimal Unix time, and in the future;
5. a ``t`` tag names the endpoint's verb (``get``, ``upload``, ``list``, ``delete``, ``media``);
6. if ``server`` tags are present, one of them is one of the hub's host names;
7. if the endpoint acts on a blob (upload, delete, mirror), an ``x`` tag names it; when
   the hash is not known yet (an upload without ``X-SHA-256``, a mirror before the
   download) at least one ``x`` tag must be present, and the caller checks the hash
   against :attr:`Authorization.hashes` once it is known;
8. the id and the BIP-340 signature.

Every failure is 401 (BUD-11: "missing or invalid"); what the hub's policy refuses to a
valid token (a pubkey not allowed to upload) is the caller's 403.
"""

from __future__ import annotations

import binascii
from collections.abc import Iterable
from dataclasses import dataclass

import orjson

from ..nostr.event import HEX64, Event, InvalidEvent, parse_event

KIND = 24242
VERBS = frozenset({"get", "upload", "list", "delete", "media"})
# A token with a few dozen x tags fits; aiohttp refuses header lines over 8190 bytes anyway.
MAX_HEADER = 8192
MAX_TAGS = 200


class AuthError(Exception):
    """The request is not authorized: ``status`` (401 or 403) and a human-readable reason."""

    def __init__(self, reason: str, status: int = 401):
        super().__init__(reason)
        self.reason = reason
        self.status = status


@dataclass(frozen=True, slots=True)
class Authorization:
    """A valid token for one action."""

    pubkey: str
    verb: str
    expiration: int
    # The blob hashes the token is scoped to (its x tags), lowercase hex.
    hashes: frozenset[str]
    event: Event

    def allows_blob(self, sha256: str) -> bool:
        return sha256 in self.hashes


def decode_header(value: str | None) -> Event:
    """The event in an ``Authorization: Nostr <base64>`` header (shape checked, not signature)."""
    if value is None or not value.strip():
        raise AuthError("missing Authorization header: sign a kind 24242 event (BUD-11)")
    if len(value) > MAX_HEADER:
        raise AuthError("Authorization header is too long")
    scheme, _, data = value.strip().partition(" ")
    if scheme.lower() != "nostr":
        raise AuthError("Authorization scheme must be Nostr")
    data = data.strip()
    if not data:
        raise AuthError("Authorization header has no token")
    # base64url or standard base64, with or without padding; nothing else.
    data = data.rstrip("=").replace("-", "+").replace("_", "/")
    if len(data) % 4 == 1:
        raise AuthError("Authorization token is not valid base64")
    try:
        raw = binascii.a2b_base64(data + "=" * (-len(data) % 4), strict_mode=True)
    except (binascii.Error, ValueError):
        raise AuthError("Authorization token is not valid base64") from None
    try:
        obj = orjson.loads(raw)
    except orjson.JSONDecodeError:
        raise AuthError("Authorization token is not a JSON event") from None
    try:
        return parse_event(obj, max_tags=MAX_TAGS, max_content=4096, max_tag_value=1024)
    except InvalidEvent as exc:
        raise AuthError(f"Authorization event is malformed: {exc}") from None


def _host_name(name: str) -> str:
    return name.strip().lower().rstrip(".").removeprefix("[").removesuffix("]")


def check_event(ev: Event, verb: str, *, now: int, blob: str | None = None,
                blob_required: bool = False, hosts: Iterable[str] = (),
                clock_skew: int = 120, verify: bool = True) -> Authorization:
    """Check a decoded token for ``verb`` at time ``now``.

    ``blob``: the hash the endpoint acts on, when known (an x tag must name it).
    ``blob_required``: the endpoint acts on a blob whose hash is not known yet; the token
    must still carry at least one x tag. ``hosts``: the hub's host names (no port) for
    ``server`` tag scoping. ``verify=False`` skips the id and signature (tests only).
    """
    if verb not in VERBS:
        raise ValueError(f"unknown verb {verb!r}")
    if ev.kind != KIND:
        raise AuthError(f"authorization event must be kind {KIND}, not {ev.kind}")
    if ev.created_at > now + clock_skew:
        raise AuthError("authorization event is dated in the future (check the device clock)")
    expiration: int | None = None
    verbs: set[str] = set()
    servers: set[str] = set()
    hashes: set[str] = set()
    for tag in ev.tags:
        if len(tag) < 2:
            continue
        name, value = tag[0], tag[1]
        if name == "expiration" and expiration is None:
            if not value.isascii() or not value.isdigit() or len(value) > 15:
                raise AuthError("authorization expiration tag is not a Unix time")
            expiration = int(value)
        elif name == "t":
            verbs.add(value)
        elif name == "server":
            servers.add(_host_name(value))
        elif name == "x" and HEX64.fullmatch(value):
            hashes.add(value)
    if expiration is None:
        raise AuthError("authorization event has no expiration tag")
    if expiration <= now:
        raise AuthError("authorization event has expired (check the device clock)")
    if verb not in verbs:
        raise AuthError(f"authorization event is not for {verb!r} (its t tag)")
    if servers and not servers & {_host_name(h) for h in hosts}:
        raise AuthError("authorization event is for another server (its server tags)")
    if blob is not None and blob not in hashes:
        raise AuthError("authorization event does not cover this blob (its x tags)")
    if blob is None and blob_required and not hashes:
        raise AuthError("authorization event must name the blob in an x tag")
    if verify:
        try:
            ev.verify()
        except InvalidEvent as exc:
            raise AuthError(f"authorization event: {exc}") from None
    return Authorization(ev.pubkey, verb, expiration, frozenset(hashes), ev)


def authorize(header: str | None, verb: str, *, now: int, blob: str | None = None,
              blob_required: bool = False, hosts: Iterable[str] = (),
              clock_skew: int = 120) -> Authorization:
    """Decode and check an ``Authorization`` header for ``verb``; see :func:`check_event`."""
    return check_event(decode_header(header), verb, now=now, blob=blob,
                       blob_required=blob_required, hosts=hosts, clock_skew=clock_skew)


def encode_header(ev: Event) -> str:
    """``Nostr <base64url>`` for an event (clients, tests, the benchmark)."""
    raw = orjson.dumps(ev.to_dict())
    return "Nostr " + binascii.b2a_base64(raw, newline=False).decode().replace(
        "+", "-").replace("/", "_").rstrip("=")
