"""HTTPS for the hub: its own small certificate authority made on first run, or the
operator's own certificate.

Browsers give a page on plain ``http://192.168.x.y`` no service worker and no
``crypto.subtle``; over HTTPS they do, but only with a certificate they trust: after
someone merely accepts the warning, Chromium still refuses to register a service worker.
No public certificate authority can be reached during a shutdown, so the hub makes its
own: a **name-constrained CA** (EC P-256) that may only vouch for localhost, ``.local``
names, the machine's names, private and loopback addresses and the names the operator
configured, and a server certificate signed by it. A phone that installs the CA
(``/ca.crt``) then trusts the hub, and the web app works offline as an installed app.
The constraint matters: whoever seizes the hub and its CA key still cannot pose as any
other web site to the phones that trusted it, only as another machine on a private
network. People check the CA by its SHA-256 fingerprint, printed at start and shown on
``/status`` and the poster.

The CA is made once and kept: it is what phones trust. The server certificate is issued
again by the CA when the machine's addresses change (a new Wi-Fi, a new DHCP lease), so
trust survives a move. A hub whose data directory holds an older self-signed
certificate (no CA) keeps it until the operator removes ``tls.crt`` and ``tls.key``.
"""

from __future__ import annotations

import dataclasses
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
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

log = logging.getLogger(__name__)

CERT_FILE = "tls.crt"
KEY_FILE = "tls.key"
CA_CERT_FILE = "tls-ca.crt"
CA_KEY_FILE = "tls-ca.key"
#: Addresses the hub's CA may vouch for whatever the machine's address is today: loopback,
#: private (RFC 1918, RFC 6598 carrier-grade NAT, IPv6 unique local) and link-local.
PRIVATE_NETWORKS = ("127.0.0.0/8", "10.0.0.0/8", "172.16.0.0/12", "192.168.0.0/16",
                    "100.64.0.0/10", "169.254.0.0/16", "::1/128", "fc00::/7", "fe80::/10")
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
    ca_path: Path | None = None  # the hub's CA, when it has one (phones install it)
    ca_fingerprint: str | None = None

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


def make_certificate(names: Iterable[str], *, now: dt.datetime | None = None,
                     issuer: tuple[x509.Certificate, ec.EllipticCurvePrivateKey] | None = None
                     ) -> tuple[bytes, bytes]:
    """A new P-256 key and a server certificate for ``names``, signed by ``issuer`` (the
    hub's CA) or else by itself: (key PEM, certificate PEM)."""
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
    builder = x509.CertificateBuilder()
    if issuer is not None:
        ca_cert, ca_key = issuer
        builder = builder.add_extension(
            x509.AuthorityKeyIdentifier.from_issuer_public_key(ca_key.public_key()),
            critical=False)
        not_after = min(not_after, ca_cert.not_valid_after_utc)
    cert = (
        builder
        .subject_name(subject)
        .issuer_name(issuer[0].subject if issuer else subject)
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
        .sign(issuer[1] if issuer else key, hashes.SHA256())
    )
    key_pem = key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                serialization.NoEncryption())
    return key_pem, cert.public_bytes(serialization.Encoding.PEM)


def _permitted(names: Iterable[str]) -> list[x509.GeneralName]:
    """What the hub's CA may vouch for: :data:`PRIVATE_NETWORKS`, ``localhost``, every
    ``.local`` name, and the given names (the machine's, the configured ones)."""
    nets = [ipaddress.ip_network(n) for n in PRIVATE_NETWORKS]
    out: list[x509.GeneralName] = [x509.IPAddress(n) for n in nets]
    out += [x509.DNSName("localhost"), x509.DNSName("local")]
    for n in names:
        entry = _san_entry(n)
        if isinstance(entry, x509.IPAddress):
            if not any(entry.value in net for net in nets):
                out.append(x509.IPAddress(ipaddress.ip_network(entry.value)))
        elif entry is not None and entry not in out:
            out.append(entry)
    return out


def ca_permits(ca: x509.Certificate, name: str) -> bool:
    """Whether the name constraints of ``ca`` allow a certificate for ``name``."""
    entry = _san_entry(name)
    if entry is None:
        return False
    try:
        nc = ca.extensions.get_extension_for_class(x509.NameConstraints).value
    except x509.ExtensionNotFound:
        return True
    for sub in nc.permitted_subtrees or []:
        if isinstance(entry, x509.IPAddress) and isinstance(sub, x509.IPAddress):
            if entry.value in sub.value:  # type: ignore[operator]
                return True
        elif (isinstance(entry, x509.DNSName) and isinstance(sub, x509.DNSName)
              and (entry.value == sub.value or entry.value.endswith("." + sub.value))):
            return True
    return False


def make_ca(names: Iterable[str], *, now: dt.datetime | None = None) -> tuple[bytes, bytes]:
    """The hub's own certificate authority: (key PEM, certificate PEM). Name-constrained
    (critical) to :func:`_permitted` names, and may sign only server certificates
    (path length 0)."""
    now = now or dt.datetime.now(dt.UTC)
    key = ec.generate_private_key(ec.SECP256R1())
    host = (socket.gethostname() or "hub")[:40]
    subject = x509.Name([
        x509.NameAttribute(NameOID.ORGANIZATION_NAME, "samizdat hub"),
        x509.NameAttribute(NameOID.COMMON_NAME, f"samizdat hub CA {host}"),
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
        .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
        .add_extension(x509.KeyUsage(digital_signature=False, content_commitment=False,
                                     key_encipherment=False, data_encipherment=False,
                                     key_agreement=False, key_cert_sign=True, crl_sign=True,
                                     encipher_only=False, decipher_only=False), critical=True)
        .add_extension(x509.NameConstraints(permitted_subtrees=_permitted(names),
                                            excluded_subtrees=None), critical=True)
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
    """The hub's own CA (``tls-ca.crt``, ``tls-ca.key``) and server certificate
    (``tls.crt``: the certificate then the CA; ``tls.key``), keys with mode 0600.

    The CA is made once. The server certificate is issued again whenever it does not
    name every one of ``names`` that the CA may vouch for (the machine moved to another
    network), or when it was not signed by this CA. A data directory from before the CA
    (a self-signed ``tls.crt`` and no ``tls-ca.crt``) keeps its certificate: people
    compared its fingerprint. Remove ``tls.crt`` and ``tls.key`` to move to a CA.
    """
    names = list(dict.fromkeys(names))
    data_dir.mkdir(parents=True, exist_ok=True)
    cert_path, key_path = data_dir / CERT_FILE, data_dir / KEY_FILE
    ca_path, ca_key_path = data_dir / CA_CERT_FILE, data_dir / CA_KEY_FILE
    if (cert_path.exists() and key_path.exists() and not ca_path.exists()
            and _self_signed(cert_path)):
        _check_private(key_path, allow_group=False)
        return _describe(cert_path, key_path, generated=True)
    for private in (key_path, ca_key_path):
        if private.exists():  # refused, not silently replaced: someone may have read it
            _check_private(private, allow_group=False)
    created = False
    if not (ca_path.exists() and ca_key_path.exists()):
        ca_key_pem, ca_pem = make_ca(names)
        _write(ca_key_path, ca_key_pem, 0o600)
        _write(ca_path, ca_pem, 0o644)
        cert_path.unlink(missing_ok=True)
        log.info("made the hub's certificate authority in %s", ca_path)
    _check_private(ca_key_path, allow_group=False)
    try:
        ca = x509.load_pem_x509_certificate(ca_path.read_bytes())
        ca_key = serialization.load_pem_private_key(ca_key_path.read_bytes(), password=None)
    except (OSError, ValueError) as exc:
        raise TLSError(f"cannot read the hub's CA {ca_path}: {exc}. Remove {ca_path} and "
                       f"{ca_key_path} to make a new one (phones must then install it "
                       "again)") from None
    if not isinstance(ca_key, ec.EllipticCurvePrivateKey):
        raise TLSError(f"{ca_key_path} is not an EC key; remove it and {ca_path}")
    wanted = [n for n in names if ca_permits(ca, n)]
    if not _current_leaf(cert_path, key_path, ca, wanted):
        key_pem, cert_pem = make_certificate(wanted, issuer=(ca, ca_key))
        _write(key_path, key_pem, 0o600)
        _write(cert_path, cert_pem + ca.public_bytes(serialization.Encoding.PEM), 0o644)
        created = True
        log.info("issued a server certificate for %s", ", ".join(wanted))
    _check_private(key_path, allow_group=False)
    described = _describe(cert_path, key_path, generated=True, created_now=created)
    return dataclasses.replace(described, ca_path=ca_path, ca_fingerprint=fingerprint(ca))


def _self_signed(cert_path: Path) -> bool:
    try:
        cert = x509.load_pem_x509_certificates(cert_path.read_bytes())[0]
    except (OSError, ValueError):
        return False
    return cert.issuer == cert.subject


def _current_leaf(cert_path: Path, key_path: Path, ca: x509.Certificate,
                  wanted: list[str]) -> bool:
    """Whether ``tls.crt`` is a certificate from ``ca`` that names every wanted name."""
    if not (cert_path.exists() and key_path.exists()):
        return False
    try:
        leaf = x509.load_pem_x509_certificates(cert_path.read_bytes())[0]
        leaf.verify_directly_issued_by(ca)
    except (OSError, ValueError, TypeError, InvalidSignature):
        return False
    have = _describe(cert_path, key_path, generated=True)
    return not have.uncovered(wanted)


def ca_der(cert: Certificate) -> bytes | None:
    """The hub's CA certificate in DER (what phones install), or None without a CA."""
    if cert.ca_path is None:
        return None
    return x509.load_pem_x509_certificate(cert.ca_path.read_bytes()).public_bytes(
        serialization.Encoding.DER)


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
