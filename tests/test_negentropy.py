"""The negentropy core: varints, fingerprints, storage, and whole sync sessions.

Sync tests run both sides in memory to completion and compare what the initiator
learnt with the true symmetric difference; fuzz tests feed hostile bytes to
``reconcile`` and accept only a :class:`NegentropyError` or a well-formed reply.
Byte-level vectors were produced by the reference C++ implementation
(hoytech/negentropy, ``test/cpp/harness``), since the reference conformance suite
requires byte-identical messages across implementations.
"""

from __future__ import annotations

import hashlib
import random
from dataclasses import dataclass, field

import pytest
from hypothesis import HealthCheck, assume, given, settings
from hypothesis import strategies as st

from samizdat.negentropy import (
    INFINITY,
    MIN_FRAME_SIZE_LIMIT,
    PROTOCOL_VERSION,
    Bound,
    Negentropy,
    NegentropyError,
    ReconcileResult,
    Storage,
    VectorStorage,
    decode_hex_message,
    decode_varint,
    encode_varint,
    fingerprint_from_sum,
    fingerprint_of_ids,
)

U64_MAX = 2**64 - 1
LIMITS = [0, 4096, 60000]


def sha(data: bytes) -> bytes:
    return hashlib.sha256(data).digest()


# ---------------------------------------------------------------------------
# varints


VARINT_VECTORS = [
    (0, "00"),
    (1, "01"),
    (127, "7f"),
    (128, "8100"),
    (255, "817f"),
    (300, "822c"),
    (16383, "ff7f"),
    (16384, "818000"),
    (2**32, "9080808000"),
    (U64_MAX, "81" + "ff" * 8 + "7f"),
]


@pytest.mark.parametrize(("value", "hexed"), VARINT_VECTORS)
def test_varint_known_vectors(value: int, hexed: str) -> None:
    assert encode_varint(value).hex() == hexed
    assert decode_varint(bytes.fromhex(hexed)) == (value, len(hexed) // 2)


@given(st.integers(0, U64_MAX), st.binary(max_size=4), st.binary(max_size=4))
def test_varint_round_trip_inside_a_buffer(value: int, before: bytes, after: bytes) -> None:
    enc = encode_varint(value)
    assert decode_varint(before + enc + after, len(before)) == (value, len(before) + len(enc))


@given(st.integers(0, U64_MAX))
def test_varint_is_most_significant_digit_first(value: int) -> None:
    enc = encode_varint(value)
    assert all(b & 0x80 for b in enc[:-1]) and not enc[-1] & 0x80
    assert enc[0] != 0x80  # minimal: no leading zero digit
    digits = [b & 0x7F for b in enc]
    total = 0
    for d in digits:
        total = total * 128 + d
    assert total == value


@pytest.mark.parametrize("value", [-1, 2**64, 2**70])
def test_varint_encode_out_of_range(value: int) -> None:
    with pytest.raises(NegentropyError):
        encode_varint(value)


@pytest.mark.parametrize(
    ("data", "pos", "reason"),
    [
        (b"", 0, "truncated"),
        (b"\x05", 1, "truncated"),
        (b"\x81", 0, "truncated"),
        (b"\xff\xff\xff", 0, "truncated"),
        (b"\x80\x01", 0, "non-minimal"),
        (b"\x80\x80\x80\x00", 0, "non-minimal"),
        (b"\x82" + b"\x80" * 8 + b"\x00", 0, "64 bits"),  # 2**64
        (b"\xff" * 11 + b"\x00", 0, "64 bits"),
        (b"\xff" * 100_000, 0, "64 bits"),  # stops early, not after 100k digits
    ],
)
def test_varint_decode_rejects(data: bytes, pos: int, reason: str) -> None:
    with pytest.raises(NegentropyError, match=reason):
        decode_varint(data, pos)


@given(st.binary(max_size=14))
def test_varint_decode_agrees_with_spec_or_raises(data: bytes) -> None:
    # The spec decoder: digits until a byte without the high bit.
    try:
        value, pos = decode_varint(data)
    except NegentropyError:
        return
    spec_value = 0
    spec_len = 0
    for b in data:
        spec_value = spec_value * 128 + (b & 0x7F)
        spec_len += 1
        if not b & 0x80:
            break
    assert (value, pos) == (spec_value, spec_len)
    assert encode_varint(value) == data[:pos]  # whatever is accepted is canonical


# ---------------------------------------------------------------------------
# fingerprints


def test_fingerprint_of_empty_set() -> None:
    assert fingerprint_of_ids([]) == sha(bytes(32) + b"\x00")[:16]
    assert fingerprint_from_sum(0, 0) == fingerprint_of_ids([])


def test_fingerprint_of_one_id_is_hash_of_id_and_count() -> None:
    item_id = bytes(range(32))
    assert fingerprint_of_ids([item_id]) == sha(item_id + b"\x01")[:16]


def test_fingerprint_sum_is_little_endian_with_carry() -> None:
    a = b"\xff" + bytes(31)  # 255
    b = b"\x01" + bytes(31)  # 1
    # 255 + 1 = 256: byte 0 wraps to zero and carries into byte 1.
    assert fingerprint_of_ids([a, b]) == sha(b"\x00\x01" + bytes(30) + b"\x02")[:16]


def test_fingerprint_sum_wraps_mod_2_256() -> None:
    top = b"\xff" * 32  # 2**256 - 1
    one = b"\x01" + bytes(31)
    assert fingerprint_of_ids([top, one]) == sha(bytes(32) + b"\x02")[:16]
    # ... and the count keeps it apart from the empty set.
    assert fingerprint_of_ids([top, one]) != fingerprint_of_ids([])


def test_fingerprint_count_uses_varint() -> None:
    ids = [bytes(32)] * 200
    assert fingerprint_of_ids(ids) == sha(bytes(32) + b"\x81\x48")[:16]


def test_fingerprint_is_order_independent() -> None:
    ids = [sha(b"%d" % i) for i in range(10)]
    assert fingerprint_of_ids(ids) == fingerprint_of_ids(reversed(ids))


@given(st.lists(st.binary(min_size=32, max_size=32), unique=True, max_size=60), st.data())
def test_vector_fingerprint_matches_direct_computation(
    ids: list[bytes], data: st.DataObject
) -> None:
    storage = VectorStorage.from_items((i % 3, x) for i, x in enumerate(ids))
    begin = data.draw(st.integers(0, len(ids)))
    end = data.draw(st.integers(begin, len(ids)))
    expected = fingerprint_of_ids(x for _, x in storage.iterate(begin, end))
    assert storage.fingerprint(begin, end) == expected
    # the generic (walking) implementation of the base class agrees too
    assert Storage.fingerprint(storage, begin, end) == expected


# ---------------------------------------------------------------------------
# storage


def test_vector_storage_sorts_by_timestamp_then_id() -> None:
    a, b, c = b"\x01" * 32, b"\x02" * 32, b"\x00" * 32
    s = VectorStorage.from_items([(5, b), (5, a), (9, c), (1, b"\x03" * 32)])
    assert [t for t, _ in s] == [1, 5, 5, 9]
    assert s.get_item(1) == (5, a) and s.get_item(2) == (5, b)
    assert list(s.iterate(1, 3)) == [(5, a), (5, b)]


def test_vector_storage_lower_bound_with_id_prefixes() -> None:
    ids = [bytes([0x10]) + bytes(31), bytes([0x20]) + bytes(31), bytes([0x20, 0x01]) + bytes(30)]
    s = VectorStorage.from_items([(5, x) for x in ids] + [(7, b"\xee" * 32)])
    assert s.find_lower_bound(0, 4, Bound(5)) == 0
    assert s.find_lower_bound(0, 4, Bound(5, b"\x20")) == 1  # prefix padded with zeros
    assert s.find_lower_bound(0, 4, Bound(5, b"\x20\x00\x01")) == 2
    assert s.find_lower_bound(0, 4, Bound(6)) == 3
    assert s.find_lower_bound(0, 4, Bound(INFINITY)) == 4
    assert s.find_lower_bound(2, 3, Bound(0)) == 2


def test_vector_storage_rejects_misuse() -> None:
    s = VectorStorage()
    s.insert(1, b"\x01" * 32)
    with pytest.raises(NegentropyError, match="not sealed"):
        s.size()
    with pytest.raises(NegentropyError, match="32 bytes"):
        s.insert(1, b"\x01" * 31)
    with pytest.raises(NegentropyError, match="outside"):
        s.insert(INFINITY, b"\x02" * 32)
    with pytest.raises(NegentropyError, match="outside"):
        s.insert(-1, b"\x02" * 32)
    s.seal()
    with pytest.raises(NegentropyError, match="already sealed"):
        s.insert(2, b"\x02" * 32)
    with pytest.raises(NegentropyError, match="already sealed"):
        s.seal()
    with pytest.raises(NegentropyError, match="out of range"):
        s.get_item(1)
    with pytest.raises(NegentropyError, match="bad range"):
        s.fingerprint(1, 0)
    with pytest.raises(NegentropyError, match="bad range"):
        list(s.iterate(0, 2))


def test_vector_storage_rejects_duplicates() -> None:
    with pytest.raises(NegentropyError, match="duplicate"):
        VectorStorage.from_items([(1, b"\x01" * 32), (1, b"\x01" * 32)])
    with pytest.raises(NegentropyError, match="two different timestamps"):
        VectorStorage.from_items([(1, b"\x01" * 32), (2, b"\x01" * 32)])


# ---------------------------------------------------------------------------
# byte-identical output with the reference implementation


def _ref_items_a() -> list[tuple[int, bytes]]:
    return [(1700000000 + i // 4, sha(b"samizdat-%d" % i)) for i in range(40)]


def _ref_items_b() -> list[tuple[int, bytes]]:
    items = [(1700000000 + i // 4, sha(b"samizdat-%d" % i)) for i in range(40) if i != 5]
    return items + [(1700000000 + i // 4, sha(b"samizdat-%d" % i)) for i in range(100, 105)]


REF_INITIATE = (
    "6186aacfe20101d201ad7f8185cda4efd1cf2cb50765521d2402019901b901955680490f97fbe9147c78"
    "3369b50201340100ed4e5dd21b17aa6bb67740825abd6502000161d7acaf45a4e9d6a0fc0bdb9e642a62"
    "0101f701f348c3cf532b8f268ccec256f45ad2e20201a401e8ff9d9dd3ad4b67cb5574c94cd6737e0201"
    "a201c3dfe2fd5d16729ade3881682c8c1d8d020001a57b72d045ffe5be52dbadf4a0913b9001019901f9"
    "4c98f1dff4943991e43605b5993403020001246e056b1badcc1acde91dc24921c1e90101a001b995be3b"
    "68db28e1726229892a5b9df8020001e44a838bdde0299f4a5ef9dc8ec8e4f00101b9011c9f5eb3d8ea90"
    "bdf74eb63d986e304a02000137feb68e21bf5d450e6c567c054f52f90101e6015e6cf24235f895b3191e"
    "969a1091befa000001b8b65de24ab98a0c14521fe5b0870891"
)
REF_REPLY = (
    "6186aacfe20101d2000201990202d28afa4e0611367bc1f7c2bfb6dda97369fbeec2e6a39c958451db74"
    "3d0668ee5b93fef6e4fcce22fa28f02dac291f2546e48ade74387438f623482d492753010901e6000000"
    "0207e68630ed33345ac3b46f233c358f067e79a0beec5ea5e37037cc5b7478f0ba24f45cc139f6e87099"
    "18ba3d3a226f321a9ff93a5baa196838133c5b5711e2074173d20ff7462c29adfbec4ae4aaf92dbc4d66"
    "26ee5525a3bf2f99577a4880fafd9f7933927f63f2aa764152826a39434da14880b5e189a2c8bcb7baf3"
    "72ac0453a6c83799d561e200d0022846774fc9049df9b4dbd461ad91027e63752b3d5d1dc891fa91716f"
    "70545e0d9bcad79ba8fb01ddcf61f47b9021cec7fdb37c5cf0a40b418018db2679a895136d5c0e475694"
    "3c975b36ee7479a2b73459f533a4dbf0"
)


def test_conversation_is_byte_identical_to_reference() -> None:
    client = Negentropy(VectorStorage.from_items(_ref_items_a()), 0)
    server = Negentropy(VectorStorage.from_items(_ref_items_b()), 0)
    msg = client.initiate()
    assert msg.hex() == REF_INITIATE
    reply = server.reconcile(msg)
    assert isinstance(reply, bytes) and reply.hex() == REF_REPLY
    result = client.reconcile(reply)
    assert isinstance(result, ReconcileResult)
    assert result.reply is None
    assert result.have_ids == [sha(b"samizdat-5")]
    assert set(result.need_ids) == {sha(b"samizdat-%d" % i) for i in range(100, 105)}


def test_equal_timestamps_and_long_prefixes_match_reference() -> None:
    # sha256 of the messages the reference C++ harness produced for the same items.
    equal = [(5, sha(b"eq-%d" % i)) for i in range(64)]
    prefixed = [(7 + i % 2, bytes.fromhex("ab" * 30 + f"{i * 7:04x}")) for i in range(40)]
    msg = Negentropy(VectorStorage.from_items(equal), 0).initiate()
    assert (len(msg), sha(msg).hex()) == (
        322,
        "2054c0eca91517d1d55a26215a72574d17aa333526175efd3a0e91bff2de21cd",
    )
    msg = Negentropy(VectorStorage.from_items(prefixed), 0).initiate()
    assert (len(msg), sha(msg).hex()) == (
        784,
        "4ba69b0e6244acd78e1ed88038f3aef19b1ec8825827f25e7f6b2de8f6e908c5",
    )
    reply = Negentropy(VectorStorage.from_items(prefixed), 0).reconcile(bytes.fromhex("6100000200"))
    assert isinstance(reply, bytes)
    assert (len(reply), sha(reply).hex()) == (
        1285,
        "263637017d2a75406fcdeec7af02dbb28e170d70bb41cf8b78a244eac1b2fb64",
    )


# ---------------------------------------------------------------------------
# protocol edge cases and errors


def _responder(n: int = 3, limit: int = 0) -> Negentropy:
    return Negentropy(
        VectorStorage.from_items((1000 + i, sha(b"r%d" % i)) for i in range(n)), limit
    )


def test_frame_size_limit_validation() -> None:
    for bad in (1, 100, MIN_FRAME_SIZE_LIMIT - 1, -1):
        with pytest.raises(NegentropyError, match="frame_size_limit"):
            Negentropy(VectorStorage.from_items([]), bad)
    Negentropy(VectorStorage.from_items([]), 0)
    Negentropy(VectorStorage.from_items([]), MIN_FRAME_SIZE_LIMIT)
    assert Negentropy(VectorStorage.from_items([])).frame_size_limit == 60000


def test_roles_are_exclusive() -> None:
    ne = _responder()
    ne.initiate()
    with pytest.raises(NegentropyError, match="already initiated"):
        ne.initiate()
    with pytest.raises(NegentropyError, match="initiator"):
        ne.respond(b"\x61")
    other = _responder()
    other.reconcile(b"\x61")
    with pytest.raises(NegentropyError, match="responder"):
        other.initiate()
    with pytest.raises(NegentropyError, match="initiate"):
        _responder().process_reply(b"\x61")


def test_empty_sets_reconcile_in_one_round() -> None:
    client = Negentropy(VectorStorage.from_items([]))
    server = Negentropy(VectorStorage.from_items([]))
    msg = client.initiate()
    assert msg == bytes.fromhex("6100000200")  # infinity bound, empty id list
    reply = server.reconcile(msg)
    assert reply == bytes.fromhex("6100000200")
    assert tuple(client.reconcile(reply)) == (None, [], [])


def test_responder_answers_unknown_version_with_its_own() -> None:
    ne = _responder()
    assert ne.reconcile(bytes.fromhex("62aabbccddeeff")) == bytes([PROTOCOL_VERSION])
    # ... and then still speaks version 1 (as the reference protoversion test checks)
    expected = _responder().reconcile(bytes.fromhex("6100000200"))
    assert ne.reconcile(bytes.fromhex("6100000200")) == expected


def test_initiator_refuses_unknown_version() -> None:
    ne = _responder()
    ne.initiate()
    with pytest.raises(NegentropyError, match="version"):
        ne.reconcile(b"\x62")


@pytest.mark.parametrize(
    ("hexed", "reason"),
    [
        ("", "empty message"),
        ("00", "invalid protocol version"),
        ("70", "invalid protocol version"),
        ("ff0000", "invalid protocol version"),
        ("6100", "truncated varint"),  # bound without id length
        ("61000002", "truncated varint"),  # id list without count
        ("6100000201" + "ab" * 31, "truncated id list"),
        ("61000002ff7f", "truncated id list"),  # 16383 ids announced
        ("61000001" + "ab" * 15, "truncated fingerprint"),
        ("610021" + "00" * 33 + "00", "bound id prefix of 33 bytes"),
        ("610005aabb", "truncated bound id prefix"),
        ("61000003", "unexpected mode 3"),
        ("6100008001", "non-minimal"),
        ("61ffffffffffffffffffff7f0000", "64 bits"),
        # (ts 5, id ff..) then (ts 5 + 0, id 00..): the second upper bound is lower
        ("610601ff00" + "0101" + "0000", "out of order"),
    ],
)
def test_malformed_messages_are_refused(hexed: str, reason: str) -> None:
    with pytest.raises(NegentropyError, match=reason):
        _responder().reconcile(bytes.fromhex(hexed))


def test_equal_bounds_are_allowed() -> None:
    # (ts 5) skip, (ts 5) skip again: an empty range, which the reference can emit.
    assert _responder().reconcile(bytes.fromhex("61060000010000")) == b"\x61"


def test_timestamps_saturate_at_infinity() -> None:
    big = encode_varint(U64_MAX).hex()
    # two huge deltas: the second would overflow u64 and saturates to infinity
    reply = _responder().reconcile(bytes.fromhex(f"61{big}0000{big}000200"))
    assert isinstance(reply, bytes)


def test_max_message_size() -> None:
    ne = Negentropy(VectorStorage.from_items([]), max_message_size=10)
    with pytest.raises(NegentropyError, match="too large"):
        ne.reconcile(b"\x61" + b"\x00" * 10)
    assert ne.reconcile(bytes.fromhex("6100000200")) == bytes.fromhex("6100000200")


def test_decode_hex_message() -> None:
    assert decode_hex_message("6100000200") == bytes.fromhex("6100000200")
    assert decode_hex_message("") == b""
    for bad in ("610", "61 00", "zz", "61\u0661\u0661"):
        with pytest.raises(NegentropyError):
            decode_hex_message(bad)
    with pytest.raises(NegentropyError, match="too large"):
        decode_hex_message("61" * 11, max_size=10)


# ---------------------------------------------------------------------------
# whole sessions


@dataclass
class SyncStats:
    rounds: int = 0
    up: int = 0
    down: int = 0
    have: set[bytes] = field(default_factory=set)
    need: set[bytes] = field(default_factory=set)


def run_sync(
    a_items: list[tuple[int, bytes]],
    b_items: list[tuple[int, bytes]],
    limit_a: int = 0,
    limit_b: int = 0,
    max_rounds: int = 5000,
) -> SyncStats:
    """Initiator over ``a_items``, responder over ``b_items``, looped until done."""
    a_ids = {x for _, x in a_items}
    b_ids = {x for _, x in b_items}
    client = Negentropy(VectorStorage.from_items(a_items), limit_a)
    server = Negentropy(VectorStorage.from_items(b_items), limit_b)
    stats = SyncStats()
    msg: bytes | None = client.initiate()
    while msg is not None:
        assert not limit_a or len(msg) <= limit_a
        stats.up += len(msg)
        reply = server.reconcile(msg)
        assert isinstance(reply, bytes)
        assert not limit_b or len(reply) <= limit_b
        stats.down += len(reply)
        result = client.reconcile(reply)
        assert isinstance(result, ReconcileResult)
        # never a false report, in any round
        assert all(x in a_ids and x not in b_ids for x in result.have_ids)
        assert all(x in b_ids and x not in a_ids for x in result.need_ids)
        stats.have.update(result.have_ids)
        stats.need.update(result.need_ids)
        msg = result.reply
        stats.rounds += 1
        assert stats.rounds < max_rounds, "no termination"
    assert stats.have == a_ids - b_ids
    assert stats.need == b_ids - a_ids
    return stats


def _random_items(rng: random.Random, n: int, ts_range: int = 10**6) -> list[tuple[int, bytes]]:
    return [(1_600_000_000 + rng.randrange(ts_range), rng.randbytes(32)) for _ in range(n)]


@pytest.mark.parametrize("limit", LIMITS)
def test_sync_empty_and_identical_and_disjoint(limit: int) -> None:
    rng = random.Random(limit)
    items = _random_items(rng, 3000)
    other = _random_items(rng, 2000)
    run_sync([], [], limit, limit)
    run_sync(items, [], limit, limit)
    run_sync([], items, limit, limit)
    stats = run_sync(items, items, limit, limit)
    assert stats.rounds == 1 and stats.down == 1  # one round, an empty reply
    run_sync(items, other, limit, limit)


@pytest.mark.parametrize(("limit_a", "limit_b"), [(0, 0), (60000, 60000), (4096, 0)])
def test_sync_100k_items_one_difference(limit_a: int, limit_b: int) -> None:
    rng = random.Random(7)
    items = _random_items(rng, 100_000)
    stats = run_sync(items, items[:50_000] + items[50_001:], limit_a, limit_b)
    assert stats.have == {items[50_000][1]}
    assert stats.up + stats.down < 20_000  # log-depth search, not a list of ids


@pytest.mark.parametrize("limit", LIMITS)
def test_sync_many_equal_timestamps(limit: int) -> None:
    rng = random.Random(3)
    items = [(42, rng.randbytes(32)) for _ in range(5000)]
    rng.shuffle(items)
    run_sync(items[:4500], items[300:], limit, limit)


@pytest.mark.parametrize("limit", LIMITS)
def test_sync_ids_differing_only_in_late_bytes(limit: int) -> None:
    prefix = b"\x5a" * 30
    items = [(7, prefix + i.to_bytes(2, "big")) for i in range(0, 6000, 2)]
    extra = [(7, prefix + i.to_bytes(2, "big")) for i in range(1, 600, 2)]
    run_sync(items + extra[:100], items[10:] + extra[100:], limit, limit)
    # all-zero and all-ff ids, and ids equal to a bound's padding
    edge = [(0, bytes(32)), (0, b"\xff" * 32), (INFINITY - 1, bytes(32)[:-1] + b"\x01")]
    run_sync(edge, edge[1:], limit, limit)


@pytest.mark.parametrize("limit", LIMITS)
def test_sync_many_differences_under_frame_limit(limit: int) -> None:
    rng = random.Random(11)
    items = _random_items(rng, 20_000, ts_range=5000)
    a = [x for i, x in enumerate(items) if i % 5 != 0]
    b = [x for i, x in enumerate(items) if i % 7 != 0]
    stats = run_sync(a, b, limit, limit)
    if limit:
        assert stats.rounds > 2  # the limit really did split the work


# A small universe of ids so that hypothesis finds collisions of prefixes, equal
# timestamps and edge values easily, and shrinks failures to a handful of items.
_ID_PARTS = st.sampled_from([b"\x00", b"\x01", b"\x7f", b"\x80", b"\xff"])
_IDS = st.one_of(
    st.binary(min_size=32, max_size=32),
    st.builds(lambda p, tail: p * 30 + tail, _ID_PARTS, st.binary(min_size=2, max_size=2)),
    st.builds(lambda a, b: a * 31 + b, _ID_PARTS, _ID_PARTS),
)
_TIMESTAMPS = st.one_of(st.integers(0, 3), st.integers(0, INFINITY - 1), st.just(INFINITY - 1))
_PLACED = st.lists(
    st.tuples(_TIMESTAMPS, _IDS, st.sampled_from("abc")),
    unique_by=lambda t: t[1],
    max_size=120,
)


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(_PLACED, st.sampled_from(LIMITS), st.sampled_from(LIMITS))
def test_sync_finds_symmetric_difference_small(
    placed: list[tuple[int, bytes, str]], limit_a: int, limit_b: int
) -> None:
    a = [(t, x) for t, x, where in placed if where in "ac"]
    b = [(t, x) for t, x, where in placed if where in "bc"]
    run_sync(a, b, limit_a, limit_b)


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    seed=st.integers(0, 2**32),
    n=st.one_of(st.integers(0, 100), st.integers(100, 6000)),
    ts_range=st.sampled_from([1, 3, 100, 10**9]),
    p_a=st.floats(0, 1),
    p_b=st.floats(0, 1),
    layout=st.sampled_from(["mixed", "clustered", "tail"]),
    limit_a=st.sampled_from(LIMITS),
    limit_b=st.sampled_from(LIMITS),
)
def test_sync_finds_symmetric_difference_large(
    seed: int,
    n: int,
    ts_range: int,
    p_a: float,
    p_b: float,
    layout: str,
    limit_a: int,
    limit_b: int,
) -> None:
    """Bigger sets, drawn from a seed: differences spread out, in runs, or at the end."""
    rng = random.Random(seed)
    items = sorted(_random_items(rng, n, ts_range))
    a: list[tuple[int, bytes]] = []
    b: list[tuple[int, bytes]] = []
    run_len = rng.randrange(1, 200)
    for i, item in enumerate(items):
        if layout == "clustered":
            r = random.Random(seed + i // run_len).random()
        elif layout == "tail":
            r = rng.random() if i < n * 0.7 else 0.0
        else:
            r = rng.random()
        if r < p_a * 0.5:
            a.append(item)
        elif r < (p_a + p_b) * 0.5:
            b.append(item)
        else:
            a.append(item)
            b.append(item)
    if layout == "tail" and rng.random() < 0.5:
        a, b = b, a
    run_sync(a, b, limit_a, limit_b)


# ---------------------------------------------------------------------------
# fuzzing: hostile input raises NegentropyError and nothing else


def _conversation() -> tuple[
    list[bytes], list[bytes], list[tuple[int, bytes]], list[tuple[int, bytes]]
]:
    """A real exchange under a frame limit: (client messages, server replies, a, b)."""
    rng = random.Random(5)
    items = _random_items(rng, 3000, ts_range=500)
    a = [x for i, x in enumerate(items) if i % 9 != 0]
    b = [x for i, x in enumerate(items) if i % 11 != 0]
    client = Negentropy(VectorStorage.from_items(a), 4096)
    server = Negentropy(VectorStorage.from_items(b), 4096)
    ups: list[bytes] = []
    downs: list[bytes] = []
    msg: bytes | None = client.initiate()
    while msg is not None:
        ups.append(msg)
        reply = server.respond(msg)
        downs.append(reply)
        msg = client.process_reply(reply).reply
    return ups, downs, a, b


_CONV = _conversation()
_FUZZ_A = VectorStorage.from_items(_CONV[2])
_FUZZ_B = VectorStorage.from_items(_CONV[3])


def _feed(msg: bytes, to_initiator: bool, limit: int = 4096) -> None:
    """Feed ``msg`` to a fresh party; only a NegentropyError may come out."""
    if to_initiator:
        ne = Negentropy(_FUZZ_A, limit)
        ne.initiate()
    else:
        ne = Negentropy(_FUZZ_B, limit)
    try:
        out = ne.reconcile(msg)
    except NegentropyError:
        return
    reply = out.reply if isinstance(out, ReconcileResult) else out
    if reply is not None:
        assert reply[0] == PROTOCOL_VERSION
        assert not limit or len(reply) <= limit


def test_conversation_fixture_is_multi_round() -> None:
    assert len(_CONV[0]) >= 3


@settings(max_examples=300, deadline=None)
@given(st.binary(max_size=300), st.booleans(), st.booleans(), st.sampled_from([0, 4096]))
def test_fuzz_random_bytes(data: bytes, versioned: bool, to_initiator: bool, limit: int) -> None:
    _feed((b"\x61" + data) if versioned else data, to_initiator, limit)


def test_fuzz_every_truncation() -> None:
    ups, downs = _CONV[0], _CONV[1]
    for msg, to_initiator in [(ups[0], False), (ups[1], False), (downs[0], True), (downs[1], True)]:
        step = max(1, len(msg) // 400)
        for cut in range(0, len(msg), step):
            _feed(msg[:cut], to_initiator)


@settings(max_examples=300, deadline=None)
@given(st.data(), st.booleans())
def test_fuzz_mutated_valid_messages(data: st.DataObject, to_initiator: bool) -> None:
    msgs = _CONV[1] if to_initiator else _CONV[0]
    msg = bytearray(data.draw(st.sampled_from(msgs)))
    assume(len(msg) > 1)
    for _ in range(data.draw(st.integers(1, 4))):
        kind = data.draw(st.sampled_from(["flip", "set", "insert", "delete", "truncate"]))
        pos = data.draw(st.integers(1, max(1, len(msg) - 1)))
        if kind == "flip":
            msg[pos % len(msg)] ^= 1 << data.draw(st.integers(0, 7))
        elif kind == "set":
            msg[pos % len(msg)] = data.draw(
                st.sampled_from([0x00, 0x01, 0x02, 0x03, 0x7F, 0x80, 0xFF])
            )
        elif kind == "insert":
            msg[pos:pos] = data.draw(st.binary(min_size=1, max_size=40))
        elif kind == "delete":
            del msg[pos : pos + data.draw(st.integers(1, 40))]
        else:
            del msg[pos:]
        if not msg:
            break
    _feed(bytes(msg), to_initiator)
