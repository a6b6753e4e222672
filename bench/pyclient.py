"""Load client in Python (asyncio + websockets), job-compatible with bench/client.mjs.

    python bench/pyclient.py '<job json>'

Used to compare against the node client (``relay_bench.py --client python``). Reads the
same ndjson + offset index of pre-serialized EVENT frames; prints one JSON result line.
Only 127.0.0.1 URLs are accepted.
"""

from __future__ import annotations

import array
import asyncio
import contextlib
import json
import math
import os
import re
import sys
import time
from typing import Any

from websockets.asyncio.client import ClientConnection, connect

now = time.perf_counter


def load_frames(file: str, idx_file: str, start: int, end: int) -> list[str]:
    offsets = array.array("Q")
    with open(idx_file, "rb") as f:
        offsets.frombytes(f.read())
    if not 0 <= start <= end < len(offsets):
        raise ValueError(f"range {start}..{end} outside 0..{len(offsets) - 1}")
    with open(file, "rb") as f:
        f.seek(offsets[start])
        blob = f.read(offsets[end] - offsets[start])
    return blob.decode().split("\n")[: end - start]


def reason_key(reason: Any) -> str:
    s = str(reason)
    return (s.split(":", 1)[0] if ":" in s else s)[:40] or "(empty)"


def cpu_seconds() -> float:
    t = os.times()
    return t.user + t.system


async def open_ws(url: str) -> ClientConnection:
    return await connect(url, compression=None, max_size=None, max_queue=None)


class Stats:
    def __init__(self) -> None:
        self.first_send: float | None = None
        self.last_ok: float | None = None
        self.ok_true = 0
        self.ok_false = 0
        self.other = 0
        self.reasons: dict[str, int] = {}

    @property
    def acked(self) -> int:
        return self.ok_true + self.ok_false


async def push_range(ws: ClientConnection, frames: list[str], window: int, stats: Stats) -> None:
    slots = asyncio.Semaphore(window)
    done = asyncio.Event()
    total = len(frames)
    acked = 0

    async def reader() -> None:
        nonlocal acked
        async for raw in ws:
            msg = json.loads(raw)
            if msg[0] != "OK":
                stats.other += 1
                continue
            acked += 1
            stats.last_ok = now()
            if msg[2] is True:
                stats.ok_true += 1
            else:
                stats.ok_false += 1
                k = reason_key(msg[3])
                stats.reasons[k] = stats.reasons.get(k, 0) + 1
            slots.release()
            if acked == total:
                done.set()
                return

    task = asyncio.create_task(reader())
    for frame in frames:
        await slots.acquire()
        if stats.first_send is None:
            stats.first_send = now()
        await ws.send(frame)
    if total:
        await done.wait()
    task.cancel()


async def ingest(job: dict[str, Any]) -> dict[str, Any]:
    frames = load_frames(job["file"], job["idx"], job["start"], job["end"])
    conns = [await open_ws(job["url"]) for _ in range(job["conns"])]
    stats = Stats()
    per = -(-len(frames) // job["conns"])
    cpu0 = cpu_seconds()
    timed_out = False
    try:
        await asyncio.wait_for(
            asyncio.gather(*(push_range(ws, frames[i * per:(i + 1) * per], job["window"], stats)
                             for i, ws in enumerate(conns))),
            job.get("cap_s", 3600))
    except TimeoutError:
        timed_out = True
    cpu = cpu_seconds() - cpu0
    for ws in conns:
        await ws.close()
    elapsed = (stats.last_ok - stats.first_send) if stats.last_ok and stats.first_send else None
    return {
        "sent": len(frames), "ok_true": stats.ok_true, "ok_false": stats.ok_false,
        "other_messages": stats.other, "false_reasons": stats.reasons, "elapsed_s": elapsed,
        "events_per_s": stats.acked / elapsed if elapsed else None, "timed_out": timed_out,
        "conns": job["conns"], "window": job["window"], "client_cpu_s": cpu,
    }


async def req(job: dict[str, Any]) -> dict[str, Any]:
    ws = await open_ws(job["url"])
    runs = []
    for r in range(job["repeats"]):
        subid = f"bench-{r}"
        events = 0
        t0 = now()
        await ws.send(json.dumps(["REQ", subid, job["filter"]]))
        result: dict[str, Any] = {"seconds": None, "events": 0, "timed_out": True}
        try:
            async with asyncio.timeout(job.get("timeout_s", 120)):
                async for raw in ws:
                    head = raw[:12]
                    if head.startswith('["EVENT"'):
                        events += 1
                    elif head.startswith('["EOSE"'):
                        result = {"seconds": now() - t0, "events": events, "timed_out": False}
                        break
                    elif head.startswith(('["CLOSED"', '["NOTICE"')):
                        result = {"seconds": None, "events": events, "timed_out": False,
                                  "error": str(raw)[:200]}
                        break
        except TimeoutError:
            result["events"] = events
        runs.append(result)
        await ws.send(json.dumps(["CLOSE", subid]))
        await asyncio.sleep(0.2)
    await ws.close()
    return {"runs": runs, "cpu_s": cpu_seconds()}


def quantile(values: list[float], q: float) -> float | None:
    if not values:
        return None
    return values[min(len(values) - 1, max(0, math.ceil(q * len(values)) - 1))]


async def latency(job: dict[str, Any]) -> dict[str, Any]:
    pub_frames = load_frames(job["file"], job["idx"], job["pub_start"], job["pub_end"])
    flood_frames = load_frames(job["file"], job["idx"], job["flood_start"], job["flood_end"])
    pub_ids = [json.loads(f)[1]["id"] for f in pub_frames]
    flood_ws = await open_ws(job["url"])
    pub_ws = await open_ws(job["url"])
    flood_stats = Stats()
    flood_task = asyncio.create_task(push_range(flood_ws, flood_frames, job["window"], flood_stats))
    await asyncio.sleep(job.get("warmup_s", 1))
    sent_at: dict[str, float] = {}
    lat: list[float] = []
    false_count = 0
    all_acked = asyncio.Event()

    async def reader() -> None:
        nonlocal false_count
        async for raw in pub_ws:
            msg = json.loads(raw)
            if msg[0] != "OK" or msg[1] not in sent_at:
                continue
            lat.append(now() - sent_at[msg[1]])
            if msg[2] is not True:
                false_count += 1
            if len(lat) == len(pub_frames):
                all_acked.set()
                return

    rtask = asyncio.create_task(reader())
    flood0 = flood_stats.acked
    t0 = now()
    for i, frame in enumerate(pub_frames):
        wait = t0 + i / job["rate"] - now()
        if wait > 0:
            await asyncio.sleep(wait)
        sent_at[pub_ids[i]] = now()
        await pub_ws.send(frame)
    with contextlib.suppress(TimeoutError):
        await asyncio.wait_for(all_acked.wait(), 60)
    t1 = now()
    flood_acked = flood_stats.acked - flood0
    exhausted = flood_task.done()
    flood_task.cancel()
    rtask.cancel()
    await flood_ws.close()
    await pub_ws.close()
    lat.sort()
    return {
        "published": len(pub_frames), "acked": len(lat), "ok_false": false_count,
        "rate": job["rate"], "seconds": t1 - t0,
        "p50_s": quantile(lat, 0.5), "p90_s": quantile(lat, 0.9), "p99_s": quantile(lat, 0.99),
        "max_s": lat[-1] if lat else None,
        "flood_acked_during": flood_acked, "flood_events_per_s": flood_acked / (t1 - t0),
        "flood_ok_false": flood_stats.ok_false, "flood_false_reasons": flood_stats.reasons,
        "flood_exhausted": exhausted, "cpu_s": cpu_seconds(),
    }


def main() -> None:
    job = json.loads(sys.argv[1])
    if not re.fullmatch(r"ws://127\.0\.0\.1:\d+/?", job["url"]):
        raise SystemExit(f"refusing to connect to {job['url']}: loopback (127.0.0.1) only")
    modes = {"ingest": ingest, "req": req, "latency": latency}
    result = asyncio.run(modes[job["mode"]](job))
    sys.stdout.write(json.dumps(result) + "\n")


if __name__ == "__main__":
    main()
