"""The Blossom media store on a real hub: real signed kind-24242 tokens, real files, real
sockets on 127.0.0.1.

The client side is the standard library (``http.client``, raw sockets, ``http.server``
as the origin for mirroring): independent of the hub's aiohttp.
"""

from __future__ import annotations

import base64
import hashlib
import http.client
import http.server
import json
import os
import socket
import subprocess
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from types import SimpleNamespace

import pytest

from samizdat.blobs.auth import encode_header
from samizdat.config import ConfigError, load_config

from .helpers import HubHandle, HubProcess, Keys, start_hub

# --- helpers ---------------------------------------------------------------------------------


@dataclass
class Resp:
    status: int
    headers: http.client.HTTPMessage
    body: bytes

    @property
    def json(self):
        return json.loads(self.body)

    @property
    def reason(self) -> str | None:
        return self.headers.get("X-Reason")


def call(hub: HubHandle, method: str, path: str, body: bytes | None = None,
         headers: dict[str, str] | None = None, chunked: bool = False) -> Resp:
    conn = http.client.HTTPConnection("127.0.0.1", hub.port, timeout=10)
    try:
        if chunked:
            conn.request(method, path, body=iter([body[i:i + 65536]
                                                  for i in range(0, len(body or b""), 65536)]),
                         headers=headers or {}, encode_chunked=True)
        else:
            conn.request(method, path, body=body, headers=headers or {})
        r = conn.getresponse()
        return Resp(r.status, r.headers, r.read())
    finally:
        conn.close()


def sha(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def auth(keys: Keys, verb: str, *hashes: str, expires_in: int = 600, kind: int = 24242,
         created_at: int | None = None, extra: list[list[str]] | None = None) -> str:
    tags = [["t", verb], ["expiration", str(int(time.time()) + expires_in)]]
    tags += [["x", h] for h in hashes] + (extra or [])
    return encode_header(keys.sign(kind, f"{verb} blob", tags, created_at=created_at))


def upload(hub: HubHandle, keys: Keys, data: bytes, mime: str = "image/jpeg",
           declare: bool = True, **kw) -> Resp:
    headers = {"Authorization": auth(keys, "upload", sha(data)), "Content-Type": mime}
    if declare:
        headers["X-SHA-256"] = sha(data)
    return call(hub, "PUT", "/upload", data, headers, **kw)


def raw(hub: HubHandle, request: bytes, read_timeout: float = 5) -> bytes:
    """Send bytes as they are (no client normalises the path) and read the answer."""
    with socket.create_connection(("127.0.0.1", hub.port), timeout=read_timeout) as s:
        s.sendall(request)  # with "Connection: close": the hub closes after answering
        out = b""
        while chunk := s.recv(65536):
            out += chunk
    return out


def status_of(answer: bytes) -> int:
    return int(answer.split(b" ", 2)[1])


def blob_file(hub: HubHandle, digest: str) -> Path:
    return hub.cfg.data_dir / "blobs" / digest[:2] / digest[2:4] / digest


def temp_files(hub: HubHandle) -> list[Path]:
    return list((hub.cfg.data_dir / "blobs" / "tmp").iterdir())


def wait_for(pred, timeout: float = 5) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if pred():
            return True
        time.sleep(0.02)
    return pred()


def nothing_stored(hub: HubHandle, digest: str, keys: Keys) -> None:
    assert call(hub, "HEAD", f"/{digest}").status == 404
    assert call(hub, "GET", f"/list/{keys.pubkey}").json == []
    assert not blob_file(hub, digest).exists()
    assert wait_for(lambda: temp_files(hub) == []), temp_files(hub)


JPEG = b"\xff\xd8\xff\xe0" + os.urandom(300_000)


@pytest.fixture(scope="module")
def shared_hub(tmp_path_factory) -> Iterator[HubHandle]:
    """One hub for the many refusal cases (each leaves nothing stored)."""
    handle = start_hub(tmp_path_factory.mktemp("shared") / "hub")
    yield handle
    handle.stop()


@pytest.fixture
def small_hub(make_hub) -> HubHandle:
    """A hub whose blob limit is 64 KiB, to test limits without big bodies."""
    return make_hub("small", **{"blobs.max_size": 65536, "blobs.mirror_max_size": 65536})


# --- upload, get, head, range, list, delete ------------------------------------------------------

def test_round_trip(hub, alice):
    digest = sha(JPEG)
    t0 = int(time.time())
    r = upload(hub, alice, JPEG)
    assert r.status == 201, r.reason
    d = r.json
    assert d == {"url": f"http://127.0.0.1:{hub.port}/{digest}.jpg", "sha256": digest,
                 "size": len(JPEG), "type": "image/jpeg", "uploaded": d["uploaded"]}
    assert t0 <= d["uploaded"] <= time.time() + 1
    assert r.headers["Access-Control-Allow-Origin"] == "*"
    # the same bytes again: 200 and the same descriptor
    again = upload(hub, alice, JPEG)
    assert again.status == 200 and again.json == d

    for path in (f"/{digest}", f"/{digest}.jpg", f"/{digest}.png", f"/{digest}.PDF"):
        g = call(hub, "GET", path)
        assert g.status == 200 and g.body == JPEG
        assert g.headers["Content-Type"] == "image/jpeg"
        assert g.headers["Content-Length"] == str(len(JPEG))
        assert g.headers["ETag"] == f'"{digest}"'
        assert g.headers["Cache-Control"] == "public, max-age=31536000, immutable"
        assert g.headers["Accept-Ranges"] == "bytes"
        assert g.headers["Access-Control-Allow-Origin"] == "*"
        assert g.headers["X-Content-Type-Options"] == "nosniff"
        assert g.headers["Content-Security-Policy"] == "sandbox"
    h = call(hub, "HEAD", f"/{digest}.jpg")
    assert h.status == 200 and h.body == b""
    assert h.headers["Content-Length"] == str(len(JPEG))
    assert h.headers["Content-Type"] == "image/jpeg"

    # ranges
    r = call(hub, "GET", f"/{digest}", headers={"Range": "bytes=100-199"})
    assert r.status == 206 and r.body == JPEG[100:200]
    assert r.headers["Content-Range"] == f"bytes 100-199/{len(JPEG)}"
    r = call(hub, "GET", f"/{digest}", headers={"Range": "bytes=-10"})
    assert r.status == 206 and r.body == JPEG[-10:]
    r = call(hub, "GET", f"/{digest}", headers={"Range": f"bytes={len(JPEG) - 5}-"})
    assert r.status == 206 and r.body == JPEG[-5:]
    r = call(hub, "GET", f"/{digest}", headers={"Range": f"bytes={len(JPEG)}-"})
    assert r.status == 416 and r.headers["Content-Range"] == f"bytes */{len(JPEG)}"
    r = call(hub, "GET", f"/{digest}", headers={"Range": "bytes=0-1,5-6"})
    assert r.status == 200 and r.body == JPEG
    r = call(hub, "GET", f"/{digest}", headers={"Range": "bytes=0-3", "If-Range": '"other"'})
    assert r.status == 200 and r.body == JPEG
    r = call(hub, "GET", f"/{digest}", headers={"Range": "bytes=0-3", "If-Range": f'"{digest}"'})
    assert r.status == 206 and r.body == JPEG[:4]
    # conditional
    r = call(hub, "GET", f"/{digest}", headers={"If-None-Match": f'"{digest}"'})
    assert r.status == 304 and r.body == b""

    # list
    listed = call(hub, "GET", f"/list/{alice.pubkey}")
    assert listed.status == 200 and listed.json == [d]
    assert call(hub, "GET", f"/list/{alice.pubkey}?since={d['uploaded'] + 1}").json == []
    assert call(hub, "GET", f"/list/{alice.pubkey}?until={d['uploaded'] - 1}").json == []
    assert call(hub, "GET", f"/list/{alice.pubkey}?since={d['uploaded']}"
                f"&until={d['uploaded']}").json == [d]

    # delete: the token must be for delete and name the blob
    r = call(hub, "DELETE", f"/{digest}", headers={"Authorization": auth(alice, "upload", digest)})
    assert r.status == 401 and "'delete'" in r.reason
    r = call(hub, "DELETE", f"/{digest}", headers={"Authorization": auth(alice, "delete", "0" * 64)})
    assert r.status == 401 and "x tags" in r.reason
    r = call(hub, "DELETE", f"/{digest}", headers={"Authorization": auth(Keys(), "delete", digest)})
    assert r.status == 404  # not an owner: nothing happens
    assert call(hub, "HEAD", f"/{digest}").status == 200
    r = call(hub, "DELETE", f"/{digest}.jpg", headers={"Authorization": auth(alice, "delete", digest)})
    assert r.status == 200, r.reason
    assert call(hub, "GET", f"/{digest}").status == 404
    assert call(hub, "GET", f"/list/{alice.pubkey}").json == []
    assert not blob_file(hub, digest).exists()
    r = call(hub, "DELETE", f"/{digest}", headers={"Authorization": auth(alice, "delete", digest)})
    assert r.status == 404


def test_a_shared_blob_stays_until_its_last_owner_deletes_it(hub, alice, bob):
    digest = sha(JPEG)
    assert upload(hub, alice, JPEG).status == 201
    assert upload(hub, bob, JPEG).status == 200
    r = call(hub, "DELETE", f"/{digest}", headers={"Authorization": auth(alice, "delete", digest)})
    assert r.status == 200
    assert call(hub, "GET", f"/{digest}").body == JPEG
    assert call(hub, "GET", f"/list/{alice.pubkey}").json == []
    assert [b["sha256"] for b in call(hub, "GET", f"/list/{bob.pubkey}").json] == [digest]
    r = call(hub, "DELETE", f"/{digest}", headers={"Authorization": auth(bob, "delete", digest)})
    assert r.status == 200
    assert call(hub, "GET", f"/{digest}").status == 404
    assert not blob_file(hub, digest).exists()


def test_concurrent_uploads_and_deletes_stay_consistent(hub):
    """Owners come and go at once: the blob exists (row and file) exactly while one remains."""
    from concurrent.futures import ThreadPoolExecutor

    data = os.urandom(400_000)
    digest = sha(data)
    keeper, churners = Keys(), [Keys() for _ in range(8)]

    def churn(k: Keys) -> None:
        for _ in range(3):
            assert upload(hub, k, data, mime="image/png", declare=False).status in (200, 201)
            r = call(hub, "DELETE", f"/{digest}", headers={"Authorization": auth(k, "delete", digest)})
            assert r.status == 200, r.reason

    with ThreadPoolExecutor(8) as pool:
        list(pool.map(churn, churners))
    assert call(hub, "HEAD", f"/{digest}").status == 404 and not blob_file(hub, digest).exists()
    with ThreadPoolExecutor(9) as pool:
        done = [pool.submit(upload, hub, keeper, data, "image/png")]
        done += [pool.submit(churn, k) for k in churners]
        for f in done:
            f.result()
    assert call(hub, "GET", f"/{digest}").body == data
    assert [b["sha256"] for b in call(hub, "GET", f"/list/{keeper.pubkey}").json] == [digest]
    assert temp_files(hub) == []


def test_upload_without_x_sha256_and_in_chunks(hub, alice):
    data = os.urandom(2_500_000)
    r = upload(hub, alice, data, mime="video/mp4", declare=False, chunked=True)
    assert r.status == 201, r.reason
    assert r.json["url"].endswith(f"/{sha(data)}.mp4")
    assert call(hub, "GET", f"/{sha(data)}").body == data
    assert temp_files(hub) == []


def test_list_pages_with_cursor_and_limit(hub, alice):
    digests = set()
    for i in range(5):
        data = b"%d" % i + JPEG[:1000]
        assert upload(hub, alice, data).status == 201
        digests.add(sha(data))
    whole = call(hub, "GET", f"/list/{alice.pubkey}").json
    assert {b["sha256"] for b in whole} == digests
    keys = [(b["uploaded"], b["sha256"]) for b in whole]
    assert keys == sorted(keys, reverse=True)  # newest first
    pages, cursor = [], None
    while True:
        q = f"?limit=2&cursor={cursor}" if cursor else "?limit=2"
        page = call(hub, "GET", f"/list/{alice.pubkey}{q}").json
        if not page:
            break
        assert len(page) <= 2
        pages += page
        cursor = page[-1]["sha256"]
    assert pages == whole
    for bad in ("?limit=x", "?since=-1", "?cursor=zz", f"?cursor={'0' * 64}"):
        r = call(hub, "GET", f"/list/{alice.pubkey}{bad}")
        assert r.status == 400 and r.reason, bad
    assert call(hub, "GET", "/list/ABC").status == 400
    assert call(hub, "GET", f"/list/{Keys().pubkey}").json == []


def test_list_can_require_the_owner_token(make_hub, alice, bob):
    hub = make_hub(**{"blobs.list_requires_auth": True})
    assert upload(hub, alice, JPEG).status == 201
    path = f"/list/{alice.pubkey}"
    assert call(hub, "GET", path).status == 401
    assert call(hub, "GET", path, headers={"Authorization": auth(bob, "list")}).status == 403
    assert call(hub, "GET", path, headers={"Authorization": auth(alice, "get")}).status == 401
    r = call(hub, "GET", path, headers={"Authorization": auth(alice, "list")})
    assert r.status == 200 and len(r.json) == 1


# --- refusals -------------------------------------------------------------------------------

def test_hash_mismatch(hub, alice):
    other = sha(b"something else")
    # X-SHA-256 (and the token) announce another blob than the body
    r = call(hub, "PUT", "/upload", JPEG, {"Authorization": auth(alice, "upload", other),
                                           "X-SHA-256": other, "Content-Type": "image/jpeg"})
    assert r.status == 409 and "hashes to" in r.reason
    nothing_stored(hub, sha(JPEG), alice)
    # no X-SHA-256; the token's x tag names another blob: found after hashing the body
    r = call(hub, "PUT", "/upload", JPEG, {"Authorization": auth(alice, "upload", other),
                                           "Content-Type": "image/jpeg"})
    assert r.status == 409 and "x tags" in r.reason
    nothing_stored(hub, sha(JPEG), alice)
    # X-SHA-256 right, the token for another blob: refused before the body is read
    r = call(hub, "PUT", "/upload", JPEG, {"Authorization": auth(alice, "upload", other),
                                           "X-SHA-256": sha(JPEG), "Content-Type": "image/jpeg"})
    assert r.status == 401 and "x tags" in r.reason
    r = call(hub, "PUT", "/upload", JPEG, {"Authorization": auth(alice, "upload", sha(JPEG)),
                                           "X-SHA-256": "xyz", "Content-Type": "image/jpeg"})
    assert r.status == 400
    nothing_stored(hub, sha(JPEG), alice)


def test_hash_mismatch_on_an_existing_blob(hub, alice, bob):
    """Claiming a stored blob needs its bytes, not just its hash."""
    digest = sha(JPEG)
    assert upload(hub, alice, JPEG).status == 201
    r = call(hub, "PUT", "/upload", b"not the photo",
             {"Authorization": auth(bob, "upload", digest), "X-SHA-256": digest,
              "Content-Type": "image/jpeg"})
    assert r.status == 409
    assert call(hub, "GET", f"/list/{bob.pubkey}").json == []
    assert temp_files(hub) == []


def test_oversize_refused_by_content_length_before_the_body(small_hub, alice):
    data = os.urandom(65537)
    head = (f"PUT /upload HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Length: {len(data)}\r\n"
            f"Content-Type: image/png\r\nAuthorization: {auth(alice, 'upload', sha(data))}\r\n"
            "\r\n").encode()
    with socket.create_connection(("127.0.0.1", small_hub.port), timeout=5) as s:
        s.sendall(head)  # no body at all: the answer must come anyway
        answer = s.recv(65536)
    assert status_of(answer) == 413 and b"X-Reason: blob is 65537 bytes" in answer
    # with Expect: 100-continue the client learns it instead of "100 Continue"
    with socket.create_connection(("127.0.0.1", small_hub.port), timeout=5) as s:
        s.sendall(head.replace(b"\r\n\r\n", b"\r\nExpect: 100-continue\r\n\r\n"))
        answer = s.recv(65536)
        assert status_of(answer) == 413
        assert b"Connection: close" in answer  # the client must not send the body now
    # a client that sends the body anyway still gets the answer
    r = call(small_hub, "PUT", "/upload", data, {"Authorization": auth(alice, "upload", sha(data)),
                                                 "Content-Type": "image/png"})
    assert r.status == 413
    nothing_stored(small_hub, sha(data), alice)
    # exactly at the limit is fine
    assert upload(small_hub, alice, data[:65536], mime="image/png").status == 201


def test_oversize_refused_while_streaming_without_content_length(small_hub, alice):
    data = os.urandom(300_000)
    r = upload(small_hub, alice, data, mime="image/png", chunked=True)
    assert r.status == 413 and "limit" in r.reason
    nothing_stored(small_hub, sha(data), alice)
    r = upload(small_hub, alice, data[:60_000], mime="image/png", chunked=True)
    assert r.status == 201


def test_expect_100_continue(hub, alice):
    data = JPEG[:50_000]
    head = (f"PUT /upload HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Length: {len(data)}\r\n"
            f"Content-Type: image/jpeg\r\nExpect: 100-continue\r\n"
            f"Authorization: {auth(alice, 'upload', sha(data))}\r\n\r\n").encode()
    with socket.create_connection(("127.0.0.1", hub.port), timeout=5) as s:
        s.sendall(head)
        assert s.recv(65536).startswith(b"HTTP/1.1 100 Continue")
        s.sendall(data)
        assert status_of(s.recv(65536)) == 201
    with socket.create_connection(("127.0.0.1", hub.port), timeout=5) as s:
        s.sendall(head.replace(b"image/jpeg", b"text/html"))
        assert status_of(s.recv(65536)) == 415


def now_tags(verb: str, digest: str, exp: int = 600) -> list[list[str]]:
    return [["t", verb], ["x", digest], ["expiration", str(int(time.time()) + exp)]]


BAD_TOKENS = {
    "wrong kind": lambda k, d: encode_header(k.sign(1, "", now_tags("upload", d))),
    "NIP-98 kind": lambda k, d: encode_header(k.sign(27235, "", now_tags("upload", d))),
    "expired": lambda k, d: encode_header(k.sign(24242, "", now_tags("upload", d, -1))),
    "no expiration": lambda k, d: encode_header(k.sign(24242, "", now_tags("upload", d)[:2])),
    "wrong verb": lambda k, d: encode_header(k.sign(24242, "", now_tags("delete", d))),
    "no verb": lambda k, d: encode_header(k.sign(24242, "", now_tags("upload", d)[1:])),
    "from the future": lambda k, d: encode_header(
        k.sign(24242, "", now_tags("upload", d), created_at=int(time.time()) + 3600)),
    "other server": lambda k, d: encode_header(
        k.sign(24242, "", [*now_tags("upload", d), ["server", "elsewhere.example"]])),
    "bad signature": lambda k, d: encode_header(
        k.sign(24242, "", now_tags("upload", d)).__class__(
            **{**k.sign(24242, "", now_tags("upload", d)).to_dict(), "sig": "ab" * 64})),
    "altered after signing": lambda k, d: encode_header(
        k.sign(24242, "", now_tags("upload", d)).__class__(
            **{**k.sign(24242, "", now_tags("upload", d)).to_dict(), "content": "changed"})),
    "no x tag": lambda k, d: encode_header(k.sign(24242, "", now_tags("upload", d)[::2])),
    "missing": lambda k, d: None,
    "wrong scheme": lambda k, d: "Bearer " + encode_header(
        k.sign(24242, "", now_tags("upload", d))).split()[1],
    "not base64": lambda k, d: "Nostr %%%%",
    "not an event": lambda k, d: "Nostr " + base64.b64encode(b'{"kind":24242}').decode(),
}


@pytest.mark.parametrize("case", sorted(BAD_TOKENS))
@pytest.mark.parametrize("declare", [True, False], ids=["x-sha-256", "no-x-sha-256"])
def test_bad_authorization_is_refused(shared_hub, alice, case, declare):
    hub = shared_hub
    data = JPEG[:10_000]
    header = BAD_TOKENS[case](alice, sha(data))
    headers = {"Content-Type": "image/jpeg"}
    if header is not None:
        headers["Authorization"] = header
    if declare:
        headers["X-SHA-256"] = sha(data)
    r = call(hub, "PUT", "/upload", data, headers)
    assert r.status == 401, (case, r.status, r.reason)
    assert r.reason and r.headers["Access-Control-Allow-Origin"] == "*"
    nothing_stored(hub, sha(data), alice)


def test_server_tags(make_hub, alice):
    hub = make_hub(**{"server.public_urls": ["ws://hub.example.org:7447"]})
    data = JPEG[:1000]

    def put_scoped(server: str, host: str | None = None) -> int:
        tok = encode_header(alice.sign(24242, "", [*now_tags("upload", sha(data)),
                                                   ["server", server]]))
        headers = {"Authorization": tok, "Content-Type": "image/jpeg"}
        if host:
            headers["Host"] = host
        return call(hub, "PUT", "/upload", data, headers).status

    # the address the client reached, localhost on loopback, a configured name
    assert put_scoped("127.0.0.1") == 201
    assert put_scoped("localhost") == 200
    assert put_scoped("HUB.example.org") == 200
    assert put_scoped("cdn.example.com") == 401
    # a token for another server does not pass by naming that server in Host
    assert put_scoped("cdn.example.com", host="cdn.example.com") == 401


def test_only_allowed_pubkeys_may_upload(make_hub, alice, bob):
    hub = make_hub(**{"auth.allowed_pubkeys": [bob.pubkey]})
    r = upload(hub, alice, JPEG)
    assert r.status == 403 and "allowed" in r.reason
    nothing_stored(hub, sha(JPEG), alice)
    assert upload(hub, bob, JPEG).status == 201
    open_hub = make_hub("open", **{"auth.allowed_pubkeys": [bob.pubkey],
                                   "blobs.restrict_to_allowed_pubkeys": False})
    assert upload(open_hub, alice, JPEG).status == 201


@pytest.mark.parametrize("mime", ["text/html", "image/svg+xml", "application/octet-stream",
                                  "application/x-sh", None])
def test_types_not_allowed_are_refused(shared_hub, alice, mime):
    hub = shared_hub
    data = b"<svg onload=alert(1)>" + JPEG[:100]
    headers = {"Authorization": auth(alice, "upload", sha(data))}
    if mime:
        headers["Content-Type"] = mime
    r = call(hub, "PUT", "/upload", data, headers)
    assert r.status == 415 and "not accepted" in r.reason
    nothing_stored(hub, sha(data), alice)


def test_an_allowed_svg_is_served_sandboxed(make_hub, alice):
    hub = make_hub(**{"blobs.allowed_types": ["image/*", "image/svg+xml"]})
    svg = b'<svg xmlns="http://www.w3.org/2000/svg"><script>alert(1)</script></svg>'
    assert upload(hub, alice, svg, mime="image/svg+xml").status == 201
    r = call(hub, "GET", f"/{sha(svg)}.svg")
    assert r.headers["Content-Type"] == "image/svg+xml"
    assert r.headers["Content-Security-Policy"] == "sandbox"
    assert r.headers["X-Content-Type-Options"] == "nosniff"


def test_upload_preflight(small_hub, alice):
    digest = sha(b"x")
    base = {"X-SHA-256": digest, "X-Content-Length": "1000", "X-Content-Type": "image/png",
            "Authorization": auth(alice, "upload", digest)}
    assert call(small_hub, "HEAD", "/upload", headers=base).status == 200
    cases = [({"X-Content-Length": "70000"}, 413), ({"X-Content-Type": "text/html"}, 415),
             ({"Authorization": auth(alice, "upload", sha(b"y"))}, 401),
             ({"Authorization": auth(alice, "delete", digest)}, 401),
             ({"X-SHA-256": "nothex"}, 400), ({"X-Content-Length": "-1"}, 400)]
    for change, status in cases:
        r = call(small_hub, "HEAD", "/upload", headers={**base, **change})
        assert r.status == status, change
        assert r.reason and r.body == b""
    without = {k: v for k, v in base.items() if k != "X-Content-Length"}
    assert call(small_hub, "HEAD", "/upload", headers=without).status == 411
    without = {k: v for k, v in base.items() if k != "Authorization"}
    assert call(small_hub, "HEAD", "/upload", headers=without).status == 401


def test_cors(hub, alice):
    for path in ("/upload", "/mirror", f"/list/{alice.pubkey}", f"/{'a' * 64}"):
        r = call(hub, "OPTIONS", path, headers={
            "Origin": "http://elsewhere", "Access-Control-Request-Method": "PUT",
            "Access-Control-Request-Headers": "authorization, x-sha-256"})
        assert r.status == 204, path
        assert r.headers["Access-Control-Allow-Origin"] == "*"
        assert "Authorization" in r.headers["Access-Control-Allow-Headers"]
        assert "X-SHA-256" in r.headers["Access-Control-Allow-Headers"]
        for m in ("GET", "HEAD", "PUT", "DELETE"):
            assert m in r.headers["Access-Control-Allow-Methods"]
    r = call(hub, "GET", f"/{'a' * 64}")
    assert r.status == 404 and r.headers["Access-Control-Allow-Origin"] == "*"
    assert "X-Reason" in r.headers["Access-Control-Expose-Headers"]


# --- names and paths ---------------------------------------------------------------------------

def tree(root: Path) -> set[str]:
    return {str(p.relative_to(root)) for p in root.rglob("*")}


def test_traversal_and_bad_names(hub, alice, tmp_path):
    digest = sha(JPEG)
    assert upload(hub, alice, JPEG).status == 201
    secret = tmp_path / "secret.txt"
    secret.write_text("outside the data dir")
    before = tree(tmp_path)
    key = auth(alice, "delete", digest)
    paths = [
        "/../secret.txt", "/%2e%2e/secret.txt", "/%2E%2E%2Fsecret.txt", "/..%2f..%2fsecret.txt",
        "/hub.key", "/blobs.sqlite3", "/events.sqlite3", "/blobs/tmp", "/blobs",
        f"/blobs/{digest[:2]}/{digest[2:4]}/{digest}", f"/{digest}/../hub.key",
        f"/{digest}/..%2f..%2fhub.key", f"/{digest}.jpg/..", f"/{digest}.jpg%2f..%2f..%2fhub.key",
        f"/{digest}%00.jpg", f"/{digest.upper()}", f"/{digest[:63]}", f"/{digest}0",
        f"/{digest}..jpg", f"/{digest}.j%2fpg", "/list/../../secret.txt",
        "/list/%2e%2e%2f%2e%2e%2fsecret.txt", f"/list/{alice.pubkey}/../..",
        "/upload/../secret.txt", "/mirror/../../hub.key",
    ]
    for path in paths:
        for method in ("GET", "DELETE", "PUT"):
            answer = raw(hub, (f"{method} {path} HTTP/1.1\r\nHost: 127.0.0.1\r\n"
                               f"Authorization: {key}\r\nContent-Length: 0\r\n"
                               "Connection: close\r\n\r\n").encode())
            status = status_of(answer)
            assert status in (400, 401, 404, 405), (method, path, answer[:200])
            assert b"outside the data dir" not in answer
            assert b"PRIVATE" not in answer and b"SQLite format" not in answer
    assert tree(tmp_path) == before
    assert call(hub, "GET", f"/{digest}").body == JPEG  # the real blob is untouched
    # the relay's own pages are still there
    assert call(hub, "GET", "/status").status == 200
    assert call(hub, "GET", "/", headers={"Accept": "application/nostr+json"}).json[
        "software"] == "samizdat"


def test_a_download_cut_short_harms_nothing(hub, alice, caplog):
    data = os.urandom(8_000_000)
    assert upload(hub, alice, data, mime="video/mp4").status == 201
    for _ in range(3):
        with socket.create_connection(("127.0.0.1", hub.port), timeout=5) as s:
            s.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
            s.sendall(f"GET /{sha(data)} HTTP/1.1\r\nHost: x\r\n\r\n".encode())
            assert s.recv(4096).startswith(b"HTTP/1.1 200")
            s.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, b"\x01\x00\x00\x00\x00\x00\x00\x00")
    assert call(hub, "GET", f"/{sha(data)}").body == data
    assert not [r for r in caplog.records if r.levelno >= 30], caplog.records


# --- interrupted uploads and leftovers ---------------------------------------------------------

@pytest.mark.parametrize("framing", ["content-length", "chunked"])
def test_interrupted_upload_leaves_nothing(hub, alice, framing):
    data = os.urandom(4_000_000)
    digest = sha(data)
    headers = (f"PUT /upload HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: image/png\r\n"
               f"X-SHA-256: {digest}\r\nAuthorization: {auth(alice, 'upload', digest)}\r\n")
    with socket.create_connection(("127.0.0.1", hub.port), timeout=5) as s:
        if framing == "chunked":
            s.sendall((headers + "Transfer-Encoding: chunked\r\n\r\n").encode())
            for i in range(0, 2_000_000, 100_000):
                s.sendall(b"%x\r\n" % 100_000 + data[i:i + 100_000] + b"\r\n")
        else:
            s.sendall((headers + f"Content-Length: {len(data)}\r\n\r\n").encode())
            s.sendall(data[:2_000_000])
        # the hub has started writing: a temporary file exists
        assert wait_for(lambda: temp_files(hub) != [])
        s.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, b"\x01\x00\x00\x00\x00\x00\x00\x00")
    # closed mid-body (RST): nothing visible, the temporary file removed
    nothing_stored(hub, digest, alice)
    # and the next upload of the same blob works
    assert upload(hub, alice, data, mime="image/png").status == 201


def test_stale_temporary_files_are_removed_at_start(make_hub):
    hub = make_hub()
    tmp = hub.cfg.data_dir / "blobs" / "tmp"
    hub.stop()
    sleeper = subprocess.Popen(["sleep", "30"])
    try:
        dead = subprocess.Popen(["true"])
        dead.wait()
        (tmp / f"{dead.pid}-0011223344556677.part").write_bytes(b"half an upload")
        (tmp / f"{os.getpid()}-8899aabbccddeeff.part").write_bytes(b"ours, from before")
        (tmp / "junk").write_bytes(b"?")
        (tmp / f"{sleeper.pid}-0123456789abcdef.part").write_bytes(b"another live process")
        hub2 = make_hub()
        assert [p.name for p in temp_files(hub2)] == [f"{sleeper.pid}-0123456789abcdef.part"]
    finally:
        sleeper.kill()
        sleeper.wait()


# --- restart ---------------------------------------------------------------------------------

def test_restart_keeps_blobs_and_owners(make_hub, alice, bob):
    hub = make_hub()
    digest = sha(JPEG)
    other = JPEG[:5000]
    assert upload(hub, alice, JPEG).status == 201
    assert upload(hub, bob, JPEG).status == 200
    first = upload(hub, bob, other, mime="image/webp").json
    hub.stop()
    hub = make_hub()
    assert call(hub, "GET", f"/{digest}").body == JPEG
    assert call(hub, "GET", f"/{sha(other)}").headers["Content-Type"] == "image/webp"
    assert [b["sha256"] for b in call(hub, "GET", f"/list/{alice.pubkey}").json] == [digest]
    listed = call(hub, "GET", f"/list/{bob.pubkey}").json
    assert {b["sha256"] for b in listed} == {digest, sha(other)}
    assert {k: v for k, v in first.items() if k != "url"} in [
        {k: v for k, v in d.items() if k != "url"} for d in listed]
    r = call(hub, "DELETE", f"/{digest}", headers={"Authorization": auth(alice, "delete", digest)})
    assert r.status == 200
    assert call(hub, "GET", f"/{digest}").status == 200  # bob still owns it
    r = call(hub, "DELETE", f"/{digest}", headers={"Authorization": auth(bob, "delete", digest)})
    assert r.status == 200 and call(hub, "GET", f"/{digest}").status == 404


def test_the_serve_process_on_uvloop(tmp_path, alice):
    """`samizdat serve` runs on uvloop, which has no loop.sendfile: the fallback path."""
    pytest.importorskip("uvloop")
    proc = HubProcess(tmp_path / "hub")
    try:
        hub = SimpleNamespace(port=proc.port)  # what call() needs of a hub
        data = os.urandom(3_000_000)
        assert upload(hub, alice, data, mime="video/webm").status == 201
        assert call(hub, "GET", f"/{sha(data)}.webm").body == data
        r = call(hub, "GET", f"/{sha(data)}", headers={"Range": "bytes=1048570-2097160"})
        assert r.status == 206 and r.body == data[1048570:2097161]
    finally:
        proc.terminate()


# --- mirror (BUD-04) ---------------------------------------------------------------------------

class Origin:
    """A plain http.server on 127.0.0.1 serving given paths; counts requests."""

    def __init__(self) -> None:
        self.files: dict[str, tuple[bytes, str | None]] = {}
        self.hits: list[str] = []
        self.redirects: dict[str, str] = {}
        origin = self

        class Handler(http.server.BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                origin.hits.append(self.path)
                if self.path in origin.redirects:
                    self.send_response(302)
                    self.send_header("Location", origin.redirects[self.path])
                    self.end_headers()
                    return
                if self.path not in origin.files:
                    self.send_error(404)
                    return
                body, mime = origin.files[self.path]
                self.send_response(200)
                if mime:
                    self.send_header("Content-Type", mime)
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, *args) -> None:
                pass

        self.server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"
        self.thread = threading.Thread(target=self.server.serve_forever, args=(0.05,),
                                       daemon=True)
        self.thread.start()

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture
def origin() -> Iterator[Origin]:
    o = Origin()
    yield o
    o.close()


def mirror(hub: HubHandle, keys: Keys, url: str, *hashes: str) -> Resp:
    return call(hub, "PUT", "/mirror", json.dumps({"url": url}).encode(),
                {"Authorization": auth(keys, "upload", *hashes),
                 "Content-Type": "application/json"})


def test_mirror(hub, alice, bob, origin):
    digest = sha(JPEG)
    origin.files[f"/{digest}.jpg"] = (JPEG, "image/jpeg")
    r = mirror(hub, alice, f"{origin.url}/{digest}.jpg", digest)
    assert r.status == 201, r.reason
    assert r.json["sha256"] == digest and r.json["type"] == "image/jpeg"
    assert r.json["url"] == f"http://127.0.0.1:{hub.port}/{digest}.jpg"
    assert call(hub, "GET", f"/{digest}").body == JPEG
    # a second mirror of a blob the hub has: no download, just ownership
    r = mirror(hub, bob, f"{origin.url}/{digest}.jpg", digest)
    assert r.status == 200 and len(origin.hits) == 1
    assert [b["sha256"] for b in call(hub, "GET", f"/list/{bob.pubkey}").json] == [digest]
    # no type from the origin: the URL's extension decides; a redirect is followed
    video, audio = os.urandom(10_000), os.urandom(10_000)
    origin.files["/clip.mp4"] = (video, None)
    r = mirror(hub, alice, f"{origin.url}/clip.mp4", sha(video))
    assert r.status == 201 and r.json["type"] == "video/mp4"
    origin.files["/sound.ogg"] = (audio, None)
    origin.redirects["/redirect"] = "/sound.ogg"
    r = mirror(hub, alice, f"{origin.url}/redirect", sha(audio))
    assert r.status == 201 and r.json["type"] == "audio/ogg"


def test_mirror_refusals(small_hub, alice, origin):
    hub = small_hub
    data = os.urandom(20_000)
    digest = sha(data)
    origin.files["/blob"] = (data, "image/png")
    origin.files["/wrong"] = (b"other bytes", "image/png")
    origin.files[f"/{digest}.png"] = (b"other bytes", "image/png")
    origin.files["/big"] = (os.urandom(70_000), "image/png")
    origin.files["/page"] = (b"<html>", "text/html")
    # the origin sends another blob than the token names
    r = mirror(hub, alice, f"{origin.url}/wrong", digest)
    assert r.status == 409 and "x tags" in r.reason
    # ... or than its URL names
    r = mirror(hub, alice, f"{origin.url}/{digest}.png", digest)
    assert r.status == 409 and "hashes to" in r.reason
    # the URL names a blob the token does not cover
    r = mirror(hub, alice, f"{origin.url}/{digest}.png", sha(b"x"))
    assert r.status == 409
    r = mirror(hub, alice, f"{origin.url}/big", sha(origin.files["/big"][0]))
    assert r.status == 413
    r = mirror(hub, alice, f"{origin.url}/page", sha(b"<html>"))
    assert r.status == 415
    r = mirror(hub, alice, f"{origin.url}/missing", digest)
    assert r.status == 502 and "404" in r.reason
    port = socket.socket()
    port.bind(("127.0.0.1", 0))
    closed = port.getsockname()[1]
    port.close()
    r = mirror(hub, alice, f"http://127.0.0.1:{closed}/blob", digest)
    assert r.status == 502
    for body in (b"", b"{}", b"[]", b'{"url": 5}', b'{"url": "file:///etc/passwd"}',
                 b'{"url": "ftp://127.0.0.1/x"}', b"not json"):
        r = call(hub, "PUT", "/mirror", body, {"Authorization": auth(alice, "upload", digest)})
        assert r.status == 400, body
    r = call(hub, "PUT", "/mirror", json.dumps({"url": f"{origin.url}/blob"}).encode(),
             {"Authorization": auth(alice, "delete", digest)})
    assert r.status == 401
    r = call(hub, "PUT", "/mirror", json.dumps({"url": f"{origin.url}/blob"}).encode(), {})
    assert r.status == 401
    for d in (digest, sha(b"other bytes"), sha(origin.files["/big"][0])):
        nothing_stored(hub, d, alice)
    assert mirror(hub, alice, f"{origin.url}/blob", digest).status == 201


def test_mirror_from_another_hub(make_hub, alice):
    """The use case: a hub copies a report's photo from another hub on the LAN."""
    a, b = make_hub("a"), make_hub("b")
    d = upload(a, alice, JPEG).json
    r = mirror(b, alice, d["url"], d["sha256"])
    assert r.status == 201
    assert {k: v for k, v in r.json.items() if k not in ("url", "uploaded")} == {
        k: v for k, v in d.items() if k not in ("url", "uploaded")}
    assert call(b, "GET", f"/{d['sha256']}").body == JPEG


def test_mirror_can_be_turned_off(make_hub, alice, origin):
    hub = make_hub(**{"blobs.mirror_max_size": 0})
    origin.files["/blob"] = (JPEG, "image/jpeg")
    r = mirror(hub, alice, f"{origin.url}/blob", sha(JPEG))
    assert r.status == 403 and origin.hits == []


# --- configuration ---------------------------------------------------------------------------

def test_disabled_store_has_no_routes(make_hub, alice):
    hub = make_hub(**{"blobs.enabled": False})
    assert upload(hub, alice, JPEG).status in (404, 405)
    assert call(hub, "GET", f"/{sha(JPEG)}").status == 404
    assert not (hub.cfg.data_dir / "blobs.sqlite3").exists()


def test_config_checks_types(tmp_path):
    with pytest.raises(ConfigError, match="allowed_types"):
        load_config(**{"blobs.allowed_types": ["images"]})
    with pytest.raises(ConfigError, match="allowed_types"):
        load_config(**{"blobs.allowed_types": ["Image/PNG"]})
    with pytest.raises(ConfigError, match="negative"):
        load_config(**{"blobs.max_size": -1})
    cfg = tmp_path / "hub.toml"
    cfg.write_text('[blobs]\nmax_size = 1000\nallowed_types = ["image/png"]\nmirror_timeout = 5\n')
    loaded = load_config(cfg)
    assert loaded.blobs.max_size == 1000 and loaded.blobs.mirror_timeout == 5.0
