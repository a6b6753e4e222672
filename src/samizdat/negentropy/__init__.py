"""Negentropy (range-based set reconciliation), protocol version 1, as used by NIP-77.

Pure code: no sockets, no SQL, no asyncio. The relay wires
:class:`Negentropy` to ``NEG-OPEN``/``NEG-MSG`` frames (hex-encoded messages) and
gives it a :class:`Storage` over the events a filter selects.

Typical use::

    client = Negentropy(VectorStorage.from_items(mine), frame_size_limit=60000)
    server = Negentropy(VectorStorage.from_items(theirs))
    msg = client.initiate()
    while msg is not None:
        reply, have, need = client.reconcile(server.reconcile(msg))
        ...
        msg = reply
"""

from .errors import NegentropyError
from .fingerprint import fingerprint_from_sum, fingerprint_of_ids, sum_ids
from .packed import PackedStorage
from .protocol import (
    MIN_FRAME_SIZE_LIMIT,
    Negentropy,
    ReconcileResult,
    decode_hex_message,
)
from .storage import Storage, VectorStorage
from .types import (
    FINGERPRINT_SIZE,
    ID_SIZE,
    INFINITY,
    PROTOCOL_VERSION,
    Bound,
    Item,
    Mode,
)
from .varint import decode_varint, encode_varint

__all__ = [
    "FINGERPRINT_SIZE",
    "ID_SIZE",
    "INFINITY",
    "MIN_FRAME_SIZE_LIMIT",
    "PROTOCOL_VERSION",
    "Bound",
    "Item",
    "Mode",
    "Negentropy",
    "NegentropyError",
    "PackedStorage",
    "ReconcileResult",
    "Storage",
    "VectorStorage",
    "decode_hex_message",
    "decode_varint",
    "encode_varint",
    "fingerprint_from_sum",
    "fingerprint_of_ids",
    "sum_ids",
]
