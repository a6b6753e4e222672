"""Hub-to-hub sync benchmark (NIP-77): two hubs whose stores differ by 1 %.

For N in (100,000, 1,000,000) and two shapes of difference (the missing events
contiguous in time, or scattered at random), build two hubs' stores directly with
SQLiteStore: a base set of N events, hub A missing 0.5 % of it and hub B missing another
0.5 %. Then run hub A as a real `samizdat serve` process and `samizdat sync ws://A --data
B --json` as a real process on loopback, and record rounds, bytes each way, wall time,
and peak RSS of both processes. The naive baseline is computed, not run: each side sends
its full id list as JSON hex strings (66 bytes per id) and then the same events move.

Usage: .venv/bin/python bench/sync_bench.py [--quick] [--sizes 100000,1000000]
Results: printed, and written to bench/results/sync-<date>.json.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import random
import socket
import subprocess
import sys
import time
from datetime import UTC, datetime
from pathlib import Path

from coincurve import PrivateKey

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "src"))

from samizdat.nostr.event import Event, sign_event  # noqa: E402
from samizdat.store.sqlite import SQLiteStore  # noqa: E402

RESULTS = ROOT / "bench" / "results"
CACHE = RESULTS / "cache"
PY = str(ROOT / ".venv" / "bin" / "python")
UNLIMITED = """
[rate]
messages_per_second = 0
events_per_second = 0
ip_events_per_second = 0
ip_max_connections = 0
[limits]
created_at_lower_limit = 0
"""


def events(n: int) -> list[Event]:
    """n signed kind-1 events over ~30 days from 500 authors, cached between runs."""
    CACHE.mkdir(parents=True, exist_ok=True)
    path = CACHE / f"sync-events-{n}.jsonl"
    if path.exists():
        out = []
        with path.open() as fh:
            for line in fh:
                d = json.loads(line)
                out.append(
                    Event(
                        d["id"],
                        d["pubkey"],
                        d["created_at"],
                        d["kind"],
                        d["tags"],
                        d["content"],
                        d["sig"],
                    )
                )
        return out
    rnd = random.Random(n)
    keys = [PrivateKey(rnd.randbytes(32)) for _ in range(500)]
    start = 1_790_000_000
    out = []
    t0 = time.monotonic()
    for i in range(n):
        ts = start + rnd.randrange(30 * 86400)
        text = f"report {i}: " + " ".join(rnd.choice(WORDS) for _ in range(rnd.randrange(8, 40)))
        tags = [["t", rnd.choice(("kz", "almaty", "news", "blackout"))]]
        out.append(sign_event(keys[i % 500], 1, text, tags, ts))
        if i % 100_000 == 99_999:
            print(f"  signed {i + 1:,} events ({time.monotonic() - t0:.0f} s)", flush=True)
    with path.open("w") as fh:
        for ev in out:
            fh.write(ev.to_json() + "\n")
    return out


WORDS = [
    "police",
    "square",
    "crowd",
    "internet",
    "down",
    "street",
    "market",
    "bridge",
    "north",
    "south",
    "station",
    "army",
    "shots",
    "water",
    "bread",
    "hospital",
    "school",
    "border",
    "road",
    "closed",
    "open",
    "arrested",
]


def build_store(path: Path, evs: list[Event]) -> None:
    store = SQLiteStore(path, "NORMAL")
    for i in range(0, len(evs), 5000):
        store.save_many(evs[i : i + 5000], now=0)
    store.close()


def split(evs: list[Event], shape: str, rnd: random.Random) -> tuple[set[str], set[str]]:
    """Ids missing on A and ids missing on B (0.5 % each, disjoint)."""
    n = len(evs)
    k = n // 200
    if shape == "contiguous":
        ordered = sorted(evs, key=lambda e: (e.created_at, e.id))
        mid = n // 2
        return ({e.id for e in ordered[mid - k : mid]}, {e.id for e in ordered[mid : mid + k]})
    picks = rnd.sample(range(n), 2 * k)
    return ({evs[i].id for i in picks[:k]}, {evs[i].id for i in picks[k:]})


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def vm_hwm_mb(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024
    return 0.0


def run_case(n: int, shape: str, evs: list[Event], tmp: Path) -> dict:
    rnd = random.Random(7)
    miss_a, miss_b = split(evs, shape, rnd)
    case = tmp / f"{n}-{shape}"
    (case / "a").mkdir(parents=True)
    (case / "b").mkdir(parents=True)
    t0 = time.monotonic()
    build_store(case / "a" / "events.sqlite3", [e for e in evs if e.id not in miss_a])
    build_store(case / "b" / "events.sqlite3", [e for e in evs if e.id not in miss_b])
    print(f"  stores built in {time.monotonic() - t0:.0f} s", flush=True)
    cfg = case / "hub.toml"
    cfg.write_text(UNLIMITED)
    port = free_port()
    hub = subprocess.Popen(
        [
            PY,
            "-m",
            "samizdat.cli",
            "serve",
            "--data",
            str(case / "a"),
            "--port",
            str(port),
            "--config",
            str(cfg),
            "--no-https",
        ],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline:
            try:
                socket.create_connection(("127.0.0.1", port), 0.2).close()
                break
            except OSError:
                time.sleep(0.1)
        out_path, err_path = case / "sync.out", case / "sync.err"
        t0 = time.monotonic()
        with out_path.open("w") as out, err_path.open("w") as err:
            sync = subprocess.Popen(
                [
                    PY,
                    "-m",
                    "samizdat.cli",
                    "sync",
                    f"ws://127.0.0.1:{port}",
                    "--data",
                    str(case / "b"),
                    "--json",
                    "--timeout",
                    "300",
                ],
                stdout=out,
                stderr=err,
            )
            # Not ru_maxrss: a forked child inherits the parent's figure (this process
            # holds every event), so poll the child's own high-water mark instead.
            client_rss = 0.0
            while sync.poll() is None:
                with contextlib.suppress(OSError):
                    client_rss = max(client_rss, vm_hwm_mb(sync.pid))
                time.sleep(0.02)
        wall = time.monotonic() - t0
        hub_rss = vm_hwm_mb(hub.pid)
    finally:
        hub.terminate()
        hub.wait(60)
    if sync.returncode != 0:
        raise SystemExit(f"sync failed: {err_path.read_text()}")
    report = json.loads(out_path.read_text())
    assert report["have"] == len(miss_a) and report["need"] == len(miss_b), report
    assert report["sent"] == len(miss_a) and report["received"] == len(miss_b), report
    avg_event = sum(len(e.to_json()) for e in evs[:1000]) / 1000
    naive_ids = 66 * (2 * n - len(miss_a) - len(miss_b))
    moved = (len(miss_a) + len(miss_b)) * (avg_event + 30)
    return {
        "n": n,
        "shape": shape,
        "missing_on_a": len(miss_a),
        "missing_on_b": len(miss_b),
        "rounds": report["rounds"],
        "bytes_up": report["bytes_up"],
        "bytes_down": report["bytes_down"],
        "wall_s": round(wall, 2),
        "client_peak_rss_mb": round(client_rss, 1),
        "hub_peak_rss_mb": round(hub_rss, 1),
        "naive_bytes_estimate": int(naive_ids + moved),
        "naive_id_bytes": naive_ids,
    }


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--quick", action="store_true", help="20,000 events only")
    ap.add_argument("--sizes", default="100000,1000000")
    args = ap.parse_args()
    sizes = [20_000] if args.quick else [int(s) for s in args.sizes.split(",")]
    import tempfile

    results = []
    with tempfile.TemporaryDirectory(prefix="samizdat-sync-bench-") as tmp:
        for n in sizes:
            print(f"generating {n:,} events", flush=True)
            evs = events(n)
            for shape in ("contiguous", "scattered"):
                print(f"{n:,} events, 1 % different, {shape}", flush=True)
                r = run_case(n, shape, evs, Path(tmp))
                print("  " + json.dumps(r), flush=True)
                results.append(r)
            del evs
    RESULTS.mkdir(parents=True, exist_ok=True)
    out = RESULTS / f"sync-{datetime.now(UTC):%Y-%m-%d}{'-quick' if args.quick else ''}.json"
    out.write_text(
        json.dumps(
            {"date": datetime.now(UTC).isoformat(), "nproc": os.cpu_count(), "results": results},
            indent=2,
        )
    )
    print(
        f"\n{'events':>10} {'shape':>10} {'rounds':>6} {'up kB':>9} {'down kB':>9} "
        f"{'naive kB':>9} {'wall s':>7} {'hub MB':>7} {'client MB':>9}"
    )
    for r in results:
        print(
            f"{r['n']:>10,} {r['shape']:>10} {r['rounds']:>6} {r['bytes_up'] / 1e3:>9,.0f} "
            f"{r['bytes_down'] / 1e3:>9,.0f} {r['naive_bytes_estimate'] / 1e3:>9,.0f} "
            f"{r['wall_s']:>7} {r['hub_peak_rss_mb']:>7} {r['client_peak_rss_mb']:>9}"
        )
    print(f"written to {out}")


if __name__ == "__main__":
    main()
