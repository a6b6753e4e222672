"""``samizdat demo scenario``: fabricate a blackout an observer can check, deterministically.

Three hubs in Almaty districts, each a real hub data directory (``events.sqlite3``,
``blobs/``, ``receipts.sqlite3``, ``hub.key``) written with the hub's own store, media store
and receipts code, on a simulated clock: the receipts log records when each hub stored each
event, windows close every 10 minutes exactly as :class:`~samizdat.receipts.service.
ReceiptService` closes them (:meth:`ReceiptLog.close_window` and
:func:`~samizdat.receipts.service.sign_window`: receipt plus leaf list), and hubs sync
whenever they "touch" by copying what the other lacks. Every event is signed with keys
derived from the seed, so the same seed gives the same event ids.

The story (all times UTC): a photographer's report of a September rally is received by hub
A; in December witnesses appear (profiles, everyday reports); on 5 January the internet is
cut and reports with photos flow between the hubs. Planted among the honest reports:

- ``recycled-media``: the September photo, re-encoded, resized and cropped, posted on
  5 January by another key as new (and present in the reference set);
- ``time-contradiction``: a report whose ``observed_at`` is hours after the end of a
  receipt that already includes it;
- ``place-contradiction``: a report claiming Shymkent (about 600 km away) that reached only
  the Almaty hubs, within minutes;
- ``sybil-burst``: 15 fresh keys, made within two minutes, corroborating one report.

Outputs in ``OUT``: ``bundles/hub-*.bundle`` (``samizdat export`` format, with media),
``hubs/*/`` (the hub data directories: ``samizdat serve --data`` runs on them),
``reference/`` (a reference set of earlier published photos) and ``scenario.json`` (the
answer key: which reports are planted, which flag each must raise, which are honest).
"""

from __future__ import annotations

import hashlib
import io
import json
import random
import shutil
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from coincurve import PrivateKey

from ..nostr.event import Event, sign_event
from ..receipts.leaves import LEAVES_KIND
from ..receipts.receipt import RECEIPT_KIND

INTERVAL = 600  # receipts every 10 minutes (the hub's default)
SIGN_DELAY = 2  # seconds between a window's end and its receipt's created_at
BLACKOUT = 1_767_607_200  # 2026-01-05 10:00 UTC (15:00 in Almaty)
EARLIER_EVENT = BLACKOUT - 113 * 86400  # 2025-09-14
WITNESSES_ARRIVE = BLACKOUT - 21 * 86400  # 2025-12-15
LABEL_NAMESPACE = "samizdat.witness"

# Almaty districts (lat, lon) and the hubs' declared places (precision 6).
HUBS = [
    ("a", "Medeu district", (43.2433, 76.9742), "http://10.42.0.1:7447"),
    ("b", "Almaly district", (43.2525, 76.9120), "http://10.42.1.1:7447"),
    ("c", "Auezov district", (43.2261, 76.8420), "http://10.42.2.1:7447"),
]
PLACES = [  # where honest reports happen
    ("Republic Square", (43.2381, 76.9453)),
    ("Akimat", (43.2383, 76.9458)),
    ("Abay Avenue", (43.2400, 76.9300)),
    ("Zhibek Zholy", (43.2600, 76.9400)),
    ("Sayakhat bus station", (43.2720, 76.9550)),
    ("Tole Bi and Auezov", (43.2510, 76.9140)),
    ("Raiymbek Avenue", (43.2670, 76.8900)),
    ("Sairan lake", (43.2350, 76.8650)),
    ("Orbita", (43.2000, 76.8600)),
    ("Medeu road", (43.2190, 76.9820)),
]
SHYMKENT = ("Shymkent, Al-Farabi Square", (42.3170, 69.5900))

NAMES = ["Aigerim", "Nurlan", "Dana", "Yerlan", "Madina", "Timur", "Asel", "Daulet",
         "Zhanna", "Arman", "Saule", "Bauyrzhan"]
HONEST_TEXT = [
    "Crowd growing at {place}. Hundreds, mostly young men, chanting about gas prices.",
    "Police lines at {place}, shields and helmets. People keep their distance.",
    "No mobile internet since the morning. Queue at the ATM near {place}, it gives no cash.",
    "Smoke over {place}. Sirens. Shops closed their shutters.",
    "Armoured vehicles passing {place} heading towards the centre.",
    "Bread queue at {place}, people say the bakery got no delivery today.",
    "Shots heard near {place}, could not see who was shooting.",
    "Volunteers handing out water and tea at {place}.",
    "Cars burning at {place}. Nobody is putting out the fire.",
    "Landline works at {place} but no internet. People gather to hear news.",
]


def _key(seed: int, name: str) -> PrivateKey:
    return PrivateKey(hashlib.sha256(f"samizdat-demo:{seed}:{name}".encode()).digest())


def _pub(key: PrivateKey) -> str:
    return key.public_key_xonly.format().hex()


def _geohash(lat: float, lon: float, precision: int) -> str:
    from .geo import encode

    return encode(lat, lon, precision)


def _g_tags(gh: str) -> list[list[str]]:
    return [["g", gh[:n]] for n in range(len(gh), 1, -1)]


# --- pictures -----------------------------------------------------------------------------------


def _scene(seed: int, size: tuple[int, int] = (800, 600)):
    """A photo-like picture, different for each seed: a gradient sky, shapes, noise."""
    from PIL import Image, ImageDraw

    r = random.Random(seed)
    w, h = size
    top = [r.randrange(256) for _ in range(3)]
    bottom = [r.randrange(256) for _ in range(3)]
    sky = Image.linear_gradient("L").resize((w, h))
    im = Image.composite(Image.new("RGB", size, tuple(bottom)), Image.new("RGB", size, tuple(top)),
                         sky)
    d = ImageDraw.Draw(im)
    for _ in range(r.randrange(10, 18)):
        x, y = r.randrange(w), r.randrange(h)
        box = [x, y, x + r.randrange(40, 320), y + r.randrange(40, 260)]
        fill = tuple(r.randrange(256) for _ in range(3))
        if r.random() < 0.5:
            d.ellipse(box, fill=fill)
        else:
            d.rectangle(box, fill=fill)
    # Seeded noise (Image.effect_noise draws from the C library's generator, not ours).
    noise = Image.frombytes("L", size, r.randbytes(w * h)).convert("RGB")
    return Image.blend(im, noise, 0.06 + r.random() * 0.06)


def _jpeg(im, quality: int = 85, exif: Any = None) -> bytes:
    buf = io.BytesIO()
    if exif is not None:
        im.save(buf, "JPEG", quality=quality, exif=exif)
    else:
        im.save(buf, "JPEG", quality=quality)
    return buf.getvalue()


def _gps_exif(lat: float, lon: float, when: str):
    from PIL import Image

    exif = Image.Exif()
    exif[0x010F] = "Xiaomi"
    exif[0x0110] = "Redmi Note 10"
    exif.get_ifd(0x8769)[0x9003] = when

    def dms(v: float) -> tuple[float, float, float]:
        v = abs(v)
        d = int(v)
        m = int((v - d) * 60)
        return float(d), float(m), round((v - d - m / 60) * 3600, 2)

    gps = exif.get_ifd(0x8825)
    gps[1], gps[2] = ("N" if lat >= 0 else "S"), dms(lat)
    gps[3], gps[4] = ("E" if lon >= 0 else "W"), dms(lon)
    return exif


class _Pictures:
    """Distinct scenes: every new picture is checked to be perceptually far (more than twice
    the match threshold) from all earlier ones, so honest photos never match by chance."""

    def __init__(self, seed: int):
        from .media import MATCH_THRESHOLD, hamming, media_facts

        self._facts, self._hamming = media_facts, hamming
        self._min = 2 * MATCH_THRESHOLD + 1
        self._next = seed * 1000
        self.hashes: list[str] = []

    def new(self):
        while True:
            self._next += 1
            im = _scene(self._next)
            ph = self._facts(_jpeg(im)).phash
            if ph and all(self._hamming(ph, h) >= self._min for h in self.hashes):
                self.hashes.append(ph)
                return im


# --- hubs on a simulated clock ------------------------------------------------------------------


@dataclass
class SimHub:
    name: str
    district: str
    place: str
    address: str
    key: PrivateKey
    data: Path
    events: dict[str, Event] = field(default_factory=dict)
    blobs: dict[str, tuple[bytes, str]] = field(default_factory=dict)
    pending: list[int] = field(default_factory=list)  # stored times of open non-receipt rows
    receipts: list[Event] = field(default_factory=list)
    leaves: list[Event] = field(default_factory=list)

    def open(self) -> None:
        from ..blobs.store import BlobStore
        from ..nostr.keys import HUB_KEY_FILE
        from ..store import SQLiteStore
        from ..store.blobs import BlobIndex
        from ..store.receipts import RECEIPTS_FILE, ReceiptLog

        self.data.mkdir(parents=True)
        keyfile = self.data / HUB_KEY_FILE
        keyfile.write_text(self.key.secret.hex() + "\n")
        keyfile.chmod(0o600)
        (self.data / "samizdat.toml").write_text(
            f'# {self.district}, Almaty (samizdat demo scenario)\n[receipts]\nplace = "{self.place}"\n')
        self.store = SQLiteStore(self.data / "events.sqlite3", "NORMAL")
        self.blob_index = BlobIndex(self.data / "blobs.sqlite3", "NORMAL")
        self.blob_store = BlobStore(self.data, self.blob_index)
        self.log = ReceiptLog(self.data / RECEIPTS_FILE)
        self.log.set_interval(INTERVAL)

    def close(self) -> None:
        self.store.close()
        self.blob_index.close()
        self.log.close()

    @property
    def pubkey(self) -> str:
        return _pub(self.key)

    def put(self, evs: list[Event], t: int, blobs: dict[str, tuple[bytes, str]] | None = None
            ) -> None:
        """Store events (and their media) as committed at time ``t``."""
        for sha, (data, mime) in (blobs or {}).items():
            if sha in self.blobs:
                continue
            tmp = self.blob_store.new_temp()
            tmp.write([data])
            tmp.finish()
            owner = next((e.pubkey for e in evs if sha in e.content), self.pubkey)
            self.blob_store.commit(tmp, mime, owner, now=t)
            self.blobs[sha] = (data, mime)
        new = [e for e in evs if e.id not in self.events]
        if not new:
            return
        self.store.save_many(new, now=t)
        rows = []
        for e in new:
            self.events[e.id] = e
            is_receipt = e.kind in (RECEIPT_KIND, LEAVES_KIND)
            rows.append((bytes.fromhex(e.id), t, int(is_receipt)))
            if not is_receipt:
                self.pending.append(max(t, self.log.closed_until))
        self.log.append(rows)

    def tick(self, now: int) -> None:
        """Publish every receipt a running hub would have published by ``now``: at each
        interval boundary whose window holds an event that is not a receipt."""
        from ..receipts.service import sign_window

        while self.pending:
            start = self.log.open_window_start()
            assert start is not None
            first = min(self.pending)
            due = start + ((first - start) // INTERVAL + 1) * INTERVAL
            if due > now:
                return
            made: list[tuple[Event, list[Event]]] = []

            def sign(s, e, ids, prev, made=made):
                ev, root, leaves = sign_window(self.key, self.place, s, e, ids, prev,
                                               e + SIGN_DELAY)
                made.append((ev, leaves))
                return ev.id, ev.created_at, root, ev.to_json()

            row, _ = self.log.close_window(due, INTERVAL, sign)
            assert row is not None and made
            self.pending = [p for p in self.pending if p >= row.end]
            receipt, leaves = made[-1]
            self.receipts.append(receipt)
            self.leaves.extend(leaves)
            self.put([receipt, *leaves], receipt.created_at)


def sync(t: int, a: SimHub, b: SimHub) -> None:
    """The two hubs touch at ``t`` (a LAN cable, a courier's stick): each stores what it
    lacks, with the media."""
    for src, dst in ((a, b), (b, a)):
        missing = [e for i, e in src.events.items() if i not in dst.events]
        missing.sort(key=lambda e: (e.created_at, e.id))
        blobs = {s: v for s, v in src.blobs.items() if s not in dst.blobs}
        dst.put(missing, t, blobs)


# --- the story ----------------------------------------------------------------------------------


class Story:
    def __init__(self, seed: int, out: Path):
        self.seed = seed
        self.rng = random.Random(seed)
        self.out = out
        self.hubs = {n: SimHub(n, district, _geohash(*ll, 6), addr, _key(seed, f"hub-{n}"),
                               out / "hubs" / f"hub-{n}")
                     for n, district, ll, addr in HUBS}
        self.actions: list[tuple[int, int, Any]] = []
        self._seq = 0
        self.pictures = _Pictures(seed)
        self.key_names: dict[str, str] = {}

    def at(self, t: int, fn, *args) -> None:
        self._seq += 1
        self.actions.append((t, self._seq, (fn, args)))

    def run(self) -> None:
        for t, _, (fn, args) in sorted(self.actions, key=lambda a: (a[0], a[1])):
            for h in self.hubs.values():
                h.tick(t)
            fn(t, *args)

    # events

    def profile(self, key: PrivateKey, name: str, about: str, t: int) -> Event:
        self.key_names[_pub(key)] = name
        return sign_event(key, 0, json.dumps({"name": name, "about": about},
                                             ensure_ascii=False, sort_keys=True), [], t)

    def report(self, key: PrivateKey, hub: SimHub, text: str, ll: tuple[float, float],
               t: int, *, photo: bytes | None = None, observed_at: int | None = None,
               tags: tuple[str, ...] = ("almaty",), precision: int = 6
               ) -> tuple[Event, dict[str, tuple[bytes, str]]]:
        gh = _geohash(*ll, precision)
        event_tags: list[list[str]] = [["t", x] for x in tags] + _g_tags(gh)
        content = text
        blobs: dict[str, tuple[bytes, str]] = {}
        if photo is not None:
            from PIL import Image

            sha = hashlib.sha256(photo).hexdigest()
            w, h = Image.open(io.BytesIO(photo)).size
            url = f"{hub.address}/{sha}.jpg"
            event_tags.append(["imeta", f"url {url}", "m image/jpeg", f"x {sha}",
                               f"size {len(photo)}", f"dim {w}x{h}"])
            content = f"{text}\n{url}"
            blobs[sha] = (photo, "image/jpeg")
        if observed_at is not None:
            event_tags.append(["observed_at", str(observed_at)])
        return sign_event(key, 1, content, event_tags, t), blobs

    @staticmethod
    def label(key: PrivateKey, report: Event, value: str, t: int) -> Event:
        return sign_event(key, 1985, "", [["L", LABEL_NAMESPACE], ["l", value, LABEL_NAMESPACE],
                                          ["e", report.id], ["p", report.pubkey]], t)

    def post(self, hub: SimHub, evs: list[Event], t: int,
             blobs: dict[str, tuple[bytes, str]] | None = None) -> None:
        self.at(t, lambda now, hub=hub, evs=evs, blobs=blobs: hub.put(evs, now, blobs))


def build(out: Path, seed: int = 1) -> dict[str, Any]:
    """Write the scenario into ``out`` (which must not exist or be empty); return the key."""
    from PIL import Image

    out.mkdir(parents=True, exist_ok=True)
    if any(out.iterdir()):
        raise FileExistsError(f"{out} is not empty")
    s = Story(seed, out)
    rng = s.rng
    A, B, C = s.hubs["a"], s.hubs["b"], s.hubs["c"]
    hubs = [A, B, C]
    for h in hubs:
        h.open()

    # September: a photographer's report of a rally, received by hub A.
    photographer = _key(seed, "photographer")
    rally = s.pictures.new()
    rally_jpeg = _jpeg(rally, 92)
    t = EARLIER_EVENT + 3 * 3600
    s.post(A, [s.profile(photographer, "Daniyar (photo)", "Street photography, Almaty",
                         t - 7200)], t - 7200)
    source, blobs = s.report(photographer, A, f"Rally against utility prices at {PLACES[0][0]}, "
                             "peaceful, a few hundred people.",
                             PLACES[0][1], t, photo=rally_jpeg, tags=("almaty", "rally"))
    s.post(A, [source], t + 40, blobs)
    s.at(t + 7200, lambda now: None)  # let A's receipt close

    # December: twelve witnesses, each with a profile, everyday reports and a home hub.
    witnesses = [_key(seed, f"witness-{i}") for i in range(len(NAMES))]
    home = {i: hubs[i % 3] for i in range(len(NAMES))}
    early_reports: list[Event] = []
    for i, (k, name) in enumerate(zip(witnesses, NAMES, strict=True)):
        t0 = WITNESSES_ARRIVE + i * 3 * 3600 + rng.randrange(3600)
        s.post(home[i], [s.profile(k, name, "Almaty", t0)], t0)
        for j in range(1 + i % 2):
            place, ll = rng.choice(PLACES)
            tr = t0 + (j + 1) * 86400 + rng.randrange(3 * 3600)
            ev, _ = s.report(k, home[i], f"Prices at the market near {place} went up again, "
                             f"liquefied gas doubled.", ll, tr, tags=("almaty", "prices"),
                             precision=5)
            s.post(home[i], [ev], tr + rng.randrange(5, 120))
            early_reports.append(ev)
    # December: the hubs meet now and then.
    for day in range(3, 21, 2):
        tt = WITNESSES_ARRIVE + day * 86400 + 14 * 3600
        s.at(tt, sync, A, B)
        s.at(tt + 1800, sync, B, C)
        s.at(tt + 3600, sync, A, C)
    # some corroborations among the witnesses in December
    for ev in early_reports[::3]:
        i = next(n for n, k in enumerate(witnesses) if _pub(k) == ev.pubkey)
        j = (i + 1 + rng.randrange(len(NAMES) - 1)) % len(NAMES)
        tl = ev.created_at + 86400 * 2 + rng.randrange(3600)
        s.post(home[j], [s.label(witnesses[j], ev, "corroborate", tl)], tl)

    # 5 January: the blackout. Hubs sync every 20 minutes (A-B cable), B-C every 40.
    day_end = BLACKOUT + 6 * 3600
    for tt in range(BLACKOUT + 1200, day_end + 1, 1200):
        s.at(tt, sync, A, B)
        if (tt - BLACKOUT) % 2400 == 0:
            s.at(tt + 300, sync, B, C)
    honest: list[Event] = []
    photos: dict[str, str] = {}  # report id -> sha256 of its photo
    exif_report = None
    for n in range(18):
        i = n % len(NAMES)
        k, hub = witnesses[i], home[i]
        place, ll = PLACES[n % len(PLACES)]
        ll = (ll[0] + rng.uniform(-0.003, 0.003), ll[1] + rng.uniform(-0.003, 0.003))
        tr = BLACKOUT + 600 + n * 1100 + rng.randrange(600)
        observed = tr - rng.randrange(600, 3600) if n % 4 == 1 else None
        text = HONEST_TEXT[n % len(HONEST_TEXT)].format(place=place)
        im = s.pictures.new() if n % 5 != 4 else None
        photo = None
        if im is not None:
            if n == 7:  # this witness kept the original: EXIF with GPS
                when = _utc_exif(observed or tr)
                photo = _jpeg(im, 88, _gps_exif(ll[0], ll[1], when))
            else:
                photo = _jpeg(im, 80)
        ev, blobs = s.report(k, hub, text, ll, tr, photo=photo, observed_at=observed,
                             tags=("almaty", "blackout"))
        s.post(hub, [ev], tr + rng.randrange(2, 90), blobs)
        honest.append(ev)
        if photo is not None:
            photos[ev.id] = hashlib.sha256(photo).hexdigest()
        if n == 7:
            exif_report = ev
        # one to four other witnesses saw the same
        others = rng.sample([j for j in range(len(NAMES)) if j != i], 1 + rng.randrange(4))
        for j in others:
            tl = tr + 300 + rng.randrange(3000)
            s.post(home[j], [s.label(witnesses[j], ev, "corroborate", tl)], tl + 5)

    # Planted 1: the September rally photo, re-encoded, resized, cropped, posted as new.
    w, h = rally.size
    recycled_im = rally.crop((24, 16, w - 20, h - 18)).resize((720, 540))
    recycled_photo = _jpeg(recycled_im, 70)
    recycler = witnesses[4]
    tr = BLACKOUT + 2 * 3600 + 900
    recycled, blobs = s.report(recycler, home[4], "Right now at Republic Square: the crowd "
                               "is enormous, thousands of people!", PLACES[0][1], tr,
                               photo=recycled_photo, tags=("almaty", "blackout"))
    s.post(home[4], [recycled], tr + 20, blobs)

    # Planted 2: observed_at hours after a receipt already held it.
    liar = witnesses[5]
    tr = BLACKOUT + 3600 + 1500
    late, blobs = s.report(liar, home[5], "Troops opened fire on the crowd at the Akimat.",
                           PLACES[1][1], tr, photo=_jpeg(s.pictures.new(), 80),
                           observed_at=tr + 3 * 3600, tags=("almaty", "blackout"))
    s.post(home[5], [late], tr + 30, blobs)

    # Planted 3: claims Shymkent (about 600 km west), reaches only Almaty hubs, at once.
    far_key = witnesses[8]
    tr = BLACKOUT + 4 * 3600 + 200
    far, blobs = s.report(far_key, home[8], f"Government building stormed at {SHYMKENT[0]}.",
                          SHYMKENT[1], tr, photo=_jpeg(s.pictures.new(), 80),
                          tags=("shymkent", "blackout"), precision=5)
    s.post(home[8], [far], tr + 15, blobs)

    # Planted 4: a sybil burst: 15 fresh keys within two minutes corroborate one report.
    target_key = witnesses[10]
    tr = BLACKOUT + 3 * 3600 + 400
    target, blobs = s.report(target_key, home[10], "Protesters set fire to the police "
                             "station near Raiymbek Avenue.", PLACES[6][1], tr,
                             photo=_jpeg(s.pictures.new(), 80), tags=("almaty", "blackout"))
    s.post(home[10], [target], tr + 10, blobs)
    honest_cor = rng.sample([j for j in range(len(NAMES)) if j != 10], 2)
    for j in honest_cor:
        tl = tr + 600 + rng.randrange(1200)
        s.post(home[j], [s.label(witnesses[j], target, "corroborate", tl)], tl + 5)
    burst_at = tr + 1500
    sybils = [_key(seed, f"sybil-{n}") for n in range(15)]
    for n, k in enumerate(sybils):
        tk = burst_at + n * 7 + rng.randrange(5)
        evs = [s.profile(k, f"user{rng.randrange(10**5, 10**6)}", "", tk),
               s.label(k, target, "corroborate", tk + 3)]
        s.post(B, evs, tk + 4)

    # Let every hub close its last windows and meet once more.
    s.at(day_end + 1800, sync, A, B)
    s.at(day_end + 2100, sync, B, C)
    s.at(day_end + 2400, sync, A, C)
    s.at(day_end + 2400 + 2 * INTERVAL, lambda now: None)
    s.run()
    for hh in hubs:
        hh.tick(day_end + 2400 + 3 * INTERVAL)
        assert not hh.pending, "every stored report is in a receipt"

    # The reference set: earlier published photos (the rally photo as an agency ran it).
    ref = out / "reference"
    ref.mkdir()
    rally_ref = rally.resize((1024, 768))
    rally_ref.save(ref / "2025-09-14-almaty-rally-agency.jpg", "JPEG", quality=90)
    for n in range(3):
        Image.Image.save(s.pictures.new(), ref / f"2025-archive-{n + 1}.jpg", "JPEG",
                         quality=85)
    (ref / "README.txt").write_text(
        "Photos published before the blackout (agency archives). `samizdat observe` flags\n"
        "reports whose media perceptually match any of these.\n")

    # Bundles: one per hub, in the format `samizdat export` writes, with media.
    bundles = out / "bundles"
    bundles.mkdir()
    bundle_paths = {}
    for hh in hubs:
        bundle_paths[hh.name] = _export(hh, bundles / f"hub-{hh.name}.bundle",
                                        day_end + 3 * 3600)
    for hh in hubs:
        hh.close()

    honest_ids = [e.id for e in honest] + [e.id for e in early_reports]
    key = {
        "type": "samizdat-demo-scenario", "version": 1, "seed": seed,
        "story": "A blackout in Almaty on 2026-01-05 from 10:00 UTC: three hubs, twelve "
                 "witnesses, reports with photos, corroborations, receipts and leaf lists; "
                 "four planted problems.",
        "hubs": [{"name": hh.name, "district": hh.district, "pubkey": hh.pubkey,
                  "place": hh.place, "bundle": str(bundle_paths[hh.name].relative_to(out)),
                  "data": str(hh.data.relative_to(out)), "receipts": len(hh.receipts),
                  "leaf_lists": len(hh.leaves), "events": len(hh.events)}
                 for hh in hubs],
        "planted": [
            {"case": "recycled photo", "report": recycled.id, "flag": "recycled-media",
             "source_report": source.id,
             "reference": "reference/2025-09-14-almaty-rally-agency.jpg",
             "why": "the photo of a September rally, re-encoded, resized and cropped, posted "
                    "as new by another key"},
            {"case": "time after receipt", "report": late.id, "flag": "time-contradiction",
             "why": "observed_at is three hours after the end of a receipt that includes it"},
            {"case": "far place", "report": far.id, "flag": "place-contradiction",
             "why": "claims Shymkent, about 600 km from every hub that received it within "
                    "minutes"},
            {"case": "sybil burst", "report": target.id, "flag": "sybil-burst",
             "sybil_keys": [_pub(k) for k in sybils],
             "why": "15 keys first seen within two minutes, with no other history, "
                    "corroborate it"},
        ],
        "honest": honest_ids,
        "expected_info": [
            {"report": exif_report.id, "flag": "exif-location",
             "why": "the witness kept the original photo: EXIF GPS (a warning for their "
                    "safety, not about the report)"},
        ] if exif_report is not None else [],
        "other": [
            {"report": source.id, "note": "the September original of the recycled photo; "
             "it is in the reference set too, so it may match it"},
        ],
        "photos": photos,
        "witnesses": {_pub(k): NAMES[i] for i, k in enumerate(witnesses)},
    }
    (out / "scenario.json").write_text(json.dumps(key, indent=2, sort_keys=True) + "\n")
    return key


def _utc_exif(ts: int) -> str:
    import time

    return time.strftime("%Y:%m:%d %H:%M:%S", time.gmtime(ts))


def _export(hub: SimHub, path: Path, now: int) -> Path:
    from ..bundle import export_bundle
    from ..nostr.filters import parse_filter

    export_bundle(hub.store, path, hub.key, flt=parse_filter({}, max_limit=2**31),
                  filter_json={}, now=now, blobs=hub.blob_store)
    return path


def bundle_files(out: Path) -> list[Path]:
    return sorted((out / "bundles").glob("hub-*.bundle"))


def clear(out: Path) -> None:
    """Remove a previous scenario written by this command (only if it looks like one)."""
    if (out / "scenario.json").exists():
        shutil.rmtree(out)


def check_against_key(obs: Any, key: dict[str, Any]) -> dict[str, Any]:
    """Run the observer's check on every report of the answer key: which planted cases
    raised their flag, and which honest reports got a warning (there should be none)."""
    planted = []
    for case in key["planted"]:
        v = obs.check(case["report"])
        codes = sorted({f.code for f in v.flags})
        planted.append({**{k: case[k] for k in ("case", "report", "flag")},
                        "flagged": case["flag"] in codes, "flags": codes})
    honest_warned = []
    for rid in key["honest"]:
        v = obs.check(rid)
        warned = sorted({f.code for f in v.flags if f.severity != "info"})
        if warned:
            honest_warned.append({"report": rid, "flags": warned})
    return {"planted": planted, "honest": len(key["honest"]), "honest_warned": honest_warned}


def run_demo(out: Path, seed: int, data: Path | None, *, as_json: bool = False) -> dict:
    """The ``samizdat demo scenario`` command: build, then ingest into ``data``."""
    import time

    from rich.console import Console

    started = time.monotonic()
    if out.exists() and any(out.iterdir()):
        if not (out / "scenario.json").exists():
            raise FileExistsError(f"{out} exists and holds something other than a demo "
                                  "scenario; choose another --out")
        clear(out)
    if data is not None and data.exists() and any(data.iterdir()):
        raise FileExistsError(f"the observer directory {data} is not empty; choose another "
                              "--data (the demo never mixes with real evidence)")
    console = Console(stderr=as_json, highlight=False, soft_wrap=True)
    console.print(f"[bold]·[/] fabricating the blackout (seed {seed}) in {out}")
    key = build(out, seed)
    result: dict[str, Any] = {"key": key, "out": str(out)}
    if data is not None:
        from .ingest import ingest
        from .service import Observer

        console.print(f"[bold]·[/] ingesting {len(key['hubs'])} bundles and the reference "
                      f"set into {data}")
        with Observer(data) as obs:
            report = ingest(obs, [str(p) for p in bundle_files(out)],
                            reference=out / "reference")
            result["ingest"] = report.as_json()
            result["check"] = check_against_key(obs, key)
    result["seconds"] = round(time.monotonic() - started, 2)
    if as_json:
        print(json.dumps(result, indent=2, sort_keys=True))
        return result
    _explain(console, out, data, key, result)
    return result


def _explain(console: Any, out: Path, data: Path | None, key: dict, result: dict) -> None:
    for h in key["hubs"]:
        console.print(f"  hub {h['name']} ({h['district']}, place {h['place']}): "
                      f"{h['events']} events, {h['receipts']} receipts with leaf lists "
                      f"→ {out / h['bundle']}")
    console.print(f"  reference set: {out / 'reference'}; answer key: {out / 'scenario.json'}")
    check = result.get("check")
    if check:
        console.print("[bold]planted cases[/] (the observer's verdict):")
        for p in check["planted"]:
            mark = "[green]flagged[/]" if p["flagged"] else "[red]NOT flagged[/]"
            console.print(f"  {p['case']:<20} {p['report'][:16]}…  {p['flag']:<20} {mark}")
        n_warn = len(check["honest_warned"])
        console.print(f"  honest reports: {check['honest']}, with a warning: "
                      + ("[green]0[/]" if not n_warn else f"[red]{n_warn}[/]"))
    console.print(f"done in {result['seconds']:.1f} s. Next:")
    if data is not None:
        first = key["planted"][0]["report"]
        console.print(f"  samizdat observe serve --data {data}     # the console in a browser")
        console.print(f"  samizdat observe check {first} --data {data}")
        console.print(f"  samizdat observe export {first} evidence.zip --data {data}")
    else:
        bundles = " ".join(str(out / h["bundle"]) for h in key["hubs"])
        console.print(f"  samizdat observe ingest {bundles} --reference {out / 'reference'}")
    hub_a = out / "hubs" / "hub-a"
    console.print(f"  samizdat serve --data {hub_a} --config {hub_a / 'samizdat.toml'}   # hub A itself, "
                  "with its receipts")
