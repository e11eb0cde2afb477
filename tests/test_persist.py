"""The aggregator's writer thread (workers/persist.py): batches reach SQLite off the loop."""

from __future__ import annotations

import time

from perfmesh.protocol import wire
from perfmesh.protocol.batch import pack_values
from perfmesh.store.database import Store
from tests.waiting import wait_until
from workers.persist import Persistence

SCHEMA = wire.pack(["application", [["app_a", "count", {}], ["app_b", "count", {}]]])


def row(seq: int, ts: float, values=(1.0, 2.0), host: str = "web01", boot: str = "b1"):
    return (host, boot, seq, SCHEMA, ts, pack_values(values), False)


def test_a_batch_the_store_refuses_costs_only_itself(tmp_path):
    """One row with a values blob of the wrong width: the others of the same flush are stored."""
    p = Persistence(tmp_path / "s.db", flush_interval_s=0.01)
    try:
        now = time.time()
        p.put(row(1, now))
        wait_until(lambda: p.written == 1, 5, "the first row written")
        for r in (row(2, now + 1, values=(1.0,)), row(3, now + 2), row(4, now + 3)):
            p.put(r)
        # counted twice: the flush that held it, then the bad row on its own
        wait_until(lambda: p.written == 3 and p.errors == 2, 5, "two more rows written, one refused")
        assert p.store.seqs("web01", "b1", 1, 4) == {1, 3, 4}
        assert [s[0] for s in p.reader.query("web01", "app_a", 0)] == [now, now + 2, now + 3]
    finally:
        p.close()


def test_close_writes_what_is_still_pending(tmp_path):
    """A flush interval that never comes: close() commits the accumulated rows first."""
    path = tmp_path / "s.db"
    p = Persistence(path, flush_interval_s=3600)
    now = time.time()
    p.put(row(1, now))
    p.put(row(2, now + 1))
    p.call(lambda store: store.upsert_host("web01", {"platform": "linux"}, now, now + 1, "b1"))
    assert p.pending == 2 and p.written == 0
    p.close()
    store = Store(path)
    try:
        assert store.seqs("web01", "b1", 1, 2) == {1, 2}
        assert [h["name"] for h in store.hosts()] == ["web01"]
    finally:
        store.close()


def test_resume_points_name_the_holes_in_each_hosts_recent_seqs(tmp_path):
    """After a restart the aggregator asks for what was accepted but never written."""
    p = Persistence(tmp_path / "s.db", flush_interval_s=0.01)
    try:
        now = time.time()
        p.call(lambda store: store.upsert_host("web01", {}, now, now, "b1"))
        p.call(lambda store: store.upsert_host("idle", {}, now, now, "b9"))     # no batches: no resume point
        for seq in (1, 2, 5, 6, 9):
            p.put(row(seq, now + seq))
        wait_until(lambda: p.written == 5, 5, "the rows written")
        [point] = p.resume_points()
        assert point["name"] == "web01" and point["boot"] == "b1" and point["last_seq"] == 9
        assert point["missing"] == [(3, 4), (7, 8)]
    finally:
        p.close()


def test_old_batches_are_compacted_on_the_writers_schedule(tmp_path):
    """Raw batches past the raw window fold into per-minute rollups without anyone asking."""
    p = Persistence(tmp_path / "s.db", raw_window_s=60, flush_interval_s=0.01, compact_interval_s=0.05)
    try:
        old = (time.time() // 60 - 10) * 60           # ten minutes ago, on a minute boundary
        for seq in range(1, 4):
            p.put(row(seq, old + seq, values=(float(seq), 0.0)))
        wait_until(lambda: p.written == 3, 5, "the rows written")
        wait_until(lambda: not p.store.seqs("web01", "b1", 1, 3), 5, "the raw batches folded")
        assert p.reader.query("web01", "app_a", 0) == [(old, 2.0, False)]   # one minute, its average
    finally:
        p.close()
