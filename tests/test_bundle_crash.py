"""Import under pressure: SIGKILL in the middle, and a hub running on the same database."""

from __future__ import annotations

import json
import signal
import sqlite3
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import pytest
from coincurve import PrivateKey

from samizdat.bundle import export_bundle
from samizdat.nostr.filters import Filter
from samizdat.store.sqlite import SQLiteStore

from .helpers import Client, HubProcess, Keys

T0 = 1_790_000_000


@pytest.fixture(scope="module")
def bundle(tmp_path_factory) -> tuple[Path, int]:
    """A 20,000-event bundle: big enough that writing it takes a noticeable moment."""
    d = tmp_path_factory.mktemp("src")
    keys = [Keys() for _ in range(20)]
    events = [keys[i % 20].sign(1, f"crash test {i} " + "word " * 20, [["t", "crash"]],
                                T0 + i) for i in range(20_000)]
    store = SQLiteStore(d / "a.db", "NORMAL")
    store.save_many(events, now=T0)
    export_bundle(store, d / "big.szb", PrivateKey(), flt=Filter())
    store.close()
    return d / "big.szb", len(events)


def prepared_hub(path: Path) -> list[tuple]:
    """A data dir with 300 events of its own; returns their rows."""
    k = Keys()
    store = SQLiteStore(path / "events.sqlite3")
    store.save_many([k.sign(1, f"local {i}", [], T0 - i) for i in range(300)], now=T0)
    store.close()
    return rows(path)


def rows(path: Path) -> list[tuple]:
    with sqlite3.connect(path / "events.sqlite3") as db:
        assert db.execute("PRAGMA integrity_check").fetchone()[0] == "ok"
        return db.execute("SELECT id, json FROM events ORDER BY id").fetchall()


@pytest.mark.parametrize("delay", [None, 0.0, 0.15, 0.4])
def test_sigkill_during_import_leaves_all_or_nothing(tmp_path, bundle, delay):
    path, n = bundle
    data = tmp_path / "hub"
    before = prepared_hub(data)
    proc = subprocess.Popen([sys.executable, "-m", "samizdat.cli", "import", str(path),
                             "--data", str(data), "--json", "--workers", "1"],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    if delay is None:  # killed while verifying
        time.sleep(0.3)
    else:
        assert proc.stderr is not None
        for line in proc.stderr:
            if "writing in one transaction" in line:
                break
        time.sleep(delay)
    running = proc.poll() is None
    proc.send_signal(signal.SIGKILL)
    proc.wait(10)
    after = rows(data)
    if len(after) == len(before):
        assert after == before
    else:
        assert len(after) == len(before) + n, f"half an import: {len(after) - len(before)}"
        assert set(before) <= set(after)
    if delay is None or delay == 0.0:  # still verifying, or the transaction just began
        assert running and after == before


def status(hub: HubProcess) -> dict:
    url = hub.url.replace("ws://", "http://") + "/status.json"
    with urllib.request.urlopen(url, timeout=5) as r:
        return json.load(r)


def wait_for(pred, timeout: float = 10.0) -> bool:
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        if pred():
            return True
        time.sleep(0.1)
    return False


def test_a_small_import_reaches_live_subscribers_of_the_running_hub(tmp_path):
    """Events imported by another process are passed on to live subscriptions (and so to
    peer links) like events that just arrived, each once."""
    src = tmp_path / "src.db"
    k = Keys()
    events = [k.sign(1, f"from the stick {i}", [["t", "stick"]], T0 + i) for i in range(40)]
    store = SQLiteStore(src)
    store.save_many(events, now=T0)
    export_bundle(store, tmp_path / "small.szb", PrivateKey(), flt=Filter())
    store.close()
    data = tmp_path / "hub"
    hub = HubProcess(data)
    try:
        with Client(hub.url) as live:
            live.send(["REQ", "live", {"#t": ["stick"]}])
            assert live.recv() == ["EOSE", "live"]
            out = subprocess.run([sys.executable, "-m", "samizdat.cli", "import",
                                  str(tmp_path / "small.szb"), "--data", str(data), "--json"],
                                 capture_output=True, text=True, timeout=60)
            assert out.returncode == 0, out.stderr
            got = [live.recv() for _ in events]
            assert sorted(m[2]["id"] for m in got) == sorted(ev.id for ev in events)
            assert all(m[:2] == ["EVENT", "live"] for m in got)
            with pytest.raises(TimeoutError):
                live.recv(timeout=2.5)  # each once: not again at the next look
            assert live.publish(k.sign(1, "typed on the hub", [["t", "stick"]]))[0]
            assert live.recv()[2]["content"] == "typed on the hub"
            with pytest.raises(TimeoutError):
                live.recv(timeout=2.5)  # the hub's own write is not taken for an outside one
        assert status(hub)["events_stored"] == 41
    finally:
        hub.terminate()
    assert hub.proc.returncode == 0


def test_import_while_the_hub_runs_and_the_hub_serves_it(tmp_path, bundle):
    path, n = bundle
    data = tmp_path / "hub"
    hub = HubProcess(data)
    try:
        k = Keys()
        with Client(hub.url) as c:
            assert c.publish(k.sign(1, "before the import", [["t", "local"]]))[0]
        out = subprocess.run([sys.executable, "-m", "samizdat.cli", "import", str(path),
                              "--data", str(data), "--json"], capture_output=True, text=True,
                             timeout=120)
        assert out.returncode == 0, out.stderr
        assert json.loads(out.stdout)["imported"] == n
        with Client(hub.url) as c:
            assert c.count({"#t": ["crash"]}) == n
            got = c.query({"#t": ["crash"], "limit": 10_000})  # the hub's largest limit
            assert len(got) == 10_000 and got[0]["created_at"] == T0 + n - 1
            assert c.publish(k.sign(1, "after the import", [["t", "local"]]))[0]
            assert len(c.query({"#t": ["local"]})) == 2
        # the hub's own count follows what another process wrote (too many to replay live)
        assert wait_for(lambda: status(hub)["events_stored"] == n + 2)
        # export works while the hub runs too
        ex = subprocess.run([sys.executable, "-m", "samizdat.cli", "export",
                             str(tmp_path / "out.szb"), "--data", str(data), "--json"],
                            capture_output=True, text=True, timeout=120)
        assert ex.returncode == 0, ex.stderr
        assert json.loads(ex.stdout)["events"] == n + 2
    finally:
        hub.terminate()
    assert hub.proc.returncode == 0
