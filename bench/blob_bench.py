"""Blossom media store benchmark: upload and download of a 20 MB file, against cp.

Runs a real `samizdat serve` process (on uvloop, as `samizdat serve` does by default,
and once more on asyncio's own loop, which has loop.sendfile) with its data directory
next to the source file, on the same disk, and moves one 20 MB random file:

- upload: ``PUT /upload`` with a signed kind-24242 token; the hub hashes the body while
  writing it to a temporary file, fsyncs it, renames it into place and indexes it.
  Each repetition deletes the blob first, so every upload stores it anew;
- upload of a blob already stored (the hub only hashes the body, writes nothing);
- download: ``GET /<sha256>`` of the whole blob (in the page cache, as cp's source is);
- baselines on the same disk: ``cp`` of the file, and ``cp`` followed by fsync of the
  copy (the upload fsyncs too).

The HTTP client is curl when installed (its own time_total: no process start), else
Python's http.client. Client and hub share the machine's cores. MB = 10^6 bytes.

Usage: .venv/bin/python bench/blob_bench.py [--size-mb 20] [--reps 5]
Results: printed, and written to bench/results/blobs-<date>.json.
"""

from __future__ import annotations

import argparse
import hashlib
import http.client
import json
import os
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from datetime import UTC, datetime
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "src"))

from coincurve import PrivateKey  # noqa: E402

from samizdat.blobs.auth import encode_header  # noqa: E402
from samizdat.nostr.event import sign_event  # noqa: E402

RESULTS = ROOT / "bench" / "results"
PY = str(ROOT / ".venv" / "bin" / "python")
CURL = shutil.which("curl")
KEY = PrivateKey()


def token(verb: str, digest: str) -> str:
    tags = [["t", verb], ["x", digest], ["expiration", str(int(time.time()) + 3600)]]
    return encode_header(sign_event(KEY, 24242, f"{verb} blob", tags))


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def start_hub(data: Path, uvloop: bool) -> tuple[subprocess.Popen, int]:
    port = free_port()
    cfg = data.parent / f"{data.name}.toml"
    cfg.write_text("[blobs]\nmax_size = 1_000_000_000\n")
    env = {**os.environ, "SAMIZDAT_UVLOOP": "1" if uvloop else "0"}
    proc = subprocess.Popen([PY, "-m", "samizdat.cli", "serve", "--data", str(data), "--port",
                             str(port), "--config", str(cfg), "--no-https"],
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, env=env)
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        try:
            socket.create_connection(("127.0.0.1", port), 0.2).close()
            return proc, port
        except OSError:
            time.sleep(0.1)
    proc.kill()
    raise SystemExit("hub did not start")


def put(port: int, path: Path, digest: str) -> tuple[int, float]:
    headers = {"Authorization": token("upload", digest), "X-SHA-256": digest,
               "Content-Type": "video/mp4"}
    if CURL:
        out = subprocess.run(
            [CURL, "-s", "-o", "/dev/null", "-w", "%{http_code} %{time_total}", "-T", str(path),
             *[a for k, v in headers.items() for a in ("-H", f"{k}: {v}")],
             f"http://127.0.0.1:{port}/upload"], capture_output=True, text=True, check=True)
        code, seconds = out.stdout.split()
        return int(code), float(seconds)
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=120, blocksize=1 << 20)
    t = time.perf_counter()
    with path.open("rb") as f:
        conn.request("PUT", "/upload", body=f, headers={
            **headers, "Content-Length": str(path.stat().st_size)})
        r = conn.getresponse()
        r.read()
    conn.close()
    return r.status, time.perf_counter() - t


def get(port: int, digest: str) -> tuple[int, float]:
    if CURL:
        out = subprocess.run(
            [CURL, "-s", "-o", "/dev/null", "-w", "%{http_code} %{time_total}",
             f"http://127.0.0.1:{port}/{digest}"], capture_output=True, text=True, check=True)
        code, seconds = out.stdout.split()
        return int(code), float(seconds)
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=120)
    t = time.perf_counter()
    conn.request("GET", f"/{digest}")
    r = conn.getresponse()
    while r.read(1 << 20):
        pass
    conn.close()
    return r.status, time.perf_counter() - t


def delete(port: int, digest: str) -> None:
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
    conn.request("DELETE", f"/{digest}", headers={"Authorization": token("delete", digest)})
    assert conn.getresponse().status == 200
    conn.close()


def copy(src: Path, dst: Path, fsync: bool) -> float:
    dst.unlink(missing_ok=True)
    t = time.perf_counter()
    subprocess.run(["cp", str(src), str(dst)], check=True)
    if fsync:
        fd = os.open(dst, os.O_RDONLY)
        os.fsync(fd)
        os.close(fd)
    return time.perf_counter() - t


def summary(size: int, seconds: list[float]) -> dict[str, float]:
    rates = [size / s / 1e6 for s in seconds]
    return {"median_mb_s": round(statistics.median(rates), 1), "min_mb_s": round(min(rates), 1),
            "max_mb_s": round(max(rates), 1), "median_ms": round(statistics.median(seconds) * 1e3, 1)}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--size-mb", type=int, default=20)
    ap.add_argument("--reps", type=int, default=5)
    args = ap.parse_args()
    size = args.size_mb * 1_000_000
    RESULTS.mkdir(parents=True, exist_ok=True)
    load = os.getloadavg()
    print(f"load average at start: {load[0]:.2f} {load[1]:.2f} {load[2]:.2f}; "
          f"{os.cpu_count()} cores; client: {'curl' if CURL else 'http.client'}", flush=True)
    results: dict[str, dict[str, float]] = {}
    with tempfile.TemporaryDirectory(dir=RESULTS, prefix="blobbench-") as tmp_name:
        tmp = Path(tmp_name)
        src = tmp / "src.bin"
        src.write_bytes(os.urandom(size))
        digest = hashlib.sha256(src.read_bytes()).hexdigest()
        results["cp"] = summary(size, [copy(src, tmp / "copy.bin", False)
                                       for _ in range(args.reps)])
        results["cp + fsync"] = summary(size, [copy(src, tmp / "copy.bin", True)
                                               for _ in range(args.reps)])
        for loop_name, uvloop in (("uvloop", True), ("asyncio", False)):
            proc, port = start_hub(tmp / f"hub-{loop_name}", uvloop)
            try:
                ups, downs, dups = [], [], []
                put(port, src, digest)  # warm-up (imports, first directories)
                for _ in range(args.reps):
                    delete(port, digest)
                    status, seconds = put(port, src, digest)
                    assert status == 201, status
                    ups.append(seconds)
                for _ in range(args.reps):
                    status, seconds = put(port, src, digest)
                    assert status == 200, status
                    dups.append(seconds)
                for _ in range(args.reps):
                    status, seconds = get(port, digest)
                    assert status == 200, status
                    downs.append(seconds)
            finally:
                proc.terminate()
                proc.wait(30)
            results[f"upload ({loop_name})"] = summary(size, ups)
            results[f"upload, already stored ({loop_name})"] = summary(size, dups)
            results[f"download ({loop_name})"] = summary(size, downs)
    print(f"\n{args.size_mb} MB file, {args.reps} repetitions each, MB/s (10^6 bytes/s)\n")
    print(f"| {'operation':<34} | median MB/s | min-max MB/s | median ms |")
    print(f"|{'-' * 36}|-------------|--------------|-----------|")
    for name, r in results.items():
        print(f"| {name:<34} | {r['median_mb_s']:>11.1f} | {r['min_mb_s']:>5.1f}-{r['max_mb_s']:<6.1f} "
              f"| {r['median_ms']:>9.1f} |")
    out = RESULTS / f"blobs-{datetime.now(UTC).date().isoformat()}.json"
    out.write_text(json.dumps({"size_bytes": size, "reps": args.reps, "load_at_start": load,
                               "client": "curl" if CURL else "http.client",
                               "results": results}, indent=2))
    print(f"\nwritten to {out.relative_to(ROOT)}")


if __name__ == "__main__":
    main()
