"""Hub-to-hub sync: `samizdat sync` one-shot and `serve --peer` continuous, over real sockets."""

from __future__ import annotations

import asyncio
import json
import subprocess
import sys
import time

import pytest

from samizdat.nostr.filters import parse_filter
from samizdat.store import SQLiteStore
from samizdat.sync.session import PeerError, sync_once
from samizdat.sync.sinks import StoreSink

from .helpers import Client, HubProcess, Keys

FAST = {"rate.events_per_second": 0, "rate.messages_per_second": 0,
        "rate.ip_events_per_second": 0}


def publish_all(url: str, events) -> None:
    with Client(url) as c:
        for ev in events:
            c.send(["EVENT", ev.to_dict()])
        for ev in events:
            c.recv_until(lambda f, i=ev.id: f[0] == "OK" and f[1] == i)


def ids_at(url: str, flt: dict | None = None) -> set[str]:
    with Client(url) as c:
        return {e["id"] for e in c.query(flt or {"limit": 100_000})}


def samizdat(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "samizdat.cli", *args], capture_output=True,
                          text=True, timeout=120)


def test_one_shot_sync_converges_both_ways(make_hub, tmp_path):
    a = make_hub("a", **FAST, **{"limits.max_limit": 100_000})
    k = Keys()
    now = int(time.time())
    events = [k.sign(1, f"report {i}", [["t", "kz"]], created_at=now - i) for i in range(1500)]
    publish_all(a.url, events[:1000])
    # the local hub has an overlapping set (it is not running: sync works on its files)
    b = make_hub("b", **FAST, **{"limits.max_limit": 100_000})
    publish_all(b.url, events[500:])
    b.stop()
    res = samizdat("sync", a.url, "--data", str(b.cfg.data_dir), "--json")
    assert res.returncode == 0, res.stderr
    report = json.loads(res.stdout)
    assert report["have"] == 500 and report["need"] == 500
    assert report["sent"] == 500 and report["received"] == 500
    assert report["bytes_up"] > 0 and report["bytes_down"] > 0 and report["rounds"] >= 1
    assert ids_at(a.url) == {e.id for e in events}
    store = SQLiteStore(b.cfg.db_path)
    assert store.event_count == 1500
    store.close()
    # a second run finds nothing to do
    again = json.loads(samizdat("sync", a.url, "--data", str(b.cfg.data_dir), "--json").stdout)
    assert again["have"] == again["need"] == 0 and again["sent"] == again["received"] == 0


def test_direction_and_filter(make_hub, tmp_path):
    a = make_hub("a", **FAST)
    k = Keys()
    notes = [k.sign(1, f"n{i}") for i in range(20)]
    reactions = [k.sign(7, "+", [["e", notes[0].id]]) for _ in range(1)]
    publish_all(a.url, notes + reactions)
    data = tmp_path / "local"
    local_only = Keys().sign(1, "only here")
    store = SQLiteStore(data / "events.sqlite3")
    store.save_many([local_only])
    store.close()
    res = samizdat("sync", a.url, "--data", str(data), "--direction", "down",
                   "--filter", '{"kinds":[1]}', "--json")
    report = json.loads(res.stdout)
    assert report["received"] == 20 and report["sent"] == 0 and report["have"] == 1
    assert local_only.id not in ids_at(a.url)  # "down" sends nothing
    store = SQLiteStore(data / "events.sqlite3")
    assert store.event_count == 21  # kind 7 was outside the filter
    store.close()
    res = samizdat("sync", a.url, "--data", str(data), "--direction", "up", "--json")
    assert json.loads(res.stdout)["sent"] == 1
    assert local_only.id in ids_at(a.url)


def test_bad_arguments_are_explained(tmp_path):
    assert "ws://" in samizdat("sync", "http://x", "--data", str(tmp_path)).stderr
    assert "--filter" in samizdat("sync", "ws://127.0.0.1:1", "--filter", "{bad",
                                  "--data", str(tmp_path)).stderr
    res = samizdat("sync", "ws://127.0.0.1:1", "--data", str(tmp_path), "--timeout", "5")
    assert res.returncode == 1 and "cannot connect" in res.stderr


def test_continuous_sync_between_running_hubs(make_hub):
    a = make_hub("a", **FAST)
    k = Keys()
    before = [k.sign(1, f"before {i}") for i in range(50)]
    publish_all(a.url, before)
    b = make_hub("b", **FAST, **{"sync.peers": [a.url]})
    deadline = time.monotonic() + 20
    while time.monotonic() < deadline and len(ids_at(b.url)) < 50:
        time.sleep(0.2)
    assert ids_at(b.url) == {e.id for e in before}
    # live, both directions, and visible to a live subscriber on the other hub
    with Client(b.url) as watcher:
        watcher.req("w", {"kinds": [1], "since": int(time.time()) - 5})
        on_a = k.sign(1, "published on A")
        publish_all(a.url, [on_a])
        frame = watcher.recv_until(lambda f: f[0] == "EVENT" and f[2]["id"] == on_a.id)
        assert frame[1] == "w"
    on_b = k.sign(1, "published on B")
    publish_all(b.url, [on_b])
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline and on_b.id not in ids_at(a.url):
        time.sleep(0.1)
    assert on_b.id in ids_at(a.url)
    st = b.relay.status()["peers"][0]
    assert st["connected"] and st["received"] >= 51 and st["sent"] >= 0


def test_peer_restart_reconnects_and_resumes(make_hub, tmp_path):
    k = Keys()
    a_proc = HubProcess(tmp_path / "a")
    b = make_hub("b", **FAST, **{"sync.peers": [a_proc.url]})
    publish_all(a_proc.url, [k.sign(1, "first")])
    deadline = time.monotonic() + 15
    while time.monotonic() < deadline and len(ids_at(b.url)) < 1:
        time.sleep(0.2)
    a_proc.kill()  # the link drops hard
    while_down = [k.sign(1, f"while A was down {i}") for i in range(5)]
    publish_all(b.url, while_down)
    a2 = HubProcess(tmp_path / "a", port=a_proc.port)
    try:
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline and not {e.id for e in while_down} <= ids_at(a2.url):
            time.sleep(0.3)
        assert {e.id for e in while_down} <= ids_at(a2.url)
        assert b.relay.status()["peers"][0]["attempts"] >= 2
    finally:
        a2.terminate()


# --- peers that misbehave: a fake relay on loopback ------------------------------------------

class FakePeer:
    """A WebSocket server that answers NIP-77 like a relay would, then misbehaves."""

    def __init__(self, behaviour: str, events):
        self.behaviour = behaviour
        self.events = events

    async def handler(self, ws) -> None:
        from samizdat.negentropy import Negentropy, VectorStorage

        storage = VectorStorage.from_items(
            (e.created_at, bytes.fromhex(e.id)) for e in self.events)
        ne = Negentropy(storage, 0)
        async for raw in ws:
            frame = json.loads(raw)
            if frame[0] == "NEG-OPEN":
                if self.behaviour == "silent":
                    continue
                if self.behaviour == "garbage":
                    await ws.send(json.dumps(["NEG-MSG", frame[1], "61ff"]))
                    continue
                reply = ne.respond(bytes.fromhex(frame[3]))
                await ws.send(json.dumps(["NEG-MSG", frame[1], reply.hex()]))
            elif frame[0] == "NEG-MSG":
                reply = ne.respond(bytes.fromhex(frame[2]))
                await ws.send(json.dumps(["NEG-MSG", frame[1], reply.hex()]))
            elif frame[0] == "REQ":
                if self.behaviour == "liar":  # claims ids but sends only half, plus a stranger
                    for e in self.events[: len(self.events) // 2]:
                        await ws.send(json.dumps(["EVENT", frame[1], e.to_dict()]))
                    stranger = Keys().sign(1, "not asked for")
                    await ws.send(json.dumps(["EVENT", frame[1], stranger.to_dict()]))
                elif self.behaviour == "forger":
                    for e in self.events:
                        d = e.to_dict()
                        d["content"] = "altered"
                        await ws.send(json.dumps(["EVENT", frame[1], d]))
                await ws.send(json.dumps(["EOSE", frame[1]]))

    async def run(self, data) -> object:
        import websockets

        async with websockets.serve(self.handler, "127.0.0.1", 0) as server:
            port = server.sockets[0].getsockname()[1]
            store = SQLiteStore(data / "events.sqlite3")
            sink = StoreSink(store)
            try:
                return await sync_once(sink, f"ws://127.0.0.1:{port}", flt=parse_filter({}),
                                       filter_json={}, timeout=3)
            finally:
                sink.close()
                store.close()


@pytest.mark.parametrize("behaviour", ["silent", "garbage"])
def test_peer_that_fails_is_reported(tmp_path, behaviour):
    events = [Keys().sign(1, "x")]
    with pytest.raises(PeerError) as err:
        asyncio.run(FakePeer(behaviour, events).run(tmp_path))
    assert ("did not answer" if behaviour == "silent" else "malformed") in str(err.value)


def test_peer_that_lies_is_caught_and_nothing_bad_is_stored(tmp_path):
    events = [Keys().sign(1, f"e{i}") for i in range(10)]
    report = asyncio.run(FakePeer("liar", events).run(tmp_path))
    assert report.missing == 5 and report.received == 5
    assert report.rejected_from_peer == 1 and report.problems
    store = SQLiteStore(tmp_path / "events.sqlite3")
    assert store.event_count == 5
    store.close()


def test_forged_events_from_peer_are_rejected(tmp_path):
    events = [Keys().sign(1, f"e{i}") for i in range(4)]
    report = asyncio.run(FakePeer("forger", events).run(tmp_path))
    assert report.received == 0 and report.rejected_from_peer == 4
    assert any(r.startswith("invalid") for r in report.rejections)
    store = SQLiteStore(tmp_path / "events.sqlite3")
    assert store.event_count == 0
    store.close()


def test_sync_cut_mid_transfer_leaves_consistent_stores_and_resumes(tmp_path):
    import sqlite3

    k = Keys()
    events = [k.sign(1, f"report {i} " + "x" * 300) for i in range(6000)]
    config = tmp_path / "fast.toml"
    config.write_text("[rate]\nmessages_per_second = 0\nevents_per_second = 0\n"
                      "ip_events_per_second = 0\n")
    a = HubProcess(tmp_path / "a", "--config", str(config))
    publish_all(a.url, events)
    local = tmp_path / "local"
    proc = subprocess.Popen([sys.executable, "-m", "samizdat.cli", "sync", a.url, "--data",
                             str(local), "--json", "--timeout", "5"],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    db = local / "events.sqlite3"
    deadline = time.monotonic() + 30
    n = 0
    while time.monotonic() < deadline and proc.poll() is None:
        if db.exists():
            try:
                with sqlite3.connect(db, timeout=1) as c:
                    n = c.execute("SELECT count(*) FROM events").fetchone()[0]
            except sqlite3.OperationalError:
                n = 0
            if n > 0:
                break
        time.sleep(0.01)
    a.kill()  # the peer vanishes mid-transfer
    out, err = proc.communicate(timeout=60)
    if n < len(events):  # we did cut it short (on a very fast machine it may finish first)
        assert proc.returncode == 1, (out, err)
        assert "closed" in err or "did not answer" in err
    with sqlite3.connect(db) as c:
        assert c.execute("PRAGMA integrity_check").fetchone()[0] == "ok"
        partial = c.execute("SELECT count(*) FROM events").fetchone()[0]
    assert 0 < partial <= len(events)
    a2 = HubProcess(tmp_path / "a", "--config", str(config), port=a.port)
    try:
        res = samizdat("sync", a2.url, "--data", str(local), "--json")
        assert res.returncode == 0, res.stderr
        report = json.loads(res.stdout)
        # only what had not arrived travels the second time
        assert report["received"] == len(events) - partial and report["already_had"] == 0
    finally:
        a2.terminate()
    store = SQLiteStore(db)
    assert store.event_count == len(events)
    store.close()
