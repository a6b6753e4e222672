"""Keys: NIP-19 bech32 forms and the hub's own keypair file."""

from __future__ import annotations

import os
import stat
from pathlib import Path

import bech32
from coincurve import PrivateKey

HUB_KEY_FILE = "hub.key"


def npub(pubkey_hex: str) -> str:
    return bech32.bech32_encode("npub", bech32.convertbits(bytes.fromhex(pubkey_hex), 8, 5))


def nsec(secret: bytes) -> str:
    return bech32.bech32_encode("nsec", bech32.convertbits(secret, 8, 5))


def decode_npub(value: str) -> str:
    hrp, data = bech32.bech32_decode(value)
    raw = bech32.convertbits(data, 5, 8, False) if data is not None else None
    if hrp != "npub" or raw is None or len(raw) != 32:
        raise ValueError(f"{value!r} is not an npub")
    return bytes(raw).hex()


def decode_event_id(value: str) -> str:
    """An event id from 64 hex characters, a NIP-19 ``note1…``, or an ``nevent1…`` (its
    TLV entry 0), as lowercase hex; ValueError otherwise."""
    value = value.strip()
    if len(value) == 64:
        try:
            bytes.fromhex(value)
            return value.lower()
        except ValueError:
            pass
    hrp, data = bech32.bech32_decode(value.lower())
    raw = bech32.convertbits(data, 5, 8, False) if data is not None else None
    if raw is not None and hrp == "note" and len(raw) == 32:
        return bytes(raw).hex()
    if raw is not None and hrp == "nevent":
        i = 0
        while i + 2 <= len(raw):
            kind, size = raw[i], raw[i + 1]
            if kind == 0 and size == 32 and i + 2 + size <= len(raw):
                return bytes(raw[i + 2:i + 34]).hex()
            i += 2 + size
    raise ValueError(f"{value[:80]!r} is not an event id (64 hex characters, note1… or "
                     "nevent1…)")


def pubkey_of(key: PrivateKey) -> str:
    return key.public_key_xonly.format().hex()


class HubKeyError(RuntimeError):
    pass


def load_or_create_hub_key(data_dir: Path) -> PrivateKey:
    """The hub's secret key, made on first run as ``hub.key`` (hex, mode 0600).

    The hub signs receipts and bundle manifests with it; whoever holds the file
    can speak as the hub, so it is created private and a readable one is refused.
    """
    data_dir.mkdir(parents=True, exist_ok=True)
    path = data_dir / HUB_KEY_FILE
    try:
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    except FileExistsError:
        return read_hub_key(data_dir)
    key = PrivateKey()
    with os.fdopen(fd, "w") as fh:
        fh.write(key.secret.hex() + "\n")
        fh.flush()
        os.fsync(fh.fileno())
    return key


def read_hub_key(data_dir: Path) -> PrivateKey:
    path = data_dir / HUB_KEY_FILE
    mode = path.stat().st_mode
    if mode & (stat.S_IRWXG | stat.S_IRWXO):
        raise HubKeyError(
            f"{path} can be read by other users (mode {oct(mode & 0o777)}); "
            f"run `chmod 600 {path}` and start again"
        )
    text = path.read_text().strip()
    try:
        secret = bytes.fromhex(text)
        if len(secret) != 32:
            raise ValueError
        return PrivateKey(secret)
    except ValueError:
        raise HubKeyError(
            f"{path} does not hold a 64-character hex secret key; restore it from your backup "
            "or move it aside to make a new hub identity"
        ) from None
