"""The NIP-01 event codec: canonical serialization, ids, signatures, shape checks.

Expected bytes below are written out by hand from the NIP-01 rule (seven escapes, every
other character raw as UTF-8) and hashed with hashlib, so they do not depend on the
code under test. Property tests then check the serializer against json.loads, and
against json.dumps wherever the two encoders must agree.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json

import orjson
import pytest
from coincurve import PrivateKey, PublicKeyXOnly
from hypothesis import HealthCheck, assume, given, settings
from hypothesis import strategies as st

from samizdat.nostr.event import (
    MAX_KIND,
    MAX_TIMESTAMP,
    Event,
    InvalidEvent,
    canonical_bytes,
    compute_id,
    parse_event,
    sign_event,
)
from samizdat.nostr.kinds import pow_difficulty
from samizdat.nostr.messages import (
    AuthMessage,
    CloseMessage,
    CountMessage,
    EventMessage,
    InvalidMessage,
    Limits,
    NegMessage,
    ReqMessage,
    parse_client_message,
)

# Secret key 1: its x-only public key is the x coordinate of the secp256k1 generator G,
# a constant of the curve (SEC 2), so this also pins down that keys are derived correctly.
KEY_ONE = PrivateKey((1).to_bytes(32, "big"))
G_X = "79be667ef9dcbbac55a06295ce870b07029bfcdb2dce28d959f2815b16f81798"
OTHER_KEY = PrivateKey((2).to_bytes(32, "big"))

SETTINGS = settings(max_examples=150, deadline=None,
                    suppress_health_check=[HealthCheck.too_slow])


def sha(b: bytes) -> str:
    return hashlib.sha256(b).hexdigest()


def test_key_one_is_the_generator():
    assert KEY_ONE.public_key_xonly.format().hex() == G_X


# --- known vectors ------------------------------------------------------------------------------

PK = G_X.encode()

VECTORS = [
    # (created_at, kind, tags, content, expected canonical bytes)
    (0, 1, [], "", b'[0,"' + PK + b'",0,1,[],""]'),
    (1700000000, 1, [], "hello", b'[0,"' + PK + b'",1700000000,1,[],"hello"]'),
    (MAX_TIMESTAMP, MAX_KIND, [], "x", b'[0,"' + PK + b'",9007199254740992,65535,[],"x"]'),
    # the seven NIP-01 escapes, one at a time
    (5, 1, [], "a\nb", b'[0,"' + PK + b'",5,1,[],"a\\nb"]'),
    (5, 1, [], 'a"b', b'[0,"' + PK + b'",5,1,[],"a\\"b"]'),
    (5, 1, [], "a\\b", b'[0,"' + PK + b'",5,1,[],"a\\\\b"]'),
    (5, 1, [], "a\tb", b'[0,"' + PK + b'",5,1,[],"a\\tb"]'),
    (5, 1, [], "a\rb", b'[0,"' + PK + b'",5,1,[],"a\\rb"]'),
    (5, 1, [], "a\bb", b'[0,"' + PK + b'",5,1,[],"a\\bb"]'),
    (5, 1, [], "a\fb", b'[0,"' + PK + b'",5,1,[],"a\\fb"]'),
    # everything else raw: C0 controls, DEL, line/paragraph separators, non-ASCII, emoji
    (5, 1, [], "a\x00b", b'[0,"' + PK + b'",5,1,[],"a\x00b"]'),
    (5, 1, [], "a\x01b", b'[0,"' + PK + b'",5,1,[],"a\x01b"]'),
    (5, 1, [], "a\x1fb", b'[0,"' + PK + b'",5,1,[],"a\x1fb"]'),
    (5, 1, [], "a\x7fb", b'[0,"' + PK + b'",5,1,[],"a\x7fb"]'),
    (5, 1, [], "a\u2028b\u2029", b'[0,"' + PK + b'",5,1,[],"a\xe2\x80\xa8b\xe2\x80\xa9"]'),
    (5, 1, [], "caf\u00e9", b'[0,"' + PK + b'",5,1,[],"caf\xc3\xa9"]'),
    (5, 1, [], "\U0001f600", b'[0,"' + PK + b'",5,1,[],"\xf0\x9f\x98\x80"]'),
    (5, 1, [], "/<>&'", b'[0,"' + PK + b'",5,1,[],"/<>&\'"]'),
    (5, 1, [], "\\u0041", b'[0,"' + PK + b'",5,1,[],"\\\\u0041"]'),
    # tags: empty tag, empty value, escapes and raw characters inside values
    (7, 30023, [[], [""], ["d", 'x"y\\z'], ["t", "\n\x01\u00e9"]],
     "",
     b'[0,"' + PK + b'",7,30023,[[],[""],["d","x\\"y\\\\z"],["t","\\n\x01\xc3\xa9"]],""]'),
    (9, 1, [["e", "a", "b", "c"], ["p"]], "two\ttags",
     b'[0,"' + PK + b'",9,1,[["e","a","b","c"],["p"]],"two\\ttags"]'),
    # all of it at once
    (1, 1, [], 'n\n q" s\\ t\t r\r b\b f\f \x01\x1f\x7f\u2028\u00e9\U0001f600',
     b'[0,"' + PK + b'",1,1,[],"n\\n q\\" s\\\\ t\\t r\\r b\\b f\\f '
     b'\x01\x1f\x7f\xe2\x80\xa8\xc3\xa9\xf0\x9f\x98\x80"]'),
]


@pytest.mark.parametrize(("created_at", "kind", "tags", "content", "expected"), VECTORS)
def test_known_vectors(created_at, kind, tags, content, expected):
    # sanity of the hand-written vector itself: it decodes (non-strict JSON) to the input
    assert json.loads(expected.decode("utf-8"), strict=False) == [0, G_X, created_at, kind,
                                                                  tags, content]
    assert canonical_bytes(G_X, created_at, kind, tags, content) == expected
    assert compute_id(G_X, created_at, kind, tags, content) == sha(expected)
    ev = sign_event(KEY_ONE, kind, content, tags, created_at)
    assert ev.pubkey == G_X
    assert ev.id == sha(expected)
    assert ev.canonical() == expected
    ev.verify()
    # the signature checks out with libsecp256k1 directly, over the hand-computed id
    assert PublicKeyXOnly(bytes.fromhex(G_X)).verify(bytes.fromhex(ev.sig),
                                                     hashlib.sha256(expected).digest())


@pytest.mark.parametrize("content", ["\x01", "\x00", "\x1f", "x\x0by", "\x7f\x01"])
def test_json_dumps_gives_a_different_id_for_control_characters(content):
    naive = json.dumps([0, G_X, 1, 1, [], content], ensure_ascii=False,
                       separators=(",", ":")).encode()
    exact = b'[0,"' + PK + b'",1,1,[],"' + content.encode() + b'"]'
    assert b"\\u00" in naive  # json.dumps escapes the control character...
    assert sha(naive) != sha(exact)  # ...and so hashes to another id
    assert canonical_bytes(G_X, 1, 1, [], content) == exact
    assert compute_id(G_X, 1, 1, [], content) == sha(exact)
    assert compute_id(G_X, 1, 1, [], content) != sha(naive)


def test_json_dumps_agrees_without_control_characters():
    content = 'caf\u00e9 "quoted" back\\slash\nnew\ttab \U0001f600 \u2028 \x7f'
    naive = json.dumps([0, G_X, 1, 1, [["t", "x\ny"]], content], ensure_ascii=False,
                       separators=(",", ":")).encode()
    assert canonical_bytes(G_X, 1, 1, [["t", "x\ny"]], content) == naive


# --- properties ---------------------------------------------------------------------------------

# any code point except surrogates (which UTF-8 cannot carry)
chars = st.characters(exclude_categories=("Cs",))
texts = st.text(chars, max_size=40)
tag_lists = st.lists(st.lists(texts, max_size=4), max_size=4)
timestamps = st.integers(0, MAX_TIMESTAMP)
kinds = st.integers(0, MAX_KIND)
hex64 = st.text("0123456789abcdef", min_size=64, max_size=64)
# control characters that NIP-01 does not escape (json.dumps escapes them as \u00XX)
UNESCAPED_CONTROLS = {chr(c) for c in range(0x20)} - set("\n\r\t\b\f")


@SETTINGS
@given(hex64, timestamps, kinds, tag_lists, texts)
def test_canonical_bytes_decode_back(pubkey, created_at, kind, tags, content):
    raw = canonical_bytes(pubkey, created_at, kind, tags, content)
    assert json.loads(raw.decode("utf-8"), strict=False) == [0, pubkey, created_at, kind,
                                                             tags, content]
    # no escape other than the seven of NIP-01 appears: \u never comes from the encoder
    stripped = raw.replace(b"\\\\", b"")
    assert b"\\u" not in stripped
    assert compute_id(pubkey, created_at, kind, tags, content) == sha(raw)


@SETTINGS
@given(hex64, timestamps, kinds, tag_lists, texts)
def test_canonical_bytes_match_json_dumps_when_no_raw_controls(pubkey, created_at, kind,
                                                               tags, content):
    strings = [content, *(v for t in tags for v in t)]
    assume(not any(c in UNESCAPED_CONTROLS for s in strings for c in s))
    naive = json.dumps([0, pubkey, created_at, kind, tags, content], ensure_ascii=False,
                       separators=(",", ":")).encode()
    assert canonical_bytes(pubkey, created_at, kind, tags, content) == naive


@SETTINGS
@given(st.integers(1, 2**64), kinds, tag_lists, texts, timestamps)
def test_signed_events_verify_and_survive_the_wire(seed, kind, tags, content, created_at):
    key = PrivateKey(hashlib.sha256(seed.to_bytes(9, "big")).digest())
    ev = sign_event(key, kind, content, tags, created_at)
    ev.verify()
    # wire round trip: orjson out, orjson in, shape check, verify again
    again = parse_event(orjson.loads(ev.to_json()), max_content=1 << 20)
    assert again == ev
    again.verify()
    # and through Python's json too
    parse_event(json.loads(json.dumps(ev.to_dict()))).verify()


def _flip_hex_bit(value: str, bit: int) -> str:
    n = int(value, 16) ^ (1 << bit)
    return f"{n:0{len(value)}x}"


def _change_one_char(data: st.DataObject, s: str) -> str:
    """Replace, insert or delete one character of ``s`` (the result differs from ``s``)."""
    ops = ["insert"] + (["replace", "delete"] if s else [])
    op = data.draw(st.sampled_from(ops))
    if op == "insert":
        i = data.draw(st.integers(0, len(s)))
        return s[:i] + data.draw(chars) + s[i:]
    i = data.draw(st.integers(0, len(s) - 1))
    if op == "delete":
        return s[:i] + s[i + 1:]
    c = data.draw(chars.filter(lambda c: c != s[i]))
    return s[:i] + c + s[i + 1:]


FIELDS = ["content", "tags", "created_at", "kind", "sig", "id", "pubkey"]


@SETTINGS
@given(kinds, tag_lists, texts, st.integers(0, MAX_TIMESTAMP), st.sampled_from(FIELDS),
       st.data())
def test_any_change_breaks_verification(kind, tags, content, created_at, field, data):
    ev = sign_event(KEY_ONE, kind, content, tags, created_at)
    ev.verify()
    if field == "content":
        bad = dataclasses.replace(ev, content=_change_one_char(data, content))
    elif field == "tags":
        new_tags = [list(t) for t in tags]
        where = data.draw(st.sampled_from(["value", "new-tag", "new-value", "drop"]))
        if where == "value" and any(new_tags):
            i = data.draw(st.sampled_from([i for i, t in enumerate(new_tags) if t]))
            j = data.draw(st.integers(0, len(new_tags[i]) - 1))
            new_tags[i][j] = _change_one_char(data, new_tags[i][j])
        elif where == "new-value" and new_tags:
            i = data.draw(st.integers(0, len(new_tags) - 1))
            new_tags[i].append(data.draw(st.text(chars, max_size=1)))
        elif where == "drop" and new_tags:
            new_tags.pop(data.draw(st.integers(0, len(new_tags) - 1)))
        else:
            new_tags.insert(data.draw(st.integers(0, len(new_tags))),
                            data.draw(st.lists(st.text(chars, max_size=1), max_size=1)))
        bad = dataclasses.replace(ev, tags=new_tags)
    elif field == "created_at":
        other = data.draw(st.integers(0, MAX_TIMESTAMP).filter(lambda t: t != created_at))
        bad = dataclasses.replace(ev, created_at=other)
    elif field == "kind":
        bad = dataclasses.replace(ev, kind=data.draw(kinds.filter(lambda k: k != kind)))
    elif field == "sig":
        bad = dataclasses.replace(ev, sig=_flip_hex_bit(ev.sig, data.draw(st.integers(0, 511))))
    elif field == "id":
        bad = dataclasses.replace(ev, id=_flip_hex_bit(ev.id, data.draw(st.integers(0, 255))))
    else:
        bad = dataclasses.replace(ev, pubkey=_flip_hex_bit(ev.pubkey,
                                                           data.draw(st.integers(0, 255))))
    assert bad != ev
    with pytest.raises(InvalidEvent) as exc:
        bad.verify()
    assert str(exc.value).startswith("invalid:")


@SETTINGS
@given(hex64, st.integers(0, 511))
def test_a_valid_id_with_a_foreign_signature_fails(other_id, bit):
    ev = sign_event(KEY_ONE, 1, "hello", [], 1)
    # a real signature, but over another message or by another key
    other_sig = KEY_ONE.sign_schnorr(bytes.fromhex(other_id)).hex()
    assume(other_id != ev.id)
    with pytest.raises(InvalidEvent, match=r"^invalid: signature"):
        dataclasses.replace(ev, sig=other_sig).verify()
    foreign = OTHER_KEY.sign_schnorr(bytes.fromhex(ev.id)).hex()
    with pytest.raises(InvalidEvent, match=r"^invalid: signature"):
        dataclasses.replace(ev, sig=foreign).verify()


surrogates = st.integers(0xD800, 0xDFFF).map(chr)


@SETTINGS
@given(texts, surrogates, texts, st.booleans())
def test_lone_surrogates_raise_invalid_event(before, surrogate, after, in_tag):
    bad = before + surrogate + after
    tags = [["t", bad]] if in_tag else []
    content = "" if in_tag else bad
    with pytest.raises(InvalidEvent, match=r"^invalid:"):
        canonical_bytes(G_X, 1, 1, tags, content)
    with pytest.raises(InvalidEvent, match=r"^invalid:"):
        compute_id(G_X, 1, 1, tags, content)
    with pytest.raises(InvalidEvent, match=r"^invalid:"):
        sign_event(KEY_ONE, 1, content, tags, 1)
    # an event that passed the shape check (as one decoded from JSON would) fails verify()
    ok = sign_event(KEY_ONE, 1, "x", [], 1)
    forged = parse_event({**ok.to_dict(), "content": content, "tags": tags})
    with pytest.raises(InvalidEvent, match=r"^invalid:"):
        forged.verify()


# --- parse_event rejections ------------------------------------------------------------------

GOOD = sign_event(KEY_ONE, 1, "hello", [["t", "news"]], 1700000000).to_dict()


def with_(**changes):
    return {**GOOD, **changes}


def without(key):
    return {k: v for k, v in GOOD.items() if k != key}


BAD_EVENTS = {
    "not-an-object-list": [GOOD],
    "not-an-object-str": "event",
    "not-an-object-none": None,
    **{f"missing-{k}": without(k) for k in GOOD},
    "id-uppercase": with_(id=GOOD["id"].upper()),
    "id-63": with_(id=GOOD["id"][:63]),
    "id-65": with_(id=GOOD["id"] + "0"),
    "id-not-hex": with_(id="g" + GOOD["id"][1:]),
    "id-number": with_(id=1),
    "id-with-newline": with_(id=GOOD["id"] + "\n"),
    "pubkey-uppercase": with_(pubkey=GOOD["pubkey"].upper()),
    "pubkey-63": with_(pubkey=GOOD["pubkey"][:63]),
    "pubkey-65": with_(pubkey=GOOD["pubkey"] + "0"),
    "pubkey-null": with_(pubkey=None),
    "sig-uppercase": with_(sig=GOOD["sig"].upper()),
    "sig-127": with_(sig=GOOD["sig"][:127]),
    "sig-129": with_(sig=GOOD["sig"] + "0"),
    "sig-list": with_(sig=[GOOD["sig"]]),
    "created_at-string": with_(created_at="1700000000"),
    "created_at-float": with_(created_at=1700000000.0),
    "created_at-bool": with_(created_at=True),
    "created_at-negative": with_(created_at=-1),
    "created_at-too-big": with_(created_at=MAX_TIMESTAMP + 1),
    "created_at-2**64": with_(created_at=2**64),
    "created_at-null": with_(created_at=None),
    "kind-string": with_(kind="1"),
    "kind-float": with_(kind=1.0),
    "kind-bool": with_(kind=False),
    "kind-negative": with_(kind=-1),
    "kind-65536": with_(kind=MAX_KIND + 1),
    "kind-list": with_(kind=[1]),
    "content-number": with_(content=5),
    "content-null": with_(content=None),
    "content-list": with_(content=["hello"]),
    "tags-object": with_(tags={"t": "news"}),
    "tags-string": with_(tags="t"),
    "tags-null": with_(tags=None),
    "tags-flat-list": with_(tags=["t", "news"]),
    "tags-number-inside": with_(tags=[["t", 1]]),
    "tags-float-inside": with_(tags=[["t", 1.5]]),
    "tags-bool-inside": with_(tags=[["t", True]]),
    "tags-null-inside": with_(tags=[["t", None]]),
    "tags-nested": with_(tags=[["t", ["news"]]]),
    "tags-object-inside": with_(tags=[{"t": "news"}]),
    "tags-one-bad-of-many": with_(tags=[["t", "a"], ["p", "b"], [7]]),
}


@pytest.mark.parametrize("obj", list(BAD_EVENTS.values()), ids=list(BAD_EVENTS))
def test_parse_event_rejects(obj):
    with pytest.raises(InvalidEvent) as exc:
        parse_event(obj)
    assert str(exc.value).startswith("invalid:"), str(exc.value)


def test_parse_event_accepts_the_boundaries():
    ev = parse_event(GOOD)
    assert ev.to_dict() == GOOD
    ev.verify()
    parse_event(with_(created_at=0, kind=0))
    parse_event(with_(created_at=MAX_TIMESTAMP, kind=MAX_KIND))
    parse_event(with_(tags=[], content=""))
    parse_event(with_(tags=[[], [""]]))
    parse_event({**GOOD, "extra": "field"})  # unknown fields are not ours to judge


@pytest.mark.parametrize(
    ("field", "at_limit", "over_limit"),
    [
        ("tags", [["t", "x"]] * 3, [["t", "x"]] * 4),
        ("content", "é" * 10, "é" * 11),
        ("tag value", [["t", "abcde"]], [["t", "abcdef"]]),
        ("tag name", [["abcde"]], [["abcdef"]]),
    ],
)
def test_parse_event_limits(field, at_limit, over_limit):
    limits = {"max_tags": 3, "max_content": 10, "max_tag_value": 5}
    key = "content" if field == "content" else "tags"
    parse_event(with_(**{key: at_limit}), **limits)
    with pytest.raises(InvalidEvent) as exc:
        parse_event(with_(**{key: over_limit}), **limits)
    assert str(exc.value).startswith("invalid:"), str(exc.value)


def test_parse_event_default_limits():
    with pytest.raises(InvalidEvent, match=r"^invalid:"):
        parse_event(with_(content="x" * ((1 << 20) + 1)))
    with pytest.raises(InvalidEvent, match=r"^invalid:"):
        parse_event(with_(tags=[["t"]] * 2001))
    with pytest.raises(InvalidEvent, match=r"^invalid:"):
        parse_event(with_(tags=[["t", "x" * 4097]]))


# --- client message fuzzing ----------------------------------------------------------------------

MESSAGE_TYPES = (EventMessage, ReqMessage, CountMessage, CloseMessage, AuthMessage, NegMessage)
LIMITS = Limits(max_filters=4, max_filter_values=5, max_event_tags=5, max_content_length=50,
                max_tag_value_length=10)

scalars = (st.none() | st.booleans() | st.integers() | st.integers(-(2**70), 2**70)
           | st.floats(allow_nan=False, allow_infinity=False) | st.text(max_size=20)
           | st.sampled_from([GOOD["id"], GOOD["pubkey"], GOOD["sig"], "", "#e", "ids"]))
json_values = st.recursive(
    scalars,
    lambda inner: st.lists(inner, max_size=5) | st.dictionaries(st.text(max_size=8), inner,
                                                                max_size=5),
    max_leaves=20,
)
filter_keys = st.sampled_from(["ids", "authors", "kinds", "#e", "#p", "#", "#ab", "#1",
                               "since", "until", "limit", "search", "foo"])
filter_values = (json_values | st.lists(st.sampled_from([GOOD["id"], "abc", 1, -1, 70000]),
                                        max_size=7) | st.integers(-5, 10**6))
filters = st.dictionaries(filter_keys, filter_values, max_size=4)
event_like = st.builds(
    lambda base, changes, drop: {k: v for k, v in {**base, **changes}.items() if k not in drop},
    st.just(GOOD),
    st.dictionaries(st.sampled_from(list(GOOD)), json_values, max_size=3),
    st.sets(st.sampled_from(list(GOOD)), max_size=2),
)
verbs = st.sampled_from(["EVENT", "REQ", "COUNT", "CLOSE", "AUTH", "NEG-OPEN", "NEG-MSG",
                         "NEG-CLOSE", "HELLO", "", "event", "REQ "])
messages = st.one_of(
    json_values,
    st.tuples(verbs, st.lists(json_values, max_size=4)).map(lambda t: [t[0], *t[1]]),
    st.tuples(st.sampled_from(["REQ", "COUNT"]), st.text(max_size=70) | json_values,
              st.lists(filters, max_size=6)).map(lambda t: [t[0], t[1], *t[2]]),
    st.tuples(st.sampled_from(["EVENT", "AUTH"]), event_like).map(list),
)


def _check_parse(data: str | bytes) -> None:
    try:
        msg = parse_client_message(data, LIMITS)
    except InvalidMessage as exc:
        assert exc.reason.startswith("invalid:"), exc.reason
        assert str(exc) == exc.reason
        if exc.subid is not None:
            assert isinstance(exc.subid, str)
            assert 0 < len(exc.subid) <= LIMITS.max_subid_length
        return
    assert isinstance(msg, MESSAGE_TYPES)


@settings(max_examples=400, deadline=None)
@given(messages, st.booleans())
def test_parse_client_message_fuzz_json(value, ascii_only):
    _check_parse(json.dumps(value, ensure_ascii=ascii_only))
    _check_parse(json.dumps(value).encode())


@settings(max_examples=300, deadline=None)
@given(st.binary(max_size=200) | st.text(max_size=200)
       | st.lists(st.characters() | surrogates, max_size=50).map("".join))
def test_parse_client_message_fuzz_raw(data):
    _check_parse(data)


@settings(max_examples=200, deadline=None)
@given(messages, st.integers(0, 10**6), st.binary(min_size=1, max_size=3))
def test_parse_client_message_fuzz_corrupted(value, where, garbage):
    raw = json.dumps(value).encode()
    i = where % (len(raw) + 1)
    _check_parse(raw[:i] + garbage + raw[i:])
    _check_parse(raw[:i])


@pytest.mark.parametrize("data", [
    b"\xff", b"\xc3", "\ud800", '["REQ","\ud800",{}]', '["EVENT",{"content":"\\ud800"}]',
    "[" * 5000 + "]" * 5000, '["REQ","s",' + '{"#e":' * 3000 + "1" + "}" * 3000 + "]",
    "[1e400]", '["EVENT",', "", " ", "NaN", "[Infinity]", '["REQ","s",{}]garbage',
    "\x00", '["\x01"]',
])
def test_parse_client_message_rejects_nasty_inputs(data):
    with pytest.raises(InvalidMessage) as exc:
        parse_client_message(data, LIMITS)
    assert exc.value.reason.startswith("invalid:")


def test_parse_client_message_subid_and_event_id_are_reported():
    with pytest.raises(InvalidMessage) as exc:
        parse_client_message('["REQ","sub1",{"kinds":"1"}]')
    assert (exc.value.verb, exc.value.subid) == ("REQ", "sub1")
    bad = with_(sig="00")
    with pytest.raises(InvalidMessage) as exc:
        parse_client_message(json.dumps(["EVENT", bad]))
    assert (exc.value.verb, exc.value.event_id) == ("EVENT", GOOD["id"])
    assert exc.value.reason.startswith("invalid: sig")


# --- NIP-13 ------------------------------------------------------------------------------------

@pytest.mark.parametrize(("event_id", "bits"), [
    # the example of NIP-13
    ("000000000e9d97a1ab09fc381030b346cdd7a142ad57e6df0b46dc9bef6c7e2d", 36),
    ("0" * 64, 256),
    ("0" * 63 + "1", 255),
    ("0" * 63 + "f", 252),
    ("f" + "0" * 63, 0),
    ("8" + "0" * 63, 0),
    ("7" + "f" * 63, 1),
    ("4" + "f" * 63, 1),
    ("3" + "f" * 63, 2),
    ("2" + "f" * 63, 2),
    ("1" + "f" * 63, 3),
    ("00" + "1" + "f" * 61, 11),
    ("000" + "7" + "0" * 60, 13),
    ("0000" + "8" + "0" * 59, 16),
    ("002f" + "0" * 60, 10),
])
def test_pow_difficulty(event_id, bits):
    assert pow_difficulty(event_id) == bits


@SETTINGS
@given(st.binary(min_size=32, max_size=32))
def test_pow_difficulty_counts_leading_zero_bits(raw):
    n = int.from_bytes(raw, "big")
    assert pow_difficulty(raw.hex()) == 256 - n.bit_length()


def test_event_type_is_plain_data():
    ev = Event(**GOOD)
    assert ev.to_dict() == GOOD
    assert orjson.loads(ev.to_json()) == GOOD


# --- the orjson fast path must never differ from our own serializer --------------------------

_any_text = st.text(alphabet=st.characters(blacklist_categories=("Cs",)), max_size=60)


@given(content=_any_text, tags=st.lists(st.lists(_any_text, max_size=4), max_size=4),
       created_at=st.integers(0, 2**53), kind=st.integers(0, 65535))
@settings(max_examples=500, deadline=None)
def test_fast_path_equals_own_serializer(content, tags, created_at, kind):
    from samizdat.nostr.event import nip01_serialize

    pub = "ab" * 32
    assert canonical_bytes(pub, created_at, kind, tags, content) == \
        nip01_serialize(pub, created_at, kind, tags, content)


@pytest.mark.parametrize("text", ["\x00", "\x01", "\x1f", "\\u0000", "\\u00", "a\\\x01", "\x7f"])
def test_fast_path_edge_cases(text):
    from samizdat.nostr.event import nip01_serialize

    args = ("ab" * 32, 1, 1, [[text]], text)
    assert canonical_bytes(*args) == nip01_serialize(*args)
