"""Tests for perfmesh.protocol.wire: the envelope codec decodes untrusted frames or names why not."""

import struct

import msgpack
import pytest

from perfmesh.protocol import wire
from perfmesh.errors import PerfmeshError, WireError
from perfmesh.protocol.wire import Envelope, decode, encode, pack, topic, unpack, validate_envelope


def good(**over):
    """A valid envelope dict, with fields overridden."""
    data = {"v": 1, "kind": "metrics", "host": "web01", "boot": "b1", "seq": 7,
            "time": 1000.5, "body": {"x": 1}}
    data.update(over)
    return data


def reason_of(frame, **kw):
    with pytest.raises(WireError) as info:
        decode(frame, **kw)
    return info.value.reason


# ------------------------------------------------------------------ round trip
def test_encode_decode_round_trip_returns_the_same_envelope():
    """A frame from encode() decodes to an Envelope with every field intact."""
    frame = encode("heartbeat", "web01", "boot-1", 3, 12.25, {"collectors": [1, 2]})
    assert decode(frame) == Envelope("heartbeat", "web01", "boot-1", 3, 12.25, {"collectors": [1, 2]})


def test_envelope_to_dict_and_from_dict_are_inverse():
    """Envelope.to_dict() carries the schema version and from_dict() validates it back."""
    env = Envelope("event", "agg", "b", 0, 1.0, None)
    assert env.to_dict() == {"v": 1, "kind": "event", "host": "agg", "boot": "b", "seq": 0,
                             "time": 1.0, "body": None}
    assert Envelope.from_dict(env.to_dict()) == env


def test_integer_time_is_accepted_as_float():
    """An integral send time is normalised to a float."""
    env = decode(pack(good(time=5)))
    assert env.time == 5.0 and type(env.time) is float


def test_bytes_body_round_trips_as_bytes():
    """Binary payloads use the bin type and decode back to bytes, not str."""
    assert decode(encode("metrics", "h", "b", 0, 0.0, b"\x00\xff")).body == b"\x00\xff"


def test_topic_ends_every_part_with_a_delimiter():
    """topic() ends each part with '/' so 'web1' never prefix-matches 'web10'."""
    assert topic("metric", "web01", "cpu") == b"metric/web01/cpu/"
    assert not topic("metric", "web10").startswith(topic("metric", "web1"))
    assert topic() == b""


def test_wire_error_is_a_perfmesh_error_with_reason_in_message():
    """WireError carries a machine reason and prefixes it to the message."""
    err = WireError("bad_kind", "nope")
    assert isinstance(err, PerfmeshError) and isinstance(err, ValueError)
    assert err.reason == "bad_kind" and str(err) == "bad_kind: nope"


# ------------------------------------------------------------------ garbage bytes
def test_oversized_frame_is_too_large_before_decoding():
    """A frame longer than max_bytes is refused as too_large without unpacking it."""
    assert reason_of(b"\xc0" * 11, max_bytes=10) == "too_large"
    assert reason_of(b"\x00" * (wire.MAX_FRAME_BYTES + 1)) == "too_large"


def test_frame_at_exactly_max_bytes_is_decoded():
    """The size limit is inclusive: a frame of exactly max_bytes is accepted."""
    frame = encode("metrics", "h", "b", 0, 0.0, None)
    assert decode(frame, max_bytes=len(frame)).host == "h"


@pytest.mark.parametrize("cut", [1, 5, 20])
def test_truncated_frame_is_undecodable(cut):
    """A frame cut short anywhere is undecodable."""
    frame = encode("metrics", "web01", "b", 1, 1.0, {"k": "v" * 10})
    assert reason_of(frame[:-cut]) == "undecodable"


def test_empty_frame_is_undecodable():
    """Zero bytes are undecodable, not an empty envelope."""
    assert reason_of(b"") == "undecodable"


def test_trailing_bytes_after_the_value_are_refused():
    """Bytes after a complete msgpack value are trailing_data."""
    assert reason_of(encode("metrics", "h", "b", 0, 0.0, None) + b"\x00") == "trailing_data"


def test_reserved_byte_is_undecodable():
    """The never-used msgpack byte 0xc1 is undecodable."""
    assert reason_of(b"\xc1") == "undecodable"


def test_invalid_utf8_string_is_undecodable():
    """Strings are decoded with raw=False; invalid UTF-8 is undecodable."""
    assert reason_of(b"\xa2\xff\xfe") == "undecodable"


def test_integer_map_key_is_undecodable():
    """strict_map_key refuses non-string map keys."""
    assert reason_of(b"\x81\x01\x02") == "undecodable"


@pytest.mark.parametrize("header", [b"\xdd\xff\xff\xff\xff", b"\xdf\xff\xff\xff\xff"])
def test_huge_declared_container_is_undecodable(header):
    """An array or map header declaring 2**32-1 items is refused without allocating it."""
    assert reason_of(header) == "undecodable"


def test_string_over_the_length_limit_is_undecodable():
    """A str longer than MAX_STR_LEN is refused even inside a small enough frame."""
    frame = pack("x" * (wire.MAX_STR_LEN + 1))
    assert reason_of(frame) == "undecodable"


def test_deeply_nested_frame_is_undecodable_not_a_crash():
    """Thousands of nested arrays raise WireError, never RecursionError or a crash."""
    assert reason_of(b"\x91" * 5000 + b"\xc0") == "undecodable"


@pytest.mark.parametrize("frame", [
    b"\xc7\x00\x05",                      # ext 8, zero-length, type 5
    b"\xd4\x05\x01",                      # fixext 1, type 5
    b"\xd8\x05" + b"\x00" * 16,           # fixext 16
    b"\xd6\xff" + struct.pack(">I", 1),   # the msgpack timestamp extension (type -1)
])
def test_ext_types_are_refused_as_ext_type(frame):
    """Every msgpack ext type, timestamps included, is refused with reason ext_type."""
    assert reason_of(frame) == "ext_type"


def test_unpack_returns_plain_data():
    """unpack() of a valid value returns plain Python data with lists, not tuples."""
    assert unpack(pack({"a": [1, 2.5, None, True, b"x"]})) == {"a": [1, 2.5, None, True, b"x"]}


# ------------------------------------------------------------------ envelope schema
@pytest.mark.parametrize("value", [[1, 2], "envelope", 3, None])
def test_non_map_envelope_is_not_envelope(value):
    """A frame that is valid msgpack but not a map is not_envelope."""
    assert reason_of(pack(value)) == "not_envelope"


def test_missing_key_is_bad_schema_naming_it():
    """An envelope without 'seq' is bad_schema and the message names the missing key."""
    data = good()
    del data["seq"]
    with pytest.raises(WireError, match=r"missing \['seq'\]") as info:
        decode(pack(data))
    assert info.value.reason == "bad_schema"


def test_extra_key_is_bad_schema_naming_it():
    """An envelope with an unexpected key is bad_schema and the message names it."""
    with pytest.raises(WireError, match="unexpected \\['zz'\\]") as info:
        decode(pack(good(zz=1)))
    assert info.value.reason == "bad_schema"


def test_bytes_map_keys_are_bad_schema():
    """Binary keys that spell the right names still do not match the schema."""
    data = {k.encode(): v for k, v in good().items()}
    assert reason_of(pack(data)) == "bad_schema"


@pytest.mark.parametrize("version", [2, 0, "1", 1.0, True, None])
def test_wrong_version_is_bad_version(version):
    """Only the integer 1 is a valid schema version (not 1.0, True or '1')."""
    assert reason_of(pack(good(v=version))) == "bad_version"


@pytest.mark.parametrize("kind", ["metric", "", "METRICS", 1, None])
def test_unknown_kind_is_bad_kind(kind):
    """A kind outside the fixed set is bad_kind."""
    assert reason_of(pack(good(kind=kind))) == "bad_kind"


@pytest.mark.parametrize("kind", sorted(wire.KINDS))
def test_every_known_kind_decodes(kind):
    """Each of the documented kinds is accepted."""
    assert decode(pack(good(kind=kind))).kind == kind


@pytest.mark.parametrize("field,value", [
    ("host", 5), ("host", b"web01"), ("host", None), ("host", "h" * 129),
    ("boot", ["b"]), ("boot", "b" * 129),
])
def test_bad_host_or_boot_is_bad_field(field, value):
    """host and boot must be strings of at most 128 characters."""
    assert reason_of(pack(good(**{field: value}))) == "bad_field"


def test_host_of_exactly_128_characters_is_accepted():
    """The name limit is inclusive at MAX_NAME_LEN."""
    assert decode(pack(good(host="h" * 128))).host == "h" * 128


@pytest.mark.parametrize("seq", [-1, 1 << 63, "7", 7.0, True, None])
def test_bad_seq_is_bad_field(seq):
    """seq must be an int (not bool or float) in [0, 2**63)."""
    assert reason_of(pack(good(seq=seq))) == "bad_field"


def test_largest_seq_is_accepted():
    """2**63 - 1 is the largest valid sequence number."""
    assert decode(pack(good(seq=(1 << 63) - 1))).seq == (1 << 63) - 1


@pytest.mark.parametrize("t", [float("nan"), float("inf"), float("-inf"), "1.0", None, True])
def test_non_finite_or_non_number_time_is_bad_field(t):
    """The send time must be a finite int or float; NaN, infinities and bools are refused."""
    assert reason_of(pack(good(time=t))) == "bad_field"


def test_validate_envelope_accepts_an_already_unpacked_dict():
    """validate_envelope() works on data from unpack(), without re-encoding."""
    assert validate_envelope(good()).seq == 7


def test_foreign_msgpack_with_ext_hook_bypass_is_still_refused():
    """A frame packed by a third party with an ExtType is refused, not returned as ExtType."""
    frame = msgpack.packb({"v": 1, "body": msgpack.ExtType(3, b"abc")})
    assert reason_of(frame) == "ext_type"
