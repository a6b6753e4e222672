"""The web app end to end: real headless Chromium (Debian's), a phone-sized screen, a real hub.

The app is opened as ``http://hub.lan:PORT/``, a LAN-like name that Chromium maps to
127.0.0.1 (``--host-resolver-rules``): like a phone on the hub's Wi-Fi, the page is *not*
a secure context there, so it has no service worker and no ``crypto.subtle``. Once it is
also opened as ``http://localhost:PORT/``, where the browser allows a service worker.

One story, in order: a first visit makes a key; a report with a photo carrying EXIF GPS
is posted; a second person (another browser context) sees it, and so does nostr-tools;
the stored photo has no EXIF left; the second person's corroboration shows on the first
phone; the hub stops, the app still opens with the saved feed, a report written meanwhile
waits on the phone and is delivered when the hub is back on the same port and data.
No request may go to any host but the hub. Screenshots go to test-output/web-e2e/.
"""

from __future__ import annotations

import hashlib
import io
import shutil
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from urllib.parse import urlsplit

import pytest

from samizdat.nostr.keys import npub, nsec

from .helpers import ROOT, Client, HubProcess, Keys, free_port
from .nodedriver import NodeDriver

PIL = pytest.importorskip("PIL")
from PIL import Image, ImageDraw  # noqa: E402

playwright_sync = pytest.importorskip("playwright.sync_api")

CHROMIUM = Path("/usr/bin/chromium")
OUT = ROOT / "test-output" / "web-e2e"
PHONE = {"viewport": {"width": 390, "height": 844}, "is_mobile": True, "has_touch": True,
         "device_scale_factor": 2, "locale": "en-US"}
GPS_IFD = 0x8825
WAIT = 15_000  # ms

pytestmark = pytest.mark.skipif(not CHROMIUM.exists(), reason="needs Debian's chromium")


def photo_with_gps(path: Path) -> bytes:
    """A 2400x1600 JPEG whose EXIF names a camera and a GPS position (Almaty)."""
    img = Image.new("RGB", (2400, 1600), (40, 90, 160))
    draw = ImageDraw.Draw(img)
    for i in range(0, 2400, 150):
        draw.rectangle([i, (i * 7) % 1400, i + 120, (i * 7) % 1400 + 200], fill=(200, i % 255, 60))
    exif = Image.Exif()
    exif[0x010F] = "WitnessPhone Inc."  # Make
    exif[0x0110] = "WP-1"  # Model
    exif[0xA431] = "SERIAL-0042"  # BodySerialNumber (Exif IFD in the spec, fine at top level)
    gps = exif.get_ifd(GPS_IFD)
    gps.update({1: "N", 2: (43.0, 14.0, 20.0), 3: "E", 4: (76.0, 53.0, 23.0)})
    img.save(path, "JPEG", quality=90, exif=exif)
    data = path.read_bytes()
    assert Image.open(io.BytesIO(data)).getexif().get_ifd(GPS_IFD), "test photo lacks GPS"
    return data


def bech32_payload(text: str) -> bytes:
    """The 32 bytes inside an npub/nsec (checked with the bech32 package, not the app's code)."""
    import bech32

    hrp, data = bech32.bech32_decode(text)
    assert hrp is not None, text
    return bytes(bech32.convertbits(data, 5, 8, False))


class Pages:
    """Every request and WebSocket any page of the browser makes, to check the hosts."""

    def __init__(self) -> None:
        self.urls: list[str] = []
        self.errors: list[str] = []

    def watch(self, ctx) -> None:
        ctx.on("request", lambda r: self.urls.append(r.url))
        ctx.on("page", self._page)
        for page in ctx.pages:
            self._page(page)

    def _page(self, page) -> None:
        page.on("websocket", lambda ws: self.urls.append(ws.url))
        page.on("pageerror", lambda e: self.errors.append(str(e)))
        # (connection errors are expected while the hub is stopped; policy violations never)
        page.on("console", lambda m: "Content Security Policy" in m.text
                and self.errors.append(m.text))

    def foreign(self, allowed: set[str]) -> list[str]:
        out = []
        for url in self.urls:
            parts = urlsplit(url)
            if parts.scheme in ("data", "blob"):
                continue
            if parts.netloc not in allowed:
                out.append(url)
        return out


@pytest.fixture
def browser() -> Iterator:
    with playwright_sync.sync_playwright() as p:
        b = p.chromium.launch(executable_path=str(CHROMIUM), headless=True,
                              args=["--host-resolver-rules=MAP hub.lan 127.0.0.1"])
        try:
            yield b
        finally:
            b.close()


@pytest.fixture(scope="module")
def shots() -> Path:
    shutil.rmtree(OUT, ignore_errors=True)
    OUT.mkdir(parents=True)
    return OUT


def item(page, text: str):
    return page.locator("[data-testid=feed-item]", has_text=text)


def wait_status(page, state: str, timeout: int = WAIT) -> None:
    page.wait_for_selector(f"[data-testid=compose-status][data-state={state}]", timeout=timeout)


def test_web_app_end_to_end(tmp_path, browser, shots):
    port = free_port()
    data = tmp_path / "hub"
    hub = HubProcess(data, port=port)
    lan = f"http://hub.lan:{port}/"
    local = f"http://localhost:{port}/"
    pages = Pages()
    driver = None
    try:
        # --- first visit on the LAN address: a key is made and shown ----------------------
        a_ctx = browser.new_context(**PHONE)
        pages.watch(a_ctx)
        a = a_ctx.new_page()
        a.goto(lan)
        a.wait_for_selector("[data-testid=key-npub]:has-text('npub1')", timeout=WAIT)
        assert a.evaluate("isSecureContext") is False
        assert a.evaluate("'serviceWorker' in navigator") is False
        npub_a = a.inner_text("[data-testid=key-npub]")
        assert npub_a.startswith("npub1") and len(npub_a) == 63
        a.wait_for_selector("[data-testid=hub-status][data-state=open]", timeout=WAIT)
        a.screenshot(path=shots / "01-first-visit.png", full_page=True)

        # --- a report with a photo that carries EXIF GPS --------------------------------
        photo = tmp_path / "street.jpg"
        original = photo_with_gps(photo)
        text = "Water rising on Abay avenue #flood #almaty"
        a.fill("[data-testid=compose-text]", text)
        a.set_input_files("[data-testid=compose-media]", str(photo))
        a.fill("[data-testid=compose-place]", "43.2389, 76.8897")
        a.select_option("[data-testid=compose-precision]", "6")
        a.click("[data-testid=compose-submit]")
        wait_status(a, "sent")
        mine = item(a, "Water rising")
        mine.wait_for(timeout=WAIT)
        assert mine.locator("img").evaluate("img => img.complete && img.naturalWidth > 0") or \
            mine.locator("img").evaluate(
                "img => new Promise(r => img.onload = () => r(img.naturalWidth > 0))")
        a.screenshot(path=shots / "02-posted.png", full_page=True)

        # --- nostr-tools sees the report in the documented format -----------------------
        driver = NodeDriver("nostr_tools_driver.mjs", f"ws://127.0.0.1:{port}")
        found = driver.call("pool_query", filter={"kinds": [1], "#t": ["flood"]},
                            wait_ms=5000)["events"]
        assert len(found) == 1, found
        report = found[0]
        assert report["content"].startswith(text)
        tags = report["tags"]
        assert ["t", "flood"] in tags and ["t", "almaty"] in tags
        g = [t[1] for t in tags if t[0] == "g"]
        assert g == ["tx", "txw", "txwt", "txwtv", "txwtvx"], g  # 6 characters and every prefix
        imeta = [t for t in tags if t[0] == "imeta"]
        assert len(imeta) == 1
        fields = dict(part.split(" ", 1) for part in imeta[0][1:])
        sha = fields["x"]
        assert fields["m"] == "image/jpeg"
        assert fields["url"] == f"http://hub.lan:{port}/{sha}.jpg"
        assert fields["url"] in report["content"]
        width, height = map(int, fields["dim"].split("x"))
        assert max(width, height) == 1600  # downscaled from 2400x1600

        # --- the stored photo: the bytes named by its hash, and no EXIF left ------------
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/{sha}.jpg", timeout=10) as resp:
            stored = resp.read()
        assert hashlib.sha256(stored).hexdigest() == sha
        assert int(fields["size"]) == len(stored)
        assert stored != original
        exif = Image.open(io.BytesIO(stored)).getexif()
        assert not exif.get_ifd(GPS_IFD), "GPS survived"
        assert 0x010F not in exif and 0x0110 not in exif and 0xA431 not in exif
        assert b"SERIAL-0042" not in stored and b"WitnessPhone" not in stored

        # --- a second person sees it and corroborates; the first phone shows it ----------
        b_ctx = browser.new_context(**PHONE)
        pages.watch(b_ctx)
        b = b_ctx.new_page()
        b.goto(lan)
        b.wait_for_selector("[data-testid=key-npub]:has-text('npub1')", timeout=WAIT)
        assert b.inner_text("[data-testid=key-npub]") != npub_a
        theirs = item(b, "Water rising")
        theirs.wait_for(timeout=WAIT)
        theirs.locator("img").wait_for(timeout=WAIT)
        b.wait_for_function(
            "() => [...document.querySelectorAll('[data-testid=feed-item] img')]"
            ".every(i => i.complete && i.naturalWidth > 0)", timeout=WAIT)
        theirs.locator("[data-testid=corroborate]").click()
        mine.locator("[data-testid=corroborate-count]").filter(has_text="1").wait_for(
            timeout=WAIT)
        assert mine.locator("[data-testid=dispute-count]").inner_text() == "0"
        # the report's author cannot corroborate their own report
        assert mine.locator("[data-testid=corroborate]").is_disabled()
        b.screenshot(path=shots / "03-second-phone.png", full_page=True)
        a.screenshot(path=shots / "04-corroborated.png", full_page=True)

        # --- once via localhost, in Russian: a secure context, with a service worker -----
        c_ctx = browser.new_context(**{**PHONE, "locale": "ru-RU"})
        pages.watch(c_ctx)
        c = c_ctx.new_page()
        c.on("dialog", lambda d: d.accept())
        c.goto(local)
        c.wait_for_selector("[data-testid=key-npub]:has-text('npub1')", timeout=WAIT)
        assert c.evaluate("isSecureContext") is True
        item(c, "Water rising").wait_for(timeout=WAIT)
        c.evaluate("navigator.serviceWorker.ready.then(() => true)")
        c.wait_for_function("() => navigator.serviceWorker.controller !== null", timeout=WAIT)
        assert c.inner_text("[data-testid=compose-submit]") == "Опубликовать"
        c.select_option("[data-testid=lang]", "kk")
        assert c.inner_text("[data-testid=compose-submit]") == "Жариялау"
        # the key: its backup is the nsec of the npub shown, and another key can be imported
        c.click("[data-testid=nav-key]")
        c.click("[data-testid=key-show-backup]")
        c.wait_for_selector("[data-testid=key-nsec]:has-text('nsec1')", timeout=WAIT)
        shown_nsec = c.inner_text("[data-testid=key-nsec]")
        c.wait_for_selector("[data-testid=key-qr] svg", timeout=WAIT)
        c.screenshot(path=shots / "05-key-backup-kk.png", full_page=True)
        mine_c = Keys(bech32_payload(shown_nsec))
        assert c.inner_text("[data-testid=key-npub-full]") == npub(mine_c.pubkey)
        other = Keys()
        c.fill("[data-testid=key-import]", nsec(other.key.secret))
        c.click("[data-testid=key-import-submit]")
        c.wait_for_selector(f"[data-testid=key-npub-full]:has-text('{npub(other.pubkey)}')",
                            timeout=WAIT)
        c.select_option("[data-testid=lang]", "en")
        c.click("#key-back")
        assert c.inner_text("[data-testid=key-npub]") == npub(other.pubkey)

        # --- the hub stops: the app still opens with the saved feed ---------------------
        hub.terminate()
        a.goto(lan)  # plain HTTP: the page comes from the browser's cache
        item(a, "Water rising").wait_for(timeout=WAIT)
        a.wait_for_selector("[data-testid=hub-status][data-state=closed]", timeout=WAIT)
        c.reload()  # localhost: the service worker answers
        item(c, "Water rising").wait_for(timeout=WAIT)
        a.screenshot(path=shots / "06-hub-down-cached.png", full_page=True)

        # --- a report written while the hub is down waits, then goes --------------------
        queued_text = 'Bridge closed by "police"\n\ttraffic \\ stopped #almaty'  # NIP-01 escapes
        a.fill("[data-testid=compose-text]", queued_text)
        a.click("[data-testid=compose-submit]")
        wait_status(a, "queued")
        a.wait_for_selector("[data-testid=outbox-item][data-state=queued]", timeout=WAIT)
        a.screenshot(path=shots / "07-queued.png", full_page=True)
        hub = HubProcess(data, port=port)
        wait_status(a, "sent", timeout=30_000)
        a.wait_for_selector("[data-testid=outbox-item]", state="detached", timeout=WAIT)
        item(a, "Bridge closed").wait_for(timeout=WAIT)
        with Client(hub.url) as cl:
            got = cl.query({"kinds": [1], "search": "bridge"})
        assert [e["content"] for e in got] == [queued_text]
        item(b, "Bridge closed").wait_for(timeout=30_000)  # the second phone got it live
        a.screenshot(path=shots / "08-delivered.png", full_page=True)

        # --- filters: by hashtag and by place -------------------------------------------
        feed = a.locator("[data-testid=feed-item]")
        assert feed.count() == 2
        a.select_option("[data-testid=filter-tag]", "flood")
        assert feed.count() == 1 and "Water rising" in feed.first.inner_text()
        a.select_option("[data-testid=filter-tag]", "")
        a.select_option("[data-testid=filter-place]", "txwt")
        assert feed.count() == 1 and "Water rising" in feed.first.inner_text()
        a.select_option("[data-testid=filter-place]", "")
        assert feed.count() == 2

        # --- nothing but the hub was ever asked for anything ------------------------------
        allowed = {f"hub.lan:{port}", f"localhost:{port}"}
        assert pages.urls, "no requests recorded"
        assert pages.foreign(allowed) == []
        assert pages.errors == []
        print(f"\nscreenshots: {shots}")
    finally:
        if driver is not None:
            driver.close()
        if hub.proc.poll() is None:
            hub.terminate()


NIP07 = """
window.nostr = {
  getPublicKey: () => window.__nip07({op: 'pubkey'}),
  signEvent: (event) => window.__nip07({op: 'sign', event}),
}
"""


def test_nip07_extension_signs_when_present(hub, browser, shots):
    """With a NIP-07 extension (window.nostr), the app speaks as the extension's key."""
    alice = Keys()
    asked: list[str] = []

    def extension(msg: dict):
        asked.append(msg["op"])
        if msg["op"] == "pubkey":
            return alice.pubkey
        ev = msg["event"]
        return alice.sign(ev["kind"], ev["content"], ev["tags"], ev["created_at"]).to_dict()

    ctx = browser.new_context(**PHONE)
    ctx.expose_function("__nip07", extension)
    ctx.add_init_script(NIP07)
    page = ctx.new_page()
    page.goto(f"http://hub.lan:{hub.port}/")
    page.wait_for_selector(f"[data-testid=key-npub]:has-text('{npub(alice.pubkey)}')",
                           timeout=WAIT)
    page.fill("[data-testid=compose-text]", "Signed by my extension #nip07")
    page.click("[data-testid=compose-submit]")
    wait_status(page, "sent")
    with Client(hub.url) as c:
        got = c.query({"kinds": [1], "#t": ["nip07"]})
    assert [e["pubkey"] for e in got] == [alice.pubkey]
    assert "sign" in asked
    page.screenshot(path=shots / "nip07.png")
    ctx.close()


def test_a_refused_post_says_why(make_hub, browser):
    """The relay's OK message reaches the witness; the report stays on the phone to retry."""
    h = make_hub(**{"limits.max_content_length": 20})
    ctx = browser.new_context(**PHONE)
    page = ctx.new_page()
    page.goto(f"http://hub.lan:{h.port}/")
    page.wait_for_selector("[data-testid=hub-status][data-state=open]", timeout=WAIT)
    page.fill("[data-testid=compose-text]", "A report far longer than this hub accepts")
    page.click("[data-testid=compose-submit]")
    wait_status(page, "failed")
    assert "invalid:" in page.inner_text("[data-testid=compose-status]")
    failed = page.locator("[data-testid=outbox-item][data-state=failed]")
    failed.wait_for(timeout=WAIT)
    assert "invalid:" in failed.locator("[data-testid=outbox-state]").inner_text()
    ctx.close()


SAVED_CONTENTS = """() => new Promise((resolve, reject) => {
  const req = indexedDB.open('samizdat')
  req.onerror = () => reject(req.error)
  req.onsuccess = () => {
    const get = req.result.transaction('events').objectStore('events').getAll()
    get.onsuccess = () => resolve(get.result.map((e) => e.content))
    get.onerror = () => reject(get.error)
  }
})"""


def test_a_witness_takes_a_report_back(make_hub, browser, shots):
    """NIP-09 from the phone: the author's Delete removes the report from their screen,
    from the hub, from another phone's live feed, and from both phones' saved feeds."""
    from .helpers import Client

    h = make_hub()
    url = f"http://hub.lan:{h.port}/"
    author_ctx, reader_ctx = browser.new_context(**PHONE), browser.new_context(**PHONE)
    author, reader = author_ctx.new_page(), reader_ctx.new_page()
    for page in (author, reader):
        page.goto(url)
        page.wait_for_selector("[data-testid=hub-status][data-state=open]", timeout=WAIT)
    author.fill("[data-testid=compose-text]", "Names of the people I saw #careful")
    author.click("[data-testid=compose-submit]")
    wait_status(author, "sent")
    author.fill("[data-testid=compose-text]", "A report that stays #careful")
    author.click("[data-testid=compose-submit]")
    wait_status(author, "sent")
    item(reader, "Names of the people").wait_for(timeout=WAIT)
    item(reader, "A report that stays").wait_for(timeout=WAIT)
    assert item(reader, "Names of the people").locator("[data-testid=delete]").count() == 0

    author.once("dialog", lambda d: d.accept())
    item(author, "Names of the people").locator("[data-testid=delete]").click()
    item(author, "Names of the people").wait_for(state="detached", timeout=WAIT)
    item(reader, "Names of the people").wait_for(state="detached", timeout=WAIT)
    with Client(h.url) as c:
        texts = [e["content"] for e in c.query({"kinds": [1], "#t": ["careful"]})]
    assert texts == ["A report that stays #careful"]
    reader.screenshot(path=str(shots / "09-deleted-on-the-other-phone.png"))
    # the saved feeds forget it too: with the hub gone, reopening shows only what each
    # phone kept (the page itself comes from the browser's cache)
    reader.wait_for_timeout(800)  # the phones write their saved feeds every 300 ms
    h.stop()
    for page in (author, reader):
        page.goto(url)
        item(page, "A report that stays").wait_for(timeout=WAIT)
        page.wait_for_timeout(300)
        assert item(page, "Names of the people").count() == 0
        # and the words themselves are gone from the phone (a seized phone must not
        # keep what its owner took back), not merely hidden
        kept = page.evaluate(SAVED_CONTENTS)
        assert "A report that stays #careful" in kept
        assert not any("Names of the people" in c for c in kept), kept
    author_ctx.close()
    reader_ctx.close()
