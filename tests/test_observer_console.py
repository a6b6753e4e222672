"""The observer console (observer/web.py) in headless Chromium: the report page, a cluster,
the timeline and the map render at phone and desktop widths (screenshots in
test-output/observer/), nothing is requested from another host, and the pages escape what
events say."""

from __future__ import annotations

import asyncio
import json
import re
import threading
import urllib.error
import urllib.request
from pathlib import Path

import pytest

from samizdat.observer import web
from samizdat.observer.service import Observer
from tests.observer_fixture import build

OUT = Path(__file__).resolve().parents[1] / "test-output" / "observer"
CHROMIUM = "/usr/bin/chromium"
VIEWPORTS = {"phone": {"width": 390, "height": 844}, "desktop": {"width": 1280, "height": 900}}


class Server:
    def __init__(self, obs: Observer):
        self.obs = obs
        self.loop = asyncio.new_event_loop()
        self.port = 0
        self._started = threading.Event()
        self.thread = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        asyncio.set_event_loop(self.loop)
        self.runner = web.web.AppRunner(web.make_app(self.obs), access_log=None)
        self.loop.run_until_complete(self.runner.setup())
        site = web.web.TCPSite(self.runner, "127.0.0.1", 0)
        self.loop.run_until_complete(site.start())
        self.port = site._server.sockets[0].getsockname()[1]
        self._started.set()
        self.loop.run_forever()

    def start(self) -> Server:
        self.thread.start()
        assert self._started.wait(10)
        return self

    def stop(self) -> None:
        asyncio.run_coroutine_threadsafe(self.runner.cleanup(), self.loop).result(10)
        self.loop.call_soon_threadsafe(self.loop.stop)
        self.thread.join(10)

    @property
    def base(self) -> str:
        return f"http://127.0.0.1:{self.port}"


@pytest.fixture(scope="module")
def console(tmp_path_factory):
    arc = build(tmp_path_factory.mktemp("observer") / "data")
    obs = Observer(arc.data, create=False)
    srv = Server(obs).start()
    yield arc, srv
    srv.stop()
    obs.close()


def _get(url: str) -> tuple[int, dict[str, str], bytes]:
    try:
        with urllib.request.urlopen(url, timeout=10) as r:
            return r.status, dict(r.headers), r.read()
    except urllib.error.HTTPError as exc:
        return exc.code, dict(exc.headers), exc.read()


def test_pages_headers_and_escaping(console):
    arc, srv = console
    r1, r2 = arc.reports["r1"], arc.reports["r2"]
    for path in ("/", f"/report/{r1.id}", f"/cluster/{arc.cluster_id}", "/timeline", "/map",
                 "/clusters"):
        status, headers, body = _get(srv.base + path)
        assert status == 200, path
        csp = headers["Content-Security-Policy"]
        assert "default-src 'none'" in csp and "img-src 'self'" in csp
        assert headers["X-Content-Type-Options"] == "nosniff"
        # every link and image stays on this host (relative paths only)
        assert not re.search(rb'(?:src|href|action)="(?![/#])', body), path
    _, _, body = _get(f"{srv.base}/report/{r2.id}")
    page = body.decode()
    assert "<script>" not in page and "&lt;script&gt;alert(1)&lt;/script&gt;" in page
    status, _, body = _get(f"{srv.base}/api/check/{r1.id}")
    doc = json.loads(body)
    assert status == 200 and doc["id"] == r1.id and doc["signature_valid"] is True
    assert doc["corroborations"] == 3
    assert _get(f"{srv.base}/api/check/{'0' * 64}")[0] == 404
    assert _get(f"{srv.base}/report/nothex")[0] == 404
    sha = next(iter(arc.media))
    status, headers, body = _get(f"{srv.base}/media/{sha}")
    assert status == 200 and headers["Content-Type"] == "image/png"
    assert body == arc.media[sha]
    assert _get(f"{srv.base}/media/{'1' * 64}")[0] == 404


def test_export_from_the_console(console):
    from samizdat.observer.evidence import verify_package

    arc, srv = console
    status, headers, body = _get(f"{srv.base}/export/{arc.reports['r1'].id}.zip")
    assert status == 200 and headers["Content-Type"] == "application/zip"
    path = OUT / "console-export.zip"
    OUT.mkdir(parents=True, exist_ok=True)
    path.write_bytes(body)
    result = verify_package(path)
    assert result.ok, result.problems


def test_pages_in_chromium(console):
    sync_api = pytest.importorskip("playwright.sync_api")
    if not Path(CHROMIUM).exists():
        pytest.skip("no Debian chromium at /usr/bin/chromium")
    arc, srv = console
    OUT.mkdir(parents=True, exist_ok=True)
    host = f"127.0.0.1:{srv.port}"
    foreign: list[str] = []
    pages = {
        "report": f"/report/{arc.reports['r1'].id}",
        "report-flagged": f"/report/{arc.reports['r4'].id}",
        "cluster": f"/cluster/{arc.cluster_id}",
        "timeline": "/timeline",
        "map": "/map",
        "index": "/",
    }

    def guard(route) -> None:  # one argument: Playwright passes (route, request) to two
        url = route.request.url
        if url.startswith(f"http://{host}/"):
            route.continue_()
        else:
            foreign.append(url)
            route.abort()

    with sync_api.sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, args=["--no-sandbox"])
        try:
            for vp_name, vp in VIEWPORTS.items():
                ctx = browser.new_context(viewport=vp, java_script_enabled=False)

                ctx.route("**/*", guard)
                page = ctx.new_page()
                for name, path in pages.items():
                    resp = page.goto(srv.base + path)
                    assert resp is not None and resp.status == 200, (name, vp_name)
                    page.screenshot(path=str(OUT / f"{name}-{vp_name}.png"), full_page=True)
                    if name == "report":
                        assert page.locator("h2", has_text="Signature").count() == 1
                        assert "Республика алаңы" in page.inner_text(".text")
                        imgs = page.locator(".media img")
                        assert imgs.count() == 1
                    if name == "report-flagged":
                        assert "claimed time contradicts" in page.inner_text(".flag.warning")
                    if name in ("timeline", "map"):
                        assert page.locator("svg").count() >= 1
                    if name == "map":
                        assert page.locator("svg path.land").count() >= 1
                        assert page.locator("svg rect.cell").count() >= 1
                    if name == "cluster":
                        assert "independent key" in page.inner_text("main")
                # the page's thumbnail really decodes (with JS on, in a fresh context)
                ctx.close()
            ctx = browser.new_context(viewport=VIEWPORTS["desktop"])
            ctx.route("**/*", guard)
            page = ctx.new_page()
            page.goto(srv.base + pages["report"])
            page.wait_for_function("() => { const i = [...document.querySelectorAll("
                                   "'.media img')]; return i.length > 0 && i.every("
                                   "x => x.complete && x.naturalWidth > 0); }", timeout=10_000)
            ctx.close()
        finally:
            browser.close()
    assert foreign == [], f"requests left the observer's host: {foreign}"
    for name in pages:
        for vp_name in VIEWPORTS:
            assert (OUT / f"{name}-{vp_name}.png").stat().st_size > 5000


def test_demo_scenario_pages(tmp_path):
    """The demo blackout (observer/scenario.py): the planted cases' pages render with their
    flag, and their evidence packages verify."""
    scenario = pytest.importorskip("samizdat.observer.scenario")
    sync_api = pytest.importorskip("playwright.sync_api")
    if not Path(CHROMIUM).exists():
        pytest.skip("no Debian chromium at /usr/bin/chromium")
    from samizdat.observer.evidence import export, verify_package

    res = scenario.run_demo(tmp_path / "demo", 1, tmp_path / "obs", as_json=True)
    obs = Observer(tmp_path / "obs", create=False)
    srv = Server(obs).start()
    OUT.mkdir(parents=True, exist_ok=True)
    try:
        with sync_api.sync_playwright() as p:
            browser = p.chromium.launch(executable_path=CHROMIUM, args=["--no-sandbox"])
            page = browser.new_page(viewport=VIEWPORTS["desktop"])
            for case in res["key"]["planted"]:
                page.goto(f"{srv.base}/report/{case['report']}")
                assert case["flag"] in {c for c in page.eval_on_selector_all(
                    ".flag", "els => els.map(e => e.dataset.code)")}, case
                slug = case["case"].replace(" ", "-")
                page.screenshot(path=str(OUT / f"demo-{slug}.png"), full_page=True)
            for name in ("map", "timeline", ""):
                page.goto(f"{srv.base}/{name}")
                page.screenshot(path=str(OUT / f"demo-{name or 'index'}.png"), full_page=True)
            browser.close()
        recycled = next(c for c in res["key"]["planted"] if c["flag"] == "recycled-media")
        out = export(obs, recycled["report"], tmp_path / "recycled.zip")
        assert verify_package(out["path"]).ok
    finally:
        srv.stop()
        obs.close()
