"""Interoperability of our negentropy (NIP-77) with an independent implementation.

The other side is ``@nostr-dev-kit/sync`` from the npm registry (NDK's NIP-77 package, its
own TypeScript port of negentropy V1), driven by tests/js/negentropy_driver.mjs:

- in process, its ``Negentropy``/``NegentropyStorage`` classes exchange hex messages with
  ``samizdat.negentropy.Negentropy`` in both directions (JS initiator with a Python
  responder, Python initiator with a JS responder) on the same item sets, and the
  have/need ids must be exactly the symmetric difference computed here;
- over a real WebSocket, its ``SyncSession`` (the NIP-77 client that ``NDKSync.sync`` uses,
  on an NDK relay connection) reconciles with a running hub holding real signed events.

Where no frame size limit cuts messages short, every message of the JS side is also
compared with what our implementation produces from the same input ("twin"): both follow
the reference algorithm, so they must describe the same ranges with the same fingerprints
and ids. They are compared after decoding, not byte for byte, because the library re-sends
a bound it received with its id prefix padded to 32 bytes (the same point, a longer
encoding).

The JavaScript packages come from tests/js/package-lock.json: `make install-test` (or
`make test`) runs `npm ci` there.
"""

from __future__ import annotations

import hashlib
import itertools
import random
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any

import pytest

from samizdat.negentropy import Negentropy, VectorStorage

from .helpers import ROOT, Client, Keys
from .nodedriver import NodeDriver

JS_DIR = ROOT / "tests" / "js"
DRIVER = JS_DIR / "negentropy_driver.mjs"
JS_PACKAGES = ("@nostr-dev-kit/sync", "@nostr-dev-kit/ndk", "ws")
CALL_TIMEOUT = 20.0
MAX_ROUNDS = 100
LIMIT = 4096  # the smallest frame size limit either implementation accepts
FAST = {"rate.events_per_second": 0, "rate.messages_per_second": 0,
        "rate.ip_events_per_second": 0}

Item = tuple[int, bytes]


# --- the node driver ---------------------------------------------------------------------

class JsNegentropy(NodeDriver):
    """One `node negentropy_driver.mjs` process, spoken to one JSON line at a time."""

    call_timeout = CALL_TIMEOUT

    def __init__(self) -> None:
        super().__init__(DRIVER.name)
        self.names = itertools.count()

    def name(self) -> str:
        return f"s{next(self.names)}"


@pytest.fixture
def js() -> Iterator[JsNegentropy]:
    missing = [name for name in JS_PACKAGES
               if not (JS_DIR / "node_modules" / name / "package.json").is_file()]
    if missing:
        pytest.fail(f"{JS_DIR / 'node_modules'} lacks {', '.join(missing)}: run "
                    "`make install-test` (it runs `npm ci` in tests/js) before these tests",
                    pytrace=False)
    driver = JsNegentropy()
    yield driver
    driver.close()


def wire(items: list[Item]) -> list[list[Any]]:
    return [[ts, item_id.hex()] for ts, item_id in items]


# --- an independent reading of negentropy V1 messages, for comparing the two sides -------

INFINITY = (1 << 64) - 1


def _varint(data: bytes, pos: int) -> tuple[int, int]:
    value = 0
    while True:
        byte = data[pos]
        pos += 1
        value = (value << 7) | (byte & 0x7F)
        if not byte & 0x80:
            return value, pos


def ranges_of(msg: bytes) -> list[tuple[Item, int, Any]]:
    """``[(upper bound as a padded (timestamp, id), mode, payload)]`` of one message."""
    assert msg[:1] == b"\x61", f"not a V1 message: {msg[:8].hex()}"
    pos, last, out = 1, 0, []
    while pos < len(msg):
        encoded, pos = _varint(msg, pos)
        last = INFINITY if encoded == 0 or last == INFINITY else last + encoded - 1
        length, pos = _varint(msg, pos)
        prefix = msg[pos:pos + length]
        pos += length
        mode, pos = _varint(msg, pos)
        payload: Any = None
        if mode == 1:
            payload = msg[pos:pos + 16]
            pos += 16
        elif mode == 2:
            count, pos = _varint(msg, pos)
            payload = tuple(msg[p:p + 32] for p in range(pos, pos + 32 * count, 32))
            pos += 32 * count
        assert mode in (0, 1, 2) and pos <= len(msg), f"malformed message {msg.hex()[:200]}"
        out.append(((last, prefix.ljust(32, b"\x00")), mode, payload))
    return out


def assert_same_message(js_msg: bytes | None, py_msg: bytes | None, what: str) -> None:
    if js_msg is None or py_msg is None:
        assert js_msg == py_msg, f"{what}: JS says {js_msg and js_msg.hex()[:120]}, " \
                                 f"Python says {py_msg and py_msg.hex()[:120]}"
        return
    js_ranges, py_ranges = ranges_of(js_msg), ranges_of(py_msg)
    if js_ranges != py_ranges:
        first = next((i for i, (a, b) in enumerate(zip(js_ranges, py_ranges, strict=False))
                      if a != b), min(len(js_ranges), len(py_ranges)))
        pytest.fail(f"{what}: the JS and Python messages differ from range {first} on "
                    f"({len(js_ranges)} and {len(py_ranges)} ranges)\n"
                    f"JS:     {js_msg.hex()[:400]}\nPython: {py_msg.hex()[:400]}")


def fingerprint(ids: list[bytes]) -> bytes:
    """Negentropy V1: SHA-256 of (sum of ids as 256-bit little-endian mod 2**256, count)."""
    total = sum(int.from_bytes(i, "little") for i in ids) % (1 << 256)
    count, n = bytearray(), len(ids)
    count.insert(0, n & 0x7F)
    while n > 0x7F:
        n >>= 7
        count.insert(0, 0x80 | (n & 0x7F))
    return hashlib.sha256(total.to_bytes(32, "little") + bytes(count)).digest()[:16]


# --- running one reconciliation ----------------------------------------------------------

@dataclass
class Outcome:
    have: set[bytes]
    need: set[bytes]
    rounds: int


def check_size(msg: bytes, limit: int, who: str) -> None:
    assert not limit or len(msg) <= limit, f"{who} sent {len(msg)} bytes, over its limit {limit}"


def js_initiates(js: JsNegentropy, mine: list[Item], theirs: list[Item], *,
                 js_limit: int = 0, py_limit: int = 0) -> Outcome:
    """The library reconciles ``mine`` against our responder holding ``theirs``."""
    name = js.name()
    msg = bytes.fromhex(js.call("open", name=name, role="initiator", items=wire(mine),
                                frameSizeLimit=js_limit)["msg"])
    responder = Negentropy(VectorStorage.from_items(theirs), py_limit)
    twin = None if js_limit else Negentropy(VectorStorage.from_items(mine), 0)
    if twin is not None:
        assert_same_message(msg, twin.initiate(), "initial message")
    have: set[bytes] = set()
    need: set[bytes] = set()
    for rounds in range(1, MAX_ROUNDS + 1):
        check_size(msg, js_limit, "the JS initiator")
        reply = responder.respond(msg)
        check_size(reply, py_limit, "the Python responder")
        res = js.call("reconcile", name=name, msg=reply.hex())
        js_next = None if res["msg"] is None else bytes.fromhex(res["msg"])
        round_have = {bytes.fromhex(i) for i in res["have"]}
        round_need = {bytes.fromhex(i) for i in res["need"]}
        if twin is not None:
            expected = twin.process_reply(reply)
            assert_same_message(js_next, expected.reply, f"initiator's message after round {rounds}")
            assert (round_have, round_need) == (set(expected.have_ids), set(expected.need_ids)), \
                f"round {rounds}: JS and Python initiators found different have/need"
        have |= round_have
        need |= round_need
        if js_next is None:
            js.call("drop", name=name)
            return Outcome(have, need, rounds)
        msg = js_next
    pytest.fail(f"no end after {MAX_ROUNDS} rounds (JS initiator, Python responder)")


def py_initiates(js: JsNegentropy, mine: list[Item], theirs: list[Item], *,
                 py_limit: int = 0, js_limit: int = 0) -> Outcome:
    """Our initiator reconciles ``mine`` against the library's responder holding ``theirs``."""
    name = js.name()
    js.call("open", name=name, role="responder", items=wire(theirs), frameSizeLimit=js_limit)
    initiator = Negentropy(VectorStorage.from_items(mine), py_limit)
    twin = None if js_limit else Negentropy(VectorStorage.from_items(theirs), 0)
    msg: bytes | None = initiator.initiate()
    have: set[bytes] = set()
    need: set[bytes] = set()
    for rounds in range(1, MAX_ROUNDS + 1):
        assert msg is not None
        check_size(msg, py_limit, "the Python initiator")
        reply = bytes.fromhex(js.call("reconcile", name=name, msg=msg.hex())["msg"])
        check_size(reply, js_limit, "the JS responder")
        if twin is not None:
            assert_same_message(reply, twin.respond(msg), f"responder's reply in round {rounds}")
        res = initiator.process_reply(reply)
        have.update(res.have_ids)
        need.update(res.need_ids)
        if res.reply is None:
            js.call("drop", name=name)
            return Outcome(have, need, rounds)
        msg = res.reply
    pytest.fail(f"no end after {MAX_ROUNDS} rounds (Python initiator, JS responder)")


# --- item sets ---------------------------------------------------------------------------

T0 = 1_700_000_000


def random_items(rnd: random.Random, n: int, spread: int = 200_000) -> list[Item]:
    return [(T0 + rnd.randrange(spread), rnd.randbytes(32)) for _ in range(n)]


def shape_identical(rnd: random.Random) -> tuple[list[Item], list[Item]]:
    common = random_items(rnd, 3000)
    return common, list(common)


def shape_disjoint(rnd: random.Random) -> tuple[list[Item], list[Item]]:
    return random_items(rnd, 1500), random_items(rnd, 2000)


def shape_one_of_5000(rnd: random.Random) -> tuple[list[Item], list[Item]]:
    items = random_items(rnd, 5000)
    odd = rnd.randrange(5000)
    return items, items[:odd] + items[odd + 1:]


def shape_equal_timestamps(rnd: random.Random) -> tuple[list[Item], list[Item]]:
    # Nearly everything at two timestamps, half the ids sharing a 6-byte prefix: bounds
    # between buckets then need id prefixes of 7 bytes and more, not just timestamps.
    def some(n: int) -> list[Item]:
        out = random_items(rnd, n, spread=2)
        return [(ts, b"\x42" * 6 + i[6:]) if k % 2 else (ts, i) for k, (ts, i) in enumerate(out)]

    common = some(3000)
    return common + some(40), some(60) + common


def shape_few_hundred(rnd: random.Random) -> tuple[list[Item], list[Item]]:
    common = random_items(rnd, 4000, spread=5000)
    return common + random_items(rnd, 150, spread=5000), random_items(rnd, 250, 5000) + common


def shape_one_side_empty(rnd: random.Random) -> tuple[list[Item], list[Item]]:
    return [], random_items(rnd, 3000)


SHAPES: dict[str, Callable[[random.Random], tuple[list[Item], list[Item]]]] = {
    "identical": shape_identical,
    "disjoint": shape_disjoint,
    "one-of-5000": shape_one_of_5000,
    "equal-timestamps": shape_equal_timestamps,
    "few-hundred": shape_few_hundred,
    "one-side-empty": shape_one_side_empty,
}


def check(outcome: Outcome, mine: list[Item], theirs: list[Item], what: str) -> None:
    mine_ids = {i for _, i in mine}
    theirs_ids = {i for _, i in theirs}
    want_have, want_need = mine_ids - theirs_ids, theirs_ids - mine_ids
    assert outcome.have == want_have, (
        f"{what}: have is off: {len(outcome.have - want_have)} wrong, "
        f"{len(want_have - outcome.have)} missing of {len(want_have)}")
    assert outcome.need == want_need, (
        f"{what}: need is off: {len(outcome.need - want_need)} wrong, "
        f"{len(want_need - outcome.need)} missing of {len(want_need)}")
    if not want_have and not want_need:
        assert outcome.rounds == 1, f"{what}: equal sets took {outcome.rounds} rounds"


@pytest.mark.parametrize("swap", [False, True], ids=["as-built", "swapped"])
@pytest.mark.parametrize("shape", list(SHAPES))
def test_both_directions_find_the_symmetric_difference(js, shape, swap):
    rnd = random.Random(f"negentropy-interop-{shape}")
    a, b = SHAPES[shape](rnd)
    mine, theirs = (b, a) if swap else (a, b)

    # No frame limit: every JS message must also match what our implementation sends.
    unlimited_js = js_initiates(js, mine, theirs)
    check(unlimited_js, mine, theirs, "JS initiator, Python responder")
    unlimited_py = py_initiates(js, mine, theirs)
    check(unlimited_py, mine, theirs, "Python initiator, JS responder")
    assert unlimited_js.rounds == unlimited_py.rounds

    # 4096-byte frames: more rounds, and each side must resume where the other stopped.
    check(js_initiates(js, mine, theirs, js_limit=LIMIT, py_limit=LIMIT), mine, theirs,
          "JS initiator, Python responder, both limited to 4096 bytes")
    # The JS responder runs without a limit here: see the library bug pinned below.
    check(py_initiates(js, mine, theirs, py_limit=LIMIT), mine, theirs,
          "Python initiator limited to 4096 bytes, JS responder")


def test_js_initiator_resumes_after_our_truncated_id_list(js):
    """Our responder, at its frame limit, sends part of an id list and one fingerprint for
    the rest; the library must pick that up in later rounds and still learn every id."""
    rnd = random.Random("truncated")
    theirs = random_items(rnd, 2000, spread=100)
    mine = random_items(rnd, 10, spread=100)
    outcome = js_initiates(js, mine, theirs, py_limit=LIMIT)
    check(outcome, mine, theirs, "JS initiator, Python responder limited to 4096 bytes")
    assert outcome.rounds >= len(theirs) * 32 // LIMIT  # at most 128 ids a message


def test_library_responder_with_frame_limit_loses_the_tail(js):
    """A bug of @nostr-dev-kit/sync 1.0.0 as *responder*, pinned here so that it is not
    mistaken for ours. When the frame limit stops it in the middle of an id list, it sends
    the ids that fit, then ``[infinity, Fingerprint, fp]`` where fp must cover the items it
    did not send (reference: ``upper = index`` before the closing fingerprint). The library
    keeps the range's original upper index, so fp covers nothing: the fingerprint of the
    empty set. An initiator that lacks exactly the unsent items sees a matching fingerprint
    and stops without them. NDK only ever initiates, so its own syncs are not affected."""
    rnd = random.Random("tail")
    theirs = sorted(random_items(rnd, 300, spread=1000))
    opening = Negentropy(VectorStorage.from_items([]), 0).initiate()
    assert opening.hex() == "6100000200"  # everything, as an empty id list

    name = js.name()
    js.call("open", name=name, role="responder", items=wire(theirs), frameSizeLimit=LIMIT)
    js_reply = bytes.fromhex(js.call("reconcile", name=name, msg=opening.hex())["msg"])
    py_reply = Negentropy(VectorStorage.from_items(theirs), LIMIT).respond(opening)

    js_ranges, py_ranges = ranges_of(js_reply), ranges_of(py_reply)
    assert len(js_ranges) == len(py_ranges) == 2
    assert js_ranges[0] == py_ranges[0]  # the same ids, cut at the same item
    sent = len(py_ranges[0][2])
    assert 0 < sent < len(theirs)
    assert py_ranges[1] == ((INFINITY, bytes(32)), 1, fingerprint([i for _, i in theirs[sent:]]))
    assert js_ranges[1] == ((INFINITY, bytes(32)), 1, fingerprint([]))

    # With our responder the initiator learns every id; with the library's, only those sent.
    def needed(respond: Callable[[bytes], bytes]) -> set[bytes]:
        initiator = Negentropy(VectorStorage.from_items([]), 0)
        reply = respond(initiator.initiate())
        need: set[bytes] = set()
        for _ in range(MAX_ROUNDS):
            res = initiator.process_reply(reply)
            need.update(res.need_ids)
            if res.reply is None:
                return need
            reply = respond(res.reply)
        pytest.fail("no end")

    assert needed(Negentropy(VectorStorage.from_items(theirs), LIMIT).respond) == \
        {i for _, i in theirs}
    name = js.name()
    js.call("open", name=name, role="responder", items=wire(theirs), frameSizeLimit=LIMIT)
    assert needed(lambda m: bytes.fromhex(js.call("reconcile", name=name, msg=m.hex())["msg"])) \
        == {i for _, i in theirs[:sent]}


# --- the library's NIP-77 client against a running hub ----------------------------------

def signed_notes(n: int, now: int) -> list:
    authors = [Keys(), Keys()]
    # Ten events a second over n/10 seconds: plenty of equal created_at values.
    return [authors[i % 2].sign(1, f"note {i}", [["t", "interop"]], now - 1000 + i // 10)
            for i in range(n)]


def publish(url: str, events: list) -> None:
    with Client(url) as c:
        for ev in events:
            assert c.publish(ev) == (True, ""), ev.id


def check_session(res: dict[str, Any], want_have: set[str], want_need: set[str],
                  flt: dict) -> None:
    assert set(res["have"]) == want_have, (len(res["have"]), len(want_have))
    assert set(res["need"]) == want_need, (len(res["need"]), len(want_need))
    frames = res["frames"]
    assert frames[0][0] == "send" and frames[0][1][0] == "NEG-OPEN"
    assert frames[0][1][2] == flt
    assert frames[-1] == ["send", ["NEG-CLOSE", frames[0][1][1]]]
    received = [f for d, f in frames if d == "recv"]
    assert all(f[0] == "NEG-MSG" for f in received), received
    assert res["rounds"] == len(received) >= 1


def test_library_client_syncs_with_the_hub(make_hub, js):
    hub = make_hub(**FAST)
    now = int(time.time())
    notes = signed_notes(400, now)
    publish(hub.url, notes[:300])
    others = [Keys().sign(7, "+", created_at=now - 500 + i) for i in range(20)]
    publish(hub.url, others)  # on the hub but outside the filter

    # The client holds notes 100..399: it lacks 0..99, the hub lacks 300..399.
    flt = {"kinds": [1], "#t": ["interop"]}
    res = js.call("sync", url=hub.url, filter=flt, filterAsArray=False,
                  items=[[e.created_at, e.id] for e in notes[100:]])
    want_need = {e.id for e in notes[:100]}
    check_session(res, {e.id for e in notes[300:]}, want_need, flt)

    # What it needs is there to fetch, and its ids are exactly those events.
    with Client(hub.url) as c:
        assert {e["id"] for e in c.query({"ids": sorted(want_need)})} == want_need

    # A client with everything, and one with nothing.
    everything = [[e.created_at, e.id] for e in notes[:300]]
    res = js.call("sync", url=hub.url, filter=flt, filterAsArray=False, items=everything)
    check_session(res, set(), set(), flt)
    assert res["rounds"] == 1
    res = js.call("sync", url=hub.url, filter={"kinds": [7]}, filterAsArray=False, items=[])
    check_session(res, set(), {e.id for e in others}, {"kinds": [7]})


def test_library_client_over_many_small_frames(make_hub, js):
    """Both sides limited to 4,096-byte frames: the hub's replies are cut short and the
    library's client continues over several rounds until every difference is found."""
    hub = make_hub(**FAST, **{"limits.negentropy_frame_size_limit": LIMIT})
    notes = signed_notes(700, int(time.time()))
    publish(hub.url, notes[:600])
    rnd = random.Random("small frames")
    mine = notes[250:] + [ev for ev in notes[:250] if rnd.random() < 0.5]
    flt = {"kinds": [1]}
    res = js.call("sync", url=hub.url, filter=flt, filterAsArray=False, frameSizeLimit=LIMIT,
                  items=[[e.created_at, e.id] for e in mine])
    mine_ids = {e.id for e in mine}
    check_session(res, mine_ids - {e.id for e in notes[:600]},
                  {e.id for e in notes[:600]} - mine_ids, flt)
    assert res["rounds"] >= 3
    for direction, frame in res["frames"]:
        if frame[0] in ("NEG-OPEN", "NEG-MSG"):
            assert len(frame[-1]) // 2 <= LIMIT, (direction, len(frame[-1]) // 2)


def test_library_sync_with_a_filter_array_is_accepted(hub, js):
    """``NDKSync.sync()`` always hands ``SyncSession`` an array of filters, so its NEG-OPEN
    is ``["NEG-OPEN", id, [filter], msg]``; NIP-77 has one filter object there. The hub
    accepts a one-element array too, because NDK is a common client library; an array of
    several filters is refused with NEG-ERR ``invalid:``."""
    ev = Keys().sign(1, "x")
    publish(hub.url, [ev])
    res = js.call("sync", url=hub.url, filter={"kinds": [1]}, items=[], filterAsArray=True)
    assert res["need"] == [ev.id] and res["have"] == []
    assert any(f[0] == "NEG-OPEN" and f[2] == [{"kinds": [1]}] for d, f in res["frames"]
               if d == "send")
    with Client(hub.url) as c:
        c.send(["NEG-OPEN", "two", [{"kinds": [1]}, {"kinds": [7]}], "61"])
        frame = c.recv_until(lambda f: f[0] == "NEG-ERR" and f[1] == "two")
        assert frame[2].startswith("invalid:")

    res = js.call("sync", url=hub.url, filter={"kinds": [1]}, items=[], filterAsArray=False)
    assert res["need"] == [ev.id] and res["have"] == []
