"""The ``samizdat`` command: wires configuration into components, nothing more."""

from __future__ import annotations

import asyncio
import logging
import sys
from pathlib import Path

import click
import orjson
from rich.console import Console

from . import __version__
from .config import Config, ConfigError, load_config

console = Console(stderr=True)


def _load(config: str | None, **overrides: object) -> Config:
    try:
        return load_config(config, **overrides)
    except ConfigError as exc:
        raise click.UsageError(str(exc)) from None


def _print_json(obj: object) -> None:
    sys.stdout.write(orjson.dumps(obj, option=orjson.OPT_INDENT_2).decode() + "\n")


def _run_event_loop(coro: object) -> None:
    """asyncio.run, on uvloop when it is installed (SAMIZDAT_UVLOOP=0 turns it off)."""
    import os

    if os.environ.get("SAMIZDAT_UVLOOP", "1") != "0":
        try:
            import uvloop
        except ImportError:
            pass
        else:
            uvloop.run(coro)  # type: ignore[arg-type]
            return
    asyncio.run(coro)  # type: ignore[arg-type]


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(__version__, prog_name="samizdat")
def main() -> None:
    """samizdat: a hub that keeps verifiable news flowing when the internet is cut.

    Start a hub with `samizdat serve`; see how much it holds with `samizdat info`.
    """


@main.command()
@click.option("--data", "data_dir", type=click.Path(file_okay=False), default=None,
              help="Directory for the database and the hub key [default: ./data].")
@click.option("--host", default=None, help="Address to listen on [default: 127.0.0.1]. "
              "Use 0.0.0.0 to let phones on the local Wi-Fi connect.")
@click.option("--port", type=int, default=None, help="TCP port [default: 7447].")
@click.option("--config", "config", type=click.Path(dir_okay=False), default=None,
              help="TOML configuration file (see docs/configuration.md).")
@click.option("--peer", "peers", multiple=True, metavar="URL",
              help="Keep in sync with the hub or relay at URL (NIP-77); repeatable.")
@click.option("--https-port", type=int, default=None,
              help="Port for HTTPS with the hub's own certificate [default: 7448; 0: any "
                   "free port].")
@click.option("--https/--no-https", "https", default=None,
              help="Also serve everything over HTTPS [default: on].")
@click.option("--qr/--no-qr", "show_qr", default=None,
              help="Print a QR code of the web app's address [default: when the output is "
                   "a terminal].")
@click.option("-v", "--verbose", is_flag=True, help="Log every connection and batch.")
def serve(data_dir: str | None, host: str | None, port: int | None, config: str | None,
          peers: tuple[str, ...], https_port: int | None, https: bool | None,
          show_qr: bool | None, verbose: bool) -> None:
    """Run the hub: Nostr relay, NIP-11 document, web app and status page on one port,
    the same over HTTPS on a second one. Prints the addresses to give people."""
    from .hub import run_hub
    from .nostr.keys import HubKeyError, load_or_create_hub_key
    from .store import StoreError
    from .tls import TLSError

    logging.basicConfig(level=logging.DEBUG if verbose else logging.INFO,
                        format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    cfg = _load(config, data_dir=data_dir, **{"server.host": host, "server.port": port,
                                               "server.https_port": https_port,
                                               "server.https": https})
    for url in peers:
        if not url.startswith(("ws://", "wss://")):
            raise click.UsageError(f"--peer {url!r}: use a ws:// or wss:// address")
    cfg.sync.peers = list(dict.fromkeys([*cfg.sync.peers, *peers]))
    try:
        key = load_or_create_hub_key(cfg.data_dir)
    except (HubKeyError, OSError) as exc:
        raise click.ClickException(str(exc)) from None

    def ready(relay: object, bound_port: int) -> None:
        from .relay.relay import Relay

        assert isinstance(relay, Relay)
        _print_started(relay, cfg, show_qr)

    try:
        _run_event_loop(run_hub(cfg, key, on_ready=ready))
    except (StoreError, TLSError) as exc:
        raise click.ClickException(str(exc)) from None
    except OSError as exc:
        raise click.ClickException(
            f"cannot listen on {cfg.server.host}:{cfg.server.port}: {exc.strerror or exc}. "
            "Is another hub running? Choose another port with --port."
        ) from None
    console.print("hub stopped cleanly")


def _print_started(relay, cfg: Config, show_qr: bool | None) -> None:
    """The startup message: where people reach the hub (and a QR code of it), the HTTPS
    certificate's fingerprint to check, the hub key and the data."""
    from rich.markup import escape

    from . import qr
    from .nostr.keys import npub

    access = relay.access

    def line(label: str, value: str) -> None:
        # emoji=False: rich would turn ":AB:" in a fingerprint into an emoji
        console.print(f"  {label:<13}{escape(value)}", soft_wrap=True, highlight=False,
                      emoji=False)

    console.print("[bold green]samizdat hub running[/]", soft_wrap=True)
    if access.loopback_only:
        lan = ", ".join(str(a.ip) for a in access.addresses)
        console.print(
            f"  [yellow]listening on {escape(access.host)} only: only this computer can "
            "connect.[/] To let phones on the Wi-Fi in, start with --host 0.0.0.0"
            + (f" (this machine's LAN addresses: {lan})" if lan else
               " (no LAN address found: is the Wi-Fi or the cable connected?)"),
            soft_wrap=True, highlight=False, emoji=False)
    if access.public_url:
        line("web app:", access.public_url)
    for i, url in enumerate(access.http_urls):
        line("web app:" if i == 0 and not access.public_url else "", url)
    for i, url in enumerate(access.https_urls):
        line("HTTPS:" if i == 0 else "", url)
    if access.fingerprint:
        line("certificate:", f"SHA-256 {access.fingerprint}")
        line("", "(browsers warn about the hub's own certificate: it is the right one if "
                 "they show this fingerprint)")
    if access.ca_fingerprint:
        line("hub CA:", f"SHA-256 {access.ca_fingerprint}")
        line("", "(phones that install it from /ca.crt trust the hub's HTTPS and can keep "
                 "the web app offline)")
    base = access.http_urls[0].rstrip("/")
    line("Nostr apps:", base.replace("http://", "ws://", 1))
    line("status page:", f"{base}/status")
    line("poster:", f"{base}/poster")
    line("hub key:", npub(relay.pubkey))
    line("data:", f"{cfg.data_dir.resolve()} ({relay.store.store.event_count:,} events)")
    for url in cfg.sync.peers:
        line("syncing with", url)
    console.print("  stop with Ctrl-C")
    if show_qr is None:  # a code only this computer could open would mislead
        show_qr = console.file.isatty() and not (access.loopback_only and not access.public_url)
    if show_qr:
        needed = qr.width(access.web_url)
        if console.width < needed:
            console.print(f"  (the terminal is too narrow for the QR code: it needs {needed} "
                          f"columns; print {base}/poster instead)", soft_wrap=True,
                          emoji=False)
        else:
            console.print(f"Scan to open {escape(access.web_url)}", soft_wrap=True,
                          highlight=False, emoji=False)
            console.file.write(qr.terminal(access.web_url))
            console.file.flush()


@main.command()
@click.argument("url")
@click.option("--data", "data_dir", type=click.Path(file_okay=False), default="data",
              show_default=True, help="The local hub's data directory.")
@click.option("--filter", "filter_text", default="{}", show_default=True,
              help='NIP-01 filter (JSON) selecting what to sync, e.g. \'{"kinds":[1]}\'.')
@click.option("--direction", type=click.Choice(["both", "up", "down"]), default="both",
              show_default=True, help="up: send what the peer lacks; down: fetch what we lack.")
@click.option("--timeout", type=float, default=30.0, show_default=True,
              help="Seconds to wait for any answer from the peer.")
@click.option("--json", "as_json", is_flag=True, help="Print the summary as JSON.")
def sync(url: str, data_dir: str, filter_text: str, direction: str, timeout: float,
         as_json: bool) -> None:
    """Reconcile the local store with the relay at URL (NIP-77) and move the difference.

    Works while the local hub is running. Safe to interrupt: what arrived is kept, and
    the next run continues from there.
    """
    from .nostr.filters import InvalidFilter, parse_filter
    from .nostr.keys import HubKeyError, load_or_create_hub_key
    from .store import SQLiteStore, StoreError
    from .sync.progress import SyncProgress
    from .sync.session import PeerError, sync_once
    from .sync.sinks import StoreSink

    if not url.startswith(("ws://", "wss://")):
        raise click.UsageError(f"{url!r} is not a relay address; use ws://HOST:PORT")
    try:
        filter_json = orjson.loads(filter_text)
        flt = parse_filter(filter_json, max_limit=2**31)
    except (orjson.JSONDecodeError, InvalidFilter) as exc:
        raise click.UsageError(f"--filter: {exc}") from None
    cfg = Config(data_dir=Path(data_dir))
    try:
        key = load_or_create_hub_key(cfg.data_dir)
        store = SQLiteStore(cfg.db_path, cfg.store.synchronous)
    except (HubKeyError, StoreError, OSError) as exc:
        raise click.ClickException(str(exc)) from None
    sink = StoreSink(store)
    progress = SyncProgress(console, enabled=not as_json)
    try:
        with progress:
            report = asyncio.run(sync_once(sink, url, flt=flt, filter_json=filter_json,
                                           direction=direction, signer=key, timeout=timeout,
                                           progress=progress))
    except PeerError as exc:
        raise click.ClickException(str(exc)) from None
    except KeyboardInterrupt:
        raise click.ClickException("interrupted; what arrived is stored, run again to "
                                   "continue") from None
    finally:
        sink.close()
        store.close()
    if as_json:
        _print_json(report.as_dict())
    else:
        progress.summary(report)
    if report.problems:
        for p in report.problems:
            console.print(f"[red]problem:[/] {p}")
        sys.exit(1)


@main.command()
@click.option("--data", "data_dir", type=click.Path(file_okay=False), default="data",
              show_default=True, help="The hub's data directory.")
@click.option("--config", "config", type=click.Path(dir_okay=False), default=None,
              help="The hub's TOML configuration, to find its own HTTPS certificate if it "
                   "has one (server.tls_cert).")
@click.option("--json", "as_json", is_flag=True, help="Print machine-readable JSON.")
def info(data_dir: str, config: str | None, as_json: bool) -> None:
    """Show what a hub holds and its keys (works while the hub is running)."""
    from .nostr.keys import HUB_KEY_FILE, HubKeyError, npub, pubkey_of, read_hub_key
    from .store import SQLiteStore, StoreError
    from .tls import CA_CERT_FILE, CERT_FILE, read_fingerprint

    data = Path(data_dir)
    cfg = Config(data_dir=data)
    if not cfg.db_path.exists():
        raise click.ClickException(
            f"no hub database in {data.resolve()}; start one with `samizdat serve --data {data}`"
        )
    try:
        store = SQLiteStore(cfg.db_path)
        stats = store.stats()
        store.close()
    except StoreError as exc:
        raise click.ClickException(str(exc)) from None
    pub = None
    if (data / HUB_KEY_FILE).exists():
        try:
            pub = pubkey_of(read_hub_key(data))
        except HubKeyError as exc:
            raise click.ClickException(str(exc)) from None
    cert_file = data / CERT_FILE
    if config is not None:
        tls_cert = _load(config, data_dir=data_dir).server.tls_cert
        cert_file = Path(tls_cert) if tls_cert else cert_file
    result = {"data_dir": str(data.resolve()), "hub_pubkey": pub,
              "hub_npub": npub(pub) if pub else None,
              "tls_certificate": str(cert_file) if cert_file.exists() else None,
              "tls_fingerprint_sha256": read_fingerprint(cert_file),
              "tls_ca_fingerprint_sha256": read_fingerprint(data / CA_CERT_FILE), **stats}
    if as_json:
        _print_json(result)
        return
    out = Console()
    out.print(f"[bold]hub data[/]   {result['data_dir']}")
    out.print(f"[bold]hub key[/]    {result['hub_npub'] or '(none yet)'}")
    out.print(f"[bold]https cert[/] SHA-256 {result['tls_fingerprint_sha256']}" if
              result["tls_fingerprint_sha256"] else "[bold]https cert[/] (none yet)",
              soft_wrap=True, emoji=False, highlight=False)
    if result["tls_ca_fingerprint_sha256"]:
        out.print(f"[bold]hub CA[/]     SHA-256 {result['tls_ca_fingerprint_sha256']}",
                  soft_wrap=True, emoji=False, highlight=False)
    out.print(f"[bold]events[/]     {stats['events']:,}")
    out.print(f"[bold]database[/]   {int(stats['database_bytes']) / 1e6:.1f} MB")
    if stats["top_kinds"]:
        kinds = ", ".join(f"kind {k}: {n:,}" for k, n in stats["top_kinds"].items())
        out.print(f"[bold]by kind[/]    {kinds}")



# --- sneakernet bundles ----------------------------------------------------------------------

_SIZE_UNITS = {"": 1, "B": 1, "K": 1024, "KB": 1024, "KIB": 1024, "M": 1024**2, "MB": 1024**2,
               "MIB": 1024**2, "G": 1024**3, "GB": 1024**3, "GIB": 1024**3}


def _parse_size(text: str) -> int:
    """``700M``, ``4G``, ``64K`` or plain bytes (binary units: 1K = 1024 bytes)."""
    import re

    m = re.fullmatch(r"\s*(\d+(?:\.\d+)?)\s*([A-Za-z]*)\s*", text)
    unit = m.group(2).upper() if m else ""
    if not m or unit not in _SIZE_UNITS:
        raise click.BadParameter(f"{text!r}: use a size such as 64K, 700M or 4G")
    return int(float(m.group(1)) * _SIZE_UNITS[unit])


def _parse_time(text: str, now: int) -> int:
    """Unix seconds, a UTC date or date-time (2026-11-28, 2026-11-28T06:00), or an age
    counted back from now (90m, 12h, 7d, 2w)."""
    import re
    from datetime import UTC, datetime

    text = text.strip()
    if text.isdigit():
        return int(text)
    m = re.fullmatch(r"(\d+)\s*([smhdw])", text)
    if m:
        n, unit = int(m.group(1)), m.group(2)
        return now - n * {"s": 1, "m": 60, "h": 3600, "d": 86400, "w": 604800}[unit]
    try:
        dt = datetime.fromisoformat(text)
    except ValueError:
        raise click.BadParameter(f"{text!r}: use unix seconds, a date like 2026-11-28, or an "
                                 "age like 7d or 12h") from None
    if dt.tzinfo is None:
        dt = dt.replace(tzinfo=UTC)
    return int(dt.timestamp())


def _open_existing_store(data: Path):
    from .store import SQLiteStore, StoreError

    cfg = Config(data_dir=data)
    if not cfg.db_path.exists():
        raise click.ClickException(
            f"no hub database in {data.resolve()}; start one with `samizdat serve --data {data}`"
        )
    try:
        return SQLiteStore(cfg.db_path, cfg.store.synchronous)
    except StoreError as exc:
        raise click.ClickException(str(exc)) from None


def _open_blobs(cfg: Config, create: bool = False):
    """The hub's media index and store, or (None, None) when it has none (and ``create``
    is off) or media is turned off. The caller closes the index."""
    from .blobs.store import BlobStore
    from .store.blobs import BlobIndex

    data = cfg.data_dir
    if not cfg.blobs.enabled or not (create or (data / "blobs.sqlite3").exists()):
        return None, None
    index = BlobIndex(data / "blobs.sqlite3", cfg.store.synchronous)
    return index, BlobStore(data, index)


def _hub_key(data: Path):
    from .nostr.keys import HubKeyError, load_or_create_hub_key

    try:
        return load_or_create_hub_key(data)
    except (HubKeyError, OSError) as exc:
        raise click.ClickException(str(exc)) from None


@main.command("export")
@click.argument("file", type=click.Path(dir_okay=False))
@click.option("--data", "data_dir", type=click.Path(file_okay=False), default="data",
              show_default=True, help="The hub's data directory.")
@click.option("--filter", "filter_text", default="{}", show_default=True,
              help='NIP-01 filter (JSON) selecting what to export, e.g. \'{"kinds":[1]}\'.')
@click.option("--since", "since_text", default=None, metavar="TIME",
              help="Only events from TIME on: unix seconds, a UTC date (2026-11-28) or an "
                   "age (12h, 7d).")
@click.option("--for", "state_file", type=click.Path(dir_okay=False), default=None,
              metavar="STATEFILE", help="Leave out what the hub that wrote STATEFILE "
              "(`samizdat state`) already has.")
@click.option("--with-blobs/--no-blobs", default=True, show_default=True,
              help="Carry the media the events reference (once this hub stores media).")
@click.option("--max-part-size", "max_part_text", default=None, metavar="SIZE",
              help="Cut the bundle into FILE.001, FILE.002 ... of at most SIZE each "
                   "(e.g. 700M, 4G; at least 64K).")
@click.option("--json", "as_json", is_flag=True, help="Print the summary as JSON.")
def export_cmd(file: str, data_dir: str, filter_text: str, since_text: str | None,
               state_file: str | None, with_blobs: bool, max_part_text: str | None,
               as_json: bool) -> None:
    """Write the hub's events into a bundle FILE to carry on a USB stick or SD card.

    The bundle is signed by this hub's key; the receiving hub checks the signature,
    every event's own signature, and imports it with `samizdat import FILE`.
    Works while the hub is running.
    """
    import time

    from .bundle import BundleError, export_bundle, read_state
    from .bundle.progress import BarProgress
    from .nostr.filters import InvalidFilter, parse_filter
    from .nostr.keys import npub

    now = int(time.time())
    try:
        filter_json = orjson.loads(filter_text)
        flt = parse_filter(filter_json, max_limit=2**31)
    except (orjson.JSONDecodeError, InvalidFilter) as exc:
        raise click.UsageError(f"--filter: {exc}") from None
    if flt.limit is not None:
        raise click.UsageError("--filter: `limit` does not apply to an export; use since/until")
    if since_text is not None:
        since = _parse_time(since_text, now)
        flt.since = max(flt.since or 0, since)
    max_part = _parse_size(max_part_text) if max_part_text else None
    target = Path(file)
    if target.exists() or (max_part and Path(f"{file}.001").exists()):
        raise click.ClickException(f"{file} already exists; choose another name or remove it")
    if not target.parent.is_dir():
        raise click.ClickException(f"{target.parent} is not a directory; is the stick mounted?")
    data = Path(data_dir)
    state = None
    if state_file:
        try:
            state = read_state(Path(state_file))
        except BundleError as exc:
            raise click.ClickException(str(exc)) from None
    store = _open_existing_store(data)
    key = _hub_key(data)
    blob_index, blob_store = _open_blobs(Config(data_dir=data)) if with_blobs else (None, None)
    try:
        with BarProgress(console, enabled=not as_json) as progress:
            summary = export_bundle(store, target, key, flt=flt, filter_json=filter_json,
                                    state=state, max_part_size=max_part, progress=progress,
                                    now=now, blobs=blob_store)
    except BundleError as exc:
        raise click.ClickException(str(exc)) from None
    except OSError as exc:
        raise click.ClickException(f"cannot write the bundle: {exc.strerror or exc}. Is the "
                                   "stick full or read-only? No bundle was written.") from None
    except KeyboardInterrupt:
        raise click.ClickException("interrupted; no bundle was written") from None
    finally:
        store.close()
        if blob_index is not None:
            blob_index.close()
    summary["with_blobs"] = with_blobs
    if state is not None:
        summary["for"] = state.describe()
    if as_json:
        _print_json(summary)
        return
    from rich.table import Table

    t = Table(title="bundle written", show_header=False)
    raw, size = summary["raw_bytes"], summary["bytes"]
    rows = [
        ("files", "\n".join(summary["files"])),
        ("events", f"{summary['events']:,}"),
        ("size", f"{size:,} bytes ({size / max(raw, 1):.0%} of {raw:,} bytes of JSON)"),
        ("signed by hub", npub(summary["hub"])),
        ("seconds", f"{summary['seconds']:.2f}"),
    ]
    if state is not None:
        rows.insert(2, ("left out", f"{summary['skipped_present']:,} the destination "
                        f"({npub(state.hub)}) already has"))
    if summary["skipped_protected"]:
        rows.insert(2, ("protected", f"{summary['skipped_protected']:,} left out (NIP-70: only "
                        "their author may publish them elsewhere)"))
    if with_blobs:
        rows.insert(2, ("media", f"{summary['blobs']:,} files"
                        + (f"; {summary['blobs_missing']:,} named by the events are not on "
                           "this hub" if summary["blobs_missing"] else "")))
    for k, v in rows:
        t.add_row(k, v)
    Console().print(t)
    console.print("Carry every file listed; on the other hub run "
                  f"`samizdat import {' '.join(Path(f).name for f in summary['files'])}`. "
                  "Eject the stick properly before pulling it out.")


@main.command("state")
@click.argument("statefile", type=click.Path(dir_okay=False))
@click.option("--data", "data_dir", type=click.Path(file_okay=False), default="data",
              show_default=True, help="The hub's data directory.")
@click.option("--json", "as_json", is_flag=True, help="Print the summary as JSON.")
def state_cmd(statefile: str, data_dir: str, as_json: bool) -> None:
    """Describe what this hub holds in STATEFILE (about 6 bytes per event).

    Carry it to another hub and run `samizdat export --for STATEFILE` there: the bundle
    then holds only what this hub lacks. Works while the hub is running.
    """
    import time

    from .bundle import encode_state, write_state
    from .nostr.keys import pubkey_of

    data = Path(data_dir)
    store = _open_existing_store(data)
    key = _hub_key(data)
    t0 = time.monotonic()
    try:
        items = store.sync_items(None)
    finally:
        store.close()
    assert items is not None
    _, ids = items
    blob = encode_state(ids, pubkey_of(key))
    try:
        write_state(Path(statefile), blob)
    except OSError as exc:
        raise click.ClickException(f"cannot write {statefile}: {exc.strerror}") from None
    n = len(ids) // 32
    result = {"file": statefile, "events": n, "bytes": len(blob),
              "bytes_per_event": round(len(blob) / n, 2) if n else None,
              "hub": pubkey_of(key), "seconds": round(time.monotonic() - t0, 3)}
    if as_json:
        _print_json(result)
        return
    console.print(f"wrote {statefile}: {n:,} events in {len(blob):,} bytes. Carry it to the "
                  f"other hub and run `samizdat export BUNDLE --for {Path(statefile).name}` there.")


@main.command("import")
@click.argument("files", nargs=-1, required=True, type=click.Path(dir_okay=False))
@click.option("--data", "data_dir", type=click.Path(file_okay=False), default="data",
              show_default=True, help="The hub's data directory (created if new).")
@click.option("--salvage", is_flag=True, help="Take every event whose own signature verifies "
              "from a damaged, incomplete or unauthenticated bundle, and list what was skipped.")
@click.option("--workers", type=int, default=None, help="Processes verifying signatures "
              "[default: one per core].")
@click.option("--config", "config", type=click.Path(dir_okay=False), default=None,
              help="The hub's TOML configuration (its [blobs] rules decide which media "
                   "is kept).")
@click.option("--json", "as_json", is_flag=True, help="Print the report as JSON.")
def import_cmd(files: tuple[str, ...], data_dir: str, salvage: bool, workers: int | None,
               config: str | None, as_json: bool) -> None:
    """Verify and import bundles (every part) or JSONL event dumps (.jsonl, .jsonl.zst).

    Everything is checked: the bundle's signed manifest, every section's hash, every
    event's id and signature, every media file's sha256. The events are stored in one
    transaction that commits only if all of it checks out: all or nothing, and importing
    twice changes nothing. Then the media goes into the hub's media store. Works while
    the hub is running.
    """
    import sqlite3

    from .bundle import BundleError, import_files
    from .bundle.progress import BarProgress
    from .store import SQLiteStore, StoreError

    missing = [f for f in files if not Path(f).is_file()]
    if missing:
        raise click.ClickException(f"{missing[0]}: no such file; check the name (nothing was "
                                   "imported)")
    cfg = _load(config, data_dir=Path(data_dir))
    try:
        store = SQLiteStore(cfg.db_path, cfg.store.synchronous)
    except StoreError as exc:
        raise click.ClickException(str(exc)) from None

    def writing(report: object) -> None:
        if as_json:
            console.print("writing in one transaction", highlight=False)

    from .bundle.importer import BlobRules

    blob_index, blob_store = _open_blobs(cfg, create=True)
    rules = (BlobRules(blob_store, cfg.blobs.allowed_types, cfg.blobs.max_size)
             if blob_store is not None else None)
    try:
        with BarProgress(console, enabled=not as_json) as progress:
            report = import_files(store, [Path(f) for f in files], salvage=salvage,
                                  workers=workers, progress=progress, on_write=writing,
                                  blobs=rules)
    except BundleError as exc:
        raise click.ClickException(f"{exc}") from None
    except OSError as exc:
        raise click.ClickException(f"cannot read {exc.filename or 'a file'}: "
                                   f"{exc.strerror or exc}; nothing was imported") from None
    except sqlite3.Error as exc:
        raise click.ClickException(f"the database refused the import ({exc}); nothing was "
                                   "imported. Is the disk full?") from None
    except KeyboardInterrupt:
        raise click.ClickException("interrupted; nothing was imported") from None
    finally:
        store.close()
        if blob_index is not None:
            blob_index.close()
    if as_json:
        _print_json(report.as_dict())
        return
    _print_import_report(report)


def _print_import_report(report) -> None:
    from rich.table import Table

    from .nostr.keys import npub

    out = Console()
    for src in report.sources:
        if src["kind"] == "bundle":
            who = npub(src["hub"]) if src.get("hub") else "unknown hub"
            how = ("bundle signed by" if src["authenticated"]
                   else "bundle NOT authenticated, claims to be from")
            out.print(f"[bold]{src['source']}[/]: bundle {how} {who}")
        else:
            out.print(f"[bold]{src['source']}[/]: JSONL dump")
    t = Table(title="import", show_header=False)
    for k, v in (("events read", report.events), ("imported", report.imported),
                 ("already here", report.already_present),
                 ("older than the stored version", report.superseded),
                 ("deleted by their author", report.deleted), ("rejected", report.rejected)):
        t.add_row(k, f"{v:,}")
    for reason, n in sorted(report.reasons.items()):
        t.add_row(f"  {reason}", f"{n:,}")
    t.add_row("seconds", f"{report.seconds:.2f}")
    out.print(t)
    if report.blobs_verified:
        out.print(f"media: {report.blobs_verified:,} files verified, {report.blobs_stored:,} "
                  f"stored, {report.blobs_present:,} already here")
    for note in report.skipped[:50]:
        console.print(f"[yellow]skipped:[/] {note}", highlight=False)
    if len(report.skipped) > 50:
        console.print(f"[yellow]... and {len(report.skipped) - 50} more[/] (--json lists all)")



# --- hub receipts ----------------------------------------------------------------------------

def _event_id_arg(text: str) -> str:
    """A 64-hex event id or a NIP-19 ``note1...``."""
    import bech32

    text = text.strip()
    if text.startswith("note1"):
        hrp, data = bech32.bech32_decode(text)
        raw = bech32.convertbits(data, 5, 8, False) if data is not None else None
        if hrp == "note" and raw is not None and len(raw) == 32:
            return bytes(raw).hex()
    elif len(text) == 64 and all(c in "0123456789abcdefABCDEF" for c in text):
        return text.lower()
    raise click.BadParameter(f"{text!r} is not an event id (64 hex characters or note1...)")


@main.command("prove")
@click.argument("event_id")
@click.option("--data", "data_dir", type=click.Path(file_okay=False), default="data",
              show_default=True, help="The hub's data directory.")
@click.option("--json", "as_json", is_flag=True, help="Print the proof document (save it: "
              "anyone can check it with `samizdat verify-proof FILE`).")
def prove_cmd(event_id: str, data_dir: str, as_json: bool) -> None:
    """Show the receipt(s) of this hub that include EVENT_ID and the Merkle inclusion
    proof, checked. Exits 1 if the event is in no receipt yet. Works while the hub runs.
    """
    from .receipts.proof import NotInReceipt, find_proofs
    from .store.receipts import RECEIPTS_FILE, ReceiptLog, ReceiptLogError

    eid = _event_id_arg(event_id)
    data = Path(data_dir)
    try:
        log = ReceiptLog(data / RECEIPTS_FILE, readonly=True)
    except ReceiptLogError as exc:
        raise click.ClickException(f"{exc} (receipts are made by `samizdat serve` with "
                                   "[receipts] enabled, the default)") from None
    try:
        proofs = find_proofs(log, eid)
    except NotInReceipt as exc:
        message = str(exc)
        if message.startswith("this hub has no record") and _store_has(data, eid):
            message += (": it is in the store, but arrived while the hub was not running "
                        "or by a large import; the hub records it at its next start, and "
                        "the next receipt includes it")
        console.print(f"[red]no proof:[/] {message}", highlight=False, soft_wrap=True)
        sys.exit(1)
    finally:
        log.close()
    if as_json:
        docs = [p.doc for p in proofs]
        _print_json(docs[0] if len(docs) == 1 else docs)
        return
    out = Console(highlight=False, soft_wrap=True, emoji=False)
    for p in proofs:
        _print_proof(out, p)
    out.print("Save it with `--json > proof.json`; anyone can check it offline with "
              "`samizdat verify-proof proof.json` (or by hand: docs/report-format.md).")


def _store_has(data: Path, eid: str) -> bool:
    from .store import SQLiteStore, StoreError

    cfg = Config(data_dir=data)
    if not cfg.db_path.exists():
        return False
    try:
        store = SQLiteStore(cfg.db_path, cfg.store.synchronous)
    except StoreError:
        return False
    try:
        return bool(store.get_json([bytes.fromhex(eid)]))
    finally:
        store.close()


def _print_proof(out: Console, p) -> None:
    from .nostr.keys import npub
    from .receipts.receipt import MERKLE_SCHEME, utc

    r = p.receipt
    out.print(f"[bold]event {p.event_id}[/] is in receipt {r.id}")
    out.print(f"  hub       {npub(r.hub)}")
    out.print(f"  window    {utc(r.start)} to {utc(r.end)}: {r.count:,} events; "
              f"receipt signed {utc(r.created_at)}")
    if r.place:
        out.print(f"  place     {r.place} (declared by the hub)")
    out.print(f"  root      {r.root.hex()} ({MERKLE_SCHEME})")
    out.print(f"  leaf      index {p.proof.leaf_index} of {p.proof.tree_size} sorted ids "
              "(counting from 0)")
    for i, step in enumerate(p.proof.path):
        out.print(f"  {'path' if i == 0 else '':<10}{step.side:<6}{step.hash.hex()}")
    out.print("  [green]check     OK[/]: the receipt's id and signature verify and the path "
              "leads from the event id to its root")
    ots_info = p.doc.get("opentimestamps")
    if ots_info:
        state = ots_info["state"]
        text = {"queued": "queued: submitted when the hub is online",
                "pending": "pending: submitted to calendars, not yet in Bitcoin",
                "complete": f"anchored in Bitcoin (NIP-03 event {ots_info.get('nip03_event')})",
                "covered": f"covered by the later receipt {ots_info.get('covered_by')}, "
                           "which commits to this one through its prev chain"}.get(state, state)
        out.print(f"  anchor    OpenTimestamps {text}")


@main.command("verify-proof")
@click.argument("file", type=click.Path(dir_okay=False, exists=True))
@click.option("--hub", default=None, metavar="NPUB|HEX",
              help="Require the receipt to be signed by this hub.")
@click.option("--ots", "ots_file", type=click.Path(dir_okay=False, exists=True), default=None,
              help="An OpenTimestamps proof (.ots) of the receipt [default: the one inside "
                   "FILE, if any].")
@click.option("--block-header", "headers", multiple=True, metavar="HEIGHT:HEX",
              help="The 80-byte Bitcoin block header at HEIGHT (hex, e.g. from `bitcoin-cli "
                   "getblockheader HASH false`) to check a Bitcoin attestation; repeatable.")
@click.option("--json", "as_json", is_flag=True, help="Print the result as JSON.")
def verify_proof_cmd(file: str, hub: str | None, ots_file: str | None,
                     headers: tuple[str, ...], as_json: bool) -> None:
    """Check a proof saved by `samizdat prove --json` offline: the receipt's signature, its
    format and the Merkle path from the event id to its root; and an OpenTimestamps
    proof of the receipt, if there is one. Exits 1 if anything fails."""
    import base64

    from .nostr.keys import decode_npub, npub
    from .receipts import ots
    from .receipts.proof import ProofError, check_doc, load_docs
    from .receipts.receipt import utc

    expect = None
    if hub:
        try:
            expect = decode_npub(hub) if hub.startswith("npub1") else _event_id_arg(hub)
        except (ValueError, click.BadParameter):
            raise click.BadParameter(f"{hub!r} is not an npub or a hex pubkey",
                                     param_hint="--hub") from None
    by_height: dict[int, str] = {}
    for h in headers:
        height, _, hexh = h.partition(":")
        if not height.isdigit() or not hexh:
            raise click.BadParameter(f"{h[:20]!r}...: use HEIGHT:HEX",
                                     param_hint="--block-header")
        by_height[int(height)] = hexh
    try:
        docs = load_docs(Path(file).read_bytes())
    except ProofError as exc:
        raise click.ClickException(f"{file}: {exc}") from None
    results, failed = [], False
    for doc in docs:
        try:
            checked = check_doc(doc, expect)
        except ProofError as exc:
            failed = True
            results.append({"ok": False, "error": str(exc)})
            continue
        r = checked.receipt
        res: dict[str, object] = {
            "ok": True, "event_id": checked.event_id, "receipt": r.id, "hub": r.hub,
            "hub_npub": npub(r.hub), "window": [r.start, r.end], "count": r.count,
            "receipt_created_at": r.created_at, "place": r.place or None}
        embedded = (doc.get("opentimestamps") or {}).get("ots") if isinstance(doc, dict) else None
        if ots_file or embedded:
            try:
                proof_bytes = (Path(ots_file).read_bytes() if ots_file
                               else base64.b64decode(embedded, validate=True))
                res["opentimestamps"] = ots.inspect(proof_bytes, bytes.fromhex(r.id),
                                                    by_height).as_json()
            except (ots.OtsError, ValueError) as exc:  # binascii.Error is a ValueError
                failed = True
                res["ok"] = False
                res["error"] = f"OpenTimestamps: {exc}"
            else:
                if any(str(a.get("status", "")).startswith("FAILED")
                       for a in res["opentimestamps"]["attestations"]):
                    failed, res["ok"] = True, False
                    res["error"] = "OpenTimestamps: a Bitcoin attestation does not match its block"
        results.append(res)
    if as_json:
        _print_json(results[0] if len(results) == 1 else results)
    else:
        out = Console(highlight=False, soft_wrap=True, emoji=False)
        for res in results:
            if not res["ok"] and "receipt" not in res:
                out.print(f"[red]FAILED[/]: {res['error']}")
                continue
            status = "[green]OK[/]" if res["ok"] else "[red]FAILED[/]"
            out.print(f"{status}: event {res['event_id']} is committed in receipt "
                      f"{res['receipt']} signed by hub {res['hub_npub']}: "
                      f"{res['count']:,} events stored between {utc(res['window'][0])} and "
                      f"{utc(res['window'][1])}; the receipt was signed at "
                      f"{utc(res['receipt_created_at'])} (by the hub's clock)")
            for a in (res.get("opentimestamps") or {}).get("attestations", []):
                where = (f"Bitcoin block {a['height']} (merkle root {a['merkle_root']})"
                         if a["kind"] == "bitcoin" else a.get("calendar") or a["kind"])
                when = (f", block {a['block_hash']} (check it is the block at this height), "
                        f"block time {utc(a['block_time'])}" if a.get("block_time") else "")
                out.print(f"  OpenTimestamps: {where}: {a['status']}{when}")
            if not res["ok"]:
                out.print(f"[red]FAILED[/]: {res['error']}")
    if failed:
        sys.exit(1)

from .observer.cli import observe as _observe_group  # noqa: E402

main.add_command(_observe_group)

from .observer.cli import demo as _demo_group  # noqa: E402

main.add_command(_demo_group)

from .observer.cli import verify_package_cmd as _verify_package  # noqa: E402

main.add_command(_verify_package)


if __name__ == "__main__":
    main()
