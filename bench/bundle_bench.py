"""Sneakernet bundle benchmark: export and import of N events (default 1,000,000).

Measures, in one run on this machine:

1. the Schnorr verification limit: BIP-340 verifications/s (coincurve) on one core and
   on all cores (one process per core), each with the x-only key parsed per call (what
   ``Event.verify`` does) and with keys cached (what the importer does);
2. export: `samizdat export` as a real process over a store of N events: events/s, peak
   RSS, bundle bytes per event against the raw JSON (the events as JSON lines);
3. import: `samizdat import` as a real process into an empty data directory: events/s
   (wall, process start to exit), the verify and write phases separately, peak RSS;
4. verification inside the import with threads against processes (in-process, on a
   100,000-event bundle), to justify the default;
5. the state file (`samizdat state`): bytes per event at 100,000 and N events.

Events come from bench/gen_events.py's cache (kind-1 notes, 100-300 characters, 1,000
authors). The store for export is filled directly with SQLiteStore (not measured).
Run it on a quiet machine: it prints the load average before starting.

Usage: .venv/bin/python bench/bundle_bench.py [--quick] [--events N]
Results: printed, and written to bench/results/bundle-<date>[-quick].json.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import threading
import time
from concurrent.futures import ProcessPoolExecutor
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import orjson
from coincurve import PublicKeyXOnly

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "src"))
sys.path.insert(0, str(ROOT / "bench"))

from gen_events import ensure_events  # noqa: E402
from samizdat.bundle import encode_state, import_files  # noqa: E402
from samizdat.bundle.reader import open_sources  # noqa: E402
from samizdat.bundle.verify import Checker, check_chunk  # noqa: E402
from samizdat.nostr.event import parse_event  # noqa: E402
from samizdat.store.sqlite import SQLiteStore  # noqa: E402

RESULTS = ROOT / "bench" / "results"
PY = str(ROOT / ".venv" / "bin" / "python")


def load_events(n: int) -> list[bytes]:
    """n events as JSON bytes (the cache holds ["EVENT", {...}] frames)."""
    ef = ensure_events(RESULTS / "cache", n)
    out = []
    for start in range(0, n, 100_000):
        for frame in ef.frames(start, min(n, start + 100_000)):
            out.append(orjson.dumps(orjson.loads(frame)[1]))
    return out


# --- 1. the verification limit -----------------------------------------------------------

def _verify(triples: list[tuple[bytes, bytes, bytes]], cached: bool) -> float:
    keys: dict[bytes, PublicKeyXOnly] = {}
    t = time.perf_counter()
    for pk, sig, msg in triples:
        if cached:
            key = keys.get(pk)
            if key is None:
                key = keys[pk] = PublicKeyXOnly(pk)
        else:
            key = PublicKeyXOnly(pk)
        if not key.verify(sig, msg):
            raise SystemExit("benchmark events do not verify")
    return time.perf_counter() - t


def verification_limit(lines: list[bytes], n: int = 30_000) -> dict[str, float]:
    triples = []
    for line in lines[:n]:
        d = orjson.loads(line)
        triples.append((bytes.fromhex(d["pubkey"]), bytes.fromhex(d["sig"]),
                        bytes.fromhex(d["id"])))
    cores = len(os.sched_getaffinity(0))
    out: dict[str, float] = {"cores": cores}
    for cached in (False, True):
        name = "cached_key" if cached else "key_per_call"
        out[f"one_core_{name}"] = round(n / min(_verify(triples, cached) for _ in range(3)))
        share = [triples[i::cores] for i in range(cores)]
        with ProcessPoolExecutor(cores) as pool:
            list(pool.map(_verify, [t[:100] for t in share], [cached] * cores))  # warm up
            best = None
            for _ in range(3):
                t = time.perf_counter()
                list(pool.map(_verify, share, [cached] * cores))
                dt = time.perf_counter() - t
                best = dt if best is None else min(best, dt)
        out[f"all_cores_{name}"] = round(n / best)
    return out


# --- processes with peak RSS -----------------------------------------------------------------

def _tree(pid: int) -> list[int]:
    out, todo = [], [pid]
    while todo:
        p = todo.pop()
        out.append(p)
        try:
            for task in os.listdir(f"/proc/{p}/task"):
                with open(f"/proc/{p}/task/{task}/children") as fh:
                    todo += [int(c) for c in fh.read().split()]
        except OSError:
            pass
    return out


def _status_kb(pid: int, field: str) -> int:
    try:
        with open(f"/proc/{pid}/status") as fh:
            for line in fh:
                if line.startswith(field + ":"):
                    return int(line.split()[1])
    except OSError:
        pass
    return 0


def run(cmd: list[str]) -> tuple[float, dict[str, int], str, str]:
    """Run a command; (wall seconds, peak memory, stdout, stderr). Memory is sampled from
    /proc every 20 ms: the main process's VmHWM, and the largest sums of VmRSS and of
    RssAnon (private memory, without pages of files mapped for reading, such as the
    database that export maps) over it and its children (verification workers).
    getrusage cannot be used: a child's ru_maxrss includes the parent's memory from
    before exec."""
    t = time.perf_counter()
    peak = {"main_hwm_bytes": 0, "tree_rss_bytes": 0, "tree_anon_bytes": 0}
    with tempfile.TemporaryFile() as out, tempfile.TemporaryFile() as err:
        proc = subprocess.Popen(cmd, stdout=out, stderr=err)
        done = threading.Event()

        def sample() -> None:
            while not done.is_set():
                hwm = _status_kb(proc.pid, "VmHWM") * 1024
                tree = sum(_status_kb(p, "VmRSS") for p in _tree(proc.pid)) * 1024
                peak["main_hwm_bytes"] = max(peak["main_hwm_bytes"], hwm)
                peak["tree_rss_bytes"] = max(peak["tree_rss_bytes"], tree)
                anon = sum(_status_kb(p, "RssAnon") for p in _tree(proc.pid)) * 1024
                peak["tree_anon_bytes"] = max(peak["tree_anon_bytes"], anon)
                done.wait(0.02)

        sampler = threading.Thread(target=sample, daemon=True)
        sampler.start()
        proc.wait()
        done.set()
        sampler.join()
        wall = time.perf_counter() - t
        out.seek(0)
        err.seek(0)
        o, e = out.read().decode(), err.read().decode()
    if proc.returncode != 0:
        raise SystemExit(f"{' '.join(cmd)} failed:\n{e}")
    return wall, peak, o, e


def fill_store(path: Path, lines: list[bytes]) -> None:
    store = SQLiteStore(path, "NORMAL")
    batch = []
    t = time.perf_counter()
    for i, line in enumerate(lines, 1):
        batch.append(parse_event(orjson.loads(line)))
        if len(batch) == 5000:
            store.save_many(batch, now=0)
            batch = []
        if i % 200_000 == 0:
            print(f"  stored {i:,} ({time.perf_counter() - t:.0f} s)", flush=True)
    if batch:
        store.save_many(batch, now=0)
    store.close()


def threads_vs_processes(bundle: Path, work: Path) -> dict[str, Any]:
    """The importer's checking step alone (what its workers do: JSON, shape, id,
    signature, index words), by mode, over one bundle's chunks, and the whole import
    (checking and writing overlapped) with the default mode, into a fresh store."""
    out: dict[str, Any] = {}
    for mode, workers in (("thread", 1), ("thread", 2), ("process", 2)):
        (src,), _ = open_sources([bundle])
        checker = Checker(workers, mode)
        checker.start()
        t = time.perf_counter()
        n = sum(len(res.statuses) for _, res in checker.map(
            check_chunk, ((None, (raw, 0, True)) for _, _, raw in src.chunks())))
        out[f"check-{mode}-{workers}"] = round(n / (time.perf_counter() - t))
        checker.close()
    store = SQLiteStore(work / "tvp.db", "NORMAL")
    t = time.perf_counter()
    r = import_files(store, [bundle])
    out["import-in-process"] = round(r.events / (time.perf_counter() - t))
    store.close()
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--quick", action="store_true", help="20,000 events, for a smoke check")
    ap.add_argument("--events", type=int, default=None)
    args = ap.parse_args()
    n = args.events or (20_000 if args.quick else 1_000_000)
    load = os.getloadavg()
    print(f"bundle benchmark, {n:,} events; load average {load[0]:.2f} {load[1]:.2f} "
          f"{load[2]:.2f}" + ("  (NOT QUIET)" if load[0] > 0.5 else ""), flush=True)
    result: dict[str, Any] = {"events": n, "date": datetime.now(UTC).isoformat(),
                              "load_before": load, "machine": os.uname().machine,
                              "cores": len(os.sched_getaffinity(0))}
    lines = load_events(n)
    result["raw_json_bytes_per_event"] = round(sum(len(x) + 1 for x in lines) / n, 1)

    print("1. verification limit ...", flush=True)
    result["verify_limit"] = verification_limit(lines)
    print(f"   {result['verify_limit']}", flush=True)

    with tempfile.TemporaryDirectory(prefix="bundle-bench-") as tmp:
        work = Path(tmp)
        a, b = work / "A", work / "B"
        print(f"   filling hub A with {n:,} events (setup, not measured) ...", flush=True)
        fill_store(a / "events.sqlite3", lines)
        del lines

        print("2. export ...", flush=True)
        wall, rss, out, _ = run([PY, "-m", "samizdat.cli", "export", str(work / "all.szb"),
                                 "--data", str(a), "--json"])
        ex = json.loads(out)
        result["export"] = {
            "wall_seconds": round(wall, 2), "events": ex["events"],
            "events_per_second_wall": round(ex["events"] / wall),
            "events_per_second_inside": ex["events_per_second"],
            "bundle_bytes": ex["bytes"], "raw_json_bytes": ex["raw_bytes"],
            "bundle_bytes_per_event": round(ex["bytes"] / ex["events"], 1),
            "raw_bytes_per_event": round(ex["raw_bytes"] / ex["events"], 1),
            "ratio": round(ex["bytes"] / ex["raw_bytes"], 3), "peak_memory": rss,
        }
        print(f"   {result['export']}", flush=True)

        print("3. import into an empty hub ...", flush=True)
        wall, rss, out, _ = run([PY, "-m", "samizdat.cli", "import", str(work / "all.szb"),
                                 "--data", str(b), "--json"])
        im = json.loads(out)
        assert im["imported"] == ex["events"], im
        lim = result["verify_limit"]
        rate = im["imported"] / wall
        result["import"] = {
            "wall_seconds": round(wall, 2), "events": im["imported"],
            "events_per_second_wall": round(rate),
            "seconds_inside": im["seconds"],
            "events_per_second_inside": round(im["events"] / im["seconds"]),
            "peak_memory": rss,
            "vs_one_core_limit": round(rate / lim["one_core_key_per_call"], 3),
            "vs_all_cores_limit": round(rate / lim["all_cores_key_per_call"], 3),
        }
        print(f"   {result['import']}", flush=True)
        wall, _, out, _ = run([PY, "-m", "samizdat.cli", "import", str(work / "all.szb"),
                               "--data", str(b), "--json"])
        result["import_again_seconds"] = round(wall, 2)

        print("4. threads vs processes (verification inside the importer) ...", flush=True)
        m = min(n, 100_000)
        small = work / "small.szb"
        run([PY, "-c", _SMALL_EXPORT, str(a), str(small), str(m)])
        result["verify_modes_events_per_second"] = threads_vs_processes(small, work)
        print(f"   {result['verify_modes_events_per_second']}", flush=True)

        print("5. state files ...", flush=True)
        store = SQLiteStore(a / "events.sqlite3")
        _, ids = store.sync_items(None)
        store.close()
        states = {}
        for k in sorted({min(100_000, n), n}):
            t = time.perf_counter()
            blob = encode_state(ids[:32 * k], "00" * 32)
            states[str(k)] = {"bytes": len(blob), "bytes_per_event": round(len(blob) / k, 2),
                              "encode_seconds": round(time.perf_counter() - t, 2)}
        result["state"] = states
        print(f"   {states}", flush=True)

    result["load_after"] = os.getloadavg()
    RESULTS.mkdir(parents=True, exist_ok=True)
    day = datetime.now(UTC).strftime("%Y-%m-%d")
    path = RESULTS / f"bundle-{day}{'-quick' if args.quick else ''}.json"
    path.write_text(json.dumps(result, indent=2) + "\n")
    print(json.dumps(result, indent=2))
    print(f"written to {path}")


# Exports the first m events of a store (a --filter cannot say "the first m").
_SMALL_EXPORT = """
import sys
from pathlib import Path
from coincurve import PrivateKey
from samizdat.bundle import BundleWriter
from samizdat.store.sqlite import SQLiteStore
store = SQLiteStore(Path(sys.argv[1]) / "events.sqlite3")
w = BundleWriter(Path(sys.argv[2]), PrivateKey())
for i, (ts, _, js) in enumerate(store.export_rows(None, 0)):
    if i == int(sys.argv[3]):
        break
    w.add(ts, js)
w.close()
"""


if __name__ == "__main__":
    main()
