"""Hub configuration: defaults that need no file, a TOML file, then command-line flags.

Every limit the relay enforces is here, and the NIP-11 document announces the
same numbers. Unknown keys in the file are errors (a typo must not silently
leave a hub open).
"""

from __future__ import annotations

import dataclasses
import re
import tomllib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

_MIME_PATTERN = re.compile(r"[a-z0-9][a-z0-9!#$&^_.+-]*/(\*|[a-z0-9][a-z0-9!#$&^_.+-]*)")


class ConfigError(ValueError):
    """The configuration is wrong; the message names the key and what to write instead."""


@dataclass
class ServerConfig:
    host: str = "127.0.0.1"
    port: int = 7447
    # URLs people use to reach the hub (for NIP-42 relay-tag checks besides the Host header).
    public_urls: list[str] = field(default_factory=list)
    # permessage-deflate costs CPU on every frame; see docs/decisions.md.
    websocket_compression: bool = False
    # HTTPS: the same app on a second port (0 = any free port), with a self-signed
    # certificate made on first run in the data dir unless tls_cert/tls_key name the
    # operator's own PEM files. See docs/configuration.md.
    https: bool = True
    https_port: int = 7448
    tls_cert: str = ""
    tls_key: str = ""
    # The web app's URL for the QR code and the poster; empty: http:// on the first LAN address.
    public_url: str = ""
    # Printed on the poster (/poster). The password only if set: then the poster also
    # carries a QR code that joins the network.
    wifi_name: str = ""
    wifi_password: str = ""


@dataclass
class RelayInfo:
    name: str = "samizdat hub"
    description: str = "A samizdat hub: a Nostr relay that keeps news flowing when the internet is cut."
    contact: str = ""
    banner: str = ""


@dataclass
class Limits:
    max_message_length: int = 262_144
    max_subscriptions: int = 32
    max_filters: int = 10
    max_filter_values: int = 1000
    max_limit: int = 10_000
    default_limit: int = 500
    max_subid_length: int = 64
    max_event_tags: int = 2000
    max_content_length: int = 100_000
    max_tag_value_length: int = 4096
    # Seconds before/after now; 0 disables the bound. A hub also archives what it syncs,
    # so the past bound is generous.
    created_at_lower_limit: int = 10 * 365 * 24 * 3600
    created_at_upper_limit: int = 15 * 60
    min_pow_difficulty: int = 0
    max_connections: int = 2000
    # Messages queued for a client that does not read before it is cut off.
    max_outbound_messages: int = 50_000
    # NIP-77 negentropy sync. 60,000-byte frames are 120,000 hex characters: under
    # strfry's 128 KB WebSocket limit.
    negentropy_frame_size_limit: int = 60_000
    max_negentropy_sessions: int = 4
    negentropy_max_items: int = 5_000_000
    negentropy_idle_seconds: int = 120


@dataclass
class RateLimits:
    """Token buckets: a rate per second and a burst. 0 disables that bucket."""

    messages_per_second: float = 200.0
    messages_burst: int = 2000
    events_per_second: float = 100.0
    events_burst: int = 1000
    ip_events_per_second: float = 300.0
    ip_events_burst: int = 3000
    ip_max_connections: int = 64
    # Invalid or rate-limited messages a client may send (refilling 1/s) before it is cut off.
    strikes: int = 30


@dataclass
class AuthConfig:
    """NIP-42. With ``allowed_pubkeys`` set, only those keys may write after authenticating."""

    required_for_write: bool = False
    required_for_read: bool = False
    allowed_pubkeys: list[str] = field(default_factory=list)


@dataclass
class StoreConfig:
    # FULL: every commit reaches the disk before OK (power-loss safe); NORMAL: survives a
    # killed process but maybe not a power cut.
    synchronous: str = "FULL"
    readers: int = 2
    expiry_purge_seconds: int = 60


@dataclass
class SyncConfig:
    """Continuous NIP-77 sync with other hubs (``samizdat serve --peer URL``)."""

    peers: list[str] = field(default_factory=list)


@dataclass
class BlobsConfig:
    """Blossom media store (BUD-01/02/04/06/11/12) on the hub's port; blobs live in
    ``DATA/blobs/``, their index in ``DATA/blobs.sqlite3``."""

    enabled: bool = True
    # Largest blob accepted by upload or mirror, in bytes.
    max_size: int = 100 * 1024 * 1024
    # MIME types accepted; ``type/*`` matches a whole family except image/svg+xml (SVG can
    # carry script: list it by its full name to allow it).
    allowed_types: list[str] = field(
        default_factory=lambda: ["image/*", "video/*", "audio/*", "application/pdf"]
    )
    # When auth.allowed_pubkeys is set, only those keys may upload and mirror.
    restrict_to_allowed_pubkeys: bool = True
    # GET /list/<pubkey> only with a `list` token signed by that pubkey.
    list_requires_auth: bool = False
    # Seconds an authorization token's created_at may lie ahead of the hub's clock.
    auth_clock_skew: int = 120
    # PUT /mirror: 0 turns mirroring off.
    mirror_max_size: int = 100 * 1024 * 1024
    mirror_timeout: float = 60.0


@dataclass
class ReceiptsConfig:
    """Hub receipts: every ``interval_minutes`` a kind-3041 event signed with the hub key
    commits to the ids stored since the last one (docs/report-format.md)."""

    enabled: bool = True
    # Minutes per receipt window (a fraction is allowed; at least 1 second).
    interval_minutes: float = 10.0
    # The hub's declared place as a geohash (at most 6 characters), public in every
    # receipt; "" declares none.
    place: str = ""
    # NIP-03: submit receipts to OpenTimestamps calendars when the hub is online.
    opentimestamps: bool = False
    ots_calendars: list[str] = field(default_factory=lambda: [
        "https://alice.btc.calendar.opentimestamps.org",
        "https://bob.btc.calendar.opentimestamps.org",
        "https://finney.calendar.eternitywall.com",
        "https://btc.calendar.catallaxy.com",
    ])

    @property
    def interval_seconds(self) -> int:
        return max(1, round(self.interval_minutes * 60))


@dataclass
class Config:
    data_dir: Path = Path("data")
    server: ServerConfig = field(default_factory=ServerConfig)
    relay: RelayInfo = field(default_factory=RelayInfo)
    limits: Limits = field(default_factory=Limits)
    rate: RateLimits = field(default_factory=RateLimits)
    auth: AuthConfig = field(default_factory=AuthConfig)
    store: StoreConfig = field(default_factory=StoreConfig)
    sync: SyncConfig = field(default_factory=SyncConfig)
    blobs: BlobsConfig = field(default_factory=BlobsConfig)
    receipts: ReceiptsConfig = field(default_factory=ReceiptsConfig)

    @property
    def db_path(self) -> Path:
        return self.data_dir / "events.sqlite3"


def _fill(obj: Any, values: dict[str, Any], where: str) -> None:
    fields = {f.name: f for f in dataclasses.fields(obj)}
    for key, value in values.items():
        if key not in fields:
            known = ", ".join(sorted(fields))
            raise ConfigError(f"unknown setting {where}{key!r}; known settings here: {known}")
        current = getattr(obj, key)
        if dataclasses.is_dataclass(current):
            if not isinstance(value, dict):
                raise ConfigError(f"{where}{key} must be a table ([{key}])")
            _fill(current, value, f"{where}{key}.")
            continue
        expected = type(current)
        if isinstance(current, Path):
            value = Path(value) if isinstance(value, str) else value
        elif expected is float and type(value) is int:
            value = float(value)
        if not isinstance(value, expected) or (expected is int and type(value) is bool):
            raise ConfigError(
                f"{where}{key} must be {expected.__name__}, got {type(value).__name__} {value!r}"
            )
        if (expected in (int, float)) and value < 0:
            raise ConfigError(f"{where}{key} must not be negative")
        setattr(obj, key, value)


def load_config(path: str | Path | None = None, **overrides: Any) -> Config:
    """Defaults, then the TOML file at ``path`` (if any), then non-None ``overrides``.

    Overrides use dotted names with underscores: ``data_dir``, ``server.host``...
    """
    cfg = Config()
    if path is not None:
        p = Path(path)
        try:
            data = tomllib.loads(p.read_text(encoding="utf-8"))
        except FileNotFoundError:
            raise ConfigError(f"config file {p} does not exist") from None
        except tomllib.TOMLDecodeError as exc:
            raise ConfigError(f"config file {p} is not valid TOML: {exc}") from None
        _fill(cfg, data, "")
    for key, value in overrides.items():
        if value is None:
            continue
        *parents, leaf = key.split(".")
        target: Any = cfg
        for part in parents:
            target = getattr(target, part)
        _fill(target, {leaf: value}, ".".join(parents) + "." if parents else "")
    for pk in cfg.auth.allowed_pubkeys:
        if len(pk) != 64 or any(c not in "0123456789abcdef" for c in pk):
            raise ConfigError(f"auth.allowed_pubkeys: {pk!r} is not a 64-character hex pubkey")
    for url in cfg.sync.peers:
        if not url.startswith(("ws://", "wss://")):
            raise ConfigError(f"sync.peers: {url!r} must be a ws:// or wss:// URL")
    for mime in cfg.blobs.allowed_types:
        if not isinstance(mime, str) or not _MIME_PATTERN.fullmatch(mime):
            raise ConfigError(f"blobs.allowed_types: {mime!r} is not a MIME type like "
                              '"image/jpeg" or "image/*" (lowercase)')
    _check_receipts(cfg.receipts)
    if not 0 <= cfg.server.port < 65536:
        raise ConfigError("server.port must be between 0 (any free port) and 65535")
    _check_https(cfg.server)
    return cfg


def _check_https(srv: ServerConfig) -> None:
    if not 0 <= srv.https_port < 65536:
        raise ConfigError("server.https_port must be between 0 (any free port) and 65535")
    if srv.https and srv.https_port and srv.https_port == srv.port:
        raise ConfigError(f"server.https_port {srv.https_port} is also server.port; choose "
                          "another one (--https-port) or turn HTTPS off (--no-https)")
    if bool(srv.tls_cert) != bool(srv.tls_key):
        raise ConfigError("server.tls_cert and server.tls_key go together: set both (your own "
                          "certificate and its key) or neither (the hub makes its own)")
    if srv.public_url and not srv.public_url.startswith(("http://", "https://")):
        raise ConfigError(f"server.public_url: {srv.public_url!r} must start with http:// "
                          "or https://")


def _check_receipts(rc: ReceiptsConfig) -> None:
    from .receipts.receipt import check_place

    if rc.interval_minutes <= 0:
        raise ConfigError("receipts.interval_minutes must be more than 0 (10 = a receipt "
                          "every ten minutes)")
    why = check_place(rc.place)
    if why is not None:
        raise ConfigError(f"receipts.place: {why}")
    for url in rc.ots_calendars:
        if not isinstance(url, str) or not url.startswith(("http://", "https://")):
            raise ConfigError(f"receipts.ots_calendars: {url!r} must be an http(s):// URL")
