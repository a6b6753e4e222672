"""HTML of the observer console and of evidence summaries. Pure code: strings in, strings
out; every value from an event passes through :func:`esc`.

The console (web.py) serves these pages; evidence.py writes the report part into a
package's ``summary.html`` and the :func:`verdict_sections` text into ``summary.pdf``. No
page needs JavaScript, and none loads anything from another origin: the map and the
timeline are inline SVG.
"""

from __future__ import annotations

import html
import json
import math
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from functools import lru_cache
from importlib import resources
from typing import Any

from . import geo
from .model import Flag, Verdict

FLAG_TITLES = {
    "bad-signature": "The signature does not verify",
    "time-contradiction": "The claimed time contradicts the receipts",
    "place-contradiction": "The claimed place contradicts the receiving hubs",
    "recycled-media": "Media seen before (recycled?)",
    "media-mismatch": "A media file does not match its claim",
    "exif-location": "A photo still carries its GPS position",
    "sybil-burst": "Corroborations from a burst of brand-new keys",
    "no-receipt": "No hub receipt includes it",
}

CSS = """
:root{--fg:#1b1b1b;--muted:#5c5c5c;--line:#d8d8d8;--bg:#fbfbf8;--warn:#9a3d00;
--warnbg:#fff1e0;--err:#a10000;--errbg:#ffe6e6;--ok:#1d6b2c;--okbg:#e7f5ea;--info:#234e7a;
--infobg:#e8f0fa;--cell:#c0392b}
*{box-sizing:border-box}
body{margin:0;font:16px/1.45 system-ui,-apple-system,"Segoe UI",Roboto,"Noto Sans",
"DejaVu Sans",sans-serif;color:var(--fg);background:var(--bg)}
header.top{background:#222;color:#fff;padding:.5rem 1rem;display:flex;flex-wrap:wrap;
gap:.25rem 1rem;align-items:baseline}
header.top a{color:#fff;text-decoration:none}
header.top strong{margin-right:1rem}
main{max-width:60rem;margin:0 auto;padding:1rem}
h1{font-size:1.4rem;margin:.5rem 0 1rem;overflow-wrap:anywhere}
h2{font-size:1.1rem;margin:1.5rem 0 .5rem;border-bottom:1px solid var(--line)}
table{border-collapse:collapse;width:100%}
th,td{text-align:left;vertical-align:top;padding:.3rem .5rem;border-bottom:1px solid var(--line)}
th{font-weight:600;color:var(--muted);width:14rem}
td{overflow-wrap:anywhere}
code,.mono{font-family:ui-monospace,"DejaVu Sans Mono",monospace;font-size:.85em;
overflow-wrap:anywhere}
.flag{border-left:4px solid;padding:.4rem .7rem;margin:.4rem 0;border-radius:3px}
.flag.warning{border-color:var(--warn);background:var(--warnbg)}
.flag.error{border-color:var(--err);background:var(--errbg)}
.flag.info{border-color:var(--info);background:var(--infobg)}
.flag b{display:block}
.ok{color:var(--ok)}.bad{color:var(--err)}.muted{color:var(--muted)}
.badge{display:inline-block;padding:0 .4rem;border-radius:3px;font-size:.8em;
background:var(--okbg);color:var(--ok)}
.badge.warning{background:var(--warnbg);color:var(--warn)}
.badge.error{background:var(--errbg);color:var(--err)}
.badge.info{background:var(--infobg);color:var(--info)}
.text{white-space:pre-wrap;background:#fff;border:1px solid var(--line);padding:.7rem;
border-radius:3px;overflow-wrap:anywhere}
.media{display:flex;flex-wrap:wrap;gap:1rem}
.media figure{margin:0;max-width:18rem;border:1px solid var(--line);background:#fff;
padding:.5rem}
.media img{max-width:100%;height:auto;display:block}
.cards{display:grid;grid-template-columns:repeat(auto-fit,minmax(9rem,1fr));gap:.6rem}
.card{background:#fff;border:1px solid var(--line);padding:.6rem;border-radius:3px}
.card .n{font-size:1.6rem;font-weight:700}
svg{max-width:100%;height:auto;background:#fff;border:1px solid var(--line)}
svg .land{fill:#ecebe4;stroke:#9a9a92;stroke-width:.6}
svg .cell{fill:var(--cell);fill-opacity:.35;stroke:var(--cell);stroke-width:1}
svg .cell:hover{fill-opacity:.6}
svg .lbl{font:11px sans-serif;fill:#111}
svg .bar{fill:#3d6fa8}
svg .axis{stroke:#999;stroke-width:1}
ul.plain{padding-left:1.1rem}
footer{color:var(--muted);font-size:.85em;padding:2rem 1rem;text-align:center}
.scroll{overflow-x:auto}
table.data th{width:auto}
@media (max-width:40rem){table.kv th{width:auto;display:block;border:0;padding-bottom:0}
table.kv td{display:block;padding-top:0}main{padding:.6rem}table.data{font-size:.85em}}
@media print{header.top{display:none}}
"""


def esc(value: object) -> str:
    return html.escape("" if value is None else str(value), quote=True)


def utc(ts: int | None) -> str:
    if ts is None:
        return "unknown"
    return datetime.fromtimestamp(ts, UTC).strftime("%Y-%m-%d %H:%M UTC")


def short(key: str | None, n: int = 12) -> str:
    return (key[:n] + "…") if key and len(key) > n else (key or "")


def layout(title: str, body: str, *, css_href: str | None = "/static/console.css",
           nav: bool = True) -> str:
    style = (f'<link rel="stylesheet" href="{esc(css_href)}">' if css_href
             else f"<style>{CSS}</style>")
    top = ('<header class="top"><strong><a href="/">samizdat observer</a></strong>'
           '<a href="/">Overview</a><a href="/clusters">Clusters</a>'
           '<a href="/timeline">Timeline</a><a href="/map">Map</a></header>') if nav else ""
    return (f'<!doctype html><html lang="en"><head><meta charset="utf-8">'
            f'<meta name="viewport" content="width=device-width,initial-scale=1">'
            f'<meta name="referrer" content="no-referrer">'
            f"<title>{esc(title)}</title>{style}</head><body>{top}<main>{body}</main>"
            f"<footer>samizdat observer · every claim on this page can be checked from the "
            f"signed events: export an evidence package</footer></body></html>")


# --------------------------------------------------------------------- report verdicts

@dataclass
class Section:
    title: str
    rows: list[tuple[str, str]] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)


def flag_title(flag: Flag) -> str:
    return FLAG_TITLES.get(flag.code, flag.code)


def verdict_sections(v: Verdict) -> list[Section]:
    """The verdict as plain-language text: the report page's tables, the PDF's body."""
    out: list[Section] = []
    r = v.report
    s = Section("The report")
    s.rows.append(("Event id", v.id))
    if r is not None:
        s.rows.append(("Posted (created_at, the author's claim)", utc(r.created_at)))
        if r.observed_at is not None:
            s.rows.append(("Says it happened at (observed_at)", utc(r.observed_at)))
        s.rows.append(("Claimed place", _place(r.geohash) if r.geohash else "none given"))
        if r.hashtags:
            s.rows.append(("Hashtags", " ".join("#" + t for t in r.hashtags)))
    elif v.kind is not None:
        s.rows.append(("Kind", str(v.kind)))
    out.append(s)

    s = Section("Signature")
    if v.signature_valid is None:
        s.rows.append(("Signature", "not checked"))
    else:
        s.rows.append(("Signature", "valid: the author's key signed exactly this text"
                       if v.signature_valid else "INVALID: the event was altered or forged"))
    out.append(s)

    a = v.author
    if a is not None:
        s = Section("Author key history")
        s.rows += [("Key", a.pubkey), ("First seen", utc(a.first_seen)),
                   ("Last seen", utc(a.last_seen)),
                   ("Reports", str(a.reports)), ("Labels given", str(a.labels)),
                   ("Corroborations received", str(a.corroborations_received)),
                   ("Disputes received", str(a.disputes_received))]
        out.append(s)

    s = Section("Hub receipts: when it existed at the latest")
    if v.existed_by is not None:
        s.rows.append(("Existed no later than", f"{utc(v.existed_by)} (receipt "
                       f"{short(v.existed_by_receipt, 16)})"))
    else:
        s.rows.append(("Existed no later than", "unknown: no receipt includes it"))
    hubs = {rc.hub for rc in v.receipts}
    s.rows.append(("Receipts that include it", f"{len(v.receipts)} from {len(hubs)} "
                   f"independent hub key{'s' * (len(hubs) != 1)}"))
    for rc in sorted(v.receipts, key=lambda x: x.end):
        place = f", declared place {_place(rc.place)}" if rc.place else ""
        s.rows.append((f"Hub {short(rc.hub)}", f"stored it between {utc(rc.start)} and "
                       f"{utc(rc.end)} (receipt {short(rc.id, 16)}, {rc.count} events"
                       f"{place})"))
    out.append(s)

    s = Section("Time and place checks")
    s.rows.append(("Claimed time", utc(v.claimed_time)))
    if v.claimed_time is not None and v.existed_by is not None:
        diff = v.existed_by - v.claimed_time
        s.rows.append(("Claimed time vs. first receipt",
                       f"the first receipt closed {_span(diff)} after the claimed time"
                       if diff >= 0 else
                       f"the claimed time is {_span(-diff)} AFTER a receipt already held "
                       "the report"))
    s.rows.append(("Claimed place", _place(v.claimed_place) if v.claimed_place else "none"))
    for pc in v.place_checks:
        dist = "unknown" if pc.distance_km is None else f"{pc.distance_km:.0f} km away"
        s.rows.append((f"Hub {short(pc.hub)}", f"declares {_place(pc.hub_place)}: {dist}"))
    out.append(s)

    s = Section("Corroboration")
    s.rows.append(("Corroborated by", f"{v.corroborations} other key"
                   f"{'s' * (v.corroborations != 1)}"))
    s.rows.append(("Disputed by", f"{v.disputes} other key{'s' * (v.disputes != 1)}"))
    if v.corroborators:
        s.rows.append(("Corroborating keys", ", ".join(short(k) for k in v.corroborators)))
    if v.disputers:
        s.rows.append(("Disputing keys", ", ".join(short(k) for k in v.disputers)))
    s.notes.append("Counts are of keys, not people: one person can hold many keys. The "
                   "keys' histories (and the sybil-burst flag) weigh them.")
    out.append(s)

    for n, m in enumerate(v.media, 1):
        s = Section(f"Media {n}")
        c = m.claim
        s.rows.append(("Claimed SHA-256", c.sha256 or "none"))
        s.rows.append(("Claimed type", c.mime or "unknown"))
        if c.dim:
            s.rows.append(("Claimed size", f"{c.dim[0]}×{c.dim[1]}"))
        if not m.stored:
            s.rows.append(("File", "not in the observer's archive"))
        else:
            s.rows.append(("File hash", "matches the claim" if m.sha256_ok
                           else "DOES NOT match the claim"))
        f = m.facts
        if f is not None:
            s.rows.append(("Actual type", f"{f.mime or 'unknown'}"
                           + (f", {f.width}×{f.height}" if f.width else "")))
            ex = f.exif or {}
            if not ex.get("present"):
                s.rows.append(("EXIF", "none (stripped, as the web app does)"))
            else:
                bits = []
                if ex.get("has_gps") and ex.get("gps"):
                    lat, lon = ex["gps"]
                    bits.append(f"GPS {lat:.5f}, {lon:.5f}")
                for k in ("make", "model", "serial", "datetime_original"):
                    if ex.get(k):
                        bits.append(f"{k.replace('_', ' ')} {ex[k]}")
                s.rows.append(("EXIF", "present: " + ("; ".join(bits) or "no notable fields")))
            if f.phash:
                s.rows.append(("Perceptual hash", f"{f.phash} ({f.hash_name})"))
        for p in m.problems:
            s.rows.append(("Problem", p))
        for mm in m.matches:
            where = (f"report {short(mm.other_report, 16)}" if mm.source == "archive"
                     else f"reference set: {mm.reference or short(mm.other_sha256, 16)}")
            when = f", existed by {utc(mm.other_time)}" if mm.other_time else ""
            order = "earlier" if mm.earlier else "later"
            s.rows.append(("Looks like", f"{order} media in {where}{when} (distance "
                           f"{mm.distance})"))
        out.append(s)
    return out


def _span(seconds: int) -> str:
    seconds = abs(int(seconds))
    if seconds < 120:
        return f"{seconds} s"
    if seconds < 7200:
        return f"{seconds // 60} min"
    if seconds < 172800:
        return f"{seconds / 3600:.1f} h"
    return f"{seconds / 86400:.1f} days"


def _place(gh: str | None) -> str:
    if not gh:
        return "none"
    try:
        lat, lon = geo.decode(gh)
    except ValueError:
        return gh
    return f"{gh} (around {lat:.3f}, {lon:.3f})"


def flags_html(flags: Sequence[Flag], link: Callable[[str], str | None] | None = None) -> str:
    if not flags:
        return '<p class="ok">No flags: nothing in the archive contradicts this report.</p>'
    out = []
    order = {"error": 0, "warning": 1, "info": 2}
    for f in sorted(flags, key=lambda f: order.get(f.severity, 3)):
        ev = ""
        if f.evidence:
            items = []
            for e in f.evidence:
                href = link(e) if link else None
                items.append(f'<a href="{esc(href)}"><code>{esc(short(e, 16))}</code></a>'
                             if href else f"<code>{esc(short(e, 16))}</code>")
            ev = f'<span class="muted">Evidence: {", ".join(items)}</span>'
        out.append(f'<div class="flag {esc(f.severity)}" data-code="{esc(f.code)}">'
                   f'<b>{esc(flag_title(f))} '
                   f'<span class="badge {esc(f.severity)}">{esc(f.severity)}</span></b>'
                   f"{esc(f.message)}<br>{ev}</div>")
    return "".join(out)


def sections_html(sections: Iterable[Section]) -> str:
    out = []
    for s in sections:
        rows = "".join(f"<tr><th>{esc(k)}</th><td>{esc(v)}</td></tr>" for k, v in s.rows)
        notes = "".join(f'<p class="muted">{esc(n)}</p>' for n in s.notes)
        out.append(f'<h2>{esc(s.title)}</h2><table class="kv">{rows}</table>{notes}')
    return "".join(out)


def report_body(v: Verdict, *, media_src: Callable[[str], str | None],
                link: Callable[[str], str | None] | None = None,
                extra: str = "") -> str:
    """The report verification page's content (also a package's summary)."""
    r = v.report
    title = "Report " + short(v.id, 16)
    parts = [f"<h1>{esc(title)}</h1>"]
    if not v.found:
        parts.append("<p>This event is not in the observer's archive.</p>")
        return "".join(parts)
    if r is not None:
        parts.append(f'<div class="text" lang="">{esc(r.text)}</div>')
    parts.append("<h2>Flags</h2>" + flags_html(v.flags, link))
    thumbs = []
    for m in v.media:
        sha = m.claim.sha256
        src = media_src(sha) if sha and m.stored and m.facts and m.facts.is_image else None
        img = (f'<img src="{esc(src)}" alt="media {esc(short(sha, 12))}">'
               if src else '<p class="muted">no preview</p>')
        thumbs.append(f"<figure>{img}<figcaption class='mono'>{esc(short(sha, 16))}"
                      f"</figcaption></figure>")
    if thumbs:
        parts.append('<h2>Media</h2><div class="media">' + "".join(thumbs) + "</div>")
    parts.append(sections_html(verdict_sections(v)))
    parts.append(extra)
    return "".join(parts)


def verdict_badge(v: Verdict) -> str:
    worst = v.worst
    if worst is None:
        return '<span class="badge">no flags</span>'
    codes = ", ".join(sorted({f.code for f in v.flags}))
    return f'<span class="badge {esc(worst)}">{esc(codes)}</span>'


# --------------------------------------------------------------------------- SVG

def timeline_svg(rows: Sequence[tuple[int, str, int]], *, width: int = 900,
                 bar_height: int = 16) -> str:
    """Reports per hour per region: ``rows`` of (hour start, region, count), region ""
    meaning no place given. One band of bars per region, hours on the x axis."""
    rows = [(h, g or "no place", c) for h, g, c in rows]
    if not rows:
        return "<p class='muted'>No reports yet.</p>"
    hours = sorted({h for h, _, _ in rows})
    regions = sorted({g for _, g, _ in rows})
    h0, h1 = hours[0], hours[-1]
    span = max((h1 - h0) // 3600 + 1, 1)
    left, top = 90, 20
    band = bar_height * 3
    plot_w = width - left - 10
    bw = max(plot_w / span, 1.5)
    peak = max(c for _, _, c in rows)
    height = top + band * len(regions) + 30
    out = [f'<svg viewBox="0 0 {width} {height}" width="{width}" height="{height}" '
           f'role="img" aria-label="reports per hour per region" '
           f'xmlns="http://www.w3.org/2000/svg">']
    for i, g in enumerate(regions):
        y = top + i * band
        out.append(f'<text class="lbl" x="4" y="{y + band / 2 + 4:.0f}">{esc(g)}</text>'
                   f'<line class="axis" x1="{left}" y1="{y + band}" x2="{width - 10}" '
                   f'y2="{y + band}"/>')
    idx = {g: i for i, g in enumerate(regions)}
    for h, g, c in rows:
        x = left + (h - h0) / 3600 * bw
        bh = max((band - 6) * c / peak, 2)
        y = top + idx[g] * band + band - bh
        out.append(f'<rect class="bar" x="{x:.1f}" y="{y:.1f}" width="{max(bw - 1, 1):.1f}" '
                   f'height="{bh:.1f}"><title>{esc(g)} {esc(utc(h))}: {c} report'
                   f'{"s" * (c != 1)}</title></rect>')
    ticks = max(span // 8, 1)
    for k in range(0, span, ticks):
        x = left + k * bw
        label = datetime.fromtimestamp(h0 + k * 3600, UTC).strftime("%d %H:00")
        out.append(f'<text class="lbl" x="{x:.0f}" y="{height - 8}">{esc(label)}</text>')
    out.append("</svg>")
    return "".join(out)


@lru_cache(maxsize=1)
def countries() -> list[tuple[str, list[list[tuple[float, float]]]]]:
    """Natural Earth outlines from static/countries.json (tools/observer-map/)."""
    raw = resources.files(__package__).joinpath("static/countries.json").read_text("utf-8")
    doc = json.loads(raw)
    scale = float(doc["scale"])
    out = []
    for c in doc["countries"]:
        rings = []
        for flat in c["rings"]:
            x = y = 0
            pts = []
            for k in range(0, len(flat) - 1, 2):
                x += flat[k]
                y += flat[k + 1]
                pts.append((x / scale, y / scale))
            rings.append(pts)
        out.append((c["name"], rings))
    return out


def map_svg(cells: Sequence[tuple[str, int, str | None]], *, width: int = 900,
            height: int = 560, min_span_deg: float = 0.5) -> str:
    """Geohash cells (geohash, count, link or None) on the country outlines, zoomed to the
    cells' bounding box; equirectangular with the longitude scaled by cos(latitude)."""
    boxes = []
    for gh, n, href in cells:
        try:
            boxes.append((geo.bbox(gh), gh, n, href))
        except ValueError:
            continue
    if boxes:
        s = min(b[0][0] for b in boxes)
        w = min(b[0][1] for b in boxes)
        n_ = max(b[0][2] for b in boxes)
        e = max(b[0][3] for b in boxes)
    else:
        s, w, n_, e = -60.0, -180.0, 80.0, 180.0
    # pad, and keep at least min_span_deg so a single cell shows its surroundings
    clat, clon = (s + n_) / 2, (w + e) / 2
    kx = max(math.cos(math.radians(clat)), 0.1)
    half_h = max((n_ - s) * 0.6, min_span_deg / 2)
    half_w = max((e - w) * 0.6, min_span_deg / 2 / kx)
    # fit the aspect ratio of the picture
    if half_w * kx / half_h > width / height:
        half_h = half_w * kx * height / width
    else:
        half_w = half_h * width / height / kx
    s, n_, w, e = clat - half_h, clat + half_h, clon - half_w, clon + half_w

    def px(lon: float, lat: float) -> tuple[float, float]:
        return (lon - w) / (e - w) * width, (n_ - lat) / (n_ - s) * height

    paths = []
    min_step = (e - w) / width * 0.75  # drop points closer than under a pixel
    for name, rings in countries():
        d = []
        for ring in rings:
            lons = [p[0] for p in ring]
            lats = [p[1] for p in ring]
            if max(lons) < w or min(lons) > e or max(lats) < s or min(lats) > n_:
                continue
            pts, last = [], None
            for lon, lat in ring:
                if last and abs(lon - last[0]) < min_step and abs(lat - last[1]) < min_step:
                    continue
                last = (lon, lat)
                x, y = px(lon, lat)
                pts.append(f"{x:.1f},{y:.1f}")
            if len(pts) >= 3:
                d.append("M" + "L".join(pts) + "Z")
        if d:
            paths.append(f'<path class="land" d="{"".join(d)}"><title>{esc(name)}</title>'
                         f"</path>")
    out = [f'<svg viewBox="0 0 {width} {height}" width="{width}" height="{height}" '
           f'role="img" aria-label="map of reports by geohash cell" '
           f'xmlns="http://www.w3.org/2000/svg">', *paths]
    for (bs, bw_, bn, be), gh, n, href in sorted(boxes, key=lambda b: -b[2]):
        x0, y0 = px(bw_, bn)
        x1, y1 = px(be, bs)
        cw, ch = max(x1 - x0, 6), max(y1 - y0, 6)
        rect = (f'<rect class="cell" x="{x0:.1f}" y="{y0:.1f}" width="{cw:.1f}" '
                f'height="{ch:.1f}"><title>{esc(gh)}: {n} report{"s" * (n != 1)}</title>'
                f"</rect>")
        if cw >= 16 and ch >= 14:
            rect += (f'<text class="lbl" x="{x0 + cw / 2:.1f}" y="{y0 + ch / 2 + 4:.1f}" '
                     f'text-anchor="middle">{n}</text>')
        out.append(f'<a href="{esc(href)}">{rect}</a>' if href else rect)
    out.append(f'<text class="lbl" x="6" y="{height - 6}">Boundaries: Natural Earth (public '
               f"domain), via world-atlas</text></svg>")
    return "".join(out)


def table(headers: Sequence[str], rows: Iterable[Sequence[Any]], *, raw_cols: Sequence[int] = ()
          ) -> str:
    """A table; cells are escaped unless their column is in ``raw_cols`` (already HTML)."""
    head = "".join(f"<th>{esc(h)}</th>" for h in headers)
    body = []
    for row in rows:
        cells = "".join(f"<td>{c if i in raw_cols else esc(c)}</td>" for i, c in enumerate(row))
        body.append(f"<tr>{cells}</tr>")
    return (f'<div class="scroll"><table class="data"><thead><tr>{head}</tr></thead>'
            f"<tbody>{''.join(body)}</tbody></table></div>")
