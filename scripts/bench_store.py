"""Benchmark perfmesh.store.database: add_batches and query, next to a plain executemany baseline.

    python scripts/bench_store.py [--batches 200000] [--per-call 1000] [--width 100]

The baseline inserts the same rows into a bare table (no schema dedup, no unique key, no
index) in the same kind of transactions, so the figures show what the store's bookkeeping
costs on this machine.
"""

from __future__ import annotations

import argparse
import sqlite3
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from perfmesh.protocol import wire  # noqa: E402
from perfmesh.protocol.batch import pack_values  # noqa: E402
from perfmesh.store.database import Store  # noqa: E402


def make_rows(n: int, width: int, hosts: int) -> list[tuple]:
    raw = wire.pack(["cpu", [[f"m{i}", "%", {"cpu": str(i % 8)}] for i in range(width)]])
    vals = pack_values([float(i) for i in range(width)])
    return [(f"host{i % hosts:03d}", "boot-1", i // hosts, raw, 1_700_000_000.0 + i / hosts, vals, False)
            for i in range(n)]


def bench_store(path: Path, rows: list[tuple], per_call: int) -> tuple[float, Store]:
    store = Store(path)
    t = time.perf_counter()
    for i in range(0, len(rows), per_call):
        store.add_batches(rows[i:i + per_call])
    return len(rows) / (time.perf_counter() - t), store


def bench_baseline(path: Path, rows: list[tuple], per_call: int) -> float:
    """The same rows (schema blob included) into a bare table: no dedup, no key, no index."""
    conn = sqlite3.connect(path, isolation_level=None)
    conn.execute("PRAGMA journal_mode = WAL")
    conn.execute("PRAGMA synchronous = NORMAL")
    conn.execute("CREATE TABLE b (host TEXT, boot TEXT, seq INTEGER, schema BLOB, ts REAL, "
                 "vals BLOB, backfilled INTEGER)")
    t = time.perf_counter()
    for i in range(0, len(rows), per_call):
        conn.execute("BEGIN")
        conn.executemany("INSERT INTO b VALUES (?, ?, ?, ?, ?, ?, ?)", rows[i:i + per_call])
        conn.execute("COMMIT")
    rate = len(rows) / (time.perf_counter() - t)
    conn.close()
    return rate


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--batches", type=int, default=200_000)
    ap.add_argument("--per-call", type=int, default=1000, help="batches per add_batches call")
    ap.add_argument("--small-calls", type=int, default=20_000,
                    help="also time this many batches at 1 and 10 per call (0: skip)")
    ap.add_argument("--width", type=int, default=100, help="values per batch")
    ap.add_argument("--hosts", type=int, default=10)
    args = ap.parse_args()
    rows = make_rows(args.batches, args.width, args.hosts)
    with tempfile.TemporaryDirectory() as tmp:
        base = bench_baseline(Path(tmp) / "baseline.db", rows, args.per_call)
        rate, store = bench_store(Path(tmp) / "store.db", rows, args.per_call)
        per_host = args.batches // args.hosts
        t = time.perf_counter()
        got = store.query("host003", "m5{cpu=5}", 0)
        q_ms = (time.perf_counter() - t) * 1000
        t = time.perf_counter()
        recent = store.query("host003", "m5{cpu=5}", rows[-1][4] - 60)
        q60_ms = (time.perf_counter() - t) * 1000
        assert len(got) == per_host, (len(got), per_host)
        store.close()
        small = {}
        for k in (1, 10) if args.small_calls else ():
            small[k], s = bench_store(Path(tmp) / f"small{k}.db", rows[:args.small_calls], k)
            s.close()
    print(f"{args.batches} batches of {args.width} values, {args.per_call} per call, {args.hosts} hosts")
    print(f"  plain executemany, same rows, bare table: {base:12,.0f} batches/s")
    print(f"  Store.add_batches:                      {rate:12,.0f} batches/s  ({rate / base:.0%} of baseline,"
          f" {rate * args.width / 1e6:.1f}M values/s)")
    for k, r in small.items():
        print(f"  Store.add_batches, {k:>2} per call:          {r:12,.0f} batches/s")
    print(f"  Store.query, one series, {len(got)} samples: {q_ms:8.1f} ms")
    print(f"  Store.query, one series, last 60 s ({len(recent)} samples): {q60_ms:6.2f} ms")


if __name__ == "__main__":
    main()
