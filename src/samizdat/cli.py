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
@click.option("-v", "--verbose", is_flag=True, help="Log every connection and batch.")
def serve(data_dir: str | None, host: str | None, port: int | None, config: str | None,
          peers: tuple[str, ...], verbose: bool) -> None:
    """Run the hub: Nostr relay, NIP-11 document and status page on one port."""
    from .hub import run_hub
    from .nostr.keys import HubKeyError, load_or_create_hub_key, npub
    from .store import StoreError

    logging.basicConfig(level=logging.DEBUG if verbose else logging.INFO,
                        format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    cfg = _load(config, data_dir=data_dir, **{"server.host": host, "server.port": port})
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
        shown = cfg.server.host if cfg.server.host not in ("0.0.0.0", "::") else "<this-machine>"
        console.print(f"[bold green]samizdat hub running[/] on ws://{shown}:{bound_port}")
        console.print(f"  status page: http://{shown}:{bound_port}/status")
        console.print(f"  hub key:     {npub(relay.pubkey)}")
        console.print(f"  data:        {cfg.data_dir.resolve()} "
                      f"({relay.store.store.event_count:,} events)")
        for url in cfg.sync.peers:
            console.print(f"  syncing with {url}")
        console.print("  stop with Ctrl-C")

    try:
        _run_event_loop(run_hub(cfg, key, on_ready=ready))
    except StoreError as exc:
        raise click.ClickException(str(exc)) from None
    except OSError as exc:
        raise click.ClickException(
            f"cannot listen on {cfg.server.host}:{cfg.server.port}: {exc.strerror or exc}. "
            "Is another hub running? Choose another port with --port."
        ) from None
    console.print("hub stopped cleanly")


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
@click.option("--json", "as_json", is_flag=True, help="Print machine-readable JSON.")
def info(data_dir: str, as_json: bool) -> None:
    """Show what a hub holds (works while the hub is running)."""
    from .nostr.keys import HUB_KEY_FILE, HubKeyError, npub, pubkey_of, read_hub_key
    from .store import SQLiteStore, StoreError

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
    result = {"data_dir": str(data.resolve()), "hub_pubkey": pub,
              "hub_npub": npub(pub) if pub else None, **stats}
    if as_json:
        _print_json(result)
        return
    out = Console()
    out.print(f"[bold]hub data[/]   {result['data_dir']}")
    out.print(f"[bold]hub key[/]    {result['hub_npub'] or '(none yet)'}")
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
    try:
        with BarProgress(console, enabled=not as_json) as progress:
            summary = export_bundle(store, target, key, flt=flt, filter_json=filter_json,
                                    state=state, max_part_size=max_part, progress=progress,
                                    now=now)
    except BundleError as exc:
        raise click.ClickException(str(exc)) from None
    except OSError as exc:
        raise click.ClickException(f"cannot write the bundle: {exc.strerror or exc}. Is the "
                                   "stick full or read-only? No bundle was written.") from None
    except KeyboardInterrupt:
        raise click.ClickException("interrupted; no bundle was written") from None
    finally:
        store.close()
    summary["with_blobs"] = with_blobs
    summary["blobs_note"] = "this hub has no media store yet; the bundle holds events only"
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
    for k, v in rows:
        t.add_row(k, v)
    Console().print(t)
    if with_blobs:
        console.print(f"note: {summary['blobs_note']}")
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
@click.option("--json", "as_json", is_flag=True, help="Print the report as JSON.")
def import_cmd(files: tuple[str, ...], data_dir: str, salvage: bool, workers: int | None,
               as_json: bool) -> None:
    """Verify and import bundles (every part) or JSONL event dumps (.jsonl, .jsonl.zst).

    Everything is checked before anything is written: the bundle's signed manifest, every
    section's hash, every event's id and signature. Then all events are stored in one
    transaction: all or nothing, and importing twice changes nothing. Works while the hub
    is running.
    """
    import sqlite3

    from .bundle import BundleError, import_files
    from .bundle.progress import BarProgress
    from .store import SQLiteStore, StoreError

    missing = [f for f in files if not Path(f).is_file()]
    if missing:
        raise click.ClickException(f"{missing[0]}: no such file; check the name (nothing was "
                                   "imported)")
    cfg = Config(data_dir=Path(data_dir))
    try:
        store = SQLiteStore(cfg.db_path, cfg.store.synchronous)
    except StoreError as exc:
        raise click.ClickException(str(exc)) from None

    def writing(report: object) -> None:
        if as_json:
            console.print("writing in one transaction", highlight=False)

    try:
        with BarProgress(console, enabled=not as_json) as progress:
            report = import_files(store, [Path(f) for f in files], salvage=salvage,
                                  workers=workers, progress=progress, on_write=writing)
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
        out.print(f"{report.blobs_verified} media blobs verified but not stored: this hub has "
                  "no media store yet")
    for note in report.skipped[:50]:
        console.print(f"[yellow]skipped:[/] {note}", highlight=False)
    if len(report.skipped) > 50:
        console.print(f"[yellow]... and {len(report.skipped) - 50} more[/] (--json lists all)")


if __name__ == "__main__":
    main()
