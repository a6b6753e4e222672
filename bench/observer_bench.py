"""Observer benchmark: ingest N signed events (reports with places and times, witness
labels), 50,000 (or N/20) of them with a media claim whose perceptual hash is computed
from a small generated image; then a full re-cluster, and `samizdat observe check` on a
cold start (a new process). Prints JSON.

    .venv/bin/python bench/observer_bench.py --events 1000000 --media 50000 --out /tmp/ob

Ingest = `import_files` of a JSONL dump (every signature verified, the real bundle
importer) + the observer index update; media facts are computed from generated 32x32
images (imagehash pHash, the observer's media module) and recorded with
`Observer.put_media_facts` (the blobs themselves are not stored: the benchmark measures
the index, not the blob store, which bench/blob_bench.py covers).
"""

from __future__ import annotations

import argparse
import hashlib
import io
import json
import os
import random
import resource
import subprocess
import sys
import time
from multiprocessing import Pool
from pathlib import Path

import orjson
from coincurve import PrivateKey

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "src"))

from samizdat.nostr.event import sign_event
from samizdat.observer.geo import encode

KEYS = 5000
T0 = 1_790_000_000


def _key(i: int) -> PrivateKey:
    return PrivateKey(hashlib.sha256(f"observer-bench-{i}".encode()).digest())


def _img_sha(i: int) -> str:
    return hashlib.sha256(f"bench-media-{i}".encode()).hexdigest()


def _gen(args: tuple[int, int, int, int]) -> bytes:
    start, end, _n, media_every = args
    rng = random.Random(start)
    keys = {}
    out = []
    report_ids: list[str] = []
    for i in range(start, end):
        k = rng.randrange(KEYS)
        key = keys.get(k) or keys.setdefault(k, _key(k))
        t = T0 + rng.randrange(30 * 86400)
        if i % 5 == 4 and report_ids:  # every fifth event: a witness label
            tags = [["L", "samizdat.witness"],
                    ["l", "corroborate" if rng.random() < 0.9 else "dispute",
                     "samizdat.witness"], ["e", rng.choice(report_ids)]]
            ev = sign_event(key, 1985, "", tags, t)
        else:
            lat = 43.2 + rng.gauss(0, 0.3)
            lon = 76.9 + rng.gauss(0, 0.5)
            gh = encode(lat, lon, 6)
            tags = [["g", gh[:n]] for n in range(6, 1, -1)]
            tags += [["t", "almaty"], ["observed_at", str(t - rng.randrange(3600))]]
            if media_every and i % media_every == 0:
                sha = _img_sha(i)
                tags.append(["imeta", f"url http://hub/{sha}.jpg", "m image/jpeg",
                             f"x {sha}", "dim 32x32"])
            ev = sign_event(key, 1, f"report {i}: crowd near the square", tags, t)
            report_ids.append(ev.id)
            if len(report_ids) > 200:
                report_ids = report_ids[-200:]
        out.append(ev.to_json().encode())
    return b"\n".join(out) + b"\n"


def _facts(i: int) -> dict:
    from PIL import Image

    from samizdat.observer.media import media_facts

    rng = random.Random(i)
    im = Image.new("L", (32, 32))
    im.putdata([rng.randrange(256) for _ in range(1024)])
    buf = io.BytesIO()
    im.convert("RGB").save(buf, "JPEG", quality=80)
    f = media_facts(buf.getvalue())
    d = f.as_dict()
    d["sha256"] = _img_sha(i)  # the claim's sha256 (the generated file stands in for it)
    return d


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--events", type=int, default=1_000_000)
    ap.add_argument("--media", type=int, default=None)
    ap.add_argument("--out", default="/tmp/observer-bench")
    args = ap.parse_args()
    n = args.events
    n_media = args.media if args.media is not None else min(50_000, n // 20)
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    dump = out / f"events-{n}.jsonl"
    report: dict = {"events": n, "media": n_media, "cpus": os.cpu_count()}
    media_every = max(1, n // n_media) if n_media else 0
    t = time.monotonic()
    if not dump.exists():
        chunk = 20_000
        with dump.open("wb") as f, Pool() as pool:
            for blob in pool.imap(_gen, [(s, min(s + chunk, n), n, media_every)
                                         for s in range(0, n, chunk)]):
                f.write(blob)
    report["generate_s"] = round(time.monotonic() - t, 1)

    from samizdat.bundle import import_files
    from samizdat.observer.media import MediaFacts
    from samizdat.observer.service import Observer

    data = out / "obs"
    if data.exists():
        import shutil

        shutil.rmtree(data)
    obs = Observer(data)
    t = time.monotonic()
    rep = import_files(obs.store, [dump])
    t_import = time.monotonic() - t
    t = time.monotonic()
    counts = obs.update_index(media=False)
    t_index = time.monotonic() - t
    report["import_s"] = round(t_import, 1)
    report["index_s"] = round(t_index, 1)
    report["imported"] = rep.imported
    report["ingest_events_per_s"] = round(n / (t_import + t_index))
    report["index_events_per_s"] = round(n / t_index)
    report["index_counts"] = counts.as_json()

    t = time.monotonic()
    ids = [i for i in range(0, n, media_every)][:n_media] if n_media else []
    ids = [i for i in ids if i % 5 != 4]
    with Pool() as pool:
        facts = pool.map(_facts, ids, chunksize=500)
    report["media_facts_s"] = round(time.monotonic() - t, 1)
    report["media_facts_per_s"] = round(len(facts) / max(1e-9, time.monotonic() - t))
    t = time.monotonic()
    obs.put_media_facts([MediaFacts.from_dict(d) for d in facts])
    report["media_record_s"] = round(time.monotonic() - t, 2)

    t = time.monotonic()
    cl = obs.clusters()
    report["recluster_s"] = round(time.monotonic() - t, 2)
    report["clusters"] = len(cl)
    t = time.monotonic()
    obs.timeline()
    report["timeline_s"] = round(time.monotonic() - t, 2)
    # a report with media, to check: the whole path incl. the perceptual scan
    target = obs.reports(limit=1, cell=None)[0].id
    with_media = next((r for r in obs.reports(limit=200) if r.media), None)
    if with_media is not None:
        target = with_media.id
    obs.close()
    report["peak_rss_mb_ingest_process"] = round(
        resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024)

    t = time.monotonic()
    res = subprocess.run([sys.executable, "-m", "samizdat.cli", "observe", "check", target,
                          "--data", str(data), "--json"], capture_output=True, text=True)
    report["check_cold_process_s"] = round(time.monotonic() - t, 2)
    v = json.loads(res.stdout)
    report["check_flags"] = [f["code"] for f in v["flags"]]
    report["check_media_matches"] = sum(len(m["matches"]) for m in v["media"])
    code = ("import time,sys; t=time.monotonic();"
            "from samizdat.observer.service import Observer;"
            f"o=Observer({str(data)!r}, create=False); o.check({target!r});"
            "print(time.monotonic()-t)")
    res2 = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    report["check_cold_in_process_s"] = round(float(res2.stdout.strip() or "nan"), 3)
    report["peak_rss_mb_check_process"] = round(
        resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024)
    report["observer_sqlite3_mb"] = round((data / "observer.sqlite3").stat().st_size / 1e6)
    report["events_sqlite3_mb"] = round((data / "events.sqlite3").stat().st_size / 1e6)
    print(orjson.dumps(report, option=orjson.OPT_INDENT_2).decode())


if __name__ == "__main__":
    main()
