"""``samizdat observe ...``: the click group every observer command hangs on.

cli.py imports :data:`observe` and registers it with ``main.add_command``. Add observer
commands here with ``@observe.command(...)``; keep heavy imports inside the functions so
``samizdat --help`` stays fast.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING

import click

if TYPE_CHECKING:
    from .service import Observer

DEFAULT_DATA = "observer-data"


@click.group("observe")
def observe() -> None:
    """The observer console: ingest bundles and hubs, check reports, cluster, export.

    Start with `samizdat observe ingest BUNDLE_OR_URL...`, then
    `samizdat observe check ID` or `samizdat observe serve`.
    """


def _data_option(f):
    return click.option("--data", "data_dir", type=click.Path(file_okay=False),
                        default=DEFAULT_DATA, show_default=True,
                        help="The observer directory.")(f)


def _open(data_dir: str, create: bool = False):
    from .service import Observer

    try:
        return Observer(data_dir, create=create)
    except FileNotFoundError as exc:
        raise click.ClickException(str(exc)) from None


@observe.command("ingest")
@click.argument("sources", nargs=-1, required=True)
@_data_option
@click.option("--reference", type=click.Path(file_okay=False, exists=True), default=None,
              help="A folder of known earlier images (the reference set for recycled "
                   "media).")
@click.option("--no-media", is_flag=True, help="Do not fetch media from hub URLs.")
@click.option("--timeout", type=float, default=30.0, show_default=True,
              help="Seconds to wait for a peer's answer.")
@click.option("--json", "as_json", is_flag=True, help="Print the counts as JSON.")
def ingest_cmd(sources: tuple[str, ...], data_dir: str, reference: str | None,
               no_media: bool, timeout: float, as_json: bool) -> None:
    """Ingest SOURCES: bundle files (every part) or JSONL dumps, hub or relay URLs
    (ws://HOST:PORT; NIP-77 where the peer speaks it, REQ otherwise, then the media by
    Blossom), then update the index."""
    import orjson
    from rich.console import Console

    from ..bundle import BundleError
    from ..bundle.progress import BarProgress
    from .ingest import Progress, ingest, is_url

    missing = [s for s in sources if not is_url(s) and not Path(s).is_file()]
    if missing:
        raise click.ClickException(f"{missing[0]}: no such file, and not a ws:// or http:// "
                                   "address (nothing was ingested)")
    err = Console(stderr=True, highlight=False)
    if not _media_libraries():
        err.print("note: Pillow and imagehash are not installed: photos are kept and hashed, "
                  "but without perceptual hashes and EXIF facts recycled photos cannot be "
                  f"spotted. {INSTALL_HINT}, then run `samizdat observe reindex`.",
                  markup=False)

    class Stages(Progress):
        def __init__(self) -> None:
            self.n = 0

        def stage(self, text: str) -> None:
            if not as_json:
                err.print(f"[bold]·[/] {text}")

        def events(self, n: int) -> None:
            self.n += n

    obs = _open(data_dir, create=True)
    try:
        with BarProgress(err, enabled=not as_json) as bars:
            report = ingest(obs, list(sources), progress=Stages(), bundle_progress=bars,
                            timeout=timeout, media=not no_media, reference=reference)
        stats = obs.stats()
    except BundleError as exc:
        raise click.ClickException(str(exc)) from None
    finally:
        obs.close()
    if as_json:
        click.echo(orjson.dumps({**report.as_json(), "totals": stats},
                                option=orjson.OPT_INDENT_2).decode())
        return
    out = Console(highlight=False)
    for s in report.sources:
        media = (f", media {s.media_fetched} fetched" + (f", {s.media_failed} failed"
                 if s.media_failed else "")) if s.method != "bundle" else (
                 f", media {s.media_fetched} stored")
        out.print(f"{s.source} ({s.method}): {s.received:,} new events, "
                  f"{s.already_had:,} already here, {s.rejected:,} rejected{media}")
        for p in s.problems[:10]:
            out.print(f"  [yellow]problem:[/] {p}")
    i = report.index
    out.print(f"index: +{i.reports:,} reports, +{i.labels:,} labels, +{i.receipts:,} receipts "
              f"({i.leaves_accepted} leaf lists accepted, {i.leaves_refused} refused), "
              f"+{i.media_facts:,} media examined")
    out.print(f"archive: {stats['events']:,} events, {stats['reports']:,} reports, "
              f"{stats['keys']:,} keys, {stats['receipts']:,} receipts, {stats['media']:,} "
              f"media; {report.seconds:.1f} s")


def _ts(t: int | None) -> str:
    from datetime import UTC, datetime

    return "?" if t is None else datetime.fromtimestamp(t, UTC).strftime(
        "%Y-%m-%d %H:%M:%S UTC")


@observe.command("check")
@click.argument("event_id")
@_data_option
@click.option("--json", "as_json", is_flag=True,
              help="Print the verdict as JSON (format in docs/observer.md).")
def check_cmd(event_id: str, data_dir: str, as_json: bool) -> None:
    """Everything the archive says about one report: signature, author history,
    receipts, claimed time and place, media, corroborations, flags.

    Exit status: 0 no warning, 1 a warning or error flag, 2 not found."""
    import sys

    import orjson
    from rich.console import Console

    from ..nostr.keys import decode_event_id, npub

    try:
        eid = decode_event_id(event_id)
    except ValueError as exc:
        raise click.BadParameter(str(exc), param_hint="ID") from None
    obs = _open(data_dir)
    try:
        v = obs.check(eid)
    finally:
        obs.close()
    if as_json:
        click.echo(orjson.dumps(v.as_json(), option=orjson.OPT_INDENT_2).decode())
    else:
        out = Console(highlight=False, soft_wrap=True, emoji=False)
        if not v.found:
            out.print(f"[red]not found[/]: no event {eid} in {data_dir}")
        else:
            sig = "[green]valid[/]" if v.signature_valid else "[red]INVALID[/]"
            out.print(f"event {v.id} (kind {v.kind}): signature {sig}")
            a = v.author
            if a is not None:
                out.print(f"author {npub(a.pubkey)}: first seen {_ts(a.first_seen)}, "
                          f"{a.reports} reports, {a.corroborations_received} corroborations "
                          f"received, {a.disputes_received} disputes")
            if v.report:
                r = v.report
                out.print(f"claims: {_ts(v.claimed_time)}"
                          f"{' (observed_at)' if r.observed_at is not None else ''}, place "
                          f"{v.claimed_place or '(none)'}; {len(r.media)} media")
            if v.receipts:
                out.print(f"existed no later than {_ts(v.existed_by)} (receipt "
                          f"{v.existed_by_receipt}); in {len(v.receipts)} receipt(s):")
                for rc in v.receipts:
                    out.print(f"  hub {npub(rc.hub)[:20]}… window {_ts(rc.start)} to "
                              f"{_ts(rc.end)}, place {rc.place or '-'}")
            for m in v.media:
                state = ("stored, sha256 ok" if m.sha256_ok else "stored, sha256 MISMATCH"
                         ) if m.stored else "not stored"
                exif = (m.facts.exif if m.facts else {}) or {}
                out.print(f"  media {m.claim.sha256}: {state}; EXIF "
                          f"{'present' if exif.get('present') else 'absent'}"
                          f"{', GPS' if exif.get('has_gps') else ''}; "
                          f"{len(m.matches)} perceptual match(es)")
            out.print(f"corroborated by {v.corroborations} key(s), disputed by "
                      f"{v.disputes}")
            colour = {"error": "red", "warning": "yellow", "info": "cyan"}
            for f in v.flags:
                out.print(f"[{colour[f.severity]}]{f.severity} {f.code}[/]: {f.message}")
            if not v.flags:
                out.print("[green]no flags[/]")
    if not v.found:
        sys.exit(2)
    if v.worst in ("warning", "error"):
        sys.exit(1)


@observe.command("reindex")
@_data_option
def reindex_cmd(data_dir: str) -> None:
    """Rebuild the derived index (observer.sqlite3) from the stored events and media."""
    import time

    obs = _open(data_dir)
    t0 = time.monotonic()
    try:
        c = obs.reindex()
    finally:
        obs.close()
    click.echo(f"reindexed {c.events:,} events: {c.reports:,} reports, {c.labels:,} labels, "
               f"{c.receipts:,} receipts ({c.leaves_accepted} leaf lists accepted), "
               f"{c.media_facts:,} media examined in {time.monotonic() - t0:.1f} s")


# --- the console and evidence packages (observer/web.py, observer/evidence.py) -----------

@observe.command("serve")
@click.option("--data", "data_dir", type=click.Path(file_okay=False), default=DEFAULT_DATA,
              show_default=True, help="The observer directory.")
@click.option("--host", default="127.0.0.1", show_default=True,
              help="Address to listen on (the console has no login: keep it local, or put "
                   "it behind one).")
@click.option("--port", type=int, default=7450, show_default=True, help="TCP port.")
def serve_cmd(data_dir: str, host: str, port: int) -> None:
    """Serve the console: overview, report pages, clusters, timeline, map, exports."""
    import asyncio

    from .web import serve

    with _existing(data_dir) as obs:

        def ready(bound: int) -> None:
            shown = "127.0.0.1" if host in ("0.0.0.0", "::") else host
            click.echo(f"observer console on http://{shown}:{bound}/ (data {data_dir}); "
                       "Ctrl-C stops it")

        with contextlib.suppress(KeyboardInterrupt):
            asyncio.run(serve(obs, host, port, ready))


@contextlib.contextmanager
def _existing(data_dir: str) -> Iterator[Observer]:
    """An observer directory that must exist already, its index brought up to date."""
    from .service import Observer

    try:
        obs = Observer(data_dir, create=False)
    except FileNotFoundError as exc:
        raise click.ClickException(str(exc)) from None
    with obs:
        obs.update_index()
        yield obs


@observe.command("export")
@click.argument("target", metavar="ID|CLUSTER")
@click.argument("out", type=click.Path(dir_okay=False))
@click.option("--data", "data_dir", type=click.Path(file_okay=False), default=DEFAULT_DATA,
              show_default=True, help="The observer directory.")
@click.option("--json", "as_json", is_flag=True, help="Print the summary as JSON.")
def export_cmd(target: str, out: str, data_dir: str, as_json: bool) -> None:
    """Write an evidence package (zip) of a report (its id) or a cluster (CELL@START):
    signed events, receipts and proofs, media, SHA256SUMS, an HTML and PDF summary and a
    README saying how to check each claim."""
    import json

    from .evidence import ExportError, PackageError, export

    with _existing(data_dir) as obs:
        try:
            summary = export(obs, target, out)
        except (ExportError, PackageError) as exc:
            raise click.ClickException(str(exc)) from None
    if as_json:
        click.echo(json.dumps(summary))
    else:
        click.echo(f"wrote {summary['path']}: {summary['reports']} report(s), "
                   f"{summary['receipts']} receipt(s), {summary['proofs']} proof(s), "
                   f"{summary['media']} media file(s), {summary['bytes']} bytes. Check it "
                   f"with `samizdat verify-package {out}`.")


@click.command("verify-package")
@click.argument("file", type=click.Path(dir_okay=False, exists=True))
@click.option("--signer", metavar="NPUB", default=None,
              help="Require the package to be signed by this observer key (npub or hex).")
@click.option("--json", "as_json", is_flag=True, help="Print the result as JSON.")
def verify_package_cmd(file: str, signer: str | None, as_json: bool) -> None:
    """Check an evidence package offline: the observer's signature over it, every hash,
    event signature, receipt, leaf list and proof. Exits 1 naming each file that fails
    and why. Compare the signer it prints with the observer's npub you know."""
    import json
    import sys

    from ..nostr.keys import decode_npub, npub
    from .evidence import describe, verify_package

    want = None
    if signer:
        try:
            want = decode_npub(signer) if signer.startswith("npub") else bytes.fromhex(
                signer).hex()
        except ValueError:
            raise click.BadParameter("an npub1… or 64 hex characters",
                                     param_hint="--signer") from None
        if len(want) != 64:
            raise click.BadParameter("an npub1… or 64 hex characters", param_hint="--signer")
    result = verify_package(file, signer=want)
    if as_json:
        click.echo(json.dumps(result.as_json()))
    else:
        if result.signer:
            click.echo(f"signed by observer {npub(result.signer)}")
        for line in describe(result):
            click.echo(line)
        for name, reason in result.problems:
            click.echo(f"FAILED {name}: {reason}", err=True)
        click.echo("package verified: every check passed" if result.ok
                   else f"package NOT verified: {len(result.problems)} problem(s)")
    if not result.ok:
        sys.exit(1)


@click.group("demo")
def demo() -> None:
    """Demonstrations: fabricated data to see the whole story on one machine."""


INSTALL_HINT = ("Install the observer extra: `pip install 'samizdat[observer]'` (in a "
                "checkout: `.venv/bin/pip install -e '.[observer]'`)")


def _media_libraries() -> bool:
    try:
        import imagehash  # noqa: F401
        import PIL  # noqa: F401
    except ImportError:
        return False
    return True


def _need_media_libraries(why: str) -> None:
    if not _media_libraries():
        raise click.ClickException(f"{why}, which is not installed. {INSTALL_HINT}.")


@demo.command("scenario")
@click.option("--out", "out_dir", type=click.Path(file_okay=False), default="demo-scenario",
              show_default=True, help="Where to write the hubs, bundles, reference set and "
              "answer key (must not exist, or hold an earlier scenario, which is replaced).")
@click.option("--seed", type=int, default=1, show_default=True,
              help="The same seed gives the same keys, events and event ids.")
@click.option("--data", "data_dir", type=click.Path(file_okay=False), default=None,
              help="The observer directory to ingest into  [default: OUT/observer-data].")
@click.option("--no-ingest", is_flag=True, help="Only write the scenario; do not ingest it.")
@click.option("--json", "as_json", is_flag=True, help="Print the answer key as JSON.")
def demo_scenario_cmd(out_dir: str, seed: int, data_dir: str | None, no_ingest: bool,
                      as_json: bool) -> None:
    """Fabricate a blackout in Almaty (three hubs, twelve witnesses, photos, receipts, four
    planted problems), export a bundle per hub, and ingest them into the observer
    directory --data. `OUT/scenario.json` says which reports are planted and which flag
    each must raise."""
    from .scenario import run_demo

    _need_media_libraries("the demo draws its photos with Pillow")
    out = Path(out_dir)
    data = None if no_ingest else Path(data_dir) if data_dir else out / "observer-data"
    try:
        run_demo(out, seed, data, as_json=as_json)
    except FileExistsError as exc:
        raise click.ClickException(str(exc)) from None

