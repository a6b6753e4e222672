"""The Blossom authorization validator (BUD-11), pure: no hub, no sockets.

Every rule is checked alone with a real signed kind-24242 event, then hypothesis
compares the validator with an independent model of the rules over random tokens, and
throws random and mutated headers at the decoder.
"""

from __future__ import annotations

import base64
import hashlib
import json

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from samizdat.blobs.auth import (
    KIND,
    MAX_HEADER,
    AuthError,
    Authorization,
    authorize,
    check_event,
    decode_header,
    encode_header,
)
from samizdat.nostr.event import Event

from .helpers import Keys

NOW = 1_800_000_000
H1 = hashlib.sha256(b"one").hexdigest()
H2 = hashlib.sha256(b"two").hexdigest()
KEYS = Keys(bytes.fromhex("11" * 32))


def token(verb: str | None = "upload", *, kind: int = KIND, created_at: int = NOW - 10,
          expiration: str | None = str(NOW + 600), x: tuple[str, ...] = (H1,),
          extra: list[list[str]] | None = None, keys: Keys = KEYS) -> Event:
    tags: list[list[str]] = []
    if verb is not None:
        tags.append(["t", verb])
    if expiration is not None:
        tags.append(["expiration", expiration])
    tags += [["x", h] for h in x]
    tags += extra or []
    return keys.sign(kind, "Upload Blob", tags, created_at=created_at)


def ok(ev: Event, verb: str = "upload", **kw) -> Authorization:
    kw.setdefault("now", NOW)
    return authorize(encode_header(ev), verb, **kw)


def refused(ev: Event | str | None, verb: str = "upload", **kw) -> str:
    kw.setdefault("now", NOW)
    header = encode_header(ev) if isinstance(ev, Event) else ev
    with pytest.raises(AuthError) as err:
        authorize(header, verb, **kw)
    assert err.value.status == 401
    return err.value.reason


# --- each rule ---------------------------------------------------------------------------------

def test_valid_upload_token():
    auth = ok(token(), blob=H1)
    assert auth.pubkey == KEYS.pubkey
    assert auth.verb == "upload"
    assert auth.hashes == {H1}
    assert auth.expiration == NOW + 600
    assert auth.allows_blob(H1) and not auth.allows_blob(H2)


def test_every_verb():
    for verb in ("get", "upload", "list", "delete", "media"):
        assert ok(token(verb), verb).verb == verb
    with pytest.raises(ValueError):
        ok(token(), "download")


def test_kind_must_be_24242():
    assert "kind 24242" in refused(token(kind=1), blob=H1)
    assert "kind 24242" in refused(token(kind=27235), blob=H1)


def test_created_at_may_not_be_in_the_future_beyond_the_skew():
    assert ok(token(created_at=NOW + 120), clock_skew=120)
    assert "future" in refused(token(created_at=NOW + 121), clock_skew=120)
    assert "future" in refused(token(created_at=NOW + 1), clock_skew=0)
    assert ok(token(created_at=NOW), clock_skew=0)
    assert ok(token(created_at=0))  # old tokens are fine while not expired


def test_expiration_is_required_and_must_be_in_the_future():
    assert "no expiration" in refused(token(expiration=None))
    assert "expired" in refused(token(expiration=str(NOW)))
    assert "expired" in refused(token(expiration=str(NOW - 1)))
    assert ok(token(expiration=str(NOW + 1)))
    for bad in ("", "soon", "-5", "1e12", "1800000600.0", " 1800000600", "١٨٠٠٠٠٠٦٠٠",
                "9" * 16):
        assert "expiration" in refused(token(expiration=bad)), bad


def test_only_the_first_expiration_tag_counts():
    ev = token(expiration=str(NOW - 5), extra=[["expiration", str(NOW + 600)]])
    assert "expired" in refused(ev)


def test_t_tag_must_name_the_action():
    assert "'upload'" in refused(token("delete"))
    assert "'delete'" in refused(token("upload"), "delete", blob=H1)
    assert "'list'" in refused(token("get"), "list")
    assert "t tag" in refused(token(None))
    assert "t tag" in refused(token("UPLOAD"))
    # one of several t tags is enough
    assert ok(token("get", extra=[["t", "upload"]]))


def test_server_tags_scope_the_token():
    scoped = token(extra=[["server", "cdn.example.com"]])
    assert "another server" in refused(scoped, hosts={"hub.local", "10.0.0.1"})
    assert "another server" in refused(scoped)  # no host known: a scoped token cannot match
    assert ok(scoped, hosts={"hub.local", "cdn.example.com"})
    assert ok(token(extra=[["server", "CDN.Example.com."], ["server", "x.org"]]),
              hosts={"cdn.example.com"})
    assert ok(token(extra=[["server", "192.168.1.5"]]), hosts={"192.168.1.5"})
    assert ok(token(extra=[["server", "[::1]"]]), hosts={"::1"})


def test_x_tags_scope_the_token_to_blobs():
    assert ok(token(x=(H1, H2)), blob=H2)
    assert "x tags" in refused(token(x=(H1,)), blob=H2)
    assert "x tag" in refused(token(x=()), blob=H1)
    # the hash is not known yet (upload without X-SHA-256, mirror): some x tag is required
    assert ok(token(x=(H2,)), blob_required=True).hashes == {H2}
    assert "x tag" in refused(token(x=()), blob_required=True)
    # uppercase or short x values name nothing
    assert "x tag" in refused(token(x=(H1.upper(),)), blob=H1)
    assert "x tag" in refused(token(x=(H1[:63],)), blob_required=True)
    # list and get need no x tag
    assert ok(token("list", x=()), "list")


def test_bad_signature_and_forged_fields():
    ev = token()
    forged = Event(ev.id, ev.pubkey, ev.created_at, ev.kind, ev.tags, ev.content,
                   ("0" if ev.sig[0] != "0" else "1") + ev.sig[1:])
    assert "signature" in refused(forged, blob=H1)
    # a field changed after signing: the id no longer matches
    changed = Event(ev.id, ev.pubkey, ev.created_at, ev.kind,
                    [*ev.tags[:-1], ["x", H2]], ev.content, ev.sig)
    assert "id" in refused(changed, blob=H2)
    # signed by another key than the one it claims
    other = Keys()
    stolen = Event(ev.id, other.pubkey, ev.created_at, ev.kind, ev.tags, ev.content, ev.sig)
    assert refused(stolen, blob=H1)


def test_verify_false_skips_only_the_signature():
    ev = token()
    forged = Event(ev.id, ev.pubkey, ev.created_at, ev.kind, ev.tags, ev.content, "0" * 128)
    assert check_event(forged, "upload", now=NOW, blob=H1, verify=False).pubkey == KEYS.pubkey
    with pytest.raises(AuthError):
        check_event(forged, "upload", now=NOW, blob=H1)


def test_header_forms():
    ev = token()
    raw = json.dumps(ev.to_dict()).encode()
    for data in (base64.urlsafe_b64encode(raw).decode().rstrip("="),
                 base64.urlsafe_b64encode(raw).decode(),
                 base64.b64encode(raw).decode(),
                 base64.b64encode(raw).decode().rstrip("=")):
        for scheme in ("Nostr", "nostr", "NOSTR"):
            assert authorize(f"{scheme} {data}", "upload", now=NOW).pubkey == KEYS.pubkey
            assert authorize(f"  {scheme}   {data}  ", "upload", now=NOW)


@pytest.mark.parametrize("header, reason", [
    (None, "missing"),
    ("", "missing"),
    ("   ", "missing"),
    ("Bearer abc", "scheme"),
    ("Basic dXNlcjpwYXNz", "scheme"),
    ("Nostr", "no token"),
    ("Nostr    ", "no token"),
    ("Nostr !!!!", "base64"),
    ("Nostr a", "base64"),
    ("Nostr ab cd", "base64"),
    ("Nostr " + base64.b64encode(b"not json").decode(), "JSON"),
    ("Nostr " + base64.b64encode(b"[1,2,3]").decode(), "malformed"),
    ("Nostr " + base64.b64encode(b'{"kind":24242}').decode(), "malformed"),
    ("Nostr " + "A" * MAX_HEADER, "too long"),
])
def test_malformed_headers(header, reason):
    assert reason in refused(header)


def test_event_shape_limits():
    assert "more than 200 tags" in refused(token(extra=[["t", "a"]] * 201))
    assert "longer than 1024" in refused(token(extra=[["d", "a" * 1025]]))
    assert "Authorization header is too long" in refused(token(extra=[["x", H2]] * 100))


# --- hypothesis: the validator against a model of the rules ------------------------------------

VERB = st.sampled_from(["get", "upload", "list", "delete", "media"])
HOSTS = frozenset({"hub.local", "10.0.0.1"})


@st.composite
def tokens(draw):
    kind = draw(st.sampled_from([KIND, KIND, KIND, 1, 24241]))
    created = NOW + draw(st.sampled_from([-86400, -1, 0, 1, 119, 120, 121, 3600]))
    exp_choice = draw(st.sampled_from(["absent", "past", "now", "future", "junk"]))
    expiration = {"absent": None, "past": str(NOW - 1), "now": str(NOW),
                  "future": str(NOW + draw(st.integers(1, 10**6))),
                  "junk": draw(st.sampled_from(["", "x", "-1", "1.5", "0x10"]))}[exp_choice]
    verbs = draw(st.lists(st.sampled_from(["get", "upload", "list", "delete", "media", "x"]),
                          max_size=3))
    xs = draw(st.lists(st.sampled_from([H1, H2, "zz", H1.upper()]), max_size=3))
    servers = draw(st.lists(st.sampled_from(["hub.local", "HUB.local.", "other.org"]),
                            max_size=2))
    tags = [["t", v] for v in verbs]
    if expiration is not None:
        tags.append(["expiration", expiration])
    tags += [["x", x] for x in xs] + [["server", s] for s in servers]
    tags = draw(st.permutations(tags))
    return KEYS.sign(kind, "auth", list(tags), created_at=created)


def model_accepts(ev: Event, verb: str, blob: str | None, blob_required: bool) -> bool:
    """The BUD-11 rules written out again, independently of the validator."""
    tag = lambda name: [t[1] for t in ev.tags if t[0] == name]  # noqa: E731
    exp = tag("expiration")
    if ev.kind != 24242 or ev.created_at > NOW + 120:
        return False
    if not exp or not exp[0].isdecimal() or not exp[0].isascii() or int(exp[0]) <= NOW:
        return False
    if verb not in tag("t"):
        return False
    servers = {s.lower().rstrip(".") for s in tag("server")}
    if servers and "hub.local" not in servers:
        return False
    xs = {x for x in tag("x") if len(x) == 64 and x == x.lower()
          and all(c in "0123456789abcdef" for c in x)}
    if blob is not None and blob not in xs:
        return False
    return not (blob is None and blob_required and not xs)


@settings(max_examples=400, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(tokens(), VERB, st.sampled_from([None, H1, H2]), st.booleans())
def test_validator_agrees_with_the_model(ev, verb, blob, blob_required):
    expected = model_accepts(ev, verb, blob, blob_required)
    try:
        auth = authorize(encode_header(ev), verb, now=NOW, blob=blob, blob_required=blob_required,
                         hosts=HOSTS, clock_skew=120)
    except AuthError as exc:
        assert not expected, exc.reason
        assert exc.status == 401
    else:
        assert expected
        assert auth.pubkey == ev.pubkey and auth.event == ev


@settings(max_examples=300, deadline=None)
@given(st.text(max_size=300))
def test_any_header_text_is_refused_cleanly(text):
    with pytest.raises(AuthError):
        authorize(text, "upload", now=NOW)
    with pytest.raises(AuthError):
        authorize("Nostr " + text, "upload", now=NOW)


@settings(max_examples=300, deadline=None)
@given(st.binary(max_size=400))
def test_any_base64_payload_is_refused_cleanly(raw):
    with pytest.raises(AuthError):
        authorize("Nostr " + base64.urlsafe_b64encode(raw).decode(), "upload", now=NOW)


VALID = encode_header(token())


@settings(max_examples=500, deadline=None)
@given(st.integers(len("Nostr "), len(VALID) - 1),
       st.sampled_from("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_+/= "))
def test_a_changed_character_never_yields_another_valid_token(pos, char):
    header = VALID[:pos] + char + VALID[pos + 1:]
    try:
        auth = authorize(header, "upload", now=NOW, blob=H1)
    except AuthError:
        return
    # the only acceptable outcome besides refusal: the same event (e.g. a padding character)
    assert auth.event == decode_header(VALID)


@settings(max_examples=200, deadline=None)
@given(st.dictionaries(st.sampled_from(["id", "pubkey", "created_at", "kind", "tags", "content",
                                         "sig", "extra"]),
                       st.one_of(st.none(), st.integers(), st.text(max_size=5),
                                 st.lists(st.lists(st.text(max_size=3), max_size=2), max_size=2)),
                       max_size=8))
def test_any_json_object_is_refused_cleanly(obj):
    header = "Nostr " + base64.b64encode(json.dumps(obj).encode()).decode()
    with pytest.raises(AuthError):
        authorize(header, "upload", now=NOW)
