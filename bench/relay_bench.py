"""Relay benchmark: samizdat against nostr-relay (PyPI) on loopback, in one run.

    .venv/bin/python bench/relay_bench.py [--quick] [--only samizdat|peer] [--client node|python]

See bench/README.md. Measures, for each relay, in separate processes with fresh data dirs:
the machine's single-core parse+id+verify limit, ingest over 1 and 8 connections, REQ→EOSE
for 10,000 events, publish latency under a flood, and RSS at 100k and 1M stored events.
Prints a table and writes JSON to bench/results/relay-<date>.json.
"""

from __future__ import annotations

import argparse
import datetime as dt
import importlib.metadata
import json
import os
import platform
import resource
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import orjson

from gen_events import EventFile, ensure_events
from relays import (
    BENCH,
    PEER_CONFIG,
    PEER_PACKAGE,
    SAMIZDAT_CONFIG,
    Relay,
    ensure_peer,
    machine_busy_seconds,
    peer_version,
    snapshot_src,
)

RESULTS = BENCH / "results"
NAMES = {"samizdat": "samizdat", "peer": "nostr-relay"}
NOISE_CORES = 0.25  # background CPU (cores) above which a phase is flagged as noisy

REFERENCE = {
    "single_core_events_per_s": 27_000,
    "strfry": {"ingest_1conn_events_per_s": 9_000, "req_10k_eose_s": 0.056},
    "nostr-relay (issue)": {"ingest_1conn_events_per_s": 440, "req_10k_eose_s": 0.33},
    "targets": {"ingest_1conn_events_per_s": 9_000, "req_10k_eose_s": 0.112,
                "rss_at_1m_mb": 300},
}


@dataclass
class Sizes:
    small: int
    large: int
    huge: int
    pool: int
    req_limit: int
    req_repeats: int
    latency_s: float
    pub_rate: int
    window: int
    conns: int
    single_sample: int


FULL = Sizes(small=20_000, large=100_000, huge=1_000_000, pool=1_000_000, req_limit=10_000,
             req_repeats=5, latency_s=10, pub_rate=50, window=500, conns=8, single_sample=20_000)
QUICK = Sizes(small=2_000, large=5_000, huge=20_000, pool=60_000, req_limit=1_000,
              req_repeats=3, latency_s=3, pub_rate=50, window=500, conns=8, single_sample=3_000)


def say(msg: str) -> None:
    print(msg, flush=True)


# --- single-core limit --------------------------------------------------------------------------

def single_core(events: EventFile, n: int, repeats: int = 3) -> dict[str, Any]:
    """Events/s for orjson parse + id recompute + BIP-340 verify in this one thread."""
    from samizdat.nostr.event import parse_event  # from the snapshot put on sys.path

    frames = events.frames(0, n)

    def parse(f: bytes):
        return parse_event(orjson.loads(f)[1])

    def full(f: bytes) -> None:
        ev = parse(f)
        ev.check_id()
        ev.check_signature()

    def rate(fn, items) -> float:
        t0 = time.perf_counter()
        for x in items:
            fn(x)
        return len(items) / (time.perf_counter() - t0)

    parsed = [parse(f) for f in frames]
    totals = [rate(full, frames) for _ in range(repeats)]
    parts = {
        "parse_us": 1e6 / max(rate(parse, frames) for _ in range(repeats)),
        "id_us": 1e6 / max(rate(lambda e: e.check_id(), parsed) for _ in range(repeats)),
        "verify_us": 1e6 / max(rate(lambda e: e.check_signature(), parsed)
                               for _ in range(repeats)),
    }
    return {"events_per_s": max(totals), "median_events_per_s": statistics.median(totals),
            "runs": totals, "sample": n, **parts}


# --- client ------------------------------------------------------------------------------------

class Client:
    def __init__(self, kind: str):
        self.kind = kind
        if kind == "node":
            if not (BENCH / "node_modules" / "ws").exists():
                say("installing the node client's dependencies (npm ci in bench/) ...")
                subprocess.run(["npm", "ci", "--no-audit", "--no-fund", "--loglevel=error"],
                               cwd=BENCH, check=True)
            self.cmd = ["node", str(BENCH / "client.mjs")]
        else:
            self.cmd = [sys.executable, str(BENCH / "pyclient.py")]

    def run(self, job: dict[str, Any], relay: Relay) -> dict[str, Any]:
        """Run one job; adds wall time, client/relay CPU and background load to the result."""
        ru0 = resource.getrusage(resource.RUSAGE_CHILDREN)
        me0 = resource.getrusage(resource.RUSAGE_SELF)
        busy0, _ = machine_busy_seconds()
        rcpu0 = relay.cpu()
        t0 = time.perf_counter()
        proc = subprocess.run([*self.cmd, json.dumps(job)], capture_output=True, text=True,
                              check=False)
        wall = time.perf_counter() - t0
        rcpu = relay.cpu() - rcpu0
        busy1, _ = machine_busy_seconds()
        ru1 = resource.getrusage(resource.RUSAGE_CHILDREN)
        me1 = resource.getrusage(resource.RUSAGE_SELF)
        if proc.returncode != 0 or not proc.stdout.strip():
            raise RuntimeError(f"client failed ({proc.returncode}): {proc.stderr[-2000:]}\n"
                               f"relay log:\n{relay.tail()}")
        res = json.loads(proc.stdout.strip().splitlines()[-1])
        ccpu = (ru1.ru_utime + ru1.ru_stime) - (ru0.ru_utime + ru0.ru_stime)
        own = (me1.ru_utime + me1.ru_stime) - (me0.ru_utime + me0.ru_stime)
        res.update({
            "wall_s": wall,
            "client_process_cpu_s": ccpu,
            "relay_cpu_s": rcpu,
            "relay_cores": rcpu / wall,
            "background_cores": max(0.0, (busy1 - busy0 - rcpu - ccpu - own) / wall),
        })
        return res


# --- phases ------------------------------------------------------------------------------------

class Bench:
    def __init__(self, args: argparse.Namespace, sizes: Sizes, events: EventFile, client: Client,
                 tmp: Path):
        self.args = args
        self.sizes = sizes
        self.events = events
        self.client = client
        self.tmp = tmp
        self.src = tmp / "src"
        self.runs = 0

    def relay(self, name: str) -> Relay:
        self.runs += 1
        r = Relay(name, self.tmp / f"{self.runs:02d}-{name}", sync=self.args.sync,
                  src=self.src)
        r.start()
        return r

    def done(self, r: Relay) -> None:
        r.stop()
        if not self.args.keep:
            shutil.rmtree(r.workdir, ignore_errors=True)

    def ingest(self, r: Relay, start: int, end: int, conns: int) -> dict[str, Any]:
        n = end - start
        job = {"mode": "ingest", "url": r.url, "file": str(self.events.path),
               "idx": str(self.events.idx), "start": start, "end": end, "conns": conns,
               "window": self.sizes.window, "stall_s": 60, "cap_s": 120 + n / 50}
        res = self.client.run(job, r)
        acked = res["ok_true"] + res["ok_false"]
        res["relay_cpu_us_per_event"] = 1e6 * res["relay_cpu_s"] / max(acked, 1)
        res["client_cpu_us_per_event"] = 1e6 * res["client_cpu_s"] / max(acked, 1)
        res["events"] = n
        eps = res["events_per_s"] or 0
        bad = f", {res['ok_false']:,} OK false {res['false_reasons']}" if res["ok_false"] else ""
        say(f"    ingest {n:,} over {conns} conn: {eps:,.0f} ev/s "
            f"({res['ok_true']:,} OK true{bad}; relay {res['relay_cores']:.2f} cores, "
            f"client {res['client_cpu_us_per_event']:.1f} µs/ev, "
            f"background {res['background_cores']:.2f} cores)")
        if res.get("timed_out"):
            say("    !! ingest timed out")
        return res

    def req(self, r: Relay) -> dict[str, Any]:
        s = self.sizes
        job = {"mode": "req", "url": r.url, "filter": {"kinds": [1], "limit": s.req_limit},
               "repeats": s.req_repeats, "timeout_s": 120}
        res = self.client.run(job, r)
        times = [x["seconds"] for x in res["runs"] if x["seconds"] is not None]
        res["median_s"] = statistics.median(times) if times else None
        res["min_s"] = min(times) if times else None
        res["events"] = [x["events"] for x in res["runs"]]
        res["limit"] = s.req_limit
        med = f"{res['median_s']:.3f} s" if times else "failed"
        say(f"    REQ limit {s.req_limit:,} -> EOSE: median {med} over {len(times)} runs, "
            f"events {res['events']}")
        return res

    def latency(self, r: Relay, flood_start: int) -> dict[str, Any]:
        s = self.sizes
        n_pub = int(s.latency_s * s.pub_rate)
        pub_start = s.pool - n_pub
        job = {"mode": "latency", "url": r.url, "file": str(self.events.path),
               "idx": str(self.events.idx), "pub_start": pub_start, "pub_end": s.pool,
               "rate": s.pub_rate, "flood_start": flood_start, "flood_end": pub_start,
               "window": s.window, "warmup_s": 1}
        res = self.client.run(job, r)
        p50 = res["p50_s"] or float("nan")
        p99 = res["p99_s"] or float("nan")
        say(f"    latency at {s.pub_rate}/s under flood: p50 {p50 * 1e3:.1f} ms, "
            f"p99 {p99 * 1e3:.1f} ms (flood {res['flood_events_per_s']:,.0f} ev/s"
            f"{', flood ran out' if res['flood_exhausted'] else ''})")
        return res

    def rss(self, r: Relay, label: str) -> dict[str, Any]:
        time.sleep(1.0)
        info = r.rss_kb()
        say(f"    RSS {label}: {info['rss_kb'] / 1024:.0f} MB "
            f"(peak {info['hwm_kb'] / 1024:.0f} MB, {info['processes']} process(es))")
        return info

    # One scenario per fresh relay; relays alternate so that drifting background load
    # hits both alike.
    def scenario(self, name: str, which: str) -> dict[str, Any]:
        s = self.sizes
        out: dict[str, Any] = {}
        r = self.relay(name)
        try:
            if which == "small":
                out["ingest_small_1conn"] = self.ingest(r, 0, s.small, 1)
                out["req"] = self.req(r)
                out["latency"] = self.latency(r, s.small)
            elif which == "small8":
                out["ingest_small_8conn"] = self.ingest(r, 0, s.small, s.conns)
            elif which == "large":
                out["ingest_large_1conn"] = self.ingest(r, 0, s.large, 1)
            elif which == "large8":
                out["ingest_large_8conn"] = self.ingest(r, 0, s.large, s.conns)
                out["rss_large"] = self.rss(r, f"at {s.large:,} events")
                out["req_at_large"] = self.req(r)
                if name == "samizdat" or self.args.peer_1m:
                    out["ingest_huge_8conn"] = self.ingest(r, s.large, s.huge, s.conns)
                    out["rss_huge"] = self.rss(r, f"at {s.huge:,} events")
                    out["req_at_huge"] = self.req(r)
                else:
                    say(f"    (skipping {s.huge:,} for {NAMES[name]}; --peer-1m includes it)")
            out[f"log_tail_{which}"] = r.tail(10)
        finally:
            self.done(r)
        return out

    def compare_clients(self) -> dict[str, Any]:
        """Same samizdat ingest with the node and the Python client: who costs less?"""
        n = self.sizes.small
        out: dict[str, Any] = {}
        for kind in ("node", "python"):
            client = Client(kind)
            for conns in (1, self.sizes.conns):
                r = self.relay("samizdat")
                try:
                    saved, self.client = self.client, client
                    say(f"  client {kind}:")
                    out[f"{kind}_{conns}conn"] = self.ingest(r, 0, n, conns)
                finally:
                    self.client = saved
                    self.done(r)
        return out


# --- report ------------------------------------------------------------------------------------

def machine_info() -> dict[str, Any]:
    model = "?"
    with open("/proc/cpuinfo") as f:
        for line in f:
            if line.startswith("model name"):
                model = line.split(":", 1)[1].strip()
                break
    node = subprocess.run(["node", "--version"], capture_output=True, text=True, check=False)
    ws_pkg = BENCH / "node_modules" / "ws" / "package.json"
    with open("/proc/meminfo") as f:
        mem_kb = int(f.readline().split()[1])
    return {
        "nproc": os.cpu_count(), "cpu_model": model, "mem_gb": round(mem_kb / 1024**2, 1),
        "kernel": platform.release(), "python": platform.python_version(),
        "node": node.stdout.strip(),
        "ws": json.loads(ws_pkg.read_text())["version"] if ws_pkg.exists() else None,
        "samizdat": importlib.metadata.version("samizdat"),
        "coincurve": importlib.metadata.version("coincurve"),
        "orjson": importlib.metadata.version("orjson"),
        "loadavg_at_start": open("/proc/loadavg").read().split()[:3],
    }


def background_now(seconds: float = 2.0) -> float:
    b0, _ = machine_busy_seconds()
    time.sleep(seconds)
    b1, _ = machine_busy_seconds()
    return (b1 - b0) / seconds


def fmt_frac(value: float | None, limit: float) -> str:
    return f"{value / limit:.3f}" if value else "-"


def report(results: dict[str, Any], sizes: Sizes) -> str:
    limit = results["single_core"]["events_per_s"]
    relays = [n for n in ("samizdat", "peer") if n in results["relays"]]
    rows: list[tuple[str, ...]] = []

    def get(name: str, *path: str) -> Any:
        cur: Any = results["relays"].get(name, {})
        for p in path:
            if not isinstance(cur, dict) or p not in cur:
                return None
            cur = cur[p]
        return cur

    def rate_row(label: str, *path: str, ref: str = "") -> None:
        cells = [label]
        for n in relays:
            v = get(n, *path)
            cells.append(f"{v:,.0f}  ({fmt_frac(v, limit)} L)" if v else "-")
        rows.append((*cells, ref))

    def secs_row(label: str, *path: str, ref: str = "", events: int = 0) -> None:
        cells = [label]
        for n in relays:
            v = get(n, *path)
            # as a fraction of L: events served per second over the single-core limit
            cells.append(f"{v:.3f} s  ({events / v / limit:.2f} L)" if v else "-")
        rows.append((*cells, ref))

    def ms_row(label: str, *path: str, ref: str = "") -> None:
        cells = [label]
        for n in relays:
            v = get(n, *path)
            # latency times L: how many events one core could verify in that time
            cells.append(f"{v * 1e3:.1f} ms  (={v * limit:,.0f}/L)" if v else "-")
        rows.append((*cells, ref))

    def cpu_row(label: str, *path: str, ref: str = "") -> None:
        cells = [label]
        for n in relays:
            v = get(n, *path)
            # the share of that CPU time that parse+id+verify alone would need
            cells.append(f"{v:,.0f} µs  ({1e6 / limit / v:.2f} L-cost)" if v else "-")
        rows.append((*cells, ref))

    def mb_row(label: str, *path: str, ref: str = "") -> None:
        cells = [label]
        for n in relays:
            v = get(n, *path)
            cells.append(f"{v / 1024:.0f} MB  (n/a)" if v else "-")
        rows.append((*cells, ref))

    s = sizes
    rows.append(("single-core limit L (parse+id+verify, ev/s)", f"{limit:,.0f}  (1 L)",
                 *([""] * (len(relays) - 1)), "≈27,000 (issue)"))
    rate_row(f"ingest {s.small:,}, 1 conn (ev/s)", "ingest_small_1conn", "events_per_s",
             ref="target ≥9,000; strfry ≈9,000; nostr-relay ≈440")
    rate_row(f"ingest {s.small:,}, {s.conns} conns (ev/s)", "ingest_small_8conn", "events_per_s")
    rate_row(f"ingest {s.large:,}, 1 conn (ev/s)", "ingest_large_1conn", "events_per_s")
    rate_row(f"ingest {s.large:,}, {s.conns} conns (ev/s)", "ingest_large_8conn", "events_per_s")
    rate_row(f"ingest {s.large:,}→{s.huge:,}, {s.conns} conns (ev/s)", "ingest_huge_8conn",
             "events_per_s")
    secs_row(f"REQ→EOSE {s.req_limit:,} events, {s.small:,} stored (median)", "req", "median_s",
             ref="target ≤0.112 s; strfry 0.056; nostr-relay 0.33", events=s.req_limit)
    secs_row(f"REQ→EOSE {s.req_limit:,} events, {s.large:,} stored", "req_at_large", "median_s",
             events=s.req_limit)
    secs_row(f"REQ→EOSE {s.req_limit:,} events, {s.huge:,} stored", "req_at_huge", "median_s",
             events=s.req_limit)
    ms_row(f"publish latency p50 ({s.pub_rate}/s under flood)", "latency", "p50_s")
    ms_row(f"publish latency p99 ({s.pub_rate}/s under flood)", "latency", "p99_s")
    rate_row("  flood rate meanwhile (ev/s)", "latency", "flood_events_per_s")
    cpu_row(f"relay CPU per event, ingest {s.small:,} 1 conn", "ingest_small_1conn",
            "relay_cpu_us_per_event")
    cpu_row(f"relay CPU per event, ingest {s.large:,} 1 conn", "ingest_large_1conn",
            "relay_cpu_us_per_event")
    mb_row(f"RSS at {s.large:,} events", "rss_large", "rss_kb")
    mb_row(f"RSS at {s.huge:,} events", "rss_huge", "rss_kb", ref="target < 300 MB")

    header = ("", *(NAMES[n] for n in relays), "reference / target")
    table = [header, *rows]
    widths = [max(len(str(r[i])) for r in table) for i in range(len(header))]
    lines = ["  ".join(str(c).ljust(w) for c, w in zip(r, widths, strict=True)) for r in table]
    lines.insert(1, "  ".join("-" * w for w in widths))
    lines.append("L = single-core limit; (x L) = rate / L; REQ (x L) = events per second "
                 "served / L; latency (=N/L) = events one core verifies in that time;")
    lines.append("L-cost = (1/L) / relay CPU per event, the share of the relay's CPU that "
                 "parse+id+verify alone needs; RSS has no L form.")
    cmp_ = results.get("client_comparison") or {}
    if cmp_:
        parts = [f"{k.replace('_', ' ')} {v['client_cpu_us_per_event']:.1f} µs/ev "
                 f"({v['events_per_s']:,.0f} ev/s)" for k, v in cmp_.items()]
        lines.append("client CPU per event (samizdat ingest): " + "; ".join(parts))
    lines.append(f"client used for every figure above: {results['client']}")
    return "\n".join(lines)


def run(args: argparse.Namespace, sizes: Sizes, names: list[str], client: Client,
        info: dict[str, Any], idle_bg: float, started: dt.datetime,
        tmp: Path) -> dict[str, Any]:
    src = snapshot_src(tmp / "src", args.rev)
    sys.path.insert(0, src["path"])
    say(f"samizdat source: {src['from']} at {src['commit'][:12]}"
        f"{' (working tree differs from it)' if src['working_tree_dirty'] == 'true' else ''}, "
        f"copied to {src['path']}")
    events = ensure_events(RESULTS / "cache", sizes.pool, say)
    say("single-core limit (orjson parse + samizdat id + coincurve verify, one thread) ...")
    sc = single_core(events, sizes.single_sample)
    say(f"  {sc['events_per_s']:,.0f} ev/s (parse {sc['parse_us']:.1f} µs, id {sc['id_us']:.1f} "
        f"µs, verify {sc['verify_us']:.1f} µs)")

    results: dict[str, Any] = {
        "date": started.isoformat(timespec="seconds"), "mode": "quick" if args.quick else "full",
        "machine": info, "samizdat_source": src, "client": args.client,
        "sizes": asdict(sizes),
        "single_core": sc, "reference": REFERENCE, "background_cores_at_start": idle_bg,
        "config": {
            "samizdat": SAMIZDAT_CONFIG.format(sync=args.sync),
            "peer": PEER_CONFIG.format(db="<tmp>/nostr.sqlite3", host="127.0.0.1",
                                       port="<free port>"),
            "peer_package": PEER_PACKAGE,
            "peer_version": peer_version() if "peer" in names else None,
        },
        "relays": {n: {} for n in names},
    }
    bench = Bench(args, sizes, events, client, tmp)
    if not args.no_client_compare and "samizdat" in names:
        say("client comparison (samizdat, fresh relay each):")
        results["client_comparison"] = bench.compare_clients()
    for which in ("small", "small8", "large", "large8"):
        for name in names:
            say(f"{NAMES[name]}: scenario {which}")
            results["relays"][name].update(bench.scenario(name, which))
    return results


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--quick", action="store_true", help="small sizes, for a smoke check")
    ap.add_argument("--only", choices=["samizdat", "peer"], help="benchmark one relay only")
    ap.add_argument("--client", choices=["node", "python"], default="node",
                    help="load client (default: node + ws)")
    ap.add_argument("--no-client-compare", action="store_true",
                    help="skip the short node-vs-python client comparison")
    ap.add_argument("--sync", choices=["FULL", "NORMAL"], default="FULL",
                    help="samizdat [store] synchronous (default FULL, samizdat's default)")
    ap.add_argument("--peer-1m", action="store_true",
                    help="also fill nostr-relay to the 1M size (slow: ~40 min at 440 ev/s)")
    ap.add_argument("--out", type=Path, help="JSON output path")
    ap.add_argument("--keep", action="store_true", help="keep the relays' data directories")
    ap.add_argument("--rev", help="benchmark samizdat as of this git revision (default: the "
                    "working tree, copied at start so edits during the run do not leak in)")
    args = ap.parse_args()
    sizes = QUICK if args.quick else FULL
    names = [args.only] if args.only else ["samizdat", "peer"]

    started = dt.datetime.now(dt.UTC)
    say(f"relay benchmark ({'quick' if args.quick else 'full'}), {started:%Y-%m-%d %H:%M} UTC")
    if "peer" in names:
        ensure_peer(say)
    client = Client(args.client)
    info = machine_info()
    say(f"machine: {info['nproc']} × {info['cpu_model']}, load {info['loadavg_at_start']}")
    idle_bg = background_now()
    say(f"background CPU before start: {idle_bg:.2f} cores")

    tmp = Path(tempfile.mkdtemp(prefix="samizdat-bench-"))
    try:
        results = run(args, sizes, names, client, info, idle_bg, started, tmp)
    finally:
        if not args.keep:
            shutil.rmtree(tmp, ignore_errors=True)
    bg = [v.get("background_cores", 0) for rel in results["relays"].values()
          for v in rel.values() if isinstance(v, dict)]
    results["max_background_cores"] = max([idle_bg, *bg])
    results["noisy"] = results["max_background_cores"] > NOISE_CORES
    results["finished"] = dt.datetime.now(dt.UTC).isoformat(timespec="seconds")

    table = report(results, sizes)
    say("\n" + table)
    if results["noisy"]:
        say(f"\nNOISY RUN: other processes used up to {results['max_background_cores']:.2f} "
            "cores during a phase; treat the figures as lower bounds.")
    RESULTS.mkdir(parents=True, exist_ok=True)
    out = args.out or RESULTS / (f"relay-{started:%Y-%m-%d}"
                                 f"{'-quick' if args.quick else ''}.json")
    out.write_text(json.dumps(results, indent=2) + "\n")
    say(f"\nwrote {out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
