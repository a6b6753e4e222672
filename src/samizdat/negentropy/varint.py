"""Negentropy varints: base-128, most significant digit first.

This is *not* the LEB128 of protobuf (which puts the least significant digit
first): every byte but the last has its high bit set, and the digits run from
the most significant down. The spec asks for "as few digits as possible", so a
leading zero digit (a first byte of ``0x80``) is refused as non-canonical, and so
is anything above 2**64-1: no field of the protocol needs more, and bounding the
value also bounds how long a hostile run of ``0xff`` bytes can keep us decoding.
"""

from __future__ import annotations

from .errors import NegentropyError

MAX_VARINT = (1 << 64) - 1
#: A u64 needs at most ten 7-bit digits.
MAX_VARINT_BYTES = 10

# Single-byte encodings are by far the most common (modes, small lengths, deltas).
_SMALL = [bytes([i]) for i in range(128)]


def encode_varint(n: int) -> bytes:
    """Encode ``0 <= n <= 2**64-1``."""
    if n < 128:
        if n < 0:
            raise NegentropyError(f"cannot encode negative varint {n}")
        return _SMALL[n]
    if n > MAX_VARINT:
        raise NegentropyError(f"varint {n} does not fit in 64 bits")
    digits = bytearray()
    while n:
        digits.append(n & 0x7F)
        n >>= 7
    digits.reverse()
    for i in range(len(digits) - 1):
        digits[i] |= 0x80
    return bytes(digits)


def decode_varint(data: bytes | bytearray | memoryview, pos: int = 0) -> tuple[int, int]:
    """Decode the varint starting at ``data[pos]``; return ``(value, next_pos)``.

    Raises :class:`NegentropyError` if the input ends inside the varint, if it has a
    leading zero digit, or if the value exceeds 64 bits.
    """
    end = len(data)
    if pos >= end:
        raise NegentropyError("truncated varint: input ends before it starts")
    byte = data[pos]
    pos += 1
    if byte < 0x80:
        return byte, pos
    if byte == 0x80:
        raise NegentropyError("non-minimal varint: leading zero digit")
    value = byte & 0x7F
    while True:
        if pos >= end:
            raise NegentropyError("truncated varint: input ends inside it")
        byte = data[pos]
        pos += 1
        value = (value << 7) | (byte & 0x7F)
        if value > MAX_VARINT:
            raise NegentropyError("varint does not fit in 64 bits")
        if byte < 0x80:
            return value, pos
