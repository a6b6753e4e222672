"""Bad input over real WebSocket connections: every malformed, forged or abusive frame gets
the NIP-01 answer it deserves, the hub stays up, and nothing already stored is lost.

Answers: ``OK false "invalid: ..."`` when an event id can be read, ``CLOSED <subid>
"invalid: ..."`` for REQ/COUNT with a readable subscription id, ``NOTICE "invalid: ..."``
otherwise. Oversize frames close the connection with 1009, a burst of garbage with 1008.
"""

from __future__ import annotations

import hashlib
import json
import time

import pytest
from coincurve import PublicKeyXOnly
from websockets.exceptions import ConnectionClosed

from samizdat.nostr.event import HEX64, compute_id

from .helpers import Client, Keys

SUBID = "sub-1"


# --- helpers --------------------------------------------------------------------------------

def seed(client: Client, keys: Keys, n: int = 3) -> list[dict]:
    """Events stored before the bad input arrives."""
    now = int(time.time())
    events = [keys.sign(1, f"stored before #{i}", [["t", "seed"]], now - i).to_dict()
              for i in range(n)]
    for ev in events:
        assert client.publish(ev) == (True, "")
    return events


def assert_hub_healthy(hub, seeded: list[dict]) -> None:
    """A NEW connection can publish and query, and every seeded event is intact."""
    assert hub.thread.is_alive() and not hub.errors
    with Client(hub.url) as c:
        got = c.query({"ids": [e["id"] for e in seeded]})
        assert sorted(got, key=lambda e: e["id"]) == sorted(seeded, key=lambda e: e["id"])
        fresh = Keys().sign(1, "still serving")
        assert c.publish(fresh) == (True, "")
        assert [e["id"] for e in c.query({"ids": [fresh.id]})] == [fresh.id]
        assert c.count({"#t": ["seed"]}) == len(seeded)


def assert_connection_usable(client: Client, seeded: list[dict]) -> None:
    """The same connection still answers, and sent nothing besides the expected answer."""
    got = client.query({"ids": [seeded[0]["id"]]})
    assert [e["id"] for e in got] == [seeded[0]["id"]]
    assert client.pending == [], f"unexpected extra frames: {client.pending}"


def next_answer(client: Client) -> list:
    return client.recv_until(lambda f: f[0] in ("NOTICE", "OK", "CLOSED"))


def wait_closed(client: Client, timeout: float = 10) -> tuple[int | None, list]:
    """Read until the hub closes the connection; returns (close code, frames received)."""
    frames = []
    deadline = time.monotonic() + timeout
    try:
        while time.monotonic() < deadline:
            frames.append(json.loads(client.ws.recv(timeout=deadline - time.monotonic())))
    except ConnectionClosed as exc:
        return (exc.rcvd.code if exc.rcvd else None), frames
    except TimeoutError:
        pass
    raise AssertionError(f"connection not closed within {timeout} s; got {frames[-5:]}")


# --- frames answered with NOTICE --------------------------------------------------------------

EVENT_STUB = {"id": "0" * 64, "pubkey": "0" * 64, "created_at": 1, "kind": 1, "tags": [],
              "content": "", "sig": "0" * 128}

NOTICE_FRAMES = {
    # not JSON at all
    "truncated-json": '["EVENT",',
    "empty-frame": "",
    "plain-text": "hello relay",
    "trailing-garbage": '["REQ","s",{}]x',
    "single-quotes": "['REQ','s',{}]",
    "nan": "[NaN]",
    "raw-control-char": '["REQ","s\x01",{}]',
    "escaped-lone-surrogate": '["EVENT",{"content":"\\ud800"}]',
    "deeply-nested-array": "[" * 100_000 + "]" * 100_000,
    "deeply-nested-in-filter": '["REQ","s",' + '{"#e":' * 5000 + "1" + "}" * 5000 + "]",
    # JSON, but not an array with a verb
    "object": '{"EVENT": {}}',
    "string": '"REQ"',
    "number": "42",
    "null": "null",
    "true": "true",
    "empty-array": "[]",
    "verb-number": '[1, "s", {}]',
    "verb-null": "[null]",
    "verb-array": '[["REQ"], "s", {}]',
    "verb-object": '[{"verb": "REQ"}]',
    # unknown verbs
    "unknown-verb": '["HELLO"]',
    "lowercase-verb": json.dumps(["event", EVENT_STUB]),
    "verb-with-space": '["REQ ", "s", {}]',
    "empty-verb": '[""]',
    # EVENT without a readable event id
    "event-missing": '["EVENT"]',
    "event-string": '["EVENT", "event"]',
    "event-array": '["EVENT", []]',
    "event-null": '["EVENT", null]',
    "event-two": json.dumps(["EVENT", EVENT_STUB, EVENT_STUB]),
    "event-id-65": json.dumps(["EVENT", {**EVENT_STUB, "id": "0" * 65}]),
    "event-id-number": json.dumps(["EVENT", {**EVENT_STUB, "id": 7}]),
    "event-no-id": json.dumps(["EVENT", {k: v for k, v in EVENT_STUB.items() if k != "id"}]),
    # REQ / COUNT without a usable subscription id
    "req-alone": '["REQ"]',
    "req-subid-number": '["REQ", 1, {}]',
    "req-subid-null": '["REQ", null, {}]',
    "req-subid-empty": '["REQ", "", {}]',
    "req-subid-object": '["REQ", {"id": "s"}, {}]',
    "req-subid-too-long": json.dumps(["REQ", "x" * 65, {}]),
    "count-subid-number": '["COUNT", 5, {}]',
    "count-subid-too-long": json.dumps(["COUNT", "x" * 65, {}]),
    # CLOSE / AUTH of the wrong shape
    "close-alone": '["CLOSE"]',
    "close-number": '["CLOSE", 1]',
    "close-empty": '["CLOSE", ""]',
    "close-two": '["CLOSE", "a", "b"]',
    "auth-alone": '["AUTH"]',
    "auth-string": '["AUTH", "challenge"]',
}


@pytest.mark.parametrize("frame", list(NOTICE_FRAMES.values()), ids=list(NOTICE_FRAMES))
def test_notice(hub, client, alice, frame):
    seeded = seed(client, alice)
    client.send(frame)
    answer = next_answer(client)
    assert answer[0] == "NOTICE", answer
    assert answer[1].startswith("invalid:"), answer
    assert_connection_usable(client, seeded)
    assert_hub_healthy(hub, seeded)


def test_binary_frame(hub, client, alice):
    seeded = seed(client, alice)
    client.send(json.dumps(["REQ", "s", {}]).encode())
    answer = next_answer(client)
    assert answer[0] == "NOTICE" and answer[1].startswith("invalid:"), answer
    assert_connection_usable(client, seeded)
    assert_hub_healthy(hub, seeded)


# --- REQ / COUNT with a readable subid: CLOSED -------------------------------------------------

CLOSED_FRAMES = {
    "req-no-filters": ["REQ", SUBID],
    "req-too-many-filters": ["REQ", SUBID, *[{}] * 11],
    "req-filter-string": ["REQ", SUBID, "kinds"],
    "req-filter-array": ["REQ", SUBID, [{"kinds": [1]}]],
    "req-filter-null": ["REQ", SUBID, None],
    "req-second-filter-bad": ["REQ", SUBID, {"kinds": [1]}, 5],
    "req-unknown-field": ["REQ", SUBID, {"kind": [1]}],
    "req-kinds-not-list": ["REQ", SUBID, {"kinds": 1}],
    "req-kinds-strings": ["REQ", SUBID, {"kinds": ["1"]}],
    "req-kinds-too-big": ["REQ", SUBID, {"kinds": [70000]}],
    "req-ids-short": ["REQ", SUBID, {"ids": ["abcd"]}],
    "req-ids-uppercase": ["REQ", SUBID, {"ids": ["AB" * 32]}],
    "req-authors-not-hex": ["REQ", SUBID, {"authors": ["zz" * 32]}],
    "req-tag-not-list": ["REQ", SUBID, {"#t": "seed"}],
    "req-tag-numbers": ["REQ", SUBID, {"#t": [1]}],
    "req-tag-two-letters": ["REQ", SUBID, {"#tt": ["seed"]}],
    "req-since-string": ["REQ", SUBID, {"since": "yesterday"}],
    "req-since-negative": ["REQ", SUBID, {"since": -1}],
    "req-until-float": ["REQ", SUBID, {"until": 1.5}],
    "req-limit-negative": ["REQ", SUBID, {"limit": -1}],
    "req-limit-bool": ["REQ", SUBID, {"limit": True}],
    "req-search-number": ["REQ", SUBID, {"search": 1}],
    "req-too-many-values": ["REQ", SUBID, {"#t": [str(i) for i in range(1001)]}],
    "count-no-filters": ["COUNT", SUBID],
    "count-too-many-filters": ["COUNT", SUBID, *[{}] * 11],
    "count-filter-array": ["COUNT", SUBID, []],
    "count-bad-filter": ["COUNT", SUBID, {"ids": "x"}],
}


@pytest.mark.parametrize("msg", list(CLOSED_FRAMES.values()), ids=list(CLOSED_FRAMES))
def test_closed(hub, client, alice, msg):
    seeded = seed(client, alice)
    client.send(msg)
    answer = next_answer(client)
    assert answer[0] == "CLOSED", answer
    assert answer[1] == SUBID, answer
    assert answer[2].startswith("invalid:"), answer
    assert_connection_usable(client, seeded)
    assert_hub_healthy(hub, seeded)


def test_max_filters_is_allowed(hub, client, alice):
    seeded = seed(client, alice)
    got = client.query(*[{"ids": [seeded[0]["id"]]}] * 10)
    assert [e["id"] for e in got] == [seeded[0]["id"]]
    assert client.count(*[{"ids": [seeded[0]["id"]]}] * 10) == 1


# --- events that are readable but wrong: OK false ---------------------------------------------

def _not_on_curve() -> str:
    """An x coordinate with no point on secp256k1 (about half of all values)."""
    for i in range(1, 1000):
        x = hashlib.sha256(str(i).encode()).hexdigest()
        try:
            PublicKeyXOnly(bytes.fromhex(x))
        except ValueError:
            return x
    raise AssertionError("no invalid x found")


def _resigned(ev: dict, signer: Keys, **changes) -> dict:
    """``ev`` with ``changes``, a correct id, and a signature by ``signer``."""
    d = {**ev, **changes}
    d["id"] = compute_id(d["pubkey"], d["created_at"], d["kind"], d["tags"], d["content"])
    d["sig"] = signer.key.sign_schnorr(bytes.fromhex(d["id"])).hex()
    return d


def _flip(hex_str: str, i: int) -> str:
    return hex_str[:i] + ("1" if hex_str[i] == "0" else "0") + hex_str[i + 1:]


def bad_events(alice: Keys, bob: Keys) -> dict[str, tuple[dict, str]]:
    now = int(time.time())
    good = alice.sign(1, "a fine event", [["t", "x"]], now).to_dict()
    other_id = hashlib.sha256(b"something else").hexdigest()
    return {
        "id-hash-mismatch": ({**good, "id": other_id}, "invalid: event id"),
        "content-edited": ({**good, "content": "an edited event"}, "invalid: event id"),
        "tags-edited": ({**good, "tags": [["t", "y"]]}, "invalid: event id"),
        "bad-signature": ({**good, "sig": _flip(good["sig"], 77)}, "invalid: signature"),
        "zero-signature": ({**good, "sig": "0" * 128}, "invalid: signature"),
        "signed-by-another-key": (_resigned(good, bob, content="bob pretends to be alice"),
                                  "invalid: signature"),
        "pubkey-not-on-curve": (_resigned(good, alice, pubkey=_not_on_curve()), "invalid:"),
        "future-one-day": (alice.sign(1, "from the future", [], now + 86400).to_dict(),
                           "invalid: created_at"),
        "ancient": (alice.sign(1, "from 1970", [], 1).to_dict(), "invalid: created_at"),
        "auth-kind-via-event": (alice.sign(22242, "", [["challenge", "x"]], now).to_dict(),
                                "invalid:"),
        # shape errors with a readable id
        "kind-string": ({**good, "kind": "1"}, "invalid: kind"),
        "kind-too-big": ({**good, "kind": 65536}, "invalid: kind"),
        "created_at-float": ({**good, "created_at": float(now)}, "invalid: created_at"),
        "created_at-string": ({**good, "created_at": str(now)}, "invalid: created_at"),
        "created_at-negative": ({**good, "created_at": -1}, "invalid: created_at"),
        "tags-object": ({**good, "tags": {"t": "x"}}, "invalid: tags"),
        "tags-numbers": ({**good, "tags": [["t", 1]]}, "invalid: tags"),
        "tags-flat": ({**good, "tags": ["t", "x"]}, "invalid: tags"),
        "content-number": ({**good, "content": 1}, "invalid: content"),
        "content-too-long": ({**good, "content": "x" * 100_001}, "invalid: content"),
        "tag-value-too-long": ({**good, "tags": [["t", "x" * 4097]]}, "invalid:"),
        "too-many-tags": ({**good, "tags": [["t"]] * 2001}, "invalid:"),
        "pubkey-uppercase": ({**good, "pubkey": good["pubkey"].upper()}, "invalid: pubkey"),
        "sig-short": ({**good, "sig": good["sig"][:-1]}, "invalid: sig"),
        "missing-sig": ({k: v for k, v in good.items() if k != "sig"}, "invalid:"),
        "id-uppercase": ({**good, "id": good["id"].upper()}, "invalid: id"),
        "id-63": ({**good, "id": good["id"][:63]}, "invalid: id"),
    }


BAD_EVENT_NAMES = list(bad_events(Keys(), Keys()))


@pytest.mark.parametrize("name", BAD_EVENT_NAMES)
def test_ok_false(hub, client, alice, bob, name):
    seeded = seed(client, alice)
    ev, reason = bad_events(alice, bob)[name]
    client.send(["EVENT", ev])
    answer = next_answer(client)
    assert answer[:3] == ["OK", ev["id"], False], answer
    assert answer[3].startswith(reason), answer
    # nothing of it was stored
    assert client.query({"authors": [alice.pubkey], "#t": ["x"]}) == []
    assert client.count({"authors": [alice.pubkey]}) == len(seeded)
    if isinstance(ev.get("pubkey"), str) and HEX64.fullmatch(ev["pubkey"]):
        assert client.count({"authors": [ev["pubkey"]]}) == (len(seeded)
                                                            if ev["pubkey"] == alice.pubkey
                                                            else 0)
    if HEX64.fullmatch(ev["id"]):
        assert client.query({"ids": [ev["id"]]}) == []
    assert_connection_usable(client, seeded)
    assert_hub_healthy(hub, seeded)


def test_bad_events_do_not_block_the_good_one(hub, client, alice, bob):
    """Forgeries of an event id do not keep the real event out, before or after it."""
    seeded = seed(client, alice)
    good = alice.sign(1, "the real one", [["t", "x"]])
    forged = {**good.to_dict(), "content": "a forgery with the real id"}
    assert client.publish(forged)[0] is False
    assert client.publish(good) == (True, "")
    assert client.publish(forged)[0] is False
    got = client.query({"ids": [good.id]})
    assert got == [good.to_dict()]
    assert_hub_healthy(hub, seeded)


# --- size limits --------------------------------------------------------------------------------

def _event_frame_of_size(keys: Keys, size: int) -> tuple[str, str]:
    """(event id, EVENT frame of exactly ``size`` UTF-8 bytes), content mostly 3-byte chars."""
    now = int(time.time())

    def frame(content: str) -> tuple[str, str]:
        ev = keys.sign(1, content, [], now)
        return ev.id, json.dumps(["EVENT", ev.to_dict()], ensure_ascii=False,
                                 separators=(",", ":"))

    overhead = len(frame("")[1].encode())
    k, r = divmod(size - overhead, 3)
    eid, text = frame("€" * k + "a" * r)
    assert len(text.encode()) == size
    return eid, text


@pytest.mark.parametrize("below", [0, 1], ids=["exactly-the-limit", "one-byte-less"])
def test_frame_up_to_max_message_length_is_accepted(hub, client, alice, below):
    """NIP-11: max_message_length is the largest message the relay will act upon."""
    seeded = seed(client, alice)
    limit = hub.cfg.limits.max_message_length
    eid, text = _event_frame_of_size(alice, limit - below)
    client.send(text)
    answer = client.recv_until(lambda f: f[0] == "OK" and f[1] == eid)
    assert answer[2] is True, answer
    assert_hub_healthy(hub, seeded)


@pytest.mark.parametrize("extra", [1, 100_000])
def test_oversize_frame_closes_with_1009(hub, client, alice, extra):
    seeded = seed(client, alice)
    limit = hub.cfg.limits.max_message_length
    eid, text = _event_frame_of_size(alice, limit + extra)
    client.send(text)
    code, frames = wait_closed(client)
    assert code == 1009, (code, frames)
    assert not any(f[0] == "OK" and f[1] == eid for f in frames)
    assert_hub_healthy(hub, seeded)
    with Client(hub.url) as c:
        assert c.query({"ids": [eid]}) == []


def test_oversize_garbage_closes_with_1009(hub, client, alice):
    seeded = seed(client, alice)
    client.send("x" * (hub.cfg.limits.max_message_length + 1))
    code, _ = wait_closed(client)
    assert code == 1009
    assert_hub_healthy(hub, seeded)


# --- abuse ------------------------------------------------------------------------------------

@pytest.mark.parametrize("garbage", ["not json", b"\x00\x01binary", '["HELLO"]', '["REQ",1]'],
                         ids=["text", "binary", "unknown-verb", "bad-req"])
def test_burst_of_garbage_is_cut_off(hub, client, alice, garbage):
    seeded = seed(client, alice)
    strikes = hub.cfg.rate.strikes
    assert strikes > 0
    # a bystander with a live subscription must not notice anything
    with Client(hub.url) as bystander:
        bystander.req("live", {"kinds": [1], "#t": ["after"]})
        for _ in range(strikes + 20):
            try:
                client.send(garbage)
            except ConnectionClosed:
                break
        code, frames = wait_closed(client)
        assert code == 1008, (code, frames[-3:])
        notices = [f for f in frames if f[0] == "NOTICE"]
        assert notices and notices[-1][1].startswith("rate-limited:"), notices[-3:]
        invalid = [f for f in notices if f[1].startswith("invalid:")]
        # one answer per tolerated message, then the cut (a token may refill meanwhile)
        assert strikes <= len(invalid) <= strikes + 3, len(invalid)
        assert all(f[0] == "NOTICE" for f in frames), frames
        after = alice.sign(1, "published after the burst", [["t", "after"]])
        assert bystander.publish(after) == (True, "")
        live = bystander.recv_until(lambda f: f[0] == "EVENT" and f[1] == "live")
        assert live[2]["id"] == after.id
    assert_hub_healthy(hub, [*seeded])


def test_a_few_mistakes_are_forgiven(hub, client, alice):
    """Fewer bad messages than the allowance: the connection stays open and useful."""
    seeded = seed(client, alice)
    for _ in range(hub.cfg.rate.strikes // 2):
        client.send("oops")
        assert next_answer(client)[0] == "NOTICE"
    assert_connection_usable(client, seeded)
    fresh = alice.sign(1, "still allowed to publish")
    assert client.publish(fresh) == (True, "")


def test_mixed_barrage_then_everything_still_there(hub, client, alice, bob):
    """One of every bad frame above on one connection after another; the data survives."""
    seeded = seed(client, alice, n=5)
    frames: list = list(NOTICE_FRAMES.values()) + list(CLOSED_FRAMES.values())
    frames += [["EVENT", ev] for ev, _ in bad_events(alice, bob).values()]
    conn = Client(hub.url)
    try:
        for i, frame in enumerate(frames):
            if i % 20 == 0:  # stay under the strike allowance of one connection
                conn.close()
                conn = Client(hub.url)
            conn.send(frame)
            answer = next_answer(conn)
            assert answer[0] in ("NOTICE", "CLOSED", "OK"), answer
            reason = answer[3] if answer[0] == "OK" else answer[-1]
            assert reason.startswith("invalid:"), (frame if len(str(frame)) < 300 else i, answer)
    finally:
        conn.close()
    assert_hub_healthy(hub, seeded)
    with Client(hub.url) as c:
        assert c.count({"authors": [alice.pubkey]}) == len(seeded)
        assert c.count({"authors": [bob.pubkey]}) == 0


# --- odd but valid --------------------------------------------------------------------------

def test_control_characters_and_odd_text_are_valid(hub, client, alice):
    """Raw-in-the-id characters (NUL, U+0001, U+2028...) arrive escaped on the wire and work."""
    seeded = seed(client, alice)
    odd = [alice.sign(1, "\x00\x01\x1f\x7f \u2028\u2029 \"\\ \n\t\r\b\f é 😀", [["t", "\x01"]]),
           alice.sign(1, "", [[], [""], ["t", "", ""]]),
           alice.sign(1, "/" * 10 + "\\u0000", [["t", "\\"]])]
    for ev in odd:
        assert client.publish(ev) == (True, ""), ev
    got = client.query({"ids": [ev.id for ev in odd]})
    assert sorted(got, key=lambda e: e["id"]) == sorted((ev.to_dict() for ev in odd),
                                                        key=lambda e: e["id"])
    assert_hub_healthy(hub, seeded)


def test_largest_filters_within_the_limits_are_answered(hub, client, alice):
    """Filters at the announced limits must be answered, not fail in SQLite.

    SQLite builds differ in how many bound parameters a statement may hold (32766 by
    default, more in some distributions); these requests need more than 32766.
    """
    seeded = seed(client, alice)
    lim = hub.cfg.limits
    values = [str(i) for i in range(lim.max_filter_values)]
    big = {f"#{letter}": values for letter in "abcdefghijklmnopqrstuvwxyzABCDEFGH"}
    big["#t"] = [*values[:-1], "seed"]
    frame = json.dumps(["REQ", "big", big], separators=(",", ":"))
    assert len(frame.encode()) < lim.max_message_length
    client.send(frame)
    answer = client.recv_until(lambda f: f[1] == "big" and f[0] in ("EOSE", "CLOSED"))
    assert answer == ["EOSE", "big"], answer
    many = [{"kinds": list(range(lim.max_filter_values)),
             **{f"#{letter}": values for letter in "xyz"}} for _ in range(lim.max_filters)]
    frame = json.dumps(["COUNT", "many", *many], separators=(",", ":"))
    assert len(frame.encode()) < lim.max_message_length
    client.send(frame)
    answer = client.recv_until(lambda f: f[1] == "many" and f[0] in ("COUNT", "CLOSED"))
    assert answer == ["COUNT", "many", {"count": 0}], answer
    assert_hub_healthy(hub, seeded)
