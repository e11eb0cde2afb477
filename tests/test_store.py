"""Tests for perfmesh.store (database, queries, layout, salvage): the aggregator's SQLite state, its compaction and its repair."""

from __future__ import annotations

import os
import shutil
import signal
import sqlite3
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest

from perfmesh.protocol import wire
from perfmesh.store import salvage as salvage_mod
from perfmesh.protocol.batch import pack_values
from perfmesh.errors import WireError
from perfmesh.store.salvage import _next_readable
from perfmesh.store.database import RepairReport, Store, StoreError
from perfmesh.store.layout import schema_id, seq_ranges

ROOT = Path(__file__).resolve().parent.parent


def schema(names=("a", "b"), category="cpu", labels=None) -> bytes:
    return wire.pack([category, [[n, "%", dict(labels or {})] for n in names]])


CPU = schema(("cpu_percent", "iowait"))
CPU3 = schema(("cpu_percent", "iowait", "steal"))
PER_CPU = schema(("cpu_percent",), labels={"cpu": "0"})


def batch(seq, ts, *values, raw=CPU, host="web01", boot="b1", backfilled=False):
    return (host, boot, seq, raw, ts, pack_values(values), backfilled)


@pytest.fixture
def store(tmp_path):
    s = Store(tmp_path / "state.db")
    yield s
    s.close()


def fill(store, n, host="web01", per_call=50, t0=1000.0):
    """n batches of CPU at 1 s; batch i holds (i, 2 i)."""
    for start in range(0, n, per_call):
        store.add_batches([batch(i, t0 + i, float(i), 2.0 * i, host=host)
                           for i in range(start, min(n, start + per_call))])


# ----------------------------------------------------------------- basics
def test_new_file_is_in_wal_mode_with_versioned_schema(tmp_path):
    """A new store is a WAL-mode file with user_version 1 and nothing to repair."""
    s = Store(tmp_path / "sub" / "dir" / "state.db")
    assert s.journal_mode() == "wal" and not s.repair.repaired
    assert s._conn.execute("PRAGMA user_version").fetchone()[0] == 1
    assert s._conn.execute("PRAGMA synchronous").fetchone()[0] == 1  # NORMAL
    assert set(s.counts()) == {"schemas", "batches", "rollups", "hosts", "violations", "audit", "gaps"}
    s.close()


def test_batches_round_trip_through_query(store):
    """Stored batches come back per series, ordered by ts, with their backfilled flag."""
    store.add_batches([batch(2, 12.0, 3.0, 4.0, backfilled=True), batch(1, 11.0, 1.0, 2.0)])
    assert store.query("web01", "cpu_percent", 0) == [(11.0, 1.0, False), (12.0, 3.0, True)]
    assert store.query("web01", "iowait", 11.5) == [(12.0, 4.0, True)]
    assert store.query("web01", "iowait", 0, 11.0) == [(11.0, 2.0, False)]
    assert store.query("web02", "iowait", 0) == [] and store.query("web01", "nope", 0) == []
    assert store.counts()["batches"] == 2 and store.counts()["schemas"] == 1


def test_reopen_keeps_everything(tmp_path):
    """Closing and reopening keeps batches, schemas and the key index."""
    s = Store(tmp_path / "s.db")
    fill(s, 10)
    s.close()
    s = Store(tmp_path / "s.db")
    assert len(s.query("web01", "iowait", 0)) == 10 and not s.repair.repaired
    s.add_batches([batch(10, 1010.0, 1.0, 1.0)])  # schema known from the file: no re-insert
    assert s.counts()["schemas"] == 1 and s.last_seq("web01") == ("b1", 10)
    s.close()


def test_duplicates_are_never_stored_twice(store):
    """The same (host, boot, seq) is ignored, in one call or across calls; another boot is not."""
    store.add_batches([batch(1, 1.0, 1.0, 1.0), batch(1, 1.0, 9.0, 9.0)])
    store.add_batches([batch(1, 1.5, 5.0, 5.0), batch(1, 2.0, 7.0, 7.0, boot="b2")])
    assert store.counts()["batches"] == 2
    assert store.query("web01", "cpu_percent", 0) == [(1.0, 1.0, False), (2.0, 7.0, False)]


def test_query_follows_a_series_across_schema_changes(store):
    """A series keeps its history when its schema changes (a series added), labelled keys too."""
    store.add_batches([batch(1, 1.0, 10.0, 0.5), batch(2, 2.0, 11.0, 0.6, 0.1, raw=CPU3),
                       batch(3, 3.0, 12.0, 0.7)])
    store.add_batches([batch(4, 2.5, 50.0, raw=PER_CPU)])
    assert store.query("web01", "cpu_percent", 0) == [(1.0, 10.0, False), (2.0, 11.0, False),
                                                      (3.0, 12.0, False)]
    assert store.query("web01", "steal", 0) == [(2.0, 0.1, False)]
    assert store.query("web01", "cpu_percent{cpu=0}", 0) == [(2.5, 50.0, False)]
    assert store.counts()["schemas"] == 3


def test_bad_rows_store_nothing(store):
    """A values blob of the wrong length or a bad schema rejects the whole call."""
    with pytest.raises(StoreError, match="expected 16"):
        store.add_batches([batch(1, 1.0, 1.0, 1.0), batch(2, 2.0, 1.0)])
    with pytest.raises(WireError):
        store.add_batches([batch(3, 3.0, 1.0, raw=b"\x93junk")])
    assert store.counts()["batches"] == 0


def test_last_seq_and_seqs_tell_what_is_missing(store):
    """last_seq is the newest boot's highest seq; seqs lists the stored ones of a range."""
    assert store.last_seq("web01") is None
    store.add_batches([batch(s, float(s), 1.0, 1.0) for s in (1, 2, 4, 7)])
    store.add_batches([batch(3, 100.0, 1.0, 1.0, boot="b2"), batch(1, 99.0, 1.0, 1.0, boot="b2")])
    assert store.last_seq("web01") == ("b2", 3)
    assert store.seqs("web01", "b1", 1, 6) == {1, 2, 4}
    assert store.seqs("web01", "b1", 8, 10) == set()


def test_hosts_upsert_keeps_first_and_last_seen(store):
    """upsert_host replaces info and boot, keeps the earliest first_seen and latest last_seen."""
    store.upsert_host("web01", {"cpus": 4}, 10.0, 20.0, "b1")
    store.upsert_host("web01", {"cpus": 8}, 15.0, 18.0, "b2")
    store.upsert_host("db01", {}, 1.0, 2.0, "x")
    assert store.hosts() == [
        {"name": "db01", "info": {}, "first_seen": 1.0, "last_seen": 2.0, "boot": "x"},
        {"name": "web01", "info": {"cpus": 8}, "first_seen": 10.0, "last_seen": 20.0, "boot": "b2"}]


def test_violations_filter_by_host_and_time(store):
    """violations(host, since) and violations(None, since) return the records as added."""
    store.add_violation("web01", {"metric": "cpu", "timestamp": 5.0})
    store.add_violation("web02", {"metric": "mem", "timestamp": 6.0})
    store.add_violation("web01", {"metric": "io", "timestamp": 7.0})
    assert [v["metric"] for v in store.violations("web01", 0)] == ["cpu", "io"]
    assert [v["metric"] for v in store.violations(None, 6.0)] == ["mem", "io"]


def test_audit_is_append_only(store):
    """Audit entries come back in order; SQL update and delete are refused by triggers."""
    store.add_audit({"id": "c1", "timestamp": 3.0, "status": "sent"})
    store.add_audit({"id": "c1", "timestamp": 4.0, "status": "success"})
    assert [e["status"] for e in store.audit(0)] == ["sent", "success"]
    assert store.audit(3.5) == [{"id": "c1", "timestamp": 4.0, "status": "success"}]
    assert not hasattr(store, "delete_audit")
    for sql in ("UPDATE audit SET entry = '{}'", "DELETE FROM audit"):
        with pytest.raises(sqlite3.IntegrityError, match="append-only"):
            store._conn.execute(sql)
    assert len(store.audit(0)) == 2


def test_gaps_round_trip(store):
    """add_gap / gaps(host) keep every field, oldest first."""
    store.add_gap("web01", "b1", 5, 9, 100.0, 104.0, "spool_overflow")
    store.add_gap("web02", "b1", 1, 1, 1.0, 1.0, "x")
    assert store.gaps("web01") == [{"host": "web01", "boot": "b1", "first_seq": 5, "last_seq": 9,
                                    "start_ts": 100.0, "end_ts": 104.0, "reason": "spool_overflow"}]


def test_reader_sees_committed_writes_from_another_thread(store):
    """A reader on its own read-only connection sees commits and cannot write."""
    reader = store.reader()
    fill(store, 5)
    out = []
    t = threading.Thread(target=lambda: out.append(reader.query("web01", "cpu_percent", 0)))
    t.start()
    t.join()
    assert len(out[0]) == 5 and reader.counts()["batches"] == 5
    with pytest.raises(sqlite3.OperationalError):
        reader._conn.execute("DELETE FROM batches")
    reader.close()


def test_bad_check_and_newer_version_are_errors(tmp_path):
    """An unknown check mode, or a file from a newer schema, is a StoreError, not a repair."""
    with pytest.raises(StoreError, match="check"):
        Store(tmp_path / "a.db", check="sometimes")
    s = Store(tmp_path / "b.db", check="full")
    s._conn.execute("PRAGMA user_version = 7")
    s.close()
    with pytest.raises(StoreError, match="version 7"):
        Store(tmp_path / "b.db", check="none")


def test_schema_id_is_a_content_hash():
    """The same bytes give the same signed 64-bit id; other bytes another."""
    assert schema_id(CPU) == schema_id(bytes(CPU)) != schema_id(CPU3)
    assert -(2 ** 63) <= schema_id(CPU) < 2 ** 63
    assert seq_ranges([5, 1, 2, 3, 7, 8]) == [(1, 3), (5, 5), (7, 8)]


# ----------------------------------------------------------------- compaction
def test_compaction_folds_old_minutes_into_exact_rollups(tmp_path):
    """Batches older than the raw window become per-minute count/sum/min/max; queries see avg."""
    s = Store(tmp_path / "c.db", raw_window_s=3600.0)
    t0 = 60.0 * 1000  # minute-aligned
    s.add_batches([batch(i, t0 + i * 10.0, float(i), 100.0 - i, backfilled=True) for i in range(18)])
    now = t0 + 3600.0 + 125.0  # cutoff at t0 + 120: minutes 1000 and 1001 fold
    assert s.compact(now) == 12
    assert s.rollups("web01", "cpu_percent") == [
        {"minute": 1000, "count": 6, "sum": 15.0, "min": 0.0, "max": 5.0},
        {"minute": 1001, "count": 6, "sum": 51.0, "min": 6.0, "max": 11.0}]
    assert s.rollups("web01", "iowait")[1] == {"minute": 1001, "count": 6, "sum": 549.0,
                                               "min": 89.0, "max": 94.0}
    got = s.query("web01", "cpu_percent", t0)
    assert got[:2] == [(t0, 2.5, False), (t0 + 60.0, 8.5, False)]
    assert got[2:] == [(t0 + i * 10.0, float(i), True) for i in range(12, 18)]
    assert s.query("web01", "cpu_percent", t0 + 1, t0 + 60) == [(t0 + 60.0, 8.5, False)]
    assert s.counts()["batches"] == 6 and s.compact(now) == 0
    s.close()


def test_late_batches_merge_into_an_existing_rollup(tmp_path):
    """A backfill for an already compacted minute is merged into its rollup on the next compact."""
    s = Store(tmp_path / "c.db", raw_window_s=60.0)
    s.add_batches([batch(1, 600.0, 2.0, 2.0), batch(2, 630.0, 4.0, 4.0)])
    assert s.compact(800.0) == 2
    s.add_batches([batch(3, 620.0, 9.0, 9.0), batch(4, 610.0, -1.0, -1.0)])
    assert s.compact(800.0) == 2
    assert s.rollups("web01", "iowait") == [{"minute": 10, "count": 4, "sum": 14.0, "min": -1.0,
                                             "max": 9.0}]
    s.close()


def test_compaction_expires_old_rollups_violations_and_gaps_but_not_audit(tmp_path):
    """Past rollup retention: rollups, violations and gaps go; the audit log stays."""
    s = Store(tmp_path / "c.db", raw_window_s=60.0, rollup_retention_s=600.0)
    s.add_batches([batch(1, 60.0, 1.0, 1.0, host="a"), batch(1, 1000.0, 1.0, 1.0, host="b")])
    s.add_violation("a", {"timestamp": 60.0})
    s.add_gap("a", "b1", 1, 2, 50.0, 60.0, "x")
    s.add_audit({"timestamp": 60.0})
    assert s.compact(1200.0) == 2
    c = s.counts()
    assert (c["rollups"], c["violations"], c["gaps"], c["audit"], c["batches"]) == (2, 0, 0, 1, 0)
    assert s.query("b", "cpu_percent", 0) == [(960.0, 1.0, False)]
    s.close()


# ----------------------------------------------------------------- repair
def _filled_file(tmp_path, n=3000) -> Path:
    path = tmp_path / "state.db"
    s = Store(path)
    fill(s, n, per_call=500)
    s.upsert_host("web01", {"cpus": 2}, 1.0, 2.0, "b1")
    s.add_audit({"timestamp": 1.0, "id": "c1"})
    s.add_violation("web01", {"timestamp": 1.0})
    s.close()  # checkpoints: the WAL is folded into the file and removed
    assert not Path(str(path) + "-wal").exists()
    return path


def _check_repaired(path: Path, report: RepairReport, s: Store) -> None:
    assert report.repaired and report.lost and report.moved_to
    assert report.moved_to.startswith(str(path) + ".corrupt-") and os.path.exists(report.moved_to)
    assert s.integrity() == ["ok"] and s.journal_mode() == "wal"
    s.add_batches([batch(100_000, 9e9, 1.0, 1.0)])  # usable afterwards
    assert s.query("web01", "cpu_percent", 9e9) == [(9e9, 1.0, False)]
    got = s.query("web01", "iowait", 0)
    assert all(v == 2.0 * (ts - 1000.0) for ts, v, _ in got[:-1])  # salvaged rows are intact


def test_truncated_file_is_repaired_with_a_report(tmp_path):
    """A file cut to half its size opens: readable rows salvaged, the loss reported."""
    path = _filled_file(tmp_path)
    os.truncate(path, path.stat().st_size // 2)
    s = Store(path)
    _check_repaired(path, s.repair, s)
    assert 0 < s.repair.salvaged_rows["batches"] < 3000
    assert s.repair.salvaged_rows["schemas"] == 1
    assert "unreadable" in s.repair.lost
    assert s.repair.to_dict()["repaired"] is True
    s.close()
    s = Store(path)  # the repaired file is sound
    assert not s.repair.repaired
    s.close()


def test_garbage_in_the_middle_is_repaired(tmp_path, monkeypatch):
    """Random bytes over pages in the middle: every other row salvaged, the loss reported."""
    monkeypatch.setattr(salvage_mod, "SALVAGE_CHUNK", 100)
    path = _filled_file(tmp_path)
    size = path.stat().st_size
    with open(path, "r+b") as f:
        f.seek(size // 2)
        f.write(os.urandom(3 * 4096))
    s = Store(path)
    _check_repaired(path, s.repair, s)
    r = s.repair
    assert 2500 < r.salvaged_rows["batches"] < 3000
    assert r.salvaged_rows["hosts"] == 1 and r.salvaged_rows["audit"] == 1
    if r.lost_batches:  # the seq index survived: it names exactly what was lost
        lost = sum(b - a + 1 for _, _, a, b in r.lost_batches)
        assert lost + r.salvaged_rows["batches"] == 3000
    else:
        assert "lost seqs unknown" in r.lost
    s.close()


def test_not_a_database_at_all_is_moved_aside_with_its_wal(tmp_path, monkeypatch):
    """A file of garbage from its first byte: moved aside with its -wal and -shm (a second
    repair in the same second gets a suffix); a fresh store, everything reported lost."""
    path = tmp_path / "state.db"
    monkeypatch.setattr(time, "time", lambda: 1234.0)
    for _ in range(2):
        path.write_bytes(os.urandom(64 * 1024))
        Path(str(path) + "-wal").write_bytes(b"x")
        Path(str(path) + "-shm").write_bytes(b"x")
        s = Store(path)
        assert s.repair.repaired and "nothing readable" in s.repair.lost
        assert sum(s.repair.salvaged_rows.values()) == 0 and s.counts()["batches"] == 0
        s.close()
    assert sorted(p.name for p in tmp_path.iterdir() if "corrupt" in p.name) == [
        "state.db.corrupt-1234", "state.db.corrupt-1234-1", "state.db.corrupt-1234-1-shm",
        "state.db.corrupt-1234-1-wal", "state.db.corrupt-1234-shm", "state.db.corrupt-1234-wal"]


def test_rows_only_in_the_wal_are_salvaged(tmp_path):
    """A crash snapshot (file, -wal, -shm) with a damaged file: rows still in the WAL survive."""
    path = _filled_file(tmp_path)
    s = Store(path)
    s.add_audit({"timestamp": 2.0, "id": "late"})
    snap = tmp_path / "snap"
    snap.mkdir()
    for suffix in ("", "-wal", "-shm"):
        shutil.copy(str(path) + suffix, str(snap / "state.db") + suffix)
    s.close()
    _overwrite_page(snap / "state.db", "gaps_host")
    s = Store(snap / "state.db")
    assert s.repair.repaired and os.path.exists(s.repair.moved_to + "-wal")
    assert [e["id"] for e in s.audit(0)] == ["c1", "late"]
    assert s.repair.salvaged_rows["batches"] == 3000 and s.repair.lost_batches == []
    s.close()


def _overwrite_page(path: Path, index: str) -> None:
    """Random bytes over the root page of one index: the file fails its check, tables read."""
    conn = sqlite3.connect(path)
    page, size = conn.execute("SELECT rootpage FROM sqlite_master WHERE name = ?", (index,)).fetchone()[0], \
        conn.execute("PRAGMA page_size").fetchone()[0]
    conn.close()
    with open(path, "r+b") as f:
        f.seek((page - 1) * size)
        f.write(os.urandom(size))


def test_salvage_drops_damaged_schemas_orphans_and_reports_missing_tables(tmp_path):
    """A schema whose bytes do not match its id is dropped with its batches; a missing table
    is reported; the seq index names the lost batches."""
    path = tmp_path / "state.db"
    s = Store(path)
    fill(s, 4)
    s.add_batches([batch(9, 9.0, 1.0, raw=PER_CPU)])
    s.add_gap("web01", "b1", 1, 2, 1.0, 2.0, "x")
    s._conn.execute("UPDATE schemas SET raw = x'00' WHERE id = ?", (schema_id(PER_CPU),))
    s._conn.execute("DROP TABLE violations")
    s.close()
    _overwrite_page(path, "audit_ts")
    s = Store(path)
    r = s.repair
    assert r.repaired and r.salvaged_rows["schemas"] == 1 and r.salvaged_rows["batches"] == 4
    assert r.salvaged_rows["gaps"] == 1 and r.salvaged_rows["violations"] == 0
    assert "violations: table missing" in r.lost and "1 damaged rows dropped" in r.lost
    assert "1 rows dropped" in r.lost and r.lost_batches == [("web01", "b1", 9, 9)]
    s.close()


def test_damaged_schema_inside_a_sound_file_is_reported_not_fatal(tmp_path):
    """A schema blob that no longer parses (page intact) is skipped at open and noted."""
    path = tmp_path / "state.db"
    s = Store(path)
    fill(s, 3)
    s._conn.execute("UPDATE schemas SET raw = x'c1'")
    s.close()
    s = Store(path, raw_window_s=1.0)
    assert not s.repair.repaired and "unqueryable" in s.repair.lost
    assert s.compact(5000.0) == 3 and s.counts()["rollups"] == 0
    s.close()


def test_next_readable_skips_an_unreadable_run():
    """The rowid walk finds the first readable start past a bad run, or None at the end."""
    class Fake:
        def __init__(self, bad, rows):
            self.bad, self.rows = bad, rows

        def execute(self, sql, args):
            at = args[0]
            if self.bad(at):
                raise sqlite3.DatabaseError("malformed")
            nxt = [r for r in self.rows if r >= at][:2]
            return type("C", (), {"fetchall": lambda _s: [(r,) for r in nxt]})()

    rows = list(range(0, 100))
    assert _next_readable(Fake(lambda at: 10 <= at < 40, rows), "t", 10) == 40
    assert _next_readable(Fake(lambda at: at >= 10, rows), "t", 10) is None
    assert _next_readable(Fake(lambda at: 10 <= at < 20, list(range(15))), "t", 10) is None


# ----------------------------------------------------------------- crash
WRITER = """
import sys
from perfmesh.store.database import Store
from perfmesh.protocol.batch import pack_values
from perfmesh.protocol import wire
raw = wire.pack(["cpu", [["a", "%", {}], ["b", "%", {}]]])
s = Store(sys.argv[1])
seq = 0
while True:
    s.add_batches([("h", "b1", seq + k, raw, float(seq + k), pack_values([seq + k, 1.0]), False)
                   for k in range(100)])
    seq += 100
    print(seq, flush=True)
"""


@pytest.mark.multiprocess
def test_sigkill_mid_stream_loses_no_committed_batch(tmp_path):
    """A writer killed with SIGKILL: every batch it reported committed is there, file sound."""
    path = tmp_path / "state.db"
    proc = subprocess.Popen([sys.executable, "-c", WRITER, str(path)], stdout=subprocess.PIPE,
                            text=True, cwd=ROOT, env={**os.environ, "PYTHONPATH": str(ROOT)})
    committed = 0
    try:
        while committed < 20_000:
            line = proc.stdout.readline()
            assert line, "writer died"
            committed = int(line)
    finally:
        proc.send_signal(signal.SIGKILL)
        proc.wait(10)
    assert Path(str(path) + "-wal").exists()  # killed with a live WAL
    s = Store(path, check="full")
    assert not s.repair.repaired and s.integrity() == ["ok"]
    assert s.seqs("h", "b1", 0, committed - 1) == set(range(committed))
    assert s.counts()["batches"] >= committed
    assert s.query("h", "a", 0, 10) == [(float(i), float(i), False) for i in range(11)]
    s.close()
