"""HTTPS: the hub's own certificate, the operator's, and the same app over TLS.

Every client here trusts exactly the certificate file the hub wrote (or was given), so
a passing handshake proves the hub serves that certificate, not merely "some TLS".
"""

from __future__ import annotations

import hashlib
import json
import os
import socket
import ssl
import stat
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import pytest

from samizdat import qr, tls
from samizdat.config import ConfigError, load_config

from .helpers import Client, HubProcess, Keys, free_port


def trusting(cert_file: Path) -> ssl.SSLContext:
    """A client context that trusts only ``cert_file`` and checks the host name."""
    return ssl.create_default_context(cafile=str(cert_file))


def get(url: str, ctx: ssl.SSLContext | None = None) -> str:
    with urllib.request.urlopen(url, timeout=10, context=ctx) as resp:
        return resp.read().decode()


def served_fingerprint(port: int, ctx: ssl.SSLContext) -> str:
    with socket.create_connection(("127.0.0.1", port), timeout=10) as raw, \
            ctx.wrap_socket(raw, server_hostname="127.0.0.1") as s:
        der = s.getpeercert(binary_form=True)
    digest = hashlib.sha256(der).hexdigest().upper()
    return ":".join(digest[i:i + 2] for i in range(0, 64, 2))


def auth_event(keys: Keys, challenge: str, relay_url: str):
    return keys.sign(22242, "", [["relay", relay_url], ["challenge", challenge]])


def test_https_serves_the_same_app_with_the_fingerprint_shown(hub, alice):
    data = hub.cfg.data_dir
    access = hub.relay.access
    assert access.https_port and access.https_port != hub.port
    ctx = trusting(data / tls.CERT_FILE)
    fp = served_fingerprint(access.https_port, ctx)
    base = f"https://127.0.0.1:{access.https_port}"
    status = json.loads(get(f"{base}/status.json", ctx))
    assert status["access"]["tls_fingerprint_sha256"] == fp
    assert status["access"]["https_urls"] == [f"{base}/"]
    assert status["pubkey"] == hub.relay.pubkey
    page = get(f"{hub.http}/status")
    assert fp in page and f"{base}/" in page
    assert tls.read_fingerprint(data / tls.CERT_FILE) == fp
    # the key file is private
    assert stat.S_IMODE((data / tls.KEY_FILE).stat().st_mode) == 0o600
    # a client that does not trust the hub's certificate is refused
    with pytest.raises(ssl.SSLCertVerificationError):
        served_fingerprint(access.https_port, ssl.create_default_context())
    # the relay over wss://: publish there, read it back over plain ws://
    ev = alice.sign(1, "over TLS")
    with Client(f"wss://127.0.0.1:{access.https_port}", ssl=ctx) as c:
        assert c.publish(ev) == (True, "")
        assert [e["id"] for e in c.query({"ids": [ev.id]})] == [ev.id]
    with Client(hub.url) as c:
        assert [e["id"] for e in c.query({"ids": [ev.id]})] == [ev.id]


def test_nip42_over_wss_names_the_wss_url(make_hub, alice):
    h = make_hub(**{"auth.required_for_write": True})
    port = h.relay.access.https_port
    ctx = trusting(h.cfg.data_dir / tls.CERT_FILE)
    with Client(f"wss://127.0.0.1:{port}", ssl=ctx) as c:
        challenge = c.recv_until(lambda f: f[0] == "AUTH")[1]
        other_port = auth_event(alice, challenge, h.url)  # the plain-HTTP port
        c.send(["AUTH", other_port.to_dict()])
        assert c.recv_until(lambda f: f[0] == "OK" and f[1] == other_port.id)[2] is False
        good = auth_event(alice, challenge, f"wss://127.0.0.1:{port}")
        c.send(["AUTH", good.to_dict()])
        assert c.recv_until(lambda f: f[0] == "OK" and f[1] == good.id)[2] is True
        assert c.publish(alice.sign(1, "authenticated over TLS"))[0]


def test_the_ca_is_made_once_and_the_server_certificate_follows_the_addresses(tmp_path):
    names = tls.default_names(["192.168.4.7"], ["hub.example"])
    first = tls.load_or_create(tmp_path, names)
    assert first.created_now and first.generated and first.ca_path is not None
    assert {"localhost", "127.0.0.1", "::1", "192.168.4.7", "hub.example"} <= set(first.names)
    assert socket.gethostname() in first.names
    # the same names: nothing changes
    same = tls.load_or_create(tmp_path, names)
    assert not same.created_now and same.fingerprint == first.fingerprint
    # the hub moved to another private network: a new server certificate from the SAME CA,
    # so phones that installed the CA keep trusting it
    moved = tls.load_or_create(tmp_path, tls.default_names(["10.9.9.9"], ["hub.example"]))
    assert moved.created_now and moved.fingerprint != first.fingerprint
    assert moved.ca_fingerprint == first.ca_fingerprint and "10.9.9.9" in moved.names
    # a public address the CA was not made for cannot be added (its name constraints)
    public = tls.load_or_create(tmp_path, ["localhost", "198.51.100.1"])
    assert "198.51.100.1" not in public.names and public.uncovered(["198.51.100.1"])
    # a new CA only when its files are gone
    (tmp_path / tls.CA_CERT_FILE).unlink()
    fresh = tls.load_or_create(tmp_path, names)
    assert fresh.created_now and fresh.ca_fingerprint != first.ca_fingerprint
    assert not list(tmp_path.glob("*.tmp"))


def test_the_ca_cannot_vouch_for_other_sites(tmp_path):
    """Whoever seizes a hub and its CA key must not be able to pose as any web site to
    the phones that installed the CA: its name constraints allow only local names."""
    from cryptography import x509
    from cryptography.hazmat.primitives import serialization
    from cryptography.x509.verification import PolicyBuilder, Store, VerificationError

    cert = tls.load_or_create(tmp_path, tls.default_names(["192.168.4.7"], []))
    ca = x509.load_pem_x509_certificate((tmp_path / tls.CA_CERT_FILE).read_bytes())
    ca_key = serialization.load_pem_private_key((tmp_path / tls.CA_KEY_FILE).read_bytes(), None)
    store = Store([ca])

    def verify(name: str, leaf: x509.Certificate) -> None:
        subject = (x509.IPAddress(__import__("ipaddress").ip_address(name))
                   if name[0].isdigit() else x509.DNSName(name))
        PolicyBuilder().store(store).build_server_verifier(subject).verify(leaf, [])

    hub_leaf = x509.load_pem_x509_certificates(cert.cert_path.read_bytes())[0]
    verify("192.168.4.7", hub_leaf)
    verify("localhost", hub_leaf)
    for rogue in ("mail.example.com", "8.8.8.8"):
        _, pem = tls.make_certificate([rogue], issuer=(ca, ca_key))
        with pytest.raises(VerificationError):
            verify(rogue, x509.load_pem_x509_certificate(pem))
    assert tls.ca_permits(ca, "pi.local") and tls.ca_permits(ca, "10.1.2.3")
    assert not tls.ca_permits(ca, "example.com") and not tls.ca_permits(ca, "1.1.1.1")


def test_generated_certificate_fits_browsers(tmp_path):
    from cryptography import x509
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import ExtendedKeyUsageOID

    cert = tls.load_or_create(tmp_path, ["127.0.0.1", "hub.local", "bücher.example"])
    c = x509.load_pem_x509_certificate(cert.cert_path.read_bytes())
    assert isinstance(c.public_key(), ec.EllipticCurvePublicKey)
    assert c.public_key().curve.name == "secp256r1"
    assert c.extensions.get_extension_for_class(x509.BasicConstraints).value.ca is False
    eku = c.extensions.get_extension_for_class(x509.ExtendedKeyUsage).value
    assert ExtendedKeyUsageOID.SERVER_AUTH in eku
    san = c.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    assert "xn--bcher-kva.example" in san.get_values_for_type(x509.DNSName)
    # valid for about ten years from now; from 2019 so that a wrong clock does not matter
    years = (c.not_valid_after_utc - c.not_valid_before_utc).days / 365
    assert c.not_valid_before_utc.year == 2019 and years > 10
    assert cert.fingerprint == tls.fingerprint(c)
    assert len(cert.fingerprint) == 95 and cert.fingerprint.count(":") == 31


def test_readable_tls_key_is_refused(tmp_path):
    tls.load_or_create(tmp_path, ["localhost"])
    os.chmod(tmp_path / tls.KEY_FILE, 0o640)
    with pytest.raises(tls.TLSError, match="chmod 600"):
        tls.load_or_create(tmp_path, ["localhost"])
    res = subprocess.run([sys.executable, "-m", "samizdat.cli", "serve", "--data",
                          str(tmp_path), "--port", "0", "--https-port", "0"],
                         capture_output=True, text=True, timeout=60)
    assert res.returncode != 0 and "chmod 600" in res.stderr and "tls.key" in res.stderr


def write_operator_files(tmp_path: Path, names: list[str]) -> tuple[Path, Path]:
    key_pem, cert_pem = tls.make_certificate(names)
    cert, key = tmp_path / "own.crt", tmp_path / "own.key"
    cert.write_bytes(cert_pem)
    key.write_bytes(key_pem)
    os.chmod(key, 0o640)  # group-readable is allowed for the operator's own key (ssl-cert)
    return cert, key


def test_operator_certificate_is_used(make_hub, tmp_path):
    cert, key = write_operator_files(tmp_path, ["127.0.0.1"])
    h = make_hub(**{"server.tls_cert": str(cert), "server.tls_key": str(key)})
    port = h.relay.access.https_port
    fp = served_fingerprint(port, trusting(cert))
    assert fp == tls.read_fingerprint(cert) == h.relay.access.fingerprint
    assert not (h.cfg.data_dir / tls.CERT_FILE).exists()  # the hub made none of its own
    res = subprocess.run([sys.executable, "-m", "samizdat.cli", "info", "--data",
                          str(h.cfg.data_dir), "--json", "--config", str(write_config(
                              tmp_path, f'[server]\ntls_cert = "{cert}"\ntls_key = "{key}"\n'))],
                         capture_output=True, text=True, timeout=60, check=True)
    assert json.loads(res.stdout)["tls_fingerprint_sha256"] == fp


def write_config(tmp_path: Path, text: str) -> Path:
    p = tmp_path / "hub.toml"
    p.write_text(text)
    return p


def test_operator_key_readable_by_everyone_or_not_matching_is_refused(tmp_path):
    cert, key = write_operator_files(tmp_path, ["127.0.0.1"])
    os.chmod(key, 0o644)
    with pytest.raises(tls.TLSError, match="chmod 600"):
        tls.load_operator(str(cert), str(key))
    other_key, _ = tls.make_certificate(["127.0.0.1"])
    key.write_bytes(other_key)
    os.chmod(key, 0o600)
    with pytest.raises(tls.TLSError, match="belong together"):
        tls.server_context(tls.load_operator(str(cert), str(key)))
    with pytest.raises(tls.TLSError, match="does not exist"):
        tls.load_operator(str(tmp_path / "missing.crt"), str(key))


@pytest.mark.parametrize("text,fragment", [
    ('[server]\ntls_cert = "a.crt"\n', "go together"),
    ("[server]\nport = 8000\nhttps_port = 8000\n", "also server.port"),
    ("[server]\nhttps_port = 70000\n", "server.https_port"),
    ('[server]\npublic_url = "hub.lan:7447"\n', "server.public_url"),
])
def test_bad_https_settings_are_explained(tmp_path, text, fragment):
    with pytest.raises(ConfigError, match=fragment):
        load_config(write_config(tmp_path, text))


def test_https_off_and_https_port_in_use(tmp_path):
    cfg = load_config(None, **{"server.https": False, "server.port": 8000,
                               "server.https_port": 8000})
    assert cfg.server.https is False  # no clash when HTTPS is off
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        res = subprocess.run([sys.executable, "-m", "samizdat.cli", "serve", "--data",
                              str(tmp_path / "d"), "--port", "0", "--https-port", str(port)],
                             capture_output=True, text=True, timeout=60)
    assert res.returncode != 0
    assert "HTTPS" in res.stderr and "--https-port" in res.stderr and "--no-https" in res.stderr


def test_serve_prints_addresses_fingerprint_and_qr(tmp_path):
    data = tmp_path / "hub"
    hub = HubProcess(data, "--qr")
    try:
        deadline = time.monotonic() + 10
        while not (data / tls.CERT_FILE).exists() and time.monotonic() < deadline:
            time.sleep(0.05)
        fp = tls.read_fingerprint(data / tls.CERT_FILE)
        status = json.loads(get(f"http://127.0.0.1:{hub.port}/status.json"))
        info = json.loads(subprocess.run(
            [sys.executable, "-m", "samizdat.cli", "info", "--data", str(data), "--json"],
            capture_output=True, text=True, timeout=60, check=True).stdout)
    finally:
        out = hub.terminate()
    assert hub.proc.returncode == 0, out
    access = status["access"]
    assert fp and access["tls_fingerprint_sha256"] == fp == info["tls_fingerprint_sha256"]
    web = f"http://127.0.0.1:{hub.port}/"
    assert access["web_url"] == web and access["loopback_only"] is True
    assert f"SHA-256 {fp}" in out
    assert web in out and f"https://127.0.0.1:{access['https_port']}/" in out
    assert "listening on 127.0.0.1 only" in out and "--host 0.0.0.0" in out
    for a in access["lan_addresses"]:  # the machine's LAN addresses are named
        assert a["address"] in out
    assert qr.terminal(web) in out  # --qr: the code of exactly this URL


def test_serve_without_a_terminal_prints_no_qr(tmp_path):
    hub = HubProcess(tmp_path / "hub")
    out = hub.terminate()
    assert "samizdat hub running" in out and "SHA-256" in out
    assert "\u2580" not in out and "Scan to open" not in out


def test_https_port_flag(tmp_path):
    port = free_port()
    hub = HubProcess(tmp_path / "hub", "--https-port", str(port))
    try:
        fp = served_fingerprint(port, trusting(tmp_path / "hub" / tls.CERT_FILE))
    finally:
        out = hub.terminate()
    assert f"https://127.0.0.1:{port}/" in out and fp in out


def test_https_gives_a_lan_name_a_secure_context_in_chromium(hub):
    """Why the HTTPS port exists: in Chromium, a page from a LAN name over plain HTTP is
    not a secure context (no crypto.subtle, no service worker); over the hub's HTTPS, once
    the person accepts the certificate warning, it is. The warning is passed the way a
    person can on the interstitial page (typing its bypass phrase)."""
    import shutil

    sync_api = pytest.importorskip("playwright.sync_api")
    exe = shutil.which("chromium") or shutil.which("chromium-browser")
    if exe is None:
        pytest.skip("chromium is not installed")
    https_port = hub.relay.access.https_port
    probe = "[window.isSecureContext, !!(window.crypto && crypto.subtle)]"
    with sync_api.sync_playwright() as p:
        browser = p.chromium.launch(executable_path=exe, args=[
            "--no-sandbox", "--host-resolver-rules=MAP hub.lan 127.0.0.1"])
        try:
            page = browser.new_page()
            page.goto(f"http://hub.lan:{hub.port}/status")
            assert page.evaluate(probe) == [False, False]
            with pytest.raises(sync_api.Error, match="ERR_CERT_AUTHORITY_INVALID"):
                page.goto(f"https://hub.lan:{https_port}/status")

            def passed() -> bool:
                try:
                    return page.title().endswith("status") and page.evaluate(
                        "location.href").startswith(f"https://hub.lan:{https_port}/")
                except sync_api.Error:  # the warning page refuses scripts
                    return False

            deadline = time.monotonic() + 15
            while not passed():  # type the phrase until the warning page has taken it
                assert time.monotonic() < deadline, "the warning page was not passed"
                if "rivacy" in page.title():  # "Privacy error"
                    page.keyboard.type("thisisunsafe")
                time.sleep(0.3)
            assert page.evaluate(probe) == [True, True]
            assert hub.relay.access.fingerprint in page.content()
        finally:
            browser.close()


def test_a_phone_that_installs_the_hub_ca_gets_the_offline_app_over_https(hub, tmp_path):
    """The point of the hub's own CA: once a browser trusts it (here Chromium's NSS
    database, as after installing /ca.crt on a phone), the hub's HTTPS address opens
    without a warning, is a secure context, and the web app's service worker takes over,
    so the app opens with the hub out of reach."""
    import shutil

    sync_api = pytest.importorskip("playwright.sync_api")
    exe = shutil.which("chromium")
    certutil = shutil.which("certutil")
    if exe is None or certutil is None:
        pytest.skip("needs Debian's chromium and libnss3-tools (make test installs both)")
    host = socket.gethostname()
    name = host if "." in host else f"{host}.local"
    with urllib.request.urlopen(f"{hub.http}/ca.crt", timeout=5) as r:
        assert r.headers["Content-Type"] == "application/x-x509-ca-cert"
        der = r.read()
    assert hashlib.sha256(der).hexdigest().upper() == \
        hub.relay.access.ca_fingerprint.replace(":", "")
    home = tmp_path / "home"
    nssdb = home / ".pki" / "nssdb"
    nssdb.mkdir(parents=True)
    (tmp_path / "ca.der").write_bytes(der)
    subprocess.run([certutil, "-d", f"sql:{nssdb}", "-N", "--empty-password"], check=True)
    subprocess.run([certutil, "-d", f"sql:{nssdb}", "-A", "-t", "C,,", "-n", "samizdat hub",
                    "-i", str(tmp_path / "ca.der")], check=True)
    url = f"https://{name}:{hub.relay.access.https_port}/"
    with sync_api.sync_playwright() as p:
        browser = p.chromium.launch(executable_path=exe, env={**os.environ, "HOME": str(home)},
                                    args=["--no-sandbox",
                                          f"--host-resolver-rules=MAP {name} 127.0.0.1"])
        try:
            page = browser.new_page()
            page.goto(url)  # raises on a certificate error
            assert page.evaluate("[isSecureContext, !!crypto.subtle]") == [True, True]
            page.evaluate("navigator.serviceWorker.ready.then(() => true)")
            page.reload()
            assert page.evaluate("!!navigator.serviceWorker.controller")
            page.wait_for_selector("[data-testid=compose-text]")
        finally:
            browser.close()
