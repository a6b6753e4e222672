"""NIP-77 on the relay: a real client reconciles with a running hub over WebSocket."""

from __future__ import annotations

import time

import pytest

from samizdat.negentropy import Negentropy, VectorStorage

from .helpers import Client, Keys


def reconcile_over_ws(c: Client, mine: list, flt: dict, subid: str = "neg",
                      frame_limit: int = 0) -> tuple[set[bytes], set[bytes], int]:
    ne = Negentropy(VectorStorage.from_items(mine), frame_limit)
    c.send(["NEG-OPEN", subid, flt, ne.initiate().hex()])
    have: set[bytes] = set()
    need: set[bytes] = set()
    rounds = 0
    while True:
        frame = c.recv_until(lambda f: f[0] in ("NEG-MSG", "NEG-ERR") and f[1] == subid)
        assert frame[0] == "NEG-MSG", frame
        rounds += 1
        reply, h, n = ne.reconcile(bytes.fromhex(frame[2]))
        have |= set(h)
        need |= set(n)
        if reply is None:
            c.send(["NEG-CLOSE", subid])
            return have, need, rounds
        c.send(["NEG-MSG", subid, reply.hex()])


def test_reconcile_with_hub(make_hub):
    h = make_hub(**{"rate.events_per_second": 0, "rate.messages_per_second": 0})
    k = Keys()
    now = int(time.time())
    events = [k.sign(1, f"n{i}", created_at=now - i % 50) for i in range(300)]
    with Client(h.url) as c:
        for ev in events[:250]:
            assert c.publish(ev)[0]
        other = Keys().sign(7, "+")  # not selected by the filter below
        assert c.publish(other)[0]
        # the client holds events 50..299 plus one the hub has never seen
        extra = k.sign(1, "only on the client")
        mine = [(e.created_at, bytes.fromhex(e.id)) for e in events[50:]]
        mine.append((extra.created_at, bytes.fromhex(extra.id)))
        have, need, rounds = reconcile_over_ws(c, mine, {"kinds": [1]}, frame_limit=4096)
        assert need == {bytes.fromhex(e.id) for e in events[:50]}
        assert have == {bytes.fromhex(e.id) for e in events[250:]} | {bytes.fromhex(extra.id)}
        assert rounds >= 1


def test_neg_errors(hub):
    with Client(hub.url) as c:
        c.send(["NEG-MSG", "nope", "61"])
        f = c.recv_until(lambda f: f[0] == "NEG-ERR")
        assert f[1] == "nope" and f[2].startswith("closed:")
        c.send(["NEG-OPEN", "bad", {}, "zz"])
        f = c.recv_until(lambda f: f[0] == "NEG-ERR")
        assert f[1] == "bad" and f[2].startswith("invalid:")
        c.send(["NEG-OPEN", "v2", {}, "62"])  # a version we do not speak
        f = c.recv_until(lambda f: f[0] in ("NEG-MSG", "NEG-ERR") and f[1] == "v2")
        assert f == ["NEG-MSG", "v2", "61"]  # we answer with the version we support
        c.send(["NEG-OPEN", "trunc", {}, "6100"])  # a bound with no mode
        f = c.recv_until(lambda f: f[0] in ("NEG-MSG", "NEG-ERR") and f[1] == "trunc")
        assert f[0] == "NEG-ERR" and f[2].startswith("invalid:")
        c.send(["NEG-OPEN", "flt", {"kinds": "x"}, "61"])
        f = c.recv_until(lambda f: f[0] == "NEG-ERR" and f[1] == "flt")
        assert f[2].startswith("invalid:")
        # the hub is fine afterwards
        assert c.publish(Keys().sign(1, "still works"))[0]


def test_oversize_and_flooding_neg_messages(make_hub):
    from websockets.exceptions import ConnectionClosed

    h = make_hub(**{"limits.max_negentropy_sessions": 2, "rate.strikes": 100})
    with Client(h.url) as c:
        # sessions beyond the limit are refused with blocked:
        for i in range(3):
            c.send(["NEG-OPEN", f"s{i}", {}, "61"])
        frames = [c.recv_until(lambda f: f[0] in ("NEG-MSG", "NEG-ERR")) for _ in range(3)]
        errs = [f for f in frames if f[0] == "NEG-ERR"]
        assert len(errs) == 1 and errs[0][1] == "s2" and errs[0][2].startswith("blocked:")
        c.send(["NEG-CLOSE", "s0"])
        c.send(["NEG-CLOSE", "s1"])
        # a frame over max_message_length closes the connection (1009), the hub lives on
        c.send(["NEG-OPEN", "big", {}, "61" * (h.cfg.limits.max_message_length // 2 + 1)])
        with pytest.raises(ConnectionClosed) as exc:
            while True:
                c.recv(timeout=5)
        assert exc.value.rcvd is not None and exc.value.rcvd.code == 1009
    with Client(h.url) as c:
        assert c.publish(Keys().sign(1, "alive"))[0]
