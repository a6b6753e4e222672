"""The `samizdat` command as an operator runs it: real processes, real files."""

from __future__ import annotations

import json
import os
import stat
import subprocess
import sys
import urllib.request

import pytest

from samizdat.config import ConfigError, load_config

from .helpers import Client, HubProcess, Keys


def samizdat(*args: str, check: bool = False) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "samizdat.cli", *args], capture_output=True,
                          text=True, timeout=60, check=check)


@pytest.mark.parametrize("cmd", [[], ["serve"], ["info"]])
def test_help_everywhere(cmd):
    out = samizdat(*cmd, "--help", check=True).stdout
    assert "Usage:" in out


def test_serve_then_info_then_clean_stop(tmp_path):
    data = tmp_path / "hub"
    hub = HubProcess(data)
    keys = Keys()
    with Client(hub.url) as c:
        for i in range(3):
            assert c.publish(keys.sign(1, f"report {i}"))[0]
        assert c.publish(keys.sign(0, "{}"))[0]
    key_file = data / "hub.key"
    assert stat.S_IMODE(key_file.stat().st_mode) == 0o600
    req = urllib.request.Request(f"http://127.0.0.1:{hub.port}/",
                                 headers={"Accept": "application/nostr+json"})
    with urllib.request.urlopen(req, timeout=10) as resp:
        hub_pubkey = json.loads(resp.read())["pubkey"]
    # info works while the hub runs
    info = json.loads(samizdat("info", "--data", str(data), "--json", check=True).stdout)
    assert info["events"] == 4
    assert info["top_kinds"] == {"1": 3, "0": 1}
    assert info["hub_pubkey"] == hub_pubkey
    assert info["hub_npub"].startswith("npub1")
    out = hub.terminate()  # SIGTERM
    assert hub.proc.returncode == 0, out
    assert "samizdat hub running" in out and "hub stopped cleanly" in out
    # same identity and data after a restart
    again = json.loads(samizdat("info", "--data", str(data), "--json", check=True).stdout)
    assert again["hub_pubkey"] == hub_pubkey and again["events"] == 4
    human = samizdat("info", "--data", str(data), check=True).stdout
    assert "events" in human and "4" in human


def test_info_without_a_hub_says_what_to_do(tmp_path):
    res = samizdat("info", "--data", str(tmp_path / "nothing"))
    assert res.returncode != 0
    assert "samizdat serve" in res.stderr


def test_readable_hub_key_is_refused(tmp_path):
    data = tmp_path / "hub"
    data.mkdir()
    key = data / "hub.key"
    key.write_text("11" * 32 + "\n")
    os.chmod(key, 0o644)
    res = samizdat("serve", "--data", str(data), "--port", "0")
    assert res.returncode != 0
    assert "chmod 600" in res.stderr


def test_config_file_and_flags(tmp_path):
    cfg_file = tmp_path / "hub.toml"
    cfg_file.write_text('[server]\nport = 9999\n[limits]\nmax_subscriptions = 5\n'
                        '[auth]\nrequired_for_write = true\n')
    cfg = load_config(cfg_file, **{"server.port": 8000})
    assert cfg.server.port == 8000  # flags win over the file
    assert cfg.limits.max_subscriptions == 5 and cfg.auth.required_for_write is True
    assert cfg.rate.events_per_second == 100.0  # defaults fill the rest


@pytest.mark.parametrize("text,fragment", [
    ("[limits]\nmax_subscriptons = 5\n", "unknown setting limits.'max_subscriptons'"),
    ("[limits]\nmax_subscriptions = 'five'\n", "must be int"),
    ("[limits]\nmax_subscriptions = -1\n", "must not be negative"),
    ("[server]\nport = 70000\n", "server.port"),
    ("[auth]\nallowed_pubkeys = ['npub1xyz']\n", "64-character hex"),
    ("this is not toml", "not valid TOML"),
])
def test_bad_config_is_explained(tmp_path, text, fragment):
    cfg_file = tmp_path / "bad.toml"
    cfg_file.write_text(text)
    with pytest.raises(ConfigError) as err:
        load_config(cfg_file)
    assert fragment in str(err.value)
    res = samizdat("serve", "--config", str(cfg_file), "--data", str(tmp_path / "d"))
    assert res.returncode == 2 and fragment in res.stderr


def test_port_in_use_is_explained(tmp_path):
    hub = HubProcess(tmp_path / "a")
    try:
        res = samizdat("serve", "--data", str(tmp_path / "b"), "--port", str(hub.port))
        assert res.returncode != 0
        assert "--port" in res.stderr
    finally:
        hub.terminate()


def test_configuration_doc_names_every_setting():
    import dataclasses

    from samizdat.config import Config

    from .helpers import ROOT

    doc = (ROOT / "docs" / "configuration.md").read_text()
    for section in dataclasses.fields(Config):
        value = getattr(Config(), section.name)
        if not dataclasses.is_dataclass(value):
            assert f"`{section.name}`" in doc
            continue
        assert f"`[{section.name}]`" in doc, section.name
        for f in dataclasses.fields(value):
            assert f"`{f.name}`" in doc, f"docs/configuration.md lacks {section.name}.{f.name}"


def test_sigint_stops_cleanly(tmp_path):
    import signal

    hub = HubProcess(tmp_path / "hub")
    with Client(hub.url) as c:
        assert c.publish(Keys().sign(1, "x"))[0]
        hub.proc.send_signal(signal.SIGINT)
        out, _ = hub.proc.communicate(timeout=30)
    assert hub.proc.returncode == 0, out
    assert "hub stopped cleanly" in out


def test_bad_peer_addresses_are_explained(tmp_path):
    res = samizdat("serve", "--data", str(tmp_path / "d"), "--peer", "http://10.0.0.1:7447")
    assert res.returncode == 2 and "ws://" in res.stderr
    cfg_file = tmp_path / "peers.toml"
    cfg_file.write_text('[sync]\npeers = ["relay.example:7447"]\n')
    res = samizdat("serve", "--data", str(tmp_path / "d"), "--config", str(cfg_file))
    assert res.returncode == 2 and "sync.peers" in res.stderr
