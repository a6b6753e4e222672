"""Abuse: floods and too many connections are answered with the right prefix, then cut off,
while well-behaved clients keep being served."""

from __future__ import annotations

import json
import threading
import time

import pytest
from websockets.exceptions import ConnectionClosed, InvalidStatus

from .helpers import Client


def test_event_flood_is_rate_limited_then_cut_off(make_hub, alice, bob):
    h = make_hub(**{"rate.events_per_second": 5.0, "rate.events_burst": 10, "rate.strikes": 5})
    flood = [alice.sign(1, f"flood {i}") for i in range(60)]
    with Client(h.url) as flooder, Client(h.url) as neighbour:
        for ev in flood:
            try:
                flooder.send(["EVENT", ev.to_dict()])
            except ConnectionClosed:
                break
        answers = []
        try:
            while True:
                answers.append(flooder.recv(timeout=5))
        except ConnectionClosed as exc:
            close_code = exc.rcvd.code if exc.rcvd else None
        oks = [a for a in answers if a[0] == "OK"]
        accepted = [a for a in oks if a[2]]
        limited = [a for a in oks if not a[2]]
        assert limited and all(a[3].startswith("rate-limited:") for a in limited)
        assert any(a[0] == "NOTICE" and "disconnecting" in a[1] for a in answers)
        assert close_code == 1008
        # the neighbour was never affected
        ok, msg = neighbour.publish(bob.sign(1, "still here"))
        assert ok, msg
        # what fitted in the burst was stored (its OKs may be lost with the cut connection)
        stored = {e["id"] for e in neighbour.query({"authors": [alice.pubkey]})}
        assert 1 <= len(stored) <= 12
        assert {a[1] for a in accepted} <= stored
        assert stored <= {ev.id for ev in flood[:12]}


def test_garbage_flood_cut_off_neighbour_keeps_latency(make_hub, bob):
    h = make_hub(**{"rate.strikes": 10})
    stop = threading.Event()
    result: dict[str, object] = {}

    def garbage() -> None:
        with Client(h.url) as g:
            try:
                for _ in range(20_000):  # bounded: the hub must cut us off long before
                    if stop.is_set():
                        break
                    g.send("this is not json {{{")
            except ConnectionClosed as exc:
                result["code"] = exc.rcvd.code if exc.rcvd else None

    t = threading.Thread(target=garbage)
    t.start()
    with Client(h.url) as neighbour:
        for i in range(20):
            ok, _ = neighbour.publish(bob.sign(1, f"n{i}"), timeout=5)
            assert ok
    t.join(timeout=15)
    stop.set()
    assert result.get("code") == 1008
    assert h.relay.stats["disconnected_abusive"] >= 1


def test_message_rate_limit_on_req(make_hub):
    h = make_hub(**{"rate.messages_per_second": 1.0, "rate.messages_burst": 3, "rate.strikes": 100})
    with Client(h.url) as c:
        for i in range(6):
            c.send(["COUNT", f"c{i}", {"kinds": [1]}])
        frames = [c.recv_until(lambda f: f[0] in ("COUNT", "CLOSED")) for _ in range(6)]
        assert sum(1 for f in frames if f[0] == "COUNT") == 3
        closed = [f for f in frames if f[0] == "CLOSED"]
        assert len(closed) == 3 and all(f[2].startswith("rate-limited:") for f in closed)


def test_connections_per_ip_limit(make_hub):
    h = make_hub(**{"rate.ip_max_connections": 2})
    a, b = Client(h.url), Client(h.url)
    try:
        with pytest.raises(InvalidStatus) as err:
            Client(h.url)
        assert err.value.response.status_code == 429
        a.close()
        time.sleep(0.3)
        c = Client(h.url)
        c.close()
    finally:
        a.close()
        b.close()


def test_slow_reader_is_cut_off(make_hub, alice):
    h = make_hub(**{"limits.max_outbound_messages": 50})
    with Client(h.url) as w:
        for i in range(120):
            w.publish(alice.sign(1, f"n{i}"))
    # ask for 120 events while allowing only 50 queued frames: the hub gives up on us
    with Client(h.url) as c:
        c.send(json.dumps(["REQ", "all", {"kinds": [1], "limit": 500}]))
        with pytest.raises(ConnectionClosed) as exc:
            while True:
                c.recv(timeout=5)
        assert exc.value.rcvd is not None and exc.value.rcvd.code == 1008


def test_subscription_hoarder_is_cut_off(make_hub):
    h = make_hub(**{"limits.max_subscriptions": 2, "rate.strikes": 3})
    with Client(h.url) as c:
        c.req("a", {"kinds": [1]})
        c.req("b", {"kinds": [1]})
        frames = []
        with pytest.raises(ConnectionClosed) as exc:
            for i in range(50):
                c.send(["REQ", f"extra{i}", {"kinds": [1]}])
                frames.append(c.recv(timeout=5))
            while True:
                frames.append(c.recv(timeout=5))
        closed = [f for f in frames if f[0] == "CLOSED"]
        assert closed and all(f[2].startswith("restricted:") for f in closed)
        assert exc.value.rcvd is not None and exc.value.rcvd.code == 1008
