"""NIP-09, 11, 13, 40, 42, 45, 50 and 70 against a running hub."""

from __future__ import annotations

import json
import time
import urllib.request

import pytest

from samizdat.nostr.event import compute_id, sign_event
from samizdat.nostr.filters import parse_filter
from samizdat.nostr.kinds import pow_difficulty

from .helpers import Client, Keys


def ids(events: list[dict]) -> list[str]:
    return [e["id"] for e in events]


# --- NIP-09 deletion --------------------------------------------------------------------------

def test_deletion_by_author_removes_and_blocks_republish(client, alice, bob):
    note = alice.sign(1, "I posted this by mistake")
    keep = alice.sign(1, "this one stays")
    for ev in (note, keep):
        assert client.publish(ev)[0]
    deletion = alice.sign(5, "mistake", [["e", note.id], ["k", "1"]])
    assert client.publish(deletion)[0]
    assert ids(client.query({"authors": [alice.pubkey], "kinds": [1]})) == [keep.id]
    # the deletion request itself is kept and served
    assert ids(client.query({"kinds": [5]})) == [deletion.id]
    ok, msg = client.publish(note)
    assert not ok and msg.startswith("blocked:")


def test_deletion_by_someone_else_has_no_effect(client, alice, bob):
    note = alice.sign(1, "alice's report")
    assert client.publish(note)[0]
    assert client.publish(bob.sign(5, "", [["e", note.id]]))[0]
    assert ids(client.query({"ids": [note.id]})) == [note.id]


def test_deletion_arriving_before_the_event_still_applies(client, alice):
    note = alice.sign(1, "synced late")
    assert client.publish(alice.sign(5, "", [["e", note.id]]))[0]
    ok, msg = client.publish(note)
    assert not ok and msg.startswith("blocked:")


def test_deletion_of_addressable_by_a_tag(client, alice):
    now = int(time.time())
    art = alice.sign(30023, "v1", [["d", "story"]], created_at=now - 10)
    assert client.publish(art)[0]
    addr = f"30023:{alice.pubkey}:story"
    assert client.publish(alice.sign(5, "", [["a", addr]], created_at=now - 5))[0]
    assert client.query({"kinds": [30023]}) == []
    # an older version is refused, a newer one (after the deletion) is accepted
    ok, msg = client.publish(alice.sign(30023, "v0", [["d", "story"]], created_at=now - 7))
    assert not ok and msg.startswith("blocked:")
    newer = alice.sign(30023, "v2", [["d", "story"]], created_at=now)
    assert client.publish(newer)[0]
    assert ids(client.query({"kinds": [30023]})) == [newer.id]


def test_deleting_a_deletion_has_no_effect(client, alice):
    note = alice.sign(1, "x")
    client.publish(note)
    d1 = alice.sign(5, "", [["e", note.id]])
    client.publish(d1)
    client.publish(alice.sign(5, "", [["e", d1.id]]))
    assert d1.id in ids(client.query({"kinds": [5]}))


# --- NIP-40 expiration ------------------------------------------------------------------------

def test_expired_event_is_refused(client, alice):
    ev = alice.sign(1, "old news", [["expiration", str(int(time.time()) - 1)]])
    ok, msg = client.publish(ev)
    assert not ok and msg.startswith("invalid:")


def test_expiring_event_disappears(make_hub, alice):
    h = make_hub(**{"store.expiry_purge_seconds": 1})
    with Client(h.url) as c:
        ev = alice.sign(1, "ephemeral news", [["expiration", str(int(time.time()) + 2)]])
        assert c.publish(ev)[0]
        assert ids(c.query({"ids": [ev.id]})) == [ev.id]
        time.sleep(3.2)
        assert c.query({"ids": [ev.id]}) == []  # hidden from queries at once
        assert c.count({"ids": [ev.id]}) == 0
        time.sleep(1.5)
    # and purged from the database by the background task (now=0 ignores the expiry filter)
    assert h.relay.store.store.count([parse_filter({"ids": [ev.id]})], now=0) == 0


# --- NIP-45 COUNT -----------------------------------------------------------------------------

def test_count(client, alice, bob):
    for i in range(5):
        client.publish(alice.sign(1, f"a{i}", [["t", "kz"]]))
    for i in range(3):
        client.publish(bob.sign(1, f"b{i}"))
    assert client.count({"kinds": [1]}) == 8
    assert client.count({"authors": [alice.pubkey]}) == 5
    # several filters: distinct events, no double counting; limit is ignored
    assert client.count({"#t": ["kz"]}, {"authors": [alice.pubkey], "limit": 1}) == 5
    assert client.count({"authors": [bob.pubkey]}, {"#t": ["kz"]}) == 8
    assert client.count({"kinds": [9999]}) == 0


# --- NIP-50 search ----------------------------------------------------------------------------

def test_search(hub, alice):
    with Client(hub.url) as c:
        a = alice.sign(1, "Protest at the Republic Square in Almaty")
        b = alice.sign(1, "Internet is down across Almaty; café closed")
        d = alice.sign(1, "Nothing here")
        for ev in (a, b, d):
            assert c.publish(ev)[0]
        assert set(ids(c.query({"search": "almaty"}))) == {a.id, b.id}
        assert ids(c.query({"search": "republic ALMATY"})) == [a.id]
        assert ids(c.query({"search": "cafe"})) == [b.id]  # diacritics folded
        assert c.query({"search": "tashkent"}) == []
        # extensions such as language:en are ignored, FTS syntax is not interpreted
        assert set(ids(c.query({"search": 'almaty language:en'}))) == {a.id, b.id}
        assert c.query({"search": 'NEAR( " OR * -'}) == []
        # live subscriptions use the same matching
        c.req("s", {"search": "square"})
        live = alice.sign(1, "Crowd growing at the square")
        assert c.publish(live)[0]
        frame = c.recv_until(lambda f: f[0] == "EVENT")
        assert frame[2]["id"] == live.id


# --- NIP-13 proof of work ---------------------------------------------------------------------

def mine(keys: Keys, difficulty: int, target: int | None = None) -> object:
    target = difficulty if target is None else target
    now = int(time.time())
    nonce = 0
    while True:
        tags = [["nonce", str(nonce), str(target)]]
        eid = compute_id(keys.pubkey, now, 1, tags, "mined")
        if pow_difficulty(eid) >= difficulty:
            return sign_event(keys.key, 1, "mined", tags, now)
        nonce += 1


def test_minimum_pow(make_hub, alice):
    h = make_hub(**{"limits.min_pow_difficulty": 8})
    with Client(h.url) as c:
        ok, msg = c.publish(alice.sign(1, "no work"))
        assert not ok and msg.startswith("pow:")
        assert c.publish(mine(alice, 8)) == (True, "")
        lucky = mine(alice, 8, target=4)  # enough zeros, but a lower committed target
        ok, msg = c.publish(lucky)
        assert not ok and msg.startswith("pow:")


# --- NIP-42 AUTH ------------------------------------------------------------------------------

def auth_event(keys: Keys, challenge: str, relay_url: str, created_at: int | None = None):
    return keys.sign(22242, "", [["relay", relay_url], ["challenge", challenge]], created_at)


def test_auth_required_for_write(make_hub, alice):
    h = make_hub(**{"auth.required_for_write": True})
    with Client(h.url) as c:
        challenge = c.recv_until(lambda f: f[0] == "AUTH")[1]
        ev = alice.sign(1, "before auth")
        ok, msg = c.publish(ev)
        assert not ok and msg.startswith("auth-required:")
        # reading is still open
        assert c.query({"kinds": [1]}) == []
        wrong = auth_event(alice, "not-the-challenge", h.url)
        c.send(["AUTH", wrong.to_dict()])
        f = c.recv_until(lambda f: f[0] == "OK" and f[1] == wrong.id)
        assert f[2] is False
        other_relay = auth_event(alice, challenge, "ws://elsewhere.example:7447")
        c.send(["AUTH", other_relay.to_dict()])
        assert c.recv_until(lambda f: f[0] == "OK" and f[1] == other_relay.id)[2] is False
        stale = auth_event(alice, challenge, h.url, created_at=int(time.time()) - 3600)
        c.send(["AUTH", stale.to_dict()])
        assert c.recv_until(lambda f: f[0] == "OK" and f[1] == stale.id)[2] is False
        good = auth_event(alice, challenge, h.url)
        c.send(["AUTH", good.to_dict()])
        assert c.recv_until(lambda f: f[0] == "OK" and f[1] == good.id)[2] is True
        assert c.publish(ev) == (True, "")
        # AUTH events are never stored or forwarded
        assert c.query({"kinds": [22242]}) == []


def test_auth_required_for_read(make_hub, alice):
    h = make_hub(**{"auth.required_for_read": True})
    with Client(h.url) as c:
        challenge = c.recv_until(lambda f: f[0] == "AUTH")[1]
        c.send(["REQ", "r", {"kinds": [1]}])
        f = c.recv_until(lambda f: f[0] == "CLOSED")
        assert f[1] == "r" and f[2].startswith("auth-required:")
        c.send(["COUNT", "n", {"kinds": [1]}])
        assert c.recv_until(lambda f: f[0] == "CLOSED")[2].startswith("auth-required:")
        good = auth_event(alice, challenge, h.url)
        c.send(["AUTH", good.to_dict()])
        assert c.recv_until(lambda f: f[0] == "OK")[2] is True
        assert c.query({"kinds": [1]}) == []


def test_allowed_pubkeys_restrict_writers(make_hub, alice, bob):
    h = make_hub(**{"auth.allowed_pubkeys": [alice.pubkey]})
    for keys, expected in ((alice, True), (bob, False)):
        with Client(h.url) as c:
            ok, msg = c.publish(keys.sign(1, "hello"))
            assert not ok and msg.startswith("auth-required:")
            challenge = c.recv_until(lambda f: f[0] == "AUTH")[1]
            c.send(["AUTH", auth_event(keys, challenge, h.url).to_dict()])
            assert c.recv_until(lambda f: f[0] == "OK")[2] is True
            ok, msg = c.publish(keys.sign(1, "after auth"))
            assert ok is expected
            if not expected:
                assert msg.startswith("restricted:")


# --- NIP-70 protected events ------------------------------------------------------------------

def test_protected_event_only_from_its_author(hub, alice, bob):
    protected = alice.sign(1, "only I may publish this", [["-"]])
    with Client(hub.url) as c:
        ok, msg = c.publish(protected)
        assert not ok and msg.startswith("auth-required:")
        challenge = c.recv_until(lambda f: f[0] == "AUTH")[1]
        c.send(["AUTH", auth_event(bob, challenge, hub.url).to_dict()])
        assert c.recv_until(lambda f: f[0] == "OK")[2] is True
        ok, msg = c.publish(protected)
        assert not ok and msg.startswith("restricted:")
    with Client(hub.url) as c:
        c.publish(alice.sign(1, "trigger challenge", [["-"]]))
        challenge = c.recv_until(lambda f: f[0] == "AUTH")[1]
        c.send(["AUTH", auth_event(alice, challenge, hub.url).to_dict()])
        assert c.recv_until(lambda f: f[0] == "OK")[2] is True
        assert c.publish(protected) == (True, "")


# --- NIP-11 and the status page ---------------------------------------------------------------

def http_get(url: str, headers: dict | None = None):
    req = urllib.request.Request(url, headers=headers or {})
    with urllib.request.urlopen(req, timeout=10) as resp:
        return resp.status, dict(resp.headers), resp.read()


def test_nip11_document_with_cors(make_hub):
    h = make_hub(**{"limits.max_subscriptions": 7, "limits.min_pow_difficulty": 3,
                    "relay.contact": "ops@example.org"})
    status, headers, body = http_get(h.http + "/", {"Accept": "application/nostr+json"})
    assert status == 200
    assert headers["Content-Type"].startswith("application/nostr+json")
    assert headers["Access-Control-Allow-Origin"] == "*"
    doc = json.loads(body)
    assert doc["pubkey"] == h.relay.pubkey
    assert doc["contact"] == "ops@example.org"
    assert {1, 9, 11, 13, 40, 42, 45, 50, 70} <= set(doc["supported_nips"])
    lim = doc["limitation"]
    assert lim["max_subscriptions"] == 7
    assert lim["min_pow_difficulty"] == 3
    assert lim["max_message_length"] == h.cfg.limits.max_message_length
    req = urllib.request.Request(h.http + "/", method="OPTIONS")
    with urllib.request.urlopen(req, timeout=10) as resp:
        assert resp.headers["Access-Control-Allow-Origin"] == "*"


def test_status_page(hub, client, alice):
    client.publish(alice.sign(1, "x"))
    status, headers, body = http_get(hub.http + "/status")
    text = body.decode()
    assert status == 200 and headers["Content-Type"].startswith("text/html")
    assert hub.relay.pubkey in text
    assert "Events stored" in text
    assert "Media stored</th><td><code>0 files, 0.0 MB" in text
    _, _, body = http_get(hub.http + "/status.json")
    st = json.loads(body)
    assert st["events_stored"] == 1 and st["connections"] == 1
    assert st["pubkey"] == hub.relay.pubkey
    assert st["media"] == {"blobs": 0, "bytes": 0}


@pytest.mark.parametrize("limit_key,value", [("max_content_length", 10), ("max_event_tags", 1)])
def test_event_limits(make_hub, alice, limit_key, value):
    h = make_hub(**{f"limits.{limit_key}": value})
    with Client(h.url) as c:
        ev = alice.sign(1, "x" * 11, [["t", "a"], ["t", "b"]])
        ok, msg = c.publish(ev)
        assert not ok and msg.startswith("invalid:")
        assert c.publish(alice.sign(1, "short", [["t", "a"]]))[0]
