"""Tests for perfmesh.protocol.batch: columnar batch schemas, values and the schema-reusing encoder."""

import math
import struct
from array import array

import pytest

from perfmesh.protocol import batch
from perfmesh.protocol import wire
from perfmesh.protocol.batch import (
    BatchEncoder,
    SchemaCache,
    batch_metrics,
    check_body,
    decode_batch,
    encode_schema,
    make_body,
    pack_values,
    parse_schema,
    unpack_values,
)
from perfmesh.errors import WireError
from perfmesh.model.metric import PerformanceMetric


def m(name, value, unit="", **labels):
    return PerformanceMetric(name, value, unit, category="cpu", context=labels)


def raw_schema(rows, category="cpu"):
    return wire.pack([category, rows])


def reason(fn, *args):
    with pytest.raises(WireError) as info:
        fn(*args)
    return info.value.reason


# ------------------------------------------------------------------ schema
def test_parse_schema_of_encoded_metrics_gives_series_in_order():
    """encode_schema() -> parse_schema() yields one SeriesSpec per metric, in order, with keys."""
    raw = encode_schema("cpu", [m("cpu_percent", 1, "%"), m("cpu_core_percent", 2, "%", cpu="0")])
    schema = parse_schema(raw)
    assert schema.raw == raw and schema.category == "cpu" and schema.width == 2
    assert [(s.name, s.unit, dict(s.labels), s.key) for s in schema.series] == [
        ("cpu_percent", "%", {}, "cpu_percent"),
        ("cpu_core_percent", "%", {"cpu": "0"}, "cpu_core_percent{cpu=0}"),
    ]


def test_index_of_finds_series_by_key_and_caches_the_index():
    """index_of() maps a series key to its column, None when absent, and memoises the map."""
    schema = parse_schema(raw_schema([["a", "", {}], ["b", "", {"d": "x"}]]))
    assert schema.index_of("b{d=x}") == 1
    assert schema.index_of("a") == 0
    assert schema.index_of("b") is None
    assert schema.columns == {"a": 0, "b{d=x}": 1}
    assert schema.columns is schema.columns


def test_empty_schema_is_valid_with_width_zero():
    """A category with no series is a valid schema of width 0."""
    assert parse_schema(raw_schema([])).width == 0


def test_oversized_schema_is_too_large():
    """A schema blob over MAX_SCHEMA_BYTES is too_large before unpacking."""
    assert reason(parse_schema, b"\x00" * (batch.MAX_SCHEMA_BYTES + 1)) == "too_large"


def test_undecodable_schema_keeps_the_wire_reason():
    """A schema blob that is not msgpack fails with the codec's reason."""
    assert reason(parse_schema, b"\xc1") == "undecodable"


@pytest.mark.parametrize("data", [{"cpu": []}, ["cpu"], ["cpu", [], 1], ["cpu", {}], "cpu"])
def test_wrong_schema_shape_is_bad_schema(data):
    """The schema must be exactly [category, [rows]]."""
    assert reason(parse_schema, wire.pack(data)) == "bad_schema"


@pytest.mark.parametrize("category", ["disk", "", 1, None, ["cpu"]])
def test_unknown_category_is_bad_category(category):
    """Only the metric model's categories are accepted."""
    assert reason(parse_schema, raw_schema([], category)) == "bad_category"


def test_too_many_series_is_refused():
    """More than MAX_SERIES_PER_BATCH rows in one schema is too_many_series."""
    rows = [[f"m{i}", "", {}] for i in range(batch.MAX_SERIES_PER_BATCH + 1)]
    assert reason(parse_schema, raw_schema(rows)) == "too_many_series"


def test_exactly_max_series_is_accepted():
    """MAX_SERIES_PER_BATCH rows is still a valid schema."""
    rows = [[f"m{i}", "", {}] for i in range(batch.MAX_SERIES_PER_BATCH)]
    assert parse_schema(raw_schema(rows)).width == batch.MAX_SERIES_PER_BATCH


def test_duplicate_series_is_refused():
    """Two rows with the same name and labels (in any label order) are duplicate_series."""
    rows = [["disk_busy", "%", {"a": "1", "b": "2"}], ["disk_busy", "%", {"b": "2", "a": "1"}]]
    assert reason(parse_schema, raw_schema(rows)) == "duplicate_series"


def test_same_name_different_labels_is_not_a_duplicate():
    """Series are identified by name and labels, so per-device rows coexist."""
    rows = [["disk_busy", "%", {"dev": "sda"}], ["disk_busy", "%", {"dev": "sdb"}]]
    assert parse_schema(raw_schema(rows)).width == 2


@pytest.mark.parametrize("row", [["a", ""], ["a", "", {}, 1], "a", {"name": "a"}])
def test_malformed_series_row_is_bad_schema(row):
    """Each row must be the 3-list [name, unit, labels]."""
    assert reason(parse_schema, raw_schema([row])) == "bad_schema"


@pytest.mark.parametrize("name", ["", "1abc", "a b", "a-b", "a/b", "x" * 129, 5, None, b"abc",
                                  "cpu\n"])
def test_bad_metric_name_is_bad_name(name):
    """Names must match NAME_RE: a letter or '_' first, then [A-Za-z0-9_.:], at most 128."""
    assert reason(parse_schema, raw_schema([[name, "", {}]])) == "bad_name"


def test_name_of_128_characters_with_dots_and_colons_is_accepted():
    """The longest valid name, with the allowed punctuation, parses."""
    name = "a.b:c_" + "x" * 122
    assert parse_schema(raw_schema([[name, "", {}]])).series[0].name == name


@pytest.mark.parametrize("unit", ["u" * 17, 5, None, b"%"])
def test_bad_unit_is_bad_unit(unit):
    """Units must be strings of at most MAX_UNIT_LEN characters."""
    assert reason(parse_schema, raw_schema([["a", unit, {}]])) == "bad_unit"


@pytest.mark.parametrize("labels", [
    [],                                                   # not a map
    {f"k{i}": "v" for i in range(batch.MAX_LABELS + 1)},  # too many
    {"1k": "v"},                                          # key not a name
    {"k" * 65: "v"},                                      # key too long
    {"k": 1},                                             # value not a string
    {"k": "v" * 129},                                     # value too long
    {b"k": "v"},                                          # binary key
])
def test_bad_labels_are_bad_labels(labels):
    """Labels must be a small map of name-like keys to short strings; anything else is bad_labels."""
    assert reason(parse_schema, raw_schema([["a", "", labels]])) == "bad_labels"


def test_labels_at_the_limits_are_accepted():
    """MAX_LABELS labels with 64-char keys and 128-char values are accepted."""
    labels = {f"k{i}" + "x" * 62: "v" * 128 for i in range(batch.MAX_LABELS)}
    assert dict(parse_schema(raw_schema([["a", "", labels]])).series[0].labels) == labels


# ------------------------------------------------------------------ schema cache
def test_schema_cache_parses_each_blob_once():
    """get() returns the same parsed object for the same bytes."""
    cache = SchemaCache()
    raw = raw_schema([["a", "", {}]])
    assert cache.get(raw) is cache.get(raw)
    assert len(cache) == 1


def test_schema_cache_is_cleared_when_full_not_grown():
    """A full cache is emptied before the next new schema is stored."""
    cache = SchemaCache(max_entries=2)
    blobs = [raw_schema([[f"m{i}", "", {}]]) for i in range(3)]
    first = cache.get(blobs[0])
    cache.get(blobs[1])
    assert len(cache) == 2
    cache.get(blobs[2])
    assert len(cache) == 1
    assert cache.get(blobs[0]) is not first  # parsed again after the clear


def test_schema_cache_does_not_store_invalid_schemas():
    """A bad schema raises and leaves the cache unchanged."""
    cache = SchemaCache()
    with pytest.raises(WireError):
        cache.get(raw_schema([["1bad", "", {}]]))
    assert len(cache) == 0


# ------------------------------------------------------------------ values
def test_pack_and_unpack_values_round_trip_little_endian_float64():
    """Values are 8 little-endian bytes each and come back as an array('d')."""
    raw = pack_values([1.5, -2.0])
    assert raw == struct.pack("<2d", 1.5, -2.0)
    arr = unpack_values(raw, 2)
    assert isinstance(arr, array) and arr.typecode == "d" and list(arr) == [1.5, -2.0]


@pytest.mark.parametrize("raw,width", [(b"\x00" * 15, 2), (b"\x00" * 24, 2), (b"", 1),
                                       ("abc", 1), ([1.0], 1), (None, 0)])
def test_wrong_value_length_or_type_is_bad_values(raw, width):
    """The value blob must be bytes of exactly 8 * width."""
    assert reason(unpack_values, raw, width) == "bad_values"


@pytest.mark.parametrize("bad", [float("nan"), float("inf"), float("-inf")])
def test_non_finite_value_is_refused_naming_its_index(bad):
    """A NaN or infinity anywhere is non_finite and the message names the column."""
    with pytest.raises(WireError, match="value #2") as info:
        unpack_values(pack_values([1.0, 2.0, bad]), 3)
    assert info.value.reason == "non_finite"


def test_inf_and_minus_inf_together_are_refused():
    """inf + -inf sums to NaN; both are still caught as non_finite."""
    assert reason(unpack_values, pack_values([float("inf"), float("-inf")]), 2) == "non_finite"


def test_huge_finite_values_whose_sum_overflows_are_accepted():
    """Finite values are accepted even when their sum overflows to infinity."""
    assert list(unpack_values(pack_values([1e308, 1e308]), 2)) == [1e308, 1e308]


def test_zero_width_accepts_empty_values():
    """A width-0 schema takes an empty value blob."""
    assert len(unpack_values(b"", 0)) == 0


# ------------------------------------------------------------------ body
def test_check_body_returns_schema_ts_values():
    """A well-formed body is split into (schema bytes, float ts, values)."""
    assert check_body({"schema": b"s", "ts": 3, "values": b"v"}) == (b"s", 3.0, b"v")


@pytest.mark.parametrize("body", [
    None, [], {"schema": b"", "ts": 1.0}, {"schema": b"", "ts": 1.0, "values": b"", "x": 1},
    {"schema": "text", "ts": 1.0, "values": b""},
    {"schema": b"", "ts": float("nan"), "values": b""},
    {"schema": b"", "ts": float("inf"), "values": b""},
    {"schema": b"", "ts": "1", "values": b""},
    {"schema": b"", "ts": True, "values": b""},
])
def test_malformed_body_is_bad_body(body):
    """Wrong keys, non-bytes schema or a non-finite/non-number ts is bad_body."""
    assert reason(check_body, body) == "bad_body"


def test_decode_batch_of_make_body_round_trips():
    """make_body() -> decode_batch() returns the schema, ts and values."""
    raw = raw_schema([["a", "", {}], ["b", "B", {}]])
    schema, ts, values = decode_batch(make_body(raw, 10.0, [1.0, 2.0]), SchemaCache())
    assert schema.width == 2 and ts == 10.0 and list(values) == [1.0, 2.0]


def test_decode_batch_refuses_values_of_the_wrong_width():
    """Values must match the schema's width, not just be a multiple of 8 bytes."""
    raw = raw_schema([["a", "", {}], ["b", "", {}]])
    assert reason(decode_batch, make_body(raw, 1.0, [1.0]), SchemaCache()) == "bad_values"


def test_decode_batch_refuses_non_finite_values():
    """NaN never leaves decode_batch."""
    raw = raw_schema([["a", "", {}]])
    assert reason(decode_batch, make_body(raw, 1.0, [float("nan")]), SchemaCache()) == "non_finite"


# ------------------------------------------------------------------ encoder
def test_encoder_reuses_schema_bytes_while_the_series_hold():
    """Consecutive batches with the same series share the identical schema bytes object."""
    enc = BatchEncoder()
    b1 = enc.encode("cpu", 1.0, [m("a", 1.0, "%"), m("b", 2.0, "", cpu="0")])
    b2 = enc.encode("cpu", 2.0, [m("a", 5.0, "%"), m("b", 6.0, "", cpu="0")])
    assert b1["schema"] is b2["schema"]
    assert b2["ts"] == 2.0 and list(unpack_values(b2["values"], 2)) == [5.0, 6.0]


@pytest.mark.parametrize("second", [
    [m("a", 1.0, "%")],                                 # a series went away
    [m("a", 1.0, "%"), m("b", 2.0, "", cpu="1")],       # a label changed
    [m("a", 1.0, "ms"), m("b", 2.0, "", cpu="0")],      # a unit changed
])
def test_encoder_makes_new_schema_when_the_series_change(second):
    """A change of series, labels or units yields new schema bytes that parse to the new set."""
    enc = BatchEncoder()
    first = enc.encode("cpu", 1.0, [m("a", 1.0, "%"), m("b", 2.0, "", cpu="0")])
    body = enc.encode("cpu", 2.0, second)
    assert body["schema"] != first["schema"]
    assert [(s.name, s.unit, dict(s.labels)) for s in parse_schema(body["schema"]).series] == \
        [(x.name, x.unit, x.context) for x in second]


def test_encoder_makes_new_schema_when_the_category_changes():
    """The same series under another category is a new schema."""
    enc = BatchEncoder()
    a = enc.encode("cpu", 1.0, [m("a", 1.0)])
    b = enc.encode("memory", 1.0, [m("a", 1.0)])
    assert parse_schema(a["schema"]).category == "cpu"
    assert parse_schema(b["schema"]).category == "memory"


def test_batch_metrics_gives_one_row_per_series():
    """batch_metrics() expands a batch into JSON-ready rows with category, unit, ts and labels."""
    schema = parse_schema(raw_schema([["a", "%", {}], ["b", "B", {"dev": "sda"}]], "io"))
    rows = batch_metrics(schema, 5.0, array("d", [1.0, 2.0]))
    assert rows == [
        {"category": "io", "name": "a", "value": 1.0, "unit": "%", "timestamp": 5.0, "labels": {}},
        {"category": "io", "name": "b", "value": 2.0, "unit": "B", "timestamp": 5.0,
         "labels": {"dev": "sda"}},
    ]
    rows[1]["labels"]["dev"] = "changed"
    assert schema.series[1].labels["dev"] == "sda"  # rows do not alias the schema


def test_negative_zero_and_large_finite_ts_are_accepted():
    """Any finite ts passes the body check, including -0.0 and 1e300."""
    assert check_body({"schema": b"", "ts": -0.0, "values": b""})[1] == 0.0
    assert math.isfinite(check_body({"schema": b"", "ts": 1e300, "values": b""})[1])
