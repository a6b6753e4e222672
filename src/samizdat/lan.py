"""Where people can reach this hub: the machine's LAN addresses and the URLs to give out.

Addresses are read from the system, never probed: ``ip -j addr`` when iproute2 is
installed; otherwise (Linux) the kernel's interface table through ``ioctl`` and
``/proc/net/if_inet6``; otherwise the addresses the host name resolves to. No packet
is sent, so finding the addresses works the same with or without a network outside.
"""

from __future__ import annotations

import ipaddress
import json
import shutil
import socket
import struct
import subprocess
import time
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urlsplit

IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address

# Interfaces phones on the Wi-Fi cannot normally reach (containers, VMs, VPNs): listed last,
# so the address on the QR code is a real one.
VIRTUAL_PREFIXES = ("docker", "br-", "veth", "virbr", "vnet", "lxc", "lxd", "cni", "flannel",
                    "podman", "vmnet", "vboxnet", "tun", "tap", "wg", "tailscale", "zt", "ifb")
WIRELESS_PREFIXES = ("wl", "wlan", "ap", "uap")
WILDCARD_HOSTS = ("", "0.0.0.0", "::")


@dataclass(frozen=True)
class LanAddress:
    ip: IPAddress
    interface: str = ""

    @property
    def virtual(self) -> bool:
        return self.interface.startswith(VIRTUAL_PREFIXES)


def usable(ip: IPAddress) -> bool:
    """An address another device on the LAN could use in a URL.

    IPv6 link-local addresses are left out: a browser cannot open them (a URL has no
    place for the zone index they need)."""
    return not (ip.is_loopback or ip.is_multicast or ip.is_unspecified
                or (ip.version == 6 and ip.is_link_local))


def order(addresses: Iterable[LanAddress]) -> list[LanAddress]:
    """Unique addresses, best first: real interfaces before virtual ones, IPv4 before
    IPv6 (shorter to type, and what a Wi-Fi hotspot hands out), Wi-Fi before the rest,
    link-local last; otherwise in the system's order."""
    seen: dict[IPAddress, LanAddress] = {}
    for a in addresses:
        if usable(a.ip) and a.ip not in seen:
            seen[a.ip] = a
    ranked = sorted(enumerate(seen.values()), key=lambda ia: (
        ia[1].virtual, ia[1].ip.version, ia[1].ip.is_link_local,
        not ia[1].interface.startswith(WIRELESS_PREFIXES), ia[0]))
    return [a for _, a in ranked]


def parse_ip_json(text: str) -> list[LanAddress]:
    """Addresses from ``ip -j addr`` output: interfaces that are up, addresses that are
    neither temporary (IPv6 privacy), deprecated nor still being checked (tentative)."""
    out = []
    for iface in json.loads(text or "[]"):
        if "UP" not in iface.get("flags", []):
            continue
        name = str(iface.get("ifname", ""))
        for info in iface.get("addr_info", []):
            if info.get("family") not in ("inet", "inet6"):
                continue
            if any(info.get(flag) for flag in ("deprecated", "tentative", "dadfailed")):
                continue
            if info.get("family") == "inet6" and info.get("temporary"):
                continue
            try:
                ip = ipaddress.ip_address(info.get("local", ""))
            except ValueError:
                continue
            out.append(LanAddress(ip, name))
    return out


def parse_if_inet6(text: str) -> list[LanAddress]:
    """IPv6 addresses from ``/proc/net/if_inet6`` (address, index, prefix, scope, flags,
    name), without temporary (0x01), deprecated (0x20) or tentative (0x40) ones."""
    out = []
    for line in text.splitlines():
        parts = line.split()
        if len(parts) != 6 or len(parts[0]) != 32:
            continue
        try:
            flags = int(parts[4], 16)
            ip = ipaddress.IPv6Address(bytes.fromhex(parts[0]))
        except ValueError:
            continue
        if flags & (0x01 | 0x20 | 0x40):
            continue
        out.append(LanAddress(ip, parts[5]))
    return out


def _from_ip_command() -> list[LanAddress] | None:
    ip = shutil.which("ip")
    if ip is None:
        return None
    try:
        res = subprocess.run([ip, "-j", "addr", "show"], capture_output=True, text=True,
                             timeout=3, check=False)
        if res.returncode != 0:
            return None
        return parse_ip_json(res.stdout)
    except (OSError, subprocess.SubprocessError, ValueError, AttributeError, TypeError):
        return None


def _from_kernel() -> list[LanAddress] | None:
    """Linux without iproute2: each interface's IPv4 address by ioctl (a socket that is
    never connected: nothing is sent), IPv6 from /proc."""
    try:
        import fcntl
    except ImportError:  # not a Unix
        return None
    siocgifflags, siocgifaddr, iff_up = 0x8913, 0x8915, 0x1
    out: list[LanAddress] = []
    try:
        names = [name for _, name in socket.if_nameindex()]
    except OSError:
        return None
    up: set[str] = set()
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
        for name in names:
            req = struct.pack("256s", name.encode()[:15])
            try:
                flags = struct.unpack_from("H", fcntl.ioctl(s.fileno(), siocgifflags, req), 16)[0]
            except OSError:
                continue
            if not flags & iff_up:
                continue
            up.add(name)
            try:
                raw = fcntl.ioctl(s.fileno(), siocgifaddr, req)
            except OSError:  # no IPv4 address on this interface
                continue
            out.append(LanAddress(ipaddress.IPv4Address(raw[20:24]), name))
    try:
        with open("/proc/net/if_inet6", encoding="ascii") as fh:
            out += [a for a in parse_if_inet6(fh.read()) if a.interface in up]
    except OSError:
        pass
    return out


def _from_host_name() -> list[LanAddress]:
    out = []
    try:
        infos = socket.getaddrinfo(socket.gethostname(), None, proto=socket.IPPROTO_TCP)
    except OSError:
        return []
    for family, *_, sockaddr in infos:
        if family in (socket.AF_INET, socket.AF_INET6):
            try:
                out.append(LanAddress(ipaddress.ip_address(str(sockaddr[0]).split("%")[0])))
            except ValueError:
                continue
    return out


def lan_addresses() -> list[LanAddress]:
    """This machine's addresses that other devices on the LAN could use, best first.
    Empty when the machine has only loopback. Never raises."""
    found = _from_ip_command()
    if not found:
        try:
            found = _from_kernel()
        except (OSError, ValueError, struct.error):
            found = None
    result = order(found or [])
    return result or order(_from_host_name())


# --- URLs -------------------------------------------------------------------------------------

def url_host(host: str) -> str:
    """``host`` as written in a URL: IPv6 literals in brackets."""
    try:
        ip = ipaddress.ip_address(host.strip("[]"))
    except ValueError:
        return host
    return f"[{ip}]" if ip.version == 6 else str(ip)


def is_loopback(host: str) -> bool:
    if host.lower() in ("localhost", "localhost."):
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False


def configured_names(host: str, public_url: str, public_urls: Iterable[str]) -> list[str]:
    """Host names and addresses the operator named: the listening address (unless it is a
    wildcard), and the hosts of the public URLs."""
    names = [] if host in WILDCARD_HOSTS else [host.strip("[]")]
    for url in [public_url, *public_urls]:
        if url:
            try:
                name = urlsplit(url).hostname
            except ValueError:
                name = None
            if name:
                names.append(name)
    return list(dict.fromkeys(names))


@dataclass
class Access:
    """How people reach the running hub: its listening address and ports, the machine's
    LAN addresses, the URLs to give out and the HTTPS certificate's fingerprint."""

    host: str
    port: int
    https_port: int | None = None
    fingerprint: str | None = None
    public_url: str = ""
    addresses: list[LanAddress] = field(default_factory=list)
    checked_at: float = 0.0
    ca_fingerprint: str | None = None  # the hub's own CA, which phones may install

    @classmethod
    def discover(cls, host: str, port: int, https_port: int | None = None,
                 fingerprint: str | None = None, public_url: str = "") -> Access:
        return cls(host, port, https_port, fingerprint, public_url, lan_addresses(),
                   time.monotonic())

    def refresh(self, max_age: float = 30.0) -> Access:
        """Look at the addresses again if the last look is older than ``max_age`` seconds
        (a laptop's address changes when it joins another network)."""
        if time.monotonic() - self.checked_at > max_age:
            self.addresses = lan_addresses()
            self.checked_at = time.monotonic()
        return self

    @property
    def loopback_only(self) -> bool:
        """True when no other device can connect: listening on loopback, or on every
        address of a machine that has only loopback."""
        return is_loopback(self.host) or not self._lan_hosts()

    def _lan_hosts(self) -> list[str]:
        if self.host in ("", "0.0.0.0"):
            return [str(a.ip) for a in self.addresses if a.ip.version == 4]
        if self.host == "::":  # asyncio makes IPv6 wildcard sockets IPv6-only
            return [str(a.ip) for a in self.addresses if a.ip.version == 6]
        if is_loopback(self.host):
            return []
        return [self.host.strip("[]")]

    def url_hosts(self) -> list[str]:
        """Hosts to put in URLs, best first (never empty)."""
        hosts = self._lan_hosts()
        if hosts:
            return [url_host(h) for h in hosts]
        if is_loopback(self.host):
            return [url_host(self.host)]
        return ["[::1]" if self.host == "::" else "127.0.0.1"]

    @property
    def http_urls(self) -> list[str]:
        return [f"http://{h}:{self.port}/" for h in self.url_hosts()]

    @property
    def https_urls(self) -> list[str]:
        if not self.https_port:
            return []
        return [f"https://{h}:{self.https_port}/" for h in self.url_hosts()]

    @property
    def web_url(self) -> str:
        """The URL for the QR code and the poster: ``server.public_url`` when set, else
        plain HTTP on the best address (the web app works fully over plain HTTP; HTTPS
        starts with a certificate warning)."""
        return self.public_url or self.http_urls[0]

    def as_dict(self) -> dict[str, Any]:
        return {
            "web_url": self.web_url,
            "http_urls": self.http_urls,
            "https_urls": self.https_urls,
            "https_port": self.https_port,
            "tls_fingerprint_sha256": self.fingerprint,
            "tls_ca_fingerprint_sha256": self.ca_fingerprint,
            "listening_on": self.host,
            "loopback_only": self.loopback_only,
            "lan_addresses": [{"address": str(a.ip), "interface": a.interface}
                              for a in self.addresses],
        }
