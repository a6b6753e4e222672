"""Media travels with the news: reports' photos go into bundles and come out on the
other hub's Blossom store, checked against their sha256, owned by their authors."""

from __future__ import annotations

import hashlib
import io
import json
import subprocess
import sys
import time
import urllib.error
import urllib.request

import pytest
from hypothesis import given
from hypothesis import strategies as st
from PIL import Image

from samizdat.blobs.auth import encode_header
from samizdat.bundle.media import media_of, media_of_json

from .helpers import Client, HubProcess, Keys


def jpeg(seed: int, size: int = 256) -> bytes:
    img = Image.effect_noise((size, size), 40 + seed).convert("RGB")
    buf = io.BytesIO()
    img.save(buf, "JPEG", quality=95)
    return buf.getvalue()


def http(hub: HubProcess, method: str, path: str, body: bytes | None = None,
         headers: dict[str, str] | None = None) -> tuple[int, bytes]:
    req = urllib.request.Request(f"http://127.0.0.1:{hub.port}{path}", data=body,
                                 method=method, headers=headers or {})
    try:
        with urllib.request.urlopen(req, timeout=10) as r:
            return r.status, r.read()
    except urllib.error.HTTPError as exc:
        return exc.code, exc.read()


def upload(hub: HubProcess, keys: Keys, data: bytes, mime: str) -> str:
    digest = hashlib.sha256(data).hexdigest()
    token = keys.sign(24242, "upload", [["t", "upload"], ["x", digest],
                                        ["expiration", str(int(time.time()) + 600)]])
    status, _ = http(hub, "PUT", "/upload", data, {"Authorization": encode_header(token),
                                                   "Content-Type": mime})
    assert status in (200, 201)  # 201: new blob (BUD-02)
    return digest


def report(keys: Keys, text: str, media: list[tuple[str, str]]):
    tags = [["imeta", f"url http://hub.lan/{sha}.jpg", f"m {mime}", f"x {sha}"]
            for sha, mime in media]
    return keys.sign(1, text, tags)


def samizdat(*args: str) -> dict:
    out = subprocess.run([sys.executable, "-m", "samizdat.cli", *args, "--json"],
                         capture_output=True, text=True, timeout=60)
    assert out.returncode == 0, out.stderr
    return json.loads(out.stdout)


@pytest.fixture
def hub_a(tmp_path):
    hub = HubProcess(tmp_path / "a")
    yield hub
    hub.terminate()


def test_photos_travel_in_the_bundle_and_are_served_by_the_other_hub(tmp_path, hub_a):
    alice, bob = Keys(), Keys()
    photos = [jpeg(i) for i in range(3)]
    shas = [upload(hub_a, alice if i < 2 else bob, p, "image/jpeg")
            for i, p in enumerate(photos)]
    upload(hub_a, alice, jpeg(9), "image/jpeg")  # stored, but no event names it
    with Client(hub_a.url) as c:
        assert c.publish(report(alice, "smoke over the square", [(shas[0], "image/jpeg"),
                                                                  (shas[1], "image/jpeg")]))[0]
        assert c.publish(report(bob, "I saw it too", [(shas[2], "image/jpeg"),
                                                      ("ab" * 32, "image/jpeg")]))[0]
        assert c.publish(alice.sign(1, "no photo here"))[0]
    out = tmp_path / "stick" / "news.szb"
    out.parent.mkdir()
    ex = samizdat("export", str(out), "--data", str(tmp_path / "a"), "--max-part-size", "80K")
    assert ex["events"] == 3 and ex["blobs"] == 3 and ex["blobs_missing"] == 1
    assert len(ex["files"]) >= 2  # the photos cross part boundaries

    hub_b = HubProcess(tmp_path / "b")
    try:
        assert http(hub_b, "GET", f"/{shas[0]}")[0] == 404
        im = samizdat("import", *ex["files"], "--data", str(tmp_path / "b"))
        assert im["imported"] == 3 and im["blobs_verified"] == 3 and im["blobs_stored"] == 3
        for sha, photo in zip(shas, photos, strict=True):
            status, body = http(hub_b, "GET", f"/{sha}.jpg")
            assert status == 200 and body == photo
        status, listing = http(hub_b, "GET", f"/list/{alice.pubkey}")
        assert status == 200
        assert sorted(b["sha256"] for b in json.loads(listing)) == sorted(shas[:2])
        # again: nothing new, nothing lost
        again = samizdat("import", *ex["files"], "--data", str(tmp_path / "b"))
        assert again["imported"] == 0 and again["already_present"] == 3
        assert again["blobs_stored"] == 0 and again["blobs_present"] == 3
    finally:
        hub_b.terminate()


def test_no_blobs_and_refused_types(tmp_path, hub_a):
    alice = Keys()
    pdf = b"%PDF-1.4\n" + bytes(range(256)) * 40
    sha_pdf = upload(hub_a, alice, pdf, "application/pdf")
    with Client(hub_a.url) as c:
        assert c.publish(report(alice, "the leaflet", [(sha_pdf, "application/pdf")]))[0]
    plain = samizdat("export", str(tmp_path / "plain.szb"), "--data", str(tmp_path / "a"),
                     "--no-blobs")
    assert plain["blobs"] == 0
    full = samizdat("export", str(tmp_path / "full.szb"), "--data", str(tmp_path / "a"))
    assert full["blobs"] == 1
    # hub B accepts only images: the event comes, the PDF is verified but not kept
    (tmp_path / "b").mkdir()
    (tmp_path / "b" / "samizdat.toml").write_text('[blobs]\nallowed_types = ["image/*"]\n')
    conf = tmp_path / "b" / "samizdat.toml"
    out = subprocess.run([sys.executable, "-m", "samizdat.cli", "import", str(tmp_path /
                          "full.szb"), "--data", str(tmp_path / "b"), "--config", str(conf),
                          "--json"], capture_output=True, text=True, timeout=60)
    assert out.returncode == 0, out.stderr
    im = json.loads(out.stdout)
    assert im["imported"] == 1 and im["blobs_verified"] == 1 and im["blobs_stored"] == 0
    assert any("application/pdf is not in blobs.allowed_types" in s for s in im["skipped"])
    assert not list((tmp_path / "b" / "blobs").glob("??/??/*"))

_tag = st.lists(st.text(max_size=80), max_size=6)


@given(st.integers(min_value=0, max_value=65535), st.lists(_tag, max_size=12))
def test_media_claims_never_raise_and_name_only_sha256s(kind, tags):
    """Tags come from strangers: whatever they hold, the parser only ever returns
    well-formed sha256 names (never a path) and never raises."""
    for sha, mime in media_of(kind, tags):
        assert len(sha) == 64 and all(c in "0123456789abcdef" for c in sha)
        assert isinstance(mime, str)


def test_media_of_reads_imeta_and_file_metadata():
    sha = "ab" * 32
    assert media_of(1, [["imeta", "url http://x/a.jpg", f"x {sha}", "m image/jpeg"]]) == [
        (sha, "image/jpeg")]
    assert media_of(1, [["imeta", "x ../../etc/passwd"], ["imeta"], ["imeta", "xx"]]) == []
    assert media_of(1063, [["x", sha], ["m", "video/mp4"]]) == [(sha, "video/mp4")]
    assert media_of(1, [["x", sha]]) == []  # a bare x tag means nothing on a note
    assert media_of_json(b'{"kind":1,"tags":[],"content":"no media"}') == []
