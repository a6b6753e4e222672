"""A small observer archive of real signed events for the console and evidence tests.

Two hubs in Almaty with receipts and leaf lists, four witnesses, reports in Kazakh and
Russian with generated photos, corroborations, and one report whose claimed time is after
a receipt that already held it (a planted time contradiction).
"""

from __future__ import annotations

import hashlib
import io
from dataclasses import dataclass, field
from pathlib import Path

from coincurve import PrivateKey

from samizdat.nostr.event import Event, sign_event
from samizdat.receipts.leaves import build_leaf_events
from samizdat.receipts.merkle import merkle_root, sorted_ids
from samizdat.receipts.receipt import build_receipt

T0 = 1_795_900_000 - 1_795_900_000 % 3600  # an hour boundary, 2026-11-28


def key(name: str) -> PrivateKey:
    return PrivateKey(hashlib.sha256(f"observer-console-test {name}".encode()).digest())


def photo(seed: int, size: tuple[int, int] = (320, 240)) -> bytes:
    from PIL import Image, ImageDraw

    im = Image.new("RGB", size, (40 + seed * 30 % 200, 90, 140))
    d = ImageDraw.Draw(im)
    for k in range(6):
        x = (seed * 37 + k * 53) % size[0]
        y = (seed * 71 + k * 29) % size[1]
        d.ellipse([x, y, x + 40 + k * 8, y + 30 + k * 5],
                  fill=((seed * 50 + k * 40) % 255, (k * 60) % 255, (seed * 20) % 255))
    d.rectangle([10, size[1] - 40, size[0] - 10, size[1] - 10], fill=(230, 230, 220))
    buf = io.BytesIO()
    im.save(buf, "PNG")
    return buf.getvalue()


@dataclass
class Archive:
    data: Path
    reports: dict[str, Event] = field(default_factory=dict)  # name -> event
    media: dict[str, bytes] = field(default_factory=dict)  # sha256 -> bytes
    receipts: list[Event] = field(default_factory=list)
    cluster_id: str = ""


def report(author: PrivateKey, text: str, geohash: str, created_at: int,
           media: list[bytes] = (), observed_at: int | None = None) -> Event:
    tags = [["t", "almaty"]]
    tags += [["g", geohash[:n]] for n in range(len(geohash), 1, -1)]
    urls = []
    for data in media:
        sha = hashlib.sha256(data).hexdigest()
        url = f"http://hub.local:7447/{sha}.png"
        urls.append(url)
        tags.append(["imeta", f"url {url}", "m image/png", f"x {sha}",
                     f"size {len(data)}", "dim 320x240"])
    if observed_at is not None:
        tags.append(["observed_at", str(observed_at)])
    content = text + ("\n" + "\n".join(urls) if urls else "")
    return sign_event(author, 1, content, tags, created_at)


def label(author: PrivateKey, target: Event, value: str, created_at: int) -> Event:
    return sign_event(author, 1985, "", [["L", "samizdat.witness"],
                                         ["l", value, "samizdat.witness"],
                                         ["e", target.id], ["p", target.pubkey]], created_at)


def receipt_with_leaves(hub: PrivateKey, events: list[Event], start: int, end: int,
                        place: str) -> list[Event]:
    ids = sorted_ids(bytes.fromhex(e.id) for e in events)
    rev = build_receipt(hub, start, end, len(ids), merkle_root(ids), place=place,
                        created_at=end + 5)
    return [rev, *build_leaf_events(hub, rev, ids, per_part=3)]


def build(data: Path) -> Archive:
    from samizdat.observer.service import Observer

    arc = Archive(data)
    hub_a, hub_b = key("hub a"), key("hub b")
    w = [key(f"witness {i}") for i in range(4)]
    p1, p2, p3 = photo(1), photo(2), photo(3)
    profiles = [sign_event(k, 0, f'{{"name": "witness {i}"}}', [], T0 - 86400 * 30)
                for i, k in enumerate(w)]
    early = report(w[0], "Старая запись о погоде", "txwts3", T0 - 86400 * 20)
    r1 = report(w[0], "Алматы, Республика алаңы: адамдар көп, полиция қоршауы. "
                "Толпа у акимата, слышны выстрелы.", "txwts3k", T0 + 300, [p1])
    r2 = report(w[1], "Республика алаңында мыңдаған адам. <script>alert(1)</script> & "
                "«кордон» на Желтоксан", "txwts3m", T0 + 420, [p2])
    r3 = report(w[2], "Бронетехника на проспекте Абая", "txwts2", T0 + 900, [p3])
    # claims it happened 3 hours after a receipt already held it
    r4 = report(w[3], "Аэропорт захвачен", "txwtt0", T0 + 600, observed_at=T0 + 4 * 3600)
    labels = [label(w[1], r1, "corroborate", T0 + 500), label(w[2], r1, "corroborate", T0 + 520),
              label(w[3], r1, "corroborate", T0 + 530), label(w[0], r2, "corroborate", T0 + 540),
              label(w[3], r3, "dispute", T0 + 1000)]
    first = [early, *profiles, r1, r2, r4, *labels[:4]]
    events = list(first)
    events += receipt_with_leaves(hub_a, first, T0 - 86400 * 21, T0 + 720, "txwts")
    second = [r3, labels[4]]
    events += second
    events += receipt_with_leaves(hub_a, second, T0 + 720, T0 + 1800, "txwts")
    events += receipt_with_leaves(hub_b, [r1, r2, r3, r4], T0 + 600, T0 + 2400, "txwv")
    with Observer(data) as obs:
        res = obs.store.save_many(events, now=T0 + 7200)
        assert len(res) == len(events)
        for data_ in (p1, p2, p3):
            tmp = obs.blobs.new_temp()
            tmp.write([data_])
            tmp.finish()
            obs.blobs.commit(tmp, "image/png", w[0].public_key_xonly.format().hex())
            arc.media[hashlib.sha256(data_).hexdigest()] = data_
        obs.update_index()
        arc.cluster_id = next(c.id for c in obs.clusters() if c.cell == "txwts"
                              and c.start == T0)
    arc.reports = {"early": early, "r1": r1, "r2": r2, "r3": r3, "r4": r4}
    arc.receipts = [e for e in events if e.kind == 3041]
    return arc
