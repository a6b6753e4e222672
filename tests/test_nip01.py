"""NIP-01 over real WebSocket connections: storage semantics, queries, live subscriptions."""

from __future__ import annotations

import time

from .helpers import Client, Keys


def ids(events: list[dict]) -> list[str]:
    return [e["id"] for e in events]


def test_ok_and_duplicate(client, alice):
    ev = alice.sign(1, "first report from the square")
    assert client.publish(ev) == (True, "")
    ok, msg = client.publish(ev)  # NIP-01: acknowledged, with the reason
    assert ok is True and msg.startswith("duplicate:")
    assert len(client.query({"ids": [ev.id]})) == 1


def test_stored_event_is_returned_verbatim(client, alice):
    ev = alice.sign(1, "tabs\tquotes\" newline\n control\x01 é 🙂", [["t", "news"], ["p", "ab" * 32]])
    assert client.publish(ev)[0]
    [got] = client.query({"ids": [ev.id]})
    assert got == ev.to_dict()


def test_limit_returns_newest_first_ties_by_lowest_id(client, alice):
    now = int(time.time())
    evs = [alice.sign(1, f"n{i}", created_at=now - (i // 3)) for i in range(12)]
    for ev in evs:
        assert client.publish(ev)[0]
    expected = sorted(evs, key=lambda e: (-e.created_at, e.id))
    assert ids(client.query({"authors": [alice.pubkey]})) == [e.id for e in expected]
    assert ids(client.query({"authors": [alice.pubkey], "limit": 5})) == [e.id for e in expected[:5]]
    assert client.query({"authors": [alice.pubkey], "limit": 0}) == []


def test_every_filter_field(client, alice, bob):
    now = int(time.time())
    a1 = alice.sign(1, "alpha", [["t", "kz"], ["e", "11" * 32]], created_at=now - 100)
    a2 = alice.sign(7, "+", [["e", a1.id], ["p", alice.pubkey]], created_at=now - 50)
    b1 = bob.sign(1, "beta", [["t", "almaty"], ["g", "v9c"]], created_at=now - 10)
    for ev in (a1, a2, b1):
        assert client.publish(ev)[0]
    assert ids(client.query({"ids": [a1.id, b1.id]})) == [b1.id, a1.id]
    assert ids(client.query({"authors": [bob.pubkey]})) == [b1.id]
    assert set(ids(client.query({"kinds": [1]}))) == {a1.id, b1.id}
    assert ids(client.query({"#e": [a1.id]})) == [a2.id]
    assert ids(client.query({"#t": ["kz", "almaty"]})) == [b1.id, a1.id]
    assert ids(client.query({"#g": ["v9c"]})) == [b1.id]
    assert ids(client.query({"since": now - 60})) == [b1.id, a2.id]
    assert ids(client.query({"until": now - 60})) == [a1.id]
    assert ids(client.query({"since": now - 60, "until": now - 20})) == [a2.id]
    assert ids(client.query({"kinds": [1], "authors": [alice.pubkey], "#t": ["kz"]})) == [a1.id]
    # several filters in one REQ: the union, each filter with its own limit
    both = client.query({"authors": [alice.pubkey], "limit": 1}, {"authors": [bob.pubkey]})
    assert ids(both) == [b1.id, a2.id]
    # an empty list matches nothing
    assert client.query({"kinds": []}) == []


def test_live_subscription_and_close(hub, alice, bob):
    with Client(hub.url) as reader, Client(hub.url) as writer:
        assert reader.req("live", {"kinds": [1], "authors": [alice.pubkey]}) == []
        other = bob.sign(1, "not for this subscription")
        mine = alice.sign(1, "live report")
        assert writer.publish(other)[0]
        assert writer.publish(mine)[0]
        frame = reader.recv_until(lambda f: f[0] == "EVENT")
        assert frame[1] == "live" and frame[2]["id"] == mine.id
        reader.send(["CLOSE", "live"])
        # after CLOSE nothing more arrives for that subscription; a COUNT proves the order
        assert writer.publish(alice.sign(1, "after close"))[0]
        assert reader.count({"authors": [alice.pubkey]}) == 2
        assert not [f for f in reader.pending if f[0] == "EVENT"]


def test_req_with_same_id_replaces_subscription(hub, alice):
    with Client(hub.url) as c, Client(hub.url) as w:
        c.req("s", {"kinds": [1]})
        c.req("s", {"kinds": [7]})
        assert w.publish(alice.sign(1, "kind one"))[0]
        reaction = alice.sign(7, "+")
        assert w.publish(reaction)[0]
        frame = c.recv_until(lambda f: f[0] == "EVENT")
        assert frame[2]["id"] == reaction.id


def test_replaceable_keeps_newest_and_lowest_id_on_tie(client):
    k = Keys()
    now = int(time.time())
    old = k.sign(0, '{"name":"old"}', created_at=now - 10)
    new = k.sign(0, '{"name":"new"}', created_at=now)
    assert client.publish(old)[0]
    assert client.publish(new)[0]
    ok, msg = client.publish(k.sign(0, '{"name":"older"}', created_at=now - 20))
    assert not ok and msg.startswith("duplicate:")
    assert ids(client.query({"kinds": [0], "authors": [k.pubkey]})) == [new.id]
    # same created_at: the lowest id wins, whichever arrives first
    tie = [k.sign(0, f'{{"name":"tie{i}"}}', created_at=now + 1) for i in range(4)]
    for ev in tie:
        client.publish(ev)
    assert ids(client.query({"kinds": [0], "authors": [k.pubkey]})) == [min(e.id for e in tie)]
    # kinds 3 and 10000-19999 are replaceable too
    for kind in (3, 10002):
        client.publish(k.sign(kind, "a", created_at=now - 1))
        newest = k.sign(kind, "b", created_at=now)
        client.publish(newest)
        assert ids(client.query({"kinds": [kind], "authors": [k.pubkey]})) == [newest.id]


def test_addressable_by_d_tag(client, alice):
    now = int(time.time())
    a_old = alice.sign(30023, "draft", [["d", "article"]], created_at=now - 5)
    a_new = alice.sign(30023, "final", [["d", "article"]], created_at=now)
    other = alice.sign(30023, "other", [["d", "another"]], created_at=now - 5)
    no_d = alice.sign(30023, "no d tag", [], created_at=now - 5)
    empty_d = alice.sign(30023, "empty d tag", [["d", ""]], created_at=now)
    for ev in (a_old, a_new, other, no_d, empty_d):
        client.publish(ev)
    got = set(ids(client.query({"kinds": [30023], "authors": [alice.pubkey]})))
    # no d tag and d="" are the same address; the newer one wins
    assert got == {a_new.id, other.id, empty_d.id}
    assert ids(client.query({"kinds": [30023], "#d": ["article"]})) == [a_new.id]


def test_ephemeral_forwarded_not_stored(hub, alice):
    with Client(hub.url) as reader, Client(hub.url) as writer:
        reader.req("eph", {"kinds": [20001]})
        ev = alice.sign(20001, "typing...")
        assert writer.publish(ev) == (True, "")
        frame = reader.recv_until(lambda f: f[0] == "EVENT")
        assert frame[2]["id"] == ev.id
        assert writer.query({"kinds": [20001]}) == []


def test_event_published_during_initial_query_is_delivered_once(hub, alice):
    with Client(hub.url) as reader, Client(hub.url) as writer:
        for i in range(200):
            assert writer.publish(alice.sign(1, f"bulk {i}"))[0]
        reader.send(["REQ", "race", {"authors": [alice.pubkey], "limit": 1000}])
        late = alice.sign(1, "late")
        assert writer.publish(late)[0]
        seen: list[str] = []
        eose = False
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline and (not eose or late.id not in seen):
            f = reader.recv(timeout=5)
            if f[0] == "EOSE":
                eose = True
            elif f[0] == "EVENT":
                seen.append(f[2]["id"])
        assert seen.count(late.id) == 1
        assert len(seen) == 201


def test_too_many_subscriptions_closed_with_prefix(make_hub):
    h = make_hub(**{"limits.max_subscriptions": 3})
    with Client(h.url) as c:
        for i in range(3):
            c.req(f"s{i}", {"kinds": [1]})
        c.send(["REQ", "s3", {"kinds": [1]}])
        frame = c.recv_until(lambda f: f[0] == "CLOSED")
        assert frame[1] == "s3" and frame[2].startswith("restricted:")
        # closing one frees a slot
        c.send(["CLOSE", "s0"])
        assert c.req("s4", {"kinds": [1]}) == []
