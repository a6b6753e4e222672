"""``samizdat observe serve``: the observer console, server-rendered HTML on one port.

Pages (docs/observer.md, "The console"): ``/`` overview, ``/report/<id>`` verification,
``/clusters`` and ``/cluster/<cell>@<start>``, ``/timeline``, ``/map``, ``/media/<sha256>``
(media from the observer's own blob store), ``/export/<id or cluster>.zip`` (an evidence
package), ``/api/check/<id>`` (the JSON of ``samizdat observe check --json``).

Every page works without JavaScript, and a Content-Security-Policy forbids loading anything
from another origin (no tiles, fonts or scripts from elsewhere): an observer's browser
tells nobody what it looks at. The observer's blocking calls (SQLite, image decoding) run
in worker threads.
"""

from __future__ import annotations

import asyncio
import re
from collections import Counter
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from typing import Any

from aiohttp import web

from . import geo, pages
from .cluster import parse_cluster_id
from .evidence import read_blob
from .model import Verdict
from .pages import esc, short, utc

CSP = ("default-src 'none'; img-src 'self'; style-src 'self'; form-action 'self'; "
       "base-uri 'none'; frame-ancestors 'none'")
_HEX64 = re.compile(r"[0-9a-f]{64}")
#: Media the console shows inline; anything else is offered as a download.
_INLINE = {"image/jpeg", "image/png", "image/webp", "image/gif"}
LATEST = 60  # reports checked for the overview's "latest flags"

OBSERVER_KEY = web.AppKey("observer", object)
EXECUTOR_KEY = web.AppKey("executor", ThreadPoolExecutor)


@web.middleware
async def _headers(request: web.Request, handler: Callable) -> web.StreamResponse:
    try:
        resp = await handler(request)
    except web.HTTPException as exc:
        resp = exc
        if exc.status >= 400 and exc.text and not exc.text.startswith("<"):
            resp = web.Response(status=exc.status, content_type="text/html",
                                text=pages.layout(f"{exc.status}", f"<h1>{exc.status}</h1>"
                                                  f"<p>{esc(exc.text)}</p>"))
    resp.headers["Content-Security-Policy"] = CSP
    resp.headers["X-Content-Type-Options"] = "nosniff"
    resp.headers["Referrer-Policy"] = "no-referrer"
    resp.headers["X-Frame-Options"] = "DENY"
    return resp


def _html(title: str, body: str) -> web.Response:
    return web.Response(text=pages.layout(title, body), content_type="text/html")


def _obs(request: web.Request) -> Any:
    return request.app[OBSERVER_KEY]


async def _run(request: web.Request, fn: Callable, *args: Any) -> Any:
    """Run a blocking observer call on the console's one worker thread (the Observer is
    not thread-safe: its calls are serialised there, off the event loop)."""
    loop = asyncio.get_running_loop()
    return await loop.run_in_executor(request.app[EXECUTOR_KEY], fn, *args)


def _preview(text: str, n: int = 100) -> str:
    """A report's words without the media URLs that end it (NIP-92)."""
    lines = [ln for ln in text.splitlines() if not ln.startswith(("http://", "https://"))]
    return short(" ".join(lines), n)


def _report_link(eid: str) -> str | None:
    return f"/report/{eid}" if _HEX64.fullmatch(eid or "") else None


# --------------------------------------------------------------------------- pages

async def index(request: web.Request) -> web.Response:
    obs = _obs(request)
    stats, latest, clusters = await _run(request, _overview, obs)
    cards = "".join(f'<div class="card"><div class="n">{esc(v)}</div>{esc(k)}</div>'
                    for k, v in stats.items())
    flagged = [v for v in latest if v.flags]
    rows = [(f'<a href="/report/{esc(v.id)}"><code>{esc(short(v.id, 16))}</code></a>',
             esc(utc(v.report.created_at if v.report else None)),
             esc(_preview(v.report.text if v.report else "", 80)), pages.verdict_badge(v))
            for v in flagged[:30]]
    latest_rows = [(f'<a href="/report/{esc(v.id)}"><code>{esc(short(v.id, 16))}</code></a>',
                    esc(utc(v.report.created_at if v.report else None)),
                    esc(_preview(v.report.text if v.report else "", 80)), pages.verdict_badge(v))
                   for v in latest[:30]]
    body = (
        "<h1>What came out of the blackout</h1>"
        f'<div class="cards">{cards}</div>'
        "<h2>Latest flags</h2>"
        + (pages.table(["Report", "Posted", "Text", "Flags"], rows, raw_cols=(0, 1, 2, 3))
           if rows else "<p class='ok'>No report among the latest is flagged.</p>")
        + "<h2>Largest clusters</h2>" + _clusters_table(clusters[:10])
        + "<h2>Latest reports</h2>"
        + pages.table(["Report", "Posted", "Text", "Flags"], latest_rows,
                      raw_cols=(0, 1, 2, 3))
        + '<p><a href="/timeline">Timeline</a> · <a href="/map">Map</a> · '
        '<a href="/clusters">All clusters</a></p>')
    return _html("samizdat observer", body)


def _overview(obs: Any) -> tuple[dict[str, Any], list[Verdict], list[Any]]:
    verdicts = [obs.check(r.id) for r in obs.reports(limit=LATEST)]
    stats: dict[str, Any] = {}
    for k, v in (obs.stats() or {}).items():
        if isinstance(v, int):
            stats[k.replace("_", " ")] = v
    stats["flagged (latest)"] = sum(1 for v in verdicts if v.worst in ("warning", "error"))
    return stats, verdicts, list(obs.clusters())


def _clusters_table(clusters: list[Any]) -> str:
    if not clusters:
        return "<p class='muted'>No clusters (no report gives a place).</p>"
    rows = [(f'<a href="/cluster/{esc(c.id)}">{esc(c.cell)}</a>',
             esc(f"{utc(c.start)} – {utc(c.end)[11:]}"), esc(len(c.reports)), esc(c.keys))
            for c in clusters]
    return pages.table(["Cell", "Window", "Reports", "Independent keys"], rows,
                       raw_cols=(0, 1, 2, 3))


async def report(request: web.Request) -> web.Response:
    eid = request.match_info["id"].lower()
    if not _HEX64.fullmatch(eid):
        raise web.HTTPNotFound(text="A report id is 64 hexadecimal characters.")
    v: Verdict = await _run(request, _obs(request).check, eid)
    if not v.found:
        raise web.HTTPNotFound(text=f"Event {eid} is not in this observer's archive.")
    extra = (f'<h2>Evidence</h2><p><a href="/export/{esc(eid)}.zip">Download the evidence '
             f"package</a> (signed events, receipts, proofs, media, summary as HTML and PDF) "
             f'· <a href="/api/check/{esc(eid)}">this verdict as JSON</a></p>')
    cell = v.report.geohash[:5] if v.report and v.report.geohash else ""
    if cell and v.report is not None:
        t = v.report.claimed_time
        extra += (f'<p>Other reports nearby at that hour: <a href="/cluster/{esc(cell)}@'
                  f'{t - t % 3600}">cluster {esc(cell)}</a></p>')
    shas = {m.claim.sha256 for m in v.media if m.claim.sha256}
    shas |= {mm.other_sha256 for m in v.media for mm in m.matches}

    def link(e: str) -> str | None:  # a flag's evidence: media by hash, events by id
        return f"/media/{e}" if e in shas else _report_link(e)

    body = pages.report_body(v, media_src=lambda sha: f"/media/{sha}", link=link,
                             extra=extra)
    return _html(f"Report {short(eid, 16)}", body)


async def api_check(request: web.Request) -> web.Response:
    eid = request.match_info["id"].lower()
    if not _HEX64.fullmatch(eid):
        return web.json_response({"error": "an event id is 64 hex characters"}, status=400)
    v: Verdict = await _run(request, _obs(request).check, eid)
    return web.json_response(v.as_json(), status=200 if v.found else 404)


async def clusters_page(request: web.Request) -> web.Response:
    cl = await _run(request, lambda: list(_obs(request).clusters()))
    body = ("<h1>Clusters</h1><p>Reports grouped by place (geohash cell) and hour. "
            "“Independent keys” counts different authors, not people.</p>"
            + _clusters_table(cl))
    return _html("Clusters", body)


async def cluster_page(request: web.Request) -> web.Response:
    cid = request.match_info["cid"]
    parsed = parse_cluster_id(cid)
    if parsed is None:
        raise web.HTTPNotFound(text="A cluster is CELL@START, e.g. v9msx@1795906800.")
    cell, start = parsed
    verdicts = await _run(request, _cluster_verdicts, _obs(request), cid)
    keys = Counter(v.report.pubkey for v in verdicts if v.report)
    rows = []
    for v in sorted(verdicts, key=lambda v: v.claimed_time or 0):
        r = v.report
        hist = v.author
        rows.append((
            f'<a href="/report/{esc(v.id)}"><code>{esc(short(v.id, 12))}</code></a>',
            esc(utc(v.claimed_time)), esc(r.geohash if r else ""),
            f"<code>{esc(short(r.pubkey if r else '', 12))}</code>"
            + (f'<br><span class="muted">since {esc(utc(hist.first_seen))}, '
               f"{hist.reports} reports</span>" if hist else ""),
            esc(f"{v.corroborations} / {v.disputes}"),
            esc(utc(v.existed_by)), pages.verdict_badge(v),
            esc(_preview(r.text if r else ""))))
    body = (f"<h1>Cluster {esc(cell)} · {esc(utc(start))}</h1>"
            f"<p>{len(verdicts)} report{'s' * (len(verdicts) != 1)} from "
            f"<b>{len(keys)} independent key{'s' * (len(keys) != 1)}</b> in geohash cell "
            f"<code>{esc(cell)}</code> ({esc(pages._place(cell))}) between "
            f"{esc(utc(start))} and {esc(utc(start + 3600))}.</p>"
            + pages.map_svg([(cell, len(verdicts), None)], width=600, height=300,
                            min_span_deg=1.5)
            + "<h2>Reports</h2>"
            + pages.table(["Report", "Claimed time", "Place", "Author key",
                           "Corroborated / disputed", "Existed by", "Flags", "Text"],
                          rows, raw_cols=range(8))
            + f'<p><a href="/export/{esc(cid)}.zip">Download the evidence package of this '
            f"cluster</a></p>")
    return _html(f"Cluster {cell}", body)


def _cluster_verdicts(obs: Any, cid: str) -> list[Verdict]:
    found = obs.cluster(cid)
    return [] if found is None else [obs.check(r.id) for r in found[1]]


async def timeline_page(request: web.Request) -> web.Response:
    rows = await _run(request, lambda: list(_obs(request).timeline()))
    svg = pages.timeline_svg([(r.hour, r.region, r.reports) for r in rows])
    table_rows = [(utc(r.hour), r.region or "no place", r.reports, r.keys)
                  for r in sorted(rows, key=lambda r: (r.hour, r.region))]
    body = ("<h1>Timeline</h1><p>Reports per hour (by the time each claims) per region "
            "(4-character geohash, about 39 × 20 km).</p>" + svg
            + "<h2>The numbers</h2>"
            + pages.table(["Hour", "Region", "Reports", "Independent keys"], table_rows))
    return _html("Timeline", body)


async def map_page(request: web.Request) -> web.Response:
    cl = await _run(request, lambda: list(_obs(request).clusters()))
    cells: dict[str, int] = Counter()
    first: dict[str, str] = {}
    for c in cl:
        cells[c.cell] += len(c.reports)
        first.setdefault(c.cell, c.id)
    marks = [(cell, n, f"/cluster/{first[cell]}") for cell, n in cells.items()]
    # the close-up: the cells within 30 km of the busiest one
    busiest = max(cells, key=lambda c: cells[c]) if cells else None
    near = [m for m in marks if busiest is None or geo.cell_distance_km(m[0], busiest) <= 30]
    svg = ("<h2>The region</h2>" + pages.map_svg(marks, min_span_deg=4.0)
           + "<h2>Close up: around the busiest cell</h2>"
           + pages.map_svg(near, min_span_deg=0.05))
    rows = [(f'<a href="/cluster/{esc(first[cell])}">{esc(cell)}</a>',
             esc(pages._place(cell)), esc(n))
            for cell, n in sorted(cells.items(), key=lambda x: -x[1])]
    body = ("<h1>Map</h1><p>Reports per geohash cell, on Natural Earth country outlines "
            "shipped with samizdat: no map tiles are fetched from anywhere.</p>" + svg
            + "<h2>Cells</h2>"
            + pages.table(["Cell", "Place", "Reports"], rows, raw_cols=(0, 1, 2)))
    return _html("Map", body)


async def media(request: web.Request) -> web.StreamResponse:
    sha = request.match_info["sha"].lower()
    if not _HEX64.fullmatch(sha):
        raise web.HTTPNotFound(text="A media file is named by its SHA-256.")
    found = await _run(request, read_blob, _obs(request), sha)
    if found is None:
        raise web.HTTPNotFound(text="This observer does not hold that file.")
    mime, data = found
    headers = {"Cache-Control": "private, max-age=86400, immutable"}
    if mime not in _INLINE:
        headers["Content-Disposition"] = f'attachment; filename="{sha}"'
        mime = "application/octet-stream"
    return web.Response(body=data, content_type=mime, headers=headers)


async def export(request: web.Request) -> web.StreamResponse:
    from .evidence import ExportError, export_to_bytes

    target = request.match_info["target"]
    try:
        data = await _run(request, export_to_bytes, _obs(request), target)
    except ExportError as exc:
        raise web.HTTPNotFound(text=str(exc)) from None
    name = re.sub(r"[^0-9a-z@]", "", target)[:40] or "evidence"
    return web.Response(body=data, content_type="application/zip",
                        headers={"Content-Disposition":
                                 f'attachment; filename="samizdat-evidence-{name}.zip"'})


async def css(request: web.Request) -> web.Response:
    return web.Response(text=pages.CSS, content_type="text/css",
                        headers={"Cache-Control": "max-age=3600"})


def make_app(observer: Any) -> web.Application:
    app = web.Application(middlewares=[_headers], client_max_size=64 * 1024)
    app[OBSERVER_KEY] = observer
    app[EXECUTOR_KEY] = ThreadPoolExecutor(1, thread_name_prefix="observer")

    async def _stop(app: web.Application) -> None:
        app[EXECUTOR_KEY].shutdown(wait=True)

    app.on_cleanup.append(_stop)
    app.router.add_get("/", index)
    app.router.add_get("/report/{id}", report)
    app.router.add_get("/api/check/{id}", api_check)
    app.router.add_get("/clusters", clusters_page)
    app.router.add_get("/cluster/{cid}", cluster_page)
    app.router.add_get("/timeline", timeline_page)
    app.router.add_get("/map", map_page)
    app.router.add_get("/media/{sha}", media)
    app.router.add_get("/export/{target}.zip", export)
    app.router.add_get("/static/console.css", css)
    return app


async def serve(observer: Any, host: str, port: int,
                ready: Callable[[int], None] | None = None) -> None:
    runner = web.AppRunner(make_app(observer), access_log=None)
    await runner.setup()
    site = web.TCPSite(runner, host, port)
    await site.start()
    bound = port
    server = getattr(site, "_server", None)
    if server is not None and server.sockets:
        bound = server.sockets[0].getsockname()[1]
    if ready:
        ready(bound)
    try:
        await asyncio.Event().wait()
    finally:
        await runner.cleanup()
