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
        asyncio.run(run_hub(cfg, key, on_ready=ready))
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


if __name__ == "__main__":
    main()
