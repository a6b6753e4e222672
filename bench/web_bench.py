"""Web app benchmark: what a phone downloads on its first visit, and how soon it can post.

Measures, against a real `samizdat serve` process holding N reports (default 100), in
headless Chromium (Debian's) with a phone-sized screen, opened as http://hub.lan:PORT/
(a LAN-like name mapped to 127.0.0.1: not a secure context, no service worker, like a
phone on the hub's Wi-Fi):

1. first-load bytes: every HTTP request of a first visit with an empty cache (the count,
   the bytes on the wire with headers as Chromium's network layer counts them, and each
   body compressed and raw); the WebSocket feed (frames received until N reports show)
   is reported separately;
2. time to interactive: from navigation start to the app's ``samizdat-interactive``
   performance mark (key loaded, saved feed shown, compose form usable), and until the
   N reports from the hub are on screen, under DevTools network emulation of a slow 2G
   link (250 kbit/s down, 50 kbit/s up, 300 ms latency), with and without a 4x slower
   CPU, cold (empty cache) and warm (second visit: the app from the browser's cache);
   and unthrottled for reference.

Usage: .venv/bin/python bench/web_bench.py [--reports N] [--runs R] [--no-docs]
Results: printed, written to bench/results/web-<date>.json, and (unless --no-docs) as
the "Web app" section at the end of docs/benchmarks.md (replacing an earlier one).
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import tempfile
import textwrap
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "src"))
sys.path.insert(0, str(ROOT))

from playwright.sync_api import sync_playwright  # noqa: E402
from tests.helpers import Client, HubProcess, Keys  # noqa: E402

from samizdat.web.routes import STATIC_DIR, load_assets  # noqa: E402

RESULTS = ROOT / "bench" / "results"
DOCS = ROOT / "docs" / "benchmarks.md"
SECTION = "## Web app"
CHROMIUM = "/usr/bin/chromium"
PHONE = {"viewport": {"width": 390, "height": 844}, "is_mobile": True, "has_touch": True,
         "device_scale_factor": 2, "locale": "en-US"}
SLOW_2G = {"offline": False, "latency": 300, "downloadThroughput": 250_000 / 8,
           "uploadThroughput": 50_000 / 8}
TEXT = ("water rising near the bridge, people moving to higher ground; police closed the "
        "road and the buses stopped; the market is open but bread ran out by noon")
WORDS = TEXT.split(" ")


def seed(url: str, n: int) -> None:
    """n kind-1 reports from 20 authors, with hashtags and places, some corroborated."""
    authors = [Keys() for _ in range(20)]
    with Client(url) as c:
        ids = []
        for i in range(n):
            k = authors[i % len(authors)]
            words = " ".join(WORDS[(i * 7 + j) % len(WORDS)] for j in range(18))
            cell = "txwtv" if i % 3 else "txwtz"
            tags = [["t", "almaty"], ["t", "flood" if i % 2 else "roads"],
                    *[["g", cell[:m]] for m in range(2, 6)]]
            ev = k.sign(1, f"Report {i}: {words} #almaty", tags, created_at=1_790_000_000 + i)
            assert c.publish(ev)[0]
            ids.append((ev.id, ev.pubkey))
        for i, (eid, pk) in enumerate(ids[:n // 2]):
            who = authors[(i + 1) % len(authors)]
            ok, _ = c.publish(who.sign(1985, "", [["L", "samizdat.witness"],
                                                  ["l", "corroborate", "samizdat.witness"],
                                                  ["e", eid], ["p", pk]]))
            assert ok


def first_load(browser, base: str, n: int) -> dict[str, Any]:
    """One cold visit, unthrottled: every request, its bytes, and the WebSocket frames."""
    ctx = browser.new_context(**PHONE)
    page = ctx.new_page()
    cdp = ctx.new_cdp_session(page)
    cdp.send("Network.enable")
    reqs: dict[str, dict[str, Any]] = {}
    ws_bytes = {"received": 0, "frames": 0}

    def on_response(p: dict) -> None:
        r = p["response"]
        reqs.setdefault(p["requestId"], {})
        reqs[p["requestId"]].update(url=r["url"], status=r["status"],
                                    encoding=r.get("headers", {}).get("content-encoding", ""))

    def on_finished(p: dict) -> None:
        reqs.setdefault(p["requestId"], {})["wire"] = p["encodedDataLength"]

    def on_data(p: dict) -> None:
        reqs.setdefault(p["requestId"], {}).setdefault("raw", 0)
        reqs[p["requestId"]]["raw"] += p["dataLength"]

    def on_frame(p: dict) -> None:
        ws_bytes["received"] += len(p["response"]["payloadData"].encode())
        ws_bytes["frames"] += 1

    cdp.on("Network.responseReceived", on_response)
    cdp.on("Network.loadingFinished", on_finished)
    cdp.on("Network.dataReceived", on_data)
    cdp.on("Network.webSocketFrameReceived", on_frame)
    page.goto(base, wait_until="load")
    page.wait_for_function(f"() => document.querySelectorAll('[data-testid=feed-item]').length >= {n}",
                           timeout=60_000)
    page.wait_for_timeout(1500)  # late requests (manifest, icon, build.json)
    ctx.close()

    assets = load_assets(STATIC_DIR)
    rows = []
    for r in reqs.values():
        if not r.get("url", "").startswith("http"):  # data: URLs are the browser's own
            continue
        path = "/" + r["url"].split("/", 3)[3] if r["url"].count("/") >= 3 else "/"
        a = assets.get(path)
        rows.append({"path": path, "status": r["status"], "wire_bytes": r.get("wire", 0),
                     "body_gzip": len(a.gz or a.body) if a else None,
                     "body_raw": len(a.body) if a else r.get("raw", 0),
                     "encoding": r["encoding"]})
    rows.sort(key=lambda x: x["path"])
    return {
        "requests": len(rows),
        "rows": rows,
        "wire_bytes": sum(r["wire_bytes"] for r in rows),
        "body_gzip": sum(r["body_gzip"] or 0 for r in rows),
        "body_raw": sum(r["body_raw"] for r in rows),
        "websocket_received_bytes": ws_bytes["received"],
        "websocket_frames": ws_bytes["frames"],
    }


def timed_visit(browser, base: str, n: int, network: dict | None, cpu: float,
                warm: bool) -> dict[str, float]:
    ctx = browser.new_context(**PHONE)
    page = ctx.new_page()
    if warm:  # a first visit fills the cache (and IndexedDB); then measure the second
        page.goto(base, wait_until="load")
        page.wait_for_function(
            f"() => document.querySelectorAll('[data-testid=feed-item]').length >= {n}",
            timeout=60_000)
        page.wait_for_timeout(500)
        page.goto("about:blank")
    cdp = ctx.new_cdp_session(page)
    cdp.send("Network.enable")
    if network:
        cdp.send("Network.emulateNetworkConditions", network)
    if cpu > 1:
        cdp.send("Emulation.setCPUThrottlingRate", {"rate": cpu})
    page.goto(base, wait_until="commit", timeout=120_000)
    page.wait_for_function("() => performance.getEntriesByName('samizdat-interactive').length",
                           timeout=120_000, polling=50)
    page.wait_for_function("() => document.querySelector('[data-testid=feed-item]')",
                           timeout=120_000, polling="raf")
    first_ms = page.evaluate("() => performance.now()")
    page.wait_for_function(
        f"() => document.querySelectorAll('[data-testid=feed-item]').length >= {n}",
        timeout=120_000, polling="raf")
    feed_ms = page.evaluate("() => performance.now()")
    tti = page.evaluate(
        "() => performance.getEntriesByName('samizdat-interactive')[0].startTime")
    fcp = page.evaluate(
        "() => (performance.getEntriesByName('first-contentful-paint')[0] || {}).startTime")
    ctx.close()
    return {"interactive_ms": round(tti), "first_report_ms": round(first_ms),
            "feed_ms": round(feed_ms),
            "first_contentful_paint_ms": round(fcp) if fcp else None}


def median_of(runs: list[dict[str, float]]) -> dict[str, float]:
    keys = runs[0].keys()
    return {k: round(statistics.median(r[k] for r in runs if r[k] is not None))
            for k in keys if any(r[k] is not None for r in runs)}


def para(text: str) -> list[str]:
    return [*textwrap.wrap(text, 90, break_long_words=False, break_on_hyphens=False), ""]


def render(result: dict[str, Any]) -> str:
    fl = result["first_load"]
    lines = [
        SECTION,
        "",
        f"### Run of {result['date']} (`bench/web_bench.py`, `make bench-web`)",
        "",
        *para(f"Headless Chromium {result['chromium']} (Debian), 390×844 phone viewport, the "
              f"app opened as `http://hub.lan:PORT/` (not a secure context: no service "
              f"worker), a `samizdat serve` process holding {result['reports']} text reports "
              f"from 20 keys (half of them corroborated). Median of {result['runs']} runs per "
              f"row; load average {result['load_average']:.2f} at the start. Raw output: "
              f"`bench/results/web-{result['date'][:10]}.json` (not committed)."),
        "**First load, empty cache** (every HTTP request; the hub gzips text files):",
        "",
        "| request | status | body gzip | body raw | on the wire (with headers) |",
        "|---|---|---|---|---|",
    ]
    for r in fl["rows"]:
        gz = f"{r['body_gzip']:,}" if r["body_gzip"] is not None else "—"
        lines.append(f"| `{r['path']}` | {r['status']} | {gz} | {r['body_raw']:,} | "
                     f"{r['wire_bytes']:,} |")
    lines += [
        f"| **total: {fl['requests']} requests** | | **{fl['body_gzip']:,}** | "
        f"**{fl['body_raw']:,}** | **{fl['wire_bytes']:,}** |",
        "",
        *para(f"Budget: 150 KB compressed; used {fl['body_gzip'] / 1000:.1f} KB "
              f"({fl['wire_bytes'] / 1000:.1f} KB on the wire). The QR code encoder "
              f"({result['lazy_qr_gzip']:,} bytes gzip) loads only when the key or share "
              f"panel opens. The feed itself then arrives over the WebSocket: "
              f"{fl['websocket_received_bytes']:,} bytes in {fl['websocket_frames']} frames "
              f"for {result['reports']} reports and their labels (uncompressed; "
              "`websocket_compression` is off by default)."),
        *para("**Time to interactive** (navigation start → the app's `samizdat-interactive` "
              "mark: key loaded, saved feed drawn, form usable), to the first report from "
              f"the hub on screen, and to all {result['reports']}:"),
        "| network | CPU | cache | first paint | interactive | first report | all reports |",
        "|---|---|---|---|---|---|---|",
    ]
    for row in result["timings"]:
        t = row["median"]
        fcp = f"{t['first_contentful_paint_ms'] / 1000:.2f} s" \
            if "first_contentful_paint_ms" in t else "—"
        lines.append(f"| {row['network']} | {row['cpu']} | {row['cache']} | {fcp} | "
                     f"**{t['interactive_ms'] / 1000:.2f} s** | "
                     f"{t['first_report_ms'] / 1000:.2f} s | {t['feed_ms'] / 1000:.2f} s |")
    lines += [
        "",
        *para("Slow 2G here is Chromium's network emulation: 250 kbit/s down, 50 kbit/s up, "
              "300 ms added latency per request (the WebSocket is throttled too). A warm "
              "visit loads the page and its assets from the browser's cache (the page is "
              "cacheable for a day, the hashed assets for a year) and draws the saved feed "
              "from IndexedDB before the hub answers. The first reports from the hub come "
              "before the witness labels (the app asks for labels once the reports are in), "
              "so on a slow link the first report shows about half a second after the app "
              "is usable."),
    ]
    return "\n".join(lines)


def write_docs(text: str) -> None:
    doc = DOCS.read_text(encoding="utf-8")
    if SECTION + "\n" in doc:
        head, _, rest = doc.partition(SECTION + "\n")
        nxt = rest.find("\n## ")
        doc = head + text.rstrip("\n") + "\n" + (rest[nxt:] if nxt >= 0 else "")
    else:
        doc = doc.rstrip("\n") + "\n\n" + text
    DOCS.write_text(doc.rstrip("\n") + "\n", encoding="utf-8")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--reports", type=int, default=100)
    ap.add_argument("--runs", type=int, default=3)
    ap.add_argument("--no-docs", action="store_true")
    args = ap.parse_args()
    n = args.reports

    load = os.getloadavg()[0]
    print(f"load average {load:.2f}")
    with tempfile.TemporaryDirectory() as tmp:
        hub = HubProcess(Path(tmp) / "hub")
        try:
            seed(hub.url, n)
            base = f"http://hub.lan:{hub.port}/"
            with sync_playwright() as p:
                browser = p.chromium.launch(
                    executable_path=CHROMIUM, headless=True,
                    args=["--host-resolver-rules=MAP hub.lan 127.0.0.1"])
                version = browser.version
                fl = first_load(browser, base, n)
                print(f"first load: {fl['requests']} requests, {fl['body_gzip']:,} B gzip, "
                      f"{fl['body_raw']:,} B raw, {fl['wire_bytes']:,} B on the wire; "
                      f"websocket {fl['websocket_received_bytes']:,} B")
                plan = [
                    ("none", 1, "cold", None),
                    ("slow 2G", 1, "cold", SLOW_2G),
                    ("slow 2G", 4, "cold", SLOW_2G),
                    ("slow 2G", 1, "warm", SLOW_2G),
                    ("slow 2G", 4, "warm", SLOW_2G),
                ]
                timings = []
                for net_name, cpu, cache, net in plan:
                    runs = [timed_visit(browser, base, n, net, cpu, cache == "warm")
                            for _ in range(args.runs)]
                    med = median_of(runs)
                    timings.append({"network": net_name, "cpu": f"{cpu}x slower" if cpu > 1
                                    else "as is", "cache": cache, "runs": runs, "median": med})
                    print(f"{net_name:8} cpu/{cpu} {cache}: interactive "
                          f"{med['interactive_ms']} ms, first report {med['first_report_ms']} ms, "
                          f"all {med['feed_ms']} ms")
                browser.close()
        finally:
            hub.terminate()

    assets = load_assets(STATIC_DIR)
    qr = next(a for path, a in assets.items() if path.startswith("/assets/qr-"))
    result = {
        "date": datetime.now(UTC).strftime("%Y-%m-%d %H:%M UTC"),
        "chromium": version, "reports": n, "runs": args.runs, "load_average": load,
        "first_load": fl, "timings": timings, "lazy_qr_gzip": len(qr.gz or qr.body),
    }
    RESULTS.mkdir(parents=True, exist_ok=True)
    out = RESULTS / f"web-{result['date'][:10]}.json"
    out.write_text(json.dumps(result, indent=2) + "\n")
    print(f"results: {out}")
    text = render(result)
    if not args.no_docs:
        write_docs(text)
        print(f"docs: {DOCS} ({SECTION})")
    else:
        print(text)


if __name__ == "__main__":
    main()
