"""The web app's files as the hub serves them, and its message catalogues (no browser).

The browser tests are in test_web_e2e.py.
"""

from __future__ import annotations

import gzip
import json
import re
import urllib.error
import urllib.request

import pytest

from samizdat.web.routes import STATIC_DIR, load_assets

from .helpers import ROOT, Client

LOCALES = ROOT / "web-src" / "src" / "locales"


def get(url: str, **headers: str):
    req = urllib.request.Request(url, headers=headers)
    try:
        with urllib.request.urlopen(req, timeout=10) as resp:
            return resp.status, resp.headers, resp.read()
    except urllib.error.HTTPError as exc:
        return exc.code, exc.headers, exc.read()


def test_root_serves_the_app_and_still_the_relay(hub):
    status, headers, body = get(hub.http + "/", **{"Accept-Encoding": "gzip"})
    assert status == 200
    assert headers["Content-Type"] == "text/html; charset=utf-8"
    assert headers["Content-Encoding"] == "gzip" and "Accept-Encoding" in headers["Vary"]
    page = gzip.decompress(body).decode()
    for testid in ("compose-text", "compose-media", "compose-place", "compose-submit",
                   "key-npub"):
        assert f'data-testid="{testid}"' in page
    assert f"<title>{hub.cfg.relay.name}</title>" in page
    assert "default-src 'self'" in headers["Content-Security-Policy"]
    assert "max-age" in headers["Cache-Control"]
    # NIP-11 and the WebSocket are still on /
    _, h11, doc = get(hub.http + "/", Accept="application/nostr+json")
    assert h11["Content-Type"].startswith("application/nostr+json")
    assert json.loads(doc)["pubkey"] == hub.relay.pubkey
    with Client(hub.url) as c:
        assert c.count({"kinds": [1]}) == 0
    # the status page moved to /status
    assert b"Events stored" in get(hub.http + "/status")[2]


def test_assets_are_compressed_cached_and_revalidated(hub):
    _, _, body = get(hub.http + "/")
    page = body.decode()
    refs = re.findall(r'(?:src|href)="(/[^"]+)"', page)
    assets = [r for r in refs if r.startswith("/assets/")]
    assert len(assets) == 2  # one script, one stylesheet
    for ref in refs:
        status, headers, _ = get(hub.http + ref, **{"Accept-Encoding": "gzip"})
        assert status == 200, ref
        if ref.startswith("/assets/"):
            assert headers["Cache-Control"] == "public, max-age=31536000, immutable"
            assert headers["Content-Encoding"] == "gzip"
    # the page revalidates cheaply
    _, headers, _ = get(hub.http + "/")
    status, _, body = get(hub.http + "/", **{"If-None-Match": headers["ETag"]})
    assert status == 304 and body == b""
    # the service worker and the build id are never cached for long
    assert get(hub.http + "/sw.js")[1]["Cache-Control"] == "no-cache"
    status, headers, body = get(hub.http + "/build.json")
    assert headers["Cache-Control"] == "no-store"
    assert json.loads(body)["build"] in page
    assert get(hub.http + "/manifest.webmanifest")[1]["Content-Type"] == \
        "application/manifest+json"
    assert get(hub.http + "/assets/nothing.js")[0] == 404


def test_first_load_fits_the_budget():
    """Everything the page loads at first, gzip-compressed, stays under 150 KB."""
    assets = load_assets(STATIC_DIR)
    page = assets["/"].body.decode()
    first = ["/", *re.findall(r'(?:src|href)="(/[^"]+)"', page)]
    total = sum(len(assets[p].gz or assets[p].body) for p in first)
    assert total < 150_000, total


def catalogue(lang: str) -> dict[str, str]:
    text = (LOCALES / f"{lang}.js").read_text(encoding="utf-8")
    pairs = re.findall(r"^  '([\w.]+)': '((?:[^'\\]|\\.)*)',$", text, re.M)
    assert len(pairs) == len(re.findall(r"^  '", text, re.M)), f"{lang}.js: unparsed lines"
    return dict(pairs)


@pytest.mark.parametrize("lang", ["ru", "kk"])
def test_catalogues_have_every_message(lang):
    en, other = catalogue("en"), catalogue(lang)
    assert set(other) == set(en), (set(en) - set(other), set(other) - set(en))
    for key, text in en.items():
        assert set(re.findall(r"\{\w+\}", other[key])) == set(re.findall(r"\{\w+\}", text)), key


def test_every_message_the_app_uses_is_in_the_catalogue():
    en = catalogue("en")
    src = ROOT / "web-src"
    used = set()
    for path in [*sorted((src / "src").glob("*.js")), src / "index.html"]:
        if path.name == "i18n.js":  # defines t(); its comments show examples
            continue
        text = path.read_text(encoding="utf-8")
        used |= set(re.findall(r"\bt\('([\w.]+)'", text))
        used |= set(re.findall(r'data-i18n(?:-[\w-]+)?="([\w.]+)"', text))
    assert len(used) > 50, "messages not found: did the app's code change shape?"
    # keys the app builds from a value: t(`precision.${n}`), t(`label.${value}`), ...
    used |= {f"precision.{n}" for n in range(2, 8)}
    used |= {f"label.{v}{h}" for v in ("corroborate", "dispute") for h in ("", ".help")}
    used |= {f"outbox.{s}" for s in ("queued", "sending", "uploading", "sent", "failed")}
    used |= {f"hub.{s}" for s in ("open", "connecting", "closed")}
    assert used - set(en) == set()
