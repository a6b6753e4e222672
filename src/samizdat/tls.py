"""HTTPS for the hub: a self-signed certificate made on first run, or the operator's own.

Browsers give a page on plain ``http://192.168.x.y`` no service worker and no
``crypto.subtle``; over HTTPS they do (after the person accepts the certificate
warning, or trusts the certificate; see the README). No certificate authority can be
reached during a shutdown, so the hub makes its own: an EC P-256 key and a self-signed
certificate naming localhost, the machine's host name and its LAN addresses. People
check it by its SHA-256 fingerprint, which the hub prints at start and shows on
``/status``.

The certificate is made once and then kept: its fingerprint is what people compare,
so it changes only when the operator removes the files (see :func:`load_or_create`).
"""

from __future__ import annotations

import datetime as dt
import hashlib
import ipaddress
import logging
import os
import socket
import ssl
import stat
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

log = logging.getLogger(__name__)

CERT_FILE = "tls.crt"
KEY_FILE = "tls.key"
VALID_YEARS = 10
# Valid from before 1 July 2019: Apple's 825-day limit on TLS certificates applies only to
# certificates issued after that date, and a Raspberry Pi without a clock battery may boot
# with a date in the past. The validity window of a self-signed certificate protects
# nothing; the fingerprint does.
NOT_BEFORE = dt.datetime(2019, 6, 1, tzinfo=dt.UTC)


class TLSError(RuntimeError):
    """The certificate or key cannot be used; the message says what to do."""


@dataclass(frozen=True)
class Certificate:
    cert_path: Path
    key_path: Path
    fingerprint: str  # SHA-256 of the DER certificate, colon-separated hex, as browsers show it
    names: tuple[str, ...]  # DNS names and IP addresses in subjectAltName
    not_after: dt.datetime
    generated: bool  # made by the hub (as opposed to the operator's own files)
    created_now: bool = False

    def uncovered(self, names: Iterable[str]) -> list[str]:
        """Those of ``names`` the certificate does not list (browsers then also warn that
        the name does not match, and a phone that trusts the certificate refuses it)."""
        have = {_canonical(n) for n in self.names}
        return [n for n in dict.fromkeys(names) if n and _canonical(n) not in have]


def fingerprint(cert: x509.Certificate) -> str:
    digest = hashlib.sha256(cert.public_bytes(serialization.Encoding.DER)).hexdigest().upper()
    return ":".join(digest[i:i + 2] for i in range(0, len(digest), 2))


def _canonical(name: str) -> str:
    name = name.strip().strip("[]").rstrip(".").lower()
    try:
        return str(ipaddress.ip_address(name))
    except ValueError:
        return name


def _san_entry(name: str) -> x509.GeneralName | None:
    name = name.strip().strip("[]").rstrip(".")
    if not name:
        return None
    try:
        return x509.IPAddress(ipaddress.ip_address(name))
    except ValueError:
        pass
    try:
        ascii_name = name.encode("idna").decode("ascii").lower()
    except UnicodeError:
        return None
    if not all(part and len(part) <= 63 for part in ascii_name.split(".")):
        return None
    return x509.DNSName(ascii_name)


def default_names(lan_ips: Iterable[str] = (), extra: Iterable[str] = ()) -> list[str]:
    """What a generated certificate names: localhost, the loopback addresses, the host
    name (and ``NAME.local`` for mDNS), the LAN addresses and the configured names."""
    host = socket.gethostname().strip()
    names = ["localhost", "127.0.0.1", "::1"]
    if host:
        names.append(host)
        if "." not in host:
            names.append(f"{host}.local")
    return list(dict.fromkeys([*names, *lan_ips, *extra]))


def make_certificate(names: Iterable[str], *, now: dt.datetime | None = None
                     ) -> tuple[bytes, bytes]:
    """A new P-256 key and a self-signed server certificate for ``names``: (key PEM,
    certificate PEM)."""
    now = now or dt.datetime.now(dt.UTC)
    key = ec.generate_private_key(ec.SECP256R1())
    entries: list[x509.GeneralName] = []
    for n in names:
        entry = _san_entry(n)
        if entry is not None and entry not in entries:
            entries.append(entry)
    subject = x509.Name([
        x509.NameAttribute(NameOID.ORGANIZATION_NAME, "samizdat hub"),
        x509.NameAttribute(NameOID.COMMON_NAME, (socket.gethostname() or "samizdat hub")[:64]),
    ])
    not_after = max(now, dt.datetime(2026, 1, 1, tzinfo=dt.UTC)) + dt.timedelta(
        days=365 * VALID_YEARS + VALID_YEARS // 4)
    cert = (
        x509.CertificateBuilder()
        .subject_name(subject)
        .issuer_name(subject)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(NOT_BEFORE)
        .not_valid_after(not_after)
        .add_extension(x509.SubjectAlternativeName(entries), critical=False)
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .add_extension(x509.KeyUsage(digital_signature=True, content_commitment=False,
                                     key_encipherment=False, data_encipherment=False,
                                     key_agreement=False, key_cert_sign=False, crl_sign=False,
                                     encipher_only=False, decipher_only=False), critical=True)
        .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.SERVER_AUTH]), critical=False)
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(key.public_key()),
                       critical=False)
        .sign(key, hashes.SHA256())
    )
    key_pem = key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                serialization.NoEncryption())
    return key_pem, cert.public_bytes(serialization.Encoding.PEM)


def _write(path: Path, data: bytes, mode: int) -> None:
    """Write ``data`` to ``path`` through a temporary file created with ``mode`` (so a key
    is never readable by others, not even for a moment) and an atomic rename."""
    tmp = path.with_name(path.name + ".tmp")
    tmp.unlink(missing_ok=True)
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, mode)
    with os.fdopen(fd, "wb") as fh:
        fh.write(data)
        fh.flush()
        os.fsync(fh.fileno())
    os.replace(tmp, path)


def _check_private(path: Path, *, allow_group: bool) -> None:
    mode = path.stat().st_mode
    if mode & (stat.S_IRWXO if allow_group else stat.S_IRWXG | stat.S_IRWXO):
        raise TLSError(
            f"{path} can be read by other users (mode {oct(mode & 0o777)}); whoever reads it "
            f"can pose as this hub. Run `chmod 600 {path}` and start again"
        )


def _describe(cert_path: Path, key_path: Path, *, generated: bool,
              created_now: bool = False) -> Certificate:
    try:
        certs = x509.load_pem_x509_certificates(cert_path.read_bytes())
    except OSError as exc:
        raise TLSError(f"cannot read the certificate {cert_path}: {exc.strerror or exc}") from None
    except ValueError:
        raise TLSError(f"{cert_path} is not a PEM certificate") from None
    cert = certs[0]
    names: list[str] = []
    try:
        san = cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
        names += san.get_values_for_type(x509.DNSName)
        names += [str(ip) for ip in san.get_values_for_type(x509.IPAddress)]
    except x509.ExtensionNotFound:
        pass
    return Certificate(cert_path, key_path, fingerprint(cert), tuple(names),
                       cert.not_valid_after_utc, generated, created_now)


def load_or_create(data_dir: Path, names: Iterable[str]) -> Certificate:
    """The hub's own certificate in ``data_dir`` (``tls.crt``, and ``tls.key`` with mode
    0600), made for ``names`` if either file is missing.

    An existing certificate is kept even when the machine's addresses have changed since
    it was made: the fingerprint is what people check, and it must not change behind
    their backs. To make a new one (for example after adding a name to the config),
    remove both files and restart; the hub says which names are not covered.
    """
    data_dir.mkdir(parents=True, exist_ok=True)
    cert_path, key_path = data_dir / CERT_FILE, data_dir / KEY_FILE
    created = False
    if not (cert_path.exists() and key_path.exists()):
        key_pem, cert_pem = make_certificate(names)
        _write(key_path, key_pem, 0o600)
        _write(cert_path, cert_pem, 0o644)
        created = True
        log.info("made a new self-signed TLS certificate in %s", cert_path)
    _check_private(key_path, allow_group=False)
    return _describe(cert_path, key_path, generated=True, created_now=created)


def load_operator(cert_file: str, key_file: str) -> Certificate:
    """The operator's own certificate (PEM, the chain after it) and key. The key may be
    readable by its group (Debian's ``ssl-cert`` convention) but not by everyone."""
    cert_path, key_path = Path(cert_file), Path(key_file)
    for p in (cert_path, key_path):
        if not p.is_file():
            raise TLSError(f"{p} does not exist (server.tls_cert / server.tls_key)")
    _check_private(key_path, allow_group=True)
    return _describe(cert_path, key_path, generated=False)


def server_context(cert: Certificate) -> ssl.SSLContext:
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    ctx.minimum_version = ssl.TLSVersion.TLSv1_2
    try:
        ctx.load_cert_chain(cert.cert_path, cert.key_path)
    except (ssl.SSLError, OSError) as exc:
        raise TLSError(f"cannot use {cert.cert_path} with {cert.key_path}: {exc}. Do the "
                       "certificate and the key belong together?") from None
    return ctx


def read_fingerprint(cert_path: Path) -> str | None:
    """The fingerprint of the certificate at ``cert_path``, or None if there is none."""
    try:
        return fingerprint(x509.load_pem_x509_certificates(cert_path.read_bytes())[0])
    except (OSError, ValueError):
        return None
