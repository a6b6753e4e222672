"""Finding the hub's LAN addresses and choosing the URLs to give out."""

from __future__ import annotations

import io
import ipaddress
import json
import socket
from types import SimpleNamespace

import pytest
from rich.console import Console

from samizdat import cli, lan
from samizdat.lan import Access, LanAddress

IP_JSON = json.dumps([
    {"ifname": "lo", "flags": ["LOOPBACK", "UP"], "addr_info": [
        {"family": "inet", "local": "127.0.0.1", "scope": "host"},
        {"family": "inet6", "local": "::1", "scope": "host"}]},
    {"ifname": "docker0", "flags": ["BROADCAST", "UP"], "addr_info": [
        {"family": "inet", "local": "172.17.0.1", "scope": "global"}]},
    {"ifname": "eth0", "flags": ["BROADCAST", "UP"], "addr_info": [
        {"family": "inet", "local": "10.1.2.3", "scope": "global"},
        {"family": "inet6", "local": "2001:db8::1", "scope": "global"},
        {"family": "inet6", "local": "2001:db8::abcd", "scope": "global", "temporary": True},
        {"family": "inet6", "local": "2001:db8::dead", "scope": "global", "deprecated": True},
        {"family": "inet6", "local": "fe80::1", "scope": "link"}]},
    {"ifname": "wlan0", "flags": ["BROADCAST", "UP"], "addr_info": [
        {"family": "inet", "local": "192.168.4.1", "scope": "global"}]},
    {"ifname": "wlan1", "flags": ["BROADCAST"], "addr_info": [
        {"family": "inet", "local": "192.168.9.9", "scope": "global"}]},
    {"ifname": "eth1", "flags": ["UP"], "addr_info": [
        {"family": "inet", "local": "169.254.3.3", "scope": "link"}]},
])


def test_ip_json_parsed_and_ordered():
    got = [str(a.ip) for a in lan.order(lan.parse_ip_json(IP_JSON))]
    # Wi-Fi first, then other real IPv4, link-local IPv4, IPv6, containers last; no
    # loopback, no interface that is down, no temporary/deprecated/link-local IPv6
    assert got == ["192.168.4.1", "10.1.2.3", "169.254.3.3", "2001:db8::1", "172.17.0.1"]


def test_if_inet6_parsed():
    text = ("00000000000000000000000000000001 01 80 10 80       lo\n"
            "fd000000000000000000000000000002 04 40 00 80     eth0\n"
            "20010db8000000000000000000000abc 04 40 00 01     eth0\n"  # temporary
            "fe8000000000000000fc00fffe000001 04 40 20 80     eth0\n"
            "garbage\n")
    got = lan.order(lan.parse_if_inet6(text))
    assert got == [LanAddress(ipaddress.IPv6Address("fd00::2"), "eth0")]


def test_this_machine_sane():
    addrs = lan.lan_addresses()
    for a in addrs:
        assert lan.usable(a.ip)
    # the fallback paths give the same kind of answer
    kernel = lan.order(lan._from_kernel() or [])
    assert all(lan.usable(a.ip) for a in kernel)


def test_only_loopback_is_no_error(monkeypatch):
    monkeypatch.setattr(lan, "_from_ip_command", lambda: None)
    monkeypatch.setattr(lan, "_from_kernel", lambda: [
        LanAddress(ipaddress.ip_address("127.0.0.1"), "lo"),
        LanAddress(ipaddress.ip_address("::1"), "lo")])

    def no_resolver(*a, **k):
        raise socket.gaierror("no name")

    monkeypatch.setattr(socket, "getaddrinfo", no_resolver)
    assert lan.lan_addresses() == []
    acc = Access.discover("0.0.0.0", 7447, 7448, "AB:CD")
    assert acc.loopback_only and acc.web_url == "http://127.0.0.1:7447/"
    assert acc.https_urls == ["https://127.0.0.1:7448/"]


def addrs(*ips: str) -> list[LanAddress]:
    return [LanAddress(ipaddress.ip_address(ip), "wlan0") for ip in ips]


def test_urls_for_each_kind_of_listening_address():
    both = addrs("192.168.4.1", "10.0.0.2", "fd00::2")
    wild = Access("0.0.0.0", 7447, 7448, addresses=both)
    assert wild.http_urls == ["http://192.168.4.1:7447/", "http://10.0.0.2:7447/"]
    assert wild.web_url == "http://192.168.4.1:7447/" and not wild.loopback_only
    assert Access("::", 7447, addresses=both).http_urls == ["http://[fd00::2]:7447/"]
    one = Access("10.0.0.2", 7447, 7448, addresses=both)
    assert one.http_urls == ["http://10.0.0.2:7447/"]
    assert one.https_urls == ["https://10.0.0.2:7448/"]
    local = Access("127.0.0.1", 7447, addresses=both)
    assert local.loopback_only and local.web_url == "http://127.0.0.1:7447/"
    assert Access("::1", 80, addresses=both).web_url == "http://[::1]:80/"
    public = Access("0.0.0.0", 7447, public_url="http://hub.lan:7447/", addresses=both)
    assert public.web_url == "http://hub.lan:7447/"
    assert public.as_dict()["lan_addresses"][0] == {"address": "192.168.4.1",
                                                     "interface": "wlan0"}
    assert Access("0.0.0.0", 7447, https_port=None, addresses=both).https_urls == []


def test_configured_names():
    assert lan.configured_names("0.0.0.0", "https://hub.lan:7448/",
                                ["ws://10.0.0.1:7447", "ws://hub.lan"]) == ["hub.lan",
                                                                            "10.0.0.1"]
    assert lan.configured_names("[fd00::1]", "", []) == ["fd00::1"]


@pytest.mark.parametrize("width,qr_shown", [(80, True), (20, False)])
def test_startup_message(monkeypatch, tmp_path, width, qr_shown):
    from samizdat import qr
    from samizdat.config import Config

    buf = io.StringIO()
    monkeypatch.setattr(cli, "console", Console(file=buf, width=width, force_terminal=False))
    # a fingerprint with ":AB:" in it, which rich would otherwise turn into an emoji
    fp = ":".join(["AB"] * 32)
    access = Access("0.0.0.0", 7447, 7448, fp, addresses=addrs("192.168.4.1", "fd00::ab:1"))
    relay = SimpleNamespace(access=access, pubkey="11" * 32,
                            store=SimpleNamespace(store=SimpleNamespace(event_count=3)))
    cli._print_started(relay, Config(data_dir=tmp_path), show_qr=None)
    assert qr.terminal("http://192.168.4.1:7447/") not in buf.getvalue()  # not a terminal
    buf.truncate(0)
    cli._print_started(relay, Config(data_dir=tmp_path), show_qr=True)
    out = buf.getvalue()
    assert f"SHA-256 {fp}" in out
    assert "http://192.168.4.1:7447/" in out and "https://192.168.4.1:7448/" in out
    assert "only this computer" not in out
    assert (qr.terminal("http://192.168.4.1:7447/") in out) is qr_shown
    assert ("too narrow" in out) is not qr_shown
