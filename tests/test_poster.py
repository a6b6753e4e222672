"""Getting people on: the QR codes, the status page's connect block and /poster.

No QR decoder is installed, so the codes are checked module by module: the SVG's path
(and the terminal's half blocks) are read back into a matrix and compared with the
matrix segno makes for the expected text. That proves the page carries exactly the
code of that text; segno's own encoder is trusted to be a correct QR encoder.
"""

from __future__ import annotations

import re
import shutil
import urllib.request

import pytest
import segno

from samizdat import qr
from samizdat.relay.poster import LANGUAGES

KK_STEPS = ["Wi-Fi желісіне қосылыңыз", "Кодты телефон камерасымен сканерлеңіз",
            "орналасқан жер туралы деректер өшіріледі"]
RU_STEPS = ["Подключитесь к сети Wi-Fi", "Отсканируйте код камерой телефона",
            "Из ваших фотографий удаляются данные о местоположении"]
EN_STEPS = ["Join the Wi-Fi network", "Scan the code with your phone's camera",
            "Your photos lose their location data unless you choose otherwise"]


def get(url: str) -> str:
    with urllib.request.urlopen(url, timeout=10) as resp:
        assert resp.headers["Content-Type"].startswith("text/html")
        return resp.read().decode()


def expected_matrix(text: str) -> list[list[bool]]:
    return [[bool(v) for v in row] for row in segno.make(text, error="m", micro=False).matrix]


def svg_matrices(page: str) -> list[list[list[bool]]]:
    """Every QR code drawn as a segno SVG path in ``page``, as a matrix of dark modules."""
    found = []
    for d in re.findall(r'<path stroke="#000" d="([^"]+)"', page):
        x = y = 0.0
        dark: set[tuple[int, int]] = set()
        for cmd, args in re.findall(r"([MmHh])([-\d. ]+)", d):
            nums = [float(n) for n in args.split()]
            if cmd == "M":
                x, y = nums
            elif cmd == "m":
                x, y = x + nums[0], y + nums[1]
            else:
                end = nums[0] if cmd == "H" else x + nums[0]
                dark.update((int(c), int(y)) for c in range(int(x), int(end)))
                x = end
        size = max(max(c for c, _ in dark), max(r for _, r in dark)) - 4 + 1
        found.append([[(c + 4, r + 4) in dark for c in range(size)] for r in range(size)])
    return found


def terminal_matrix(block: str, border: int = 2) -> list[list[bool]]:
    """The matrix from segno's compact terminal output (light modules are blocks)."""
    halves = {" ": (True, True), "\u2580": (False, True), "\u2584": (True, False),
              "\u2588": (False, False)}
    rows: list[list[bool]] = []
    for line in block.splitlines():
        pairs = [halves[ch] for ch in line]
        rows.append([p[0] for p in pairs])
        rows.append([p[1] for p in pairs])
    size = len(rows[0]) - 2 * border
    return [row[border:border + size] for row in rows[border:border + size]]


def test_qr_helpers_encode_exactly_the_text():
    url = "http://192.168.4.1:7447/"
    assert svg_matrices(qr.svg(url)) == [expected_matrix(url)]
    assert terminal_matrix(qr.terminal(url)) == expected_matrix(url)
    assert qr.width(url) == len(qr.terminal(url).splitlines()[0]) <= 40
    assert svg_matrices(qr.svg("http://other:1/")) != [expected_matrix(url)]


@pytest.mark.parametrize("ssid,password,payload", [
    ("Samal-2", "", "WIFI:T:nopass;S:Samal-2;;"),
    ("Cafe;Free", "p@ss:w,\"rd\\", 'WIFI:T:WPA;S:Cafe\\;Free;P:p@ss\\:w\\,\\"rd\\\\;;'),
])
def test_wifi_payload(ssid, password, payload):
    assert qr.wifi_payload(ssid, password) == payload


def test_poster_has_qr_url_wifi_name_and_three_languages(make_hub):
    h = make_hub(**{"server.wifi_name": "Samal <2>", "relay.name": "Samal-2 hub"})
    page = get(f"{h.http}/poster")
    web = h.relay.access.web_url
    assert web == f"http://127.0.0.1:{h.port}/"
    assert f">{web}</a>" in page
    assert "Samal-2 hub" in page
    assert "Samal &lt;2&gt;" in page and "Samal <2>" not in page  # escaped
    assert "«Samal &lt;2&gt;»" in page and "“Samal &lt;2&gt;”" in page
    for code, steps in (("kk", KK_STEPS), ("ru", RU_STEPS), ("en", EN_STEPS)):
        section = re.search(rf'<section lang="{code}".*?</section>', page, re.S)
        assert section, code
        assert section.group(0).count("<li>") == 3
        for step in steps:
            assert step in section.group(0).replace("&#x27;", "'"), (code, step)
    assert [lang.code for lang in LANGUAGES] == ["kk", "ru", "en"]
    # the big code is the web app's URL; no password and no joining code unless configured
    assert svg_matrices(page) == [expected_matrix(web)]
    assert "wifi-password" not in page and "WIFI:" not in page
    # the secure address and the certificate fingerprint in small print
    assert h.relay.access.fingerprint in page
    assert f"https://127.0.0.1:{h.relay.access.https_port}/" in page
    assert "@page{size:A4" in page


def test_poster_with_password_and_public_url(make_hub):
    h = make_hub(**{"server.wifi_name": "Samal-2", "server.wifi_password": "open sesame",
                    "server.public_url": "http://hub.lan:7447/"})
    page = get(f"{h.http}/poster")
    assert 'data-testid="wifi-password">open sesame<' in page
    assert svg_matrices(page) == [expected_matrix(qr.wifi_payload("Samal-2", "open sesame")),
                                  expected_matrix("http://hub.lan:7447/")]
    assert ">http://hub.lan:7447/</a>" in page
    # the status page never shows the password
    assert "open sesame" not in get(f"{h.http}/status")


def test_poster_without_wifi_name(hub):
    page = get(f"{hub.http}/poster")
    assert "Осы жердегі Wi-Fi желісіне қосылыңыз." in page
    assert "Подключитесь к местной сети Wi-Fi." in page
    assert "Join the Wi-Fi network here." in page
    assert 'class="wifi"' not in page


def test_status_page_shows_qr_addresses_and_fingerprint(hub):
    page = get(f"{hub.http}/status")
    access = hub.relay.access
    assert svg_matrices(page) == [expected_matrix(access.web_url)]
    assert access.fingerprint in page
    assert 'href="/poster"' in page
    assert "Only this computer can connect" in page  # the test hub listens on 127.0.0.1
    for a in access.addresses:
        assert str(a.ip) in page
    assert f"ws://127.0.0.1:{hub.port}" in page


def chromium_path() -> str | None:
    return shutil.which("chromium") or shutil.which("chromium-browser")


def test_poster_prints_on_one_a4_page(make_hub, tmp_path):
    """The poster, with every optional part, printed by a real browser: one A4 page."""
    sync_api = pytest.importorskip("playwright.sync_api")
    exe = chromium_path()
    if exe is None:
        pytest.skip("chromium is not installed")
    h = make_hub(**{"server.wifi_name": "A rather long network name for a poster",
                    "server.wifi_password": "correct horse battery staple",
                    "relay.name": "Samal-2 district news hub"})
    with sync_api.sync_playwright() as p:
        browser = p.chromium.launch(executable_path=exe, args=["--no-sandbox"])
        try:
            page = browser.new_page()
            page.goto(f"{h.http}/poster")
            pdf = page.pdf(format="A4", print_background=True)
            page.set_viewport_size({"width": 794, "height": 1123})
            page.screenshot(path=str(tmp_path / "poster.png"), full_page=True)
        finally:
            browser.close()
    pages = re.findall(rb"/Type\s*/Page(?!s)", pdf)
    assert len(pages) == 1, f"the poster prints on {len(pages)} pages"
