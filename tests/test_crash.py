"""Durability: a hub killed with SIGKILL mid-burst loses no acknowledged event."""

from __future__ import annotations

import json
import sqlite3
import threading

import pytest
from websockets.exceptions import ConnectionClosed

from .helpers import Client, HubProcess, Keys

# This test is about durability, not rate limits: let the burst through.
UNLIMITED = """
[rate]
messages_per_second = 0
events_per_second = 0
ip_events_per_second = 0
"""


@pytest.mark.parametrize("kill_after", [1, 700, 2500])
def test_sigkill_during_burst_keeps_every_acknowledged_event(tmp_path, kill_after):
    data = tmp_path / "hub"
    keys = Keys()
    events = [keys.sign(1, f"burst {i} " + "x" * 200, [["t", "crash"]]) for i in range(4000)]
    config = tmp_path / "hub.toml"
    config.write_text(UNLIMITED)
    hub = HubProcess(data, "--config", str(config))
    acked: set[str] = set()
    try:
        with Client(hub.url) as c:
            def pump() -> None:
                try:
                    for ev in events:
                        c.send(json.dumps(["EVENT", ev.to_dict()]))
                except ConnectionClosed:
                    pass

            sender = threading.Thread(target=pump, daemon=True)
            sender.start()
            try:
                while len(acked) < kill_after:
                    frame = c.recv(timeout=30)
                    if frame[0] == "OK" and frame[2]:
                        acked.add(frame[1])
                hub.kill()  # no chance to flush, close or checkpoint
                while True:  # frames already on the wire before the kill still count
                    frame = c.recv(timeout=5)
                    if frame[0] == "OK" and frame[2]:
                        acked.add(frame[1])
            except (ConnectionClosed, TimeoutError):
                pass
            sender.join(timeout=10)
    finally:
        if hub.proc.poll() is None:
            hub.kill()
    assert len(acked) >= kill_after

    restarted = HubProcess(data)
    try:
        with Client(restarted.url) as c:
            stored = {e["id"] for e in c.query({"#t": ["crash"], "limit": 10_000})}
        missing = acked - stored
        assert not missing, f"{len(missing)} acknowledged events lost"
        assert stored <= {ev.id for ev in events}
    finally:
        restarted.terminate()
    with sqlite3.connect(data / "events.sqlite3") as db:
        assert db.execute("PRAGMA integrity_check").fetchone()[0] == "ok"
        n_events = db.execute("SELECT count(*) FROM events").fetchone()[0]
        n_tags = db.execute("SELECT count(*) FROM tags").fetchone()[0]
    assert n_events == len(stored) == n_tags  # each event has exactly one tag row
