"""Interoperability with a third-party client: nostr-tools (JavaScript) against a running hub.

Every test starts a real hub on 127.0.0.1 and a node process running
tests/js/nostr_tools_driver.mjs, which uses nostr-tools' own Relay, SimplePool,
key generation and signing. What nostr-tools sees is then checked against what
the Python client (tests/helpers.py) and the hub's store see.

The JavaScript packages come from tests/js/package-lock.json: `make install-test`
(or `make test`) runs `npm ci` there.
"""

from __future__ import annotations

import contextlib
import json
import time
from collections.abc import Callable, Iterable, Iterator

import pytest

from samizdat.nostr.event import Event, compute_id, parse_event

from .helpers import ROOT, Client, Keys
from .nodedriver import DriverError, NodeDriver

JS_DIR = ROOT / "tests" / "js"
DRIVER = JS_DIR / "nostr_tools_driver.mjs"
CALL_TIMEOUT = 15.0


class NostrTools(NodeDriver):
    """One `node nostr_tools_driver.mjs URL` process, spoken to one JSON line at a time."""

    call_timeout = CALL_TIMEOUT

    def __init__(self, url: str):
        super().__init__(DRIVER.name, url)


@pytest.fixture
def nostr_tools() -> Iterator[Callable[[str], NostrTools]]:
    """Factory: ``nostr_tools(hub.url)`` starts a driver; all are stopped after the test."""
    missing = [name for name in ("nostr-tools", "ws")
               if not (JS_DIR / "node_modules" / name / "package.json").is_file()]
    if missing:
        pytest.fail(f"{JS_DIR / 'node_modules'} lacks {', '.join(missing)}: run "
                    "`make install-test` (it runs `npm ci` in tests/js) before these tests",
                    pytrace=False)
    started: list[NostrTools] = []

    def start(url: str) -> NostrTools:
        assert url.startswith("ws://127.0.0.1:"), url
        driver = NostrTools(url)
        started.append(driver)
        return driver

    yield start
    for driver in started:
        driver.close()


def newest_first(events: Iterable[Event]) -> list[str]:
    """Ids in the order NIP-01 asks of a relay: newest first, ties by lowest id."""
    return [e.id for e in sorted(events, key=lambda e: (-e.created_at, e.id))]


def ids(events: list[dict]) -> list[str]:
    return [e["id"] for e in events]


def publish_all(client: Client, *events: Event) -> None:
    for ev in events:
        assert client.publish(ev) == (True, ""), ev


def query_ok(nt: NostrTools, conn: str, *filters: dict) -> list[dict]:
    """Stored events for the filters via nostr-tools' Relay.subscribe, after a real EOSE."""
    res = nt.call("query", conn=conn, filters=list(filters))
    assert res["eose"] is True, f"no EOSE for {filters}: {res}"
    assert res["closed"] is None, f"subscription closed by the hub: {res['closed']}"
    assert res["invalid"] == [], f"nostr-tools rejected events from the hub: {res['invalid']}"
    return res["events"]


# --- (1) nostr-tools keys and events, seen by the Python side --------------------------------

TRICKY = 'quote " backslash \\ newline \n cr \r tab \t bs \b ff \f ls \u2028 del \x7f ünï 📰'


def test_events_signed_by_nostr_tools_are_stored_and_verify(hub, nostr_tools):
    nt = nostr_tools(hub.url)
    key = nt.call("keygen")
    pk, sk = key["pubkey"], key["sk"]
    assert Keys(bytes.fromhex(sk)).pubkey == pk, "nostr-tools and coincurve derive different keys"

    now = int(time.time())
    templates = [
        {"kind": 1, "content": "first note from nostr-tools", "created_at": now - 30,
         "tags": [["t", "samizdat"], ["t", "interop"]]},
        {"kind": 1, "content": TRICKY, "created_at": now - 20,
         "tags": [["t", "samizdat"], ["p", Keys().pubkey, "ws://127.0.0.1/", "petname"]]},
    ]
    events: list[dict] = []
    for tpl in templates:
        signed = nt.call("sign", sk=sk, template=tpl)
        assert signed["verified"] is True
        events.append(signed["event"])
    reply = nt.call("sign", sk=sk, template={
        "kind": 1, "content": "a reply", "created_at": now - 10,
        "tags": [["e", events[0]["id"], "", "root"], ["t", "interop"]]})["event"]
    events.append(reply)

    for ev in events:
        assert ev["pubkey"] == pk
        # Both sides serialise the event for its id the same way (NIP-01), escapes included.
        assert compute_id(ev["pubkey"], ev["created_at"], ev["kind"], ev["tags"],
                          ev["content"]) == ev["id"]
        parse_event(ev).verify()

    nt.call("connect", conn="w")
    for ev in events:
        assert nt.call("publish", conn="w", event=ev) == {"reason": ""}

    with Client(hub.url) as c:
        got = c.query({"authors": [pk]})
        assert ids(got) == [reply["id"], events[1]["id"], events[0]["id"]]
        assert got == [reply, events[1], events[0]]  # byte-for-byte the same fields
        for ev in got:
            parse_event(ev).verify()
        assert ids(c.query({"#e": [events[0]["id"]]})) == [reply["id"]]
        assert ids(c.query({"#t": ["interop"], "authors": [pk]})) == [reply["id"], events[0]["id"]]
        assert c.count({"authors": [pk], "kinds": [1]}) == 3
    assert hub.relay.status()["events_stored"] == 3


# --- (2) Python publishes, nostr-tools queries ------------------------------------------------

def test_nostr_tools_queries_return_exact_ids_newest_first(hub, nostr_tools, alice, bob):
    base = int(time.time()) - 1000
    a_news = [alice.sign(1, f"alice news {i}", [["t", "news"]], base + 10 * i) for i in range(4)]
    a_sport = [alice.sign(1, f"alice sport {i}", [["t", "sport"]], base + 5 + 10 * i)
               for i in range(2)]
    b_news = [bob.sign(1, f"bob news {i}", [["t", "news"], ["t", "world"]], base + 2 + 10 * i)
              for i in range(3)]
    reaction = alice.sign(7, "+", [["e", a_news[0].id], ["p", bob.pubkey]], base + 40)
    with Client(hub.url) as c:
        publish_all(c, *a_news, *a_sport, *b_news, reaction)
    everything = [*a_news, *a_sport, *b_news, reaction]

    nt = nostr_tools(hub.url)
    nt.call("connect", conn="r")

    got = query_ok(nt, "r", {"kinds": [1], "authors": [alice.pubkey]})
    assert ids(got) == newest_first(a_news + a_sport)
    assert got == [e.to_dict() for e in sorted(a_news + a_sport, key=lambda e: -e.created_at)]

    assert ids(query_ok(nt, "r", {"#t": ["news"], "limit": 3})) == \
        newest_first(a_news + b_news)[:3]
    assert ids(query_ok(nt, "r", {"kinds": [1], "authors": [bob.pubkey], "#t": ["world"]})) == \
        newest_first(b_news)
    assert ids(query_ok(nt, "r", {"kinds": [7], "#e": [a_news[0].id]})) == [reaction.id]
    assert ids(query_ok(nt, "r", {"authors": [alice.pubkey, bob.pubkey],
                                  "since": base + 10, "until": base + 22})) == \
        newest_first(e for e in everything if base + 10 <= e.created_at <= base + 22)
    assert ids(query_ok(nt, "r", {"ids": [a_sport[0].id]}, {"kinds": [7]})) == \
        newest_first([a_sport[0], reaction])
    # Two filters are a union, each with its own limit: the 2 newest kind-1 events + all sport.
    kind1 = [*a_news, *a_sport, *b_news]
    two_newest = [e for e in kind1 if e.id in newest_first(kind1)[:2]]
    assert ids(query_ok(nt, "r", {"kinds": [1], "limit": 2}, {"#t": ["sport"]})) == \
        newest_first({e.id: e for e in [*two_newest, *a_sport]}.values())
    assert query_ok(nt, "r", {"#t": ["nothing-has-this-tag"]}) == []

    # SimplePool.querySync: the high-level API most apps use.
    pooled = nt.call("pool_query", filter={"kinds": [1], "#t": ["news"], "limit": 5})["events"]
    assert ids(pooled) == newest_first(a_news + b_news)[:5]


# --- (3) live subscription -------------------------------------------------------------------

def test_nostr_tools_live_subscription_gets_new_events(hub, nostr_tools, alice, bob):
    now = int(time.time())
    old = alice.sign(1, "stored before the REQ", [["t", "breaking"]], now - 60)
    with Client(hub.url) as c:
        publish_all(c, old)

    nt = nostr_tools(hub.url)
    nt.call("connect", conn="r")
    first = nt.call("subscribe", conn="r", sub="live", filters=[{"kinds": [1], "#t": ["breaking"]}])
    assert first["eose"] is True and first["closed"] is None
    assert ids(first["events"]) == [old.id]
    eph = nt.call("subscribe", conn="r", sub="eph", filters=[{"kinds": [20001]}])
    assert eph["eose"] is True and eph["events"] == []

    fresh = bob.sign(1, "breaking now", [["t", "breaking"]])
    ephemeral = alice.sign(20001, "typing…", [["t", "breaking"]])
    with Client(hub.url) as c:
        # Non-matching events go first: had the hub forwarded them, they would arrive first.
        publish_all(c, alice.sign(1, "weather", [["t", "weather"]]),
                    alice.sign(7, "+", [["t", "breaking"]]))
        publish_all(c, fresh, ephemeral)

    live = nt.call("wait_live", sub="live", count=1)
    assert live["invalid"] == [] and live["closed"] is None
    assert live["events"] == [fresh.to_dict()]
    live_eph = nt.call("wait_live", sub="eph", count=1)
    assert live_eph["events"] == [ephemeral.to_dict()]

    # Ephemeral events are forwarded, never stored.
    assert query_ok(nt, "r", {"kinds": [20001]}) == []
    nt.call("unsubscribe", sub="live")
    nt.call("unsubscribe", sub="eph")


# --- (4) invalid events ----------------------------------------------------------------------

def test_nostr_tools_tampered_events_are_rejected(hub, nostr_tools):
    nt = nostr_tools(hub.url)
    key = nt.call("keygen")
    tpl = {"kind": 1, "content": "signed, then edited", "tags": [["t", "tamper"]]}
    edited = nt.call("sign", sk=key["sk"], template=tpl, tamper="content")["event"]
    forged = nt.call("sign", sk=key["sk"], template={**tpl, "content": "bad sig"},
                     tamper="sig")["event"]
    assert nt.call("verify", event=edited) == {"verified": False}
    assert nt.call("verify", event=forged) == {"verified": False}

    nt.call("connect", conn="w")
    err = nt.fails("publish", conn="w", event=edited)
    assert err.startswith("invalid:"), err
    assert "id" in err, err
    err = nt.fails("publish", conn="w", event=forged)
    assert err.startswith("invalid:"), err
    assert "signature" in err, err

    # The connection stays usable and nothing of the rejected events was stored.
    good = nt.call("sign", sk=key["sk"], template={**tpl, "content": "honest"})["event"]
    assert nt.call("publish", conn="w", event=good) == {"reason": ""}
    with Client(hub.url) as c:
        assert c.query({"authors": [key["pubkey"]]}) == [good]
        assert c.query({"ids": [edited["id"], forged["id"]]}) == []


# --- (5) replaceable and addressable events -------------------------------------------------

def test_nostr_tools_replaceable_event_keeps_only_the_newest(hub, nostr_tools):
    nt = nostr_tools(hub.url)
    key = nt.call("keygen")
    sk, pk = key["sk"], key["pubkey"]
    now = int(time.time())

    def sign(kind: int, content: str, created_at: int, tags: list | None = None) -> dict:
        return nt.call("sign", sk=sk, template={"kind": kind, "content": content,
                                                "created_at": created_at, "tags": tags or []})[
            "event"]

    v1 = sign(0, json.dumps({"name": "first"}), now - 20)
    v2 = sign(0, json.dumps({"name": "second"}), now - 10)
    art_a1 = sign(30023, "article a, draft", now - 20, [["d", "a"]])
    art_a2 = sign(30023, "article a, final", now - 10, [["d", "a"]])
    art_b = sign(30023, "article b", now - 15, [["d", "b"]])

    nt.call("connect", conn="w")
    for ev in (v1, v2, art_a1, art_a2, art_b):
        assert nt.call("publish", conn="w", event=ev) == {"reason": ""}

    assert query_ok(nt, "w", {"kinds": [0], "authors": [pk]}) == [v2]
    assert ids(nt.call("pool_query", filter={"kinds": [0], "authors": [pk]})["events"]) == \
        [v2["id"]]
    assert ids(query_ok(nt, "w", {"kinds": [30023], "authors": [pk]})) == \
        [art_a2["id"], art_b["id"]]
    assert ids(query_ok(nt, "w", {"kinds": [30023], "#d": ["a"]})) == [art_a2["id"]]

    # Sending the older version again must not bring it back.
    with contextlib.suppress(DriverError):
        nt.call("publish", conn="w", event=v1)
    assert query_ok(nt, "w", {"kinds": [0], "authors": [pk]}) == [v2]
    with Client(hub.url) as c:
        assert c.query({"kinds": [0], "authors": [pk]}) == [v2]
        assert c.query({"ids": [v1["id"], art_a1["id"]]}) == []


# --- (6) NIP-42 ------------------------------------------------------------------------------

def test_nostr_tools_authenticates_with_nip42(make_hub, nostr_tools):
    hub = make_hub(**{"auth.required_for_write": True})
    nt = nostr_tools(hub.url)
    key = nt.call("keygen")
    sk = key["sk"]

    def note(content: str) -> dict:
        return nt.call("sign", sk=sk, template={"kind": 1, "content": content})["event"]

    first, second, third = note("after AUTH"), note("via SimplePool onauth"), note("no auth")

    nt.call("connect", conn="w")
    err = nt.fails("publish", conn="w", event=first)
    assert err.startswith("auth-required:"), err
    with Client(hub.url) as c:
        assert c.query({"ids": [first["id"]]}) == []

    # relay.auth(signer): nostr-tools builds the kind-22242 event from the hub's challenge and
    # its own normalised URL ("ws://127.0.0.1:PORT/"); the hub must accept both.
    assert nt.call("auth", conn="w", sk=sk) == {"reason": ""}
    assert nt.call("publish", conn="w", event=first) == {"reason": ""}

    # A wrong challenge or a relay tag naming another relay is refused.
    for conn, tamper in (("bad-challenge", "challenge"), ("bad-relay", "relay")):
        nt.call("connect", conn=conn)
        # The hub's OK comes after its AUTH challenge, so the challenge has arrived by now.
        assert nt.fails("publish", conn=conn, event=second).startswith("auth-required:")
        err = nt.fails("auth", conn=conn, sk=sk, tamper=tamper)
        assert err.startswith("invalid:"), err
        assert nt.fails("publish", conn=conn, event=second).startswith("auth-required:")
        nt.call("close", conn=conn)

    # SimplePool.publish with onauth: rejected with auth-required, authenticates, retries.
    res = nt.call("pool_publish", event=second, onauth_sk=sk)
    assert res["results"] == [{"ok": True, "reason": ""}]
    res = nt.call("pool_publish", event=third)
    assert len(res["results"]) == 1 and res["results"][0]["ok"] is False
    assert res["results"][0]["error"].startswith("auth-required:"), res

    with Client(hub.url) as c:
        assert ids(c.query({"authors": [key["pubkey"]]})) == \
            newest_first([parse_event(first), parse_event(second)])
        assert c.query({"ids": [third["id"]]}) == []


def test_nostr_tools_auth_with_allowed_pubkeys(make_hub, nostr_tools):
    member, outsider = Keys(), Keys()
    hub = make_hub(**{"auth.allowed_pubkeys": [member.pubkey]})
    nt = nostr_tools(hub.url)
    ev = nt.call("sign", sk=outsider.key.secret.hex(),
                 template={"kind": 1, "content": "from an outsider"})["event"]

    nt.call("connect", conn="outsider")
    assert nt.fails("publish", conn="outsider", event=ev).startswith("auth-required:")
    assert nt.call("auth", conn="outsider", sk=outsider.key.secret.hex()) == {"reason": ""}
    err = nt.fails("publish", conn="outsider", event=ev)
    assert err.startswith("restricted:"), err

    # A member may publish (even someone else's signed event) once authenticated.
    nt.call("connect", conn="member")
    assert nt.fails("publish", conn="member", event=ev).startswith("auth-required:")
    assert nt.call("auth", conn="member", sk=member.key.secret.hex()) == {"reason": ""}
    assert nt.call("publish", conn="member", event=ev) == {"reason": ""}
    with Client(hub.url) as c:
        assert ids(c.query({"ids": [ev["id"]]})) == [ev["id"]]


# --- (7) NIP-45 COUNT ------------------------------------------------------------------------

def test_nostr_tools_count(hub, nostr_tools, alice, bob):
    base = int(time.time()) - 500
    a_events = [alice.sign(1, f"a{i}", [["t", "x" if i < 3 else "y"]], base + i) for i in range(5)]
    b_events = [bob.sign(1, f"b{i}", [["t", "x"]], base + 10 + i) for i in range(2)]
    reaction = alice.sign(7, "+", [["e", a_events[0].id]], base + 20)
    with Client(hub.url) as c:
        publish_all(c, *a_events, *b_events, reaction)
        cases: list[tuple[list[dict], int]] = [
            ([{"kinds": [1], "authors": [alice.pubkey]}], 5),
            ([{"#t": ["x"]}], 5),
            ([{"#t": ["y"]}], 2),
            ([{"kinds": [1], "authors": [alice.pubkey]}, {"#t": ["x"]}], 7),  # distinct union
            ([{"kinds": [1], "limit": 1}], 7),  # limit does not apply to COUNT
            ([{"kinds": [7]}, {"ids": [b_events[0].id]}], 2),
            ([{"authors": [Keys().pubkey]}], 0),
        ]
        nt = nostr_tools(hub.url)
        nt.call("connect", conn="r")
        for filters, expected in cases:
            assert nt.call("count", conn="r", filters=filters) == {"count": expected}, filters
            assert c.count(*filters) == expected, filters


# --- protocol corner cases met by a real client ----------------------------------------------

def test_nostr_tools_republishing_a_stored_event_succeeds(hub, nostr_tools, alice):
    """NIP-01 lists ``["OK", id, true, "duplicate: already have this event"]``: an event the
    hub already has counts as accepted. nostr-tools rejects the publish promise on ``false``,
    so a client retrying after a lost OK, or publishing what sync already brought, would report
    a failure for an event that is safely stored."""
    ev = alice.sign(1, "sent twice", [["t", "dup"]])
    nt = nostr_tools(hub.url)
    nt.call("connect", conn="w")
    assert nt.call("publish", conn="w", event=ev.to_dict()) == {"reason": ""}
    try:
        again = nt.call("publish", conn="w", event=ev.to_dict())
    except DriverError as exc:
        pytest.fail(f"hub answered OK false to a duplicate ({exc}); NIP-01 gives "
                    '["OK", id, true, "duplicate: ..."] for an event already stored')
    assert again["reason"] == "" or again["reason"].startswith("duplicate:"), again
    with Client(hub.url) as c:
        assert ids(c.query({"#t": ["dup"]})) == [ev.id]


def test_control_characters_follow_nip01_not_json_stringify(hub, nostr_tools, alice):
    """NIP-01 escapes only \\n \\" \\\\ \\r \\t \\b \\f in the id serialisation; every other
    character is written verbatim. nostr-tools hashes JSON.stringify output, which writes
    U+0001 as the six characters \\u0001, so its id for such content differs from NIP-01's.
    The hub must follow NIP-01: refuse nostr-tools' id, accept the NIP-01 one."""
    content = "bell\x07 and start-of-heading\x01"
    nt = nostr_tools(hub.url)
    key = nt.call("keygen")
    js_event = nt.call("sign", sk=key["sk"], template={"kind": 1, "content": content})["event"]
    nip01_id = compute_id(js_event["pubkey"], js_event["created_at"], 1, [], content)
    assert js_event["id"] != nip01_id  # the divergence this test is about

    nt.call("connect", conn="w")
    err = nt.fails("publish", conn="w", event=js_event)
    assert err.startswith("invalid:"), err

    ours = alice.sign(1, content, [["t", "ctl"]])
    with Client(hub.url) as c:
        publish_all(c, ours)
        assert c.query({"#t": ["ctl"]}) == [ours.to_dict()]
    # The hub sends the event as stored; nostr-tools then judges its id by JSON.stringify and
    # hands it to oninvalidevent instead of onevent (a client-side deviation from NIP-01).
    res = nt.call("query", conn="w", filters=[{"#t": ["ctl"]}])
    assert res["eose"] is True
    assert ids(res["events"]) + ids(res["invalid"]) == [ours.id]
