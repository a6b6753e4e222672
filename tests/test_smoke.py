from .helpers import Client


def test_publish_and_query_roundtrip(hub, alice):
    with Client(hub.url) as c:
        ev = alice.sign(1, "hello")
        assert c.publish(ev) == (True, "")
        got = c.query({"authors": [alice.pubkey]})
        assert [e["id"] for e in got] == [ev.id]
