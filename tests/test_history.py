"""Tests for perfmesh.mesh.history: fixed-size rings per schema and the per-host series cap."""

from array import array

import pytest

from perfmesh.protocol import wire
from perfmesh.protocol.batch import parse_schema
from perfmesh.mesh.history import DEFAULT_HISTORY_ROWS, BlockRing, SeriesHistory


def schema(category="cpu", names=("a", "b"), labels=None):
    rows = [[n, "%", dict(labels or {})] for n in names]
    return parse_schema(wire.pack([category, rows]))


def row(*values):
    return array("d", values)


# ------------------------------------------------------------------ BlockRing
def test_empty_ring_has_no_rows_and_no_last():
    """A new ring holds nothing: count 0, empty columns, last() None."""
    ring = BlockRing(schema(), capacity=4)
    assert ring.count == 0 and ring.column(0) == [] and ring.last() is None
    assert ring.width == 2 and ring.capacity == 4


def test_ring_columns_return_timestamped_values_oldest_first():
    """column(i) is the (ts, value, backfilled) history of series i, oldest first."""
    ring = BlockRing(schema(), capacity=4)
    ring.append(1.0, row(10.0, 20.0))
    ring.append(2.0, row(11.0, 21.0))
    assert ring.column(0) == [(1.0, 10.0, False), (2.0, 11.0, False)]
    assert ring.column(1) == [(1.0, 20.0, False), (2.0, 21.0, False)]
    assert ring.count == 2


def test_ring_wraps_around_keeping_the_newest_capacity_rows():
    """After more than capacity appends, only the newest capacity rows remain, in order."""
    ring = BlockRing(schema(names=("a",)), capacity=3)
    for t in range(1, 8):
        ring.append(float(t), row(t * 10.0))
    assert ring.count == 3
    assert ring.column(0) == [(5.0, 50.0, False), (6.0, 60.0, False), (7.0, 70.0, False)]
    assert ring.last() == (7.0, row(70.0))


def test_ring_wraparound_at_exact_capacity_boundary():
    """Exactly capacity appends fill the ring; one more drops only the oldest."""
    ring = BlockRing(schema(names=("a",)), capacity=2)
    ring.append(1.0, row(1.0))
    ring.append(2.0, row(2.0))
    assert ring.column(0) == [(1.0, 1.0, False), (2.0, 2.0, False)]
    ring.append(3.0, row(3.0))
    assert ring.column(0) == [(2.0, 2.0, False), (3.0, 3.0, False)]


def test_ring_column_since_filters_inclusively():
    """column(i, since) keeps rows with ts >= since."""
    ring = BlockRing(schema(names=("a",)), capacity=5)
    for t in (1.0, 2.0, 3.0):
        ring.append(t, row(t))
    assert ring.column(0, since=2.0) == [(2.0, 2.0, False), (3.0, 3.0, False)]
    assert ring.column(0, since=3.5) == []


def test_ring_last_returns_the_newest_row_of_every_series():
    """last() is (ts, row) of the newest append."""
    ring = BlockRing(schema(), capacity=2)
    ring.append(1.0, row(1.0, 2.0))
    ring.append(2.0, row(3.0, 4.0))
    ts, values = ring.last()
    assert ts == 2.0 and list(values) == [3.0, 4.0]


def test_ring_memory_is_preallocated_at_8_bytes_per_sample():
    """nbytes is 8 * capacity * (width + 1) + capacity: a float64 per sample, the timestamps, a flag byte per row."""
    ring = BlockRing(schema(names=tuple(f"m{i}" for i in range(100))), capacity=1000)
    assert ring.nbytes == 8 * 1000 * 101 + 1000
    before = ring.nbytes
    ring.append(1.0, row(*range(100)))
    assert ring.nbytes == before  # written in place, never grown


def test_default_capacity_is_default_history_rows():
    """A ring without a capacity holds DEFAULT_HISTORY_ROWS rows."""
    assert BlockRing(schema()).capacity == DEFAULT_HISTORY_ROWS == 1000


# ------------------------------------------------------------------ SeriesHistory
def test_ring_for_creates_once_and_counts_series():
    """ring_for() creates one ring per schema and returns the same ring afterwards."""
    hist = SeriesHistory(capacity=4)
    s = schema()
    ring = hist.ring_for(s)
    assert hist.ring_for(s) is ring and hist.rings() == [ring]
    assert hist.series_count == 2 and ring.capacity == 4


def test_query_returns_one_series_across_rings_sorted_by_time():
    """query(key) merges the series' columns from every ring holding it, sorted, with since."""
    hist = SeriesHistory(capacity=4)
    old, new = schema(names=("a", "b")), schema(names=("a",))
    hist.ring_for(old).append(1.0, row(1.0, 9.0))
    hist.ring_for(new).append(2.0, row(2.0))
    hist.ring_for(old).append(3.0, row(3.0, 9.0))
    assert hist.query("a") == [(1.0, 1.0, False), (2.0, 2.0, False), (3.0, 3.0, False)]
    assert hist.query("a", since=2.0) == [(2.0, 2.0, False), (3.0, 3.0, False)]
    assert hist.query("b") == [(1.0, 9.0, False), (3.0, 9.0, False)]
    assert hist.query("missing") == []


def test_query_by_labelled_key():
    """A labelled series is queried by its canonical key name{k=v}."""
    hist = SeriesHistory()
    s = schema("io", names=("disk_busy",), labels={"dev": "sda"})
    hist.ring_for(s).append(5.0, row(42.0))
    assert hist.query("disk_busy{dev=sda}") == [(5.0, 42.0, False)]
    assert hist.query("disk_busy") == []


def test_latest_gives_newest_value_category_and_unit_per_series():
    """latest() maps each key to (ts, value, category, unit) of its newest row; empty rings are skipped."""
    hist = SeriesHistory()
    cpu, mem = schema("cpu", ("a", "b")), schema("memory", ("m",))
    hist.ring_for(cpu).append(1.0, row(1.0, 2.0))
    hist.ring_for(cpu).append(2.0, row(3.0, 4.0))
    hist.ring_for(mem)  # created but empty
    assert hist.latest() == {"a": (2.0, 3.0, "cpu", "%"), "b": (2.0, 4.0, "cpu", "%")}


def test_latest_prefers_the_newer_ring_when_a_series_is_in_two():
    """When two schemas hold the same key, latest() reports the one with the newer timestamp."""
    hist = SeriesHistory()
    old, new = schema(names=("a", "b")), schema(names=("a",))
    hist.ring_for(new).append(5.0, row(50.0))
    hist.ring_for(old).append(3.0, row(30.0, 1.0))
    assert hist.latest()["a"] == (5.0, 50.0, "cpu", "%")


def test_series_cap_refuses_a_schema_that_does_not_fit():
    """A new schema that would pass max_series (with nothing to evict) gets None."""
    hist = SeriesHistory(max_series=3)
    assert hist.ring_for(schema("cpu", ("a", "b"))) is not None
    assert hist.ring_for(schema("memory", ("m", "n"))) is None
    assert hist.series_count == 2 and len(hist.rings()) == 1


def test_series_cap_evicts_superseded_schemas_of_the_same_category():
    """At the cap, a new schema of a category replaces that category's older schemas."""
    hist = SeriesHistory(max_series=4)
    mem = hist.ring_for(schema("memory", ("m",)))
    hist.ring_for(schema("io", ("a", "b")))
    new_io = hist.ring_for(schema("io", ("a", "b", "c")))
    assert new_io is not None
    assert hist.rings() == [mem, new_io]
    assert hist.series_count == 4


def test_series_cap_does_not_evict_other_categories():
    """Eviction only drops the new schema's own category; other categories stay."""
    hist = SeriesHistory(max_series=3)
    cpu = hist.ring_for(schema("cpu", ("a", "b", "c")))
    assert hist.ring_for(schema("memory", ("m",))) is None
    assert hist.rings() == [cpu]


def test_refused_schema_does_not_evict_data_it_cannot_replace():
    """A schema refused even after eviction leaves the older rings (and their data) in place."""
    hist = SeriesHistory(max_series=4)
    cpu = hist.ring_for(schema("cpu", ("a", "b", "c")))
    io = hist.ring_for(schema("io", ("x",)))
    io.append(1.0, row(1.0))
    assert hist.ring_for(schema("io", ("x", "y"))) is None
    assert hist.rings() == [cpu, io] and hist.series_count == 4
    assert hist.query("x") == [(1.0, 1.0, False)]


def test_evicted_ring_is_marked_not_live():
    """A ring dropped by eviction says so (live False), so cached references can notice."""
    hist = SeriesHistory(max_series=2)
    old = hist.ring_for(schema("io", ("a",)))
    assert old.live
    hist.ring_for(schema("io", ("a", "b")))
    assert not old.live


def test_history_nbytes_and_samples_sum_over_rings():
    """nbytes and samples add up every ring; memory stays about 8 bytes per stored sample."""
    hist = SeriesHistory(capacity=10)
    wide = schema("cpu", tuple(f"m{i}" for i in range(99)))
    ring = hist.ring_for(wide)
    for t in range(15):
        ring.append(float(t), row(*([1.0] * 99)))
    assert hist.samples == 10 * 99
    assert hist.nbytes == 8 * 10 * 100 + 10
    assert hist.nbytes / hist.samples == pytest.approx(8.0, rel=0.02)


# ------------------------------------------------------------------ backfilled rows
def test_backfilled_rows_carry_their_flag_in_columns_and_queries():
    """column() gives arrival order with the flag; query() sorts backfilled rows into time order."""
    hist = SeriesHistory(capacity=5)
    ring = hist.ring_for(schema(names=("a",)))
    ring.append(1.0, row(1.0))
    ring.append(4.0, row(4.0))
    ring.append(2.0, row(2.0), backfilled=True)
    ring.append(3.0, row(3.0), True)
    assert ring.column(0) == [(1.0, 1.0, False), (4.0, 4.0, False), (2.0, 2.0, True), (3.0, 3.0, True)]
    assert hist.query("a") == [(1.0, 1.0, False), (2.0, 2.0, True), (3.0, 3.0, True), (4.0, 4.0, False)]
    assert hist.query("a", since=2.5) == [(3.0, 3.0, True), (4.0, 4.0, False)]


def test_last_and_latest_skip_backfilled_rows_that_arrived_after_the_live_one():
    """last() is the newest live row even when older backfilled rows were appended after it."""
    hist = SeriesHistory(capacity=5)
    ring = hist.ring_for(schema(names=("a",)))
    ring.append(10.0, row(1.0))
    ring.append(5.0, row(99.0), backfilled=True)
    assert ring.last() == (10.0, row(1.0))
    assert hist.latest() == {"a": (10.0, 1.0, "cpu", "%")}
    ring.append(11.0, row(2.0))
    assert ring.last() == (11.0, row(2.0))


def test_last_with_only_backfilled_rows_is_the_newest_row():
    """A ring that only ever got backfilled rows reports its newest row."""
    ring = BlockRing(schema(names=("a",)), capacity=3)
    ring.append(5.0, row(5.0), backfilled=True)
    ring.append(6.0, row(6.0), backfilled=True)
    assert ring.last() == (6.0, row(6.0))


def test_last_never_returns_a_backfilled_row_that_overwrote_the_live_one():
    """Once backfilled rows wrapped over the only live row, last() is the newest row, not a stale slot."""
    ring = BlockRing(schema(names=("a",)), capacity=2)
    ring.append(10.0, row(10.0))
    ring.append(5.0, row(5.0), backfilled=True)
    ring.append(6.0, row(6.0), backfilled=True)      # overwrites the live row
    ring.append(7.0, row(7.0), backfilled=True)
    assert ring.column(0) == [(6.0, 6.0, True), (7.0, 7.0, True)]
    assert ring.last() == (7.0, row(7.0))
    ring.append(12.0, row(12.0))
    assert ring.last() == (12.0, row(12.0))


def test_ring_knows_the_columns_and_keys_of_its_unlabeled_series():
    """A ring lists its series without labels once (what latest_unlabeled reads), in column order."""
    ring = BlockRing(parse_schema(wire.pack(["cpu", [["a", "%", {}], ["b", "%", {"cpu": "0"}],
                                                     ["c", "", {}]]])), 4)
    assert (ring.unlabeled_columns, ring.unlabeled_keys) == ([0, 2], ["a", "c"])


def test_latest_unlabeled_matches_latest_for_unlabeled_keys_across_schemas():
    """latest_unlabeled() gives latest()'s newest value of every label-free series, nothing else."""
    hist = SeriesHistory(capacity=4)
    plain = hist.ring_for(schema("cpu", ("cpu_percent", "load_1m")))
    labeled = hist.ring_for(schema("cpu", ("cpu_percent",), {"cpu": "0"}))
    other = hist.ring_for(schema("memory", ("memory_percent", "load_1m")))
    plain.append(1.0, row(10.0, 0.5))
    plain.append(2.0, row(11.0, 0.6))
    labeled.append(3.0, row(99.0))
    other.append(1.5, row(40.0, 0.9))
    other.append(2.5, row(41.0, 1.5), backfilled=True)
    want = {k: v[1] for k, v in hist.latest().items() if "{" not in k}
    assert hist.latest_unlabeled() == want == {"cpu_percent": 11.0, "load_1m": 0.6, "memory_percent": 40.0}
