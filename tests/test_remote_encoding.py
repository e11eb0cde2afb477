"""perfmesh.export: snappy block format, remote-write protobuf, the byte-bounded send queue."""

from __future__ import annotations

import os
import random

import pytest

from perfmesh.errors import ConfigError, PerfmeshError
from perfmesh.export import snappy
from perfmesh.export.remote import (HEADERS, RemoteWriteError, SeriesEncoder, decode_request,
                                    encode_labels, group, prom_labels, write_body)
from perfmesh.export.sendqueue import Backoff, SendQueue
from perfmesh.model.metric import PerformanceMetric
from perfmesh.protocol.batch import BatchEncoder, parse_schema


@pytest.mark.parametrize("data", [b"", b"a", b"abcd" * 100, os.urandom(3000), b"x" * 70_000,
                                  b"host=web01 " * 5000 + os.urandom(100),
                                  bytes(random.Random(1).choice(b"ab") for _ in range(20_000))])
def test_snappy_round_trips_and_compresses_repetition(data):
    """compress() writes a valid block (decompress() restores it); repeated text shrinks."""
    block = snappy.compress(data)
    assert snappy.decompress(block) == data
    if data.startswith(b"host") or data.startswith(b"abcd"):
        assert len(block) < len(data) / 5


def test_snappy_matches_a_known_block():
    """A block from the reference implementation decodes (literal + 1-byte-offset copy)."""
    # "abcdabcdabcd": varint 12, literal of 4, copy offset 4 length 8
    assert snappy.decompress(bytes([12, 3 << 2]) + b"abcd" + bytes([((8 - 4) << 2) | 1, 4])) == b"abcd" * 3
    with pytest.raises(snappy.SnappyError, match="copy offset"):
        snappy.decompress(bytes([8, ((4 - 4) << 2) | 1, 9]))
    with pytest.raises(snappy.SnappyError, match="header says"):
        snappy.decompress(bytes([9, 0]) + b"a")
    with pytest.raises(snappy.SnappyError, match="at most"):
        snappy.decompress(snappy.uvarint(1 << 40))
    assert issubclass(snappy.SnappyError, PerfmeshError)


def test_write_request_round_trips_with_sorted_labels_and_samples():
    """Labels sorted by name with __name__; samples in time order; negative and big values survive."""
    labels = encode_labels({"host": "web01", "__name__": "perfmesh_cpu_busy_ratio", "cpu": "0"})
    body = write_body([(labels, [(2000, 0.5), (1000, -1e300)]), (encode_labels({"__name__": "x"}), [(-5, 0.0)])])
    got = decode_request(snappy.decompress(body))
    assert got == [({"__name__": "perfmesh_cpu_busy_ratio", "cpu": "0", "host": "web01"}, [(1000, -1e300), (2000, 0.5)]),
                   ({"__name__": "x"}, [(-5, 0.0)])]
    assert list(got[0][0]) == ["__name__", "cpu", "host"]
    assert HEADERS["Content-Encoding"] == "snappy" and HEADERS["X-Prometheus-Remote-Write-Version"] == "0.1.0"
    with pytest.raises(RemoteWriteError, match="past the end"):
        decode_request(b"\x0a\x10abc")


def test_series_encoder_names_batches_as_metrics_does():
    """A collector batch becomes series named by perfmesh.export.naming, host label, base units;
    rates with counters are left out; rows of several batches group per series."""
    metrics = [PerformanceMetric("cpu_percent", 50.0, "%", 1.0, "cpu"),
               PerformanceMetric("cpu_percent", 25.0, "%", 1.0, "cpu", context={"cpu": "0"}),
               PerformanceMetric("disk_read_bytes_per_s", 9.0, "B/s", 1.0, "io", context={"device": "sda"}),
               PerformanceMetric("disk_read_bytes_total", 900.0, "B", 1.0, "io", context={"device": "sda", "a.b": "x"})]
    body = BatchEncoder().encode("cpu", 1.0, metrics)
    schema = parse_schema(body["schema"])
    enc = SeriesEncoder(max_schemas=1)
    rows = enc.rows("web01", schema, 1.5, [m.value for m in metrics]) + \
        enc.rows("web01", schema, 2.5, [m.value for m in metrics])
    got = decode_request(snappy.decompress(write_body(group(rows))))
    assert got == [
        ({"__name__": "perfmesh_cpu_busy_ratio", "host": "web01"}, [(1500, 0.5), (2500, 0.5)]),
        ({"__name__": "perfmesh_cpu_core_busy_ratio", "cpu": "0", "host": "web01"}, [(1500, 0.25), (2500, 0.25)]),
        ({"__name__": "perfmesh_disk_read_bytes_total", "a_b": "x", "device": "sda", "host": "web01"},
         [(1500, 900.0), (2500, 900.0)])]
    assert prom_labels("h", {"host": "spoof"}) == {"host": "h"}


def test_send_queue_is_bounded_in_bytes_and_counts_what_it_sheds():
    """A full queue drops its oldest batches; a batch larger than the queue is shed itself."""
    q = SendQueue(max_bytes=1024)
    assert q.put("a", 400, 10) == 0 and q.put("b", 400, 20) == 0
    assert q.put("c", 400, 30) == 10 and (q.nbytes, q.samples, len(q)) == (800, 50, 2)
    assert q.put("huge", 2000, 99) == 99 and q.shed_samples == 109 and q.shed_batches == 2
    assert q.take(max_samples=25) == ["b"]            # never more than asked, beyond the first
    assert q.take(max_samples=1) == ["c"] and q.take(10) == [] and q.nbytes == 0 == q.samples
    with pytest.raises(ConfigError, match="1024"):
        SendQueue(max_bytes=10)


def test_backoff_doubles_to_its_cap_and_honours_retry_after():
    """Failures wait 0.1, 0.2, 0.4 ... up to max_s; Retry-After waits longer; success resets."""
    b = Backoff(0.1, 0.4)
    assert b.ready(0.0)
    assert b.failure(10.0) == pytest.approx(10.1) and not b.ready(10.05) and b.ready(10.1)
    assert b.failure(10.0) == pytest.approx(10.2)
    assert b.failure(10.0) == pytest.approx(10.4) and b.failure(10.0) == pytest.approx(10.4)
    assert b.failure(10.0, retry_after_s=2.0) == pytest.approx(12.0)
    b.success()
    assert b.ready(0.0) and b.to_dict()["failures"] == 5
    with pytest.raises(ConfigError):
        Backoff(0.0, 1.0)
