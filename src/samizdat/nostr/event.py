"""Nostr events: shape validation, the canonical NIP-01 serialization, ids and signatures.

Pure code: no I/O. Everything that arrives from the network passes through
:func:`parse_event` before anything else looks at it, so this module is where a
crafted input has to be stopped.

The id of an event is the SHA-256 of a canonical JSON array. NIP-01 allows only
seven escapes in it (``\\n \\" \\\\ \\r \\t \\b \\f``) and every other character,
control characters included, is written raw as UTF-8. General-purpose JSON
encoders (``json.dumps``, ``orjson``) write ``\\u0001`` for U+0001 and so would
compute a different id for such content; :func:`canonical_bytes` is our own.
"""

from __future__ import annotations

import hashlib
import re
from dataclasses import dataclass, field
from typing import Any

import orjson
from coincurve import PrivateKey, PublicKeyXOnly

HEX64 = re.compile(r"[0-9a-f]{64}")
HEX128 = re.compile(r"[0-9a-f]{128}")
MAX_KIND = 65535
# created_at is stored as SQLite INTEGER (signed 64-bit); JSON allows more.
MAX_TIMESTAMP = 2**53

# The seven escapes of NIP-01, and nothing else.
_ESCAPES = str.maketrans(
    {
        "\\": "\\\\",
        '"': '\\"',
        "\n": "\\n",
        "\r": "\\r",
        "\t": "\\t",
        "\b": "\\b",
        "\f": "\\f",
    }
)


class InvalidEvent(ValueError):
    """The event is malformed, forged or otherwise unacceptable; the message says why."""


def _quote(s: str) -> str:
    return '"' + s.translate(_ESCAPES) + '"'


def canonical_bytes(
    pubkey: str, created_at: int, kind: int, tags: list[list[str]], content: str
) -> bytes:
    """The NIP-01 serialization ``[0,pubkey,created_at,kind,tags,content]`` as UTF-8.

    orjson escapes exactly what NIP-01 escapes, plus the other control characters
    (U+0000-U+001F) as ``\\u00XX``. So when its output holds no ``\\u00``, it is the
    canonical form, 20 times faster than ours; otherwise (a control character, or the
    literal text ``\\u00``) our own serializer decides. Property tests hold both equal.
    """
    try:
        fast = orjson.dumps([0, pubkey, created_at, kind, tags, content])
    except TypeError:  # lone surrogate, or a value orjson cannot encode
        fast = None
    if fast is not None and b"\\u00" not in fast:
        return fast
    return nip01_serialize(pubkey, created_at, kind, tags, content)


def nip01_serialize(
    pubkey: str, created_at: int, kind: int, tags: list[list[str]], content: str
) -> bytes:
    """Our own NIP-01 serializer: the seven escapes and nothing else."""
    tag_json = ",".join("[" + ",".join(map(_quote, tag)) + "]" for tag in tags)
    text = f'[0,"{pubkey}",{created_at},{kind},[{tag_json}],{_quote(content)}]'
    try:
        return text.encode("utf-8")
    except UnicodeEncodeError as exc:  # lone surrogates cannot be serialized
        raise InvalidEvent("invalid: event contains a lone UTF-16 surrogate") from exc


def compute_id(pubkey: str, created_at: int, kind: int, tags: list[list[str]], content: str) -> str:
    return hashlib.sha256(canonical_bytes(pubkey, created_at, kind, tags, content)).hexdigest()


_KEYS: dict[str, PublicKeyXOnly] = {}
_KEY_CACHE = 50_000


def public_key(pubkey: str) -> PublicKeyXOnly:
    """The parsed x-only key for a hex pubkey, cached: lifting a key onto the curve costs
    a square root, about a fifth of a verification, and a hub sees the same few thousand
    authors again and again. Bounded; safe across threads (dict operations are atomic)."""
    key = _KEYS.get(pubkey)
    if key is None:
        key = PublicKeyXOnly(bytes.fromhex(pubkey))
        if len(_KEYS) >= _KEY_CACHE:
            _KEYS.clear()
        _KEYS[pubkey] = key
    return key


@dataclass(slots=True)
class Event:
    """A Nostr event as received: fields are checked for shape, not yet for id or signature."""

    id: str
    pubkey: str
    created_at: int
    kind: int
    tags: list[list[str]]
    content: str
    sig: str
    # The NIP-50 index words of ``content``, when a worker thread computed them already
    # (see relay/ingest.py); the store computes them itself otherwise.
    words: str | None = field(default=None, compare=False, repr=False)
    # The event's JSON as received, when it is known to hold exactly these seven fields
    # (a bundle's line, checked by the importer's workers): stored as it is instead of
    # being encoded again. Any valid JSON encoding of the fields is fine to serve.
    raw: str | None = field(default=None, compare=False, repr=False)

    def to_dict(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "pubkey": self.pubkey,
            "created_at": self.created_at,
            "kind": self.kind,
            "tags": self.tags,
            "content": self.content,
            "sig": self.sig,
        }

    def to_json(self) -> str:
        """Wire form (ordinary JSON; any valid encoding is fine off the id path)."""
        return orjson.dumps(self.to_dict()).decode()

    def canonical(self) -> bytes:
        return canonical_bytes(self.pubkey, self.created_at, self.kind, self.tags, self.content)

    def computed_id(self) -> str:
        return hashlib.sha256(self.canonical()).hexdigest()

    def check_id(self) -> None:
        if self.computed_id() != self.id:
            raise InvalidEvent("invalid: event id does not match the hash of its content")

    def check_signature(self) -> None:
        try:
            key = public_key(self.pubkey)
            ok = key.verify(bytes.fromhex(self.sig), bytes.fromhex(self.id))
        except (ValueError, TypeError) as exc:  # pubkey not on the curve, and the like
            raise InvalidEvent("invalid: pubkey is not a valid secp256k1 x-only key") from exc
        if not ok:
            raise InvalidEvent("invalid: signature does not verify")

    def verify(self) -> None:
        """Recompute the id and check the BIP-340 signature; raises :class:`InvalidEvent`."""
        self.check_id()
        self.check_signature()

    def tag_values(self, name: str) -> list[str]:
        return [t[1] for t in self.tags if len(t) >= 2 and t[0] == name]

    def first_tag(self, name: str) -> str | None:
        for t in self.tags:
            if len(t) >= 2 and t[0] == name:
                return t[1]
        return None

    @property
    def d_tag(self) -> str:
        """The ``d`` identifier of an addressable event ("" when absent, per NIP-01)."""
        return self.first_tag("d") or ""

    @property
    def is_protected(self) -> bool:
        """NIP-70: a ``["-"]`` tag means only the author may publish it."""
        return any(len(t) == 1 and t[0] == "-" for t in self.tags)

    @property
    def expiration(self) -> int | None:
        """NIP-40 expiration timestamp, or None (an unparseable value is treated as absent)."""
        value = self.first_tag("expiration")
        if value is None or not value.isdigit() or len(value) > 15:
            return None
        return int(value)


def _is_int(v: Any) -> bool:
    return type(v) is int


def parse_event(obj: Any, *, max_tags: int = 2000, max_content: int = 1 << 20,
                max_tag_value: int = 4096) -> Event:
    """Check the shape of a decoded JSON object and build an :class:`Event`.

    Raises :class:`InvalidEvent` with a NIP-01 ``invalid:`` reason. Limits are
    passed in so the relay can announce the same numbers in NIP-11.
    """
    if type(obj) is not dict:
        raise InvalidEvent("invalid: event must be a JSON object")
    try:
        eid = obj["id"]
        pubkey = obj["pubkey"]
        created_at = obj["created_at"]
        kind = obj["kind"]
        tags = obj["tags"]
        content = obj["content"]
        sig = obj["sig"]
    except KeyError as exc:
        raise InvalidEvent(f"invalid: event has no {exc.args[0]!r} field") from None
    if type(eid) is not str or not HEX64.fullmatch(eid):
        raise InvalidEvent("invalid: id must be 64 lowercase hex characters")
    if type(pubkey) is not str or not HEX64.fullmatch(pubkey):
        raise InvalidEvent("invalid: pubkey must be 64 lowercase hex characters")
    if type(sig) is not str or not HEX128.fullmatch(sig):
        raise InvalidEvent("invalid: sig must be 128 lowercase hex characters")
    if not _is_int(created_at) or not 0 <= created_at <= MAX_TIMESTAMP:
        raise InvalidEvent("invalid: created_at must be a non-negative integer")
    if not _is_int(kind) or not 0 <= kind <= MAX_KIND:
        raise InvalidEvent("invalid: kind must be an integer between 0 and 65535")
    if type(content) is not str:
        raise InvalidEvent("invalid: content must be a string")
    if len(content) > max_content:
        raise InvalidEvent(f"invalid: content is longer than {max_content} characters")
    if type(tags) is not list:
        raise InvalidEvent("invalid: tags must be an array of arrays of strings")
    if len(tags) > max_tags:
        raise InvalidEvent(f"invalid: more than {max_tags} tags")
    for tag in tags:
        if type(tag) is not list:
            raise InvalidEvent("invalid: tags must be an array of arrays of strings")
        for v in tag:
            if type(v) is not str:
                raise InvalidEvent("invalid: tags must be an array of arrays of strings")
            if len(v) > max_tag_value:
                raise InvalidEvent(f"invalid: a tag value is longer than {max_tag_value} characters")
    return Event(eid, pubkey, created_at, kind, tags, content, sig)


def sign_event(secret: bytes | PrivateKey, kind: int, content: str = "",
               tags: list[list[str]] | None = None, created_at: int | None = None) -> Event:
    """Build and sign an event (BIP-340). Used by the hub for its own events and by tests."""
    import time

    key = secret if isinstance(secret, PrivateKey) else PrivateKey(secret)
    pubkey = key.public_key_xonly.format().hex()
    tags = tags if tags is not None else []
    ts = int(time.time()) if created_at is None else created_at
    eid = compute_id(pubkey, ts, kind, tags, content)
    sig = key.sign_schnorr(bytes.fromhex(eid)).hex()
    return Event(eid, pubkey, ts, kind, tags, content, sig)
