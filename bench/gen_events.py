"""Pre-signed kind-1 events for the relay benchmark, generated once and cached.

The cache is an ndjson file of complete ``["EVENT",{...}]`` client frames (so the load
client sends bytes and does no JSON work) and an index of line offsets (uint64, one more
entry than lines). Events are deterministic for a given count except for ``created_at``,
which is spread over the 30 days before generation so that both relays accept them.
"""

from __future__ import annotations

import array
import hashlib
import json
import os
import random
import time
from multiprocessing import Pool
from pathlib import Path

import orjson
from coincurve import PrivateKey

VERSION = 1
AUTHORS = 1000
CHUNK = 5000
MAX_AGE_DAYS = 300  # regenerate older caches: both relays bound how old an event may be

_WORD_TEXT = (
    "the a of to and in is it for on that with as was at by from this be are have not "
    "news report city council market bridge road power water outage network mesh radio "
    "phone signal relay hub neighbours school hospital river train station border "
    "election vote court ruling protest square morning evening tonight tomorrow week "
    "update confirmed unconfirmed source photo video map route closed open again still "
    "people families volunteers medics drivers teachers farmers reporters officials "
    "bread fuel medicine batteries generator shelter queue checkpoint curfew lights "
    "north south east west centre district village harbour airport library market "
    "heard says said asks reports warns expects shared posted copied forwarded spread "
    "quiet busy safe unsafe slow fast long short cold warm rain snow wind smoke "
    "café naïve déjà новости город мост 日本 ニュース 🚀 📻 ✊"
)
WORDS = _WORD_TEXT.split()
HASHTAGS = ["news", "outage", "mesh", "radio", "local", "weather", "transport", "health",
            "samizdat", "update", "breaking", "photo", "help", "safety"]


def author_key(i: int) -> PrivateKey:
    return PrivateKey(hashlib.sha256(f"samizdat-bench-author-{i}".encode()).digest())


def compute_id(pubkey: str, created_at: int, kind: int, tags: list[list[str]],
               content: str) -> str:
    """NIP-01 id. ``json.dumps`` matches the canonical form for what ``_content`` writes
    (no control characters other than newline)."""
    canon = json.dumps([0, pubkey, created_at, kind, tags, content], ensure_ascii=False,
                       separators=(",", ":"))
    return hashlib.sha256(canon.encode()).hexdigest()


def _content(rng: random.Random) -> str:
    target = rng.randint(100, 300)
    parts: list[str] = []
    length = 0
    while length < target:
        w = rng.choice(WORDS)
        r = rng.random()
        if r < 0.06:
            w += "."
        elif r < 0.1:
            w += ","
        elif r < 0.11:
            w = f'"{w}"'
        elif r < 0.115:
            w += "\n"
        parts.append(w)
        length += len(w) + 1
    text = " ".join(parts)
    if rng.random() < 0.15:
        text += f" https://example.org/{rng.getrandbits(40):x}"
    return text[:300].strip() or "empty"


def _chunk(args: tuple[int, int, int, list[str]]) -> bytes:
    start, end, base_ts, pubkeys = args
    rng = random.Random(start)
    keys: dict[int, PrivateKey] = {}
    out = bytearray()
    for _ in range(start, end):
        a = rng.randrange(AUTHORS)
        key = keys.get(a)
        if key is None:
            key = keys[a] = author_key(a)
        tags: list[list[str]] = []
        for _t in range(rng.randint(1, 3)):
            kind = rng.random()
            if kind < 0.4:
                tags.append(["t", rng.choice(HASHTAGS)])
            elif kind < 0.75:
                tags.append(["p", rng.choice(pubkeys)])
            else:
                tags.append(["e", f"{rng.getrandbits(256):064x}", "", "reply"])
        content = _content(rng)
        created_at = base_ts - rng.randrange(30 * 86400)
        pubkey = pubkeys[a]
        eid = compute_id(pubkey, created_at, 1, tags, content)
        sig = key.sign_schnorr(bytes.fromhex(eid)).hex()
        out += orjson.dumps(["EVENT", {"id": eid, "pubkey": pubkey, "created_at": created_at,
                                       "kind": 1, "tags": tags, "content": content,
                                       "sig": sig}])
        out += b"\n"
    return bytes(out)


class EventFile:
    """An ndjson file of EVENT frames with its offset index."""

    def __init__(self, path: Path):
        self.path = path
        self.idx = path.with_suffix(".idx")
        self.meta = json.loads(path.with_suffix(".meta.json").read_text())
        self.count: int = self.meta["count"]

    def frames(self, start: int, end: int) -> list[bytes]:
        offsets = array.array("Q")
        offsets.frombytes(self.idx.read_bytes())
        with self.path.open("rb") as f:
            f.seek(offsets[start])
            blob = f.read(offsets[end] - offsets[start])
        return blob.split(b"\n")[: end - start]


def _usable(meta_path: Path, n: int) -> bool:
    try:
        meta = json.loads(meta_path.read_text())
    except (OSError, ValueError):
        return False
    data = meta_path.with_name(meta_path.name.replace(".meta.json", ".ndjson"))
    return (meta.get("version") == VERSION and meta.get("count", 0) >= n
            and time.time() - meta.get("created", 0) < MAX_AGE_DAYS * 86400
            and data.exists() and data.with_suffix(".idx").exists())


def ensure_events(cache_dir: Path, n: int, log=print) -> EventFile:
    """A cached file with at least ``n`` events (generating one if needed)."""
    cache_dir.mkdir(parents=True, exist_ok=True)
    found = sorted((p for p in cache_dir.glob(f"events-v{VERSION}-*.meta.json") if _usable(p, n)),
                   key=lambda p: json.loads(p.read_text())["count"])
    if found:
        return EventFile(found[0].with_name(found[0].name.replace(".meta.json", ".ndjson")))
    path = cache_dir / f"events-v{VERSION}-{n}.ndjson"
    base_ts = int(time.time()) - 60
    pubkeys = [author_key(i).public_key_xonly.format().hex() for i in range(AUTHORS)]
    jobs = [(s, min(s + CHUNK, n), base_ts, pubkeys) for s in range(0, n, CHUNK)]
    log(f"generating {n:,} signed events into {path} (one-time) ...")
    t0 = time.perf_counter()
    tmp = path.with_suffix(".tmp")
    offsets = array.array("Q", [0])
    with tmp.open("wb") as out, Pool(os.cpu_count() or 1) as pool:
        for blob in pool.imap(_chunk, jobs):
            pos = offsets[-1]
            for line in blob.split(b"\n")[:-1]:
                pos += len(line) + 1
                offsets.append(pos)
            out.write(blob)
    tmp.replace(path)
    path.with_suffix(".idx").write_bytes(offsets.tobytes())
    path.with_suffix(".meta.json").write_text(json.dumps(
        {"version": VERSION, "count": n, "created": time.time(), "base_ts": base_ts,
         "bytes": offsets[-1]}))
    log(f"  {n:,} events, {offsets[-1] / 1e6:.0f} MB, in {time.perf_counter() - t0:.0f} s")
    return EventFile(path)
