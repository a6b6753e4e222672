"""The negentropy V1 reconciler: builds and answers messages, sans I/O.

One :class:`Negentropy` object holds one side of one sync session. The initiator
(the NIP-77 client, or a hub that pulls from another) calls :meth:`Negentropy.initiate`
and then feeds each reply to :meth:`Negentropy.reconcile`, collecting the ids it has
and the ids it needs, until ``reconcile`` returns no reply. The responder (the
relay) feeds every incoming message to ``reconcile`` and sends back what it returns.

The algorithm follows the reference implementation (hoytech/negentropy) step by
step, because the reference conformance suite checks that every implementation
produces byte-identical messages: ranges are split into 16 buckets by count, a
range of fewer than 32 items is sent as an id list, and when a frame size limit is
set, processing stops ``200`` bytes short of it and the rest of the universe is
sent as one fingerprint range to be picked up in a later round.

Where the reference is lenient with malformed input (wrapping varints, reading past
the end), we refuse with :class:`~samizdat.negentropy.errors.NegentropyError`.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

from .errors import NegentropyError
from .storage import Storage
from .types import (
    FINGERPRINT_SIZE,
    ID_SIZE,
    INFINITY,
    INFINITY_BOUND,
    PROTOCOL_VERSION,
    PROTOCOL_VERSION_MAX_BYTE,
    PROTOCOL_VERSION_MIN_BYTE,
    ZERO_BOUND,
    Bound,
    Mode,
    minimal_bound,
)
from .varint import decode_varint, encode_varint

#: The smallest frame size limit accepted (the reference's minimum): the limit is
#: approached in steps of up to ~200 bytes, so tiny limits could not make progress.
MIN_FRAME_SIZE_LIMIT = 4096
#: How far below the limit range processing stops, leaving room for the closing
#: fingerprint range and the last id. Same as the reference, for identical output.
FRAME_SIZE_SLACK = 200
#: Ranges smaller than this are sent as id lists, larger ones split into buckets.
BUCKETS = 16
_ID_LIST_THRESHOLD = BUCKETS * 2

_MODE_SKIP = encode_varint(Mode.SKIP)
_MODE_FINGERPRINT = encode_varint(Mode.FINGERPRINT)
_MODE_ID_LIST = encode_varint(Mode.ID_LIST)


@dataclass(slots=True)
class ReconcileResult:
    """What one round gives the initiator.

    ``reply`` is ``None`` when reconciliation is complete. ``have_ids`` are ids the
    initiator holds and the responder lacks; ``need_ids`` the reverse. With a frame
    size limit an id may be reported in more than one round (as the reference
    documents), so callers that act on them should de-duplicate.
    """

    reply: bytes | None
    have_ids: list[bytes] = field(default_factory=list)
    need_ids: list[bytes] = field(default_factory=list)

    def __iter__(self) -> Iterator[Any]:
        """Unpack as ``reply, have, need = ne.reconcile(msg)``, like the reference API."""
        return iter((self.reply, self.have_ids, self.need_ids))


class _Reader:
    """A cursor over one incoming message; every read checks what is left."""

    __slots__ = ("data", "end", "last_timestamp", "pos")

    def __init__(self, data: bytes) -> None:
        self.data = data
        self.pos = 0
        self.end = len(data)
        self.last_timestamp = 0

    def at_end(self) -> bool:
        return self.pos >= self.end

    def varint(self, what: str) -> int:
        try:
            value, self.pos = decode_varint(self.data, self.pos)
        except NegentropyError as e:
            raise NegentropyError(f"{e} (reading {what} at byte {self.pos})") from None
        return value

    def take(self, n: int, what: str) -> bytes:
        start = self.pos
        stop = start + n
        if stop > self.end:
            raise NegentropyError(
                f"truncated {what} at byte {start}: need {n} bytes, {self.end - start} left"
            )
        self.pos = stop
        return self.data[start:stop]

    def bound(self) -> Bound:
        encoded = self.varint("bound timestamp")
        if encoded == 0 or self.last_timestamp == INFINITY:
            timestamp = INFINITY
        else:
            # Offsets from the previous bound; past the top they saturate to infinity
            # as in the reference rather than wrap.
            timestamp = min(self.last_timestamp + encoded - 1, INFINITY)
        self.last_timestamp = timestamp
        length = self.varint("bound id length")
        if length > ID_SIZE:
            raise NegentropyError(f"bound id prefix of {length} bytes (at most {ID_SIZE})")
        return Bound(timestamp, self.take(length, "bound id prefix"))


class _BoundWriter:
    """Encodes bounds with timestamps as deltas from the previous one in the message."""

    __slots__ = ("last_timestamp",)

    def __init__(self) -> None:
        self.last_timestamp = 0

    def encode(self, bound: Bound) -> bytes:
        timestamp = bound.timestamp
        prefix = bound.id_prefix
        if timestamp == INFINITY:
            self.last_timestamp = INFINITY
            head = b"\x00"
        else:
            delta = timestamp - self.last_timestamp
            if delta < 0:  # pragma: no cover - bounds are produced in order
                raise NegentropyError("internal error: bounds encoded out of order")
            self.last_timestamp = timestamp
            head = encode_varint(delta + 1)
        return head + encode_varint(len(prefix)) + prefix


class Negentropy:
    """One side of one negentropy session over a sealed :class:`Storage`.

    ``frame_size_limit`` caps the size of every message this side produces (0 means
    no cap; otherwise at least 4096). ``max_message_size`` optionally refuses
    *incoming* messages above a size; it is separate from the frame limit because
    peers may legitimately use larger frames than we do.
    """

    __slots__ = ("_is_initiator", "_limit", "_max_in", "_started", "_storage")

    def __init__(
        self,
        storage: Storage,
        frame_size_limit: int = 60000,
        *,
        max_message_size: int | None = None,
    ) -> None:
        if not isinstance(frame_size_limit, int) or frame_size_limit < 0:
            raise NegentropyError(
                f"frame_size_limit must be a non-negative int, got {frame_size_limit!r}"
            )
        if frame_size_limit and frame_size_limit < MIN_FRAME_SIZE_LIMIT:
            raise NegentropyError(
                f"frame_size_limit {frame_size_limit} is too small (0 or at least {MIN_FRAME_SIZE_LIMIT})"
            )
        if max_message_size is not None and max_message_size < 1:
            raise NegentropyError("max_message_size must be positive")
        self._storage = storage
        self._limit = frame_size_limit
        self._max_in = max_message_size
        self._is_initiator = False
        self._started = False

    @property
    def is_initiator(self) -> bool:
        return self._is_initiator

    @property
    def frame_size_limit(self) -> int:
        return self._limit

    # -- public entry points -------------------------------------------------

    def initiate(self) -> bytes:
        """The first message of a session: the whole universe, split as usual."""
        if self._started:
            raise NegentropyError(
                "already initiated" if self._is_initiator else "already acting as responder"
            )
        self._is_initiator = True
        self._started = True
        out = bytearray((PROTOCOL_VERSION,))
        self._split_range(0, self._storage.size(), INFINITY_BOUND, out, _BoundWriter())
        return bytes(out)

    def reconcile(self, msg: bytes) -> bytes | ReconcileResult:
        """Process one incoming message.

        As responder: returns the reply to send (always a message; a peer speaking a
        newer protocol gets the single byte of our version, so it can downgrade).
        As initiator (after :meth:`initiate`): returns a :class:`ReconcileResult`,
        which also unpacks as ``(reply_or_None, have_ids, need_ids)``.
        """
        if self._is_initiator:
            return self.process_reply(msg)
        return self.respond(msg)

    def respond(self, msg: bytes) -> bytes:
        """Responder side of :meth:`reconcile`, with a precise return type."""
        if self._is_initiator:
            raise NegentropyError("initiator cannot respond; use process_reply")
        self._started = True
        return self._reconcile(msg, [], [])

    def process_reply(self, msg: bytes) -> ReconcileResult:
        """Initiator side of :meth:`reconcile`, with a precise return type."""
        if not self._is_initiator:
            raise NegentropyError("not the initiator: call initiate() first")
        have: list[bytes] = []
        need: list[bytes] = []
        out = self._reconcile(msg, have, need)
        return ReconcileResult(None if len(out) == 1 else out, have, need)

    # -- the algorithm --------------------------------------------------------

    def _exceeded(self, n: int) -> bool:
        return bool(self._limit) and n > self._limit - FRAME_SIZE_SLACK

    def _reconcile(self, msg: bytes, have: list[bytes], need: list[bytes]) -> bytes:
        if not isinstance(msg, bytes | bytearray | memoryview):
            raise NegentropyError(f"message must be bytes, not {type(msg).__name__}")
        msg = bytes(msg)
        if self._max_in is not None and len(msg) > self._max_in:
            raise NegentropyError(f"message too large: {len(msg)} bytes (limit {self._max_in})")
        if not msg:
            raise NegentropyError("empty message: no protocol version byte")

        initiator = self._is_initiator
        storage = self._storage
        out = bytearray((PROTOCOL_VERSION,))

        version = msg[0]
        if not PROTOCOL_VERSION_MIN_BYTE <= version <= PROTOCOL_VERSION_MAX_BYTE:
            raise NegentropyError(f"invalid protocol version byte 0x{version:02x}")
        if version != PROTOCOL_VERSION:
            if initiator:
                raise NegentropyError(
                    f"peer supports only protocol version byte 0x{version:02x}, we speak 0x{PROTOCOL_VERSION:02x}"
                )
            # Spec: answer with the highest version we support, nothing else.
            return bytes(out)

        reader = _Reader(msg)
        reader.pos = 1
        writer = _BoundWriter()
        size = storage.size()
        prev_bound = ZERO_BOUND
        prev_key = ZERO_BOUND.key()
        prev_index = 0
        skip = False

        while not reader.at_end():
            o = bytearray()
            curr_bound = reader.bound()
            curr_key = curr_bound.key()
            if curr_key < prev_key:
                raise NegentropyError(
                    f"bounds out of order at byte {reader.pos}: upper bound below the previous one"
                )
            mode = reader.varint("mode")

            lower = prev_index
            upper = storage.find_lower_bound(prev_index, size, curr_bound)

            if mode == Mode.SKIP:
                skip = True

            elif mode == Mode.FINGERPRINT:
                theirs = reader.take(FINGERPRINT_SIZE, "fingerprint")
                if theirs != storage.fingerprint(lower, upper):
                    if skip:
                        skip = False
                        o += writer.encode(prev_bound)
                        o += _MODE_SKIP
                    self._split_range(lower, upper, curr_bound, o, writer)
                else:
                    skip = True

            elif mode == Mode.ID_LIST:
                count = reader.varint("id count")
                if count > (reader.end - reader.pos) // ID_SIZE:
                    raise NegentropyError(
                        f"truncated id list: {count} ids announced, "
                        f"{reader.end - reader.pos} bytes left"
                    )
                data = reader.data
                start = reader.pos
                reader.pos = start + count * ID_SIZE

                if initiator:
                    skip = True
                    theirs_ids = dict.fromkeys(
                        data[p : p + ID_SIZE] for p in range(start, reader.pos, ID_SIZE)
                    )
                    for _, item_id in storage.iterate(lower, upper):
                        if item_id in theirs_ids:
                            del theirs_ids[item_id]
                        else:
                            have.append(item_id)
                    need.extend(theirs_ids)
                else:
                    if skip:
                        skip = False
                        o += writer.encode(prev_bound)
                        o += _MODE_SKIP
                    response = bytearray()
                    sent = 0
                    end_bound = curr_bound
                    # Room left for ids before the frame limit (counting what is
                    # already in ``out``, as the reference does); None = unlimited.
                    room = self._limit - FRAME_SIZE_SLACK - len(out) if self._limit else None
                    for index, item in enumerate(storage.iterate(lower, upper), lower):
                        if room is not None and len(response) > room:
                            # Send what fits; the rest of this range goes into the
                            # closing fingerprint below.
                            end_bound = Bound(item[0], item[1])
                            upper = index
                            break
                        response += item[1]
                        sent += 1
                    o += writer.encode(end_bound)
                    o += _MODE_ID_LIST
                    o += encode_varint(sent)
                    o += response
                    out += o
                    o = bytearray()

            else:
                raise NegentropyError(f"unexpected mode {mode}")

            if self._exceeded(len(out) + len(o)):
                # Stop here: one fingerprint for everything from this range on, to be
                # reconciled in later rounds.
                out += writer.encode(INFINITY_BOUND)
                out += _MODE_FINGERPRINT
                out += storage.fingerprint(upper, size)
                break
            out += o

            prev_index = upper
            prev_bound = curr_bound
            prev_key = curr_key

        return bytes(out)

    def _split_range(
        self, lower: int, upper: int, upper_bound: Bound, o: bytearray, writer: _BoundWriter
    ) -> None:
        """Describe ``[lower, upper)`` either as an id list or as 16 bucket fingerprints."""
        storage = self._storage
        n = upper - lower
        if n < _ID_LIST_THRESHOLD:
            o += writer.encode(upper_bound)
            o += _MODE_ID_LIST
            o += encode_varint(n)
            for _, item_id in storage.iterate(lower, upper):
                o += item_id
            return

        per_bucket, with_extra = divmod(n, BUCKETS)
        curr = lower
        for i in range(BUCKETS):
            bucket_size = per_bucket + (1 if i < with_extra else 0)
            fp = storage.fingerprint(curr, curr + bucket_size)
            curr += bucket_size
            if curr == upper:
                next_bound = upper_bound
            else:
                next_bound = minimal_bound(storage.get_item(curr - 1), storage.get_item(curr))
            o += writer.encode(next_bound)
            o += _MODE_FINGERPRINT
            o += fp


_HEX_DIGITS = frozenset(b"0123456789abcdefABCDEF")


def decode_hex_message(text: str, max_size: int | None = None) -> bytes:
    """Decode a NIP-77 hex-encoded message strictly.

    ``bytes.fromhex`` would accept spaces and report errors as a plain ValueError;
    here anything but an even run of hex digits is a :class:`NegentropyError`, and
    ``max_size`` (in decoded bytes) is checked before decoding.
    """
    if not isinstance(text, str):
        raise NegentropyError(f"hex message must be a string, not {type(text).__name__}")
    if len(text) % 2:
        raise NegentropyError("hex message has an odd number of digits")
    if max_size is not None and len(text) // 2 > max_size:
        raise NegentropyError(f"message too large: {len(text) // 2} bytes (limit {max_size})")
    raw = text.encode("ascii", "replace")
    if not _HEX_DIGITS.issuperset(raw):
        raise NegentropyError("hex message has a non-hex character")
    return bytes.fromhex(text)
